//! The soak: many replica sessions across many companies editing at once through the real
//! relay binary, measuring throughput, the delay from an edit's commit to its arrival at every
//! other replica of its company, relay memory over time, and errors (which must be zero).
//!
//! The replicas are the sans-IO `ReplicaSession` over in-memory stores and tokio-tungstenite,
//! so one process can hold hundreds of them and the relay is what is under load; the relay is
//! its own process, so its memory is its own.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ROOT};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use ficha_core::frame::{DEFAULT_MAX_FRAME, Frame};
use ficha_core::ids::actor_for;
use ficha_core::mem::MemReplicaStore;
use ficha_core::replica::{ReplicaConfig, ReplicaSession};
use ficha_core::{Company, DocId, ReplicaId};

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Concurrent replica sessions.
    pub sessions: usize,
    /// Companies they are spread over (each session sees one).
    pub companies: usize,
    /// How long the replicas keep editing.
    pub duration: Duration,
    /// Time between two edits of one replica.
    pub edit_every: Duration,
    /// Hostile connections that send as fast as they can and never read (0: none).
    pub flooders: usize,
    /// What the flooders send.
    pub flood: FloodKind,
}

/// What a flooder sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FloodKind {
    /// Valid uploads to a company of its own (a write token).
    #[default]
    Upload,
    /// Reconciles of an honest company (a read-only token): each reads every digest.
    Reconcile,
    /// Subscriptions from the start of an honest company's feed (a read-only token).
    Subscribe,
}

/// What a soak measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakReport {
    /// Sessions that ran.
    pub sessions: usize,
    /// Companies.
    pub companies: usize,
    /// Seconds of editing.
    pub seconds: f64,
    /// Edits committed by all replicas.
    pub edits: u64,
    /// Edits per second, all replicas together.
    pub edits_per_sec: f64,
    /// Arrivals of an edit at another replica of its company.
    pub deliveries: u64,
    /// Arrivals expected (each edit at every other replica of its company).
    pub expected_deliveries: u64,
    /// Median delay from commit on the writer to arrival at a reader, ms.
    pub delay_p50_ms: f64,
    /// 99th percentile of that delay, ms.
    pub delay_p99_ms: f64,
    /// Largest delay, ms.
    pub delay_max_ms: f64,
    /// Relay resident memory sampled once a second, MiB.
    pub relay_rss_mib: Vec<f64>,
    /// Upload frames the flooders pushed into the relay.
    pub flood_frames: u64,
    /// Flooder connections the relay cut (each reconnects and floods again).
    pub flood_cuts: u64,
    /// Everything that went wrong for the honest sessions; must be empty.
    pub errors: Vec<String>,
}

/// Edits in flight: commit time by change hash, and arrivals counted by change hash.
#[derive(Default)]
struct Ledger {
    sent: HashMap<ChangeHash, Instant>,
    sent_per_company: HashMap<Company, usize>,
    arrivals: HashMap<ChangeHash, u32>,
    delays_ms: Vec<f64>,
}

