//! Limits that keep the relay's memory and sessions bounded, live pushes that stay in order
//! under concurrent uploads, and a shutdown that really lets go of the database.

mod common;

use std::time::Duration;

use rand::RngCore;

use ficha_core::frame::{ErrorCode, Frame};
use ficha_core::relay::RelayStore;
use ficha_core::{Company, DocId, ReplicaId};
use ficha_relay::store::RedbRelayStore;
use ficha_relay::{Limits, issue_token};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_until_one_closes() {
    let dir = tempfile::tempdir().expect("tmp");
    let limits = Limits {
        max_connections: 2,
        max_sessions_per_replica: 1,
        ..quick()
    };
    let relay = start(dir.path(), limits).await;
    let token = issue_token(dir.path(), "a", &["acme".into()], false, 1).expect("token");
    let mut first = connect(&relay).await;
    assert!(matches!(
        hello(&mut first, ReplicaId([1; 16]), token.clone()).await,
        Frame::Welcome(_)
    ));

    // Per replica name: the same token may not open a second session.
    let mut same_name = connect(&relay).await;
    let answer = hello(&mut same_name, ReplicaId([1; 16]), token.clone()).await;
    assert_eq!(error_code(Some(answer)), Some(ErrorCode::Limit));
    assert!(next(&mut same_name).await.is_none());
    wait_metric(&relay, "ficha_connections", 1).await;

    // Overall: with two sessions open, a third replica's hello is refused; a connection that
    // has not said hello holds no session slot.
    let _stranger = connect(&relay).await;
    let b = issue_token(dir.path(), "b", &["acme".into()], false, 1).expect("token");
    let mut second = connect(&relay).await;
    assert!(matches!(
        hello(&mut second, ReplicaId([2; 16]), b).await,
        Frame::Welcome(_)
    ));
    let c = issue_token(dir.path(), "c", &["acme".into()], false, 1).expect("token");
    let mut third = connect(&relay).await;
    let answer = hello(&mut third, ReplicaId([3; 16]), c).await;
    assert_eq!(error_code(Some(answer)), Some(ErrorCode::Limit));
    assert!(next(&mut third).await.is_none());

    drop(first);
    wait_metric(&relay, "ficha_sessions", 1).await;
    let mut again = connect(&relay).await;
    assert!(matches!(
        hello(&mut again, ReplicaId([1; 16]), token).await,
        Frame::Welcome(_)
    ));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_pages_arrive_in_sequence_under_concurrent_uploads() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let acme = Company::new("acme").expect("c");
    let reader_token = issue_token(dir.path(), "reader", &["acme".into()], true, 1).expect("t");
    let mut reader = connect(&relay).await;
    assert!(matches!(
        hello(&mut reader, ReplicaId([9; 16]), reader_token).await,
        Frame::Welcome(_)
    ));
    send(
        &mut reader,
        Frame::Subscribe {
            company: acme.clone(),
            after: 0,
        },
    )
    .await;
    assert_eq!(
        next(&mut reader).await,
        Some(Frame::CaughtUp {
            company: acme.clone(),
            upto: 0
        })
    );

    const PER_WRITER: u64 = 40;
    let mut writers = Vec::new();
    for w in 1..=3u8 {
        let token =
            issue_token(dir.path(), &format!("w{w}"), &["acme".into()], false, 1).expect("token");
        let mut ws = connect(&relay).await;
        let id = ReplicaId([w; 16]);
        assert!(matches!(hello(&mut ws, id, token).await, Frame::Welcome(_)));
        writers.push(tokio::spawn(async move {
            let mut doc = Writer::new(id, DocId([w; 16]));
            for i in 1..=PER_WRITER {
                send(&mut ws, upload(i, doc.doc, "acme", vec![doc.edit(i)])).await;
            }
            // Pipelined uploads may be stored together: acks are cumulative, rising to the last.
            let mut acked = 0;
            while acked < PER_WRITER {
                match next(&mut ws).await {
                    Some(Frame::Ack { upto }) if upto > acked => acked = upto,
                    other => panic!("expected a rising ack after {acked}, got {other:?}"),
                }
            }
        }));
    }
    let total = 3 * PER_WRITER;
    let mut cursor = 0;
    while cursor < total {
        match next(&mut reader).await {
            Some(Frame::Feed(page)) => {
                assert_eq!(page.from, cursor, "page follows the previous one");
                cursor = page.upto;
            }
            other => panic!("expected a feed page, got {other:?}"),
        }
    }
    for w in writers {
        w.await.expect("writer");
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_dropped() {
    let panics = panics();
    let dir = tempfile::tempdir().expect("tmp");
    let limits = Limits {
        queue: 2,
        ..quick()
    };
    let relay = start(dir.path(), limits).await;
    let acme = Company::new("acme").expect("c");
    let token = issue_token(dir.path(), "stuck", &["acme".into()], true, 1).expect("t");
    let mut stuck = connect(&relay).await;
    assert!(matches!(
        hello(&mut stuck, ReplicaId([9; 16]), token).await,
        Frame::Welcome(_)
    ));
    send(
        &mut stuck,
        Frame::Subscribe {
            company: acme,
            after: 0,
        },
    )
    .await;
    assert!(matches!(
        next(&mut stuck).await,
        Some(Frame::CaughtUp { .. })
    ));

    let token = issue_token(dir.path(), "w", &["acme".into()], false, 1).expect("t");
    let me = ReplicaId([1; 16]);
    let mut ws = connect(&relay).await;
    assert!(matches!(hello(&mut ws, me, token).await, Frame::Welcome(_)));
    let mut doc = Writer::new(me, DocId([1; 16]));
    let mut rng = rand::rng();
    let mut dropped = false;
    // Incompressible 512 KiB changes: kernel socket buffers fill, then the queue, then the
    // relay lets go of the session instead of buffering without bound.
    for i in 1..=200u64 {
        let mut blob = vec![0u8; 512 * 1024];
        rng.fill_bytes(&mut blob);
        send(&mut ws, upload(i, doc.doc, "acme", vec![doc.edit(blob)])).await;
        assert_eq!(next(&mut ws).await, Some(Frame::Ack { upto: i }));
        if metric(&relay, "ficha_sessions").await == 1 {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the stuck subscriber was dropped");
    // The stuck socket ends once what the kernel had buffered is read.
    let mut buffered = 0;
    while next(&mut stuck).await.is_some() {
        buffered += 1;
        assert!(
            buffered < 200,
            "the relay kept sending to a dropped session"
        );
    }
    relay.stop().await;
    assert_eq!(
        panics.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no relay task panicked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_closes_sessions_and_releases_the_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let token = issue_token(dir.path(), "a", &["acme".into()], false, 1).expect("token");
    let mut ws = connect(&relay).await;
    let epoch = match hello(&mut ws, ReplicaId([1; 16]), token).await {
        Frame::Welcome(w) => w.epoch,
        other => panic!("expected welcome, got {other:?}"),
    };
    tokio::time::timeout(Duration::from_secs(5), relay.stop())
        .await
        .expect("stop does not wait for the open session");
    assert!(next(&mut ws).await.is_none(), "the session was closed");
    let store = RedbRelayStore::open(dir.path()).expect("the database is free again");
    assert_eq!(store.epoch(), epoch);
    assert!(!dir.path().join(ficha_relay::ADDR_FILE).exists());
}

#[test]
fn a_relay_runs_on_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tmp");
        let relay = start(dir.path(), quick()).await;
        let token = issue_token(dir.path(), "a", &["acme".into()], false, 1).expect("token");
        let me = ReplicaId([1; 16]);
        let mut ws = connect(&relay).await;
        assert!(matches!(hello(&mut ws, me, token).await, Frame::Welcome(_)));
        send(&mut ws, upload(1, DocId([1; 16]), "acme", vec![change(me)])).await;
        assert_eq!(next(&mut ws).await, Some(Frame::Ack { upto: 1 }));
        relay.stop().await;
    });
}
