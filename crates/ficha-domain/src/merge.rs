//! Merging a duplicate client into a survivor.
//!
//! The survivor keeps its id and its own field values; every item of the other record (notes,
//! comments, alerts, every section, log entries, groups) is copied under its own item id, so
//! copying again is harmless and picks up only what is new. The other record becomes a
//! tombstone (`state = merged`, `merged_into`), and the app re-absorbs it after every sync, so
//! edits that later arrive for the tombstone land on the survivor.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, ObjId, ObjType, ROOT, ReadDoc, Value};
use uuid::Uuid;

use crate::error::DomainError;
use crate::read;

/// Collections whose items are copied into the survivor.
fn collections() -> impl Iterator<Item = &'static str> {
    ["notes", "comments", "alerts", "log"]
        .into_iter()
        .chain(crate::sections::SECTIONS.iter().map(|s| s.name))
}

fn copy_into(
    src: &Automerge,
    from: &ObjId,
    dst: &mut AutoCommit,
    to: &ObjId,
    key: &str,
) -> Result<(), DomainError> {
    match src.get(from, key)? {
        Some((Value::Scalar(s), _)) => {
            dst.put(to, key, s.into_owned())?;
        }
        Some((Value::Object(ObjType::Text), id)) => {
            let t = dst.put_object(to, key, ObjType::Text)?;
            dst.splice_text(&t, 0, 0, &src.text(&id)?)?;
        }
        Some((Value::Object(ObjType::Map), id)) => {
            let m = dst.put_object(to, key, ObjType::Map)?;
            for k in src.keys(&id).collect::<Vec<_>>() {
                copy_into(src, &id, dst, &m, &k)?;
            }
        }
        Some((Value::Object(_), id)) => {
            let l = dst.put_object(to, key, ObjType::List)?;
            for i in 0..src.length(&id) {
                if let Some((Value::Scalar(s), _)) = src.get(&id, i)? {
                    dst.insert(&l, i, s.into_owned())?;
                }
            }
        }
        None => {}
    }
    Ok(())
}

/// Copies into `survivor` every item of `other` it does not hold yet, and fills survivor
/// fields that are empty; returns how many items were copied.
pub fn absorb(survivor: &mut AutoCommit, other: &Automerge) -> Result<usize, DomainError> {
    let mut copied = 0;
    for list in collections() {
        let Some(from) = read::map(other, &ROOT, list)? else {
            continue;
        };
        let to = match read::map(survivor, &ROOT, list)? {
            Some(m) => m,
            None => survivor.put_object(ROOT, list, ObjType::Map)?,
        };
        for key in other.keys(&from).collect::<Vec<_>>() {
            if survivor.get(&to, key.as_str())?.is_none() {
                copy_into(other, &from, survivor, &to, &key)?;
                copied += 1;
            }
        }
    }
    for group in read::flags(other, &ROOT, "groups")? {
        if !read::flags(survivor, &ROOT, "groups")?.contains(&group) {
            crate::profile::add_group(survivor, &group)?;
        }
    }
    let fields = crate::schema::TEXT_FIELDS
        .iter()
        .chain(crate::profile::PROFILE_FIELDS);
    for field in fields {
        if read::string(survivor, &ROOT, field)?.is_none()
            && let Some(v) = read::string(other, &ROOT, field)?
        {
            survivor.put(ROOT, *field, v)?;
        }
    }
    Ok(copied)
}

/// Turns a record into a tombstone pointing at its survivor.
pub fn mark_merged(doc: &mut AutoCommit, into: Uuid) -> Result<(), DomainError> {
    doc.put(ROOT, "state", "merged")?;
    doc.put(ROOT, "merged_into", into.to_string())?;
    Ok(())
}

/// The survivor a tombstone points at, if this record was merged away.
pub fn merged_into(doc: &impl ReadDoc) -> Result<Option<Uuid>, DomainError> {
    Ok(read::string(doc, &ROOT, "merged_into")?.and_then(|s| Uuid::parse_str(&s).ok()))
}

/// Remembers that `other` is not a duplicate of this record.
pub fn mark_not_duplicate(doc: &mut AutoCommit, other: Uuid) -> Result<(), DomainError> {
    let m = match read::map(doc, &ROOT, "not_duplicates")? {
        Some(m) => m,
        None => doc.put_object(ROOT, "not_duplicates", ObjType::Map)?,
    };
    doc.put(&m, other.to_string(), true)?;
    Ok(())
}

/// Records the import batch that created this record (so the batch can be reverted).
pub fn mark_import(doc: &mut AutoCommit, batch: Uuid) -> Result<(), DomainError> {
    doc.put(ROOT, "import_batch", batch.to_string())?;
    Ok(())
}
