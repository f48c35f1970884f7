//! `ficha serve`'s body: the local HTTP API with background sync, email sending and the
//! forwarding of edits to merged clients, until a stop signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::app::Replica;
use crate::http::{ApiState, router};
use crate::sync::{SyncStatus, run_forever};

/// What a started server tells whoever started it.
pub struct Ready {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// A one-time sign-in token for the page (`/?token=…`).
    pub link: String,
}

/// How a server runs beyond its replica and listener.
#[derive(Default)]
pub struct Options {
    /// Be the company's email sender through this SMTP server.
    pub mail: Option<crate::mail::SmtpConfig>,
    /// The time zone the page shows times in (None: the browser's, the machine's own when it
    /// runs beside the replica).
    pub time_zone: Option<chrono_tz::Tz>,
}

/// Serves `replica` on `listener` until `stop` resolves, then stops sync and mail cleanly.
pub async fn serve(
    replica: Replica,
    dir: &Path,
    listener: TcpListener,
    opts: Options,
    on_ready: impl FnOnce(&Ready),
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let key = crate::http::api_key(dir).with_context(|| {
        format!(
            "cannot read or create {}",
            dir.join(crate::http::API_KEY_FILE).display()
        )
    })?;
    let replica = Arc::new(replica);
    let status = Arc::new(SyncStatus::default());
    let shutdown = Arc::new(Notify::new());
    let sync = tokio::spawn(supervise_sync(
        replica.clone(),
        status.clone(),
        shutdown.clone(),
    ));
    // Edits that arrive for merged-away clients are moved to their survivors.
    let forwarder = {
        let replica = replica.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let r = replica.clone();
                match tokio::task::spawn_blocking(move || r.forward_tombstones()).await {
                    Ok(Err(e)) => tracing::warn!(error = %e, "forwarding merged clients failed"),
                    Err(e) => tracing::warn!(error = %e, "forwarding merged clients failed"),
                    Ok(Ok(_)) => {}
                }
            }
        })
    };
    let (stop_mail, mail_stopped) = tokio::sync::watch::channel(false);
    let sender = match opts.mail {
        Some(cfg) => {
            let sender = crate::mail::Sender::new(&cfg)?;
            println!("sending queued email through {}", cfg.url);
            Some(tokio::spawn(crate::mail::run(
                replica.clone(),
                sender,
                mail_stopped,
            )))
        }
        None => None,
    };
    let addr = listener.local_addr()?;
    let auth = Arc::new(crate::http::Auth::new(key));
    on_ready(&Ready {
        addr,
        link: auth.one_time_link(),
    });
    let state = ApiState {
        replica,
        sync: status,
        listen: Some(addr),
        auth,
        time_zone: opts.time_zone,
    };
    let notify = shutdown.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            stop.await;
            notify.notify_waiters();
        })
        .await?;
    shutdown.notify_waiters();
    forwarder.abort();
    let _ = stop_mail.send(true);
    if let Some(mut sender) = sender
        && tokio::time::timeout(Duration::from_secs(35), &mut sender)
            .await
            .is_err()
    {
        // Stuck mid-exchange: its message stays `sending` and is reconciled at the next start.
        sender.abort();
    }
    if tokio::time::timeout(Duration::from_secs(5), sync)
        .await
        .is_err()
    {
        bail!("background sync did not stop in time");
    }
    Ok(())
}

/// Runs the background sync, starting it again if it ever fails: `/api/status` must never
/// say a sync is running that is not.
async fn supervise_sync(replica: Arc<Replica>, status: Arc<SyncStatus>, shutdown: Arc<Notify>) {
    loop {
        let task = tokio::spawn(run_forever(
            replica.store().clone(),
            replica.changed().clone(),
            status.clone(),
            shutdown.clone(),
        ));
        let ended = tokio::select! {
            r = task => r,
            _ = shutdown.notified() => return,
        };
        match ended {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, "the background sync failed; starting it again");
                status.failed(format!(
                    "the background sync failed ({e}) and is starting again"
                ));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.notified() => return,
                }
            }
        }
    }
}
