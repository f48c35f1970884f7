//! The in-memory document cache never shows or builds on a state other than the stored one.
//!
//! A seeded random mix of local edits, remote changes (some concurrent, built from an older
//! copy), dropped batches and reopenings runs against a store; every key written durably must be
//! read back, both through the cache and after reopening from disk, and nothing from a dropped
//! batch may appear. A cache that kept a document across a merge, or filled itself from a
//! transaction that never committed, fails it.

mod common;

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use common::{company, init, keys, open, seeds};
use ficha_core::DocId;
use ficha_core::frame::{FeedEntry, FeedPage};
use ficha_core::replica::ReplicaStore;
use ficha_store::{CACHED_DOCS, StoreError, SyncStore};

/// One seeded run; returns how many operations it made.
fn run(seed: u64) -> usize {
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = init(dir.path());
    // More documents than the cache holds, so entries are evicted and reloaded too.
    let docs: Vec<DocId> = (0..CACHED_DOCS as u8 + 4).map(|n| DocId([n; 16])).collect();
    let mut expected: Vec<BTreeMap<String, i64>> = vec![BTreeMap::new(); docs.len()];
    let mut old_copies: Vec<Option<Automerge>> = vec![None; docs.len()];
    let mut seq = 0;
    let ops = 300;
    for step in 0..ops {
        let i = rng.random_range(0..docs.len());
        let key = format!("k{step}");
        let value = step as i64;
        let exists = !expected[i].is_empty();
        match rng.random_range(0..10) {
            0..=3 => {
                if exists {
                    store
                        .edit_doc(docs[i], |d| {
                            d.put(ROOT, key.as_str(), value).map_err(StoreError::from)
                        })
                        .expect("edit");
                } else {
                    store
                        .create_doc(docs[i], &company(), |d| {
                            d.put(ROOT, key.as_str(), value).map_err(StoreError::from)
                        })
                        .expect("create");
                }
                expected[i].insert(key, value);
            }
            4..=6 if exists => {
                // A remote replica's change, sometimes built on an older copy (concurrent).
                let base = match (&old_copies[i], rng.random_bool(0.5)) {
                    (Some(old), true) => old.clone(),
                    _ => store.read_doc(&docs[i]).expect("read").expect("exists"),
                };
                let mut remote = base.fork().with_actor(ActorId::from([0xEE, step as u8, 1]));
                let mut tx = remote.transaction();
                tx.put(ROOT, key.as_str(), value).expect("put");
                tx.commit();
                let change = remote
                    .get_last_local_change()
                    .expect("change")
                    .raw_bytes()
                    .to_vec();
                seq += 1;
                SyncStore(&store)
                    .apply_feed(&FeedPage {
                        company: company(),
                        from: seq - 1,
                        upto: seq,
                        entries: vec![FeedEntry {
                            seq,
                            doc: docs[i],
                            changes: change,
                        }],
                    })
                    .expect("apply");
                expected[i].insert(key, value);
            }
            7 if exists => {
                // A batch dropped before commit leaves no trace, in the cache or on disk.
                let batch = store.batch().expect("batch");
                batch
                    .edit_doc(docs[i], |d| {
                        d.put(ROOT, "never", -1).map_err(StoreError::from)
                    })
                    .expect("edit in batch");
                drop(batch);
            }
            8 if exists => {
                old_copies[i] = store.read_doc(&docs[i]).expect("read");
            }
            _ => {
                drop(store);
                store = open(dir.path());
            }
        }
        if exists || !expected[i].is_empty() {
            let seen = keys(&store.read_doc(&docs[i]).expect("read").expect("exists"));
            assert_eq!(seen, expected[i], "seed {seed} step {step} doc {i}");
        }
    }
    drop(store);
    let store = open(dir.path());
    for (i, doc) in docs.iter().enumerate() {
        if expected[i].is_empty() {
            continue;
        }
        let cold = store.read_doc(doc).expect("read").expect("exists");
        assert_eq!(
            keys(&cold),
            expected[i],
            "seed {seed}: doc {i} after reopening"
        );
    }
    ops
}

#[test]
fn the_cache_follows_every_write_and_hides_none() {
    let seeds = seeds("FICHA_CACHE_SEEDS", 6);
    for seed in 0..seeds {
        run(seed);
    }
}
