//! Editing a client's notes, comments and alerts after they were added: text, category,
//! keywords, pinning, deactivation, an appointment link and attached files. What may change on
//! each is a table, so the CLI and the API take `key=value` pairs for all three alike.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc};

use crate::error::DomainError;
use crate::read;

/// How an editable key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// Automerge text, updated as a diff.
    Body,
    /// A short string register.
    Line,
    /// true / false.
    Bool,
    /// One of a fixed list.
    Enum(&'static [&'static str]),
    /// Comma-separated members of a set (keywords, attached file ids).
    Set,
    /// The id of an appointment record, or empty to unlink.
    Ref,
}

const NOTE: &[(&str, Key)] = &[
    ("text", Key::Body),
    ("category", Key::Line),
    ("keywords", Key::Set),
    ("pinned", Key::Bool),
    ("active", Key::Bool),
    ("attachments", Key::Set),
];
const COMMENT: &[(&str, Key)] = &[
    ("text", Key::Body),
    ("private", Key::Bool),
    ("pinned", Key::Bool),
    ("priority", Key::Enum(&["low", "normal", "high"])),
    ("appointment", Key::Ref),
    ("active", Key::Bool),
    ("attachments", Key::Set),
];
const ALERT: &[(&str, Key)] = &[
    ("type", Key::Line),
    (
        "priority",
        Key::Enum(&["low", "normal", "high", "critical"]),
    ),
    ("description", Key::Body),
    ("active", Key::Bool),
];

fn keys_of(collection: &str) -> Result<&'static [(&'static str, Key)], DomainError> {
    match collection {
        "notes" => Ok(NOTE),
        "comments" => Ok(COMMENT),
        "alerts" => Ok(ALERT),
        other => Err(DomainError::UnknownField {
            field: other.into(),
            valid: "notes, comments, alerts".into(),
        }),
    }
}

/// Changes keys of one note, comment or alert (`collection` is `notes`, `comments` or
/// `alerts`); every value is checked before anything is written.
pub fn edit(
    doc: &mut AutoCommit,
    collection: &str,
    item: &str,
    values: &[(String, String)],
) -> Result<(), DomainError> {
    let keys = keys_of(collection)?;
    let unknown = || DomainError::UnknownItem {
        section: collection.into(),
        item: item.into(),
    };
    let list = read::map(doc, &ROOT, collection)?.ok_or_else(unknown)?;
    let obj = read::map(doc, &list, item)?.ok_or_else(unknown)?;
    let mut checked = Vec::new();
    for (k, v) in values {
        let (name, key) = keys.iter().find(|(n, _)| n == k).copied().ok_or_else(|| {
            DomainError::UnknownField {
                field: k.clone(),
                valid: keys.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            }
        })?;
        check(name, key, v)?;
        checked.push((name, key, v.as_str()));
    }
    for (name, key, v) in checked {
        write(doc, &obj, name, key, v)?;
    }
    Ok(())
}

fn check(name: &str, key: Key, v: &str) -> Result<(), DomainError> {
    let bad = |reason: String| DomainError::InvalidValue {
        field: name.into(),
        reason,
    };
    match key {
        Key::Body => crate::limits::check(name, v),
        Key::Line => crate::limits::check_line(name, v),
        Key::Bool => match v.trim() {
            "true" | "false" => Ok(()),
            _ => Err(bad("must be true or false".into())),
        },
        Key::Enum(values) if values.contains(&v.trim()) => Ok(()),
        Key::Enum(values) => Err(bad(format!("must be one of: {}", values.join(", ")))),
        Key::Set => members(v)
            .iter()
            .try_for_each(|m| crate::limits::check_line(name, m)),
        Key::Ref if v.trim().is_empty() || uuid::Uuid::parse_str(v.trim()).is_ok() => Ok(()),
        Key::Ref => Err(bad(format!("{v:?} is not a record id"))),
    }
}

fn members(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect()
}

