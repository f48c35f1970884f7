//! The sync driver: runs a [`ReplicaSession`] over a WebSocket to the relay.
//!
//! `sync_once` does one full round and returns; `run_forever` keeps a session up for
//! `ficha serve`, reconnecting with exponential backoff (capped at a few seconds, with jitter,
//! and cut short by a local edit, which wants uploading), and uploads local edits as soon as
//! they are committed (the app signals them through a `Notify`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use ficha_core::frame::{DEFAULT_MAX_FRAME, ErrorCode, Frame};
use ficha_core::replica::{ReplicaConfig, ReplicaSession, SessionError};
use ficha_store::{Store, StoreError, SyncStore};

/// Why a sync round failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The relay could not be reached.
    #[error("cannot reach the relay at {url}: {reason}")]
    Unreachable {
        /// The relay URL.
        url: String,
        /// What the network said.
        reason: String,
    },
    /// The relay refused the token or a request.
    #[error("the relay refused this replica: {0}")]
    Refused(String),
    /// The connection dropped mid-session.
    #[error("connection to the relay lost: {0}")]
    Lost(String),
    /// The relay broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Attachments could not be uploaded.
    #[error(transparent)]
    Blob(#[from] crate::files::BlobError),
    /// A full round took longer than allowed.
    #[error("sync did not finish within {0:?}")]
    Timeout(Duration),
}

impl SyncError {
    /// True when retrying cannot help (the token is refused).
    pub fn is_permanent(&self) -> bool {
        matches!(self, SyncError::Refused(_))
    }
}

impl From<SessionError<StoreError>> for SyncError {
    fn from(e: SessionError<StoreError>) -> Self {
        match e {
            SessionError::Refused(f) => match f.code {
                ErrorCode::Unauthorized | ErrorCode::Forbidden => SyncError::Refused(f.message),
                _ => SyncError::Protocol(f.message),
            },
            SessionError::Protocol(m) => SyncError::Protocol(m),
            SessionError::Store(s) => SyncError::Store(s),
            other => SyncError::Protocol(other.to_string()),
        }
    }
}

/// Live connection state, shared with the HTTP API.
#[derive(Default)]
pub struct SyncStatus {
    connected: AtomicBool,
    restarting: AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
}

impl SyncStatus {
    /// Whether a session with the relay is open.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The sync task: "running", or "restarting" after it failed.
    pub fn state(&self) -> &'static str {
        if self.restarting.load(Ordering::Relaxed) {
            "restarting"
        } else {
            "running"
        }
    }

    /// Records that the sync task failed and is being started again.
    pub fn failed(&self, error: String) {
        self.restarting.store(true, Ordering::Relaxed);
        self.set(false, Some(error));
    }

    /// The last error, if the last session ended in one.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn set(&self, connected: bool, error: Option<String>) {
        self.connected.store(connected, Ordering::Relaxed);
        if connected {
            self.restarting.store(false, Ordering::Relaxed);
        }
        if let Ok(mut e) = self.last_error.lock() {
            *e = error;
        }
    }
}

enum Mode {
    Once,
    Forever,
}

/// One full round: connect, catch up every company, upload the whole outbox, close.
pub async fn sync_once(store: Arc<Store>, timeout: Duration) -> Result<(), SyncError> {
    let status = SyncStatus::default();
    let notify = Notify::new();
    match tokio::time::timeout(timeout, session(&store, Mode::Once, &notify, &status)).await {
        Ok(result) => result,
        Err(_) => Err(SyncError::Timeout(timeout)),
    }
}

