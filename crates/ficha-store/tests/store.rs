//! The replica store keeps what it acknowledged across reopen, compaction and sync.

use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, ROOT, ReadDoc};
use ficha_core::frame::{FeedEntry, FeedPage};
use ficha_core::replica::ReplicaStore;
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId};
use ficha_store::{COMPACT_AFTER_CHUNKS, Identity, Indexer, NoIndex, Store, StoreError, SyncStore};

fn identity() -> Identity {
    Identity {
        replica: ReplicaId([1; 16]),
        name: "branch-a".into(),
        relay_url: "ws://127.0.0.1:1/sync".into(),
        token: "t".into(),
    }
}

fn company() -> Company {
    Company::new("acme").expect("valid")
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, Arc::new(NoIndex)).expect("open")
}

fn put(doc: &mut AutoCommit, key: &str, value: i64) -> Result<(), StoreError> {
    Ok(doc.put(ROOT, key, value)?)
}

fn value(doc: &Automerge, key: &str) -> Option<i64> {
    doc.get(ROOT, key)
        .ok()
        .flatten()
        .and_then(|(v, _)| match v {
            automerge::Value::Scalar(s) => s.as_i64(),
            _ => None,
        })
}

#[test]
fn edits_survive_reopen_and_the_outbox_too() {
    let dir = tempfile::tempdir().expect("tmp");
    Store::init(dir.path(), &identity()).expect("init");
    let doc = DocId([9; 16]);
    {
        let store = open(dir.path());
        store
            .create_doc(doc, &company(), |d| put(d, "a", 1))
            .expect("create");
        store.edit_doc(doc, |d| put(d, "b", 2)).expect("edit");
        assert_eq!(store.pending_upload().expect("count"), 2);
    }
    let store = open(dir.path());
    let d = store.read_doc(&doc).expect("read").expect("exists");
    assert_eq!((value(&d, "a"), value(&d, "b")), (Some(1), Some(2)));
    assert_eq!(store.pending_upload().expect("count"), 2);
    let batch = SyncStore(&store)
        .outbox_batch(1 << 20, 100)
        .expect("batch")
        .expect("some");
    assert_eq!(batch.docs.len(), 1);
    assert_eq!(batch.docs[0].changes.len(), 2);
    SyncStore(&store).ack_outbox(batch.upto).expect("ack");
    drop(store);
    assert_eq!(open(dir.path()).pending_upload().expect("count"), 0);
}

#[test]
fn compaction_keeps_every_value_and_bounds_chunks() {
    let dir = tempfile::tempdir().expect("tmp");
    Store::init(dir.path(), &identity()).expect("init");
    let store = open(dir.path());
    let doc = DocId([2; 16]);
    store
        .create_doc(doc, &company(), |d| put(d, "k0", 0))
        .expect("create");
    let n = i64::from(COMPACT_AFTER_CHUNKS) * 3;
    for i in 1..n {
        store
            .edit_doc(doc, |d| put(d, &format!("k{i}"), i))
            .expect("edit");
        assert!(store.chunk_count(&doc).expect("chunks") < COMPACT_AFTER_CHUNKS);
    }
    drop(store);
    let store = open(dir.path());
    let d = store.read_doc(&doc).expect("read").expect("exists");
    for i in 0..n {
        assert_eq!(value(&d, &format!("k{i}")), Some(i));
    }
}

#[test]
fn a_second_process_is_refused_and_missing_init_is_reported() {
    let dir = tempfile::tempdir().expect("tmp");
    assert!(matches!(
        Store::open(dir.path(), Arc::new(NoIndex)),
        Err(StoreError::NotInitialised(_))
    ));
    Store::init(dir.path(), &identity()).expect("init");
    assert!(matches!(
        Store::init(dir.path(), &identity()),
        Err(StoreError::AlreadyInitialised(_))
    ));
    let _held = open(dir.path());
    assert!(matches!(
        Store::open(dir.path(), Arc::new(NoIndex)),
        Err(StoreError::Locked(_))
    ));
}

