//! Accepting connections: what a stranger may cost before it has said a valid hello.
//!
//! Every TCP connection takes a *stranger* permit, from a pool smaller than and separate from
//! the sessions' slots, and gives it back once its hello is accepted (or it closes). Without
//! a permit a connection is dropped at once. Its HTTP request head must arrive within the
//! header timeout, and until its hello is accepted its WebSocket may read only a few kilobytes,
//! so a stranger can neither hold many sockets nor make the relay buffer a large message.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tower::ServiceExt;

use super::{Shared, lock};

/// A connection's stranger permit, held until its hello is accepted.
#[derive(Default)]
pub(crate) struct Stranger(Mutex<Option<OwnedSemaphorePermit>>);

impl Stranger {
    /// Gives the permit back: the connection is a session now.
    pub(crate) fn welcome(&self) {
        lock(&self.0).take();
    }
}

/// Serves HTTP on `listener` until `shutdown` resolves; returns once every connection closed
/// or the grace period is over.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    strangers: Arc<tokio::sync::Semaphore>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    // Every connection task holds a sender: once all are dropped, every connection is done.
    let (done, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let (closing, _) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = strangers.clone().try_acquire_owned() else {
            shared.refused_stranger();
            drop(tcp);
            continue;
        };
        let stranger = Arc::new(Stranger(Mutex::new(Some(permit))));
        let svc = app
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(stranger.clone());
                req
            });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(shared.limits.header_timeout);
        let conn = http
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(svc))
            .with_upgrades();
        let done = done.clone();
        let mut closing = closing.subscribe();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = closing.changed() => {
                    // Finish the request in progress, take no other.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(done);
        });
    }
    shared.begin_shutdown();
    drop(listener);
    let _ = closing.send(true);
    drop(done);
    if tokio::time::timeout(shared.limits.shutdown_grace, all_done.recv())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the shutdown grace period");
    }
}

/// An upgraded connection that may read only `budget` bytes until [`Budget::lift`].
pub(crate) struct CappedIo<T> {
    inner: T,
    budget: Arc<Budget>,
}

/// Bytes a connection may still read before its hello is accepted.
pub(crate) struct Budget(AtomicU64);

impl Budget {
    pub(crate) fn new(bytes: u64) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(bytes)))
    }

    /// No cap from now on.
    pub(crate) fn lift(&self) {
        self.0.store(u64::MAX, Ordering::Relaxed);
    }
}

impl<T> CappedIo<T> {
    pub(crate) fn new(inner: T, budget: Arc<Budget>) -> Self {
        Self { inner, budget }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CappedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 && self.budget.0.load(Ordering::Relaxed) != u64::MAX {
            let left = self.budget.0.load(Ordering::Relaxed);
            if read > left {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "too many bytes before an accepted hello",
                )));
            }
            self.budget.0.store(left - read, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CappedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
