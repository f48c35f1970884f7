//! What a hostile replica with a valid token sends in the simulation: every class of upload
//! the relay must refuse, plus changes the relay may accept (valid edits, op-level mutations
//! Automerge happens to apply) and changes it must park (dependencies nobody will send).

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ChangeHash, ExpandedChange, ROOT};
use ficha_core::frame::{ByteBuf, DocChanges, Frame, Upload};
use ficha_core::ids::{Company, DocId, ReplicaId, actor_for};
use ficha_core::mem::MemReplicaStore;
use rand::Rng;
use rand::rngs::SmallRng;

/// What the hostile replica knows when it attacks.
pub struct Target<'a> {
    /// Its own id.
    pub me: ReplicaId,
    /// The company its token grants.
    pub company: &'a Company,
    /// What it has synced (honest documents included).
    pub store: &'a MemReplicaStore,
    /// Honest replicas, whose actors it may try to forge.
    pub victims: &'a [ReplicaId],
    /// Documents of a company its token does not grant.
    pub foreign_docs: &'a [DocId],
    /// A counter for fresh actors, so every attack writes under a new incarnation.
    pub next_actor: &'a mut u32,
}

/// One frame to send and what it tries.
pub struct Attack {
    /// Encoded frame bytes (possibly garbage).
    pub bytes: Vec<u8>,
    /// For the log.
    pub what: &'static str,
}

/// An upload whose position no real upload uses, so the hostile session ignores its answer.
fn upload(doc: DocId, company: &Company, changes: Vec<Vec<u8>>) -> Vec<u8> {
    Frame::Upload(Upload {
        upto: u64::MAX,
        docs: vec![DocChanges {
            doc,
            company: company.clone(),
            changes: changes.into_iter().map(ByteBuf::from).collect(),
        }],
    })
    .encode()
}

/// A copy of a document it holds (or a new one), writing under a fresh actor of its own.
fn fork(t: &mut Target<'_>, rng: &mut SmallRng) -> (DocId, AutoCommit) {
    *t.next_actor += 1;
    let actor = actor_for(t.me, 0x8000_0000 | *t.next_actor);
    let held: Vec<DocId> = t.store.doc_ids();
    if !held.is_empty() && rng.random_bool(0.8) {
        let id = held[rng.random_range(0..held.len())];
        if let Some(d) = t.store.doc(&id) {
            let doc = AutoCommit::load(&d.save()).expect("own copy loads");
            return (id, doc.with_actor(actor));
        }
    }
    (DocId(rng.random()), AutoCommit::new().with_actor(actor))
}

fn edit(doc: &mut AutoCommit, rng: &mut SmallRng) -> Change {
    doc.put(
        ROOT,
        format!("h{}", rng.random_range(0..4)),
        rng.random::<i64>(),
    )
    .expect("put");
    doc.commit();
    doc.get_last_local_change().expect("a change")
}

/// Rewrites a change through its expanded form with `f` applied to it.
fn rewrite(change: &Change, f: impl FnOnce(&mut serde_json::Value)) -> Option<Vec<u8>> {
    let mut json = serde_json::to_value(change.decode()).ok()?;
    f(&mut json);
    if let Some(m) = json.as_object_mut() {
        m.remove("hash");
    }
    let expanded: ExpandedChange = serde_json::from_value(json).ok()?;
    let rebuilt = std::panic::catch_unwind(|| Change::from(expanded)).ok()?;
    Some(rebuilt.raw_bytes().to_vec())
}

/// Mutates the operations of a change (not its header): what an authenticated peer with its
/// own Automerge could send.
fn mutate_ops(v: &mut serde_json::Value, rng: &mut SmallRng, pool: &[serde_json::Value]) {
    let Some(ops) = v.get_mut("ops").and_then(|o| o.as_array_mut()) else {
        return;
    };
    if ops.is_empty() {
        return;
    }
    let i = rng.random_range(0..ops.len());
    let Some(op) = ops[i].as_object_mut() else {
        return;
    };
    let keys: Vec<String> = op.keys().cloned().collect();
    let k = &keys[rng.random_range(0..keys.len())];
    let value = if pool.is_empty() || rng.random_bool(0.3) {
        serde_json::json!(rng.random_range(0..20))
    } else {
        pool[rng.random_range(0..pool.len())].clone()
    };
    op.insert(k.clone(), value);
}

