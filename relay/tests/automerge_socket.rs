//! The `/automerge` socket as a stock client sees it: a bad token is an automerge-repo `error`
//! message and a close after a successful upgrade (never an HTTP error), a join is answered at
//! once, and a client that sends nothing but answers the relay's pings stays connected past the
//! idle timeout (stock clients never ping).

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use ficha_core::repo_wire::{PeerMetadata, RepoMessage};
use ficha_relay::{Limits, issue_token};

fn join() -> Message {
    let join = RepoMessage::Join {
        sender: "tablet-1".into(),
        versions: vec!["1".into()],
        metadata: PeerMetadata::default(),
    };
    Message::Binary(join.encode().into())
}

/// The next automerge-repo message, or None once the socket closes.
async fn next(ws: &mut common::Ws) -> Option<RepoMessage> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                return Some(RepoMessage::decode(&b).expect("a valid message"));
            }
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_an_error_message_and_a_close_after_the_upgrade() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = common::start(dir.path(), common::quick()).await;
    let url = format!("ws://{}/automerge?token=ft1.forged.token", relay.addr);
    let (mut ws, response) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("the upgrade succeeds");
    assert_eq!(response.status(), 101);
    let _ = ws.send(join()).await;
    assert!(matches!(
        next(&mut ws).await,
        Some(RepoMessage::Error { .. })
    ));
    assert!(next(&mut ws).await.is_none(), "then the relay closes");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_that_answers_pings_outlives_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    let limits = Limits {
        idle_timeout: Duration::from_millis(1200),
        ..common::quick()
    };
    let relay = common::start(dir.path(), limits).await;
    let token = issue_token(dir.path(), "tablet", &["acme".into()], true, 1).expect("token");
    let url = format!("ws://{}/automerge?token={token}", relay.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
    ws.send(join()).await.expect("send");
    let answered = tokio::time::Instant::now();
    assert!(matches!(
        next(&mut ws).await,
        Some(RepoMessage::Peer { .. })
    ));
    assert!(
        answered.elapsed() < Duration::from_secs(1),
        "join answered at once"
    );
    // Read (and so answer pings) for three idle timeouts without sending anything.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(3600);
    while let Ok(m) = tokio::time::timeout_at(until, ws.next()).await {
        match m {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Close(_)) | Err(_)) | None => panic!("closed after {pings} pings"),
            Some(Ok(_)) => {}
        }
    }
    assert!(pings >= 3, "pinged {pings} times");
    relay.stop().await;
}
