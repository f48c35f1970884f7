//! The client's own fields beyond name, email and phone; groups; lifecycle; activity log.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};
use uuid::Uuid;

use crate::actor::Actor;
use crate::error::DomainError;
use crate::read;
use crate::sections::check_date;

/// Scalar fields of the general and personal data, each its own register.
pub const PROFILE_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "legal_name",
    "tax_id",
    "birth_date",
    "gender",
    "preferred_language",
    "origin",
    "home_centre",
    "assigned_employee",
    "code",
];

/// The free-text field, stored as Automerge text.
pub const ADDITIONAL_INFO: &str = "additional_info";

/// Lifecycle states.
pub const STATES: &[&str] = &["active", "archived", "trashed"];

/// Checks a profile field's value.
pub fn check(field: &str, value: &str) -> Result<(), DomainError> {
    match field {
        "birth_date" if !value.is_empty() => check_date(field, value),
        "gender" if !["female", "male", "other", "unspecified", ""].contains(&value) => {
            Err(DomainError::InvalidValue {
                field: field.into(),
                reason: "must be female, male, other or unspecified".into(),
            })
        }
        _ => Ok(()),
    }
}

/// Replaces the additional information text (a diff, so concurrent edits merge).
pub fn set_additional_info(doc: &mut AutoCommit, value: &str) -> Result<(), DomainError> {
    match read::text_obj(doc, &ROOT, ADDITIONAL_INFO)? {
        Some(t) => doc.update_text(&t, value)?,
        None => {
            let t = doc.put_object(ROOT, ADDITIONAL_INFO, ObjType::Text)?;
            doc.splice_text(&t, 0, 0, value)?;
        }
    }
    Ok(())
}

/// Adds the client to a group (a set: concurrent additions all survive).
pub fn add_group(doc: &mut AutoCommit, group: &str) -> Result<(), DomainError> {
    let group = group.trim();
    crate::limits::check_line("group", group)?;
    if group.is_empty() {
        return Err(DomainError::InvalidValue {
            field: "group".into(),
            reason: "must not be empty".into(),
        });
    }
    let groups = match read::map(doc, &ROOT, "groups")? {
        Some(g) => g,
        None => doc.put_object(ROOT, "groups", ObjType::Map)?,
    };
    doc.put(&groups, group, true)?;
    Ok(())
}

/// Removes the client from a group.
pub fn remove_group(doc: &mut AutoCommit, group: &str) -> Result<(), DomainError> {
    if let Some(groups) = read::map(doc, &ROOT, "groups")? {
        doc.delete(&groups, group)?;
    }
    Ok(())
}

/// Moves the client to `state` (active, archived or trashed).
pub fn set_state(doc: &mut AutoCommit, state: &str, now_ms: i64) -> Result<(), DomainError> {
    if !STATES.contains(&state) {
        return Err(DomainError::InvalidValue {
            field: "state".into(),
            reason: format!("{state:?} is not one of: {}", STATES.join(", ")),
        });
    }
    doc.put(ROOT, "state", state)?;
    doc.put(ROOT, "state_at", now_ms)?;
    if state == "archived" {
        // Remember what had happened when the client was archived: any log entry outside this
        // set — a later edit, or one made concurrently on a branch that had not heard of the
        // archive — means the client was edited while archived.
        let known: Vec<String> = match read::map(doc, &ROOT, "log")? {
            Some(log) => doc.keys(&log).collect(),
            None => Vec::new(),
        };
        let seen = doc.put_object(ROOT, "archived_known", ObjType::Map)?;
        for id in known {
            doc.put(&seen, id, true)?;
        }
    }
    if state == "trashed" {
        doc.put(ROOT, "trashed_at", now_ms)?;
    }
    Ok(())
}

/// Appends an entry to the activity log (bitácora), naming the replica and the employee.
/// There is no way to remove one.
pub fn log_event(
    doc: &mut AutoCommit,
    id: Uuid,
    who: &Actor,
    kind: &str,
    text: &str,
    now_ms: i64,
) -> Result<(), DomainError> {
    crate::limits::check_line("kind", kind)?;
    crate::record::log(doc, id, who, kind, text, None, now_ms)
}

/// Logs a field change with the value it replaced.
pub fn log_field(
    doc: &mut AutoCommit,
    id: Uuid,
    who: &Actor,
    field: &str,
    old: Option<&str>,
    now_ms: i64,
) -> Result<(), DomainError> {
    let new = field_value(doc, field)?.unwrap_or_default();
    let text = format!("{field} = {new}");
    crate::record::log(doc, id, who, "field_set", &text, Some((field, old)), now_ms)
}

/// The current value of a client's scalar field (name, email, phone, profile fields).
pub fn field_value(doc: &impl ReadDoc, field: &str) -> Result<Option<String>, DomainError> {
    read::string(doc, &ROOT, field)
}

/// Log entry kinds that do not count as editing the client.
const NOT_EDITS: &[&str] = &["archived", "active", "trashed", "merged", "not_duplicate"];

/// True when the client is archived and its log holds an edit the archiving branch did not know.
pub fn edited_while_archived(doc: &impl ReadDoc) -> Result<bool, DomainError> {
    if read::string(doc, &ROOT, "state")?.as_deref() != Some("archived") {
        return Ok(false);
    }
    let (Some(log), Some(known)) = (
        read::map(doc, &ROOT, "log")?,
        read::map(doc, &ROOT, "archived_known")?,
    ) else {
        return Ok(false);
    };
    for id in doc.keys(&log) {
        if doc.get(&known, id.as_str())?.is_some() {
            continue;
        }
        if let Some(entry) = read::map(doc, &log, &id)?
            && !NOT_EDITS.contains(
                &read::string(doc, &entry, "kind")?
                    .unwrap_or_default()
                    .as_str(),
            )
        {
            return Ok(true);
        }
    }
    Ok(false)
}
