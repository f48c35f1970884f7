//! Helpers shared by the relay's socket tests: an in-process relay and a raw frame client.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use ficha_core::frame::{ByteBuf, DocChanges, ErrorCode, Frame, Hello, Upload};
use ficha_core::ids::actor_for;
use ficha_core::{Company, DocId, ReplicaId};
use ficha_relay::{Limits, RunningRelay, spawn_with};

/// A client socket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Limits with a short handshake timeout, so tests need not wait 10 s.
pub fn quick() -> Limits {
    Limits {
        handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

/// A relay on a free loopback port.
pub async fn start(dir: &Path, limits: Limits) -> RunningRelay {
    spawn_with(dir, "127.0.0.1:0".parse().expect("addr"), limits)
        .await
        .expect("relay starts")
}

/// A WebSocket to the relay's sync endpoint.
pub async fn connect(relay: &RunningRelay) -> Ws {
    connect_url(&relay.url()).await
}

/// A WebSocket to a sync URL.
pub async fn connect_url(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

/// Sends one frame.
pub async fn send(ws: &mut Ws, f: Frame) {
    ws.send(Message::Binary(f.encode().into()))
        .await
        .expect("send");
}

/// The next frame, or None once the relay closed the socket.
pub async fn next(ws: &mut Ws) -> Option<Frame> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
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

/// Says hello and returns the relay's answer.
pub async fn hello(ws: &mut Ws, replica: ReplicaId, token: String) -> Frame {
    send(ws, Frame::Hello(Hello { replica, token })).await;
    next(ws).await.expect("an answer to hello")
}

/// The code of a fatal error frame, if that is what `f` is.
pub fn error_code(f: Option<Frame>) -> Option<ErrorCode> {
    match f {
        Some(Frame::Error(e)) if e.fatal => Some(e.code),
        _ => None,
    }
}

/// One real Automerge change by `replica`, as uploaded bytes.
pub fn change(replica: ReplicaId) -> Vec<u8> {
    let mut doc = AutoCommit::new().with_actor(actor_for(replica, 1));
    doc.put(ROOT, "name", "x").expect("put");
    doc.commit();
    doc.get_last_local_change()
        .expect("change")
        .raw_bytes()
        .to_vec()
}

/// A document being edited by one replica, handing out each change as it is made.
pub struct Writer {
    /// The document's id.
    pub doc: DocId,
    am: AutoCommit,
    n: u64,
}

impl Writer {
    /// A fresh document written by `replica`.
    pub fn new(replica: ReplicaId, doc: DocId) -> Self {
        Self {
            doc,
            am: AutoCommit::new().with_actor(actor_for(replica, 1)),
            n: 0,
        }
    }

    /// Makes one change holding `value` and returns its bytes.
    pub fn edit(&mut self, value: impl Into<automerge::ScalarValue>) -> Vec<u8> {
        self.n += 1;
        self.am
            .put(ROOT, format!("k{}", self.n % 3), value.into())
            .expect("put");
        self.am.commit();
        self.am
            .get_last_local_change()
            .expect("change")
            .raw_bytes()
            .to_vec()
    }
}

/// An upload of `changes` to one document.
pub fn upload(upto: u64, doc: DocId, company: &str, changes: Vec<Vec<u8>>) -> Frame {
    Frame::Upload(Upload {
        upto,
        docs: vec![DocChanges {
            doc,
            company: Company::new(company).expect("company"),
            changes: changes.into_iter().map(ByteBuf::from).collect(),
        }],
    })
}

/// One value from the relay's /metrics.
pub async fn metric(relay: &RunningRelay, name: &str) -> u64 {
    let body = reqwest::Client::new()
        .get(format!("http://{}/metrics", relay.addr))
        .bearer_auth(&relay.metrics_key)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} present in:\n{body}"))
}

/// One value from /metrics, or None if the request could not be made (the relay may still
/// be dropping connections over a cap, the scrape's own included).
async fn try_metric(relay: &RunningRelay, name: &str) -> Option<u64> {
    let body = reqwest::Client::new()
        .get(format!("http://{}/metrics", relay.addr))
        .bearer_auth(&relay.metrics_key)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls a metric until it equals `want` (server-side clean-up runs after a socket closes).
pub async fn wait_metric(relay: &RunningRelay, name: &str, want: u64) {
    for _ in 0..200 {
        if try_metric(relay, name).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(metric(relay, name).await, want, "{name}");
}

/// Counts panics anywhere in this test process from the first call on, spawned tasks
/// included (tokio would otherwise swallow them): a relay task that panics is a bug even
/// when the test's own checks pass.
pub fn panics() -> &'static std::sync::atomic::AtomicUsize {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            previous(info);
        }));
    });
    &COUNT
}

/// The PostgreSQL server the tests may use (`FICHA_TEST_POSTGRES`, which `.ci/run` sets from
/// `.ci/postgres-up`); None, said on stderr, when it is not set outside CI; in CI, a failure.
pub fn postgres() -> Option<String> {
    match std::env::var("FICHA_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("FICHA_TEST_POSTGRES is not set: .ci/run starts a server with .ci/postgres-up")
        }
        _ => {
            eprintln!("SKIPPED: set FICHA_TEST_POSTGRES=postgres://… (see .ci/postgres-up)");
            None
        }
    }
}

/// Drops the schemas whose names start with `prefix` (a test's own tables).
pub fn drop_schemas(url: &str, prefix: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let rows = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
                &[&format!("{prefix}%")],
            )
            .await
            .expect("schemas");
        for row in rows {
            let name: String = row.get(0);
            client
                .batch_execute(&format!("DROP SCHEMA \"{name}\" CASCADE"))
                .await
                .expect("drop");
        }
    });
}
