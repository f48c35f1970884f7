//! `ficha-relay`: serve, issue tokens, back up, restore, revoke.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use ficha_relay::{ADDR_FILE, admin_call, issue_token, secret, server, store};

/// The Ficha relay server.
#[derive(Parser)]
#[command(name = "ficha-relay", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the sync endpoint.
    Serve {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7300")]
        listen: SocketAddr,
    },
    /// Issues a token for a replica (prints it alone on stdout).
    Token {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        replica: String,
        #[arg(long = "company", required = true)]
        companies: Vec<String>,
        #[arg(long)]
        read_only: bool,
        #[arg(long, default_value_t = 365)]
        ttl_days: u64,
    },
    /// Writes a consistent copy of the database (works while serving).
    Backup {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Replaces the database with a backup and gives it a new epoch (relay stopped).
    Restore {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        from: PathBuf,
    },
    /// Refuses every token of a replica from now on.
    Revoke {
        #[arg(long)]
        data: PathBuf,
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
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(Cli::parse())));
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
        Command::Serve { data, listen } => serve(data, listen).await,
        Command::Token {
            data,
            replica,
            companies,
            read_only,
            ttl_days,
        } => {
            println!(
                "{}",
                issue_token(&data, &replica, &companies, read_only, ttl_days)?
            );
            Ok(())
        }
        Command::Backup { data, out } => {
            let out = std::path::absolute(&out)?;
            let q = format!("/admin/backup?out={}", encode(&out.display().to_string()));
            if let Some(msg) = admin_call(&data, &q).await? {
                eprintln!("{msg}");
                return Ok(());
            }
            store::RedbRelayStore::open(&data)?.backup(&out)?;
            eprintln!("backup written to {}", out.display());
            Ok(())
        }
        Command::Restore { data, from } => {
            let epoch = store::restore(&from, &data).with_context(|| {
                format!("cannot restore {} (is the relay stopped?)", from.display())
            })?;
            eprintln!("restored; new epoch {epoch}: replicas will reconcile on their next sync");
            Ok(())
        }
        Command::Revoke { data, replica } => {
            let q = format!("/admin/revoke?replica={}", encode(&replica));
            if let Some(msg) = admin_call(&data, &q).await? {
                eprintln!("{msg}");
                return Ok(());
            }
            store::RedbRelayStore::open(&data)?.revoke(&replica)?;
            eprintln!("revoked {replica}");
            Ok(())
        }
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn serve(data: PathBuf, listen: SocketAddr) -> Result<()> {
    let store = store::RedbRelayStore::open(&data)?;
    let secret = secret::load_or_create(&data).with_context(|| {
        format!(
            "cannot read or create the signing secret in {}",
            data.display()
        )
    })?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    std::fs::write(data.join(ADDR_FILE), addr.to_string())?;
    let shared = server::Shared::new(store, secret, server::Limits::default());
    println!("listening on {addr}");
    use std::io::Write;
    std::io::stdout().flush()?;
    tracing::info!(%addr, data = %data.display(), "relay serving");
    server::run(listener, shared, ficha_relay_shutdown()).await?;
    let _ = std::fs::remove_file(data.join(ADDR_FILE));
    Ok(())
}

async fn ficha_relay_shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
