//! `/automerge`: one WebSocket of a stock automerge-repo client, fed to the relay core's
//! automerge-repo sessions (`ficha_core::relay`'s `connect_repo` and `receive_repo`).
//!
//! Stock clients cannot send headers, so the token comes as `?token=` (never logged). The
//! upgrade always succeeds: a refused token is told with an automerge-repo `error` message and
//! a close, because stock Node clients crash on an HTTP error at upgrade. Stock clients send no
//! pings either, so the relay pings an idle socket and counts the pong as life.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use ficha_core::relay::ConnId;
use ficha_core::repo_wire::RepoMessage;

use super::accept::{Budget, Stranger};
use super::pace::Pace;
use super::session::{Socket, close, close_conn, open_conn, promote, upgrade_with};
use super::{Shared, lock, now_secs};

/// Pings per idle timeout: a socket silent for a sixth of it (20 s by default) is pinged, so a
/// live client's pong always comes well before the timeout.
const PINGS_PER_IDLE: u32 = 6;

/// The `token` parameter of a query string, as sent (tokens are URL-safe base64 and dots).
fn token_of(query: Option<&str>) -> String {
    query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .unwrap_or_default()
        .to_string()
}

/// `GET /automerge?token=...`: upgrades to a WebSocket speaking automerge-repo's protocol.
pub(super) async fn upgrade(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let token = token_of(req.uri().query());
    upgrade_with(shared, req, move |socket, shared, stranger, budget| {
        serve(socket, shared, stranger, budget, token)
    })
}

fn error(message: String) -> Bytes {
    Bytes::from(RepoMessage::Error { message }.encode())
}

/// Runs one automerge-repo connection from upgrade to close.
async fn serve(
    socket: Socket,
    shared: Arc<Shared>,
    stranger: Option<Arc<Stranger>>,
    budget: Arc<Budget>,
    token: String,
) {
    let conn = shared.next.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let Some(slot) = shared.reserve() else {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        let max = shared.limits.max_connections;
        tracing::warn!(max, "refusing an automerge-repo peer: the relay is full");
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            sink.send(Message::Binary(error(format!(
                "the relay is at its limit of {max} connections; retry later"
            ))))
            .await?;
            sink.send(Message::Close(Some(close(CloseCode::Again, "relay full"))))
                .await
        })
        .await;
        return;
    };
    let (ctl, mut writer) = open_conn(&shared, conn, sink);
    shared.with_relay(|r| ((), r.connect_repo(conn, &token, now_secs())));
    drop(token);
    let reason = if lock(&shared.conns).contains_key(&conn) {
        promote(stranger.as_deref(), &budget);
        session(&shared, conn, &mut stream, &mut writer).await
    } else {
        "refused by the relay"
    };
    close_conn(&shared, conn, writer, &ctl).await;
    tracing::info!(conn, reason, "automerge-repo connection closed");
    drop(slot);
}

/// Feeds an accepted peer's messages to the relay until it ends; returns why.
async fn session(
    shared: &Shared,
    conn: ConnId,
    stream: &mut SplitStream<Socket>,
    writer: &mut tokio::task::JoinHandle<()>,
) -> &'static str {
    let limits = &shared.limits;
    let mut work = Pace::new(limits.work_per_sec, limits.work_burst);
    let mut last_seen = Instant::now();
    let ping_after = limits.idle_timeout / PINGS_PER_IDLE;
    loop {
        let deadline = (last_seen + limits.idle_timeout).min(Instant::now() + ping_after);
        let next = tokio::select! {
            biased;
            _ = &mut *writer => return "closed by the relay",
            m = tokio::time::timeout_at(deadline, stream.next()) => m,
        };
        let msg = match next {
            Err(_) if Instant::now() >= last_seen + limits.idle_timeout => return "idle timeout",
            Err(_) => {
                // An empty frame is the writer's ping.
                match lock(&shared.conns).get(&conn) {
                    Some(c) => {
                        let _ = c.tx.try_send(Arc::from(&[][..]));
                    }
                    None => return "ended by the relay",
                }
                continue;
            }
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
            Message::Close(_) => return "closed by the peer",
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            // automerge-repo sends binary CBOR only; text is not a message of its protocol.
            Message::Text(_) => continue,
        };
        shared.with_relay(|r| ((), r.receive_repo(conn, &bytes, now_secs())));
        if !lock(&shared.conns).contains_key(&conn) {
            return "ended by the relay";
        }
        if let Some(wait) = work.take(Instant::now(), 1.0) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::token_of;

    #[test]
    fn the_token_is_read_from_the_query() {
        assert_eq!(token_of(Some("token=ft1.a.b")), "ft1.a.b");
        assert_eq!(token_of(Some("x=1&token=ft1.a.b&y=2")), "ft1.a.b");
        assert_eq!(token_of(Some("x=1")), "");
        assert_eq!(token_of(None), "");
    }
}
