//! The relay over a real WebSocket: bad input is refused, logged and stores nothing, and other
//! sessions keep being served.

use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use ficha_core::frame::{ByteBuf, DocChanges, ErrorCode, Frame, Hello, Upload};
use ficha_core::ids::actor_for;
use ficha_core::{Company, DocId, ReplicaId};
use ficha_relay::server::Limits;
use ficha_relay::{RunningRelay, issue_token, spawn_with};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn start(dir: &std::path::Path) -> RunningRelay {
    let limits = Limits {
        handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    spawn_with(dir, "127.0.0.1:0".parse().expect("addr"), limits)
        .await
        .expect("relay starts")
}

async fn connect(relay: &RunningRelay) -> Ws {
    tokio_tungstenite::connect_async(relay.url())
        .await
        .expect("connect")
        .0
}

async fn send(ws: &mut Ws, f: Frame) {
    ws.send(Message::Binary(f.encode().into()))
        .await
        .expect("send");
}

/// The next frame, or None once the relay closed the socket.
async fn next(ws: &mut Ws) -> Option<Frame> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("relay answers in time")
        {
            Some(Ok(Message::Binary(b))) => {
                return Some(Frame::decode(&b, usize::MAX).expect("relay frames decode"));
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn hello(ws: &mut Ws, replica: ReplicaId, token: String) -> Frame {
    send(ws, Frame::Hello(Hello { replica, token })).await;
    next(ws).await.expect("an answer to hello")
}

fn change(replica: ReplicaId) -> Vec<u8> {
    let mut doc = AutoCommit::new().with_actor(actor_for(replica, 1));
    doc.put(ROOT, "name", "x").expect("put");
    doc.commit();
    doc.get_last_local_change()
        .expect("change")
        .raw_bytes()
        .to_vec()
}

async fn metric(relay: &RunningRelay, name: &str) -> u64 {
    let body = reqwest::get(format!("http://{}/metrics", relay.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .expect("metric present")
}

fn error_code(f: Option<Frame>) -> Option<ErrorCode> {
    match f {
        Some(Frame::Error(e)) if e.fatal => Some(e.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_bad_tokens_are_refused_and_others_are_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path()).await;
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
    assert!(
        matches!(hello(&mut forged, ReplicaId([9; 16]), t).await, Frame::Error(e) if e.code == ErrorCode::Unauthorized)
    );

    let mut good = connect(&relay).await;
    assert!(matches!(
        hello(&mut good, ReplicaId([1; 16]), token.clone()).await,
        Frame::Welcome(_)
    ));
    assert_eq!(
        reqwest::get(format!("http://{}/healthz", relay.addr))
            .await
            .expect("h")
            .text()
            .await
            .expect("b"),
        "ok"
    );
    assert!(metric(&relay, "ficha_refused_total").await >= 2);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_outside_the_grant_store_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path()).await;
    let me = ReplicaId([1; 16]);
    let upload = |company: &str, author: ReplicaId| {
        Frame::Upload(Upload {
            upto: 1,
            docs: vec![DocChanges {
                doc: DocId([7; 16]),
                company: Company::new(company).expect("company"),
                changes: vec![ByteBuf::from(change(author))],
            }],
        })
    };
    let cases = [
        ("w1", false, upload("other", me), ErrorCode::Forbidden),
        ("r1", true, upload("acme", me), ErrorCode::Forbidden),
        (
            "w2",
            false,
            upload("acme", ReplicaId([5; 16])),
            ErrorCode::BadChange,
        ),
    ];
    for (name, read_only, frame, code) in cases {
        let token = issue_token(dir.path(), name, &["acme".into()], read_only, 1).expect("token");
        let mut ws = connect(&relay).await;
        assert!(
            matches!(hello(&mut ws, me, token).await, Frame::Welcome(_)),
            "{name} welcomed"
        );
        send(&mut ws, frame).await;
        assert_eq!(error_code(next(&mut ws).await), Some(code), "{name}");
    }
    assert_eq!(metric(&relay, "ficha_changes_stored_total").await, 0);
    assert_eq!(metric(&relay, "ficha_documents").await, 0);

    // The same upload with a proper grant is stored and acknowledged.
    let token = issue_token(dir.path(), "w3", &["acme".into()], false, 1).expect("token");
    let mut ws = connect(&relay).await;
    let w3 = ReplicaId([3; 16]);
    assert!(matches!(hello(&mut ws, w3, token).await, Frame::Welcome(_)));
    send(&mut ws, upload("acme", w3)).await;
    assert_eq!(next(&mut ws).await, Some(Frame::Ack { upto: 1 }));
    assert_eq!(metric(&relay, "ficha_changes_stored_total").await, 1);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_dropped_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path()).await;
    let mut ws = connect(&relay).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(next(&mut ws).await.is_none());
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_cannot_speak_for_two_replicas() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path()).await;
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
