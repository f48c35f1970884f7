//! The Ficha relay: a WebSocket endpoint over a redb change feed.
//!
//! The protocol itself lives in `ficha_core::relay`; this crate stores (`store`), serves
//! (`server`), keeps the signing secret (`secret`) and runs admin commands (`admin`).
//! In-process users (tests, the demo, benches) call [`spawn`] and [`issue_token`].

pub mod admin;
pub mod codes;
pub mod error;
pub mod pg;
pub mod secret;
pub mod server;
pub mod store;
pub mod stores;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;

use ficha_core::RelayEpoch;

pub use error::Error;
pub use server::Limits;

/// File the serving relay writes its (loopback-reachable) address to, for admin commands.
pub const ADDR_FILE: &str = "relay.addr";

/// Default token lifetime of `ficha-relay token`.
pub const DEFAULT_TTL_DAYS: u64 = 365;

fn load_secret(dir: &Path) -> Result<[u8; 32], Error> {
    secret::load_or_create(dir).map_err(|source| Error::Secret {
        dir: dir.to_path_buf(),
        source,
    })
}

/// Where a relay keeps its data.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// The embedded redb file in the data directory (one node).
    Redb,
    /// A PostgreSQL database shared by every node of a cluster.
    Postgres {
        /// `postgres://user@host:port/db`.
        url: String,
        /// The schema holding the tables (the default one if None).
        schema: Option<String>,
    },
}

/// Opens the store and the network layer's handle on it.
async fn open_store(
    choice: &StoreChoice,
    dir: &Path,
    secret: &[u8; 32],
) -> Result<(stores::AnyStore, stores::AnyHandle), Error> {
    match choice {
        StoreChoice::Redb => {
            let store = store::RedbRelayStore::open(dir)?;
            let handle = stores::AnyHandle::Redb(store.handle());
            Ok((stores::AnyStore::Redb(store), handle))
        }
        StoreChoice::Postgres { url, schema } => {
            let (url, schema, fingerprint) =
                (url.clone(), schema.clone(), secret::fingerprint(secret));
            // Connecting blocks (the store runs its own small runtime).
            tokio::task::spawn_blocking(move || {
                let mut store =
                    pg::PgRelayStore::connect(&url, schema.as_deref(), RelayEpoch(rand_epoch()))?;
                store.claim_secret(fingerprint)?;
                let handle = pg::PgHandle::connect(&url, schema.as_deref())?;
                Ok((
                    stores::AnyStore::Pg(Box::new(store)),
                    stores::AnyHandle::Pg(Arc::new(handle)),
                ))
            })
            .await
            .map_err(|e| Error::Invalid(format!("the store's start-up task failed: {e}")))?
            .map_err(Error::Postgres)
        }
    }
}

/// A random epoch, for a database that has none yet or must get a new one.
pub fn rand_epoch() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

/// A relay with its database open and its port bound, not serving yet.
pub struct BoundRelay {
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    dir: PathBuf,
    cluster: Option<server::Cluster>,
}

async fn listen(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    let bound = listener.local_addr().map_err(Error::Serve)?;
    Ok((listener, bound))
}

/// Raises the open-files limit as far as the system allows and fits the connection caps
/// under it, so the relay never meets "too many open files" (each connection is one).
fn fit_to_open_files(mut limits: Limits) -> Limits {
    /// Descriptors beside connections: database, journal, listeners, logs, resolver.
    const RESERVED: u64 = 64;
    let wanted = (limits.max_connections + limits.max_strangers) as u64 + RESERVED;
    let allowed = match rlimit::increase_nofile_limit(wanted) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit");
            return limits;
        }
    };
    if allowed < wanted {
        let room = allowed.saturating_sub(RESERVED) as usize;
        let strangers = (room / 5).max(1);
        let sessions = room.saturating_sub(strangers).max(1);
        tracing::warn!(
            allowed,
            sessions,
            strangers,
            "the open-files limit is below the connection caps: lowering them to fit"
        );
        limits.max_connections = limits.max_connections.min(sessions);
        limits.max_strangers = limits.max_strangers.min(strangers);
    }
    limits
}

impl BoundRelay {
    /// Opens the database and secret in `dir` and binds `listen` (port 0 picks a free port).
    pub async fn bind(dir: &Path, listen: SocketAddr, limits: Limits) -> Result<Self, Error> {
        Self::bind_with_admin(dir, listen, None, limits).await
    }

    /// As [`BoundRelay::bind`], serving `/metrics` and `/admin/*` on `admin` alone if given.
    pub async fn bind_with_admin(
        dir: &Path,
        addr: SocketAddr,
        admin: Option<SocketAddr>,
        limits: Limits,
    ) -> Result<Self, Error> {
        Self::bind_on(&StoreChoice::Redb, dir, addr, admin, limits).await
    }

