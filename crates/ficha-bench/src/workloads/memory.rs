//! Memory: the relay's RSS while it holds N documents and serves many idle subscribed
//! sessions, and a replica's peak RSS while it syncs N documents. Each runs in its own process
//! (this binary re-executed), so its RSS is its own. The baseline is the same measurement with
//! a quarter of the documents: a ratio near 1 means memory does not grow with the documents.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use ficha_core::ReplicaId;
use ficha_core::frame::{DEFAULT_MAX_FRAME, Frame, Hello};
use ficha_core::replica::ReplicaStore;

use crate::fixtures::{Corpus, Scratch, company, relay_with, replica};
use crate::report::Row;

/// Hidden argument: serve the relay in `DIR` and print its port.
pub const RELAY_CHILD: &str = "__relay-child";
/// Hidden argument: run one sync round of the replica in `DIR`.
pub const REPLICA_CHILD: &str = "__replica-child";

/// Runs a child mode if this process was started as one; returns whether it was.
pub fn child_main(args: &[String]) -> Result<bool> {
    let (Some(mode), Some(dir)) = (args.get(1), args.get(2)) else {
        return Ok(false);
    };
    let dir = Path::new(dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match mode.as_str() {
        RELAY_CHILD => rt.block_on(async {
            let relay = ficha_relay::spawn(dir, "127.0.0.1:0".parse()?).await?;
            println!("listening on {}", relay.addr);
            // Serve until the parent kills this process.
            std::future::pending::<()>().await;
            Ok::<_, anyhow::Error>(())
        })?,
        REPLICA_CHILD => rt.block_on(async {
            let store = std::sync::Arc::new(ficha_store::Store::open(
                dir,
                std::sync::Arc::new(ficha_domain::index::DomainIndexer),
            )?);
            ficha_app::sync::sync_once(store, Duration::from_secs(3600)).await?;
            Ok::<_, anyhow::Error>(())
        })?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// A child process, killed when dropped.
pub(crate) struct Kill(pub(crate) Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident memory of process `pid`, in MiB.
pub(crate) fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// A relay serving `dir` in a child process, and its port.
pub(crate) fn spawn_relay(dir: &Path) -> Result<(Kill, u16)> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(std::env::current_exe()?)
        .arg(RELAY_CHILD)
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("relay stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("relay child did not print its port")?;
    Ok((Kill(child), port))
}

/// What one size measured, in MiB.
struct Measured {
    relay_idle: f64,
    relay_serving: f64,
    replica_peak: f64,
}

/// Measures a relay serving `relay_dir`, which holds `docs` documents.
async fn measure(relay_dir: &Path, docs: usize, sessions: usize) -> Result<Measured> {
    let scratch = Scratch::new()?;
    let (relay, port) = spawn_relay(relay_dir)?;
    let relay_pid = relay.0.id();
    let url = format!("ws://127.0.0.1:{port}/sync");
    let replica_dir = scratch.path("replica");
    drop(replica(&replica_dir, relay_dir, &url, "replica")?);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let relay_idle = rss_mib(relay_pid).unwrap_or(f64::NAN);

    // The replica syncs every document in its own process; sample its RSS as it goes.
    let mut child = Kill(
        Command::new(std::env::current_exe()?)
            .arg(REPLICA_CHILD)
            .arg(&replica_dir)
            .stdout(Stdio::null())
            .spawn()?,
    );
    let pid = child.0.id();
    let mut replica_peak: f64 = 0.0;
    loop {
        if let Some(m) = rss_mib(pid) {
            replica_peak = replica_peak.max(m);
        }
        if let Some(status) = child.0.try_wait()? {
            if !status.success() {
                bail!("the replica's sync failed");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let synced = ficha_store::Store::open(
        &replica_dir,
        std::sync::Arc::new(ficha_domain::index::DomainIndexer),
    )?;
    if synced.doc_count()? != docs as u64 {
        bail!(
            "the replica holds {} of {docs} documents",
            synced.doc_count()?
        );
    }
    let head = ficha_store::SyncStore(&synced).checkpoint(&company())?;
    drop(synced);

    // Many sessions subscribed at the feed head: connected, live, idle.
    let mut open = Vec::new();
    for i in 0..sessions {
        let token = ficha_relay::issue_token(
            relay_dir,
            &format!("s{i}"),
            &[company().as_str().into()],
            true,
            1,
        )?;
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
        let hello = Frame::Hello(Hello {
            replica: ReplicaId::from(uuid::Uuid::new_v4()),
            token,
        });
        ws.send(Message::Binary(hello.encode().into())).await?;
        let sub = Frame::Subscribe {
            company: company(),
            after: head,
        };
        ws.send(Message::Binary(sub.encode().into())).await?;
        loop {
            let Message::Binary(b) = ws.next().await.context("closed")?? else {
                continue;
            };
            if matches!(
                Frame::decode(&b, DEFAULT_MAX_FRAME)?,
                Frame::CaughtUp { .. }
            ) {
                break;
            }
        }
        open.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let relay_serving = rss_mib(relay_pid).unwrap_or(f64::NAN);
    drop(open);
    drop(relay);
    Ok(Measured {
        relay_idle,
        relay_serving,
        replica_peak,
    })
}

/// Relay and replica memory with every document of the corpus against a quarter of them.
pub async fn memory(corpus: &mut Corpus, sessions: usize) -> Result<Vec<Row>> {
    // The relay runs in a child process now, over the corpus's database.
    corpus.stop_relay().await;
    let docs = corpus.docs.len();
    let scratch = Scratch::new()?;
    let quarter = scratch.path("quarter");
    relay_with(&quarter, &corpus.docs[..docs / 4])?;
    let small = measure(&quarter, docs / 4, sessions).await?;
    let large = measure(&corpus.relay_dir, docs, sessions).await?;
    let sizes = json!({ "docs": docs, "baseline_docs": docs / 4, "items_per_doc": corpus.items, "sessions": sessions });
    const QUARTER: &str = "same measurement with a quarter of the documents";
    Ok(vec![
        Row::new(
            "memory",
            "relay RSS holding docs, no session",
            large.relay_idle,
            small.relay_idle,
            "MiB",
            QUARTER,
            sizes.clone(),
        ),
        Row::new(
            "memory",
            format!("relay RSS serving {sessions} sessions"),
            large.relay_serving,
            small.relay_serving,
            "MiB",
            QUARTER,
            sizes.clone(),
        ),
        Row::new(
            "memory",
            "replica peak RSS during initial sync",
            large.replica_peak,
            small.replica_peak,
            "MiB",
            QUARTER,
            sizes,
        ),
    ])
}
