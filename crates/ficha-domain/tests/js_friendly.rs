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

/// What a JavaScript client writes in place of Ficha's types: strings as Text (automerge-js's
/// default), Text replaced by a plain string, numbers as floats, a date as a timestamp.
#[test]
fn records_read_and_edit_what_javascript_writes_in_place_of_fichas_types() {
    use automerge::ScalarValue;
    use automerge::transaction::Transactable;
    use ficha_domain::record::{self, kind};

    let spec = kind("appointment").expect("appointment");
    let f = |name: &str| spec.field(name).expect("field");
    let value = |name: &str, text: &str| (f(name), record::parse(f(name), text, None).expect("v"));
    let actor = ficha_domain::Actor::replica("recepcion");
    let mut doc = AutoCommit::new();
    record::create(
        &mut doc,
        spec,
        Uuid::from_u128(3),
        "acme",
        Some(Uuid::from_u128(1)),
        &[
            value("start", "2026-12-04T10:00:00Z"),
            value("service", "Limpieza facial"),
            value("notes", "Piel sensible"),
        ],
        &actor,
        Uuid::from_u128(4),
        1_700_000_000_000,
    )
    .expect("create");
    let fields = doc.get(ROOT, "fields").expect("get").expect("fields").1;
    // As a JS client would write them.
    let service = doc
        .put_object(&fields, "service", ObjType::Text)
        .expect("text");
    doc.splice_text(&service, 0, 0, "Peeling").expect("splice");
    doc.put(&fields, "notes", "Piel muy sensible")
        .expect("string");
    doc.put(&fields, "duration_min", ScalarValue::F64(45.0))
        .expect("float");
    doc.put(&fields, "start", ScalarValue::Timestamp(1_764_842_400_000))
        .expect("timestamp");
    doc.commit();
    let shown = record::view(doc.document()).expect("view");
    let v = &shown;
    assert_eq!(v["service"], "Peeling", "{shown}");
    assert_eq!(v["notes"], "Piel muy sensible", "{shown}");
    assert_eq!(v["duration_min"], 45, "{shown}");
    assert_eq!(v["start"], "2025-12-04T10:00:00Z", "{shown}");
    // And Ficha edits them back in its own types.
    record::set(
        &mut doc,
        &[value("service", "Peeling suave"), value("notes", "Ok")],
        &actor,
        &mut (10..).map(Uuid::from_u128),
        1_700_000_100_000,
    )
    .expect("set");
    let shown = record::view(doc.document()).expect("view");
    assert_eq!(shown["service"], "Peeling suave");
    assert_eq!(shown["notes"], "Ok");

    // The client document the same way: name as Text, a note's body as a plain string.
    let mut client = AutoCommit::new();
    ficha_domain::new_client(
        &mut client,
        Uuid::from_u128(1),
        "acme",
        "Ana",
        None,
        None,
        1,
    )
    .expect("client");
    ficha_domain::add_note(&mut client, Uuid::from_u128(5), "hola", 2).expect("note");
    let name = client.put_object(ROOT, "name", ObjType::Text).expect("t");
    client
        .splice_text(&name, 0, 0, "Ana María")
        .expect("splice");
    let notes = client.get(ROOT, "notes").expect("get").expect("notes").1;
    let note = client
        .get(&notes, Uuid::from_u128(5).to_string())
        .expect("get")
        .expect("note")
        .1;
    client.put(&note, "text", "hola de nuevo").expect("string");
    let view = ficha_domain::view(client.document()).expect("view");
    assert_eq!(view.name, "Ana María");
    assert_eq!(view.notes[0].text, "hola de nuevo");
    ficha_domain::annotations::edit(
        &mut client,
        "notes",
        &Uuid::from_u128(5).to_string(),
        &[("text".into(), "adiós".into())],
    )
    .expect("edit the plain string as text");
    assert_eq!(
        ficha_domain::view(client.document()).expect("view").notes[0].text,
        "adiós"
    );
}
