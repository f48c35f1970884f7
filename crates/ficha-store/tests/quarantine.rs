//! Data from the relay that does not apply is set aside, never fatal and never lost; what
//! the relay refuses for good leaves the outbox and holds up nothing behind it.

mod common;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ExpandedChange, ROOT};
use common::{company, init, keys};
use ficha_core::frame::{ErrorCode, FeedEntry, FeedPage, RefusedDoc};
use ficha_core::ids::actor_for;
use ficha_core::replica::ReplicaStore;
use ficha_core::{DocId, ReplicaId};
use ficha_store::SyncStore;

fn page(from: u64, entries: Vec<(DocId, Vec<u8>)>) -> FeedPage {
    let upto = from + entries.len() as u64;
    FeedPage {
        company: company(),
        from,
        upto,
        entries: entries
            .into_iter()
            .enumerate()
            .map(|(i, (doc, changes))| FeedEntry {
                seq: from + 1 + i as u64,
                doc,
                changes,
            })
            .collect(),
    }
}

/// A change Automerge parses and then panics on: its sequence number skips one ahead.
fn seq_gap_after(first: &Change) -> Vec<u8> {
    let mut d = AutoCommit::new().with_actor(first.actor_id().clone());
    d.apply_changes([first.clone()]).expect("apply");
    d.put(ROOT, "later", 1).expect("put");
    d.commit();
    let next = d.get_last_local_change().expect("change");
    let mut json = serde_json::to_value(next.decode()).expect("json");
    json["seq"] = serde_json::json!(3);
    json.as_object_mut().map(|m| m.remove("hash"));
    let forged: ExpandedChange = serde_json::from_value(json).expect("expanded");
    Change::from(forged).raw_bytes().to_vec()
}

#[test]
fn a_document_that_does_not_apply_is_quarantined_and_the_rest_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = init(dir.path());
    let (bad, good) = (DocId([1; 16]), DocId([2; 16]));
    let mut writer = AutoCommit::new().with_actor(actor_for(ReplicaId([5; 16]), 1));
    writer.put(ROOT, "n", 1).expect("put");
    writer.commit();
    let first = writer.get_last_local_change().expect("change");
    let mut other = AutoCommit::new().with_actor(actor_for(ReplicaId([6; 16]), 1));
    other.put(ROOT, "m", 2).expect("put");
    other.commit();
    let fine = other
        .get_last_local_change()
        .expect("change")
        .raw_bytes()
        .to_vec();

    SyncStore(&store)
        .apply_feed(&page(0, vec![(bad, first.raw_bytes().to_vec())]))
        .expect("first page");
    // One entry Automerge panics on, one of garbage, one good: the page lands, the checkpoint
    // moves past all of it, and only the bad document is set aside.
    let hostile = page(
        1,
        vec![
            (bad, seq_gap_after(&first)),
            (DocId([3; 16]), b"not a change".to_vec()),
            (good, fine),
        ],
    );
    SyncStore(&store).apply_feed(&hostile).expect("no error");
    assert_eq!(SyncStore(&store).checkpoint(&company()).expect("cp"), 4);
    assert_eq!(
        keys(&store.read_doc(&good).expect("read").expect("doc")).get("m"),
        Some(&2)
    );
    assert_eq!(
        keys(&store.read_doc(&bad).expect("read").expect("doc")).get("n"),
        Some(&1),
        "what applied before stays"
    );
    let quarantined: Vec<DocId> = store
        .quarantined()
        .expect("list")
        .into_iter()
        .map(|q| q.doc)
        .collect();
    assert_eq!(quarantined, vec![bad, DocId([3; 16])]);
    assert!(
        store.quarantined().expect("list")[0]
            .reason
            .contains("Automerge")
    );

    // A repair that brings the document whole ends its quarantine.
    SyncStore(&store).unquarantine(&bad).expect("release");
    assert_eq!(store.quarantined().expect("list").len(), 1);
}

#[test]
fn refused_documents_leave_the_outbox_and_a_new_token_retries_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = init(dir.path());
    let (a, b) = (DocId([1; 16]), DocId([2; 16]));
    for (doc, n) in [(a, 1), (b, 2), (a, 3)] {
        let f = |d: &mut AutoCommit| d.put(ROOT, "k", n).map_err(ficha_store::StoreError::from);
        if n < 3 {
            store.create_doc(doc, &company(), f).expect("create");
        } else {
            store.edit_doc(doc, f).expect("edit");
        }
    }
    SyncStore(&store)
        .refuse(&[RefusedDoc {
            doc: a,
            code: ErrorCode::Forbidden,
            message: "this token may not write it".into(),
        }])
        .expect("refuse");
    assert_eq!(
        store.pending_upload().expect("outbox"),
        1,
        "b still goes up"
    );
    let refused = store.refused().expect("refused");
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|r| r.doc == a));
    assert_eq!(store.retry_refused().expect("retry"), 2);
    assert_eq!(store.pending_upload().expect("outbox"), 3);
    assert!(store.refused().expect("refused").is_empty());
}
