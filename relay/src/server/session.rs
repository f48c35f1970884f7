//! One WebSocket connection: a reader feeding the relay, a writer draining its queue.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use ficha_core::frame::{DEFAULT_MAX_FRAME, ErrorCode, ErrorFrame, Frame, MAX_HELLO_BYTES};
use ficha_core::relay::ConnId;
use ficha_core::token;

use super::accept::{Budget, CappedIo, Stranger};
use super::pace::{Pace, work_of};
use super::{Conn, ConnCtl, Shared, lock, now_secs};

/// How long a closing writer may spend flushing what is queued.
const FLUSH: Duration = Duration::from_secs(5);

/// Bytes a connection may read before its hello is accepted: the hello (an id and a token)
/// with its WebSocket framing, and a ping or two.
const BEFORE_HELLO: u64 = MAX_HELLO_BYTES as u64 + 1024;

pub(super) type Socket = WebSocketStream<CappedIo<TokioIo<hyper::upgrade::Upgraded>>>;

fn plain(status: StatusCode, message: &'static str) -> Response {
    (status, message).into_response()
}

/// `GET /sync`: upgrades to a WebSocket whose binary messages are frames.
pub(super) async fn upgrade(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    upgrade_with(shared, req, serve)
}

/// Checks a WebSocket upgrade request and, once upgraded, runs `serve` on the socket; the
/// first bytes a connection may read are capped until its driver lifts the budget.
pub(super) fn upgrade_with<F, Fut>(shared: Arc<Shared>, mut req: Request, serve: F) -> Response
where
    F: FnOnce(Socket, Arc<Shared>, Option<Arc<Stranger>>, Arc<Budget>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let headers = req.headers();
    let has = |h: &HeaderMap, name: header::HeaderName, want: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(want))
            })
        })
    };
    if !has(headers, header::UPGRADE, "websocket") || !has(headers, header::CONNECTION, "upgrade") {
        return plain(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket only",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        return plain(StatusCode::BAD_REQUEST, "WebSocket version 13 is required");
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let stranger = req.extensions().get::<Arc<Stranger>>().cloned();
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return plain(
            StatusCode::BAD_REQUEST,
            "this connection cannot be upgraded",
        );
    };
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let budget = Budget::new(BEFORE_HELLO);
        let io = CappedIo::new(TokioIo::new(upgraded), budget.clone());
        let config = WebSocketConfig::default()
            .max_message_size(Some(DEFAULT_MAX_FRAME))
            .max_frame_size(Some(DEFAULT_MAX_FRAME));
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        serve(socket, shared, stranger, budget).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        )
        .body(axum::body::Body::empty())
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "upgrade failed"))
}

fn error_frame(code: ErrorCode, message: String) -> Arc<[u8]> {
    Arc::from(
        Frame::Error(ErrorFrame {
            code,
            message,
            fatal: true,
        })
        .encode(),
    )
}

pub(super) fn close(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// Tells a connection over the limit why it is refused, then closes it.
async fn refuse_full(sink: &mut SplitSink<Socket, Message>, shared: &Shared) {
    shared.refused.fetch_add(1, Ordering::Relaxed);
    let max = shared.limits.max_connections;
    tracing::warn!(max, "refusing a session: the relay is at its session limit");
    let frame = error_frame(
        ErrorCode::Limit,
        format!("the relay is at its limit of {max} sessions; retry later"),
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        sink.send(Message::Binary(Bytes::from_owner(frame))).await?;
        sink.send(Message::Close(Some(close(CloseCode::Again, "relay full"))))
            .await
    })
    .await;
}

/// Sends queued frames until the queue closes (flush, then close) or `kill` fires (close now).
/// An empty frame, which no protocol here sends, stands for a ping.
async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut rx: mpsc::Receiver<Arc<[u8]>>,
    ctl: Arc<ConnCtl>,
) {
    loop {
        let bytes = tokio::select! {
            biased;
            _ = ctl.kill.notified() => break,
            b = rx.recv() => match b {
                Some(b) => b,
                None => break,
            },
        };
        let sent = tokio::select! {
            biased;
            _ = ctl.kill.notified() => break,
            r = sink.send(if bytes.is_empty() {
                Message::Ping(Bytes::new())
            } else {
                Message::Binary(Bytes::from_owner(bytes))
            }) => r,
        };
        if sent.is_err() {
            return;
        }
    }
    let frame = ctl.take_close();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        match frame {
            Some(frame) => sink.send(Message::Close(Some(frame))).await,
            None => sink.close().await,
        }
    })
    .await;
}

