//! Small typed readers over Automerge values.

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};

use crate::error::DomainError;

/// A string at `key`, if any (text objects are read as their content).
pub fn string(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<Option<String>, DomainError> {
    Ok(match doc.get(obj, key)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        Some((Value::Object(ObjType::Text), id)) => Some(doc.text(&id)?),
        _ => None,
    })
}

/// A boolean at `key` (false if absent).
pub fn boolean(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<bool, DomainError> {
    Ok(
        matches!(doc.get(obj, key)?, Some((Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Boolean(true))),
    )
}

/// An integer at `key` (0 if absent).
pub fn int(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<i64, DomainError> {
    Ok(int_opt(doc, obj, key)?.unwrap_or(0))
}

/// An integer at `key`, None if absent or not a number.
pub fn int_opt(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<Option<i64>, DomainError> {
    Ok(match doc.get(obj, key)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Int(i) => Some(*i),
            ScalarValue::Uint(u) => Some(i64::try_from(*u).unwrap_or(i64::MAX)),
            ScalarValue::Timestamp(t) => Some(*t),
            // What a JavaScript client writes for a number it computed.
            ScalarValue::F64(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        },
        _ => None,
    })
}

/// Every concurrent string value at `key`, winner first (Automerge's deterministic order).
pub fn all_strings(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<Vec<String>, DomainError> {
    let mut out = Vec::new();
    for (v, id) in doc.get_all(obj, key)? {
        match v {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Str(s) => out.push(s.to_string()),
                other => out.push(other.to_string()),
            },
            Value::Object(ObjType::Text) => out.push(doc.text(&id)?),
            Value::Object(_) => {}
        }
    }
    // get_all lists values in op order; the value `get` returns is the winner.
    if let Some(winner) = string(doc, obj, key)?
        && let Some(pos) = out.iter().position(|v| *v == winner)
    {
        let w = out.remove(pos);
        out.insert(0, w);
    }
    Ok(out)
}

/// The object at `key`, if it is a map.
pub fn map(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<Option<ObjId>, DomainError> {
    Ok(match doc.get(obj, key)? {
        Some((Value::Object(ObjType::Map), id)) => Some(id),
        _ => None,
    })
}

/// The text object at `key`, if it is one.
pub fn text_obj(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<Option<ObjId>, DomainError> {
    Ok(match doc.get(obj, key)? {
        Some((Value::Object(ObjType::Text), id)) => Some(id),
        _ => None,
    })
}

/// The strings of a list at `key` (empty if absent).
pub fn strings(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<Vec<String>, DomainError> {
    let Some((Value::Object(ObjType::List), list)) = doc.get(obj, key)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for i in 0..doc.length(&list) {
        if let Some((Value::Scalar(s), _)) = doc.get(&list, i)?
            && let ScalarValue::Str(s) = s.as_ref()
        {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

/// The keys of the map at `key` whose value is `true`, sorted.
pub fn flags(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<Vec<String>, DomainError> {
    let Some(m) = map(doc, obj, key)? else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = doc
        .keys(&m)
        .filter(|k| boolean(doc, &m, k).unwrap_or(false))
        .collect();
    out.sort();
    Ok(out)
}
