//! Uploads received back to back are stored together and acknowledged once, with the same
//! result as one by one; a refused upload in a batch keeps what came before it and nothing after.

mod common;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use common::{SECRET, acme, write_token};
use ficha_core::frame::{ByteBuf, DEFAULT_MAX_FRAME, DocChanges, FeedEntry, Frame, Hello, Upload};
use ficha_core::ids::actor_for;
use ficha_core::mem::MemRelayStore;
use ficha_core::relay::{ConnId, Output, Relay, RelayConfig};
use ficha_core::{DocId, RelayEpoch, ReplicaId};

const WRITER: ConnId = 1;
const READER: ConnId = 2;

/// A relay with a writer session and a reader subscribed live to `acme`.
fn relay() -> Relay<MemRelayStore> {
    let mut relay = Relay::new(
        MemRelayStore::new(RelayEpoch([1; 16])),
        RelayConfig::new(SECRET),
    );
    for (conn, name, id) in [(WRITER, "writer", 1u8), (READER, "reader", 2)] {
        relay.connect(conn);
        let hello = Frame::Hello(Hello {
            replica: ReplicaId([id; 16]),
            token: write_token(name),
        });
        relay.receive(conn, &hello.encode(), 10);
    }
    let subscribe = Frame::Subscribe {
        company: acme(),
        after: 0,
    };
    let out = relay.receive(READER, &subscribe.encode(), 10);
    assert!(
        frames_to(&out, READER)
            .iter()
            .any(|f| matches!(f, Frame::CaughtUp { .. })),
        "the reader is live"
    );
    relay
}

/// Five uploads of one change each to two documents, written by `author`.
fn uploads(author: ReplicaId) -> Vec<Vec<u8>> {
    let mut docs = [
        AutoCommit::new().with_actor(actor_for(author, 1)),
        AutoCommit::new().with_actor(actor_for(author, 1)),
    ];
    (0..5u64)
        .map(|i| {
            let d = &mut docs[i as usize % 2];
            d.put(ROOT, "visit", i as i64).expect("put");
            d.commit();
            let change = d
                .get_last_local_change()
                .expect("change")
                .raw_bytes()
                .to_vec();
            Frame::Upload(Upload {
                upto: i + 1,
                docs: vec![DocChanges {
                    doc: DocId([i as u8 % 2 + 1; 16]),
                    company: acme(),
                    changes: vec![ByteBuf::from(change)],
                }],
            })
            .encode()
        })
        .collect()
}

fn frames_to(out: &[Output], conn: ConnId) -> Vec<Frame> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(c, b) if *c == conn => {
                Some(Frame::decode(b, DEFAULT_MAX_FRAME).expect("frame"))
            }
            _ => None,
        })
        .collect()
}

/// The changes the reader was sent, in feed order.
fn entries(out: &[Output]) -> Vec<FeedEntry> {
    frames_to(out, READER)
        .into_iter()
        .flat_map(|f| match f {
            Frame::Feed(page) => page.entries,
            _ => Vec::new(),
        })
        .collect()
}

fn acks(out: &[Output]) -> Vec<u64> {
    frames_to(out, WRITER)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Ack { upto } => Some(upto),
            _ => None,
        })
        .collect()
}

#[test]
fn a_batch_is_stored_and_pushed_as_one_and_acknowledged_once() {
    let frames = uploads(ReplicaId([1; 16]));
    let mut one_by_one = relay();
    let mut sequential = Vec::new();
    for f in &frames {
        sequential.extend(one_by_one.receive(WRITER, f, 10));
    }
    let mut batched = relay();
    let slices: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let together = batched.receive_batch(WRITER, &slices, 10);

    assert_eq!(acks(&sequential), vec![1, 2, 3, 4, 5]);
    assert_eq!(acks(&together), vec![5], "one cumulative acknowledgement");
    let pages = |out: &[Output]| {
        frames_to(out, READER)
            .iter()
            .filter(|f| matches!(f, Frame::Feed(_)))
            .count()
    };
    assert_eq!((pages(&sequential), pages(&together)), (5, 1));
    assert_eq!(
        entries(&sequential),
        entries(&together),
        "same feed either way"
    );
    assert_eq!(
        one_by_one.store().doc_ids().len(),
        batched.store().doc_ids().len()
    );
}

#[test]
fn a_refused_upload_keeps_what_came_before_it_and_nothing_after() {
    let mut frames = uploads(ReplicaId([1; 16]));
    // The third upload carries a change written under another replica's actor: forged.
    frames[2] = uploads(ReplicaId([7; 16])).swap_remove(2);
    let mut relay = relay();
    let slices: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let out = relay.receive_batch(WRITER, &slices, 10);

    assert_eq!(
        acks(&out),
        vec![2],
        "the two valid uploads before it are acknowledged"
    );
    let stored: Vec<u64> = entries(&out).iter().map(|e| e.seq).collect();
    assert_eq!(stored, vec![1, 2]);
    assert!(
        frames_to(&out, WRITER)
            .iter()
            .any(|f| matches!(f, Frame::Error(e) if e.fatal)),
        "the forger is told why"
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Close(c) if *c == WRITER))
    );
    assert_eq!(relay.session_count(), 1, "only the reader is left");
}
