//! The relay's network driver: axum routes over the sans-IO [`Relay`].
//!
//! One `Relay` sits behind a mutex; each WebSocket gets a connection id and a bounded queue of
//! outgoing frames drained by its own writer task. Outputs are queued while the relay's lock
//! is still held, so every session receives frames in the order the relay produced them (live
//! feed pages must arrive in sequence). A session whose queue is full is too slow to keep: it
//! is closed and will resume from its checkpoint, so relay memory stays bounded.
//!
//! The relay runs its own accept loop ([`accept`]): strangers (connections without an accepted
//! hello) have a pool of their own, a deadline for their request head and a byte cap.
//! `/metrics` and `/admin/*` answer only with the keys derived from the signing secret, on the
//! main listener or on a separate admin listener.

mod accept;
mod admin;
mod blobs;
mod nodes;
mod pace;
mod repo;
mod session;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use ficha_core::relay::{ConnId, Output, Relay, RelayConfig};

use crate::stores::{AnyHandle, AnyStore};

pub use nodes::Cluster;

/// Header carrying the admin key (see [`crate::secret::admin_key`]); `Authorization: Bearer`
/// with the same key is accepted too.
pub const ADMIN_HEADER: &str = "x-ficha-admin";

/// Limits of the network layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection must send its whole HTTP request head within this time.
    pub header_timeout: Duration,
    /// A socket must say hello within this time of connecting (pings do not extend it).
    pub handshake_timeout: Duration,
    /// Most connections without an accepted hello at once (HTTP requests for blobs included);
    /// more are dropped at accept. Separate from `max_connections`, so strangers never take
    /// the slots of authenticated replicas.
    pub max_strangers: usize,
    /// A session that sends nothing (not even a ping) for this long is closed.
    pub idle_timeout: Duration,
    /// Most concurrent WebSocket connections; more are refused with a `Limit` error.
    pub max_connections: usize,
    /// Most concurrent sessions of one replica name (one token holder).
    pub max_sessions_per_replica: usize,
    /// Outgoing frames queued per session before it counts as too slow.
    pub queue: usize,
    /// How often the background task folds feed entries (see `RedbRelayStore::compact`).
    pub compact_every: Duration,
    /// Bytes of feed entries folded per pass, so the relay stays responsive and compaction's
    /// memory stays bounded however large the documents are.
    pub compact_bytes: usize,
    /// How long shutdown waits for sessions to close before returning anyway.
    pub shutdown_grace: Duration,
    /// On a PostgreSQL cluster, how often a node re-reads feed heads and revocations whatever
    /// the notifications said: the most a lost notification can delay a push.
    pub cluster_poll: Duration,
    /// Upload frames one session may send per second on average. Each costs a durable write;
    /// an honest replica keeps one upload in flight and batches its outbox into it, so it
    /// needs few; a flood from one token cannot take the relay's writes from the others.
    pub uploads_per_sec: f64,
    /// Upload frames a session may send in a burst before pacing starts.
    pub upload_burst: f64,
    /// Work units a session may spend per second on other frames (see `pace::work_of`: a
    /// reconcile costs 100, a subscribe 20, a page acknowledgement or repair step 1).
    pub work_per_sec: f64,
    /// Work units a session may spend in a burst.
    pub work_burst: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_strangers: 256,
            idle_timeout: Duration::from_secs(120),
            max_connections: 1000,
            max_sessions_per_replica: 4,
            queue: 256,
            compact_every: Duration::from_secs(5),
            compact_bytes: crate::store::COMPACT_BYTES,
            shutdown_grace: Duration::from_secs(5),
            cluster_poll: Duration::from_secs(2),
            uploads_per_sec: 10.0,
            upload_burst: 50.0,
            work_per_sec: 200.0,
            work_burst: 2000.0,
        }
    }
}

/// How the writer task of one connection is told to stop.
#[derive(Default)]
struct ConnCtl {
    /// Stop now, dropping whatever is still queued.
    kill: Notify,
    /// The close frame to end with, if not the default one.
    close: Mutex<Option<CloseFrame>>,
}

