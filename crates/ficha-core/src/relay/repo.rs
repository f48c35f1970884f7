//! automerge-repo peers (the relay's `/automerge` endpoint): stock JavaScript and samod clients
//! open, edit and watch Ficha records with automerge-repo's own protocol ([`crate::repo_wire`]).
//!
//! A peer is authorised by a Ficha token when it connects (stock clients cannot send headers,
//! so the driver takes it from the URL). Each document it opens gets its own sync state against
//! the relay's copy. Changes it sends are admitted as an upload is (parsed, checksummed, applied
//! under containment, within the token's companies), with two rules of their own: each actor
//! belongs to the token name that first wrote with it, and the record keeps its identity and
//! shape ([`super::shape`]). They are stored in the company's feed before the reply that
//! carries the relay's new heads, which a stock client takes as the acknowledgement. Anything
//! refused ends the session with an `error`: a client whose change was dropped quietly would
//! stay diverged forever.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, Change, ChangeHash};

use crate::admit::WarmDoc;
use crate::change;
use crate::error::{ChangeError, TokenError};
use crate::frame::{ErrorCode, MAX_CHANGE_BYTES};
use crate::guard::contain;
use crate::ids::{Company, DocId, ReplicaId};
use crate::repo_wire::{DocMessage, PROTOCOL_VERSION, PeerMetadata, RepoMessage};
use crate::token::{self, Claims};

use super::shape::Shape;
use super::upload::unloadable;
use super::{ConnId, IngestDoc, Output, Refusal, Relay, RelayStore, internal};

/// An automerge-repo peer's session.
pub(super) struct RepoPeer {
    pub(super) claims: Claims,
    /// Its peer id, from its `join`.
    peer_id: String,
    /// The documents it has open, each with its sync state.
    docs: BTreeMap<DocId, sync::State>,
    /// Per document, changes it sent whose history has not arrived yet. Automerge's sync
    /// sends a change before its dependencies when the receiver's summary was empty, and
    /// expects them to be asked for; they wait here (never stored) until they arrive.
    waiting: BTreeMap<DocId, Vec<Change>>,
    pub(super) connected_at: u64,
    pub(super) last_seen: u64,
}

/// The automerge-repo sessions that have one document open.
pub(super) struct Watch {
    /// The document's company.
    pub(super) company: Company,
    /// The sessions.
    pub(super) conns: BTreeSet<ConnId>,
}