fn write(
    doc: &mut AutoCommit,
    obj: &ObjId,
    name: &str,
    key: Key,
    v: &str,
) -> Result<(), DomainError> {
    match key {
        Key::Body => match read::text_obj(doc, obj, name)? {
            Some(t) => doc.update_text(&t, v)?,
            None => {
                let t = doc.put_object(obj, name, ObjType::Text)?;
                doc.splice_text(&t, 0, 0, v)?;
            }
        },
        Key::Line | Key::Enum(_) | Key::Ref => doc.put(obj, name, v.trim())?,
        Key::Bool => doc.put(obj, name, v.trim() == "true")?,
        Key::Set => {
            // Members are keys of the item itself (`keywords/vip`), not of a map made on first
            // use: two replicas making that map at once would each make their own, and one
            // would lose its members in the merge.
            let prefix = format!("{name}/");
            let want = members(v);
            let have: Vec<String> = doc.keys(obj).filter(|k| k.starts_with(&prefix)).collect();
            for old in have.iter().filter(|h| !want.contains(&&h[prefix.len()..])) {
                doc.delete(obj, old.as_str())?;
            }
            for m in want
                .iter()
                .filter(|m| !have.iter().any(|h| &h[prefix.len()..] == **m))
            {
                doc.put(obj, format!("{prefix}{m}"), true)?;
            }
        }
    }
    Ok(())
}

/// The members of a set stored as `name/member` keys, sorted.
fn set(doc: &impl ReadDoc, obj: &ObjId, name: &str) -> Vec<String> {
    let prefix = format!("{name}/");
    let mut out: Vec<String> = doc
        .keys(obj)
        .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
        .collect();
    out.sort();
    out
}

/// The extra keys of an annotation as its view shows them (absent ones at their defaults).
pub fn extras(doc: &impl ReadDoc, obj: &ObjId) -> Result<Extras, DomainError> {
    Ok(Extras {
        category: read::string(doc, obj, "category")?,
        keywords: set(doc, obj, "keywords"),
        attachments: set(doc, obj, "attachments"),
        appointment: read::string(doc, obj, "appointment")?.filter(|s| !s.is_empty()),
        // Items from before deactivation existed have no key: they are active.
        active: !matches!(doc.get(obj, "active")?, Some((automerge::Value::Scalar(s), _)) if matches!(s.as_ref(), automerge::ScalarValue::Boolean(false))),
        pinned: read::boolean(doc, obj, "pinned")?,
    })
}

/// What notes and comments gained: category, keywords, attachments, an appointment link,
/// pinning and deactivation.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Extras {
    /// A note's category.
    pub category: Option<String>,
    /// A note's keywords, sorted.
    pub keywords: Vec<String>,
    /// Ids of the client's file items attached.
    pub attachments: Vec<String>,
    /// A comment's appointment.
    pub appointment: Option<String>,
    /// Shown (false once deactivated).
    pub active: bool,
    /// Shown first.
    pub pinned: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ActorId;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn concurrent_edits_of_one_note_merge_key_by_key_and_bad_values_change_nothing() {
        let mut a = AutoCommit::new().with_actor(ActorId::from(&[1u8; 16][..]));
        crate::new_client(&mut a, uuid::Uuid::nil(), "acme", "Ana", None, None, 0).expect("client");
        let note = uuid::Uuid::from_u128(7);
        crate::add_note(&mut a, note, "Prefiere mañanas", 0).expect("note");
        a.commit();
        let mut b = a.fork().with_actor(ActorId::from(&[2u8; 16][..]));
        let n = note.to_string();
        edit(
            &mut a,
            "notes",
            &n,
            &pairs(&[("pinned", "true"), ("keywords", "horario,vip")]),
        )
        .expect("a");
        edit(
            &mut b,
            "notes",
            &n,
            &pairs(&[("category", "preferencias"), ("keywords", "vip,llamar")]),
        )
        .expect("b");
        a.merge(&mut b).expect("merge");
        let v = crate::view(a.document()).expect("view");
        let got = &v.notes[0];
        assert!(got.pinned && got.active);
        assert_eq!(got.category.as_deref(), Some("preferencias"));
        // Both additions survive; "vip" was in both.
        assert_eq!(got.keywords, ["horario", "llamar", "vip"]);
        edit(&mut a, "notes", &n, &pairs(&[("active", "false")])).expect("deactivate");
        assert!(!crate::view(a.document()).expect("view").notes[0].active);

        let before = a.get_heads();
        assert!(edit(&mut a, "notes", &n, &pairs(&[("pinned", "yes")])).is_err());
        assert!(edit(&mut a, "notes", &n, &pairs(&[("colour", "red")])).is_err());
        assert!(
            edit(&mut a, "comments", &n, &pairs(&[("pinned", "true")])).is_err(),
            "not a comment"
        );
        assert!(
            edit(
                &mut a,
                "notes",
                &n,
                &pairs(&[("category", "ok"), ("active", "maybe")])
            )
            .is_err(),
            "one bad value refuses the whole edit"
        );
        a.commit();
        assert_eq!(a.get_heads(), before, "nothing was written");
    }
}
