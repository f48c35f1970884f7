//! Purging a trashed client once its retention period is over: the personal data leaves the
//! document's current state on every replica; the record stays as a tombstone that says who
//! purged it, when and where, so the purge itself is on the record.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};

use crate::error::DomainError;
use crate::read;
use crate::schema::{ALERTS, COMMENTS, NOTES};

/// The name a purged client shows.
pub const PURGED_NAME: &str = "(purged)";

/// Days a trashed client is kept before `trash purge` may remove its data.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// Every collection whose items hold personal data.
fn collections() -> impl Iterator<Item = &'static str> {
    [NOTES, COMMENTS, ALERTS, "groups"]
        .into_iter()
        .chain(crate::sections::SECTIONS.iter().map(|s| s.name))
}

/// Removes the client's personal data and marks it purged. Log entries keep who did what and
/// when, but lose their texts (which may quote the data).
pub fn purge(doc: &mut AutoCommit, now_ms: i64) -> Result<(), DomainError> {
    doc.put(ROOT, "name", PURGED_NAME)?;
    let scalars = [
        "email",
        "phone",
        crate::profile::ADDITIONAL_INFO,
        "archived_known",
    ];
    for key in scalars
        .into_iter()
        .chain(crate::profile::PROFILE_FIELDS.iter().copied())
    {
        if doc.get(ROOT, key)?.is_some() {
            doc.delete(ROOT, key)?;
        }
    }
    for list in collections() {
        if let Some(map) = read::map(doc, &ROOT, list)? {
            let keys: Vec<String> = doc.keys(&map).collect();
            for k in keys {
                doc.delete(&map, k.as_str())?;
            }
        }
    }
    if let Some(log) = read::map(doc, &ROOT, "log")? {
        let ids: Vec<String> = doc.keys(&log).collect();
        for id in ids {
            if let Some(entry) = read::map(doc, &log, &id)? {
                doc.put(&entry, "text", "")?;
            }
        }
    }
    doc.put(ROOT, "state", "purged")?;
    doc.put(ROOT, "state_at", now_ms)?;
    Ok(())
}

/// True when a purged client holds data again: an edit made on a branch that had not heard of
/// the purge merged in after it. Purging again removes it.
pub fn has_residue(doc: &impl ReadDoc) -> Result<bool, DomainError> {
    if read::string(doc, &ROOT, "name")?.as_deref() != Some(PURGED_NAME) {
        return Ok(true);
    }
    for key in ["email", "phone"] {
        if doc.get(ROOT, key)?.is_some() {
            return Ok(true);
        }
    }
    for list in collections() {
        if let Some(map) = read::map(doc, &ROOT, list)?
            && doc.length(&map) > 0
        {
            return Ok(true);
        }
    }
    if let Some(log) = read::map(doc, &ROOT, "log")? {
        for id in doc.keys(&log) {
            if let Some(entry) = read::map(doc, &log, &id)?
                && !read::string(doc, &entry, "text")?
                    .unwrap_or_default()
                    .is_empty()
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
