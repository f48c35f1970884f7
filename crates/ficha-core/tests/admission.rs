//! Admission holds against changes whose header is honest and whose operations are not.
//!
//! Seeded mutations of the operations of a real change (a text splice, list edits, a counter,
//! a map put and delete) are offered to a warm document. Automerge 0.12 panics on some of
//! them when applying; admission must contain every such panic, and whatever it admits must
//! load, read and save on a fresh replica without a panic.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Automerge, Change, ExpandedChange, ObjType, ROOT};
use ficha_core::admit::WarmDoc;
use ficha_core::error::ChangeError;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn actor(n: u8) -> ActorId {
    ActorId::from(&[n; 20][..])
}

/// A document with a map, a text, a list and a counter, and a second actor's change on it.
fn base() -> (Automerge, Change) {
    let mut d = AutoCommit::new().with_actor(actor(1));
    d.put(ROOT, "name", "Ana").expect("put");
    let notes = d.put_object(ROOT, "notes", ObjType::Map).expect("map");
    let note = d.put_object(&notes, "n1", ObjType::Map).expect("map");
    let text = d.put_object(&note, "text", ObjType::Text).expect("text");
    d.splice_text(&text, 0, 0, "hello world").expect("splice");
    let list = d.put_object(ROOT, "list", ObjType::List).expect("list");
    d.insert(&list, 0, 1).expect("insert");
    d.insert(&list, 1, 2).expect("insert");
    d.put(ROOT, "count", automerge::ScalarValue::counter(1))
        .expect("counter");
    d.commit();
    let doc = d.document().clone();
    let mut other = AutoCommit::load(&doc.save())
        .expect("load")
        .with_actor(actor(2));
    other.splice_text(&text, 3, 2, "XY").expect("splice");
    other.delete(&list, 0).expect("delete");
    other.insert(&list, 1, 7).expect("insert");
    other.increment(ROOT, "count", 3).expect("increment");
    other.put(ROOT, "name", "Eve").expect("put");
    other.commit();
    (doc, other.get_last_local_change().expect("change"))
}

fn values(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                out.push(serde_json::json!(k));
                values(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| values(x, out)),
        serde_json::Value::Null => {}
        other => out.push(other.clone()),
    }
}

fn mutate(rng: &mut SmallRng, v: &mut serde_json::Value, pool: &[serde_json::Value]) {
    match v {
        serde_json::Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            if keys.is_empty() {
                return;
            }
            let k = &keys[rng.random_range(0..keys.len())];
            if rng.random_bool(0.3) {
                m.insert(k.clone(), pool[rng.random_range(0..pool.len())].clone());
            } else if let Some(x) = m.get_mut(k) {
                mutate(rng, x, pool);
            }
        }
        serde_json::Value::Array(a) if !a.is_empty() => {
            let i = rng.random_range(0..a.len());
            match rng.random_range(0..5) {
                0 => {
                    a.remove(i);
                }
                1 => a.push(pool[rng.random_range(0..pool.len())].clone()),
                _ => mutate(rng, &mut a[i], pool),
            }
        }
        serde_json::Value::Bool(b) => *b = !*b,
        _ => *v = pool[rng.random_range(0..pool.len())].clone(),
    }
}

/// A fresh replica reading what the relay admitted: no step may panic.
fn read_on_a_fresh_replica(base: &Automerge, admitted: &[Change]) {
    let mut fresh = Automerge::load(&base.save()).expect("base loads");
    let bytes: Vec<u8> = admitted
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect();
    fresh.load_incremental(&bytes).expect("admitted bytes load");
    let _ = fresh.hydrate(None);
    let saved = fresh.save();
    let again = Automerge::load(&saved).expect("saved document loads");
    assert_eq!(again.get_heads(), fresh.get_heads());
}

#[test]
fn admission_contains_every_panic_and_admits_only_what_applies() {
    let (doc, template) = base();
    let json = serde_json::to_value(template.decode()).expect("json");
    let mut pool = Vec::new();
    values(&json, &mut pool);
    let seed = std::env::var("FICHA_ADMIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut rng = SmallRng::seed_from_u64(seed);
    let (mut admitted, mut refused_apply, mut refused_header) = (0, 0, 0);
    let mut unreadable = Vec::new();
    // Automerge's panics are expected here, thousands of them: keep the output readable.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..3000 {
        let mut j = json.clone();
        for _ in 0..rng.random_range(1..4) {
            if let Some(ops) = j.get_mut("ops") {
                mutate(&mut rng, ops, &pool);
            }
        }
        j.as_object_mut().map(|m| m.remove("hash"));
        let Ok(expanded) = serde_json::from_value::<ExpandedChange>(j) else {
            continue;
        };
        let Ok(change) = std::panic::catch_unwind(|| Change::from(expanded)) else {
            continue;
        };
        let Ok(change) = ficha_core::change::parse(change.raw_bytes()) else {
            continue;
        };
        let mut warm = WarmDoc::new(doc.clone(), Vec::new(), 0).expect("warm");
        match warm.admit(vec![change]) {
            Ok(a) => {
                admitted += 1;
                let read = std::panic::catch_unwind(|| read_on_a_fresh_replica(&doc, &a.applied));
                if read.is_err() {
                    unreadable.push(a.applied.iter().map(Change::hash).collect::<Vec<_>>());
                }
            }
            Err(ChangeError::DoesNotApply(_)) => refused_apply += 1,
            Err(_) => refused_header += 1,
        }
    }
    std::panic::set_hook(hook);
    eprintln!(
        "admitted {admitted}, refused on apply {refused_apply}, on the header {refused_header}"
    );
    assert!(
        unreadable.is_empty(),
        "admitted changes a fresh replica cannot read (seed {seed}): {unreadable:?}"
    );
    assert!(admitted > 100, "many mutations still apply");
    assert!(
        refused_apply > 0,
        "some mutations only Automerge itself catches (seed {seed})"
    );
}
