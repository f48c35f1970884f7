//! What a record keeps whoever edits it, checked on changes from automerge-repo peers (which
//! run no Ficha code): its identity never changes, and its structure keeps its types.
//!
//! Ficha's own replicas write through the domain, which keeps these by construction; a stock
//! client can write anything Automerge allows, so the relay compares the document's root before
//! and after the changes, without knowing the record kinds.

use std::collections::BTreeMap;

use automerge::{Automerge, ObjType, ROOT, ReadDoc, ScalarValue, Value};

/// Root keys naming what a record is: set when it is created, never changed.
pub const IDENTITY: &[&str] = &["id", "company", "kind"];

/// How a root value is kept, for the comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Class {
    Map,
    List,
    /// A string register or Automerge text: readers accept either.
    Textual,
    Number,
    Bool,
    /// Null, bytes and the like.
    Other,
}

fn class(value: &Value<'_>) -> Class {
    match value {
        Value::Object(ObjType::Map | ObjType::Table) => Class::Map,
        Value::Object(ObjType::List) => Class::List,
        Value::Object(ObjType::Text) => Class::Textual,
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(_) => Class::Textual,
            ScalarValue::Int(_)
            | ScalarValue::Uint(_)
            | ScalarValue::F64(_)
            | ScalarValue::Counter(_)
            | ScalarValue::Timestamp(_) => Class::Number,
            ScalarValue::Boolean(_) => Class::Bool,
            _ => Class::Other,
        },
    }
}

/// A document's root as far as the rules look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Every root key's winning value class.
    classes: BTreeMap<String, Class>,
    /// The identity keys: every value each holds (more than one after a conflict).
    identity: BTreeMap<&'static str, Vec<String>>,
}

impl Shape {
    /// Reads the root of `doc`.
    pub fn of(doc: &Automerge) -> Self {
        let classes = doc
            .keys(&ROOT)
            .filter_map(|key| {
                let (value, _) = doc.get(&ROOT, &key).ok().flatten()?;
                Some((key, class(&value)))
            })
            .collect();
        let identity = IDENTITY
            .iter()
            .map(|key| {
                let values = doc
                    .get_all(&ROOT, *key)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(v, id)| match v {
                        Value::Scalar(s) => s.to_string(),
                        Value::Object(ObjType::Text) => doc.text(&id).unwrap_or_default(),
                        Value::Object(o) => format!("({o})"),
                    })
                    .collect();
                (*key, values)
            })
            .collect();
        Self { classes, identity }
    }

    /// Why `after` may not follow `self`, if it may not: an identity key changed or gained a
    /// conflicting value, a root map or list went away or changed type, or a number or a
    /// boolean became something else (text may switch between register and Text, or clear).
    pub fn check(&self, after: &Shape) -> Result<(), String> {
        for (key, before) in &self.identity {
            let now = after.identity.get(key).cloned().unwrap_or_default();
            if !before.is_empty() && now != *before {
                return Err(format!("a record's {key} never changes"));
            }
        }
        for (key, was) in &self.classes {
            let now = after.classes.get(key);
            let kept = match was {
                Class::Map | Class::List => now == Some(was),
                Class::Number | Class::Bool => now.is_none_or(|n| n == was),
                Class::Textual => now.is_none_or(|n| matches!(n, Class::Textual | Class::Other)),
                Class::Other => true,
            };
            if !kept {
                return Err(format!("the record's {key:?} must keep its type ({was:?})"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjType, ROOT};

    fn record() -> AutoCommit {
        let mut d = AutoCommit::new();
        d.put(ROOT, "id", "c1").expect("put");
        d.put(ROOT, "company", "clinica").expect("put");
        d.put(ROOT, "kind", "client").expect("put");
        d.put(ROOT, "schema", 1).expect("put");
        d.put(ROOT, "name", "Ana").expect("put");
        d.put_object(ROOT, "notes", ObjType::Map).expect("map");
        d
    }

    fn verdict(edit: impl FnOnce(&mut AutoCommit)) -> Result<(), String> {
        let mut d = record();
        let before = Shape::of(d.document());
        edit(&mut d);
        before.check(&Shape::of(d.document()))
    }

    #[test]
    fn ordinary_edits_keep_the_shape() {
        assert_eq!(verdict(|_| {}), Ok(()));
        assert_eq!(
            verdict(|d| {
                let notes = d.get(ROOT, "notes").expect("get").expect("notes").1;
                let n = d.put_object(&notes, "n1", ObjType::Map).expect("note");
                let t = d.put_object(&n, "text", ObjType::Text).expect("text");
                d.splice_text(&t, 0, 0, "hola").expect("splice");
                // What a JS client writes for a string field: Text in place of a register.
                let name = d.put_object(ROOT, "name", ObjType::Text).expect("text");
                d.splice_text(&name, 0, 0, "Ana María").expect("splice");
                d.put(ROOT, "phone", "600").expect("put");
                d.put(ROOT, "schema", 1).expect("same value again");
            }),
            Ok(())
        );
    }

    #[test]
    fn identity_and_structure_are_kept() {
        let refused = |edit: fn(&mut AutoCommit)| verdict(edit).is_err();
        assert!(refused(|d| d.put(ROOT, "company", "otra").expect("put")));
        assert!(refused(|d| d.delete(ROOT, "kind").expect("delete")));
        assert!(refused(|d| d.put(ROOT, "notes", "gone").expect("put")));
        assert!(refused(|d| d.delete(ROOT, "notes").expect("delete")));
        assert!(refused(|d| d.put(ROOT, "schema", "one").expect("put")));
        assert!(refused(|d| {
            d.put_object(ROOT, "id", ObjType::List).expect("list");
        }));
    }

    #[test]
    fn a_conflicting_company_value_is_a_change() {
        let mut a = record();
        let mut b = a.fork();
        b.put(ROOT, "company", "otra").expect("put");
        let before = Shape::of(a.document());
        a.merge(&mut b).expect("merge");
        assert!(before.check(&Shape::of(a.document())).is_err());
    }
}