#[test]
fn unknown_documents_and_failed_edits_change_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    Store::init(dir.path(), &identity()).expect("init");
    let store = open(dir.path());
    assert!(matches!(
        store.edit_doc(DocId([3; 16]), |d| put(d, "a", 1)),
        Err(StoreError::UnknownDoc(_))
    ));
    let doc = DocId([4; 16]);
    store
        .create_doc(doc, &company(), |d| put(d, "a", 1))
        .expect("create");
    // The caller's own error type comes back as it was, typed.
    #[derive(Debug)]
    enum Refusal {
        Domain,
        Store,
    }
    impl From<StoreError> for Refusal {
        fn from(_: StoreError) -> Self {
            Refusal::Store
        }
    }
    let failed: Result<(), Refusal> = store.edit_doc(doc, |d| {
        put(d, "a", 99).map_err(|_| Refusal::Store)?;
        Err(Refusal::Domain)
    });
    assert!(matches!(failed, Err(Refusal::Domain)));
    let d = store.read_doc(&doc).expect("read").expect("exists");
    assert_eq!(value(&d, "a"), Some(1));
    assert_eq!(store.pending_upload().expect("count"), 1);
}

struct CountKeys;
impl Indexer for CountKeys {
    fn summarize(&self, doc: &Automerge) -> Option<Vec<u8>> {
        Some(vec![doc.keys(ROOT).count() as u8])
    }
}

#[test]
fn a_feed_page_lands_with_its_checkpoint_and_updates_summaries() {
    let src = tempfile::tempdir().expect("tmp");
    Store::init(src.path(), &identity()).expect("init");
    let writer = open(src.path());
    let doc = DocId([5; 16]);
    writer
        .create_doc(doc, &company(), |d| put(d, "x", 7))
        .expect("create");
    writer.edit_doc(doc, |d| put(d, "y", 8)).expect("edit");
    let batch = SyncStore(&writer)
        .outbox_batch(1 << 20, 100)
        .expect("b")
        .expect("some");
    let bytes: Vec<u8> = batch.docs[0]
        .changes
        .iter()
        .flat_map(|c| c.to_vec())
        .collect();

    let dst = tempfile::tempdir().expect("tmp");
    Store::init(
        dst.path(),
        &Identity {
            replica: ReplicaId([2; 16]),
            ..identity()
        },
    )
    .expect("init");
    let reader = Store::open(dst.path(), Arc::new(CountKeys)).expect("open");
    let mut sync = SyncStore(&reader);
    sync.set_epoch(RelayEpoch([1; 16]), false).expect("epoch");
    let page = FeedPage {
        company: company(),
        from: 0,
        upto: 3,
        entries: vec![FeedEntry {
            seq: 3,
            doc,
            changes: bytes,
        }],
    };
    sync.apply_feed(&page).expect("apply");
    assert_eq!(sync.checkpoint(&company()).expect("cp"), 3);
    let d = reader.read_doc(&doc).expect("read").expect("exists");
    assert_eq!((value(&d, "x"), value(&d, "y")), (Some(7), Some(8)));
    assert_eq!(reader.summaries().expect("s"), vec![(doc, vec![2])]);
    assert_eq!(
        reader.pending_upload().expect("count"),
        0,
        "remote changes never enter the outbox"
    );
    let digests = sync.doc_digests(&company()).expect("digests");
    assert_eq!(digests.len(), 1);
    // A new relay epoch forgets checkpoints and, when asked, owes a repair.
    sync.set_epoch(RelayEpoch([2; 16]), true).expect("epoch");
    assert_eq!(sync.checkpoint(&company()).expect("cp"), 0);
    assert!(sync.needs_repair(&company()).expect("repair"));
    sync.set_checkpoint(&company(), 10).expect("cp");
    assert!(!sync.needs_repair(&company()).expect("repair"));
}

