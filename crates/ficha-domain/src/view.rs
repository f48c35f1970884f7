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
    /// Its category, if given.
    #[serde(default)]
    pub category: Option<String>,
    /// Its keywords, sorted.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Ids of the client's file items attached to it.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Shown first.
    #[serde(default)]
    pub pinned: bool,
    /// Shown (false once deactivated).
    #[serde(default)]
    pub active: bool,
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
    /// The appointment it is about, if any.
    #[serde(default)]
    pub appointment: Option<String>,
    /// Ids of the client's file items attached to it.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Shown (false once deactivated).
    #[serde(default)]
    pub active: bool,
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
    /// active, archived, trashed or merged.
    pub state: String,
    /// The survivor, when this record was merged into another.
    pub merged_into: Option<String>,
    /// Archived, but edited after (or concurrently with) the archiving.
    pub edited_while_archived: bool,
    /// When it was trashed (ms), if it is.
    pub trashed_at: Option<i64>,
    /// General and personal data (first_name, tax_id, birth_date, …), null when unset.
    pub profile: BTreeMap<String, Option<String>>,
    /// Free-text additional information.
    pub additional_info: String,
    /// Client groups, sorted.
    pub groups: Vec<String>,
    /// The activity log (bitácora), oldest first.
    pub log: Vec<LogEntry>,
    /// Emails, phones, addresses, allergies, skin tests, reviews, contacts, files.
    #[serde(flatten)]
    pub sections: serde_json::Map<String, serde_json::Value>,
}

/// One entry of the activity log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its id.
    pub id: String,
    /// When (ms).
    pub at: i64,
    /// Who (replica or person).
    pub who: String,
    /// What kind of event (note_added, contact, archived…).
    pub kind: String,
    /// Details.
    pub text: String,
    /// The replica it was done on (absent on entries from before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// The employee who did it, if one was signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    /// That employee's name at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_name: Option<String>,
    /// The field a `field_set` changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The value it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
}

/// What lists show and search without loading the record.
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
    /// active, archived or trashed.
    #[serde(default)]
    pub state: String,
    /// Main email.
    #[serde(default)]
    pub email: Option<String>,
    /// Main phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Tax id.
    #[serde(default)]
    pub tax_id: Option<String>,
    /// Client code.
    #[serde(default)]
    pub code: Option<String>,
    /// Client groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Home centre.
    #[serde(default)]
    pub home_centre: Option<String>,
    /// Origin.
    #[serde(default)]
    pub origin: Option<String>,
    /// Birth date (YYYY-MM-DD).
    #[serde(default)]
    pub birth_date: Option<String>,
    /// The survivor, when this record was merged into another.
    #[serde(default)]
    pub merged_into: Option<Uuid>,
    /// Records a person said are not duplicates of this one.
    #[serde(default)]
    pub not_duplicates: Vec<Uuid>,
    /// The import batch that created it, if any.
    #[serde(default)]
    pub import_batch: Option<String>,
    /// Number of reviews.
    #[serde(default)]
    pub reviews: u32,
    /// Sum of review ratings.
    #[serde(default)]
    pub rating_sum: u32,
    /// When the client entered its current state (ms since epoch), if recorded.
    #[serde(default)]
    pub state_at: Option<i64>,
    /// When the client was created (ms since epoch).
    #[serde(default)]
    pub created_at: i64,
}