impl ConnCtl {
    fn set_close(&self, code: CloseCode, reason: &'static str) {
        *lock(&self.close) = Some(CloseFrame {
            code,
            reason: reason.into(),
        });
    }

    fn take_close(&self) -> Option<CloseFrame> {
        lock(&self.close).take()
    }
}

/// A connection's outgoing side, as the relay's outputs reach it.
struct Conn {
    tx: mpsc::Sender<Arc<[u8]>>,
    ctl: Arc<ConnCtl>,
}

/// What every connection shares.
pub struct Shared {
    relay: Mutex<Relay<AnyStore>>,
    store: AnyHandle,
    conns: Mutex<HashMap<ConnId, Conn>>,
    next: AtomicU64,
    /// Open sessions (reserved slots).
    active: watch::Sender<usize>,
    /// Permits of connections without an accepted hello.
    strangers: Arc<Semaphore>,
    closing: AtomicBool,
    /// Refusals decided here rather than by the protocol (limits, text, handshake timeouts).
    refused: AtomicU64,
    limits: Limits,
    admin_key: String,
    metrics_key: String,
    /// Verifies the tokens of blob requests (sessions verify theirs inside the relay core).
    secret: [u8; 32],
    /// The data directory: the signing secret and the replica codes tokens are issued from.
    dir: std::path::PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves state we still prefer to serving nothing.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs synchronous storage work without stalling a multi-threaded runtime's other tasks; on
/// a current-thread runtime (where `block_in_place` panics) it simply runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A reserved connection slot; released when dropped.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Shared {
    /// Wraps a redb store and a signing secret (the data directory is the store's).
    pub fn on_redb(
        store: crate::store::RedbRelayStore,
        secret: [u8; 32],
        limits: Limits,
    ) -> Arc<Self> {
        let handle = AnyHandle::Redb(store.handle());
        let dir = store.dir().to_path_buf();
        Self::new(AnyStore::Redb(store), handle, &dir, secret, limits)
    }

    /// Wraps a store, the network layer's handle on it and a signing secret.
    pub fn new(
        store: AnyStore,
        handle: AnyHandle,
        dir: &std::path::Path,
        secret: [u8; 32],
        limits: Limits,
    ) -> Arc<Self> {
        let mut cfg = RelayConfig::new(secret);
        cfg.max_sessions_per_replica = limits.max_sessions_per_replica;
        cfg.shared_store = store.shared();
        Arc::new(Self {
            store: handle,
            relay: Mutex::new(Relay::new(store, cfg)),
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            active: watch::Sender::new(0),
            strangers: Arc::new(Semaphore::new(limits.max_strangers.max(1))),
            closing: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            limits,
            admin_key: crate::secret::admin_key(&secret),
            metrics_key: crate::secret::metrics_key(&secret),
            secret,
            dir: dir.to_path_buf(),
        })
    }

    /// Runs `f` on the relay and queues its outputs before releasing the lock.
    fn with_relay<R>(&self, f: impl FnOnce(&mut Relay<AnyStore>) -> (R, Vec<Output>)) -> R {
        blocking(|| {
            let mut relay = lock(&self.relay);
            let (r, outputs) = f(&mut relay);
            self.dispatch(&mut relay, outputs);
            r
        })
    }

