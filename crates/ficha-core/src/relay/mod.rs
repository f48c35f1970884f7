//! The relay side of every session, as one pure state machine.
//!
//! The driver assigns each connection a [`ConnId`], passes received bytes to
//! [`Relay::receive`] with the current time, and carries out the returned [`Output`]s: send
//! these bytes to that connection, or close it. Frames pushed to many sessions are encoded
//! once and shared. Uploads are admitted by applying them to their documents, kept warm in a
//! bounded cache (see [`crate::admit`]); repair serves documents read-only.

mod cache;
mod nodes;
mod overview;
mod repair;
mod repo;
pub mod shape;
mod upload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use automerge::sync;
use automerge::{ActorId, Automerge, Change, ChangeHash};
use thiserror::Error;

use crate::digest::DocDigests;
use crate::error::{ChangeError, TokenError};
use crate::frame::{
    DEFAULT_MAX_FRAME, ErrorCode, ErrorFrame, FeedEntry, FeedPage, Frame, Grant, Hello, Welcome,
};
use crate::guard::contain;
use crate::ids::{Company, DocId, RelayEpoch, ReplicaId, Seq};
use crate::token::{self, Claims};

use cache::DocCache;
pub use overview::{REFUSALS_KEPT, RefusalRecord, SessionInfo};

/// A connection, as numbered by the driver.
pub type ConnId = u64;

/// Admitted changes to one document, ready to store.
#[derive(Debug, Clone)]
pub struct IngestDoc {
    /// The document.
    pub doc: DocId,
    /// Its company.
    pub company: Company,
    /// Changes that applied, in causal order: appended to the feed.
    pub applied: Vec<Change>,
    /// Changes waiting for dependencies: kept aside, never served.
    pub parked: Vec<Change>,
    /// Parked changes to forget (now applied, or found unusable).
    pub unparked: Vec<ChangeHash>,
    /// The uploader holds `applied` (its own changes), so it is sent their positions only;
    /// false for parked changes of other replicas that its upload released.
    pub uploader_holds: bool,
}

impl IngestDoc {
    /// Changes already admitted, all applying, by the uploader (fixtures and tools that write
    /// a store directly).
    pub fn applied(doc: DocId, company: Company, applied: Vec<Change>) -> Self {
        Self {
            doc,
            company,
            applied,
            parked: Vec::new(),
            unparked: Vec::new(),
            uploader_holds: true,
        }
    }
}

/// A feed entry an ingest created.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The company whose feed it joined.
    pub company: Company,
    /// The entry.
    pub entry: FeedEntry,
    /// Copied from the [`IngestDoc`] it came from.
    pub uploader_holds: bool,
}

/// A stored document as the relay loads it to admit changes.
#[derive(Default)]
pub struct LoadedDoc {
    /// Its applied history.
    pub doc: Automerge,
    /// Its parked changes.
    pub parked: Vec<Change>,
    /// The bytes read to load it.
    pub bytes: usize,
}

impl LoadedDoc {
    /// Adds one stored feed entry (changes, or a document compaction folded), in feed order;
    /// the error says why it does not load.
    pub fn add_entry(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.bytes += bytes.len();
        let doc = &mut self.doc;
        contain(|| doc.load_incremental(bytes))
            .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()))
    }

    /// Adds one stored parked change.
    pub fn add_parked(&mut self, bytes: &[u8]) -> Result<(), ChangeError> {
        self.parked.push(crate::change::parse(bytes)?);
        Ok(())
    }

    /// The document, its parked changes in the order they can apply (one actor's in sequence).
    pub fn finish(mut self) -> Self {
        self.parked.sort_by_key(Change::seq);
        self
    }
}

/// How binding a replica name to a replica id went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Bound now or before to exactly this pair.
    Bound,
    /// The name is bound to another replica id.
    NameTaken,
    /// The replica id is bound to another name.
    IdTaken,
}

