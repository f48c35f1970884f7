//! The Ficha relay: a WebSocket endpoint over a redb change feed.
//!
//! The protocol itself lives in `ficha_core::relay`; this crate stores (`store`), serves
//! (`server`) and keeps the signing secret (`secret`).

pub mod secret;
pub mod server;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;

use tokio::sync::oneshot;

/// File the serving relay writes its address to, so admin commands can reach it.
pub const ADDR_FILE: &str = "relay.addr";

/// A relay running inside this process (for the demo and tests).
pub struct RunningRelay {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningRelay {
    /// The WebSocket URL replicas use.
    pub fn url(&self) -> String {
        format!("ws://{}/sync", self.addr)
    }

    /// Stops serving and waits until the database is released.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

/// Starts a relay on `listen` with its data in `dir`.
pub async fn spawn(dir: &Path, listen: SocketAddr) -> anyhow::Result<RunningRelay> {
    spawn_with(dir, listen, server::Limits::default()).await
}

/// Starts a relay with explicit network limits.
pub async fn spawn_with(
    dir: &Path,
    listen: SocketAddr,
    limits: server::Limits,
) -> anyhow::Result<RunningRelay> {
    let store = store::RedbRelayStore::open(dir)?;
    let secret = secret::load_or_create(dir)?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let shared = server::Shared::new(store, secret, limits);
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(server::run(listener, shared, async {
        let _ = rx.await;
    }));
    Ok(RunningRelay {
        addr,
        stop: Some(tx),
        task,
    })
}

/// Issues a token signed with the relay's secret in `dir`.
pub fn issue_token(
    dir: &Path,
    replica: &str,
    companies: &[String],
    read_only: bool,
    ttl_days: u64,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        !replica.trim().is_empty(),
        "the replica name must not be empty"
    );
    anyhow::ensure!(!companies.is_empty(), "name at least one --company");
    let companies = companies
        .iter()
        .map(|c| ficha_core::Company::new(c))
        .collect::<Result<Vec<_>, _>>()?;
    let secret = secret::load_or_create(dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = ficha_core::token::Claims {
        replica: replica.to_string(),
        companies,
        write: !read_only,
        issued_at: now,
        expires_at: now + ttl_days * 86_400,
    };
    Ok(ficha_core::token::sign(&secret, &claims))
}

/// Runs an admin call against the relay serving from `dir`, if one is; None if none is.
pub async fn admin_call(dir: &Path, path_and_query: &str) -> anyhow::Result<Option<String>> {
    let Ok(addr) = std::fs::read_to_string(dir.join(ADDR_FILE)) else {
        return Ok(None);
    };
    let secret = secret::load_or_create(dir)?;
    let url = format!("http://{}{path_and_query}", addr.trim());
    let response = reqwest::Client::new()
        .post(&url)
        .header("x-ficha-admin", secret::admin_key(&secret))
        .send()
        .await;
    match response {
        Err(e) if e.is_connect() => Ok(None),
        Err(e) => Err(e.into()),
        Ok(r) if r.status().is_success() => Ok(Some(r.text().await?)),
        Ok(r) => anyhow::bail!("relay refused: {}", r.text().await.unwrap_or_default()),
    }
}