    /// Queues outputs; lock order is always relay, then conns.
    fn dispatch(&self, relay: &mut Relay<AnyStore>, outputs: Vec<Output>) {
        if outputs.is_empty() {
            return;
        }
        let mut conns = lock(&self.conns);
        for o in outputs {
            match o {
                Output::Send(conn, bytes) => {
                    let Some(c) = conns.get(&conn) else { continue };
                    match c.tx.try_send(bytes) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            tracing::warn!(conn, "session too slow to keep up: closing it");
                            c.ctl.set_close(CloseCode::Again, "too slow");
                            c.ctl.kill.notify_one();
                            conns.remove(&conn);
                            relay.disconnect(conn);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            conns.remove(&conn);
                            relay.disconnect(conn);
                        }
                    }
                }
                // Dropping the sender lets the writer flush what precedes, then close.
                Output::Close(conn) => {
                    conns.remove(&conn);
                }
            }
        }
    }

    /// Counts a connection dropped at accept because the strangers' pool was full.
    fn refused_stranger(&self) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed);
        // One line per hundred, not one per connection of a flood.
        if n.is_multiple_of(100) {
            tracing::warn!(
                max = self.limits.max_strangers,
                "dropping connections: too many without an accepted hello"
            );
        }
    }

    /// True when `headers` carry `key` as `Authorization: Bearer` or the admin header.
    fn authorised(headers: &HeaderMap, key: &str) -> bool {
        let given = headers
            .get(ADMIN_HEADER)
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
            });
        // blake3 hashes compare in constant time; the key never reaches a log.
        given.is_some_and(|k| blake3::hash(k.as_bytes()) == blake3::hash(key.as_bytes()))
    }

    /// Reserves a session slot, unless the relay is full or shutting down.
    fn reserve(self: &Arc<Self>) -> Option<Slot> {
        if self.closing.load(Ordering::SeqCst) {
            return None;
        }
        let max = self.limits.max_connections;
        let reserved = self.active.send_if_modified(|n| {
            let room = *n < max;
            if room {
                *n += 1;
            }
            room
        });
        reserved.then(|| Slot(self.clone()))
    }

    /// Ends every session: each gets a going-away close frame and its writer stops.
    fn begin_shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        for c in lock(&self.conns).values() {
            c.ctl.set_close(CloseCode::Away, "relay shutting down");
            c.ctl.kill.notify_one();
        }
    }

    /// Closes every session and waits (within the grace period) until none is left.
    async fn finish(self: Arc<Self>) {
        self.begin_shutdown();
        let grace = self.limits.shutdown_grace;
        let mut active = self.active.subscribe();
        if tokio::time::timeout(grace, active.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!("sessions still open after the shutdown grace period");
        }
        // Session tasks drop their handle just after releasing their slot; waiting for them
        // means the database is closed when `run` returns, so it can be reopened at once.
        let deadline = tokio::time::Instant::now() + grace;
        while Arc::strong_count(&self) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The routes replicas use: sync, health and blobs (and, unless an admin listener is given,
/// the keyed `/metrics` and `/admin/*` too).
pub fn router(shared: Arc<Shared>) -> Router {
    sync_routes().merge(admin_routes()).with_state(shared)
}

fn sync_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/sync", get(session::upgrade))
        .route("/automerge", get(repo::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/blobs/{hash}", get(blobs::get).put(blobs::put))
        // The blob limit, plus room for nothing else: bodies are only ever one blob.
        .layer(axum::extract::DefaultBodyLimit::max(
            ficha_core::blob::MAX_BLOB_BYTES,
        ))
}

fn admin_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/admin/backup", post(admin::backup))
        .route("/admin/revoke", post(admin::revoke))
        .route("/admin", get(admin::page))
        .route("/admin/api/overview", get(admin::overview))
        .route("/admin/api/companies", get(admin::companies))
        .route("/admin/api/token", post(admin::token))
}

/// Serves on `listener` (and the admin routes alone on `admin`, if given) until `shutdown`
/// resolves, then closes every session and returns once they are gone (and, if the caller
/// kept no other handle, the database is closed).
pub async fn run(
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    shared: Arc<Shared>,
    cluster: Option<Cluster>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let compactor = tokio::spawn(compact_forever(shared.clone()));
    let follower = cluster.map(|c| tokio::spawn(nodes::follow(shared.clone(), c)));
    let expirer = tokio::spawn(expire_forever(shared.clone()));
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = admin.map(|l| {
        let app = admin_routes().with_state(shared.clone());
        let shared = shared.clone();
        // A pool of its own: a flood of strangers on the main port cannot lock an operator out.
        let pool = Arc::new(Semaphore::new(16));
        tokio::spawn(async move {
            accept::serve(l, shared, pool, app, async {
                let _ = admin_stopped.await;
            })
            .await;
        })
    });
    let app = match admin_task {
        Some(_) => sync_routes().with_state(shared.clone()),
        None => router(shared.clone()),
    };
    accept::serve(
        listener,
        shared.clone(),
        shared.strangers.clone(),
        app,
        async move {
            shutdown.await;
            tracing::info!("relay shutting down");
        },
    )
    .await;
    let _ = stop_admin.send(());
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    compactor.abort();
    let _ = compactor.await;
    expirer.abort();
    let _ = expirer.await;
    if let Some(f) = follower {
        f.abort();
        let _ = f.await;
    }
    shared.finish().await;
    Ok(())
}

/// Ends sessions whose token has expired, every second.
async fn expire_forever(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        shared.with_relay(|r| ((), r.expire(now_secs())));
    }
}

/// Folds feed entries in the background, a bounded batch per pass.
async fn compact_forever(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.limits.compact_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let batch = shared.limits.compact_bytes;
        let result = blocking(|| lock(&shared.relay).store_mut().compact(batch));
        match result {
            Ok(0) => {}
            Ok(n) => tracing::debug!(docs = n, "compacted feed entries"),
            Err(e) => tracing::warn!(error = %e, "feed compaction failed"),
        }
    }
}

