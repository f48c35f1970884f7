//! New records hold only values a JavaScript automerge reader can serialise: no unsigned
//! integers (automerge-js reads them as BigInt, which `JSON.stringify` refuses), so an
//! automerge-repo app can open any Ficha record. `tests/tests/automerge_repo.rs` checks the
//! same from Node through the relay.

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use ficha_domain::record::kinds::KINDS;
use ficha_domain::record::{Parent, genesis};
use uuid::Uuid;

/// Paths of every unsigned integer under `obj`.
fn unsigned(doc: &AutoCommit, obj: &ObjId, path: &str, out: &mut Vec<String>) {
    let keys: Vec<String> = match doc.object_type(obj) {
        Ok(ObjType::Map | ObjType::Table) => doc.keys(obj).collect(),
        Ok(ObjType::List) => (0..doc.length(obj)).map(|i| i.to_string()).collect(),
        _ => return,
    };
    for key in keys {
        let got = match key.parse::<usize>() {
            Ok(i) if matches!(doc.object_type(obj), Ok(ObjType::List)) => doc.get(obj, i),
            _ => doc.get(obj, key.as_str()),
        };
        match got.expect("read") {
            Some((Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Uint(_)) => {
                out.push(format!("{path}/{key}"))
            }
            Some((Value::Object(_), id)) => unsigned(doc, &id, &format!("{path}/{key}"), out),
            _ => {}
        }
    }
}

#[test]
fn new_clients_and_records_of_every_kind_hold_no_unsigned_integers() {
    let mut client = AutoCommit::new();
    ficha_domain::new_client(
        &mut client,
        Uuid::from_u128(1),
        "acme",
        "Ana",
        Some("ana@example.es"),
        Some("600"),
        1_700_000_000_000,
    )
    .expect("client");
    let mut found = Vec::new();
    unsigned(&client, &ROOT, "client", &mut found);
    for spec in KINDS {
        let parent = (spec.parent == Parent::Client).then(|| Uuid::from_u128(1));
        let bytes = genesis(spec, Uuid::from_u128(2), "acme", parent).expect("genesis");
        let doc = AutoCommit::load(&bytes).expect("load");
        unsigned(&doc, &ROOT, spec.name, &mut found);
    }
    assert!(found.is_empty(), "unsigned integers at {found:?}");
}
