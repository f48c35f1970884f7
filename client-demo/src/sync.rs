//! The sync driver: runs a [`ReplicaSession`] over a WebSocket to the relay.
//!
//! `sync_once` does one full round and returns; `run_forever` keeps a session up for
//! `ficha serve`, reconnecting with exponential backoff (capped at a few seconds, with jitter,
//! and cut short by a local edit, which wants uploading), and uploads local edits as soon as
//! they are committed (the app signals them through a `Notify`).
//!
//! While a round is under way (from connecting until everything went up and came down) its
//! progress is counted in [`SyncStatus`]: documents and bytes, and their rate. No time left is
//! given: the relay tells a company's feed head only in `CaughtUp` (or `ReconcileDiff`), that
//! is once the catch-up is over, so there is no total to count towards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use ficha_core::frame::{DEFAULT_MAX_FRAME, ErrorCode, Frame};
use ficha_core::replica::{ReplicaConfig, ReplicaSession, SessionError};
use ficha_store::{Store, StoreError, SyncStore};

use crate::progress::{Progress, Snapshot, Terminal};

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
    /// Counts what a watching page must re-read: documents received, the link going up or down.
    revision: tokio::sync::watch::Sender<u64>,
    /// Set by the page's "offline" switch: the link is cut until it is cleared.
    offline: tokio::sync::watch::Sender<bool>,
    connected: AtomicBool,
    restarting: AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
    /// The round under way, if the session is not in sync.
    progress: std::sync::Mutex<Option<Progress>>,
}

impl SyncStatus {
    /// Changes whenever documents arrive from the relay or the link changes state.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revision.subscribe()
    }

    fn bump(&self) {
        self.revision.send_modify(|r| *r += 1);
    }

    /// Cuts the link to the relay (true) or lets it reconnect (false); edits keep being made
    /// and kept locally meanwhile.
    pub fn set_offline(&self, offline: bool) {
        self.offline.send_replace(offline);
        self.bump();
    }

    /// Whether the link was cut by hand.
    pub fn offline(&self) -> bool {
        *self.offline.borrow()
    }

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
        self.end_round();
    }

    /// The last error, if the last session ended in one.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// The round under way, once it has run longer than [`crate::progress::SHOW_AFTER`].
    pub fn progress(&self) -> Option<Snapshot> {
        let now = Instant::now();
        self.progress
            .lock()
            .ok()
            .and_then(|p| p.as_ref().and_then(|p| p.snapshot(now)))
    }

    /// Starts counting a round, unless one is counted already.
    fn begin_round(&self) {
        if let Ok(mut p) = self.progress.lock()
            && p.is_none()
        {
            *p = Some(Progress::new("sync", Instant::now(), None));
        }
    }

    /// Stops counting: the session is in sync, or over.
    fn end_round(&self) {
        if let Ok(mut p) = self.progress.lock() {
            *p = None;
        }
    }

    /// Counts documents and bytes moved, if a round is under way (live pushes to a replica in
    /// sync are not a round).
    fn count(&self, documents: u64, bytes: u64) {
        if let Ok(mut p) = self.progress.lock()
            && let Some(p) = p.as_mut()
        {
            p.add(documents, bytes);
        }
    }

    fn set(&self, connected: bool, error: Option<String>) {
        self.connected.store(connected, Ordering::Relaxed);
        if connected {
            self.restarting.store(false, Ordering::Relaxed);
        }
        if let Ok(mut e) = self.last_error.lock() {
            *e = error;
        }
        // After the new state is in place: a page woken by it must read it, not the old one.
        self.bump();
    }
}

enum Mode {
    Once,
    Forever,
}

/// One full round: connect, catch up every company, upload the whole outbox, close.
pub async fn sync_once(store: Arc<Store>, timeout: Duration) -> Result<(), SyncError> {
    round(store, timeout, None).await
}

/// [`sync_once`], showing its progress on stderr when that is a terminal (`ficha sync`);
/// library callers such as benchmarks keep [`sync_once`], which never draws.
pub async fn sync_once_showing_progress(
    store: Arc<Store>,
    timeout: Duration,
) -> Result<(), SyncError> {
    let terminal = Terminal::new();
    let terminal = terminal.is_shown().then_some(terminal);
    round(store, timeout, terminal).await
}

async fn round(
    store: Arc<Store>,
    timeout: Duration,
    terminal: Option<Terminal>,
) -> Result<(), SyncError> {
    let status = Arc::new(SyncStatus::default());
    let notify = Notify::new();
    // Drawn from a task of its own on a timer: the session blocks its task while the store
    // commits (a first page can take seconds), and the line must move meanwhile.
    let drawer = terminal.map(|mut terminal| {
        let status = status.clone();
        tokio::spawn(async move {
            let mut redraw = tokio::time::interval(Duration::from_millis(100));
            loop {
                redraw.tick().await;
                terminal.show(status.progress().as_ref());
            }
        })
    });
    let result = tokio::time::timeout(timeout, session(&store, Mode::Once, &notify, &status)).await;
    if let Some(drawer) = drawer {
        // Dropping the task's terminal clears the line before the command prints its summary.
        drawer.abort();
        let _ = drawer.await;
    }
    result.unwrap_or(Err(SyncError::Timeout(timeout)))
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
    let mut offline = status.offline.subscribe();
    loop {
        if *offline.borrow_and_update() {
            status.set(false, None);
            tokio::select! {
                _ = offline.wait_for(|cut| !cut) => {}
                _ = shutdown.notified() => return,
            }
            backoff = Duration::from_millis(200);
        }
        let run = session(&store, Mode::Forever, &notify, &status);
        let result = tokio::select! {
            r = run => r,
            _ = offline.wait_for(|cut| *cut) => continue,
            _ = shutdown.notified() => return,
        };
        status.end_round();
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

async fn send_all(ws: &mut Ws, frames: Vec<Frame>, status: &SyncStatus) -> Result<(), SyncError> {
    for f in frames {
        let bytes = f.encode();
        let documents = match &f {
            Frame::Upload(u) => u.docs.len() as u64,
            _ => 0,
        };
        status.count(documents, bytes.len() as u64);
        ws.feed(Message::Binary(bytes.into()))
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
    // Connecting is part of the round: a relay slow to answer shows as a round with nothing
    // moved yet.
    status.begin_round();
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
    send_all(&mut ws, session.start(), status).await?;
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.tick().await;
    let mut was_synced = false;
    let mut recorded: Option<tokio::time::Instant> = None;
    loop {
        let synced = session.is_synced();
        if synced {
            status.end_round();
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
                let documents = match &frame {
                    // An entry this replica wrote comes back without its changes: not a
                    // document received, and counting it would count an upload twice.
                    Frame::Feed(page) => {
                        page.entries.iter().filter(|e| !e.changes.is_empty()).count() as u64
                    }
                    _ => 0,
                };
                status.count(documents, bytes.len() as u64);
                if matches!(frame, Frame::Welcome(_)) {
                    status.set(true, None);
                    tracing::info!(relay = %url, "connected to relay");
                    if matches!(mode, Mode::Forever) {
                        upload_blobs_in_background(store);
                    }
                }
                // redb commits block; keep them off the async workers' hot path.
                let replies = tokio::task::block_in_place(|| session.receive(&mut SyncStore(store), frame))?;
                if documents > 0 {
                    status.bump();
                }
                replies
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
        if !session.is_synced() {
            // A local edit (or a repair) made the session go out of sync: a new round, which
            // counts the upload about to be sent.
            status.begin_round();
        }
        send_all(&mut ws, frames, status).await?;
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
