//! The relay over a real WebSocket: bad input is refused, logged and stores nothing, and other
//! sessions keep being served.

mod common;

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use ficha_core::frame::{ErrorCode, Frame};
use ficha_core::token::{Claims, sign};
use ficha_core::{Company, DocId, ReplicaId};
use ficha_relay::{issue_token, secret};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_bad_tokens_are_refused_and_others_are_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let token = issue_token(dir.path(), "a", &["acme".into()], false, 1).expect("token");

    let mut bad = connect(&relay).await;
    bad.send(Message::Binary(vec![0xde, 0xad, 0xbe, 0xef].into()))
        .await
        .expect("send");
    assert_eq!(error_code(next(&mut bad).await), Some(ErrorCode::Protocol));
    assert!(next(&mut bad).await.is_none(), "closed after the error");

    let mut forged = connect(&relay).await;
    let mut t = token.clone();
    t.pop();
    t.push(if token.ends_with('A') { 'B' } else { 'A' });
    let answer = hello(&mut forged, ReplicaId([9; 16]), t).await;
    assert_eq!(error_code(Some(answer)), Some(ErrorCode::Unauthorized));
    assert!(next(&mut forged).await.is_none(), "closed after the error");

    let mut wrong_key = connect(&relay).await;
    let foreign = issue_token(&dir.path().join("other"), "a", &["acme".into()], false, 1)
        .expect("token from another relay");
    let answer = hello(&mut wrong_key, ReplicaId([1; 16]), foreign).await;
    assert_eq!(error_code(Some(answer)), Some(ErrorCode::Unauthorized));

    let mut good = connect(&relay).await;
    assert!(matches!(
        hello(&mut good, ReplicaId([1; 16]), token.clone()).await,
        Frame::Welcome(w) if w.grants.len() == 1 && w.grants[0].write
    ));
    let health = reqwest::get(format!("http://{}/healthz", relay.addr))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body"), "ok");
    assert!(metric(&relay, "ficha_refused_total").await >= 3);
    assert_eq!(metric(&relay, "ficha_sessions").await, 1);
    for name in [
        "ficha_documents",
        "ficha_changes_stored_total",
        "ficha_frames_in_total",
        "ficha_frames_out_total",
        "ficha_bytes_in_total",
        "ficha_bytes_out_total",
    ] {
        metric(&relay, name).await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let key = secret::load_or_create(dir.path()).expect("secret");
    let expired = sign(
        &key,
        &Claims {
            replica: "old".into(),
            companies: vec![Company::new("acme").expect("c")],
            write: true,
            issued_at: 1,
            expires_at: 2,
            code: String::new(),
        },
    );
    let mut ws = connect(&relay).await;
    match hello(&mut ws, ReplicaId([1; 16]), expired).await {
        Frame::Error(e) => {
            assert_eq!(e.code, ErrorCode::Unauthorized);
            assert!(e.message.contains("expired"), "{}", e.message);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(next(&mut ws).await.is_none());
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_is_refused_with_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let mut ws = connect(&relay).await;
    ws.send(Message::Text("hello?".into())).await.expect("send");
    assert_eq!(error_code(next(&mut ws).await), Some(ErrorCode::Protocol));
    assert!(next(&mut ws).await.is_none(), "closed after the error");
    assert_eq!(metric(&relay, "ficha_refused_total").await, 1);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_outside_the_grant_store_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let me = ReplicaId([1; 16]);
    let doc = DocId([7; 16]);
    let cases = [
        (
            "w1",
            false,
            upload(1, doc, "other", vec![change(me)]),
            ErrorCode::Forbidden,
        ),
        (
            "r1",
            true,
            upload(1, doc, "acme", vec![change(me)]),
            ErrorCode::Forbidden,
        ),
        (
            "w2",
            false,
            upload(1, doc, "acme", vec![change(ReplicaId([5; 16]))]),
            ErrorCode::BadChange,
        ),
        (
            "w4",
            false,
            upload(1, doc, "acme", vec![b"junk".to_vec()]),
            ErrorCode::BadChange,
        ),
    ];
    for (i, (name, read_only, frame, code)) in cases.into_iter().enumerate() {
        let token = issue_token(dir.path(), name, &["acme".into()], read_only, 1).expect("token");
        let mut ws = connect(&relay).await;
        let id = if i == 0 {
            me
        } else {
            ReplicaId([10 + i as u8; 16])
        };
        assert!(
            matches!(hello(&mut ws, id, token).await, Frame::Welcome(_)),
            "{name} welcomed"
        );
        let frame = match frame {
            // Each case speaks as its own replica; w2 forges another's actor on purpose.
            Frame::Upload(mut u) if name != "w2" && name != "w4" => {
                u.docs[0].changes = vec![change(id).into()];
                Frame::Upload(u)
            }
            f => f,
        };
        send(&mut ws, frame).await;
        // The document is refused and the session goes on: the refusal, then the ack of the
        // (now empty) rest of the upload.
        match next(&mut ws).await {
            Some(Frame::Refused(r)) => {
                assert_eq!(r.upto, 1, "{name}");
                assert_eq!(
                    r.docs.iter().map(|d| (d.doc, d.code)).collect::<Vec<_>>(),
                    vec![(doc, code)],
                    "{name}"
                );
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
        assert_eq!(next(&mut ws).await, Some(Frame::Ack { upto: 1 }), "{name}");
    }
    assert_eq!(metric(&relay, "ficha_changes_stored_total").await, 0);
    assert_eq!(metric(&relay, "ficha_documents").await, 0);

    // The same upload with a proper grant is stored and acknowledged.
    let token = issue_token(dir.path(), "w3", &["acme".into()], false, 1).expect("token");
    let mut ws = connect(&relay).await;
    let w3 = ReplicaId([3; 16]);
    assert!(matches!(hello(&mut ws, w3, token).await, Frame::Welcome(_)));
    send(&mut ws, upload(1, doc, "acme", vec![change(w3)])).await;
    assert_eq!(next(&mut ws).await, Some(Frame::Ack { upto: 1 }));
    assert_eq!(metric(&relay, "ficha_changes_stored_total").await, 1);
    assert_eq!(metric(&relay, "ficha_documents").await, 1);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_dropped_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let mut ws = connect(&relay).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(next(&mut ws).await.is_none());
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_do_not_stretch_the_handshake_but_keep_a_session_alive() {
    let dir = tempfile::tempdir().expect("tmp");
    let limits = ficha_relay::Limits {
        idle_timeout: Duration::from_millis(400),
        ..quick()
    };
    let relay = start(dir.path(), limits).await;

    let mut pinger = connect(&relay).await;
    let started = tokio::time::Instant::now();
    let closed = loop {
        if started.elapsed() > Duration::from_secs(3) {
            break false;
        }
        if pinger.send(Message::Ping(Vec::new().into())).await.is_err() {
            break true;
        }
        match tokio::time::timeout(Duration::from_millis(100), next(&mut pinger)).await {
            Ok(None) => break true,
            Ok(Some(f)) => panic!("unexpected {f:?}"),
            Err(_) => {}
        }
    };
    assert!(
        closed,
        "a socket that only pings is closed at the handshake deadline"
    );

    let token = issue_token(dir.path(), "a", &["acme".into()], false, 1).expect("token");
    let mut ws = connect(&relay).await;
    assert!(matches!(
        hello(&mut ws, ReplicaId([1; 16]), token).await,
        Frame::Welcome(_)
    ));
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ws.send(Message::Ping(Vec::new().into()))
            .await
            .expect("alive");
    }
    assert_eq!(
        metric(&relay, "ficha_sessions").await,
        1,
        "pings keep it open"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        next(&mut ws).await.is_none(),
        "silence past the idle timeout closes it"
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_cannot_speak_for_two_replicas() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let token = issue_token(dir.path(), "laptop", &["acme".into()], false, 1).expect("token");
    let mut first = connect(&relay).await;
    assert!(matches!(
        hello(&mut first, ReplicaId([1; 16]), token.clone()).await,
        Frame::Welcome(_)
    ));
    let mut second = connect(&relay).await;
    assert!(
        matches!(hello(&mut second, ReplicaId([2; 16]), token).await, Frame::Error(e) if e.code == ErrorCode::Unauthorized)
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_token_cannot_speak_for_an_existing_replica_id() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let victim = ReplicaId([1; 16]);
    let token = issue_token(dir.path(), "laptop", &["acme".into()], false, 1).expect("token");
    let mut first = connect(&relay).await;
    assert!(matches!(
        hello(&mut first, victim, token).await,
        Frame::Welcome(_)
    ));
    // Another name, freshly issued, claims the laptop's replica id: its actors would pass for
    // the laptop's.
    let other = issue_token(dir.path(), "mallory", &["acme".into()], false, 1).expect("token");
    let mut forger = connect(&relay).await;
    match hello(&mut forger, victim, other).await {
        Frame::Error(e) => {
            assert_eq!(e.code, ErrorCode::Unauthorized);
            assert!(e.message.contains("another replica name"), "{}", e.message);
        }
        f => panic!("expected a refusal, got {f:?}"),
    }
    relay.stop().await;
}