/// Queues a final error frame for `conn` and closes it with `code`.
fn close_with_error(
    shared: &Shared,
    conn: ConnId,
    frame: Arc<[u8]>,
    code: CloseCode,
    why: &'static str,
) {
    if let Some(c) = lock(&shared.conns).remove(&conn) {
        c.ctl.set_close(code, why);
        let _ = c.tx.try_send(frame);
    }
}

/// The replica name a hello claims (checked by the relay, used here only for logs).
fn claimed_name(bytes: &[u8]) -> Option<String> {
    match Frame::decode(bytes, MAX_HELLO_BYTES) {
        Ok(Frame::Hello(h)) => token::peek(&h.token).ok().map(|c| c.replica),
        _ => None,
    }
}

/// Runs one connection from upgrade to close.
async fn serve(
    socket: Socket,
    shared: Arc<Shared>,
    stranger: Option<Arc<Stranger>>,
    budget: Arc<Budget>,
) {
    let conn = shared.next.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let started = Instant::now();
    // The first frame must arrive within the handshake timeout, and be small.
    let first = match tokio::time::timeout_at(
        started + shared.limits.handshake_timeout,
        first_binary(&mut stream),
    )
    .await
    {
        Ok(First::Binary(bytes)) => bytes,
        Ok(First::Closed) => return,
        Ok(First::Text) => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(conn, "refusing a text message on the sync socket");
            let frame = error_frame(
                ErrorCode::Protocol,
                "the sync socket carries binary frames only".into(),
            );
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                sink.send(Message::Binary(Bytes::from_owner(frame))).await?;
                sink.send(Message::Close(Some(close(
                    CloseCode::Unsupported,
                    "binary only",
                ))))
                .await
            })
            .await;
            return;
        }
        Err(_) => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(conn, "closing a connection that sent no hello in time");
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                sink.send(Message::Close(Some(close(CloseCode::Policy, "no hello")))),
            )
            .await;
            return;
        }
    };
    // A session slot is taken only for a hello being checked, and kept only if it is accepted:
    // strangers cannot hold the slots of authenticated replicas.
    let Some(slot) = shared.reserve() else {
        refuse_full(&mut sink, &shared).await;
        return;
    };
    shared.with_relay(|r| {
        r.connect(conn);
        ((), Vec::new())
    });
    let (ctl, mut writer) = open_conn(&shared, conn, sink);
    let name = claimed_name(&first).unwrap_or_default();
    let reason = if first.len() > MAX_HELLO_BYTES {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        let frame = error_frame(
            ErrorCode::Limit,
            format!("the first frame must be a hello of at most {MAX_HELLO_BYTES} bytes"),
        );
        close_with_error(&shared, conn, frame, CloseCode::Size, "hello too large");
        "hello too large"
    } else {
        shared.with_relay(|r| ((), r.receive(conn, &first, now_secs())));
        if lock(&shared.conns).contains_key(&conn) {
            // The hello was accepted: this is a session now.
            promote(stranger.as_deref(), &budget);
            session(&shared, conn, &mut stream, &mut writer).await
        } else {
            "refused by the relay"
        }
    };
    close_conn(&shared, conn, writer, &ctl).await;
    let secs = started.elapsed().as_secs();
    if reason == "refused by the relay" || reason == "hello too large" {
        tracing::debug!(conn, reason, "connection closed before a session opened");
    } else {
        tracing::info!(conn, replica = %name, reason, secs, "session closed");
    }
    drop(slot);
}

/// Registers a connection's outgoing queue and starts its writer.
pub(super) fn open_conn(
    shared: &Shared,
    conn: ConnId,
    sink: SplitSink<Socket, Message>,
) -> (Arc<ConnCtl>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(shared.limits.queue.max(1));
    let ctl = Arc::new(ConnCtl::default());
    lock(&shared.conns).insert(
        conn,
        Conn {
            tx,
            ctl: ctl.clone(),
        },
    );
    // Shutdown may have swept the table just before this connection joined it.
    if shared.closing.load(Ordering::SeqCst) {
        ctl.kill.notify_one();
    }
    (ctl.clone(), tokio::spawn(write_loop(sink, rx, ctl)))
}