#[test]
fn a_late_acknowledgement_never_deletes_a_newer_change() {
    let dir = tempfile::tempdir().expect("tmp");
    Store::init(dir.path(), &identity()).expect("init");
    let doc = DocId([3; 16]);
    let store = open(dir.path());
    store
        .create_doc(doc, &company(), |d| put(d, "a", 1))
        .expect("create");
    store.edit_doc(doc, |d| put(d, "b", 2)).expect("edit");
    let first = SyncStore(&store)
        .outbox_batch(1 << 20, 100)
        .expect("b")
        .expect("some");
    SyncStore(&store).ack_outbox(first.upto).expect("ack");
    assert_eq!(store.pending_upload().expect("count"), 0);
    // The outbox is empty; a new change must not reuse an acknowledged position, even after
    // reopening, or a duplicate of the old acknowledgement would delete it unsent.
    drop(store);
    let store = open(dir.path());
    store.edit_doc(doc, |d| put(d, "c", 3)).expect("edit");
    let mut sync = SyncStore(&store);
    sync.ack_outbox(first.upto).expect("late duplicate ack");
    let next = sync
        .outbox_batch(1 << 20, 100)
        .expect("b")
        .expect("still pending");
    assert!(next.upto > first.upto, "{} after {}", next.upto, first.upto);
}

/// Documents arriving for the first time are parsed on every core; a page mixing them with a
/// document named twice, a document already held and bytes Automerge refuses must land exactly
/// as entries applied one by one would.
#[test]
fn a_page_of_new_documents_lands_whole_however_it_is_parsed() {
    let change_bytes = |d: &mut AutoCommit| -> Vec<u8> {
        d.get_last_local_change()
            .expect("a change")
            .raw_bytes()
            .to_vec()
    };
    let dir = tempfile::tempdir().expect("tmp");
    Store::init(dir.path(), &identity()).expect("init");
    let store = Store::open(dir.path(), Arc::new(CountKeys)).expect("open");
    let mut sync = SyncStore(&store);
    sync.set_epoch(RelayEpoch([1; 16]), false).expect("epoch");

    // One document already held.
    let held = DocId([200; 16]);
    let mut held_doc = AutoCommit::new();
    put(&mut held_doc, "a", 1).expect("put");
    let first = change_bytes(&mut held_doc);
    let page = |from: u64, entries: Vec<(DocId, Vec<u8>)>| FeedPage {
        company: company(),
        from,
        upto: from + entries.len() as u64,
        entries: entries
            .into_iter()
            .enumerate()
            .map(|(i, (doc, changes))| FeedEntry {
                seq: from + i as u64 + 1,
                doc,
                changes,
            })
            .collect(),
    };
    sync.apply_feed(&page(0, vec![(held, first)]))
        .expect("first page");

    let mut entries = Vec::new();
    let mut fresh = Vec::new();
    for n in 0..40u8 {
        let mut d = AutoCommit::new();
        put(&mut d, "n", i64::from(n)).expect("put");
        if n % 5 == 0 {
            // Large enough to be kept as a snapshot on arrival.
            d.put(ROOT, "notes", "x".repeat(4096)).expect("put");
        }
        d.commit();
        let id = DocId([n + 1; 16]);
        entries.push((id, d.save()));
        fresh.push((id, d));
    }
    // A new document named twice in the page, and a change to the held one.
    let twice = DocId([100; 16]);
    let mut twice_doc = AutoCommit::new();
    put(&mut twice_doc, "a", 1).expect("put");
    let one = change_bytes(&mut twice_doc);
    put(&mut twice_doc, "b", 2).expect("put");
    let two = change_bytes(&mut twice_doc);
    put(&mut held_doc, "b", 2).expect("put");
    let later = change_bytes(&mut held_doc);
    entries.insert(7, (twice, one));
    entries.insert(21, (held, later));
    entries.push((twice, two));
    let refused = DocId([150; 16]);
    entries.insert(30, (refused, b"not an automerge change".to_vec()));
    let upto = 1 + entries.len() as u64;
    sync.apply_feed(&page(1, entries)).expect("second page");
    let fresh: Vec<(DocId, Vec<[u8; 32]>)> = fresh
        .iter_mut()
        .map(|(id, d)| {
            let mut heads: Vec<[u8; 32]> = d.get_heads().iter().map(|h| h.0).collect();
            heads.sort();
            (*id, heads)
        })
        .collect();

    let check = |store: &Store| {
        for (n, (id, want)) in fresh.iter().enumerate() {
            let got = store.read_doc(id).expect("read").expect("stored");
            assert_eq!(value(&got, "n"), Some(n as i64), "document {n}");
            assert_eq!(
                &store.doc_meta(id).expect("meta").expect("meta").heads,
                want
            );
        }
        for id in [twice, held] {
            let got = store.read_doc(&id).expect("read").expect("stored");
            assert_eq!((value(&got, "a"), value(&got, "b")), (Some(1), Some(2)));
        }
        assert!(store.read_doc(&refused).expect("read").is_none());
        assert_eq!(store.doc_count().expect("count"), 42);
        let summaries = store.summaries().expect("summaries");
        assert_eq!(summaries.len(), 42);
        for (id, summary) in summaries {
            let keys = store
                .read_doc(&id)
                .expect("read")
                .expect("doc")
                .keys(ROOT)
                .count();
            assert_eq!(summary, vec![keys as u8], "summary of {id}");
        }
    };
    check(&store);
    assert_eq!(sync.checkpoint(&company()).expect("cp"), upto);
    drop(store);
    check(&Store::open(dir.path(), Arc::new(CountKeys)).expect("reopen"));
}