/// What the relay must persist. Every mutating call is one durable transaction.
pub trait RelayStore {
    /// The store's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// This database's identity.
    fn epoch(&self) -> RelayEpoch;
    /// When tokens of this replica name were last revoked (seconds since the Unix epoch):
    /// tokens issued at or before it are refused.
    fn revoked_at(&self, replica_name: &str) -> Result<Option<u64>, Self::Error>;
    /// Binds a replica name and a replica id to each other on first use, both ways.
    fn bind_replica(&mut self, name: &str, id: ReplicaId) -> Result<Binding, Self::Error>;
    /// Binds each actor to the token name that first wrote with it through `/automerge`
    /// (automerge-repo clients draw a fresh random actor per document load); returns the first
    /// actor already bound to another name, binding none of them then.
    fn bind_actors(
        &mut self,
        name: &str,
        actors: &[ActorId],
    ) -> Result<Option<ActorId>, Self::Error>;
    /// Feed entries of a company after `after`, stopping after `max_bytes` of changes.
    fn read_feed(
        &self,
        company: &Company,
        after: Seq,
        max_bytes: usize,
    ) -> Result<Vec<FeedEntry>, Self::Error>;
    /// The company a document belongs to, if the relay has it.
    fn doc_company(&self, doc: &DocId) -> Result<Option<Company>, Self::Error>;
    /// Stores admitted changes (applied ones as new feed entries, of at most
    /// [`crate::frame::MAX_ENTRY_BYTES`] each; parked ones aside) and returns the new entries;
    /// one transaction, durable on return. A document named here exists from then on.
    fn ingest(
        &mut self,
        origin: ReplicaId,
        docs: Vec<IngestDoc>,
    ) -> Result<Vec<NewEntry>, Self::Error>;
    /// Changes parked in a company's documents.
    fn parked_count(&self, company: &Company) -> Result<usize, Self::Error>;
    /// The company's feed head and every document with its heads digest, sorted by id, as of
    /// one consistent snapshot.
    fn doc_digests(&self, company: &Company) -> Result<(Seq, DocDigests), Self::Error>;
    /// Loads one document from its stored changes, with its parked ones.
    fn load_doc(&self, doc: &DocId) -> Result<Option<LoadedDoc>, Self::Error>;
    /// A document's stored heads and number of parked changes, or None if the relay does not
    /// have it: tells whether a copy held in memory is still current when other relay nodes
    /// write the same store ([`RelayConfig::shared_store`]).
    fn doc_state(&self, doc: &DocId) -> Result<Option<(Vec<ChangeHash>, usize)>, Self::Error>;
    /// Corrects a document's recorded heads after it was loaded whole.
    fn set_heads(&mut self, doc: &DocId, heads: &[ChangeHash]) -> Result<(), Self::Error>;
}

/// Limits and secrets of a relay.
#[derive(Clone)]
pub struct RelayConfig {
    /// The token signing secret.
    pub secret: [u8; 32],
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Bytes of changes per feed page during catch-up.
    pub page_bytes: usize,
    /// Feed pages in flight per company before waiting for acks.
    pub window: usize,
    /// Unacknowledged live pages after which a session is dropped as too slow.
    pub max_unacked_live: usize,
    /// Largest number of changes in one upload.
    pub max_upload_changes: usize,
    /// Documents repaired at once per session.
    pub max_repairs: usize,
    /// Concurrent sessions one replica name (one token holder) may hold.
    pub max_sessions_per_replica: usize,
    /// Changes a company's documents may hold parked (waiting for dependencies).
    pub max_parked: usize,
    /// Bytes of documents kept in memory to admit changes into, counted as stored.
    pub doc_cache_bytes: usize,
    /// Documents kept in memory at most, whatever their stored size: in memory a document
    /// takes tens of times its stored bytes (ficha-bench `automerge_endpoint` measures it).
    pub doc_cache_docs: usize,
    /// Concurrent automerge-repo connections one token name may hold.
    pub max_repo_peers_per_name: usize,
    /// Documents one automerge-repo connection may hold open.
    pub max_repo_docs_per_peer: usize,
    /// Other relay nodes write the same store: a document held in memory is checked against
    /// the store before each use (see [`nodes`]), and the driver calls
    /// [`Relay::feed_moved`] when another node appended to a feed.
    pub shared_store: bool,
}

impl RelayConfig {
    /// Defaults for a relay with this secret.
    pub fn new(secret: [u8; 32]) -> Self {
        Self {
            secret,
            max_frame: DEFAULT_MAX_FRAME,
            page_bytes: 512 * 1024,
            window: 4,
            max_unacked_live: 4096,
            max_upload_changes: 10_000,
            max_repairs: 64,
            max_sessions_per_replica: 4,
            max_parked: 10_000,
            doc_cache_bytes: 64 << 20,
            doc_cache_docs: 256,
            max_repo_peers_per_name: 16,
            shared_store: false,
            max_repo_docs_per_peer: 4096,
        }
    }
}

