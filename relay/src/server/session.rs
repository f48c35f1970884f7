//! One WebSocket connection: a reader feeding the relay, a writer draining its queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use ficha_core::frame::{DEFAULT_MAX_FRAME, ErrorCode, ErrorFrame, Frame};
use ficha_core::relay::ConnId;
use ficha_core::token;

use super::{Conn, ConnCtl, Shared, Slot, lock, now_secs};

/// How long a closing writer may spend flushing what is queued.
const FLUSH: Duration = Duration::from_secs(5);

/// `GET /sync`: upgrades to a WebSocket whose binary messages are frames.
pub(super) async fn upgrade(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    let slot = shared.reserve();
    ws.max_message_size(DEFAULT_MAX_FRAME)
        .max_frame_size(DEFAULT_MAX_FRAME)
        .on_upgrade(move |socket| async move {
            match slot {
                Some(slot) => serve(socket, slot).await,
                None => refuse_full(socket, &shared).await,
            }
        })
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

/// Tells a connection over the limit why it is refused, then closes it.
async fn refuse_full(mut socket: WebSocket, shared: &Shared) {
    shared.refused.fetch_add(1, Ordering::Relaxed);
    let max = shared.limits.max_connections;
    tracing::warn!(
        max,
        "refusing a connection: the relay is at its connection limit"
    );
    let frame = error_frame(
        ErrorCode::Limit,
        format!("the relay is at its limit of {max} connections; retry later"),
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        socket
            .send(Message::Binary(Bytes::from_owner(frame)))
            .await?;
        socket
            .send(Message::Close(Some(CloseFrame {
                code: close_code::AGAIN,
                reason: "relay full".into(),
            })))
            .await
    })
    .await;
}

/// Sends queued frames until the queue closes (flush, then close) or `kill` fires (close now).
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
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
            r = sink.send(Message::Binary(Bytes::from_owner(bytes))) => r,
        };
        if sent.is_err() {
            return;
        }
    }
    let close = ctl.take_close();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        match close {
            Some(frame) => sink.send(Message::Close(Some(frame))).await,
            None => sink.close().await,
        }
    })
    .await;
}

/// Queues a final error frame for `conn` and closes it with `code`.
fn close_with_error(shared: &Shared, conn: ConnId, frame: Arc<[u8]>, code: u16, why: &'static str) {
    if let Some(c) = lock(&shared.conns).remove(&conn) {
        c.ctl.set_close(code, why);
        let _ = c.tx.try_send(frame);
    }
}

/// The replica name a hello claims (checked by the relay, used here only for logs).
fn claimed_name(bytes: &[u8]) -> Option<String> {
    match Frame::decode(bytes, DEFAULT_MAX_FRAME) {
        Ok(Frame::Hello(h)) => token::peek(&h.token).ok().map(|c| c.replica),
        _ => None,
    }
}

/// Runs one connection from upgrade to close.
async fn serve(socket: WebSocket, slot: Slot) {
    let shared = slot.0.clone();
    let conn = shared.next.fetch_add(1, Ordering::Relaxed);
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
    shared.with_relay(|r| {
        r.connect(conn);
        ((), Vec::new())
    });
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write_loop(sink, rx, ctl.clone()));
    let mut writer_done = false;
    let started = Instant::now();
    let handshake_deadline = started + shared.limits.handshake_timeout;
    let mut last_seen = started;
    let mut replica: Option<String> = None;
    let mut pace = Pace::new(shared.limits.uploads_per_sec, shared.limits.upload_burst);
    // A message read while gathering uploads that was not one, handled next.
    let mut held = None;
    let reason = loop {
        let deadline = match replica {
            None => handshake_deadline,
            Some(_) => last_seen + shared.limits.idle_timeout,
        };
        let next = match held.take() {
            Some(m) => Ok(m),
            None => tokio::select! {
                biased;
                _ = &mut writer => {
                    writer_done = true;
                    break "closed by the relay";
                }
                m = tokio::time::timeout_at(deadline, stream.next()) => m,
            },
        };
        let msg = match next {
            Err(_) if replica.is_none() => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(conn, "closing a connection that sent no hello in time");
                break "no hello within the handshake timeout";
            }
            Err(_) => break "idle timeout",
            Ok(None) => break "connection closed",
            Ok(Some(Err(e))) => {
                tracing::debug!(conn, error = %e, "socket error");
                break "socket error";
            }
            Ok(Some(Ok(m))) => m,
        };
        last_seen = Instant::now();
        let bytes = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => break "closed by the replica",
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Text(_) => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(conn, "refusing a text message on the sync socket");
                let frame = error_frame(
                    ErrorCode::Protocol,
                    "the sync socket carries binary frames only".into(),
                );
                close_with_error(&shared, conn, frame, close_code::UNSUPPORTED, "binary only");
                break "text message";
            }
        };
        let name = if replica.is_none() {
            claimed_name(&bytes)
        } else {
            None
        };
        let upload = replica.is_some() && Frame::is_upload(&bytes);
        let mut frames = vec![bytes];
        if upload {
            held = gather_uploads(&mut stream, &mut frames);
        }
        let slices: Vec<&[u8]> = frames.iter().map(|b| b.as_ref()).collect();
        shared.with_relay(|r| ((), r.receive_batch(conn, &slices, now_secs())));
        if !lock(&shared.conns).contains_key(&conn) {
            break "refused by the relay";
        }
        // A session sending uploads faster than its share waits before its next frame is read,
        // so TCP pushes back on it instead of every other session waiting behind its writes.
        if upload {
            // Every gathered upload spends a token; the last answer is the whole deficit.
            let now = Instant::now();
            let mut wait = None;
            for _ in &frames {
                wait = pace.take(now);
            }
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
        }
        // Past its first frame a connection still open is a session: the relay closes any
        // connection whose first frame is not an accepted hello.
        if replica.is_none() {
            replica = Some(name.unwrap_or_default());
        }
    };
    shared.with_relay(|r| {
        r.disconnect(conn);
        ((), Vec::new())
    });
    lock(&shared.conns).remove(&conn);
    if !writer_done && tokio::time::timeout(FLUSH, &mut writer).await.is_err() {
        ctl.kill.notify_one();
        let _ = writer.await;
    }
    let secs = started.elapsed().as_secs();
    match replica {
        Some(name) => tracing::info!(conn, replica = %name, reason, secs, "session closed"),
        None => tracing::debug!(conn, reason, "connection closed before a session opened"),
    }
    drop(slot);
}

/// Uploads stored in one transaction at most, when a replica pipelines them.
const MAX_GATHERED_UPLOADS: usize = 64;

type Received = Option<Result<Message, axum::Error>>;

/// Adds to `frames` the uploads already received behind the first, without waiting for more;
/// returns the first message that is not one, to be handled next.
fn gather_uploads(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    frames: &mut Vec<Bytes>,
) -> Option<Received> {
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

/// A token bucket over one session's uploads.
struct Pace {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Pace {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            at: Instant::now(),
        }
    }

    /// Spends one upload; returns how long to wait if the session is over its rate.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - 1.0;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_uploads_are_paced_to_the_rate() {
        let start = Instant::now();
        let mut pace = Pace::new(10.0, 3.0);
        assert!(
            (0..3).all(|_| pace.take(start).is_none()),
            "the burst passes"
        );
        let wait = pace.take(start).expect("over the burst");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // Waiting it out refills exactly that token.
        assert!(pace.take(start + Duration::from_millis(200)).is_none());
    }
}
