//! The relay side of every session, as one pure state machine.
//!
//! The driver assigns each connection a [`ConnId`], passes received bytes to
//! [`Relay::receive`] with the current time, and carries out the returned [`Output`]s: send
//! these bytes to that connection, or close it. Frames pushed to many sessions are encoded
//! once and shared.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, Change, ChangeHash};
use thiserror::Error;

use crate::change;
use crate::digest::{BUCKETS, DocDigests, bucket_digests, bucket_of};
use crate::error::{ChangeError, TokenError};
use crate::frame::{
    DEFAULT_MAX_FRAME, DocChanges, ErrorCode, ErrorFrame, FeedEntry, FeedPage, Frame, Grant, Hello,
    Upload, Welcome,
};
use crate::ids::{Company, DocId, RelayEpoch, ReplicaId, Seq};
use crate::token::{self, Claims};

/// A connection, as numbered by the driver.
pub type ConnId = u64;

/// Validated changes to one document, ready to store.
#[derive(Debug, Clone)]
pub struct IngestDoc {
    /// The document.
    pub doc: DocId,
    /// Its company.
    pub company: Company,
    /// The changes, parsed and checked.
    pub changes: Vec<Change>,
}

/// What the relay must persist. Every mutating call is one durable transaction.
pub trait RelayStore {
    /// The store's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// This database's identity.
    fn epoch(&self) -> RelayEpoch;
    /// Whether tokens of this replica name were revoked.
    fn is_revoked(&self, replica_name: &str) -> Result<bool, Self::Error>;
    /// Binds a replica name to the replica id that first used it; false if bound to another.
    fn bind_replica(&mut self, name: &str, id: ReplicaId) -> Result<bool, Self::Error>;
    /// Feed entries of a company after `after`, stopping after `max_bytes` of changes.
    fn read_feed(
        &self,
        company: &Company,
        after: Seq,
        max_bytes: usize,
    ) -> Result<Vec<FeedEntry>, Self::Error>;
    /// The company a document belongs to, if the relay has it.
    fn doc_company(&self, doc: &DocId) -> Result<Option<Company>, Self::Error>;
    /// Stores the changes not stored yet (one feed entry per document that gained any) and
    /// returns the new entries; one transaction, durable on return.
    fn ingest(
        &mut self,
        origin: ReplicaId,
        docs: Vec<IngestDoc>,
    ) -> Result<Vec<(Company, FeedEntry)>, Self::Error>;
    /// The company's feed head and every document with its heads digest, sorted by id, as of
    /// one consistent snapshot.
    fn doc_digests(&self, company: &Company) -> Result<(Seq, DocDigests), Self::Error>;
    /// Loads one document from its stored changes.
    fn load_doc(&self, doc: &DocId) -> Result<Option<Automerge>, Self::Error>;
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
        }
    }
}

/// Uploads validated and waiting to be stored together.
#[derive(Default)]
struct StagedUploads {
    upto: u64,
    docs: Vec<IngestDoc>,
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
    repairs: BTreeMap<DocId, (Automerge, sync::State)>,
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
    /// Frames or requests refused.
    pub refused: u64,
}

/// The relay: every session's protocol state over one store.
pub struct Relay<S> {
    store: S,
    cfg: RelayConfig,
    pending: BTreeSet<ConnId>,
    sessions: BTreeMap<ConnId, Session>,
    subscribers: BTreeMap<Company, BTreeSet<ConnId>>,
    stats: RelayStats,
}