/// An action for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these encoded frame bytes.
    Send(ConnId, Arc<[u8]>),
    /// Close the connection (after sending what precedes this output).
    Close(ConnId),
}

/// The relay cannot go on at all.
#[derive(Debug, Error)]
#[error("relay store: {0}")]
pub struct RelayError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

struct Feed {
    cursor: Seq,
    live: bool,
    unacked: usize,
}

struct Session {
    replica: ReplicaId,
    claims: Claims,
    feeds: BTreeMap<Company, Feed>,
    /// Documents being repaired, each with its (read-only) sync state.
    repairs: BTreeMap<DocId, sync::State>,
    /// When its hello was accepted.
    connected_at: u64,
    /// When it last sent a frame.
    last_seen: u64,
}

/// Counters the driver exports as metrics.
#[derive(Debug, Default, Clone)]
pub struct RelayStats {
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Changes stored.
    pub changes_stored: u64,
    /// Sessions refused or ended by the relay.
    pub refused: u64,
    /// Documents of uploads refused (the rest of the upload stored).
    pub refused_docs: u64,
    /// Changes parked, waiting for their dependencies.
    pub parked: u64,
}

/// The relay: every session's protocol state over one store.
pub struct Relay<S> {
    store: S,
    cfg: RelayConfig,
    pending: BTreeSet<ConnId>,
    sessions: BTreeMap<ConnId, Session>,
    subscribers: BTreeMap<Company, BTreeSet<ConnId>>,
    /// automerge-repo sessions (see [`repo`]).
    peers: BTreeMap<ConnId, repo::RepoPeer>,
    /// Per document, the automerge-repo sessions that have it open.
    watchers: BTreeMap<DocId, repo::Watch>,
    cache: DocCache,
    stats: RelayStats,
    refusals: overview::RefusalLog,
    /// The time of the frame being handled, for the refusal log.
    now: u64,
}

/// Why one request is refused (ending the session).
struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        Refusal::new(ErrorCode::Unauthorized, e.to_string())
    }
}

impl From<ChangeError> for Refusal {
    fn from(e: ChangeError) -> Self {
        Refusal::new(ErrorCode::BadChange, e.to_string())
    }
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "relay store failed");
    Refusal::new(
        ErrorCode::Internal,
        "the relay could not complete the request",
    )
}

fn encode(frame: &Frame) -> Arc<[u8]> {
    Arc::from(frame.encode())
}

