//! A local edit is acknowledged once its journal record is on disk, before redb makes it
//! durable; a crash at any point must bring back every acknowledged edit, once.
//!
//! The crash images are the worst a power cut can leave: the redb file as it was at its last
//! durable commit, beside the journal as it is now (every acknowledged edit is fsynced there),
//! sometimes with a torn record at its end. A seeded random mix of edits, creations,
//! acknowledgements by the relay (durable commits of their own) and checkpoints runs against a
//! store, and every image taken along the way must open with exactly the acknowledged edits in
//! its documents and exactly the unacknowledged ones in its outbox.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use automerge::ROOT;
use automerge::transaction::Transactable;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use common::{company, init, keys, open, seeds};
use ficha_core::DocId;
use ficha_core::replica::ReplicaStore;
use ficha_store::{
    CHECKPOINT_AFTER_RECORDS, DB_FILE, JOURNAL_FILE, Store, SyncStore, journaled_edits,
};

fn put(store: &Store, doc: DocId, create: bool, key: &str, value: i64) {
    let f = |d: &mut automerge::AutoCommit| {
        d.put(ROOT, key, value)
            .map_err(ficha_store::StoreError::from)
    };
    if create {
        store.create_doc(doc, &company(), f).expect("create");
    } else {
        store.edit_doc(doc, f).expect("edit");
    }
}

/// Every change in the outbox, by hash; fails on a change queued twice.
fn outbox_hashes(store: &Store) -> HashSet<automerge::ChangeHash> {
    let mut seen = HashSet::new();
    if let Some(batch) = SyncStore(store)
        .outbox_batch(usize::MAX, usize::MAX)
        .expect("outbox")
    {
        for d in &batch.docs {
            for c in &d.changes {
                let change = automerge::Change::from_bytes(c.to_vec()).expect("a change");
                assert!(seen.insert(change.hash()), "a change queued twice");
            }
        }
    }
    seen
}

/// Where the journal's current records end: after its 16-byte header, each record is a 20-byte
/// header (its payload length first) and the payload.
fn records_end(journal: &[u8], records: usize) -> usize {
    let mut at = 16;
    for _ in 0..records {
        let len = u32::from_le_bytes(journal[at..at + 4].try_into().expect("4 bytes"));
        at += 20 + len as usize;
    }
    at
}

/// A crash image: the redb file at its last durable commit and the journal as it is now, with
/// `torn` written where the next record would have gone (a record the crash tore).
fn image(durable_db: &[u8], live: &Path, torn: Option<&[u8]>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join(DB_FILE), durable_db).expect("db");
    let mut journal = std::fs::read(live.join(JOURNAL_FILE)).expect("journal");
    if let Some(torn) = torn {
        let at = records_end(&journal, journaled_edits(live).expect("records"));
        if journal.len() < at + torn.len() {
            journal.resize(at + torn.len(), 0);
        }
        journal[at..at + torn.len()].copy_from_slice(torn);
    }
    std::fs::write(dir.path().join(JOURNAL_FILE), journal).expect("journal");
    dir
}

struct Model {
    docs: Vec<DocId>,
    created: Vec<bool>,
    expected: Vec<BTreeMap<String, i64>>,
    /// Hashes of the acknowledged local changes the relay has not acknowledged yet.
    unsent: HashSet<automerge::ChangeHash>,
}

impl Model {
    fn check(&self, store: &Store, what: &str) {
        for (i, doc) in self.docs.iter().enumerate() {
            let got = store.read_doc(doc).expect("read").map(|d| keys(&d));
            if self.created[i] {
                assert_eq!(got.as_ref(), Some(&self.expected[i]), "{what}: doc {i}");
            } else {
                assert_eq!(got, None, "{what}: doc {i} was never created");
            }
        }
        assert_eq!(outbox_hashes(store), self.unsent, "{what}: outbox");
    }
}

