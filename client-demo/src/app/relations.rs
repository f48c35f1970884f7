//! Relations between client accounts and the tree they make (see
//! `ficha_domain::relations` for how a cycle made offline is broken).

use ficha_core::DocId;
use ficha_domain::record::{RecordFilter, RecordSort};
use ficha_domain::relations::{self, Accounts};

use super::records::Given;
use super::{AppError, Replica};

impl Replica {
    /// Every relation this replica holds, as a tree.
    pub fn accounts(&self) -> Result<Accounts, AppError> {
        let all = self.list_records(
            &RecordFilter {
                kind: Some("relation".into()),
                ..RecordFilter::default()
            },
            &RecordSort::default(),
            0,
            None,
        )?;
        Ok(relations::accounts(&all))
    }

    /// Relates two clients (`kind`: parent, partner or other); the relation belongs to the
    /// parent's company. Refused at once when this replica already sees the cycle or the
    /// second parent it would make; made offline elsewhere, it is kept and shown instead.
    pub fn relate(&self, parent: DocId, child: DocId, kind: &str) -> Result<DocId, AppError> {
        let company = self.client_summary(&parent)?.company;
        self.client_summary(&child)?;
        if kind == "parent" {
            let mut probe = self.accounts()?;
            let (p, c) = (parent.to_string(), child.to_string());
            if let Some(existing) = probe.parent_of.get(&c) {
                return Err(AppError::Conflict(format!(
                    "{c} already has the parent {existing}"
                )));
            }
            probe.parent_of.insert(c.clone(), p.clone());
            let mut at = p.clone();
            let mut steps = 0;
            while let Some(up) = probe.parent_of.get(&at) {
                if *up == p || steps > probe.parent_of.len() {
                    return Err(AppError::Conflict(format!(
                        "{p} is already below {c} in the account tree: this would close a cycle"
                    )));
                }
                at = up.clone();
                steps += 1;
            }
        }
        let given = vec![
            ("parent".to_string(), Given::Text(parent.to_string())),
            ("child".to_string(), Given::Text(child.to_string())),
            ("type".to_string(), Given::Text(kind.to_string())),
        ];
        self.add_record("relation", None, Some(&company), &given)
    }

    /// A client's relations and place in the account tree.
    pub fn relations_of(&self, client: &DocId) -> Result<serde_json::Value, AppError> {
        self.client_summary(client)?;
        Ok(self.accounts()?.tree_of(&client.to_string()))
    }
}