/// The longest wait between reconnection attempts: a branch whose link comes back must be in
/// sync within seconds, and an attempt costs the relay almost nothing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Keeps a session up until `shutdown` fires, reconnecting with backoff and jitter.
pub async fn run_forever(
    store: Arc<Store>,
    notify: Arc<Notify>,
    status: Arc<SyncStatus>,
    shutdown: Arc<Notify>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let run = session(&store, Mode::Forever, &notify, &status);
        let result = tokio::select! {
            r = run => r,
            _ = shutdown.notified() => return,
        };
        let error = match result {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(error = %e, "sync session ended");
                Some(e.to_string())
            }
        };
        if status.connected() {
            // The session got through the handshake: the link works, start backing off anew.
            backoff = Duration::from_millis(200);
        }
        status.set(false, error);
        let jitter = rand::random_range(0.5..1.0);
        let wait = backoff.mul_f64(jitter);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // A local edit wants uploading: try at once.
            _ = notify.notified() => {}
            _ = shutdown.notified() => return,
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send_all(ws: &mut Ws, frames: Vec<Frame>) -> Result<(), SyncError> {
    for f in frames {
        ws.feed(Message::Binary(f.encode().into()))
            .await
            .map_err(|e| SyncError::Lost(e.to_string()))?;
    }
    ws.flush().await.map_err(|e| SyncError::Lost(e.to_string()))
}

async fn session(
    store: &Arc<Store>,
    mode: Mode,
    notify: &Notify,
    status: &SyncStatus,
) -> Result<(), SyncError> {
    let identity = store.identity().clone();
    let url = identity.relay_url.clone();
    let config = WebSocketConfig::default()
        .max_message_size(Some(DEFAULT_MAX_FRAME))
        .max_frame_size(Some(DEFAULT_MAX_FRAME));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
        .await
        .map_err(|e| SyncError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let mut session = ReplicaSession::new(ReplicaConfig::new(identity.replica, identity.token));
    send_all(&mut ws, session.start()).await?;
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.tick().await;
    let mut was_synced = false;
    let mut recorded: Option<tokio::time::Instant> = None;
    loop {
        let synced = session.is_synced();
        if synced {
            // When everything last went up and came down, for `status`: on reaching it, and
            // every so often while it holds.
            let due = !was_synced || recorded.is_none_or(|t| t.elapsed() > Duration::from_secs(10));
            if due {
                let at = chrono::Utc::now().timestamp_millis();
                tokio::task::block_in_place(|| store.set_last_sync(at))?;
                recorded = Some(tokio::time::Instant::now());
            }
        }
        was_synced = synced;
        if matches!(mode, Mode::Once) && synced {
            let _ = ws.close(None).await;
            crate::files::upload_pending(store).await?;
            return Ok(());
        }
        let frames = tokio::select! {
            msg = ws.next() => {
                let bytes = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(c))) => {
                        return Err(SyncError::Lost(c.map_or("closed by relay".into(), |c| c.reason.to_string())));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(SyncError::Lost(e.to_string())),
                    None => return Err(SyncError::Lost("connection closed".into())),
                };
                let frame = Frame::decode(&bytes, DEFAULT_MAX_FRAME)
                    .map_err(|e| SyncError::Protocol(e.to_string()))?;
                if matches!(frame, Frame::Welcome(_)) {
                    status.set(true, None);
                    tracing::info!(relay = %url, "connected to relay");
                    if matches!(mode, Mode::Forever) {
                        upload_blobs_in_background(store);
                    }
                }
                // redb commits block; keep them off the async workers' hot path.
                tokio::task::block_in_place(|| session.receive(&mut SyncStore(store), frame))?
            }
            _ = notify.notified(), if matches!(mode, Mode::Forever) => {
                upload_blobs_in_background(store);
                tokio::task::block_in_place(|| session.local_change(&SyncStore(store)))?
            }
            _ = ping.tick() => {
                ws.send(Message::Ping(Vec::new().into())).await.map_err(|e| SyncError::Lost(e.to_string()))?;
                continue;
            }
        };
        send_all(&mut ws, frames).await?;
    }
}

/// Uploads queued attachments without holding up the change feed; what fails stays queued
/// for the next edit or reconnect.
fn upload_blobs_in_background(store: &Arc<Store>) {
    let store = store.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::files::upload_pending(&store).await {
            tracing::warn!(error = %e, "attachments not uploaded yet");
        }
    });
}