/// Strings and numbers found in a change's expanded form, to mutate with.
fn pool_of(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => m.values().for_each(|x| pool_of(x, out)),
        serde_json::Value::Array(a) => a.iter().for_each(|x| pool_of(x, out)),
        serde_json::Value::Null => {}
        other => out.push(other.clone()),
    }
}

/// Picks and builds one attack.
pub fn craft(t: &mut Target<'_>, rng: &mut SmallRng) -> Attack {
    let company = t.company.clone();
    match rng.random_range(0..10) {
        0 => {
            let mut bytes = vec![0xF1, 1];
            bytes.extend((0..rng.random_range(0..64)).map(|_| rng.random::<u8>()));
            Attack {
                bytes,
                what: "garbage frame",
            }
        }
        1 => {
            let (id, mut doc) = fork(t, rng);
            let mut bytes = edit(&mut doc, rng).raw_bytes().to_vec();
            bytes[5] ^= 0x40;
            Attack {
                bytes: upload(id, &company, vec![bytes]),
                what: "bad checksum",
            }
        }
        2 => {
            let (id, mut doc) = fork(t, rng);
            let _skipped = edit(&mut doc, rng);
            let second = edit(&mut doc, rng);
            Attack {
                bytes: upload(id, &company, vec![second.raw_bytes().to_vec()]),
                what: "sequence gap",
            }
        }
        3 => {
            let (id, doc) = fork(t, rng);
            let mut a = doc.clone();
            let mut b = doc;
            let first = edit(&mut a, rng);
            let again = edit(&mut b, rng);
            Attack {
                bytes: upload(
                    id,
                    &company,
                    vec![first.raw_bytes().to_vec(), again.raw_bytes().to_vec()],
                ),
                what: "sequence number reused",
            }
        }
        4 => {
            // Someone else's change, replayed as if its own.
            let held = t.store.doc_ids();
            let theirs = held.iter().find_map(|id| {
                let d = t.store.doc(id)?;
                let c = d
                    .get_changes(&[])
                    .into_iter()
                    .find(|c| ficha_core::ids::replica_of_actor(c.actor_id()) != Some(t.me))?;
                Some((*id, c))
            });
            match theirs {
                Some((id, c)) => Attack {
                    bytes: upload(id, &company, vec![c.raw_bytes().to_vec()]),
                    what: "replayed foreign change",
                },
                None => craft(t, rng),
            }
        }
        5 => {
            let victim = t.victims[rng.random_range(0..t.victims.len())];
            let (id, doc) = fork(t, rng);
            let mut doc = doc.with_actor(actor_for(victim, rng.random()));
            let c = edit(&mut doc, rng);
            Attack {
                bytes: upload(id, &company, vec![c.raw_bytes().to_vec()]),
                what: "forged actor",
            }
        }
        6 | 7 => {
            let (id, mut doc) = fork(t, rng);
            let c = edit(&mut doc, rng);
            let mut pool = Vec::new();
            if let Ok(v) = serde_json::to_value(c.decode()) {
                pool_of(&v, &mut pool);
            }
            if let Some(d) = t.store.doc(&id)
                && let Ok(v) = serde_json::to_value(d.get_changes(&[]).last().map(|c| c.decode()))
            {
                pool_of(&v, &mut pool);
            }
            match rewrite(&c, |v| mutate_ops(v, rng, &pool)) {
                Some(bytes) => Attack {
                    bytes: upload(id, &company, vec![bytes]),
                    what: "mutated operations",
                },
                None => craft(t, rng),
            }
        }
        8 => {
            let (id, mut doc) = fork(t, rng);
            let c = edit(&mut doc, rng);
            let missing = ChangeHash(rng.random());
            match rewrite(&c, |v| {
                v["deps"] = serde_json::json!([missing.to_string()]);
            }) {
                Some(bytes) => Attack {
                    bytes: upload(id, &company, vec![bytes]),
                    what: "dependency nobody has",
                },
                None => craft(t, rng),
            }
        }
        _ => {
            if t.foreign_docs.is_empty() {
                return craft(t, rng);
            }
            let id = t.foreign_docs[rng.random_range(0..t.foreign_docs.len())];
            *t.next_actor += 1;
            let mut doc =
                AutoCommit::new().with_actor(actor_for(t.me, 0x8000_0000 | *t.next_actor));
            let c = edit(&mut doc, rng);
            Attack {
                bytes: upload(id, &company, vec![c.raw_bytes().to_vec()]),
                what: "another company's document",
            }
        }
    }
}
