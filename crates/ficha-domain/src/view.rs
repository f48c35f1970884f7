//! The JSON view of a client record, with conflict information.

use std::collections::BTreeMap;

use automerge::{Automerge, ObjId, ROOT, ReadDoc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;
use crate::read;
use crate::schema::*;

/// A note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Its id.
    pub id: String,
    /// Its body.
    pub text: String,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// Its id.
    pub id: String,
    /// Its body.
    pub text: String,
    /// Visible only to staff.
    pub private: bool,
    /// Shown first.
    pub pinned: bool,
    /// low, normal or high.
    pub priority: String,
    /// Creation time (ms).
    pub created_at: i64,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Its id.
    pub id: String,
    /// What kind of alert.
    #[serde(rename = "type")]
    pub kind: String,
    /// low, normal, high or critical.
    pub priority: String,
    /// What to watch for.
    pub description: String,
    /// Whether it is shown.
    pub active: bool,
    /// Creation time (ms).
    pub created_at: i64,
}

/// The whole client record as people and the API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientView {
    /// The client id.
    pub id: String,
    /// The owning company.
    pub company: String,
    /// Display name.
    pub name: String,
    /// Main email.
    pub email: Option<String>,
    /// Main phone.
    pub phone: Option<String>,
    /// Former client.
    pub archived: bool,
    /// Creation time (ms).
    pub created_at: i64,
    /// Automerge heads, hex, sorted.
    pub heads: Vec<String>,
    /// Notes, oldest first.
    pub notes: Vec<Note>,
    /// Comments, oldest first.
    pub comments: Vec<Comment>,
    /// Alerts, oldest first.
    pub alerts: Vec<Alert>,
    /// For each field edited concurrently, the values that lost (the winner is the field).
    pub conflicts: BTreeMap<String, Vec<String>>,
}

/// What lists show without loading the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSummary {
    /// The client id.
    pub id: Uuid,
    /// The owning company.
    pub company: String,
    /// Display name.
    pub name: String,
    /// Former client.
    pub archived: bool,
}

fn required(doc: &impl ReadDoc, key: &str) -> Result<String, DomainError> {
    read::string(doc, &ROOT, key)?.ok_or_else(|| DomainError::NotAClient(format!("no {key}")))
}

/// Items of a collection, sorted by creation time then id.
fn items<T>(
    doc: &impl ReadDoc,
    key: &str,
    f: impl Fn(&str, &ObjId, i64) -> Result<T, DomainError>,
) -> Result<Vec<T>, DomainError> {
    let Some(list) = read::map(doc, &ROOT, key)? else {
        return Ok(Vec::new());
    };
    let mut keyed = Vec::new();
    for id in doc.keys(&list) {
        if let Some(item) = read::map(doc, &list, &id)? {
            let at = read::int(doc, &item, "created_at")?;
            keyed.push((at, id.clone(), f(&id, &item, at)?));
        }
    }
    keyed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(keyed.into_iter().map(|(_, _, t)| t).collect())
}

/// Reads the whole record (heads included, hence a whole document).
pub fn view(doc: &Automerge) -> Result<ClientView, DomainError> {
    let s = |obj: &ObjId, k: &str| -> Result<String, DomainError> {
        Ok(read::string(doc, obj, k)?.unwrap_or_default())
    };
    let mut heads: Vec<String> = doc.get_heads().iter().map(ToString::to_string).collect();
    heads.sort();
    let mut conflicts = BTreeMap::new();
    for field in TEXT_FIELDS {
        let all = read::all_strings(doc, &ROOT, field)?;
        if all.len() > 1 {
            conflicts.insert((*field).to_string(), all[1..].to_vec());
        }
    }
    Ok(ClientView {
        id: required(doc, ID)?,
        company: required(doc, COMPANY)?,
        name: required(doc, "name")?,
        email: read::string(doc, &ROOT, "email")?,
        phone: read::string(doc, &ROOT, "phone")?,
        archived: read::boolean(doc, &ROOT, ARCHIVED)?,
        created_at: read::int(doc, &ROOT, CREATED_AT)?,
        heads,
        notes: items(doc, NOTES, |id, o, at| {
            Ok(Note {
                id: id.into(),
                text: s(o, "text")?,
                created_at: at,
            })
        })?,
        comments: items(doc, COMMENTS, |id, o, at| {
            Ok(Comment {
                id: id.into(),
                text: s(o, "text")?,
                private: read::boolean(doc, o, "private")?,
                pinned: read::boolean(doc, o, "pinned")?,
                priority: s(o, "priority")?,
                created_at: at,
            })
        })?,
        alerts: items(doc, ALERTS, |id, o, at| {
            Ok(Alert {
                id: id.into(),
                kind: s(o, "type")?,
                priority: s(o, "priority")?,
                description: s(o, "description")?,
                active: read::boolean(doc, o, "active")?,
                created_at: at,
            })
        })?,
        conflicts,
    })
}

/// Reads only what lists need.
pub fn summary(doc: &impl ReadDoc) -> Result<ClientSummary, DomainError> {
    let id = required(doc, ID)?;
    Ok(ClientSummary {
        id: Uuid::parse_str(&id).map_err(|e| DomainError::NotAClient(format!("bad id: {e}")))?,
        company: required(doc, COMPANY)?,
        name: required(doc, "name")?,
        archived: read::boolean(doc, &ROOT, ARCHIVED)?,
    })
}