/// Prometheus text, with the metrics key only (see `ficha-relay metrics-key`): the counts span
/// every company, and a token holder of one must not learn another's volume from them. A
/// loopback check would not do: behind a reverse proxy on the same host every request comes
/// from loopback.
async fn metrics(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> axum::response::Response {
    if !Shared::authorised(&headers, &shared.metrics_key)
        && !Shared::authorised(&headers, &shared.admin_key)
    {
        return (
            StatusCode::UNAUTHORIZED,
            "metrics need `Authorization: Bearer <key>`; print the key with `ficha-relay metrics-key --data DIR`",
        )
            .into_response();
    }
    let (stats, sessions) = {
        let relay = lock(&shared.relay);
        (relay.stats().clone(), relay.session_count())
    };
    let counts = blocking(|| shared.store.counts()).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "metrics: cannot count stored documents");
        Default::default()
    });
    let connections = *shared.active.borrow();
    let strangers = shared.limits.max_strangers - shared.strangers.available_permits();
    let (warm, repo_peers, repo_docs) = {
        let relay = lock(&shared.relay);
        (
            relay.warm_docs(),
            relay.repo_peer_count(),
            relay.repo_open_docs(),
        )
    };
    let blobs = blocking(|| shared.store.blob_count()).unwrap_or(0);
    let refused = stats.refused + shared.refused.load(Ordering::Relaxed);
    let body = format!(
        "# TYPE ficha_sessions gauge\nficha_sessions {sessions}\n\
         # TYPE ficha_connections gauge\nficha_connections {connections}\n\
         # TYPE ficha_documents gauge\nficha_documents {}\n\
         # TYPE ficha_changes_stored_total counter\nficha_changes_stored_total {}\n\
         # TYPE ficha_frames_in_total counter\nficha_frames_in_total {}\n\
         # TYPE ficha_frames_out_total counter\nficha_frames_out_total {}\n\
         # TYPE ficha_bytes_in_total counter\nficha_bytes_in_total {}\n\
         # TYPE ficha_bytes_out_total counter\nficha_bytes_out_total {}\n\
         # TYPE ficha_refused_total counter\nficha_refused_total {refused}\n\
         # TYPE ficha_blobs gauge\nficha_blobs {blobs}\n\
         # TYPE ficha_strangers gauge\nficha_strangers {strangers}\n\
         # TYPE ficha_warm_documents gauge\nficha_warm_documents {warm}\n\
         # TYPE ficha_automerge_peers gauge\nficha_automerge_peers {repo_peers}\n\
         # TYPE ficha_automerge_open_documents gauge\nficha_automerge_open_documents {repo_docs}\n\
         # TYPE ficha_refused_documents_total counter\nficha_refused_documents_total {}\n\
         # TYPE ficha_parked_total counter\nficha_parked_total {}\n",
        counts.documents,
        counts.changes,
        stats.frames_in,
        stats.frames_out,
        stats.bytes_in,
        stats.bytes_out,
        stats.refused_docs,
        stats.parked,
    );
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}
