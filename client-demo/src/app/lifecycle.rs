//! A client's lifecycle: active, archived, trashed; merged and purged are tombstones. Every
//! path into a state goes through [`Replica::set_state`], so each runs the same rules:
//! reactivation checks for a likely duplicate among the active clients of every company this
//! replica sees, a tombstone never changes state, and every change records its time.

use std::collections::{BTreeMap, BTreeSet};

use ficha_core::DocId;
use ficha_domain::ClientSummary;
use ficha_domain::search::Filter;
use ficha_store::StoreError;

use super::edits::logged;
use super::{AppError, Replica, now_ms};
use crate::duplicates::keys;

/// States a person may move a client to.
const SETTABLE: &[&str] = &["active", "archived", "trashed"];

/// States of records that are gone: they keep their history, never a new state.
const TOMBSTONES: &[&str] = &["merged", "purged"];

/// A bulk action, parsed and checked before anything is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action<'a> {
    State(&'a str),
    AddGroup(&'a str),
    RemoveGroup(&'a str),
    Assign(&'a str),
}

/// What a bulk action applies to.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// These clients.
    Ids(&'a [DocId]),
    /// Every client the filter matches (a filter that names nothing needs `all`).
    Filter {
        /// The filter.
        filter: &'a Filter,
        /// Confirms that an empty filter means every client.
        all: bool,
    },
}

fn parse_action<'a>(action: &str, value: Option<&'a str>) -> Result<Action<'a>, AppError> {
    let need = |what: &str| {
        value
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| AppError::BadInput(format!("{action} needs a {what}")))
    };
    Ok(match action {
        "archive" => Action::State("archived"),
        "trash" => Action::State("trashed"),
        "restore" => Action::State("active"),
        "add-group" => Action::AddGroup(need("group")?),
        "remove-group" => Action::RemoveGroup(need("group")?),
        "assign" => Action::Assign(need("employee")?),
        other => {
            return Err(AppError::BadInput(format!(
                "unknown bulk action {other:?}; actions: archive, trash, restore, add-group, remove-group, assign"
            )));
        }
    })
}

/// True when a filter names nothing, so it would select every client.
fn is_empty(f: &Filter) -> bool {
    f.text.as_deref().is_none_or(|t| t.trim().is_empty())
        && f.company.is_none()
        && f.state.is_none()
        && f.group.is_none()
        && f.centre.is_none()
        && f.origin.is_none()
        && f.since.is_none()
        && f.until.is_none()
}

impl Replica {
    /// The summary of one client, from the list index (no document is loaded).
    fn summary_of(&self, id: DocId) -> Result<ClientSummary, AppError> {
        let index = self.store.index()?;
        let bytes = index.and_then(|i| i.summary(&id).transpose()).transpose()?;
        match bytes {
            Some(b) => Ok(crate::listing::decode_summary(&id, &b)?),
            None => Err(AppError::Store(StoreError::UnknownDoc(id))),
        }
    }