struct RelayProcess(Child);

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Starts `relay_bin` on a free port in `dir`; returns the process and its port.
fn start_relay(relay_bin: &Path, dir: &Path) -> Result<(RelayProcess, u16)> {
    let mut child = Command::new(relay_bin)
        .args(["serve", "--data"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", relay_bin.display()))?;
    let port = crate::wait_listening(&mut child, "ficha-relay")?;
    Ok((RelayProcess(child), port))
}

/// Runs a soak against the relay binary at `relay_bin`.
pub fn run(relay_bin: &Path, cfg: &SoakConfig) -> Result<SoakReport> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("relay");
    let (relay, port) = start_relay(relay_bin, &dir)?;
    let pid = relay.0.id();
    let url = format!("ws://127.0.0.1:{port}/sync");
    let companies: Vec<Company> = (0..cfg.companies)
        .map(|c| Company::new(&format!("company-{c:02}")))
        .collect::<Result<_, _>>()?;
    let mut tokens = Vec::new();
    for i in 0..cfg.sessions {
        let company = companies[i % companies.len()].as_str().to_string();
        tokens.push(ficha_relay::issue_token(
            &dir,
            &format!("soak-{i}"),
            &[company],
            false,
            1,
        )?);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let started = Instant::now();
    let rss = runtime.spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            match rss_mib(pid) {
                Some(m) => samples.push(m),
                None => return samples,
            }
            if samples.len() > 100_000 {
                return samples;
            }
        }
    });
    let ready = Arc::new(tokio::sync::Barrier::new(cfg.sessions));
    let stop_at = Arc::new(Mutex::new(None::<Instant>));
    let flood = Arc::new(FloodCount::default());
    let flood_until = Instant::now() + cfg.duration + Duration::from_secs(5);
    for f in 0..cfg.flooders {
        let (company, read_only) = match cfg.flood {
            FloodKind::Upload => (Company::new("flood")?, false),
            _ => (companies[0].clone(), true),
        };
        let token = ficha_relay::issue_token(
            &dir,
            &format!("flood-{f}"),
            &[company.to_string()],
            read_only,
            1,
        )?;
        runtime.spawn(flooder(
            url.clone(),
            token,
            f,
            (cfg.flood, company),
            flood_until,
            flood.clone(),
        ));
    }
    let handles: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let company = companies[i % companies.len()].clone();
            let replica = Replica {
                index: i,
                url: url.clone(),
                token,
                company,
                edit_every: cfg.edit_every,
                duration: cfg.duration,
                ledger: ledger.clone(),
                ready: ready.clone(),
                stop_at: stop_at.clone(),
            };
            runtime.spawn(replica.run())
        })
        .collect();
    let mut errors = Vec::new();
    let mut edits = 0;
    let mut stores = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        match runtime.block_on(h) {
            Ok(Ok((n, store))) => {
                edits += n;
                stores.push((i, store));
            }
            Ok(Err(e)) => errors.push(format!("replica {i}: {e:#}")),
            Err(e) => errors.push(format!("replica {i} panicked: {e}")),
        }
    }
    let seconds = lock(&stop_at)
        .map(|s| (s.elapsed() + cfg.duration).as_secs_f64())
        .unwrap_or(started.elapsed().as_secs_f64());
    drop(relay);
    let relay_rss_mib = runtime.block_on(rss).unwrap_or_default();
    // Convergence: every replica of a company holds the same documents with the same heads.
    let mut by_company: HashMap<usize, Vec<&MemReplicaStore>> = HashMap::new();
    for (i, s) in &stores {
        by_company.entry(i % cfg.companies).or_default().push(s);
    }
    for (c, members) in &by_company {
        let heads = |s: &MemReplicaStore| -> Vec<(DocId, Vec<ChangeHash>)> {
            s.doc_ids()
                .into_iter()
                .map(|d| (d, s.doc(&d).map(Automerge::get_heads).unwrap_or_default()))
                .collect()
        };
        let first = heads(members[0]);
        if members.iter().any(|m| heads(m) != first) {
            errors.push(format!("company {c} did not converge"));
        }
    }
    let ledger = lock(&ledger);
    let per_company = (cfg.sessions / cfg.companies.max(1)).saturating_sub(1) as u64;
    let expected_deliveries = ledger.sent.len() as u64 * per_company;
    let deliveries: u64 = ledger.arrivals.values().map(|n| u64::from(*n)).sum();
    if deliveries != expected_deliveries {
        errors.push(format!(
            "{deliveries} arrivals, {expected_deliveries} expected"
        ));
    }
    let mut delays = ledger.delays_ms.clone();
    delays.sort_by(f64::total_cmp);
    Ok(SoakReport {
        sessions: cfg.sessions,
        companies: cfg.companies,
        seconds,
        edits,
        edits_per_sec: edits as f64 / seconds.max(1e-9),
        deliveries,
        expected_deliveries,
        delay_p50_ms: percentile(&delays, 0.5),
        delay_p99_ms: percentile(&delays, 0.99),
        delay_max_ms: delays.last().copied().unwrap_or(f64::NAN),
        relay_rss_mib,
        flood_frames: flood.frames.load(std::sync::atomic::Ordering::Relaxed),
        flood_cuts: flood.cuts.load(std::sync::atomic::Ordering::Relaxed),
        errors,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Replica {
    index: usize,
    url: String,
    token: String,
    company: Company,
    edit_every: Duration,
    duration: Duration,
    ledger: Arc<Mutex<Ledger>>,
    ready: Arc<tokio::sync::Barrier>,
    stop_at: Arc<Mutex<Option<Instant>>>,
}

impl Replica {
    /// Connects, catches up, edits on a timer until the soak ends, then waits until every edit
    /// it should receive has arrived (or gives up after a grace period).
    async fn run(self) -> Result<(u64, MemReplicaStore)> {
        let (ws, _) = tokio_tungstenite::connect_async(&self.url).await?;
        let (mut tx, mut rx) = ws.split();
        let id = ReplicaId::from(uuid::Uuid::new_v4());
        let actor = actor_for(id, 1);
        let doc = DocId::from(uuid::Uuid::new_v4());
        let mut store = MemReplicaStore::default();
        let mut session = ReplicaSession::new(ReplicaConfig::new(id, self.token.clone()));
        let mut out = session.start();
        let mut edits = 0u64;
        let mut waited = false;
        let mut tick = tokio::time::interval(self.edit_every);
        let mut end: Option<Instant> = None;
        loop {
            for f in out.drain(..) {
                tx.feed(Message::Binary(f.encode().into())).await?;
            }
            tx.flush().await?;
            if !waited && session.is_synced() {
                waited = true;
                self.ready.wait().await;
                let mut s = lock(&self.stop_at);
                let at = *s.get_or_insert_with(|| Instant::now() + self.duration);
                end = Some(at);
                // Spread the replicas' edits over the interval instead of all at once.
                let offset = self.edit_every.mul_f64((self.index % 97) as f64 / 97.0);
                tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, self.edit_every);
            }
            let editing = end.is_some_and(|e| Instant::now() < e);
            let grace_over = end.is_some_and(|e| Instant::now() > e + Duration::from_secs(30));
            if end.is_some() && !editing && (grace_over || self.all_arrived(&store)) {
                let _ = tx.close().await;
                return Ok((edits, store));
            }
            tokio::select! {
                msg = rx.next() => {
                    let bytes = match msg {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Close(c))) => bail!("relay closed the session: {c:?}"),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(e.into()),
                        None => bail!("connection closed"),
                    };
                    let frame = Frame::decode(&bytes, DEFAULT_MAX_FRAME)?;
                    if let Frame::Feed(page) = &frame {
                        self.record_arrivals(page);
                    }
                    out = session.receive(&mut store, frame).map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                _ = tick.tick(), if editing => {
                    // Every edit happens before the shared end, so once it has passed the
                    // ledger knows every edit a replica must wait for.
                    if end.is_none_or(|e| Instant::now() >= e) {
                        continue;
                    }
                    edits += 1;
                    let value = format!("edit {edits} by {}", self.index);
                    let company = self.company.clone();
                    let hash = store.edit(doc, &self.company, &actor, |t| {
                        t.put(ROOT, "company", company.as_str()).expect("put");
                        t.put(ROOT, "last", value.as_str()).expect("put");
                    });
                    if let Some(h) = hash {
                        let mut ledger = lock(&self.ledger);
                        ledger.sent.insert(h, Instant::now());
                        *ledger.sent_per_company.entry(self.company.clone()).or_insert(0) += 1;
                    }
                    out = session.local_change(&store).map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    fn record_arrivals(&self, page: &ficha_core::frame::FeedPage) {
        let now = Instant::now();
        let mut ledger = lock(&self.ledger);
        for e in &page.entries {
            if e.changes.is_empty() {
                continue;
            }
            let hashes: Vec<ChangeHash> = if ficha_core::change::is_saved_document(&e.changes) {
                Automerge::load(&e.changes)
                    .map(|d| d.get_changes(&[]).iter().map(|c| c.hash()).collect())
                    .unwrap_or_default()
            } else {
                ficha_core::change::split(&e.changes)
                    .map(|cs| cs.iter().map(|c| c.hash()).collect())
                    .unwrap_or_default()
            };
            for h in hashes {
                if let Some(sent) = ledger.sent.get(&h).copied() {
                    ledger.delays_ms.push((now - sent).as_secs_f64() * 1e3);
                    *ledger.arrivals.entry(h).or_insert(0) += 1;
                }
            }
        }
    }

    /// True once every edit made in this company (each one change) is in this replica.
    fn all_arrived(&self, store: &MemReplicaStore) -> bool {
        let want = lock(&self.ledger)
            .sent_per_company
            .get(&self.company)
            .copied()
            .unwrap_or(0);
        let have: usize = store
            .doc_ids()
            .iter()
            .filter_map(|d| store.doc(d))
            .map(|d| d.get_changes(&[]).len())
            .sum();
        have >= want
    }
}

/// What the flooders managed.
#[derive(Default)]
struct FloodCount {
    frames: std::sync::atomic::AtomicU64,
    cuts: std::sync::atomic::AtomicU64,
}

/// A hostile client: valid token, valid changes, uploaded as fast as the socket takes them,
/// never reading an acknowledgement. The relay must cut it (its queue of acks fills) without
/// its memory following the flood, and honest sessions must not notice beyond latency.
async fn flooder(
    url: String,
    token: String,
    n: usize,
    (kind, company): (FloodKind, Company),
    until: Instant,
    count: Arc<FloodCount>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let actor = actor_for(ReplicaId([n as u8; 16]), n as u32);
    let mut doc = automerge::AutoCommit::new().with_actor(actor);
    let id = DocId::from(uuid::Uuid::new_v4());
    let mut seq = 0u64;
    while Instant::now() < until {
        let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (mut tx, rx) = ws.split();
        // Never read: keep the receiving half alive so the relay's writes back up.
        let _unread = rx;
        let hello = Frame::Hello(ficha_core::frame::Hello {
            replica: ReplicaId([n as u8; 16]),
            token: token.clone(),
        });
        if tx
            .send(Message::Binary(hello.encode().into()))
            .await
            .is_err()
        {
            count.cuts.fetch_add(1, Relaxed);
            continue;
        }
        loop {
            if Instant::now() >= until {
                return;
            }
            seq += 1;
            let frame = match kind {
                FloodKind::Reconcile => Frame::Reconcile {
                    company: company.clone(),
                    buckets: vec![[0u8; 32]; 256],
                },
                FloodKind::Subscribe => Frame::Subscribe {
                    company: company.clone(),
                    after: 0,
                },
                FloodKind::Upload => {
                    let _ = doc.put(ROOT, "n", seq as i64);
                    doc.commit();
                    let Some(change) = doc.get_last_local_change().map(|c| c.raw_bytes().to_vec())
                    else {
                        continue;
                    };
                    Frame::Upload(ficha_core::frame::Upload {
                        upto: seq,
                        docs: vec![ficha_core::frame::DocChanges {
                            doc: id,
                            company: company.clone(),
                            changes: vec![ficha_core::frame::ByteBuf::from(change)],
                        }],
                    })
                }
            };
            if tx
                .send(Message::Binary(frame.encode().into()))
                .await
                .is_err()
            {
                count.cuts.fetch_add(1, Relaxed);
                break;
            }
            count.frames.fetch_add(1, Relaxed);
        }
    }
}