#[test]
fn an_edit_too_large_to_upload_is_refused_before_it_is_acknowledged() {
    let dir = tempfile::tempdir().expect("tmp");
    Store::init(dir.path(), &identity()).expect("init");
    let store = open(dir.path());
    let doc = DocId([5; 16]);
    store
        .create_doc(doc, &company(), |d| put(d, "a", 1))
        .expect("create");
    let limit = ficha_core::frame::MAX_CHANGE_BYTES;
    // Random bytes: the change's compression cannot bring it under the limit.
    let blob: String = (0..limit + 1024)
        .map(|i| char::from(b'a' + ((i * 7919 + i / 3) % 26) as u8))
        .collect();
    let refused = store.edit_doc(doc, |d| -> Result<(), StoreError> {
        Ok(d.put(ROOT, "huge", blob.as_str())?)
    });
    assert!(
        matches!(refused, Err(StoreError::TooLarge { limit: l, .. }) if l == limit),
        "{refused:?}"
    );
    assert_eq!(store.pending_upload().expect("count"), 1, "nothing queued");
    let d = store.read_doc(&doc).expect("read").expect("exists");
    assert!(
        d.get(ROOT, "huge").expect("get").is_none(),
        "nothing stored"
    );
    drop(store);
    let reopened = open(dir.path());
    assert_eq!(
        reopened.pending_upload().expect("count"),
        1,
        "nor journaled"
    );
}

#[test]
fn a_damaged_database_file_is_a_clear_error_at_open() {
    let dir = tempfile::tempdir().expect("tmp");
    Store::init(dir.path(), &identity()).expect("init");
    {
        let store = open(dir.path());
        for i in 0..200u8 {
            store
                .create_doc(DocId([i; 16]), &company(), |d| put(d, "n", i64::from(i)))
                .expect("create");
        }
    }
    let path = dir.path().join(ficha_store::DB_FILE);
    let mut bytes = std::fs::read(&path).expect("read");
    // Garbage over the middle of the file, where the tables' pages are.
    let len = bytes.len();
    for b in &mut bytes[len / 3..len / 3 + 8192] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).expect("write");
    match Store::open(dir.path(), Arc::new(NoIndex)) {
        Err(StoreError::Damaged { reason, .. }) => assert!(!reason.is_empty()),
        Err(other) => panic!("expected a damaged-database error, got {other}"),
        Ok(store) => panic!(
            "a damaged database opened, with {} documents",
            store.doc_count().unwrap_or(0)
        ),
    }
}