/// The origin recorded in the feed for changes of a token name's automerge-repo peers.
fn origin_of(name: &str) -> ReplicaId {
    let mut hasher = blake3::Hasher::new_derive_key("ficha 2026 automerge-repo origin");
    hasher.update(name.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    ReplicaId(id)
}

/// Every change a sync message carries, whether as change chunks or as a whole saved document
/// (what automerge sends when it shares most of a document).
fn changes_in(message: &sync::Message) -> Result<Vec<Change>, ChangeError> {
    let mut out = Vec::new();
    for chunk in message.changes.iter() {
        if chunk.len() > MAX_CHANGE_BYTES * 4 {
            return Err(ChangeError::TooLarge {
                size: chunk.len(),
                limit: MAX_CHANGE_BYTES * 4,
            });
        }
        out.extend(change::split_any(chunk)?);
    }
    Ok(out)
}

/// Changes waiting for their history, at most, per connection.
const MAX_WAITING: usize = 4096;

/// Splits `changes` into those whose history the document holds or that come before them
/// here (in an order they apply), and those still waiting for a dependency.
fn ready_in_order(doc: &WarmDoc, mut changes: Vec<Change>) -> (Vec<Change>, Vec<Change>) {
    let mut ready: Vec<Change> = Vec::new();
    let mut known: HashSet<ChangeHash> = HashSet::new();
    loop {
        let before = changes.len();
        changes.retain(|c| {
            if c.deps().iter().all(|d| doc.has(d) || known.contains(d)) {
                known.insert(c.hash());
                ready.push(c.clone());
                false
            } else {
                true
            }
        });
        if changes.len() == before {
            return (ready, changes);
        }
    }
}

/// The dependencies of `waiting` that neither the document nor `waiting` holds: what to ask for.
fn missing_history(doc: &WarmDoc, waiting: &[Change]) -> Vec<ChangeHash> {
    let held: HashSet<ChangeHash> = waiting.iter().map(Change::hash).collect();
    let mut need: Vec<ChangeHash> = waiting
        .iter()
        .flat_map(|c| c.deps().iter().copied())
        .filter(|d| !doc.has(d) && !held.contains(d))
        .collect();
    need.sort();
    need.dedup();
    need
}

/// Whether a change's actor may be written through `/automerge`: Ficha's replicas write
/// 20-byte actors that name them, which a token of this endpoint never speaks for.
fn is_ficha_actor(actor: &ActorId) -> bool {
    actor.to_bytes().len() == 20
}

impl<S: RelayStore> Relay<S> {
    /// The peer id the relay answers automerge-repo peers with.
    fn repo_peer_id(&self) -> String {
        format!("ficha-relay-{}", self.store.epoch())
    }

    /// A connection to `/automerge` opened with `token` (from its URL) at `now`: accepted, or
    /// told why not with an `error` message and closed (stock clients crash on a refused
    /// upgrade, but read an error message).
    pub fn connect_repo(&mut self, conn: ConnId, token: &str, now: u64) -> Vec<Output> {
        self.now = now;
        let mut out = Vec::new();
        match self.check_repo_token(token, now) {
            Ok(claims) => {
                tracing::info!(conn, replica = %claims.replica, token = %token::redact(token), "automerge-repo peer connected");
                self.peers.insert(
                    conn,
                    RepoPeer {
                        claims,
                        peer_id: String::new(),
                        docs: BTreeMap::new(),
                        waiting: BTreeMap::new(),
                        connected_at: now,
                        last_seen: now,
                    },
                );
            }
            Err(refusal) => self.refuse_repo(conn, refusal, &mut out),
        }
        self.count_sent(&out);
        out
    }

    fn check_repo_token(&self, token: &str, now: u64) -> Result<Claims, Refusal> {
        let claims = self.verified(token, now)?;
        let open = self
            .peers
            .values()
            .filter(|p| p.claims.replica == claims.replica)
            .count();
        if open >= self.cfg.max_repo_peers_per_name {
            return Err(Refusal::new(
                ErrorCode::Limit,
                format!(
                    "{:?} already holds {open} automerge-repo connections; close one and retry",
                    claims.replica
                ),
            ));
        }
        Ok(claims)
    }

    /// Tells an automerge-repo peer why its session ends, and ends it.
    fn refuse_repo(&mut self, conn: ConnId, refusal: Refusal, out: &mut Vec<Output>) {
        self.stats.refused += 1;
        tracing::warn!(conn, code = ?refusal.code, reason = %refusal.message, "refusing an automerge-repo peer");
        self.log_refusal(conn, None, refusal.code, &refusal.message);
        let message = RepoMessage::Error {
            message: refusal.message,
        };
        out.push(Output::Send(conn, message.encode().into()));
        out.push(Output::Close(conn));
        self.disconnect(conn);
    }

    /// Ends every automerge-repo session `which` selects, telling each why.
    pub(super) fn end_peers(
        &mut self,
        which: impl Fn(&RepoPeer) -> bool,
        why: &TokenError,
    ) -> Vec<Output> {
        let conns: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(_, p)| which(p))
            .map(|(c, _)| *c)
            .collect();
        let mut out = Vec::new();
        for conn in conns {
            self.refuse_repo(
                conn,
                Refusal::new(ErrorCode::Unauthorized, why.to_string()),
                &mut out,
            );
        }
        self.count_sent(&out);
        out
    }

    /// Forgets an automerge-repo session.
    pub(super) fn disconnect_peer(&mut self, conn: ConnId) {
        if let Some(peer) = self.peers.remove(&conn) {
            for doc in peer.docs.keys() {
                if let Some(w) = self.watchers.get_mut(doc) {
                    w.conns.remove(&conn);
                    if w.conns.is_empty() {
                        self.watchers.remove(doc);
                    }
                }
            }
        }
    }

    /// automerge-repo sessions open now.
    pub fn repo_peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Documents automerge-repo peers have open, counted once each.
    pub fn repo_open_docs(&self) -> usize {
        self.watchers.len()
    }

    /// Handles one message from an automerge-repo peer at `now`.
    pub fn receive_repo(&mut self, conn: ConnId, bytes: &[u8], now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.now = now;
        self.stats.frames_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let Some(peer) = self.peers.get_mut(&conn) else {
            return out;
        };
        peer.last_seen = now;
        let result = if now >= peer.claims.expires_at {
            Err(TokenError::Expired.into())
        } else {
            match RepoMessage::decode(bytes) {
                Ok(message) => self.on_repo_message(conn, message, &mut out),
                Err(e) => Err(Refusal::new(ErrorCode::Protocol, e.to_string())),
            }
        };
        if let Err(refusal) = result {
            self.refuse_repo(conn, refusal, &mut out);
        }
        self.count_sent(&out);
        out
    }

    fn on_repo_message(
        &mut self,
        conn: ConnId,
        message: RepoMessage,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        match message {
            RepoMessage::Join {
                sender, versions, ..
            } => {
                if !versions.iter().any(|v| v == PROTOCOL_VERSION) {
                    return Err(Refusal::new(
                        ErrorCode::Protocol,
                        format!(
                            "unsupported protocol version: this relay speaks {PROTOCOL_VERSION}"
                        ),
                    ));
                }
                let peer = self.repo_peer_id();
                if let Some(p) = self.peers.get_mut(&conn) {
                    p.peer_id.clone_from(&sender);
                }
                let answer = RepoMessage::Peer {
                    sender: peer,
                    target: sender,
                    version: PROTOCOL_VERSION.into(),
                    metadata: PeerMetadata {
                        storage_id: None,
                        is_ephemeral: false,
                    },
                };
                out.push(Output::Send(conn, answer.encode().into()));
                Ok(())
            }
            RepoMessage::Request(m) | RepoMessage::Sync(m) => self.on_repo_sync(conn, m, out),
            RepoMessage::Ephemeral {
                doc,
                count,
                session,
            } => {
                self.relay_ephemeral(conn, doc, count, session, out);
                Ok(())
            }
            RepoMessage::Leave { .. } => {
                out.push(Output::Close(conn));
                self.disconnect(conn);
                Ok(())
            }
            RepoMessage::Error { message } => {
                tracing::info!(conn, %message, "an automerge-repo peer reported an error");
                out.push(Output::Close(conn));
                self.disconnect(conn);
                Ok(())
            }
            // Heads and subscription gossip, a peer's own doc-unavailable, newer types.
            RepoMessage::DocUnavailable { .. } | RepoMessage::Peer { .. } => Ok(()),
            RepoMessage::Other { .. } => Ok(()),
        }
    }

    /// The company of a document this peer may see, or None: a document outside the token's
    /// companies is answered exactly as one that does not exist.
    fn repo_doc(&self, conn: ConnId, document: &str) -> Result<Option<(DocId, Company)>, Refusal> {
        let Ok(doc) = DocId::from_automerge(document) else {
            return Ok(None);
        };
        let Some(peer) = self.peers.get(&conn) else {
            return Ok(None);
        };
        Ok(self
            .store
            .doc_company(&doc)
            .map_err(internal)?
            .filter(|c| peer.claims.companies.contains(c))
            .map(|c| (doc, c)))
    }

    fn send_sync(&self, conn: ConnId, document: &str, data: Vec<u8>, out: &mut Vec<Output>) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        let message = RepoMessage::Sync(DocMessage {
            sender: self.repo_peer_id(),
            target: peer.peer_id.clone(),
            document: document.to_string(),
            data,
        });
        out.push(Output::Send(conn, message.encode().into()));
    }

    fn on_repo_sync(
        &mut self,
        conn: ConnId,
        m: DocMessage,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        if let Some(p) = self.peers.get_mut(&conn)
            && p.peer_id.is_empty()
        {
            p.peer_id.clone_from(&m.sender);
        }
        let Some((doc, company)) = self.repo_doc(conn, &m.document)? else {
            let unavailable = RepoMessage::DocUnavailable {
                sender: self.repo_peer_id(),
                target: m.sender,
                document: m.document,
            };
            out.push(Output::Send(conn, unavailable.encode().into()));
            return Ok(());
        };
        let Some(peer) = self.peers.get(&conn) else {
            return Ok(());
        };
        if !peer.docs.contains_key(&doc) && peer.docs.len() >= self.cfg.max_repo_docs_per_peer {
            return Err(Refusal::new(
                ErrorCode::Limit,
                format!(
                    "a connection may hold {} documents open; close some first",
                    self.cfg.max_repo_docs_per_peer
                ),
            ));
        }
        let write = peer.claims.write;
        let name = peer.claims.replica.clone();
        let mut message = contain(|| sync::Message::decode(&m.data))
            .map_err(|e| Refusal::new(ErrorCode::BadChange, e))?
            .map_err(|e| Refusal::new(ErrorCode::BadChange, e.to_string()))?;
        let mut incoming = changes_in(&message)?;
        let (mut warm, cached) = self.warm_for_read(&doc)?;
        if let Some(p) = self.peers.get_mut(&conn) {
            incoming.extend(p.waiting.remove(&doc).unwrap_or_default());
        }
        let mut seen = HashSet::new();
        incoming.retain(|c| !warm.has(&c.hash()) && seen.insert(c.hash()));
        let (ready, waiting) = ready_in_order(&warm, incoming);
        let changes_something = !ready.is_empty() || !waiting.is_empty();
        if !write && changes_something {
            if cached {
                self.cache.put(doc, warm);
            }
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!(
                    "this token is read-only: it may read and watch document {} but not change it; ask for a token with write access",
                    m.document
                ),
            ));
        }
        let admitted = !ready.is_empty();
        if admitted {
            warm = self.admit_repo(conn, &name, doc, company.clone(), ready, warm, out)?;
        }
        let need = missing_history(&warm, &waiting);
        if let Some(p) = self.peers.get_mut(&conn) {
            let held: usize = p.waiting.values().map(Vec::len).sum();
            if held + waiting.len() > MAX_WAITING {
                return Err(Refusal::new(
                    ErrorCode::Limit,
                    format!(
                        "more than {MAX_WAITING} changes sent before their history; send the history first"
                    ),
                ));
            }
            if !waiting.is_empty() {
                p.waiting.insert(doc, waiting);
            }
        }
        // The changes are in the relay's copy now (or were already): the sync state only has
        // to learn the peer's heads, needs and bloom filter.
        message.changes = sync::ChunkList::empty();
        let Some(peer) = self.peers.get_mut(&conn) else {
            return Ok(());
        };
        let state = peer.docs.entry(doc).or_default();
        self.watchers
            .entry(doc)
            .or_insert_with(|| Watch {
                company,
                conns: BTreeSet::new(),
            })
            .conns
            .insert(conn);
        let d = warm.doc_mut();
        let reply = contain(|| {
            d.receive_sync_message(state, message).map(|()| {
                d.generate_sync_message(state).map(|mut m| {
                    // Ask for the history of the changes that wait (Automerge asks only for
                    // what its own queue lacks, and these are not in it).
                    m.need.extend(need.iter().copied());
                    m.need.sort();
                    m.need.dedup();
                    m.encode()
                })
            })
        });
        if reply.is_err() {
            // Automerge panicked part way: this copy may be half-updated (the cache drops it).
            warm.poison();
        }
        // A document written here stays warm, as an uploaded one does.
        if cached || admitted {
            self.cache.put(doc, warm);
        }
        match reply {
            Ok(Ok(Some(data))) => self.send_sync(conn, &m.document, data, out),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => return Err(Refusal::new(ErrorCode::BadChange, e.to_string())),
            Err(e) => return Err(Refusal::new(ErrorCode::BadChange, e)),
        }
        if admitted {
            self.push_repo(doc, Some(conn), out);
        }
        Ok(())
    }

    /// The relay's copy of a document it holds, to sync from, and whether it was in memory
    /// already. Reads of automerge-repo peers do not keep a document in memory when they
    /// loaded it: an Automerge document in memory is tens of times its stored size, and a
    /// thousand records open by tablets would otherwise take the cache over (measured in
    /// ficha-bench's `automerge_endpoint`). Loading again per message costs less.
    fn warm_for_read(&mut self, doc: &DocId) -> Result<(WarmDoc, bool), Refusal> {
        if let Some(w) = self.take_warm(doc)? {
            return Ok((w, true));
        }
        self.load_warm(doc)?
            .map(|w| (w, false))
            .map_err(|e| Refusal::new(ErrorCode::Internal, unloadable(doc, &e)))
    }

    /// Checks, applies and stores a peer's new changes to one document, pushing them to the
    /// company's subscribers; returns the document with them. On refusal the document is
    /// dropped from memory (it may hold part of them) and reloads from storage when next used.
    #[allow(clippy::too_many_arguments)]
    fn admit_repo(
        &mut self,
        conn: ConnId,
        name: &str,
        doc: DocId,
        company: Company,
        changes: Vec<Change>,
        mut warm: WarmDoc,
        out: &mut Vec<Output>,
    ) -> Result<WarmDoc, Refusal> {
        let mut actors: Vec<ActorId> = Vec::new();
        for c in &changes {
            let size = c.raw_bytes().len();
            if size > MAX_CHANGE_BYTES {
                return Err(Refusal::new(
                    ErrorCode::Limit,
                    ChangeError::TooLarge {
                        size,
                        limit: MAX_CHANGE_BYTES,
                    }
                    .to_string(),
                ));
            }
            if is_ficha_actor(c.actor_id()) {
                return Err(Refusal::new(
                    ErrorCode::BadChange,
                    format!(
                        "a change under actor {} speaks for a Ficha replica; automerge-repo clients write under their own actors",
                        c.actor_id()
                    ),
                ));
            }
            if !actors.contains(c.actor_id()) {
                actors.push(c.actor_id().clone());
            }
        }
        if let Some(taken) = self.store.bind_actors(name, &actors).map_err(internal)? {
            return Err(Refusal::new(
                ErrorCode::BadChange,
                format!("actor {taken} belongs to another token's clients"),
            ));
        }
        let before = Shape::of(warm.doc());
        let admitted = warm.admit(changes)?;
        before
            .check(&Shape::of(warm.doc()))
            .map_err(|why| Refusal::new(ErrorCode::BadChange, format!("document {doc}: {why}")))?;
        if let Some(why) = self.parked_over(&company, 0, admitted.parked.len())? {
            return Err(Refusal::new(ErrorCode::Limit, why));
        }
        let count = admitted.applied.len();
        self.stats.parked += admitted.parked.len() as u64;
        let ingest = IngestDoc {
            doc,
            company: company.clone(),
            applied: admitted.applied,
            parked: admitted.parked,
            unparked: admitted
                .released
                .into_iter()
                .chain(admitted.dropped)
                .collect(),
            uploader_holds: false,
        };
        let entries = self
            .store
            .ingest(origin_of(name), vec![ingest])
            .map_err(internal)?;
        self.stats.changes_stored += count as u64;
        let entries = entries.into_iter().map(|e| (e.entry, false)).collect();
        self.push_live(conn, company, entries, out);
        Ok(warm)
    }

    /// Sends each automerge-repo peer that has `doc` open (but `except`) what it lacks.
    pub(super) fn push_repo(&mut self, doc: DocId, except: Option<ConnId>, out: &mut Vec<Output>) {
        let Some(conns) = self.watchers.get(&doc).map(|w| w.conns.clone()) else {
            return;
        };
        let Ok((mut warm, cached)) = self.warm_for_read(&doc) else {
            return;
        };
        let document = doc.automerge_id();
        for conn in conns.into_iter().filter(|c| Some(*c) != except) {
            let Some(state) = self.peers.get_mut(&conn).and_then(|p| p.docs.get_mut(&doc)) else {
                continue;
            };
            let d = warm.doc_mut();
            match contain(|| d.generate_sync_message(state)) {
                Ok(Some(m)) => self.send_sync(conn, &document, m.encode(), out),
                Ok(None) => {}
                Err(_) => warm.poison(),
            }
        }
        if cached {
            self.cache.put(doc, warm);
        }
    }

    /// Passes an ephemeral message (presence, cursors) to the other peers that have its
    /// document open; never stored.
    fn relay_ephemeral(
        &mut self,
        conn: ConnId,
        doc: DocMessage,
        count: u64,
        session: String,
        out: &mut Vec<Output>,
    ) {
        let Ok(id) = DocId::from_automerge(&doc.document) else {
            return;
        };
        let opened = self
            .peers
            .get(&conn)
            .is_some_and(|p| p.docs.contains_key(&id));
        let Some(watch) = self.watchers.get(&id).filter(|_| opened) else {
            return;
        };
        let others: BTreeSet<ConnId> = watch.conns.iter().copied().filter(|c| *c != conn).collect();
        for other in others {
            let Some(peer) = self.peers.get(&other) else {
                continue;
            };
            let message = RepoMessage::Ephemeral {
                doc: DocMessage {
                    sender: doc.sender.clone(),
                    target: peer.peer_id.clone(),
                    document: doc.document.clone(),
                    data: doc.data.clone(),
                },
                count,
                session: session.clone(),
            };
            out.push(Output::Send(other, message.encode().into()));
        }
    }
}