/// A typed error when the document is another kind of record.
fn must_be_client(doc: &impl ReadDoc) -> Result<(), DomainError> {
    match crate::record::kind_of(doc)? {
        k if k == "client" => Ok(()),
        found => Err(DomainError::WrongKind {
            expected: "a client".into(),
            found: format!("a {found}"),
        }),
    }
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
    must_be_client(doc)?;
    let s = |obj: &ObjId, k: &str| -> Result<String, DomainError> {
        Ok(read::string(doc, obj, k)?.unwrap_or_default())
    };
    let mut heads: Vec<String> = doc.get_heads().iter().map(ToString::to_string).collect();
    heads.sort();
    let mut conflicts = BTreeMap::new();
    for field in TEXT_FIELDS.iter().chain(crate::profile::PROFILE_FIELDS) {
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
        archived: is_archived(doc)?,
        created_at: read::int(doc, &ROOT, CREATED_AT)?,
        heads,
        notes: items(doc, NOTES, |id, o, at| {
            let x = crate::annotations::extras(doc, o)?;
            Ok(Note {
                id: id.into(),
                text: s(o, "text")?,
                created_at: at,
                category: x.category,
                keywords: x.keywords,
                attachments: x.attachments,
                pinned: x.pinned,
                active: x.active,
            })
        })?,
        comments: items(doc, COMMENTS, |id, o, at| {
            let x = crate::annotations::extras(doc, o)?;
            Ok(Comment {
                id: id.into(),
                text: s(o, "text")?,
                private: read::boolean(doc, o, "private")?,
                pinned: x.pinned,
                priority: s(o, "priority")?,
                created_at: at,
                appointment: x.appointment,
                attachments: x.attachments,
                active: x.active,
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
        state: read::string(doc, &ROOT, "state")?.unwrap_or_else(|| "active".into()),
        merged_into: read::string(doc, &ROOT, "merged_into")?,
        edited_while_archived: crate::profile::edited_while_archived(doc)?,
        trashed_at: doc
            .get(ROOT, "trashed_at")?
            .map(|_| read::int(doc, &ROOT, "trashed_at"))
            .transpose()?,
        profile: crate::profile::PROFILE_FIELDS
            .iter()
            .map(|f| Ok(((*f).to_string(), read::string(doc, &ROOT, f)?)))
            .collect::<Result<_, DomainError>>()?,
        additional_info: s(&ROOT, crate::profile::ADDITIONAL_INFO)?,
        groups: read::flags(doc, &ROOT, "groups")?,
        log: log_entries(doc)?,
        sections: crate::sections::view_sections(doc)?,
    })
}

fn log_entries(doc: &Automerge) -> Result<Vec<LogEntry>, DomainError> {
    let Some(log) = read::map(doc, &ROOT, "log")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for id in doc.keys(&log) {
        if let Some(e) = read::map(doc, &log, &id)? {
            out.push(LogEntry {
                at: read::int(doc, &e, "at")?,
                who: read::string(doc, &e, "who")?.unwrap_or_default(),
                kind: read::string(doc, &e, "kind")?.unwrap_or_default(),
                text: read::string(doc, &e, "text")?.unwrap_or_default(),
                replica: read::string(doc, &e, "replica")?,
                employee_id: read::string(doc, &e, "employee_id")?,
                employee_name: read::string(doc, &e, "employee_name")?,
                field: read::string(doc, &e, "field")?,
                old: read::string(doc, &e, "old")?,
                id,
            });
        }
    }
    out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    Ok(out)
}

/// `state` is the one register of the lifecycle; `archived` is derived from it so that
/// concurrent changes can never leave the two disagreeing (documents older than `state`
/// fall back to their `archived` flag).
fn is_archived(doc: &impl ReadDoc) -> Result<bool, DomainError> {
    match read::string(doc, &ROOT, "state")? {
        Some(state) => Ok(state == "archived"),
        None => read::boolean(doc, &ROOT, ARCHIVED),
    }
}

/// Groups a summary keeps at most: a record's own groups are few, and the summary (and so the
/// list index derived from it) must stay bounded whatever another replica wrote.
pub const MAX_SUMMARY_GROUPS: usize = 64;

/// Reads only what lists need. Every text is cut to its field's length, so what another
/// replica wrote (bypassing the checks of this one) costs lists and their index no more than
/// a record written here.
pub fn summary(doc: &impl ReadDoc) -> Result<ClientSummary, DomainError> {
    must_be_client(doc)?;
    use crate::limits::{CODE, EMAIL, NAME, PHONE, SHORT, truncate};
    let id = required(doc, ID)?;
    let text = |k: &str, max: usize| -> Result<Option<String>, DomainError> {
        Ok(read::string(doc, &ROOT, k)?.map(|v| truncate(&v, max).to_string()))
    };
    let (mut reviews, mut rating_sum) = (0u32, 0u32);
    if let Some(list) = read::map(doc, &ROOT, "reviews")? {
        for key in doc.keys(&list) {
            if let Some(r) = read::map(doc, &list, &key)? {
                reviews = reviews.saturating_add(1);
                let rating = u32::try_from(read::int(doc, &r, "rating")?.clamp(0, 5)).unwrap_or(0);
                rating_sum = rating_sum.saturating_add(rating);
            }
        }
    }
    let mut groups = read::flags(doc, &ROOT, "groups")?;
    groups.truncate(MAX_SUMMARY_GROUPS);
    for g in &mut groups {
        *g = truncate(g, SHORT).to_string();
    }
    Ok(ClientSummary {
        id: Uuid::parse_str(&id).map_err(|e| DomainError::NotAClient(format!("bad id: {e}")))?,
        company: required(doc, COMPANY)?,
        name: truncate(&required(doc, "name")?, NAME).to_string(),
        archived: is_archived(doc)?,
        state: text("state", SHORT)?.unwrap_or_else(|| "active".into()),
        email: text("email", EMAIL)?,
        phone: text("phone", PHONE)?,
        tax_id: text("tax_id", CODE)?,
        code: text("code", CODE)?,
        groups,
        home_centre: text("home_centre", SHORT)?,
        origin: text("origin", SHORT)?,
        birth_date: text("birth_date", CODE)?,
        import_batch: text("import_batch", CODE)?,
        merged_into: crate::merge::merged_into(doc)?,
        not_duplicates: read::flags(doc, &ROOT, "not_duplicates")?
            .iter()
            .take(MAX_SUMMARY_GROUPS)
            .filter_map(|s| Uuid::parse_str(s).ok())
            .collect(),
        reviews,
        rating_sum,
        created_at: read::int(doc, &ROOT, CREATED_AT)?,
        state_at: match read::int_opt(doc, &ROOT, "state_at")? {
            Some(t) => Some(t),
            None => read::int_opt(doc, &ROOT, "trashed_at")?,
        },
    })
}
