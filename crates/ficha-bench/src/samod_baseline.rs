//! The second baseline: samod, the Rust automerge-repo. A server repo and a client repo run in
//! this process and talk over a real WebSocket on loopback, through a byte-counting TCP proxy;
//! the client `find`s every document id, which is how automerge-repo syncs a set of documents.
//!
//! End of a measurement: every document meets [`synced`] (the client's heads equal the server's,
//! and the client's sync state for the connection records the server's heads as both theirs and
//! shared), and then no WebSocket message and no TCP byte moved in either direction for
//! [`QUIET`], so trailing messages are counted. Wall time stops at the first of the two.

mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use automerge::{AutoCommit, Automerge, ChangeHash};
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use samod::storage::TokioFilesystemStorage;
use samod::{
    AcceptorHandle, BackoffConfig, ConnectionId, DialerHandle, DocHandle, PeerDocState, Repo,
    ShareConfig, Url,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use wire::{Counters, CountingDialer, Tally, proxy};

/// How the baseline is named in the report.
pub const AGAINST: &str = "samod 0.16.0 (automerge-repo)";
/// The same, for figures scaled linearly from `samod_docs` documents to ours.
pub const AGAINST_SCALED: &str = "samod 0.16.0 (automerge-repo), scaled linearly from samod_docs";

/// Silence that ends a measurement once every document is synced: samod has no timers of its
/// own (no keepalive), so anything later than this would be an answer to nothing.
const QUIET: Duration = Duration::from_millis(300);
/// samod runs on at most this many documents. Its hub walks every document on every event, so
/// its cost grows with documents × messages (10k documents took 129 s to reconnect idle here);
/// measuring it on fewer documents than ours only flatters it, so every ratio stays fair to it.
pub const MAX_DOCS: usize = 2_000;
/// A run that has not converged by then fails instead of reporting a number.
const DEADLINE: Duration = Duration::from_secs(900);

/// What one samod sync cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    /// Wall time until every document met its end condition.
    pub secs: f64,
    /// WebSocket message payload bytes, both directions (what our relay and the naive
    /// baseline count).
    pub bytes: f64,
    /// WebSocket messages, both directions.
    pub messages: f64,
    /// TCP payload bytes through the proxy, both directions: also the HTTP upgrade and the
    /// WebSocket frame headers.
    pub tcp_bytes: f64,
    /// Time for the client repo's `stop()`, which waits for its storage writes (initial sync
    /// only).
    pub flush_secs: Option<f64>,
}

/// Initial sync: an empty client repo finds every document of a server repo holding `saved`.
pub async fn initial_sync(saved: &[Vec<u8>]) -> Result<Cost> {
    let scratch = tempfile::tempdir()?;
    let mut pair = Pair::open(scratch.path(), saved).await?;
    let mut cost = pair.fetch_all().await?;
    cost.flush_secs = Some(pair.close().await);
    Ok(cost)
}

/// Reconnect with every document of `saved` already on both sides and nothing changed.
pub async fn idle_reconnect(saved: &[Vec<u8>]) -> Result<Cost> {
    let scratch = tempfile::tempdir()?;
    let mut pair = Pair::open(scratch.path(), saved).await?;
    pair.fetch_all().await?;
    pair.disconnect().await?;
    let cost = pair.reconnect().await?;
    pair.close().await;
    Ok(cost)
}

/// For each k: while the client is away the server makes `k` edits over `m = min(k, docs)`
/// documents (the notes our workload adds); then the client reconnects.
pub async fn reconnect_after_edits(saved: &[Vec<u8>], ks: &[usize]) -> Result<Vec<Cost>> {
    let scratch = tempfile::tempdir()?;
    let mut pair = Pair::open(scratch.path(), saved).await?;
    pair.fetch_all().await?;
    // The server's documents only change through these editors, so each stays a copy of one.
    let mut editors: HashMap<usize, AutoCommit> = HashMap::new();
    let writer = ficha_core::ids::actor_for(ficha_core::ReplicaId([0xBB; 16]), 1);
    let mut costs = Vec::new();
    for (round, &k) in ks.iter().enumerate() {
        let m = k.min(saved.len());
        pair.disconnect().await?;
        for i in 0..k {
            let idx = i % m;
            let editor = match editors.entry(idx) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(AutoCommit::load(&saved[idx])?.with_actor(writer.clone()))
                }
            };
            let heads = editor.get_heads();
            let note = uuid::Uuid::from_u64_pair(0xED17 + round as u64, i as u64);
            ficha_domain::add_note(
                editor,
                note,
                "Called to confirm the appointment; prefers SMS.",
                1_800_000_000_000,
            )?;
            editor.commit();
            let changes = editor.get_changes(&heads);
            pair.server.docs[idx].with_document(|d| d.apply_changes(changes))?;
        }
        costs.push(pair.reconnect().await?);
    }
    pair.close().await;
    Ok(costs)
}

