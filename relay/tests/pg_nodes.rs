//! Two relay nodes (two relay cores) on one PostgreSQL database: a replica uploads through one
//! node, and a replica that connects to the other resumes from a checkpoint and gets exactly
//! what follows it; the other node admits the next change to the same document. A checkpoint is
//! valid on every node, until the epoch is rotated after a restore.

mod common;

use common::{Writer, upload};
use ficha_core::frame::{DEFAULT_MAX_FRAME, Frame, Hello};
use ficha_core::relay::{ConnId, Output, Relay, RelayConfig, RelayStore};
use ficha_core::token::{Claims, sign};
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId};
use ficha_relay::pg::PgRelayStore;

const SECRET: [u8; 32] = [4; 32];

fn token(name: &str) -> String {
    sign(
        &SECRET,
        &Claims {
            replica: name.into(),
            companies: vec![Company::new("acme").expect("company")],
            write: true,
            issued_at: 0,
            expires_at: u64::MAX,
            code: String::new(),
        },
    )
}

fn frames(out: &[Output], conn: ConnId) -> Vec<Frame> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(c, b) if *c == conn => Frame::decode(b, DEFAULT_MAX_FRAME).ok(),
            _ => None,
        })
        .collect()
}

fn hello(relay: &mut Relay<PgRelayStore>, conn: ConnId, replica: ReplicaId, name: &str) {
    relay.connect(conn);
    let out = relay.receive(
        conn,
        &Frame::Hello(Hello {
            replica,
            token: token(name),
        })
        .encode(),
        10,
    );
    assert!(
        matches!(frames(&out, conn)[..], [Frame::Welcome(_)]),
        "welcomed"
    );
}

#[test]
fn a_checkpoint_taken_on_one_node_is_valid_on_another() {
    let Some(url) = common::postgres() else {
        return;
    };
    let schema = format!("nodes_{}", std::process::id());
    let node = |epoch: u8| {
        Relay::new(
            PgRelayStore::connect(&url, Some(&schema), RelayEpoch([epoch; 16])).expect("pg"),
            RelayConfig::new(SECRET),
        )
    };
    let (mut a, mut b) = (node(1), node(2));
    assert_eq!(
        a.store().epoch(),
        b.store().epoch(),
        "one epoch for the cluster"
    );
    let doc = DocId([3; 16]);
    let writer_id = ReplicaId([1; 16]);
    let mut writer = Writer::new(writer_id, doc);
    hello(&mut a, 1, writer_id, "writer");
    let out = a.receive(
        1,
        &upload(1, doc, "acme", vec![writer.edit(1), writer.edit(2)]).encode(),
        10,
    );
    assert!(
        frames(&out, 1)
            .iter()
            .any(|f| matches!(f, Frame::Ack { upto: 1 }))
    );
    let checkpoint = a
        .store()
        .read_feed(&Company::new("acme").expect("c"), 0, usize::MAX)
        .expect("feed")
        .last()
        .map(|e| e.seq)
        .expect("an entry");
    let out = a.receive(
        1,
        &upload(2, doc, "acme", vec![writer.edit(3)]).encode(),
        10,
    );
    assert!(
        frames(&out, 1)
            .iter()
            .any(|f| matches!(f, Frame::Ack { upto: 2 }))
    );

    // A reader that had reached `checkpoint` on node a resumes on node b.
    let reader_id = ReplicaId([2; 16]);
    hello(&mut b, 7, reader_id, "reader");
    let subscribe = Frame::Subscribe {
        company: Company::new("acme").expect("c"),
        after: checkpoint,
    };
    let out = b.receive(7, &subscribe.encode(), 11);
    let pages: Vec<_> = frames(&out, 7)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Feed(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(pages.len(), 1, "one page after the checkpoint");
    assert_eq!(pages[0].from, checkpoint);
    assert_eq!(pages[0].entries.len(), 1, "only what followed it");
    // Node b admits the writer's next change on top of what node a stored.
    hello(&mut b, 8, writer_id, "writer");
    let out = b.receive(
        8,
        &upload(3, doc, "acme", vec![writer.edit(4)]).encode(),
        12,
    );
    assert!(
        frames(&out, 8)
            .iter()
            .any(|f| matches!(f, Frame::Ack { upto: 3 })),
        "{:?}",
        frames(&out, 8)
    );
    drop((a, b));
    common::drop_schemas(&url, &schema);
}

#[test]
fn rotating_the_epoch_after_a_restore_reaches_every_node_that_starts() {
    let Some(url) = common::postgres() else {
        return;
    };
    let schema = "nodes_rotate";
    common::drop_schemas(&url, schema);
    let first = RelayEpoch([1; 16]);
    let mut a = PgRelayStore::connect(&url, Some(schema), first).expect("node a");
    let b = PgRelayStore::connect(&url, Some(schema), RelayEpoch([2; 16])).expect("node b");
    assert_eq!(b.epoch(), first, "a node joining takes the cluster's epoch");
    drop(b);
    let rotated = RelayEpoch([3; 16]);
    a.rotate_epoch(rotated).expect("rotate");
    assert_eq!(a.epoch(), rotated);
    let c = PgRelayStore::connect(&url, Some(schema), RelayEpoch([4; 16])).expect("node c");
    assert_eq!(
        c.epoch(),
        rotated,
        "a node started after the rotation has the new epoch"
    );
    drop((a, c));
    common::drop_schemas(&url, schema);
}