/// One seeded run; returns how many crash images it checked.
fn run(seed: u64) -> usize {
    let mut rng = SmallRng::seed_from_u64(seed);
    let live = tempfile::tempdir().expect("tmp");
    let store = init(live.path());
    let mut durable = std::fs::read(live.path().join(DB_FILE)).expect("db");
    let mut model = Model {
        docs: (0..6u8).map(|n| DocId([n + 1; 16])).collect(),
        created: vec![false; 6],
        expected: vec![BTreeMap::new(); 6],
        unsent: HashSet::new(),
    };
    let mut images = 0;
    for step in 0..400i64 {
        let roll = rng.random_range(0..100);
        if roll < 70 {
            let i = rng.random_range(0..model.docs.len());
            let key = format!("k{}", rng.random_range(0..5));
            put(&store, model.docs[i], !model.created[i], &key, step);
            model.created[i] = true;
            model.expected[i].insert(key, step);
            let change = store
                .read_doc(&model.docs[i])
                .expect("read")
                .and_then(|d| d.get_heads().first().copied())
                .expect("a head");
            model.unsent.insert(change);
        } else if roll < 80 {
            // The relay acknowledges a prefix of the outbox: a durable commit of its own.
            let n = rng.random_range(1..4);
            if let Some(batch) = SyncStore(&store)
                .outbox_batch(usize::MAX, n)
                .expect("batch")
            {
                for d in &batch.docs {
                    for c in &d.changes {
                        let change = automerge::Change::from_bytes(c.to_vec()).expect("change");
                        model.unsent.remove(&change.hash());
                    }
                }
                SyncStore(&store).ack_outbox(batch.upto).expect("ack");
                durable = std::fs::read(live.path().join(DB_FILE)).expect("db");
            }
        } else if roll < 85 {
            store.checkpoint().expect("checkpoint");
            durable = std::fs::read(live.path().join(DB_FILE)).expect("db");
        } else {
            let torn: Option<Vec<u8>> = rng
                .random_bool(0.5)
                .then(|| (0..rng.random_range(1..60)).map(|_| rng.random()).collect());
            let dir = image(&durable, live.path(), torn.as_deref());
            let what = format!("seed {seed} step {step}, torn tail {}", torn.is_some());
            let reopened = open(dir.path());
            model.check(&reopened, &what);
            // Replaying twice (a crash during the replay itself) changes nothing.
            drop(reopened);
            model.check(&open(dir.path()), &format!("{what}, reopened"));
            images += 1;
        }
    }
    model.check(&store, &format!("seed {seed}, live store"));
    drop(store);
    model.check(
        &open(live.path()),
        &format!("seed {seed}, after a clean close"),
    );
    assert_eq!(
        journaled_edits(live.path()).expect("journal"),
        0,
        "a clean close leaves nothing to replay"
    );
    images
}

#[test]
fn every_acknowledged_edit_survives_a_crash_once() {
    let seeds = seeds("FICHA_JOURNAL_SEEDS", 12);
    let images: usize = (0..seeds).map(run).sum();
    assert!(
        images > seeds as usize * 20,
        "only {images} crash images checked"
    );
}

#[test]
fn an_edit_redb_lost_comes_back_from_the_journal() {
    let live = tempfile::tempdir().expect("tmp");
    let store = init(live.path());
    let doc = DocId([9; 16]);
    put(&store, doc, true, "name", 1);
    store.checkpoint().expect("checkpoint");
    let durable = std::fs::read(live.path().join(DB_FILE)).expect("db");
    put(&store, doc, false, "phone", 2);

    // Without the journal the redb file alone has only the first edit: the second was
    // acknowledged by the journal alone.
    let bare = tempfile::tempdir().expect("tmp");
    std::fs::write(bare.path().join(DB_FILE), &durable).expect("db");
    let before = open(bare.path());
    let kept = keys(&before.read_doc(&doc).expect("read").expect("doc"));
    assert_eq!(kept.get("phone"), None);
    drop(before);

    let crashed = image(&durable, live.path(), None);
    let size = |dir: &Path| {
        std::fs::metadata(dir.join(JOURNAL_FILE))
            .expect("journal")
            .len()
    };
    let before = size(crashed.path());
    let reopened = open(crashed.path());
    assert_eq!(
        size(crashed.path()),
        before,
        "replaying does not grow the journal"
    );
    let got = keys(&reopened.read_doc(&doc).expect("read").expect("doc"));
    assert_eq!(got.get("name"), Some(&1));
    assert_eq!(got.get("phone"), Some(&2));
    assert_eq!(reopened.pending_upload().expect("outbox"), 2);
}

