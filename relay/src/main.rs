//! `ficha-relay`: serve, issue tokens, back up, restore, revoke.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use ficha_core::RelayEpoch;
use ficha_relay::pg::PgRelayStore;
use ficha_relay::store::RedbRelayStore;
use ficha_relay::{BoundRelay, DEFAULT_TTL_DAYS, Limits, StoreChoice, admin, issue_token};

/// The Ficha relay server.
#[derive(Parser)]
#[command(name = "ficha-relay", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the sync endpoint (prints "listening on ADDR" once ready).
    Serve {
        /// Data directory (database, signing secret).
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:7300")]
        listen: SocketAddr,
        /// Serve /metrics and /admin/* on this address only (still with their keys), e.g. a
        /// loopback port a reverse proxy does not forward.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Most concurrent sessions (replicas with an accepted hello).
        #[arg(long, default_value_t = 1000)]
        max_sessions: usize,
        /// Most concurrent connections without an accepted hello (strangers), kept apart from
        /// the sessions' slots.
        #[arg(long, default_value_t = 256)]
        max_strangers: usize,
        /// Most concurrent sessions per replica name.
        #[arg(long, default_value_t = 4)]
        max_sessions_per_replica: usize,
        /// Seconds a session may stay silent (no frame, no ping) before it is closed.
        #[arg(long, default_value_t = 120)]
        idle_timeout_secs: u64,
        /// Where the feed and documents live: `redb` (the embedded file in --data, one node) or
        /// `postgres://user@host:port/db`, shared by every relay node of a cluster (each node
        /// still needs --data holding the same `secret` file).
        #[arg(long, default_value = "redb")]
        store: String,
        /// The PostgreSQL schema holding the tables (created if missing); the default schema
        /// if not given.
        #[arg(long)]
        store_schema: Option<String>,
    },
    /// Issues a token for a replica (prints it alone on stdout); works while serving.
    Token {
        /// Data directory (only its signing secret is read).
        #[arg(long)]
        data: PathBuf,
        /// The replica's name (one name per machine; revocation works by name).
        #[arg(long)]
        replica: String,
        /// A company the replica may sync (repeat for several).
        #[arg(long = "company", required = true)]
        companies: Vec<String>,
        /// The replica may read but not upload.
        #[arg(long)]
        read_only: bool,
        /// Days until the token expires.
        #[arg(long, default_value_t = DEFAULT_TTL_DAYS)]
        ttl_days: u64,
    },
    /// Writes a consistent copy of the database (works while serving).
    Backup {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// The backup file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Replaces the database with a backup and gives it a new epoch (relay stopped).
    Restore {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// The backup file to restore.
        #[arg(long)]
        from: PathBuf,
    },
    /// Gives a PostgreSQL cluster's database a new epoch after it was restored from a backup
    /// (`pg_restore`, a base backup), so replicas repair; run it with every node stopped.
    RotateEpoch {
        /// The database, as `serve --store` names it.
        #[arg(long)]
        store: String,
        /// The schema, as `serve --store-schema` names it.
        #[arg(long)]
        store_schema: Option<String>,
    },
    /// Prints the key /metrics answers to (`Authorization: Bearer KEY`), for a scraper.
    MetricsKey {
        /// Data directory (only its signing secret is read).
        #[arg(long)]
        data: PathBuf,
    },
    /// Prints the key that signs in to the admin page (`http://RELAY/admin`); whoever holds
    /// it can issue and revoke tokens, so it is shown only to who can read the secret.
    AdminKey {
        /// Data directory (only its signing secret is read).
        #[arg(long)]
        data: PathBuf,
    },
    /// Refuses every token of a replica issued until now (works while serving); a token
    /// issued afterwards readmits it.
    Revoke {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// The replica name the tokens were issued for.
        #[arg(long)]
        replica: String,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            data,
            listen,
            admin_listen,
            max_sessions,
            max_strangers,
            max_sessions_per_replica,
            idle_timeout_secs,
            store,
            store_schema,
        } => {
            let choice = store_choice(&store, store_schema)?;
            let limits = Limits {
                max_connections: max_sessions,
                max_strangers,
                max_sessions_per_replica,
                idle_timeout: Duration::from_secs(idle_timeout_secs),
                ..Limits::default()
            };
            let relay = BoundRelay::bind_on(&choice, &data, listen, admin_listen, limits)
                .await
                .with_context(|| format!("cannot serve from {}", data.display()))?;
            let mut out = std::io::stdout();
            writeln!(out, "listening on {}", relay.addr())?;
            if let Some(a) = relay.admin_addr() {
                writeln!(out, "admin listening on {a}")?;
            }
            out.flush()?;
            relay.serve(shutdown_signal()).await?;
        }
        Command::Token {
            data,
            replica,
            companies,
            read_only,
            ttl_days,
        } => {
            let token = issue_token(&data, &replica, &companies, read_only, ttl_days)
                .context("cannot issue the token")?;
            let mut out = std::io::stdout();
            writeln!(out, "{token}")?;
            out.flush()?;
            // The token stays alone on stdout, for scripts; the code is for the operator.
            if let Ok(claims) = ficha_core::token::peek(&token) {
                eprintln!(
                    "replica {replica}: code {} (its case numbers read {}-1, {}-2, …)",
                    claims.code, claims.code, claims.code
                );
            }
        }
        Command::Backup { data, out } => {
            let msg = admin::backup(&data, &out)
                .await
                .with_context(|| format!("cannot back up {}", data.display()))?;
            eprintln!("{msg}");
        }
        Command::Restore { data, from } => {
            let epoch = RedbRelayStore::restore(&from, &data).with_context(|| {
                format!(
                    "cannot restore {} into {} (stop the relay first)",
                    from.display(),
                    data.display()
                )
            })?;
            eprintln!("restored; new epoch {epoch}: replicas will reconcile on their next sync");
        }
        Command::RotateEpoch {
            store,
            store_schema,
        } => {
            let StoreChoice::Postgres { url, schema } = store_choice(&store, store_schema)? else {
                anyhow::bail!("a redb relay gets its new epoch from `ficha-relay restore`");
            };
            let epoch = tokio::task::spawn_blocking(move || {
                let mut s = PgRelayStore::connect(&url, schema.as_deref(), RelayEpoch([0; 16]))?;
                let epoch = RelayEpoch(ficha_relay::rand_epoch());
                s.rotate_epoch(epoch)?;
                Ok::<_, ficha_relay::pg::PgError>(epoch)
            })
            .await?
            .context("cannot rotate the epoch")?;
            eprintln!("new epoch {epoch}: replicas will reconcile on their next sync");
        }
        Command::MetricsKey { data } => {
            let secret = ficha_relay::secret::load_or_create(&data)
                .with_context(|| format!("cannot read the secret in {}", data.display()))?;
            println!("{}", ficha_relay::secret::metrics_key(&secret));
        }
        Command::AdminKey { data } => {
            let secret = ficha_relay::secret::load_or_create(&data)
                .with_context(|| format!("cannot read the secret in {}", data.display()))?;
            println!("{}", ficha_relay::secret::admin_key(&secret));
        }
        Command::Revoke { data, replica } => {
            let msg = admin::revoke(&data, &replica)
                .await
                .with_context(|| format!("cannot revoke {replica:?}"))?;
            eprintln!("{msg}");
        }
    }
    Ok(())
}

/// Reads `--store`.
fn store_choice(store: &str, schema: Option<String>) -> Result<StoreChoice> {
    if store == "redb" {
        if schema.is_some() {
            anyhow::bail!(
                "--store-schema names a PostgreSQL schema: use it with --store postgres://…"
            );
        }
        return Ok(StoreChoice::Redb);
    }
    if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        return Ok(StoreChoice::Postgres {
            url: store.to_string(),
            schema,
        });
    }
    anyhow::bail!("--store is `redb` or a postgres://user@host:port/database URL, not {store:?}")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
