//! A write token cannot make the relay store a change some replica could not apply: each kind
//! of such change is refused with its reason, nothing of it is served, and the company's
//! honest replicas, and compaction, go on.

mod common;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ExpandedChange, ROOT};
use ficha_core::frame::{ErrorCode, Frame};
use ficha_core::ids::actor_for;
use ficha_core::{Company, DocId, ReplicaId};
use ficha_relay::issue_token;

use common::*;

/// `change` rebuilt with `f` applied to its expanded form.
fn rewrite(change: &Change, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut json = serde_json::to_value(change.decode()).expect("json");
    f(&mut json);
    json.as_object_mut().map(|m| m.remove("hash"));
    let expanded: ExpandedChange = serde_json::from_value(json).expect("expanded");
    Change::from(expanded).raw_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_that_would_not_apply_are_refused_and_the_company_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let mallory = ReplicaId([6; 16]);
    let token = issue_token(dir.path(), "mallory", &["acme".into()], false, 1).expect("token");
    let mut ws = connect(&relay).await;
    assert!(matches!(
        hello(&mut ws, mallory, token).await,
        Frame::Welcome(_)
    ));
    let doc = DocId([1; 16]);
    let mut d = AutoCommit::new().with_actor(actor_for(mallory, 1));
    d.put(ROOT, "name", "Ana").expect("put");
    d.commit();
    let first = d.get_last_local_change().expect("change");
    send(
        &mut ws,
        upload(1, doc, "acme", vec![first.raw_bytes().to_vec()]),
    )
    .await;
    assert_eq!(next(&mut ws).await, Some(Frame::Ack { upto: 1 }));
    d.put(ROOT, "name", "Ana María").expect("put");
    d.commit();
    let second = d.get_last_local_change().expect("change");

    let mut checksum = second.raw_bytes().to_vec();
    checksum[5] ^= 0x10;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "seq skips ahead",
            rewrite(&second, |v| v["seq"] = serde_json::json!(5)),
            "skipped",
        ),
        (
            "seq reused",
            rewrite(&second, |v| v["seq"] = serde_json::json!(1)),
            "already used",
        ),
        ("checksum", checksum, "checksum"),
        (
            "ops overlap",
            rewrite(&second, |v| v["startOp"] = serde_json::json!(1)),
            "overlap",
        ),
    ];
    for (i, (what, bytes, says)) in cases.into_iter().enumerate() {
        let upto = i as u64 + 2;
        send(&mut ws, upload(upto, doc, "acme", vec![bytes])).await;
        match next(&mut ws).await {
            Some(Frame::Refused(r)) => {
                assert_eq!(r.docs[0].code, ErrorCode::BadChange, "{what}");
                assert!(
                    r.docs[0].message.contains(says),
                    "{what}: {}",
                    r.docs[0].message
                );
            }
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
        assert_eq!(next(&mut ws).await, Some(Frame::Ack { upto }), "{what}");
    }
    assert_eq!(metric(&relay, "ficha_changes_stored_total").await, 1);

    // An honest reader of the company gets exactly the one good change, and can apply it.
    let reader = issue_token(dir.path(), "reader", &["acme".into()], true, 1).expect("token");
    let mut r = connect(&relay).await;
    assert!(matches!(
        hello(&mut r, ReplicaId([9; 16]), reader).await,
        Frame::Welcome(_)
    ));
    send(
        &mut r,
        Frame::Subscribe {
            company: Company::new("acme").expect("c"),
            after: 0,
        },
    )
    .await;
    let Some(Frame::Feed(page)) = next(&mut r).await else {
        panic!("a page");
    };
    let mut copy = automerge::Automerge::new();
    for e in &page.entries {
        copy.load_incremental(&e.changes).expect("applies");
    }
    assert_eq!(copy.get_heads(), vec![first.hash()]);
    // And the good next change of the same document is still taken.
    send(
        &mut ws,
        upload(9, doc, "acme", vec![second.raw_bytes().to_vec()]),
    )
    .await;
    assert_eq!(next(&mut ws).await, Some(Frame::Ack { upto: 9 }));
    relay.stop().await;

    // Compaction folds the document: everything stored loads.
    let mut store = ficha_relay::store::RedbRelayStore::open(dir.path()).expect("open");
    store.compact(usize::MAX).expect("compact");
    assert!(store.handle().unfoldable().expect("list").is_empty());
}