#[test]
fn the_journal_is_emptied_every_so_many_edits_and_never_grows() {
    let live = tempfile::tempdir().expect("tmp");
    let store = init(live.path());
    let doc = DocId([3; 16]);
    put(&store, doc, true, "n", 0);
    let path = live.path().join(JOURNAL_FILE);
    let size = std::fs::metadata(&path).expect("journal").len();
    // The creation and every edit after it are journaled until CHECKPOINT_AFTER_RECORDS are,
    // then one edit commits durably and empties it: twice in this many edits.
    let edits = 2 * CHECKPOINT_AFTER_RECORDS as i64 + 1;
    let (mut most, mut last, mut emptied) = (0, 0, 0);
    for n in 1..=edits {
        put(&store, doc, false, "n", n);
        let now = journaled_edits(live.path()).expect("records");
        if now < last {
            assert_eq!(now, 0, "emptied, not shortened");
            emptied += 1;
        }
        (most, last) = (most.max(now), now);
        // Written in place: an fdatasync never has to commit a new file size.
        assert_eq!(std::fs::metadata(&path).expect("journal").len(), size);
    }
    assert_eq!(most, CHECKPOINT_AFTER_RECORDS);
    assert_eq!(emptied, 2, "emptied {emptied} times in {edits} edits");
    assert_eq!(
        keys(&store.read_doc(&doc).expect("read").expect("doc")).get("n"),
        Some(&edits)
    );
    // After an explicit checkpoint the old records are still in the file, and disowned.
    store.checkpoint().expect("checkpoint");
    assert_eq!(journaled_edits(live.path()).expect("records"), 0);
    let bytes = std::fs::read(&path).expect("journal");
    assert!(
        bytes[16..].iter().any(|b| *b != 0),
        "old records are still on disk"
    );
}

#[test]
fn a_record_damaged_in_the_middle_loses_only_itself_and_is_reported() {
    let live = tempfile::tempdir().expect("tmp");
    let store = init(live.path());
    let docs: Vec<DocId> = (0..3u8).map(|n| DocId([n + 20; 16])).collect();
    for d in &docs {
        put(&store, *d, true, "n", 0);
    }
    store.checkpoint().expect("checkpoint");
    let durable = std::fs::read(live.path().join(DB_FILE)).expect("db");
    // Nine journaled edits, round robin over three documents; the fourth (docs[0]'s second)
    // is damaged on disk afterwards.
    for n in 1..=9i64 {
        put(
            &store,
            docs[(n as usize - 1) % 3],
            false,
            &format!("k{n}"),
            n,
        );
    }
    assert_eq!(journaled_edits(live.path()).expect("records"), 9);
    let crashed = image(&durable, live.path(), None);
    let path = crashed.path().join(JOURNAL_FILE);
    let mut journal = std::fs::read(&path).expect("journal");
    let fourth = records_end(&journal, 3);
    journal[fourth + 30] ^= 0xff;
    std::fs::write(&path, &journal).expect("journal");

    let reopened = open(crashed.path());
    let got = |d: DocId| keys(&reopened.read_doc(&d).expect("read").expect("doc"));
    // docs[1] and docs[2] get all their edits back: k2 k5 k8 and k3 k6 k9.
    for (d, ks) in [(docs[1], [2, 5, 8]), (docs[2], [3, 6, 9])] {
        for k in ks {
            assert_eq!(got(d).get(&format!("k{k}")), Some(&k), "k{k} came back");
        }
    }
    // docs[0] keeps what came before the damage; k4 is lost, and k7 (built on it) waits.
    assert_eq!(got(docs[0]).get("k1"), Some(&1));
    assert_eq!(got(docs[0]).get("k4"), None);
    let report = reopened
        .journal_damage()
        .expect("status")
        .expect("the damage is reported");
    assert!(report.contains("outbox positions"), "{report}");
}

#[test]
fn many_journaled_edits_of_one_document_replay_at_once() {
    let live = tempfile::tempdir().expect("tmp");
    let store = init(live.path());
    let doc = DocId([30; 16]);
    put(&store, doc, true, "n", 0);
    store.checkpoint().expect("checkpoint");
    let durable = std::fs::read(live.path().join(DB_FILE)).expect("db");
    let edits = CHECKPOINT_AFTER_RECORDS as i64 - 1;
    for n in 1..=edits {
        put(&store, doc, false, &format!("k{}", n % 7), n);
    }
    let crashed = image(&durable, live.path(), None);
    let reopened = open(crashed.path());
    let got = keys(&reopened.read_doc(&doc).expect("read").expect("doc"));
    for n in (edits - 6)..=edits {
        assert_eq!(got.get(&format!("k{}", n % 7)), Some(&n));
    }
    assert_eq!(reopened.pending_upload().expect("outbox"), edits as u64 + 1);
    // One write for all of them: a single chunk (or snapshot) after the durable state.
    assert!(reopened.chunk_count(&doc).expect("chunks") <= 2);
}
