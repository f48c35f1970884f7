//! Uploads received back to back are stored together and acknowledged once, with the same
//! result as one by one; a document refused in a batch is reported and holds up nothing else.

mod common;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use common::{SECRET, acme, write_token};
use ficha_core::frame::{
    ByteBuf, DEFAULT_MAX_FRAME, DocChanges, ErrorCode, FeedEntry, Frame, Hello, Upload,
};
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
fn a_refused_document_is_reported_and_the_rest_of_the_batch_is_stored() {
    let mut frames = uploads(ReplicaId([1; 16]));
    // The third upload (document 1) carries a change written under another replica's actor.
    frames[2] = uploads(ReplicaId([7; 16])).swap_remove(2);
    let mut relay = relay();
    let slices: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let out = relay.receive_batch(WRITER, &slices, 10);

    let to_writer = frames_to(&out, WRITER);
    let refused: Vec<(u64, DocId, ErrorCode)> = to_writer
        .iter()
        .filter_map(|f| match f {
            Frame::Refused(r) => Some(r.docs.iter().map(move |d| (r.upto, d.doc, d.code))),
            _ => None,
        })
        .flatten()
        .collect();
    // The forged change, then document 1's next change, which followed it: neither applies.
    assert_eq!(
        refused,
        vec![
            (3, DocId([1; 16]), ErrorCode::BadChange),
            (5, DocId([1; 16]), ErrorCode::BadChange)
        ]
    );
    let last_refusal = to_writer
        .iter()
        .rposition(|f| matches!(f, Frame::Refused(_)))
        .expect("refusals");
    let ack = to_writer
        .iter()
        .position(|f| matches!(f, Frame::Ack { upto: 5 }))
        .expect("one cumulative ack");
    assert!(
        last_refusal < ack,
        "refusals come before the ack they qualify"
    );
    let stored: Vec<(u64, DocId)> = entries(&out).iter().map(|e| (e.seq, e.doc)).collect();
    assert_eq!(
        stored,
        vec![
            (1, DocId([1; 16])),
            (2, DocId([2; 16])),
            (3, DocId([2; 16]))
        ],
        "uploads 1, 2 and 4 are stored"
    );
    assert!(
        !to_writer
            .iter()
            .any(|f| matches!(f, Frame::Error(e) if e.fatal)),
        "the session goes on"
    );
    assert_eq!(relay.session_count(), 2);
}
