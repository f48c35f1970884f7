//! Edits of a client record. None commits: the store commits once per user action.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT};
use uuid::Uuid;

use crate::error::DomainError;
use crate::kinds::{AlertPriority, Priority};
use crate::read;
use crate::schema::*;

fn collection(doc: &mut AutoCommit, key: &str) -> Result<ObjId, DomainError> {
    match read::map(doc, &ROOT, key)? {
        Some(id) => Ok(id),
        None => Err(DomainError::NotAClient(format!("missing {key}"))),
    }
}

fn put_text(doc: &mut AutoCommit, obj: &ObjId, key: &str, value: &str) -> Result<(), DomainError> {
    let text = doc.put_object(obj, key, ObjType::Text)?;
    doc.splice_text(&text, 0, 0, value)?;
    Ok(())
}

fn new_item(doc: &mut AutoCommit, list: &str, id: Uuid, now_ms: i64) -> Result<ObjId, DomainError> {
    let parent = collection(doc, list)?;
    let item = doc.put_object(&parent, id.to_string(), ObjType::Map)?;
    doc.put(&item, "created_at", now_ms)?;
    Ok(item)
}

fn non_empty(field: &str, value: &str) -> Result<(), DomainError> {
    crate::limits::check(field, value)?;
    if value.trim().is_empty() {
        return Err(DomainError::InvalidValue {
            field: field.into(),
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}

fn check_field(field: &str, value: &str) -> Result<(), DomainError> {
    crate::limits::check_line(field, value)?;
    match field {
        "name" => non_empty(field, value),
        "email" if !value.is_empty() && !value.contains('@') => Err(DomainError::InvalidValue {
            field: field.into(),
            reason: format!("{value:?} is not an email address"),
        }),
        _ => Ok(()),
    }
}

/// Initialises an empty document as a client record.
pub fn new_client(
    doc: &mut AutoCommit,
    id: Uuid,
    company: &str,
    name: &str,
    email: Option<&str>,
    phone: Option<&str>,
    now_ms: i64,
) -> Result<(), DomainError> {
    check_field("name", name)?;
    doc.put(ROOT, SCHEMA, SCHEMA_VERSION)?;
    doc.put(ROOT, crate::record::KIND, "client")?;
    doc.put(ROOT, crate::record::KIND_VERSION, 1)?;
    doc.put(ROOT, ID, id.to_string())?;
    doc.put(ROOT, COMPANY, company)?;
    doc.put(ROOT, CREATED_AT, now_ms)?;
    doc.put(ROOT, "name", name)?;
    if let Some(e) = email {
        check_field("email", e)?;
        doc.put(ROOT, "email", e)?;
    }
    if let Some(p) = phone {
        check_field("phone", p)?;
        doc.put(ROOT, "phone", p)?;
    }
    doc.put(ROOT, "state", "active")?;
    // Every collection is created here, by the one replica that creates the client: two
    // replicas creating the same map concurrently would leave one map hiding the other.
    let sections = crate::sections::SECTIONS.iter().map(|s| s.name);
    let others = [NOTES, COMMENTS, ALERTS, "groups", "log", "not_duplicates"];
    for list in others.into_iter().chain(sections) {
        doc.put_object(ROOT, list, ObjType::Map)?;
    }
    Ok(())
}

/// Sets one scalar field; each field is its own register, so concurrent edits of different
/// fields never interfere. `now_ms` dates a change of state.
pub fn set_field(
    doc: &mut AutoCommit,
    field: &str,
    value: &str,
    now_ms: i64,
) -> Result<(), DomainError> {
    if crate::profile::PROFILE_FIELDS.contains(&field) {
        crate::limits::check_line(field, value)?;
        crate::profile::check(field, value)?;
        doc.put(ROOT, field, value)?;
        return Ok(());
    }
    if field == crate::profile::ADDITIONAL_INFO {
        crate::limits::check(field, value)?;
        return crate::profile::set_additional_info(doc, value);
    }
    if field == "state" {
        return crate::profile::set_state(doc, value, now_ms);
    }
    if field == ARCHIVED {
        let archived = value
            .parse::<bool>()
            .map_err(|_| DomainError::InvalidValue {
                field: field.into(),
                reason: "must be true or false".into(),
            })?;
        return set_archived(doc, archived, now_ms);
    }
    if !TEXT_FIELDS.contains(&field) {
        return Err(DomainError::UnknownField {
            field: field.into(),
            valid: [
                TEXT_FIELDS,
                crate::profile::PROFILE_FIELDS,
                &[crate::profile::ADDITIONAL_INFO, ARCHIVED, "state"],
            ]
            .concat()
            .join(", "),
        });
    }
    check_field(field, value)?;
    doc.put(ROOT, field, value)?;
    Ok(())
}

/// Archives or reactivates the client.
pub fn set_archived(doc: &mut AutoCommit, archived: bool, now_ms: i64) -> Result<(), DomainError> {
    crate::profile::set_state(doc, if archived { "archived" } else { "active" }, now_ms)
}

/// Adds a note; its body is Automerge text so concurrent edits of it both survive.
pub fn add_note(
    doc: &mut AutoCommit,
    id: Uuid,
    text: &str,
    now_ms: i64,
) -> Result<(), DomainError> {
    non_empty("text", text)?;
    let item = new_item(doc, NOTES, id, now_ms)?;
    put_text(doc, &item, "text", text)
}

/// Adds a comment.
pub fn add_comment(
    doc: &mut AutoCommit,
    id: Uuid,
    text: &str,
    private: bool,
    pinned: bool,
    priority: Priority,
    now_ms: i64,
) -> Result<(), DomainError> {
    non_empty("text", text)?;
    let item = new_item(doc, COMMENTS, id, now_ms)?;
    put_text(doc, &item, "text", text)?;
    doc.put(&item, "private", private)?;
    doc.put(&item, "pinned", pinned)?;
    doc.put(&item, "priority", priority.as_str())?;
    Ok(())
}

/// Adds an active alert.
pub fn add_alert(
    doc: &mut AutoCommit,
    id: Uuid,
    kind: &str,
    priority: AlertPriority,
    description: &str,
    now_ms: i64,
) -> Result<(), DomainError> {
    non_empty("type", kind)?;
    crate::limits::check_line("type", kind)?;
    non_empty("description", description)?;
    let item = new_item(doc, ALERTS, id, now_ms)?;
    doc.put(&item, "type", kind)?;
    doc.put(&item, "priority", priority.as_str())?;
    put_text(doc, &item, "description", description)?;
    doc.put(&item, "active", true)?;
    Ok(())
}