    /// Why `c` may not move to `state` now, if it may not: a tombstone, or (for a reactivation
    /// without `force`) a likely duplicate among `active`.
    fn refusal(
        c: &ClientSummary,
        state: &str,
        force: bool,
        active: &BTreeMap<(&'static str, String), Vec<ClientSummary>>,
    ) -> Option<String> {
        if TOMBSTONES.contains(&c.state.as_str()) {
            let why = match c.merged_into {
                Some(into) => format!("was merged into {into}"),
                None => format!("is {}", c.state),
            };
            return Some(format!(
                "{} {:?} {why}: it keeps its history but cannot change state",
                c.id, c.name
            ));
        }
        if state != "active" || c.state == "active" || force {
            return None;
        }
        let mut clashes: Vec<String> = Vec::new();
        for (kind, key) in keys(c) {
            for other in active.get(&(kind, key)).into_iter().flatten() {
                let dismissed =
                    c.not_duplicates.contains(&other.id) || other.not_duplicates.contains(&c.id);
                if other.id != c.id && !dismissed {
                    let clash = format!(
                        "{} {:?} in {} (same {kind})",
                        other.id, other.name, other.company
                    );
                    if !clashes.contains(&clash) {
                        clashes.push(clash);
                    }
                }
            }
        }
        (!clashes.is_empty()).then(|| {
            format!(
                "{} {:?} was not reactivated: it may be the same person as active {}; merge them with `ficha duplicates merge`, or reactivate with --force after checking",
                c.id,
                c.name,
                clashes.join("; ")
            )
        })
    }

    /// Every active client of every company this replica sees, by duplicate key.
    fn active_by_key(
        &self,
    ) -> Result<BTreeMap<(&'static str, String), Vec<ClientSummary>>, AppError> {
        let mut out: BTreeMap<(&'static str, String), Vec<ClientSummary>> = BTreeMap::new();
        for c in self.query(&Filter {
            state: Some("active".into()),
            ..Filter::default()
        })? {
            for key in keys(&c) {
                out.entry(key).or_default().push(c.clone());
            }
        }
        Ok(out)
    }

    /// Moves a client to active, archived or trashed, with the lifecycle's rules (`force`
    /// skips the duplicate check of a reactivation, never the others).
    pub fn set_state(&self, id: DocId, state: &str, force: bool) -> Result<(), AppError> {
        if !SETTABLE.contains(&state) {
            return Err(AppError::BadInput(format!(
                "{state:?} is not a state a client can be moved to: use {}",
                SETTABLE.join(", ")
            )));
        }
        let c = self.summary_of(id)?;
        let active = if state == "active" && !force {
            self.active_by_key()?
        } else {
            BTreeMap::new()
        };
        if let Some(why) = Self::refusal(&c, state, force, &active) {
            return Err(AppError::Conflict(why));
        }
        self.logged(id, state, &format!("state set to {state}"), |d| {
            Ok(ficha_domain::set_state(d, state, now_ms())?)
        })
    }

    /// Reactivates an archived or trashed client (see [`Replica::set_state`]).
    pub fn reactivate(&self, id: DocId, force: bool) -> Result<(), AppError> {
        self.set_state(id, "active", force)
    }

    /// Applies one action to every selected client, or to none: every target is checked
    /// first (unknown ids, tombstones, likely duplicates of a reactivation), then all change
    /// in one transaction. Returns how many clients it applied to.
    pub fn bulk(
        &self,
        selection: Selection<'_>,
        action: &str,
        value: Option<&str>,
        force: bool,
    ) -> Result<usize, AppError> {
        self.require(super::Role::Admin)?;
        let action = parse_action(action, value)?;
        let targets: Vec<ClientSummary> = match selection {
            Selection::Ids([]) => {
                return Err(AppError::BadInput(
                    "name the clients: --ids A,B, a filter, or --all for every client".into(),
                ));
            }
            Selection::Ids(ids) => {
                let mut found = Vec::new();
                let mut unknown = Vec::new();
                for id in ids.iter().collect::<BTreeSet<_>>() {
                    match self.summary_of(*id) {
                        Ok(c) => found.push(c),
                        Err(AppError::Store(StoreError::UnknownDoc(_))) => {
                            unknown.push(id.to_string())
                        }
                        Err(e) => return Err(e),
                    }
                }
                if !unknown.is_empty() {
                    return Err(AppError::NotFound(format!(
                        "nothing was changed: no client {}",
                        unknown.join(", ")
                    )));
                }
                found
            }
            Selection::Filter { filter, all } => {
                if is_empty(filter) && !all {
                    return Err(AppError::BadInput(
                        "this would change every client: pass --all (\"all\": true) to confirm, or narrow it with a filter or --ids".into(),
                    ));
                }
                self.query(filter)?
            }
        };
        if let Action::State(state) = action {
            let mut active = if state == "active" && !force {
                self.active_by_key()?
            } else {
                BTreeMap::new()
            };
            let mut refused = Vec::new();
            for c in &targets {
                match Self::refusal(c, state, force, &active) {
                    Some(why) => refused.push(why),
                    // Two of the targets may be the same person as each other, too.
                    None if state == "active" && !force => {
                        for key in keys(c) {
                            active.entry(key).or_default().push(c.clone());
                        }
                    }
                    None => {}
                }
            }
            if !refused.is_empty() {
                return Err(AppError::Conflict(format!(
                    "nothing was changed: {}",
                    refused.join("; ")
                )));
            }
        }
        let batch = self.batch()?;
        for c in &targets {
            let id = DocId::from(c.id);
            let (kind, text) = match action {
                Action::State(s) => (s.to_string(), format!("state set to {s}")),
                Action::AddGroup(g) => ("group_added".into(), g.to_string()),
                Action::RemoveGroup(g) => ("group_removed".into(), g.to_string()),
                Action::Assign(e) => ("field_set".into(), format!("assigned_employee = {e}")),
            };
            batch.edit_doc(
                id,
                logged(self.who(), kind, text, |d| {
                    match action {
                        Action::State(s) => ficha_domain::set_state(d, s, now_ms())?,
                        Action::AddGroup(g) => ficha_domain::add_group(d, g)?,
                        Action::RemoveGroup(g) => ficha_domain::remove_group(d, g)?,
                        Action::Assign(e) => {
                            ficha_domain::set_field(d, "assigned_employee", e, now_ms())?
                        }
                    }
                    Ok(())
                }),
            )?;
        }
        self.commit(batch)?;
        Ok(targets.len())
    }
}