/// Why one request is refused.
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
            cfg,
            pending: BTreeSet::new(),
            sessions: BTreeMap::new(),
            subscribers: BTreeMap::new(),
            stats: RelayStats::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, for administrative writes (revocation) outside any session.
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

    /// Sessions open with this replica name (to cap concurrent sessions per token).
    pub fn sessions_of(&self, name: &str) -> usize {
        self.sessions
            .values()
            .filter(|s| s.claims.replica == name)
            .count()
    }

    /// Ends every open session of a replica name whose tokens were just revoked; the driver
    /// closes the returned connections.
    pub fn revoked(&mut self, name: &str) -> Vec<Output> {
        let conns: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.claims.replica == name)
            .map(|(c, _)| *c)
            .collect();
        let frame = encode(&Frame::Error(ErrorFrame {
            code: ErrorCode::Unauthorized,
            message: TokenError::Revoked.to_string(),
            fatal: true,
        }));
        let mut out = Vec::new();
        for conn in conns {
            out.push(Output::Send(conn, frame.clone()));
            out.push(Output::Close(conn));
            self.disconnect(conn);
        }
        out
    }

    /// A connection opened; it must say hello first.
    pub fn connect(&mut self, conn: ConnId) {
        self.pending.insert(conn);
    }

    /// A connection ended, cleanly or not.
    pub fn disconnect(&mut self, conn: ConnId) {
        self.pending.remove(&conn);
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
        self.stats.frames_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let mut out = Vec::new();
        let result = match Frame::decode(bytes, self.cfg.max_frame) {
            Err(e) => Err(Refusal::new(ErrorCode::Protocol, e.to_string())),
            Ok(frame) => self.dispatch(conn, frame, now, &mut out),
        };
        if let Err(refusal) = result {
            self.refuse(conn, refusal, &mut out);
        }
        self.count_sent(&out);
        out
    }

    /// Handles frames received back to back on one connection, as [`Relay::receive`] would one
    /// by one, except that a run of uploads is stored in one transaction and acknowledged once
    /// (acknowledgements are cumulative). A replica's pipelined uploads then cost one durable
    /// write, and each subscriber one page and one ack, instead of one per upload.
    pub fn receive_batch(&mut self, conn: ConnId, frames: &[&[u8]], now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        let mut staged = StagedUploads::default();
        for bytes in frames {
            if let Some((upto, docs)) = self.stage_upload(conn, bytes) {
                self.stats.frames_in += 1;
                self.stats.bytes_in += bytes.len() as u64;
                staged.upto = upto;
                staged.docs.extend(docs);
                continue;
            }
            // Anything else, a refused upload included, goes the usual way once what came
            // before it is stored.
            self.flush_uploads(conn, &mut staged, &mut out);
            out.extend(self.receive(conn, bytes, now));
        }
        self.flush_uploads(conn, &mut staged, &mut out);
        out
    }

    /// The validated contents of an upload from an open session; None for anything else.
    fn stage_upload(&self, conn: ConnId, bytes: &[u8]) -> Option<(u64, Vec<IngestDoc>)> {
        if !self.sessions.contains_key(&conn) {
            return None;
        }
        match Frame::decode(bytes, self.cfg.max_frame) {
            Ok(Frame::Upload(upload)) => {
                let upto = upload.upto;
                self.validate_upload(conn, upload)
                    .ok()
                    .map(|docs| (upto, docs))
            }
            _ => None,
        }
    }

    /// Stores staged uploads in one transaction and acknowledges the last.
    fn flush_uploads(&mut self, conn: ConnId, staged: &mut StagedUploads, out: &mut Vec<Output>) {
        if staged.docs.is_empty() {
            return;
        }
        let docs = std::mem::take(&mut staged.docs);
        let mut produced = Vec::new();
        if let Err(refusal) = self.store_uploads(conn, staged.upto, docs, &mut produced) {
            self.refuse(conn, refusal, &mut produced);
        }
        self.count_sent(&produced);
        out.extend(produced);
    }

    /// Tells a replica why its session ends, and ends it.
    fn refuse(&mut self, conn: ConnId, refusal: Refusal, out: &mut Vec<Output>) {
        self.stats.refused += 1;
        tracing::warn!(conn, code = ?refusal.code, reason = %refusal.message, "refusing session");
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
        match frame {
            Frame::Subscribe { company, after } => self.on_subscribe(conn, company, after, out),
            Frame::PageAck { company, upto } => self.on_page_ack(conn, company, upto, out),
            Frame::Upload(upload) => self.on_upload(conn, upload, out),
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
        let claims = token::verify(&self.cfg.secret, &hello.token, now)?;
        if self.store.is_revoked(&claims.replica).map_err(internal)? {
            return Err(TokenError::Revoked.into());
        }
        if !self
            .store
            .bind_replica(&claims.replica, hello.replica)
            .map_err(internal)?
        {
            return Err(Refusal::new(
                ErrorCode::Unauthorized,
                format!(
                    "token for replica {:?} is bound to another replica id; issue a new token",
                    claims.replica
                ),
            ));
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
            },
        );
        out.push(Output::Send(conn, encode(&welcome)));
        Ok(())
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

    fn check_write(&self, conn: ConnId, company: &Company) -> Result<(), Refusal> {
        self.check_read(conn, company)?;
        if self.session(conn)?.claims.write {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::Forbidden,
                "this token is read-only",
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

    fn on_upload(
        &mut self,
        conn: ConnId,
        upload: Upload,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let upto = upload.upto;
        let docs = self.validate_upload(conn, upload)?;
        self.store_uploads(conn, upto, docs, out)
    }

    /// Stores validated uploads in one transaction, then acknowledges everything up to `upto`.
    fn store_uploads(
        &mut self,
        conn: ConnId,
        upto: u64,
        docs: Vec<IngestDoc>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let replica = self.session(conn)?.replica;
        let stored = self.ingest(conn, replica, docs, out)?;
        tracing::debug!(conn, upto, stored, "uploads stored");
        out.push(Output::Send(conn, encode(&Frame::Ack { upto })));
        Ok(())
    }

    /// Checks an upload against the limits, the session's grants and each change's author.
    fn validate_upload(&self, conn: ConnId, upload: Upload) -> Result<Vec<IngestDoc>, Refusal> {
        let replica = self.session(conn)?.replica;
        let total: usize = upload.docs.iter().map(|d| d.changes.len()).sum();
        if total > self.cfg.max_upload_changes {
            return Err(Refusal::new(
                ErrorCode::Limit,
                format!(
                    "upload of {total} changes exceeds {}",
                    self.cfg.max_upload_changes
                ),
            ));
        }
        let mut docs = Vec::with_capacity(upload.docs.len());
        for DocChanges {
            doc,
            company,
            changes,
        } in upload.docs
        {
            self.check_write(conn, &company)?;
            self.check_doc_company(&doc, &company)?;
            let changes = changes
                .iter()
                .map(|c| change::parse_own(c, replica))
                .collect::<Result<Vec<_>, _>>()?;
            docs.push(IngestDoc {
                doc,
                company,
                changes,
            });
        }
        Ok(docs)
    }

    fn check_doc_company(&self, doc: &DocId, company: &Company) -> Result<(), Refusal> {
        match self.store.doc_company(doc).map_err(internal)? {
            Some(c) if &c != company => Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("document {doc} does not belong to company {company}"),
            )),
            _ => Ok(()),
        }
    }

    /// Stores validated changes and pushes the new entries to every live subscriber.
    fn ingest(
        &mut self,
        origin_conn: ConnId,
        origin: ReplicaId,
        docs: Vec<IngestDoc>,
        out: &mut Vec<Output>,
    ) -> Result<usize, Refusal> {
        let count: usize = docs.iter().map(|d| d.changes.len()).sum();
        let entries = self.store.ingest(origin, docs).map_err(internal)?;
        self.stats.changes_stored += count as u64;
        let mut by_company: BTreeMap<Company, Vec<FeedEntry>> = BTreeMap::new();
        for (company, entry) in entries {
            by_company.entry(company).or_default().push(entry);
        }
        for (company, entries) in by_company {
            self.push_live(origin_conn, company, entries, out);
        }
        Ok(count)
    }

    fn push_live(
        &mut self,
        origin_conn: ConnId,
        company: Company,
        entries: Vec<FeedEntry>,
        out: &mut Vec<Output>,
    ) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
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
                // The uploader already holds these changes durably: send positions only.
                let stub: Vec<FeedEntry> = entries
                    .iter()
                    .map(|e| FeedEntry {
                        seq: e.seq,
                        doc: e.doc,
                        changes: Vec::new(),
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
                            entries: entries.clone(),
                        }))
                    })
                    .clone()
            };
            out.push(Output::Send(*conn, bytes));
        }
        for conn in slow {
            tracing::warn!(
                conn,
                "dropping a session that stopped acknowledging live pages"
            );
            out.push(Output::Close(conn));
            self.disconnect(conn);
        }
    }

    fn on_reconcile(
        &mut self,
        conn: ConnId,
        company: Company,
        theirs: Vec<[u8; 32]>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        self.check_read(conn, &company)?;
        if theirs.len() != BUCKETS {
            return Err(Refusal::new(
                ErrorCode::Protocol,
                "reconcile needs 256 buckets",
            ));
        }
        let (head, docs) = self.store.doc_digests(&company).map_err(internal)?;
        let mine = bucket_digests(docs.iter().map(|(d, h)| (d, h)));
        let buckets: Vec<u8> = (0..=255u8)
            .filter(|b| mine[usize::from(*b)] != theirs[usize::from(*b)])
            .collect();
        let docs = docs
            .into_iter()
            .filter(|(d, _)| buckets.contains(&bucket_of(d)))
            .collect();
        let diff = Frame::ReconcileDiff {
            company,
            head,
            buckets,
            docs,
        };
        out.push(Output::Send(conn, encode(&diff)));
        Ok(())
    }

    fn on_doc_sync(
        &mut self,
        conn: ConnId,
        company: Company,
        doc_id: DocId,
        message: Option<Vec<u8>>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        self.check_read(conn, &company)?;
        self.check_doc_company(&doc_id, &company)?;
        let may_write = self.session(conn)?.claims.write;
        let replica = self.session(conn)?.replica;
        let known = self.session(conn)?.repairs.contains_key(&doc_id);
        if !known {
            if self.session(conn)?.repairs.len() >= self.cfg.max_repairs {
                return Err(Refusal::new(
                    ErrorCode::Limit,
                    "too many documents in repair at once",
                ));
            }
            let doc = self
                .store
                .load_doc(&doc_id)
                .map_err(internal)?
                .unwrap_or_default();
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.repairs.insert(doc_id, (doc, sync::State::new()));
            }
        }
        let Some((doc, state)) = self
            .sessions
            .get_mut(&conn)
            .and_then(|s| s.repairs.get_mut(&doc_id))
        else {
            return Err(Refusal::new(ErrorCode::Protocol, "no repair state"));
        };
        let mut learnt = Vec::new();
        if let Some(bytes) = message {
            let before = doc.get_heads();
            let msg = sync::Message::decode(&bytes)
                .map_err(|e| Refusal::new(ErrorCode::BadChange, e.to_string()))?;
            doc.receive_sync_message(state, msg)
                .map_err(|e| Refusal::new(ErrorCode::BadChange, e.to_string()))?;
            learnt = doc.get_changes(&before);
        }
        let reply = doc.generate_sync_message(state).map(|m| m.encode());
        let heads = doc.get_heads();
        let finished = reply.is_none();
        if finished && let Some(s) = self.sessions.get_mut(&conn) {
            s.repairs.remove(&doc_id);
        }
        if !learnt.is_empty() {
            if !may_write {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    "this token is read-only",
                ));
            }
            self.ingest(
                conn,
                replica,
                vec![IngestDoc {
                    doc: doc_id,
                    company: company.clone(),
                    changes: learnt,
                }],
                out,
            )?;
        }
        if finished {
            // The document was loaded whole, so its heads are exact: repair the index too.
            self.store.set_heads(&doc_id, &heads).map_err(internal)?;
        }
        out.push(Output::Send(
            conn,
            encode(&Frame::DocSync {
                company,
                doc: doc_id,
                message: reply,
            }),
        ));
        Ok(())
    }
}
