//! The redb relay store behaves like the in-memory model the simulation runs on.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ROOT};
use ficha_core::digest::heads_digest;
use ficha_core::ids::actor_for;
use ficha_core::mem::MemRelayStore;
use ficha_core::relay::{IngestDoc, RelayStore};
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId};
use ficha_relay::pg::PgRelayStore;
use ficha_relay::store::{KEEP_RECENT_ENTRIES, RedbRelayStore, restore};

mod common;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn changes(seed: u64) -> Vec<(DocId, Company, Vec<Change>)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut docs: Vec<(DocId, Company, AutoCommit)> = (0..6u8)
        .map(|i| {
            let company = Company::new(if i % 2 == 0 { "acme" } else { "beta" }).expect("c");
            (
                DocId([i; 16]),
                company,
                AutoCommit::new().with_actor(actor_for(ReplicaId([1; 16]), 1)),
            )
        })
        .collect();
    let mut out = Vec::new();
    for step in 0..60 {
        let i = rng.random_range(0..docs.len());
        let (id, company, doc) = &mut docs[i];
        doc.put(ROOT, format!("k{}", rng.random_range(0..5)), step)
            .expect("put");
        doc.commit();
        let c = doc.get_last_local_change().expect("change");
        out.push((*id, company.clone(), vec![c]));
    }
    out
}

fn batch(items: &[(DocId, Company, Vec<Change>)]) -> Vec<IngestDoc> {
    items
        .iter()
        .map(|(doc, company, changes)| IngestDoc::applied(*doc, company.clone(), changes.clone()))
        .collect()
}

fn same<A: RelayStore, B: RelayStore>(a: &A, b: &B) {
    for c in ["acme", "beta"] {
        let c = Company::new(c).expect("c");
        let fa = a.read_feed(&c, 0, usize::MAX).expect("feed");
        let fb = b.read_feed(&c, 0, usize::MAX).expect("feed");
        assert_eq!(fa, fb, "feeds of {c}");
        assert_eq!(
            a.read_feed(&c, 3, 1).expect("f"),
            b.read_feed(&c, 3, 1).expect("f"),
            "pages"
        );
        let (ha, da) = a.doc_digests(&c).expect("digests");
        let (hb, db) = b.doc_digests(&c).expect("digests");
        assert_eq!((ha, &da), (hb, &db), "digests of {c}");
        for (doc, digest) in da {
            let loaded = b.load_doc(&doc).expect("load").expect("exists");
            assert_eq!(
                heads_digest(&loaded.doc.get_heads()),
                digest,
                "incremental heads are exact"
            );
            assert_eq!(
                a.doc_company(&doc).expect("c"),
                b.doc_company(&doc).expect("c")
            );
        }
    }
}

/// Ingests the same batches (each twice) into the model and `store`; both give the same new
/// entries, and storing a batch again stores nothing.
fn ingest_alike(
    model: &mut MemRelayStore,
    store: &mut impl RelayStore,
    all: &[(DocId, Company, Vec<Change>)],
) {
    let origin = ReplicaId([1; 16]);
    let entries = |v: Vec<ficha_core::relay::NewEntry>| {
        v.into_iter()
            .map(|e| (e.company, e.entry))
            .collect::<Vec<_>>()
    };
    for (i, chunk) in all.chunks(7).enumerate() {
        let a = model.ingest(origin, batch(chunk)).expect("ingest");
        let b = store.ingest(origin, batch(chunk)).expect("ingest");
        assert_eq!(entries(a), entries(b), "new entries of batch {i}");
        assert!(
            store
                .ingest(origin, batch(chunk))
                .expect("again")
                .is_empty()
        );
        model.ingest(origin, batch(chunk)).expect("again");
    }
}

