//! What a connection without an accepted hello may cost, and what one session may take from
//! the others: strangers expire, are capped apart from sessions and may send only a small
//! first frame; a session ends with its token; every kind of frame is paced.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use ficha_core::frame::{ErrorCode, Frame, Hello};
use ficha_core::token::{Claims, sign};
use ficha_core::{Company, DocId, ReplicaId};
use ficha_relay::{Limits, issue_token};

use common::*;

fn strict() -> Limits {
    Limits {
        header_timeout: Duration::from_millis(300),
        handshake_timeout: Duration::from_millis(500),
        max_strangers: 4,
        ..Limits::default()
    }
}

/// Blocks until the relay closes `tcp` (or `within` passes); true if it closed.
fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    tcp.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 512];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_no_request_or_half_of_one_is_closed() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), strict()).await;
    let addr = relay.addr;
    tokio::task::spawn_blocking(move || {
        let mut silent = TcpStream::connect(addr).expect("connect");
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.write_all(b"GET /sync HTTP/1.1\r\nHost: x\r\n")
            .expect("half a head");
        let started = Instant::now();
        assert!(closed_within(&mut silent, Duration::from_secs(5)), "silent");
        assert!(
            closed_within(&mut slow, Duration::from_secs(5)),
            "slowloris"
        );
        assert!(started.elapsed() < Duration::from_secs(4));
    })
    .await
    .expect("join");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_capped_apart_from_sessions() {
    let dir = tempfile::tempdir().expect("tmp");
    let limits = Limits {
        header_timeout: Duration::from_secs(30),
        handshake_timeout: Duration::from_secs(30),
        ..strict()
    };
    let relay = start(dir.path(), limits).await;
    let token = issue_token(dir.path(), "a", &["acme".into()], false, 1).expect("token");
    let me = ReplicaId([1; 16]);
    let mut session = connect(&relay).await;
    assert!(matches!(
        hello(&mut session, me, token).await,
        Frame::Welcome(_)
    ));

    // Four strangers take every stranger permit; a fifth connection is dropped at once.
    let addr = relay.addr;
    let strangers: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // (/metrics could not say so now: its request would be a fifth stranger.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = TcpStream::connect(addr).expect("connect");
    let dropped =
        tokio::task::spawn_blocking(move || closed_within(&mut fifth, Duration::from_secs(5)))
            .await
            .expect("join");
    assert!(dropped, "over the cap, a connection is dropped");

    // The session they could not touch goes on: an upload is stored and acknowledged.
    send(
        &mut session,
        upload(1, DocId([4; 16]), "acme", vec![change(me)]),
    )
    .await;
    assert_eq!(next(&mut session).await, Some(Frame::Ack { upto: 1 }));

    // Once the strangers leave, a newcomer gets in.
    drop(strangers);
    wait_metric(&relay, "ficha_strangers", 1).await;
    let b = issue_token(dir.path(), "b", &["acme".into()], false, 1).expect("token");
    let mut newcomer = connect(&relay).await;
    assert!(matches!(
        hello(&mut newcomer, ReplicaId([2; 16]), b).await,
        Frame::Welcome(_)
    ));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_first_frame_is_refused_before_it_is_buffered() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), strict()).await;
    let token = issue_token(dir.path(), "a", &["acme".into()], false, 1).expect("token");
    let mut ws = connect(&relay).await;
    // A hello padded to a megabyte: a stranger may not make the relay hold that.
    let big = Frame::Hello(Hello {
        replica: ReplicaId([1; 16]),
        token: format!("{token}{}", "x".repeat(1 << 20)),
    });
    let _ = ws.send(Message::Binary(big.encode().into())).await;
    assert_eq!(next(&mut ws).await, None, "closed without an answer");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_its_token_expires() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let secret = ficha_relay::secret::load_or_create(dir.path()).expect("secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let token = sign(
        &secret,
        &Claims {
            replica: "short".into(),
            companies: vec![Company::new("acme").expect("c")],
            write: true,
            issued_at: now,
            expires_at: now + 2,
            code: String::new(),
        },
    );
    let mut ws = connect(&relay).await;
    assert!(matches!(
        hello(&mut ws, ReplicaId([1; 16]), token).await,
        Frame::Welcome(_)
    ));
    // Silent, yet ended within a second or so of its expiry.
    match next(&mut ws).await {
        Some(Frame::Error(e)) => {
            assert_eq!(e.code, ErrorCode::Unauthorized);
            assert!(e.message.contains("expired"), "{}", e.message);
        }
        other => panic!("expected the session to end, got {other:?}"),
    }
    assert_eq!(next(&mut ws).await, None);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_flood_from_a_read_only_token_is_paced() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let reader = issue_token(dir.path(), "reader", &["acme".into()], true, 1).expect("token");
    let mut ws = connect(&relay).await;
    assert!(matches!(
        hello(&mut ws, ReplicaId([9; 16]), reader).await,
        Frame::Welcome(_)
    ));
    let acme = Company::new("acme").expect("c");
    let flood = Frame::Reconcile {
        company: acme,
        buckets: vec![[0u8; 32]; 256],
    };
    for _ in 0..200 {
        send(&mut ws, flood.clone()).await;
    }
    // The relay reads the flood at the session's pace: a burst of 20, then 2 a second.
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(2) {
        match tokio::time::timeout(Duration::from_millis(200), next(&mut ws)).await {
            Ok(Some(Frame::ReconcileDiff { .. })) => answered += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {}
        }
    }
    assert!(
        (20..=30).contains(&answered),
        "{answered} reconciles answered in two seconds"
    );
    relay.stop().await;
}
