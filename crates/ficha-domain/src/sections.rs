//! The collections of the client file, each described once as a table of typed fields.
//!
//! Every item lives in a map keyed by its UUID (concurrent additions all survive); every field
//! of an item is its own register; bodies are Automerge text. Clinically relevant sections
//! (alerts, allergies, skin tests) cannot be deleted, only deactivated.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::DomainError;
use crate::read;

/// How a field is stored and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A short string register.
    Str,
    /// Automerge text (concurrent edits merge).
    Body,
    /// true / false.
    Bool,
    /// YYYY-MM-DD.
    Date,
    /// One of a fixed list.
    Enum(&'static [&'static str]),
    /// An integer from 1 to 5.
    Rating,
    /// Comma-separated list stored as a list of strings.
    List,
}

/// One field of a section.
pub struct Field {
    /// Its key.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Must be given when the item is created.
    pub required: bool,
}

const fn f(name: &'static str, kind: Kind, required: bool) -> Field {
    Field {
        name,
        kind,
        required,
    }
}

/// A collection of the client file.
pub struct Section {
    /// Its key in the document and in the JSON view.
    pub name: &'static str,
    /// Its fields.
    pub fields: &'static [Field],
    /// Items are deactivated, never deleted.
    pub clinical: bool,
    /// At most one item per `kind` may be primary.
    pub has_primary: bool,
}

const CONTACT_KINDS: &[&str] = &["personal", "work", "mobile", "other"];

/// Every section beyond notes, comments and alerts (which keep their own functions).
pub const SECTIONS: &[Section] = &[
    Section {
        name: "emails",
        clinical: false,
        has_primary: true,
        fields: &[
            f("value", Kind::Str, true),
            f("kind", Kind::Enum(CONTACT_KINDS), false),
            f("opt_out", Kind::Bool, false),
            f("invalid", Kind::Bool, false),
            f("primary", Kind::Bool, false),
        ],
    },
    Section {
        name: "phones",
        clinical: false,
        has_primary: true,
        fields: &[
            f("value", Kind::Str, true),
            f("kind", Kind::Enum(CONTACT_KINDS), false),
            f("opt_out", Kind::Bool, false),
            f("invalid", Kind::Bool, false),
            f("primary", Kind::Bool, false),
        ],
    },
    Section {
        name: "addresses",
        clinical: false,
        has_primary: true,
        fields: &[
            f("kind", Kind::Enum(&["billing", "shipping", "other"]), true),
            f("line1", Kind::Str, true),
            f("line2", Kind::Str, false),
            f("city", Kind::Str, false),
            f("region", Kind::Str, false),
            f("postal_code", Kind::Str, false),
            f("country", Kind::Str, false),
            f("primary", Kind::Bool, false),
        ],
    },
    Section {
        name: "allergies",
        clinical: true,
        has_primary: false,
        fields: &[
            f("type", Kind::Str, true),
            f(
                "severity",
                Kind::Enum(&["low", "moderate", "severe", "life_threatening"]),
                true,
            ),
            f("symptoms", Kind::Body, false),
            f("notes", Kind::Body, false),
            f("diagnosed_on", Kind::Date, false),
            f("active", Kind::Bool, false),
        ],
    },
    Section {
        name: "skin_tests",
        clinical: true,
        has_primary: false,
        fields: &[
            f("status", Kind::Enum(crate::skin::STAGES), false),
            f("performed_on", Kind::Date, false),
            f("expires_on", Kind::Date, false),
            f("responsible", Kind::Str, false),
            f("description", Kind::Body, false),
            f("active", Kind::Bool, false),
        ],
    },
    Section {
        name: "reviews",
        clinical: false,
        has_primary: false,
        fields: &[
            f("rating", Kind::Rating, true),
            f("text", Kind::Body, false),
            f("date", Kind::Date, false),
            f("source", Kind::Str, false),
        ],
    },
    Section {
        name: "contacts",
        clinical: false,
        has_primary: false,
        fields: &[
            f("name", Kind::Str, true),
            f("role", Kind::Str, false),
            f("email", Kind::Str, false),
            f("phone", Kind::Str, false),
        ],
    },
    Section {
        name: "files",
        clinical: false,
        has_primary: false,
        fields: &[
            f("hash", Kind::Str, true),
            f("name", Kind::Str, true),
            f("mime", Kind::Str, false),
            f("kind", Kind::Enum(&["image", "file"]), false),
            f("size", Kind::Str, false),
        ],
    },
];