#[test]
fn postgres_matches_the_model_and_every_node_shares_it() {
    let Some(url) = common::postgres() else {
        return;
    };
    let schema = format!("model_{}", std::process::id());
    let mut model = MemRelayStore::new(RelayEpoch([0; 16]));
    let mut pg = PgRelayStore::connect(&url, Some(&schema), RelayEpoch([9; 16])).expect("pg");
    ingest_alike(&mut model, &mut pg, &changes(3));
    same(&model, &pg);
    // A second node on the same database: the same epoch (the first node's), the same answers.
    let other = PgRelayStore::connect(&url, Some(&schema), RelayEpoch([7; 16])).expect("pg");
    assert_eq!(other.epoch(), RelayEpoch([9; 16]));
    same(&model, &other);
    drop((pg, other));
    common::drop_schemas(&url, &schema);
}

#[test]
fn redb_matches_the_model_including_duplicates() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut model = MemRelayStore::new(RelayEpoch([0; 16]));
    let mut redb = RedbRelayStore::open(dir.path()).expect("open");
    let all = changes(3);
    ingest_alike(&mut model, &mut redb, &all);
    same(&model, &redb);
    drop(redb);
    let reopened = RedbRelayStore::open(dir.path()).expect("reopen");
    same(&model, &reopened);
    assert_eq!(reopened.counts().expect("counts").changes, all.len() as u64);
}

#[test]
fn a_backup_restores_with_a_new_epoch() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut redb = RedbRelayStore::open(dir.path()).expect("open");
    redb.ingest(ReplicaId([1; 16]), batch(&changes(5)[..10]))
        .expect("ingest");
    let before = redb.epoch();
    let backup = dir.path().join("backup.redb");
    redb.backup(&backup).expect("backup");
    redb.ingest(ReplicaId([1; 16]), batch(&changes(5)[10..]))
        .expect("ingest more");
    drop(redb);
    let target = dir.path().join("restored");
    let epoch = restore(&backup, &target).expect("restore");
    assert_ne!(epoch, before, "replicas must notice the restore");
    let restored = RedbRelayStore::open(&target).expect("open");
    assert_eq!(restored.epoch(), epoch);
    assert_eq!(restored.counts().expect("counts").changes, 10);
}

#[test]
fn compaction_keeps_every_checkpoint_valid() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut redb = RedbRelayStore::open(dir.path()).expect("open");
    let all = changes(9);
    for chunk in all.chunks(4) {
        redb.ingest(ReplicaId([1; 16]), batch(chunk))
            .expect("ingest");
    }
    let acme = Company::new("acme").expect("c");
    let before = redb.read_feed(&acme, 0, usize::MAX).expect("feed");
    let full: std::collections::BTreeMap<DocId, Vec<automerge::ChangeHash>> = redb
        .doc_digests(&acme)
        .expect("d")
        .1
        .iter()
        .map(|(d, _)| {
            (*d, {
                let mut h = redb.load_doc(d).expect("l").expect("e").doc.get_heads();
                h.sort();
                h
            })
        })
        .collect();
    assert!(redb.compact(usize::MAX).expect("compact") > 0);
    let after = redb.read_feed(&acme, 0, usize::MAX).expect("feed");
    assert!(after.len() < before.len(), "entries were folded");
    // A replica at any checkpoint, old entries up to it then the compacted feed after it,
    // ends with exactly the full documents.
    let head = before.last().map_or(0, |e| e.seq);
    for checkpoint in 0..=head {
        let mut docs: std::collections::BTreeMap<DocId, automerge::Automerge> = Default::default();
        for e in before
            .iter()
            .filter(|e| e.seq <= checkpoint)
            .chain(after.iter().filter(|e| e.seq > checkpoint))
        {
            docs.entry(e.doc)
                .or_default()
                .load_incremental(&e.changes)
                .expect("load");
        }
        for (doc, heads) in &full {
            let mut h = docs.get(doc).map(|d| d.get_heads()).unwrap_or_default();
            h.sort();
            assert_eq!(&h, heads, "checkpoint {checkpoint}, doc {doc}");
        }
    }
    // Digests and loads are unchanged; nothing is compacted twice without new changes.
    for (doc, heads) in &full {
        let mut h = redb.load_doc(doc).expect("l").expect("e").doc.get_heads();
        h.sort();
        assert_eq!(&h, heads);
    }
    assert_eq!(redb.compact(usize::MAX).expect("again"), 0);
}