/// Waits until nothing has moved on the link for [`QUIET`].
async fn quiet(counters: &Counters) {
    loop {
        let idle = counters.idle();
        if idle >= QUIET {
            return;
        }
        tokio::time::sleep(QUIET - idle).await;
    }
}

/// A samod client repo that found documents on another server, kept open (its documents and
/// connection held) until [`Finder::close`].
pub struct Finder {
    client: Repo,
    link: DialerHandle,
    proxy: JoinHandle<()>,
    counters: Arc<Counters>,
    _docs: Vec<DocHandle>,
}

impl Finder {
    /// An empty samod client dials `ws://PROXY{path}`, a counting proxy to `target`, and finds
    /// each document, waiting until it holds the given heads (sorted).
    pub async fn find(
        target: SocketAddr,
        path: &str,
        docs: &[(samod::DocumentId, Vec<ChangeHash>)],
    ) -> Result<(Cost, Self)> {
        let counters = Arc::new(Counters::new());
        let (proxy_addr, proxy) = proxy(target, counters.clone()).await?;
        let client = Repo::build_tokio().load().await;
        let dialer = Arc::new(CountingDialer::new(
            Url::parse(&format!("ws://{proxy_addr}{path}"))?,
            counters.clone(),
        ));
        let before = counters.tally();
        let t = Instant::now();
        let link = client.dial(BackoffConfig::default(), dialer)?;
        link.established().await?;
        let conn = link
            .connection_id()
            .context("the connection dropped right after its handshake")?;
        let finds = docs.iter().map(|(id, want)| {
            let find = client.find(id.clone());
            async move {
                let handle = find.await?.context("the server did not have a document")?;
                synced(&handle, conn, want).await?;
                anyhow::Ok(handle)
            }
        });
        let handles = tokio::time::timeout(DEADLINE, try_join_all(finds))
            .await
            .context("the finds did not converge")??;
        let secs = t.elapsed().as_secs_f64();
        let finder = Self {
            client,
            link,
            proxy,
            counters,
            _docs: handles,
        };
        finder.quiet().await;
        let after = finder.counters.tally();
        let cost = Cost {
            secs,
            bytes: (after.payload - before.payload) as f64,
            messages: (after.messages - before.messages) as f64,
            tcp_bytes: (after.tcp - before.tcp) as f64,
            flush_secs: None,
        };
        Ok((cost, finder))
    }

    async fn quiet(&self) {
        quiet(&self.counters).await;
    }

    /// Closes the connection and stops the client.
    pub async fn close(self) {
        self.link.close();
        self.client.stop().await;
        self.proxy.abort();
    }
}

/// A server repo, a client repo and the counted link between them.
struct Pair {
    server: Server,
    client: Repo,
    dialer: Arc<CountingDialer>,
    link: Option<DialerHandle>,
    proxy: JoinHandle<()>,
    counters: Arc<Counters>,
    /// The client's handles, index-aligned with the server's, once fetched.
    docs: Vec<DocHandle>,
}

impl Pair {
    async fn open(dir: &Path, saved: &[Vec<u8>]) -> Result<Self> {
        let server = Server::open(&dir.join("server"), saved).await?;
        let counters = Arc::new(Counters::new());
        let (proxy_addr, proxy) = proxy(server.addr, counters.clone()).await?;
        let client = Repo::build_tokio()
            .with_storage(TokioFilesystemStorage::new(dir.join("client")))
            .load()
            .await;
        let dialer = Arc::new(CountingDialer::new(
            Url::parse(&format!("ws://{proxy_addr}/"))?,
            counters.clone(),
        ));
        Ok(Self {
            server,
            client,
            dialer,
            link: None,
            proxy,
            counters,
            docs: Vec::new(),
        })
    }

    async fn connect(&mut self) -> Result<ConnectionId> {
        let link = self
            .client
            .dial(BackoffConfig::default(), self.dialer.clone())?;
        link.established().await?;
        let conn = link
            .connection_id()
            .context("samod connection dropped right after its handshake")?;
        self.link = Some(link);
        Ok(conn)
    }

    /// Connects, finds every server document and waits for all of them.
    async fn fetch_all(&mut self) -> Result<Cost> {
        let before = self.counters.tally();
        let t = Instant::now();
        let conn = self.connect().await?;
        let wanted = self.server.heads();
        let finds = self.server.docs.iter().zip(wanted).map(|(doc, want)| {
            let find = self.client.find(doc.document_id().clone());
            async move {
                let handle = find
                    .await?
                    .context("samod server did not have a document")?;
                synced(&handle, conn, &want).await?;
                anyhow::Ok(handle)
            }
        });
        self.docs = tokio::time::timeout(DEADLINE, try_join_all(finds))
            .await
            .context("samod initial sync did not converge")??;
        Ok(self.finish(t, before).await)
    }

