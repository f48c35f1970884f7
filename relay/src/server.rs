//! The relay's network driver: axum routes over the sans-IO [`Relay`].
//!
//! One `Relay` sits behind a mutex; each WebSocket gets a connection id and a bounded queue of
//! outgoing frames drained by its own writer task. A session whose queue is full is too slow to
//! keep: it is closed and will resume from its checkpoint, so relay memory stays bounded.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use ficha_core::frame::DEFAULT_MAX_FRAME;
use ficha_core::relay::{ConnId, Output, Relay, RelayConfig};

use crate::store::RedbRelayStore;

/// Limits of the network layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A socket must say hello within this time.
    pub handshake_timeout: Duration,
    /// A session that sends nothing (not even a ping) for this long is closed.
    pub idle_timeout: Duration,
    /// Most concurrent connections.
    pub max_connections: usize,
    /// Outgoing frames queued per session before it counts as too slow.
    pub queue: usize,
    /// How often the background task folds feed entries (see `RedbRelayStore::compact`).
    pub compact_every: Duration,
    /// Documents folded per pass, so the relay stays responsive.
    pub compact_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections: 1000,
            queue: 256,
            compact_every: Duration::from_secs(5),
            compact_batch: 200,
        }
    }
}

enum Out {
    Frame(Arc<[u8]>),
    Close,
}

/// What every connection shares.
pub struct Shared {
    relay: Mutex<Relay<RedbRelayStore>>,
    conns: Mutex<HashMap<ConnId, mpsc::Sender<Out>>>,
    next: AtomicU64,
    limits: Limits,
    admin_key: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves state we still prefer to serving nothing.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Wraps a store and a signing secret.
    pub fn new(store: RedbRelayStore, secret: [u8; 32], limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            relay: Mutex::new(Relay::new(store, RelayConfig::new(secret))),
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            limits,
            admin_key: crate::secret::admin_key(&secret),
        })
    }

    fn dispatch(&self, outputs: Vec<Output>) {
        let mut conns = lock(&self.conns);
        let mut dropped = Vec::new();
        for o in outputs {
            match o {
                Output::Send(conn, bytes) => {
                    if let Some(tx) = conns.get(&conn)
                        && tx.try_send(Out::Frame(bytes)).is_err()
                    {
                        tracing::warn!(conn, "session too slow: closing it");
                        dropped.push(conn);
                    }
                }
                Output::Close(conn) => {
                    if let Some(tx) = conns.get(&conn) {
                        let _ = tx.try_send(Out::Close);
                    }
                }
            }
        }
        for conn in dropped {
            conns.remove(&conn);
            lock(&self.relay).disconnect(conn);
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The relay's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/sync", get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/admin/backup", post(admin_backup))
        .route("/admin/revoke", post(admin_revoke))
        .with_state(shared)
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let compactor = tokio::spawn(compact_forever(shared.clone()));
    let result = axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await;
    compactor.abort();
    result
}

/// Folds feed entries in the background, a bounded batch per pass.
async fn compact_forever(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.limits.compact_every);
    loop {
        tick.tick().await;
        let batch = shared.limits.compact_batch;
        let result = tokio::task::block_in_place(|| lock(&shared.relay).store_mut().compact(batch));
        match result {
            Ok(0) => {}
            Ok(n) => tracing::debug!(docs = n, "compacted feed entries"),
            Err(e) => tracing::warn!(error = %e, "feed compaction failed"),
        }
    }
}

async fn upgrade(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if lock(&shared.conns).len() >= shared.limits.max_connections {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many sessions").into_response();
    }
    ws.max_message_size(DEFAULT_MAX_FRAME)
        .max_frame_size(DEFAULT_MAX_FRAME)
        .on_upgrade(move |socket| session(socket, shared))
}