#[test]
fn after_compaction_a_recent_reader_still_downloads_only_recent_changes() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut redb = RedbRelayStore::open(dir.path()).expect("open");
    let acme = Company::new("acme").expect("c");
    let doc = DocId([1; 16]);
    let mut d = AutoCommit::new().with_actor(actor_for(ReplicaId([1; 16]), 1));
    let mut edit = |n: i64| {
        d.put(ROOT, "visit", n).expect("put");
        d.commit();
        vec![IngestDoc::applied(
            doc,
            acme.clone(),
            vec![d.get_last_local_change().expect("change").clone()],
        )]
    };
    // A history uploaded at once, then edits one at a time, compacting as the server does.
    let first: Vec<IngestDoc> = (0..20).flat_map(&mut edit).collect();
    let merged = IngestDoc::applied(
        doc,
        acme.clone(),
        first.into_iter().flat_map(|i| i.applied).collect(),
    );
    redb.ingest(ReplicaId([1; 16]), vec![merged])
        .expect("history");
    for n in 0..10 {
        redb.ingest(ReplicaId([1; 16]), edit(100 + n))
            .expect("edit");
        let before = redb.read_feed(&acme, 0, usize::MAX).expect("feed");
        redb.compact(usize::MAX).expect("compact");
        let after = redb.read_feed(&acme, 0, usize::MAX).expect("feed");
        // The newest entries (past the first, which holds a history from its start) are
        // untouched: a replica that synced before them gets exactly those changes, never the
        // whole document again.
        let recent = (before.len() - 1).min(KEEP_RECENT_ENTRIES);
        assert_eq!(
            after[after.len() - recent..],
            before[before.len() - recent..],
            "after edit {n}"
        );
        assert!(
            after.len() <= KEEP_RECENT_ENTRIES + 1,
            "older entries are folded"
        );
        assert!(
            ficha_core::change::is_saved_document(&after[0].changes),
            "the oldest entry is a saved document"
        );
    }
}

/// A stored change Automerge cannot apply (its sequence number skips ahead): what a relay from
/// before admission, or a damaged disk, may hold.
fn seq_gap(doc: &mut AutoCommit) -> Change {
    doc.put(ROOT, "gap", 1).expect("put");
    doc.commit();
    let c = doc.get_last_local_change().expect("change");
    let mut json = serde_json::to_value(c.decode()).expect("json");
    json["seq"] = serde_json::json!(json["seq"].as_u64().expect("seq") + 5);
    json.as_object_mut().map(|m| m.remove("hash"));
    Change::from(serde_json::from_value::<automerge::ExpandedChange>(json).expect("expanded"))
}