impl<S: RelayStore> Relay<S> {
    /// A relay over `store`.
    pub fn new(store: S, cfg: RelayConfig) -> Self {
        Self {
            store,
            cache: DocCache::new(cfg.doc_cache_bytes, cfg.doc_cache_docs),
            cfg,
            pending: BTreeSet::new(),
            sessions: BTreeMap::new(),
            subscribers: BTreeMap::new(),
            peers: BTreeMap::new(),
            watchers: BTreeMap::new(),
            stats: RelayStats::default(),
            refusals: overview::RefusalLog::default(),
            now: 0,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, for administrative writes outside any session (revocation, compaction),
    /// which must not change what a document holds: documents kept in memory stay valid.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Shuts the relay down, keeping its store (sessions are lost, as in a crash).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Counters since start.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// Sessions past hello.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Documents held in memory to admit changes into.
    pub fn warm_docs(&self) -> usize {
        self.cache.len()
    }

    /// Sessions open with this replica name (to cap concurrent sessions per token).
    pub fn sessions_of(&self, name: &str) -> usize {
        self.sessions
            .values()
            .filter(|s| s.claims.replica == name)
            .count()
    }

    /// True once `conn` has said an accepted hello.
    pub fn is_session(&self, conn: ConnId) -> bool {
        self.sessions.contains_key(&conn)
    }

    /// Ends every open session of a replica name whose tokens were just revoked; the driver
    /// closes the returned connections.
    pub fn revoked(&mut self, name: &str) -> Vec<Output> {
        let mut out = self.end_sessions(|s| s.claims.replica == name, TokenError::Revoked);
        out.extend(self.end_peers(|p| p.claims.replica == name, &TokenError::Revoked));
        out
    }

    /// Ends every session whose token has expired by `now` (seconds since the Unix epoch); the
    /// driver calls this every so often, so a session never outlives its token.
    pub fn expire(&mut self, now: u64) -> Vec<Output> {
        self.now = now;
        let mut out = self.end_sessions(|s| now >= s.claims.expires_at, TokenError::Expired);
        out.extend(self.end_peers(|p| now >= p.claims.expires_at, &TokenError::Expired));
        out
    }

    fn end_sessions(&mut self, which: impl Fn(&Session) -> bool, why: TokenError) -> Vec<Output> {
        let conns: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| which(s))
            .map(|(c, _)| *c)
            .collect();
        let frame = encode(&Frame::Error(ErrorFrame {
            code: ErrorCode::Unauthorized,
            message: why.to_string(),
            fatal: true,
        }));
        let mut out = Vec::new();
        for conn in conns {
            tracing::info!(conn, reason = %why, "ending a session");
            self.log_refusal(conn, None, ErrorCode::Unauthorized, &why.to_string());
            out.push(Output::Send(conn, frame.clone()));
            out.push(Output::Close(conn));
            self.disconnect(conn);
        }
        self.count_sent(&out);
        out
    }

    /// A connection opened; it must say hello first.
    pub fn connect(&mut self, conn: ConnId) {
        self.pending.insert(conn);
    }

    /// A connection ended, cleanly or not.
    pub fn disconnect(&mut self, conn: ConnId) {
        self.pending.remove(&conn);
        self.disconnect_peer(conn);
        if let Some(session) = self.sessions.remove(&conn) {
            for company in session.feeds.keys() {
                if let Some(subs) = self.subscribers.get_mut(company) {
                    subs.remove(&conn);
                }
            }
        }
    }

    /// Handles bytes received on a connection at time `now` (seconds since the Unix epoch).
    pub fn receive(&mut self, conn: ConnId, bytes: &[u8], now: u64) -> Vec<Output> {
        self.receive_batch(conn, &[bytes], now)
    }

    /// Handles frames received back to back on one connection, as [`Relay::receive`] would one
    /// by one, except that a run of uploads is stored in one transaction and acknowledged once
    /// (acknowledgements are cumulative). A replica's pipelined uploads then cost one durable
    /// write, and each subscriber one page and one ack, instead of one per upload.
    pub fn receive_batch(&mut self, conn: ConnId, frames: &[&[u8]], now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        let mut staged = upload::Staged::default();
        self.now = now;
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.last_seen = now;
        }
        for bytes in frames {
            self.stats.frames_in += 1;
            self.stats.bytes_in += bytes.len() as u64;
            let frame = match Frame::decode(bytes, self.cfg.max_frame) {
                Ok(f) => f,
                Err(e) => {
                    self.flush(conn, &mut staged, &mut out);
                    self.refuse(
                        conn,
                        Refusal::new(ErrorCode::Protocol, e.to_string()),
                        &mut out,
                    );
                    break;
                }
            };
            let result = match frame {
                Frame::Upload(upload) if self.sessions.contains_key(&conn) => self
                    .check_token(conn, now)
                    .and_then(|()| self.stage(conn, upload, &mut staged)),
                other => {
                    // Anything else goes the usual way once what came before it is stored.
                    self.flush(conn, &mut staged, &mut out);
                    self.dispatch(conn, other, now, &mut out)
                }
            };
            if let Err(refusal) = result {
                self.flush(conn, &mut staged, &mut out);
                self.refuse(conn, refusal, &mut out);
                break;
            }
        }
        self.flush(conn, &mut staged, &mut out);
        self.count_sent(&out);
        out
    }

    /// Tells a replica why its session ends, and ends it.
    fn refuse(&mut self, conn: ConnId, refusal: Refusal, out: &mut Vec<Output>) {
        self.stats.refused += 1;
        tracing::warn!(conn, code = ?refusal.code, reason = %refusal.message, "refusing session");
        self.log_refusal(conn, None, refusal.code, &refusal.message);
        let frame = Frame::Error(ErrorFrame {
            code: refusal.code,
            message: refusal.message,
            fatal: true,
        });
        out.push(Output::Send(conn, encode(&frame)));
        out.push(Output::Close(conn));
        self.disconnect(conn);
    }

    fn count_sent(&mut self, out: &[Output]) {
        for o in out {
            if let Output::Send(_, b) = o {
                self.stats.frames_out += 1;
                self.stats.bytes_out += b.len() as u64;
            }
        }
    }

