//! The counted link between the samod repos: a TCP proxy counting bytes, and a dialer whose
//! transport counts WebSocket messages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::future::{BoxFuture, ready};
use futures_util::{SinkExt, StreamExt};
use samod::{DialError, Dialer, Transport, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};

/// Traffic counters shared by the proxy and the client's transport.
pub struct Counters {
    epoch: Instant,
    payload: AtomicU64,
    messages: AtomicU64,
    tcp: AtomicU64,
    /// Nanoseconds from `epoch` to the last byte or message seen.
    last: AtomicU64,
}

/// The counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    /// WebSocket message payload bytes, both directions.
    pub payload: u64,
    /// WebSocket messages, both directions.
    pub messages: u64,
    /// TCP bytes through the proxy, both directions.
    pub tcp: u64,
}

impl Counters {
    /// Zero counters, no activity yet.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            payload: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            tcp: AtomicU64::new(0),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    fn message(&self, len: usize) {
        self.payload.fetch_add(len as u64, Ordering::Relaxed);
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// Time since the last byte or message, either direction.
    pub fn idle(&self) -> Duration {
        let last = Duration::from_nanos(self.last.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// The counters now.
    pub fn tally(&self) -> Tally {
        Tally {
            payload: self.payload.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            tcp: self.tcp.load(Ordering::Relaxed),
        }
    }
}

/// A TCP proxy to `target` on a fresh loopback port, counting every byte both ways.
pub async fn proxy(
    target: SocketAddr,
    counters: Arc<Counters>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let counters = counters.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    return;
                };
                // The proxy must not add Nagle delays of its own to either hop.
                if inbound.set_nodelay(true).is_err() || outbound.set_nodelay(true).is_err() {
                    return;
                }
                let (client_read, client_write) = inbound.into_split();
                let (server_read, server_write) = outbound.into_split();
                tokio::join!(
                    pipe(client_read, server_write, &counters),
                    pipe(server_read, client_write, &counters)
                );
            });
        }
    });
    Ok((addr, task))
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, counters: &Counters) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        counters.tcp.fetch_add(n as u64, Ordering::Relaxed);
        counters.touch();
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// samod's own tungstenite dialer, plus counting of every message's payload both ways.
pub struct CountingDialer {
    url: Url,
    counters: Arc<Counters>,
}

impl CountingDialer {
    /// A dialer of the WebSocket at `url`, counting into `counters`.
    pub fn new(url: Url, counters: Arc<Counters>) -> Self {
        Self { url, counters }
    }
}

impl Dialer for CountingDialer {
    type Error = std::convert::Infallible;

    fn url(&self) -> Url {
        self.url.clone()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Transport, DialError<Self::Error>>> {
        let url = self.url.clone();
        let (inbound, outbound) = (self.counters.clone(), self.counters.clone());
        Box::pin(async move {
            let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(DialError::transient)?;
            let (sink, stream) = ws.split();
            // As samod's `ws_to_bytes`: binary messages are the protocol, control frames are not.
            let stream = stream.filter_map(move |msg| {
                ready(match msg {
                    Ok(Message::Binary(b)) => {
                        inbound.message(b.len());
                        Some(Ok(b.to_vec()))
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
            });
            let sink = sink.with(move |b: Vec<u8>| {
                outbound.message(b.len());
                ready(Ok::<_, tungstenite::Error>(Message::Binary(b.into())))
            });
            Ok(Transport::new(stream, sink))
        })
    }
}