/// The section called `name`.
pub fn section(name: &str) -> Result<&'static Section, DomainError> {
    SECTIONS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| DomainError::UnknownField {
            field: name.to_string(),
            valid: SECTIONS
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn invalid(field: &str, reason: impl Into<String>) -> DomainError {
    DomainError::InvalidValue {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks a YYYY-MM-DD date (a real calendar day).
pub fn check_date(field: &str, v: &str) -> Result<(), DomainError> {
    let parts: Vec<&str> = v.split('-').collect();
    let nums: Option<Vec<u32>> = parts.iter().map(|p| p.parse().ok()).collect();
    let ok = match (parts.as_slice(), nums.as_deref()) {
        ([y, m, d], Some([yy, mm, dd])) if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            let leap = (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0;
            let days = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            (1..=12).contains(mm) && *dd >= 1 && *dd <= days[(*mm - 1) as usize]
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(field, format!("{v:?} is not a date (YYYY-MM-DD)")))
    }
}

fn put_field(
    doc: &mut AutoCommit,
    section: &str,
    item: &ObjId,
    field: &Field,
    value: &str,
) -> Result<(), DomainError> {
    let name = field.name;
    let qualified = format!("{section}.{name}");
    match field.kind {
        Kind::Body => crate::limits::check(name, value)?,
        _ => crate::limits::check_line(&qualified, value)?,
    }
    match field.kind {
        Kind::Str => doc.put(item, name, value)?,
        Kind::Body => match read::text_obj(doc, item, name)? {
            Some(text) => doc.update_text(&text, value)?,
            None => {
                let text = doc.put_object(item, name, ObjType::Text)?;
                doc.splice_text(&text, 0, 0, value)?;
            }
        },
        Kind::Bool => {
            let b = value
                .parse::<bool>()
                .map_err(|_| invalid(name, "must be true or false"))?;
            doc.put(item, name, b)?;
        }
        Kind::Date => {
            check_date(name, value)?;
            doc.put(item, name, value)?;
        }
        Kind::Enum(allowed) => {
            if !allowed.contains(&value) {
                return Err(invalid(
                    name,
                    format!("{value:?} is not one of: {}", allowed.join(", ")),
                ));
            }
            doc.put(item, name, value)?;
        }
        Kind::Rating => {
            let r: i64 = value
                .parse()
                .map_err(|_| invalid(name, "must be a number from 1 to 5"))?;
            if !(1..=5).contains(&r) {
                return Err(invalid(name, "must be from 1 to 5"));
            }
            doc.put(item, name, r)?;
        }
        Kind::List => {
            let list = doc.put_object(item, name, ObjType::List)?;
            for (i, v) in value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .enumerate()
            {
                doc.insert(&list, i, v)?;
            }
        }
    }
    Ok(())
}

fn section_map(doc: &mut AutoCommit, name: &str) -> Result<ObjId, DomainError> {
    match read::map(doc, &ROOT, name)? {
        Some(id) => Ok(id),
        None => Ok(doc.put_object(ROOT, name, ObjType::Map)?),
    }
}

/// Clears `primary` on every other item of the same kind, so one edit leaves one primary.
fn demote_others(doc: &mut AutoCommit, list: &ObjId, keep: &str) -> Result<(), DomainError> {
    let kind_of = |doc: &AutoCommit, id: &ObjId| read::string(doc, id, "kind").ok().flatten();
    let Some(kept) = read::map(doc, list, keep)? else {
        return Ok(());
    };
    let kind = kind_of(doc, &kept);
    let keys: Vec<String> = doc.keys(list).filter(|k| k != keep).collect();
    for k in keys {
        if let Some(other) = read::map(doc, list, &k)?
            && kind_of(doc, &other) == kind
            && read::boolean(doc, &other, "primary")?
        {
            doc.put(&other, "primary", false)?;
        }
    }
    Ok(())
}

fn apply(
    doc: &mut AutoCommit,
    s: &Section,
    list: &ObjId,
    item_key: &str,
    values: &[(String, String)],
) -> Result<(), DomainError> {
    let item = read::map(doc, list, item_key)?.ok_or_else(|| DomainError::UnknownItem {
        section: s.name.into(),
        item: item_key.into(),
    })?;
    for (k, v) in values {
        let field =
            s.fields
                .iter()
                .find(|f| f.name == k)
                .ok_or_else(|| DomainError::UnknownField {
                    field: format!("{}.{k}", s.name),
                    valid: s
                        .fields
                        .iter()
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
        if s.name == "skin_tests" && k == "status" {
            crate::skin::advance(doc, &item, v)?;
        } else {
            put_field(doc, s.name, &item, field, v)?;
        }
    }
    if s.has_primary && values.iter().any(|(k, v)| k == "primary" && v == "true") {
        demote_others(doc, list, item_key)?;
    }
    Ok(())
}

/// Adds an item to a section; `values` are field=value pairs checked against the section.
pub fn add_item(
    doc: &mut AutoCommit,
    section_name: &str,
    id: Uuid,
    values: &[(String, String)],
    now_ms: i64,
) -> Result<(), DomainError> {
    let s = section(section_name)?;
    for req in s.fields.iter().filter(|f| f.required) {
        if !values
            .iter()
            .any(|(k, v)| k == req.name && !v.trim().is_empty())
        {
            return Err(invalid(&format!("{}.{}", s.name, req.name), "is required"));
        }
    }
    let list = section_map(doc, s.name)?;
    let item = doc.put_object(&list, id.to_string(), ObjType::Map)?;
    doc.put(&item, "created_at", now_ms)?;
    if s.clinical {
        doc.put(&item, "active", true)?;
    }
    if s.name == "skin_tests" {
        crate::skin::advance(doc, &item, "pending")?;
    }
    apply(doc, s, &list, &id.to_string(), values)
}

/// Changes fields of an existing item.
pub fn set_item(
    doc: &mut AutoCommit,
    section_name: &str,
    id: Uuid,
    values: &[(String, String)],
) -> Result<(), DomainError> {
    let s = section(section_name)?;
    let list = section_map(doc, s.name)?;
    apply(doc, s, &list, &id.to_string(), values)
}

/// Deletes an item; clinical items can only be deactivated.
pub fn remove_item(doc: &mut AutoCommit, section_name: &str, id: Uuid) -> Result<(), DomainError> {
    let s = section(section_name)?;
    let list = section_map(doc, s.name)?;
    let key = id.to_string();
    if read::map(doc, &list, &key)?.is_none() {
        return Err(DomainError::UnknownItem {
            section: s.name.into(),
            item: key,
        });
    }
    if s.clinical {
        set_item(doc, section_name, id, &[("active".into(), "false".into())])
    } else {
        doc.delete(&list, key.as_str())?;
        Ok(())
    }
}

fn field_json(doc: &impl ReadDoc, item: &ObjId, field: &Field) -> Result<Value, DomainError> {
    Ok(match field.kind {
        Kind::Bool => Value::Bool(read::boolean(doc, item, field.name)?),
        Kind::Rating => doc.get(item, field.name)?.map_or(Value::Null, |_| {
            Value::from(read::int(doc, item, field.name).unwrap_or(0))
        }),
        Kind::List => Value::from(read::strings(doc, item, field.name)?),
        _ => read::string(doc, item, field.name)?.map_or(Value::Null, Value::String),
    })
}

/// Every section as JSON: `{section: [items…]}`, items sorted by creation time then id.
pub fn view_sections(doc: &impl ReadDoc) -> Result<Map<String, Value>, DomainError> {
    let mut out = Map::new();
    for s in SECTIONS {
        let mut items: Vec<(i64, String, Value)> = Vec::new();
        if let Some(list) = read::map(doc, &ROOT, s.name)? {
            for key in doc.keys(&list) {
                let Some(item) = read::map(doc, &list, &key)? else {
                    continue;
                };
                let mut obj = Map::new();
                obj.insert("id".into(), Value::String(key.clone()));
                for field in s.fields {
                    obj.insert(field.name.into(), field_json(doc, &item, field)?);
                }
                if s.name == "skin_tests" {
                    let (status, conflict) = crate::skin::status(doc, &item)?;
                    obj.insert("status".into(), Value::String(status.into()));
                    if let Some(c) = conflict {
                        obj.insert("status_conflict".into(), Value::String(c.into()));
                    }
                }
                if s.clinical {
                    obj.insert(
                        "active".into(),
                        Value::Bool(read::boolean(doc, &item, "active")?),
                    );
                }
                let at = read::int(doc, &item, "created_at")?;
                obj.insert("created_at".into(), Value::from(at));
                items.push((at, key, Value::Object(obj)));
            }
        }
        items.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut values: Vec<Value> = items.into_iter().map(|(_, _, v)| v).collect();
        if s.has_primary {
            settle_primary(&mut values);
        }
        out.insert(s.name.into(), Value::Array(values));
    }
    Ok(out)
}

/// A merge can leave two primaries of one kind; report the earliest (then lowest id) only.
fn settle_primary(items: &mut [Value]) {
    let mut seen: Vec<Value> = Vec::new();
    for item in items.iter_mut() {
        if item["primary"] == Value::Bool(true) {
            let kind = item["kind"].clone();
            if seen.contains(&kind) {
                item["primary"] = Value::Bool(false);
            } else {
                seen.push(kind);
            }
        }
    }
}