    /// Reconnects and lets samod sync every open document.
    async fn reconnect(&mut self) -> Result<Cost> {
        let before = self.counters.tally();
        let t = Instant::now();
        let conn = self.connect().await?;
        let wanted = self.server.heads();
        let waits = self
            .docs
            .iter()
            .zip(wanted)
            .map(|(doc, want)| async move { synced(doc, conn, &want).await });
        tokio::time::timeout(DEADLINE, try_join_all(waits))
            .await
            .context("samod reconnect did not converge")??;
        Ok(self.finish(t, before).await)
    }

    async fn finish(&self, t: Instant, before: Tally) -> Cost {
        let secs = t.elapsed().as_secs_f64();
        self.quiet().await;
        let after = self.counters.tally();
        Cost {
            secs,
            bytes: (after.payload - before.payload) as f64,
            messages: (after.messages - before.messages) as f64,
            tcp_bytes: (after.tcp - before.tcp) as f64,
            flush_secs: None,
        }
    }

    /// Closes the client's dialer and waits until the server has dropped the connection.
    async fn disconnect(&mut self) -> Result<()> {
        if let Some(link) = self.link.take() {
            link.close();
        }
        let t = Instant::now();
        while self.server.acceptor.connection_count() > 0 {
            if t.elapsed() > DEADLINE {
                bail!("samod server kept the connection after the client closed it");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.quiet().await;
        Ok(())
    }

    async fn quiet(&self) {
        quiet(&self.counters).await;
    }

    /// Stops both repos; returns how long the client's stop (its storage flush) took.
    async fn close(self) -> f64 {
        if let Some(link) = &self.link {
            link.close();
        }
        let t = Instant::now();
        self.client.stop().await;
        let flush = t.elapsed().as_secs_f64();
        self.server.repo.stop().await;
        self.server.http.abort();
        self.proxy.abort();
        flush
    }
}

/// Waits until `handle` is synced with the server over `conn`: the document's sync-state events
/// for that connection record `want` (the server's heads, sorted) as both the peer's heads and
/// the shared heads; then its own heads must be `want`.
async fn synced(handle: &DocHandle, conn: ConnectionId, want: &[ChangeHash]) -> Result<()> {
    let is = |heads: &Option<Vec<ChangeHash>>| heads.as_ref().is_some_and(|h| sorted(h) == want);
    let done = |s: &PeerDocState| is(&s.their_heads) && is(&s.shared_heads);
    // Subscribed before the snapshot is taken, so no update falls between the two.
    let (now, mut updates) = handle.peers();
    if !now.get(&conn).is_some_and(done) {
        loop {
            let Some(changed) = updates.next().await else {
                bail!("samod document stopped before it synced");
            };
            if changed.get(&conn).is_some_and(done) {
                break;
            }
        }
    }
    // Shared heads are heads this side has, and the client never edits, so its heads can only
    // be `want` now; checked once rather than polled (`with_document` runs a tick of the
    // document actor).
    let heads = handle.with_document(|d| sorted(&d.get_heads()));
    anyhow::ensure!(
        heads == want,
        "samod client heads differ from the server's after sync"
    );
    Ok(())
}

fn sorted(heads: &[ChangeHash]) -> Vec<ChangeHash> {
    let mut heads = heads.to_vec();
    heads.sort();
    heads
}

/// The server: a samod repo holding the fixture documents behind an axum WebSocket route.
struct Server {
    repo: Repo,
    acceptor: AcceptorHandle,
    docs: Vec<DocHandle>,
    http: JoinHandle<()>,
    addr: SocketAddr,
}

impl Server {
    async fn open(dir: &Path, saved: &[Vec<u8>]) -> Result<Self> {
        // Read-write for every peer without announcing, as the reference automerge-repo sync
        // server is configured: it serves the documents clients ask for by id, and does not
        // push every document it holds to every client that connects.
        let repo = Repo::build_tokio()
            .with_storage(TokioFilesystemStorage::new(dir))
            .with_share_policy(ShareConfig::read_write().with_announce(false))
            .load()
            .await;
        let docs = try_join_all(saved.iter().map(|bytes| {
            let repo = repo.clone();
            let doc = Automerge::load(bytes);
            async move { anyhow::Ok(repo.create(doc?).await?) }
        }))
        .await?;
        let acceptor = repo.make_acceptor(Url::parse("ws://127.0.0.1/")?)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = acceptor.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move |ws: axum::extract::WebSocketUpgrade| {
                let accept = accept.clone();
                async move {
                    ws.on_upgrade(move |socket| async move {
                        if let Err(e) = accept.accept_axum(socket, None) {
                            eprintln!("samod server refused a connection: {e}");
                        }
                    })
                }
            }),
        );
        let http = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("samod server stopped: {e}");
            }
        });
        Ok(Self {
            repo,
            acceptor,
            docs,
            http,
            addr,
        })
    }

    /// Every document's current heads, sorted.
    fn heads(&self) -> Vec<Vec<ChangeHash>> {
        self.docs
            .iter()
            .map(|d| d.with_document(|d| sorted(&d.get_heads())))
            .collect()
    }
}