/// Makes an accepted stranger a session: its stranger's permit goes back and its byte cap goes.
pub(super) fn promote(stranger: Option<&Stranger>, budget: &Budget) {
    if let Some(s) = stranger {
        s.welcome();
    }
    budget.lift();
}

/// Ends a connection: the relay and the table forget it, and its writer flushes what is
/// queued (within [`FLUSH`]).
pub(super) async fn close_conn(
    shared: &Shared,
    conn: ConnId,
    mut writer: tokio::task::JoinHandle<()>,
    ctl: &ConnCtl,
) {
    shared.with_relay(|r| {
        r.disconnect(conn);
        ((), Vec::new())
    });
    lock(&shared.conns).remove(&conn);
    // A writer the session already saw end must not be awaited again (tokio panics).
    if !writer.is_finished() && tokio::time::timeout(FLUSH, &mut writer).await.is_err() {
        ctl.kill.notify_one();
        let _ = writer.await;
    }
}

/// What a connection sent first.
enum First {
    Binary(Bytes),
    Text,
    Closed,
}

/// The first data message, answering pings meanwhile.
async fn first_binary(stream: &mut SplitStream<Socket>) -> First {
    loop {
        match stream.next().await {
            Some(Ok(Message::Binary(b))) => return First::Binary(b),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Text(_))) => return First::Text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return First::Closed,
        }
    }
}

/// Feeds an accepted session's frames to the relay until it ends; returns why.
async fn session(
    shared: &Shared,
    conn: ConnId,
    stream: &mut SplitStream<Socket>,
    writer: &mut tokio::task::JoinHandle<()>,
) -> &'static str {
    let mut last_seen = Instant::now();
    let limits = &shared.limits;
    let mut uploads = Pace::new(limits.uploads_per_sec, limits.upload_burst);
    let mut work = Pace::new(limits.work_per_sec, limits.work_burst);
    // A message read while gathering uploads that was not one, handled next.
    let mut held = None;
    loop {
        let next = match held.take() {
            Some(m) => Ok(m),
            None => tokio::select! {
                biased;
                _ = &mut *writer => return "closed by the relay",
                m = tokio::time::timeout_at(last_seen + limits.idle_timeout, stream.next()) => m,
            },
        };
        let msg = match next {
            Err(_) => return "idle timeout",
            Ok(None) => return "connection closed",
            Ok(Some(Err(e))) => {
                tracing::debug!(conn, error = %e, "socket error");
                return "socket error";
            }
            Ok(Some(Ok(m))) => m,
        };
        last_seen = Instant::now();
        let bytes = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => return "closed by the replica",
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Text(_) => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(conn, "refusing a text message on the sync socket");
                let frame = error_frame(
                    ErrorCode::Protocol,
                    "the sync socket carries binary frames only".into(),
                );
                close_with_error(shared, conn, frame, CloseCode::Unsupported, "binary only");
                return "text message";
            }
        };
        let upload = Frame::is_upload(&bytes);
        let kind = Frame::kind_of(&bytes);
        let mut frames = vec![bytes];
        if upload {
            held = gather_uploads(stream, &mut frames);
        }
        let slices: Vec<&[u8]> = frames.iter().map(|b| b.as_ref()).collect();
        shared.with_relay(|r| ((), r.receive_batch(conn, &slices, now_secs())));
        if !lock(&shared.conns).contains_key(&conn) {
            return "refused by the relay";
        }
        let now = Instant::now();
        let wait = if upload {
            // Every gathered upload spends a token; the last answer is the whole deficit.
            frames.iter().fold(None, |_, _| uploads.take(now, 1.0))
        } else {
            work.take(now, work_of(kind))
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Uploads stored in one transaction at most, when a replica pipelines them.
const MAX_GATHERED_UPLOADS: usize = 64;

type Received = Option<Result<Message, tokio_tungstenite::tungstenite::Error>>;

/// Adds to `frames` the uploads already received behind the first, without waiting for more;
/// returns the first message that is not one, to be handled next.
fn gather_uploads(stream: &mut SplitStream<Socket>, frames: &mut Vec<Bytes>) -> Option<Received> {
    let mut bytes: usize = frames.iter().map(|f| f.len()).sum();
    while frames.len() < MAX_GATHERED_UPLOADS && bytes < DEFAULT_MAX_FRAME {
        match stream.next().now_or_never()? {
            Some(Ok(Message::Binary(b))) if Frame::is_upload(&b) => {
                bytes += b.len();
                frames.push(b);
            }
            other => return Some(other),
        }
    }
    None
}