    /// Refuses a session whose token has expired since its hello.
    fn check_token(&self, conn: ConnId, now: u64) -> Result<(), Refusal> {
        if now >= self.session(conn)?.claims.expires_at {
            return Err(TokenError::Expired.into());
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        conn: ConnId,
        frame: Frame,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        if self.pending.contains(&conn) {
            let Frame::Hello(hello) = frame else {
                return Err(Refusal::new(ErrorCode::Protocol, "expected hello"));
            };
            return self.on_hello(conn, hello, now, out);
        }
        if !self.sessions.contains_key(&conn) {
            return Err(Refusal::new(ErrorCode::Protocol, "unknown connection"));
        }
        self.check_token(conn, now)?;
        match frame {
            Frame::Subscribe { company, after } => self.on_subscribe(conn, company, after, out),
            Frame::PageAck { company, upto } => self.on_page_ack(conn, company, upto, out),
            Frame::Upload(upload) => {
                let mut staged = upload::Staged::default();
                self.stage(conn, upload, &mut staged)?;
                self.flush(conn, &mut staged, out);
                Ok(())
            }
            Frame::Reconcile { company, buckets } => self.on_reconcile(conn, company, buckets, out),
            Frame::DocSync {
                company,
                doc,
                message,
            } => self.on_doc_sync(conn, company, doc, message, out),
            other => Err(Refusal::new(
                ErrorCode::Protocol,
                format!("unexpected {} frame from replica", other.kind()),
            )),
        }
    }

    fn on_hello(
        &mut self,
        conn: ConnId,
        hello: Hello,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let claims = self.verified(&hello.token, now)?;
        match self
            .store
            .bind_replica(&claims.replica, hello.replica)
            .map_err(internal)?
        {
            Binding::Bound => {}
            Binding::NameTaken => {
                return Err(Refusal::new(
                    ErrorCode::Unauthorized,
                    format!(
                        "token for replica {:?} is bound to another replica id; issue a new token",
                        claims.replica
                    ),
                ));
            }
            Binding::IdTaken => {
                return Err(Refusal::new(
                    ErrorCode::Unauthorized,
                    format!(
                        "replica id {} belongs to another replica name; a token for {:?} cannot speak for it",
                        hello.replica, claims.replica
                    ),
                ));
            }
        }
        if self.sessions_of(&claims.replica) >= self.cfg.max_sessions_per_replica {
            return Err(Refusal::new(
                ErrorCode::Limit,
                format!(
                    "replica {:?} already holds {} sessions",
                    claims.replica, self.cfg.max_sessions_per_replica
                ),
            ));
        }
        tracing::info!(conn, replica = %claims.replica, token = %token::redact(&hello.token), "session opened");
        let welcome = Frame::Welcome(Welcome {
            epoch: self.store.epoch(),
            grants: claims
                .companies
                .iter()
                .map(|c| Grant {
                    company: c.clone(),
                    write: claims.write,
                })
                .collect(),
        });
        self.pending.remove(&conn);
        self.sessions.insert(
            conn,
            Session {
                replica: hello.replica,
                claims,
                feeds: BTreeMap::new(),
                repairs: BTreeMap::new(),
                connected_at: now,
                last_seen: now,
            },
        );
        out.push(Output::Send(conn, encode(&welcome)));
        Ok(())
    }

    /// The claims of a token that is valid at `now` and not revoked.
    fn verified(&self, token: &str, now: u64) -> Result<Claims, Refusal> {
        let claims = token::verify(&self.cfg.secret, token, now)?;
        let revoked = self
            .store
            .revoked_at(&claims.replica)
            .map_err(internal)?
            .is_some_and(|at| claims.issued_at <= at);
        if revoked {
            return Err(TokenError::Revoked.into());
        }
        Ok(claims)
    }

    fn session(&self, conn: ConnId) -> Result<&Session, Refusal> {
        self.sessions
            .get(&conn)
            .ok_or_else(|| Refusal::new(ErrorCode::Protocol, "no session"))
    }

    fn check_read(&self, conn: ConnId, company: &Company) -> Result<(), Refusal> {
        if self.session(conn)?.claims.companies.contains(company) {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("company {company} is not granted to this token"),
            ))
        }
    }

    fn on_subscribe(
        &mut self,
        conn: ConnId,
        company: Company,
        after: Seq,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        self.check_read(conn, &company)?;
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.feeds.insert(
                company.clone(),
                Feed {
                    cursor: after,
                    live: false,
                    unacked: 0,
                },
            );
        }
        self.subscribers
            .entry(company.clone())
            .or_default()
            .insert(conn);
        self.pump(conn, &company, out)
    }

    fn on_page_ack(
        &mut self,
        conn: ConnId,
        company: Company,
        _upto: Seq,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let live = match self
            .sessions
            .get_mut(&conn)
            .and_then(|s| s.feeds.get_mut(&company))
        {
            Some(feed) => {
                feed.unacked = feed.unacked.saturating_sub(1);
                feed.live
            }
            None => {
                return Err(Refusal::new(
                    ErrorCode::Protocol,
                    "ack for an unsubscribed feed",
                ));
            }
        };
        if live {
            Ok(())
        } else {
            self.pump(conn, &company, out)
        }
    }

    /// Sends catch-up pages while the window allows, then `CaughtUp` once at the head.
    fn pump(
        &mut self,
        conn: ConnId,
        company: &Company,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        loop {
            let Some(feed) = self.sessions.get(&conn).and_then(|s| s.feeds.get(company)) else {
                return Ok(());
            };
            if feed.live || feed.unacked >= self.cfg.window {
                return Ok(());
            }
            let from = feed.cursor;
            let entries = self
                .store
                .read_feed(company, from, self.cfg.page_bytes)
                .map_err(internal)?;
            let Some(feed) = self
                .sessions
                .get_mut(&conn)
                .and_then(|s| s.feeds.get_mut(company))
            else {
                return Ok(());
            };
            match entries.last().map(|e| e.seq) {
                None => {
                    feed.live = true;
                    out.push(Output::Send(
                        conn,
                        encode(&Frame::CaughtUp {
                            company: company.clone(),
                            upto: from,
                        }),
                    ));
                    return Ok(());
                }
                Some(upto) => {
                    feed.cursor = upto;
                    feed.unacked += 1;
                    let page = Frame::Feed(FeedPage {
                        company: company.clone(),
                        from,
                        upto,
                        entries,
                    });
                    out.push(Output::Send(conn, encode(&page)));
                }
            }
        }
    }

    fn push_live(
        &mut self,
        origin_conn: ConnId,
        company: Company,
        entries: Vec<(FeedEntry, bool)>,
        out: &mut Vec<Output>,
    ) {
        let (Some((first, _)), Some((last, _))) = (entries.first(), entries.last()) else {
            return;
        };
        let (from, upto) = (first.seq - 1, last.seq);
        let Some(subs) = self.subscribers.get(&company) else {
            return;
        };
        let mut shared: Option<Arc<[u8]>> = None;
        let mut slow = Vec::new();
        for conn in subs {
            let Some(feed) = self
                .sessions
                .get_mut(conn)
                .and_then(|s| s.feeds.get_mut(&company))
            else {
                continue;
            };
            if !feed.live || feed.cursor != from {
                continue;
            }
            if feed.unacked >= self.cfg.max_unacked_live {
                slow.push(*conn);
                continue;
            }
            feed.cursor = upto;
            feed.unacked += 1;
            let bytes = if *conn == origin_conn {
                // The uploader already holds its own changes durably: send positions only.
                let stub: Vec<FeedEntry> = entries
                    .iter()
                    .map(|(e, holds)| FeedEntry {
                        seq: e.seq,
                        doc: e.doc,
                        changes: if *holds {
                            Vec::new()
                        } else {
                            e.changes.clone()
                        },
                    })
                    .collect();
                encode(&Frame::Feed(FeedPage {
                    company: company.clone(),
                    from,
                    upto,
                    entries: stub,
                }))
            } else {
                shared
                    .get_or_insert_with(|| {
                        encode(&Frame::Feed(FeedPage {
                            company: company.clone(),
                            from,
                            upto,
                            entries: entries.iter().map(|(e, _)| e.clone()).collect(),
                        }))
                    })
                    .clone()
            };
            out.push(Output::Send(*conn, bytes));
        }
        self.drop_slow(slow, out);
    }

    /// Closes sessions that stopped acknowledging live pages (they resume from their
    /// checkpoints), so one stalled replica never holds the relay's memory.
    fn drop_slow(&mut self, slow: Vec<ConnId>, out: &mut Vec<Output>) {
        for conn in slow {
            tracing::warn!(
                conn,
                "dropping a session that stopped acknowledging live pages"
            );
            out.push(Output::Close(conn));
            self.disconnect(conn);
        }
    }
}