#[test]
fn compaction_reports_a_document_it_cannot_fold_and_folds_the_others() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut redb = RedbRelayStore::open(dir.path()).expect("open");
    let acme = Company::new("acme").expect("c");
    let (bad, good) = (DocId([1; 16]), DocId([2; 16]));
    let mut docs = [
        AutoCommit::new().with_actor(actor_for(ReplicaId([1; 16]), 1)),
        AutoCommit::new().with_actor(actor_for(ReplicaId([1; 16]), 2)),
    ];
    for step in 0..(KEEP_RECENT_ENTRIES as i64 + 4) {
        for (i, id) in [bad, good].into_iter().enumerate() {
            let change = if i == 0 && step == 1 {
                seq_gap(&mut docs[0])
            } else {
                docs[i].put(ROOT, "n", step).expect("put");
                docs[i].commit();
                docs[i].get_last_local_change().expect("change")
            };
            redb.ingest(
                ReplicaId([1; 16]),
                vec![IngestDoc::applied(id, acme.clone(), vec![change])],
            )
            .expect("ingest");
        }
    }
    let entries_of = |feed: &[ficha_core::frame::FeedEntry], d: DocId| {
        feed.iter().filter(|e| e.doc == d).count()
    };
    let before = redb.read_feed(&acme, 0, usize::MAX).expect("feed");
    redb.compact(usize::MAX).expect("compaction goes on");
    let after = redb.read_feed(&acme, 0, usize::MAX).expect("feed");
    let unfoldable = redb.handle().unfoldable().expect("list");
    assert_eq!(unfoldable.len(), 1, "{unfoldable:?}");
    assert_eq!(unfoldable[0].0, bad);
    assert_eq!(
        entries_of(&after, bad),
        entries_of(&before, bad),
        "left as stored"
    );
    assert!(
        entries_of(&after, good) < entries_of(&before, good),
        "the other is folded"
    );
    // A second pass does not retry it on its own, and still folds nothing wrong.
    redb.compact(usize::MAX).expect("again");
    assert_eq!(redb.read_feed(&acme, 0, usize::MAX).expect("feed"), after);
}

fn actor(b: u8) -> automerge::ActorId {
    automerge::ActorId::from(&[b; 16][..])
}

/// Binds actors (and replica names) in `store` as the model does: a refused batch binds none of
/// its actors, and a name or id bound elsewhere is refused.
fn bind_alike(store: &mut impl RelayStore) {
    let mut model = MemRelayStore::new(RelayEpoch([0; 16]));
    let steps: [(&str, Vec<automerge::ActorId>); 5] = [
        ("tablet", vec![actor(1), actor(2)]),
        ("tablet", vec![actor(1)]),
        ("kiosk", vec![actor(3), actor(2)]),
        ("kiosk", vec![actor(3)]),
        ("tablet", vec![actor(3)]),
    ];
    let mut results = Vec::new();
    for (name, actors) in &steps {
        let a = model.bind_actors(name, actors).expect("model");
        let b = store.bind_actors(name, actors).expect("store");
        assert_eq!(a, b, "{name} {actors:?}");
        results.push(b);
    }
    assert_eq!(
        results,
        vec![None, None, Some(actor(2)), None, Some(actor(3))],
        "a refused batch binds none of its actors: 3 was free until kiosk bound it alone"
    );
    for (name, id) in [("a", 1u8), ("a", 1), ("a", 2), ("b", 1), ("b", 2)] {
        let id = ReplicaId([id; 16]);
        assert_eq!(
            model.bind_replica(name, id).expect("model"),
            store.bind_replica(name, id).expect("store"),
            "{name} {id}"
        );
    }
}

#[test]
fn actor_bindings_on_postgres_match_the_model() {
    let Some(url) = common::postgres() else {
        return;
    };
    let schema = format!("bind_{}", std::process::id());
    let mut pg = PgRelayStore::connect(&url, Some(&schema), RelayEpoch([9; 16])).expect("pg");
    bind_alike(&mut pg);
    drop(pg);
    common::drop_schemas(&url, &schema);
}

/// Binds actors as the model does, across a reopen and into a backup.
#[test]
fn actor_bindings_match_the_model_and_survive_reopen_and_backup() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut redb = RedbRelayStore::open(dir.path()).expect("open");
    bind_alike(&mut redb);
    let backup = dir.path().join("backup.redb");
    redb.backup(&backup).expect("backup");
    drop(redb);
    let mut reopened = RedbRelayStore::open(dir.path()).expect("reopen");
    assert_eq!(
        reopened.bind_actors("kiosk", &[actor(1)]).expect("bind"),
        Some(actor(1))
    );
    let target = dir.path().join("restored");
    restore(&backup, &target).expect("restore");
    let mut restored = RedbRelayStore::open(&target).expect("open");
    assert_eq!(
        restored.bind_actors("tablet", &[actor(3)]).expect("bind"),
        Some(actor(3))
    );
}