    /// As [`BoundRelay::bind_with_admin`], storing in `choice`; `dir` still holds the signing
    /// secret (every node of a PostgreSQL cluster needs the same one).
    pub async fn bind_on(
        choice: &StoreChoice,
        dir: &Path,
        addr: SocketAddr,
        admin: Option<SocketAddr>,
        limits: Limits,
    ) -> Result<Self, Error> {
        let secret = load_secret(dir)?;
        let (store, handle) = open_store(choice, dir, &secret).await?;
        let limits_every = limits.cluster_poll;
        let (listener, addr) = listen(addr).await?;
        let (admin, admin_addr) = match admin {
            Some(a) => {
                let (l, a) = listen(a).await?;
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        Ok(Self {
            listener,
            admin,
            shared: server::Shared::new(store, handle, dir, secret, fit_to_open_files(limits)),
            addr,
            admin_addr,
            dir: dir.to_path_buf(),
            cluster: match choice {
                StoreChoice::Redb => None,
                StoreChoice::Postgres { url, schema } => Some(server::Cluster {
                    url: url.clone(),
                    channel: pg::notify::channel(schema.as_deref()),
                    every: limits_every,
                }),
            },
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, if it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Serves until `shutdown` resolves; the database is closed when this returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let addr_file = self.dir.join(ADDR_FILE);
        // Admin commands connect here; a wildcard bind is reached through loopback.
        let mut reach = self.admin_addr.unwrap_or(self.addr);
        if reach.ip().is_unspecified() {
            reach.set_ip(match reach {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        std::fs::write(&addr_file, reach.to_string()).map_err(|source| Error::Io {
            path: addr_file.clone(),
            source,
        })?;
        tracing::info!(addr = %self.addr, data = %self.dir.display(), "relay serving");
        let result = server::run(
            self.listener,
            self.admin,
            self.shared,
            self.cluster,
            shutdown,
        )
        .await;
        // Another relay may have taken over the directory since; its file stays.
        if std::fs::read_to_string(&addr_file).is_ok_and(|a| a == reach.to_string()) {
            let _ = std::fs::remove_file(&addr_file);
        }
        result.map_err(Error::Serve)
    }
}

/// A relay running inside this process (for the demo and tests).
pub struct RunningRelay {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The key `/metrics` answers to.
    pub metrics_key: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl RunningRelay {
    /// The WebSocket URL replicas use.
    pub fn url(&self) -> String {
        format!("ws://{}/sync", self.addr)
    }

    /// Stops serving, closes every session and waits until the database is released.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match (&mut self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "relay stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "relay task failed"),
        }
    }
}

/// Starts a relay on `listen` with its data in `dir`, with default limits.
pub async fn spawn(dir: &Path, listen: SocketAddr) -> Result<RunningRelay, Error> {
    spawn_with(dir, listen, Limits::default()).await
}

/// Starts a relay with explicit network limits (e.g. short timeouts in tests).
pub async fn spawn_with(
    dir: &Path,
    listen: SocketAddr,
    limits: Limits,
) -> Result<RunningRelay, Error> {
    spawn_on(&StoreChoice::Redb, dir, listen, limits).await
}

/// Starts a relay storing in `choice` (several may share one PostgreSQL database and `dir`).
pub async fn spawn_on(
    choice: &StoreChoice,
    dir: &Path,
    listen: SocketAddr,
    limits: Limits,
) -> Result<RunningRelay, Error> {
    let bound = BoundRelay::bind_on(choice, dir, listen, None, limits).await?;
    let addr = bound.addr();
    let metrics_key = secret::metrics_key(&load_secret(dir)?);
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(bound.serve(async {
        let _ = rx.await;
    }));
    Ok(RunningRelay {
        addr,
        metrics_key,
        stop: Some(tx),
        task,
    })
}

/// Seconds since the Unix epoch (0 if the clock reads before it).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Issues a token signed with the relay's secret in `dir` (creating the secret if needed);
/// needs no database, so it works while a relay serves from `dir`.
pub fn issue_token(
    dir: &Path,
    replica: &str,
    companies: &[String],
    read_only: bool,
    ttl_days: u64,
) -> Result<String, Error> {
    if replica.trim().is_empty() {
        return Err(Error::Invalid("the replica name must not be empty".into()));
    }
    if replica.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "the replica name must be one line of printable characters".into(),
        ));
    }
    if companies.is_empty() {
        return Err(Error::Invalid("name at least one --company".into()));
    }
    if ttl_days == 0 {
        return Err(Error::Invalid(
            "--ttl-days must be at least 1 (a token valid for 0 days is already expired)".into(),
        ));
    }
    let companies = companies
        .iter()
        .map(|c| ficha_core::Company::new(c))
        .collect::<Result<Vec<_>, _>>()?;
    let secret = load_secret(dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| Error::Clock)?
        .as_secs();
    let claims = ficha_core::token::Claims {
        replica: replica.to_string(),
        companies,
        write: !read_only,
        issued_at: now,
        expires_at: now.saturating_add(ttl_days.saturating_mul(86_400)),
        code: codes::code_for(dir, replica)?,
    };
    Ok(ficha_core::token::sign(&secret, &claims))
}