async fn session(socket: WebSocket, shared: Arc<Shared>) {
    let conn = shared.next.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Out>(shared.limits.queue);
    lock(&shared.conns).insert(conn, tx);
    lock(&shared.relay).connect(conn);
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Out::Frame(bytes) => {
                    if sink
                        .send(Message::Binary(Bytes::from_owner(bytes)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Out::Close => break,
            }
        }
        let _ = sink.close().await;
    });
    let mut welcomed = false;
    loop {
        let limit = if welcomed {
            shared.limits.idle_timeout
        } else {
            shared.limits.handshake_timeout
        };
        let msg = match tokio::time::timeout(limit, stream.next()).await {
            Err(_) => {
                tracing::info!(conn, welcomed, "closing a silent connection");
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(m))) => m,
        };
        let bytes = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Text(_) => {
                tracing::warn!(conn, "text message on the sync socket: closing");
                break;
            }
        };
        welcomed = true;
        let outputs =
            tokio::task::block_in_place(|| lock(&shared.relay).receive(conn, &bytes, now_secs()));
        shared.dispatch(outputs);
        if !lock(&shared.conns).contains_key(&conn) {
            break;
        }
    }
    lock(&shared.relay).disconnect(conn);
    lock(&shared.conns).remove(&conn);
    let _ = writer.await;
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let (stats, sessions, counts) = {
        let relay = lock(&shared.relay);
        (
            relay.stats().clone(),
            relay.session_count(),
            relay.store().counts().unwrap_or_default(),
        )
    };
    let body = format!(
        "# TYPE ficha_sessions gauge\nficha_sessions {sessions}\n\
         # TYPE ficha_documents gauge\nficha_documents {}\n\
         # TYPE ficha_changes_stored_total counter\nficha_changes_stored_total {}\n\
         # TYPE ficha_frames_in_total counter\nficha_frames_in_total {}\n\
         # TYPE ficha_frames_out_total counter\nficha_frames_out_total {}\n\
         # TYPE ficha_bytes_in_total counter\nficha_bytes_in_total {}\n\
         # TYPE ficha_bytes_out_total counter\nficha_bytes_out_total {}\n\
         # TYPE ficha_refused_total counter\nficha_refused_total {}\n",
        counts.documents,
        counts.changes,
        stats.frames_in,
        stats.frames_out,
        stats.bytes_in,
        stats.bytes_out,
        stats.refused,
    );
    ([("content-type", "text/plain; version=0.0.4")], body)
}

fn authorised(shared: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get("x-ficha-admin")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| blake3::hash(v.as_bytes()) == blake3::hash(shared.admin_key.as_bytes()))
}

type AdminReply = (StatusCode, String);

/// Checks the admin key and returns the one query parameter an admin call needs.
fn admin_param(
    shared: &Shared,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    name: &str,
) -> Result<String, AdminReply> {
    if !authorised(shared, headers) {
        return Err((StatusCode::UNAUTHORIZED, "admin key required".into()));
    }
    q.get(name)
        .cloned()
        .ok_or_else(|| (StatusCode::BAD_REQUEST, format!("missing {name}")))
}

async fn admin_backup(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> AdminReply {
    let out = match admin_param(&shared, &headers, &q, "out") {
        Ok(o) => o,
        Err(reply) => return reply,
    };
    let result = tokio::task::block_in_place(|| {
        lock(&shared.relay)
            .store()
            .backup(std::path::Path::new(&out))
    });
    match result {
        Ok(()) => (StatusCode::OK, format!("backup written to {out}")),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn admin_revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> AdminReply {
    let name = match admin_param(&shared, &headers, &q, "replica") {
        Ok(n) => n,
        Err(reply) => return reply,
    };
    let result = tokio::task::block_in_place(|| {
        let mut relay = lock(&shared.relay);
        relay.store_mut().revoke(&name)?;
        Ok::<_, crate::store::RelayStoreError>(relay.revoked(&name))
    });
    match result {
        Ok(outputs) => {
            let closed = outputs.len() / 2;
            shared.dispatch(outputs);
            (
                StatusCode::OK,
                format!("revoked {name}; closed {closed} open sessions"),
            )
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
