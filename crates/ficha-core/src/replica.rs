//! The replica side of a sync session, as a pure state machine.
//!
//! The driver calls [`ReplicaSession::start`], feeds every received frame to
//! [`ReplicaSession::receive`], calls [`ReplicaSession::local_change`] after a local edit, and
//! sends whatever frames come back. All durable state lives in the [`ReplicaStore`]; the session
//! itself can be dropped at any moment (crash, disconnect) and a new one resumes from the store.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, Change, ChangeHash};
use thiserror::Error;

use crate::digest::{DocDigests, bucket_digests, bucket_of};
use crate::frame::{ErrorFrame, FeedPage, Frame, Hello, Refusals, RefusedDoc, Upload};
use crate::guard::contain;
use crate::ids::{Company, DocId, RelayEpoch, ReplicaId, Seq, replica_of_actor};

/// What a replica must persist for sync. Every mutating call is one durable transaction.
pub trait ReplicaStore {
    /// The store's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The relay epoch the checkpoints belong to, if the replica ever synced.
    fn epoch(&self) -> Result<Option<RelayEpoch>, Self::Error>;
    /// Adopts a new relay epoch and forgets every checkpoint of the old one; with `repair`,
    /// every company must reconcile before it follows the feed again (durably, so a session
    /// that dies mid-repair does not skip it).
    fn set_epoch(&mut self, epoch: RelayEpoch, repair: bool) -> Result<(), Self::Error>;
    /// True while the company still owes a repair after an epoch change.
    fn needs_repair(&self, company: &Company) -> Result<bool, Self::Error>;
    /// The last feed position applied for a company (0 if none).
    fn checkpoint(&self, company: &Company) -> Result<Seq, Self::Error>;
    /// Records a feed position reached without applying a page; ends a pending repair.
    fn set_checkpoint(&mut self, company: &Company, seq: Seq) -> Result<(), Self::Error>;
    /// The oldest outbox entries, up to the given bounds, as one upload.
    fn outbox_batch(
        &self,
        max_bytes: usize,
        max_changes: usize,
    ) -> Result<Option<Upload>, Self::Error>;
    /// Drops outbox entries up to `upto`: the relay stored them durably.
    fn ack_outbox(&mut self, upto: u64) -> Result<(), Self::Error>;
    /// Applies a feed page and moves the company checkpoint to `page.upto`, atomically.
    fn apply_feed(&mut self, page: &FeedPage) -> Result<(), Self::Error>;
    /// Every document of a company with its heads digest, sorted by id, without loading any.
    fn doc_digests(&self, company: &Company) -> Result<DocDigests, Self::Error>;
    /// Loads one document.
    fn load_doc(&self, doc: &DocId) -> Result<Option<Automerge>, Self::Error>;
    /// Stores changes learnt through repair (not added to the outbox).
    fn apply_changes(
        &mut self,
        company: &Company,
        doc: &DocId,
        changes: Vec<Change>,
    ) -> Result<(), Self::Error>;
    /// Moves every outbox entry of these documents to the list of refused changes, with the
    /// relay's reason: sending them again cannot succeed, and they must not hold up the rest.
    fn refuse(&mut self, refused: &[RefusedDoc]) -> Result<(), Self::Error>;
    /// Queues this replica's own changes that the relay lacks (found by repair) for upload, in
    /// the order given, replacing the document's entries already in the outbox (which are
    /// among them).
    fn requeue(
        &mut self,
        company: &Company,
        doc: &DocId,
        changes: Vec<Change>,
    ) -> Result<(), Self::Error>;
    /// Sets a document aside as one whose data from the relay could not be applied.
    fn quarantine(
        &mut self,
        company: &Company,
        doc: &DocId,
        reason: &str,
    ) -> Result<(), Self::Error>;
    /// The company's documents in quarantine, to retry by repair.
    fn quarantined(&self, company: &Company) -> Result<Vec<DocId>, Self::Error>;
    /// Ends a document's quarantine once a repair brought it what the relay has.
    fn unquarantine(&mut self, doc: &DocId) -> Result<(), Self::Error>;
}

/// Settings of a replica session.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// This replica.
    pub replica: ReplicaId,
    /// Its token.
    pub token: String,
    /// Largest upload batch in bytes of changes.
    pub max_upload_bytes: usize,
    /// Largest upload batch in changes.
    pub max_upload_changes: usize,
    /// Documents repaired at once.
    pub repair_concurrency: usize,
}

impl ReplicaConfig {
    /// Defaults sized for a branch link.
    pub fn new(replica: ReplicaId, token: String) -> Self {
        Self {
            replica,
            token,
            max_upload_bytes: 1024 * 1024,
            max_upload_changes: 5_000,
            repair_concurrency: 32,
        }
    }
}

/// Why a session must end.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SessionError<E: std::error::Error + 'static> {
    /// The relay refused the session or a request.
    #[error("relay refused: {}", .0.message)]
    Refused(ErrorFrame),
    /// The relay broke the protocol (e.g. a page that does not follow the checkpoint).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The local store failed.
    #[error("local store: {0}")]
    Store(#[source] E),
}

/// Where one company stands in this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompanyPhase {
    /// Comparing digests with the relay after an epoch change.
    Reconciling,
    /// Pulling the feed from the checkpoint.
    CatchingUp,
    /// Up to date; the relay pushes new entries.
    Live,
}

struct Repair {
    queue: VecDeque<DocId>,
    active: BTreeMap<DocId, (Automerge, sync::State)>,
    /// The feed head to resume from once done; None for a retry of quarantined documents,
    /// which moves no checkpoint and holds up no upload.
    head: Option<Seq>,
}

/// One replica ↔ relay session.
pub struct ReplicaSession {
    cfg: ReplicaConfig,
    welcomed: bool,
    epoch: Option<RelayEpoch>,
    grants: BTreeMap<Company, bool>,
    phases: BTreeMap<Company, CompanyPhase>,
    cursors: BTreeMap<Company, Seq>,
    repairs: BTreeMap<Company, Repair>,
    upload_in_flight: Option<u64>,
    outbox_empty: bool,
}

type Out<E> = Result<Vec<Frame>, SessionError<E>>;

impl ReplicaSession {
    /// A session that has not said hello yet.
    pub fn new(cfg: ReplicaConfig) -> Self {
        Self {
            cfg,
            welcomed: false,
            epoch: None,
            grants: BTreeMap::new(),
            phases: BTreeMap::new(),
            cursors: BTreeMap::new(),
            repairs: BTreeMap::new(),
            upload_in_flight: None,
            outbox_empty: false,
        }
    }

    /// The first frame to send.
    pub fn start(&mut self) -> Vec<Frame> {
        vec![Frame::Hello(Hello {
            replica: self.cfg.replica,
            token: self.cfg.token.clone(),
        })]
    }

    /// The relay's epoch once welcomed.
    pub fn epoch(&self) -> Option<RelayEpoch> {
        self.epoch
    }

    /// The companies granted, with their write flag.
    pub fn grants(&self) -> &BTreeMap<Company, bool> {
        &self.grants
    }

    /// Each company's phase.
    pub fn phases(&self) -> &BTreeMap<Company, CompanyPhase> {
        &self.phases
    }

    /// True when every granted company is live and the outbox is fully acknowledged.
    pub fn is_synced(&self) -> bool {
        self.welcomed
            && self.upload_in_flight.is_none()
            && self.repairs.is_empty()
            && (self.outbox_empty || !self.may_write_anything())
            && self.phases.values().all(|p| *p == CompanyPhase::Live)
    }

    fn may_write_anything(&self) -> bool {
        self.grants.values().any(|w| *w)
    }

    /// Call after a local edit was committed to the store: uploads it if the session is idle.
    pub fn local_change<S: ReplicaStore>(&mut self, store: &S) -> Out<S::Error> {
        self.outbox_empty = false;
        self.next_upload(store)
    }

    /// Handles one frame from the relay and returns the frames to send back.
    pub fn receive<S: ReplicaStore>(&mut self, store: &mut S, frame: Frame) -> Out<S::Error> {
        match frame {
            Frame::Welcome(w) if !self.welcomed => self.on_welcome(store, w.epoch, w.grants),
            Frame::Error(e) if e.fatal => Err(SessionError::Refused(e)),
            Frame::Error(e) => {
                tracing::warn!(code = ?e.code, message = %e.message, "relay reported an error");
                Ok(Vec::new())
            }
            _ if !self.welcomed => Err(SessionError::Protocol("frame before welcome".into())),
            Frame::Feed(page) => self.on_feed(store, page),
            Frame::CaughtUp { company, upto } => self.on_caught_up(company, upto),
            Frame::Ack { upto } => self.on_ack(store, upto),
            Frame::Refused(r) => self.on_refused(store, r),
            Frame::ReconcileDiff {
                company,
                head,
                buckets,
                docs,
            } => self.on_diff(store, company, head, &buckets, docs),
            Frame::DocSync {
                company,
                doc,
                message,
            } => self.on_doc_sync(store, company, doc, message),
            other => Err(SessionError::Protocol(format!(
                "unexpected {} frame from relay",
                other.kind()
            ))),
        }
    }

    fn on_welcome<S: ReplicaStore>(
        &mut self,
        store: &mut S,
        epoch: RelayEpoch,
        grants: Vec<crate::frame::Grant>,
    ) -> Out<S::Error> {
        self.welcomed = true;
        self.epoch = Some(epoch);
        self.grants = grants.into_iter().map(|g| (g.company, g.write)).collect();
        let known = store.epoch().map_err(SessionError::Store)?;
        if known != Some(epoch) {
            // Checkpoints of another relay database mean nothing here, and what this replica
            // holds may be what that database lost.
            store
                .set_epoch(epoch, known.is_some())
                .map_err(SessionError::Store)?;
        }
        let mut out = Vec::new();
        let companies: Vec<Company> = self.grants.keys().cloned().collect();
        for company in companies {
            if store.needs_repair(&company).map_err(SessionError::Store)? {
                tracing::info!(%company, "relay epoch changed: reconciling by digests");
                let digests = store.doc_digests(&company).map_err(SessionError::Store)?;
                let buckets = bucket_digests(digests.iter().map(|(d, h)| (d, h)));
                self.phases
                    .insert(company.clone(), CompanyPhase::Reconciling);
                out.push(Frame::Reconcile { company, buckets });
            } else {
                out.push(self.subscribe(store, company.clone())?);
                let quarantined = store.quarantined(&company).map_err(SessionError::Store)?;
                if !quarantined.is_empty() {
                    tracing::info!(%company, docs = quarantined.len(), "retrying quarantined documents by repair");
                    self.repairs.insert(
                        company.clone(),
                        Repair {
                            queue: quarantined.into(),
                            active: BTreeMap::new(),
                            head: None,
                        },
                    );
                    out.extend(self.pump_repair(store, company)?);
                }
            }
        }
        out.extend(self.next_upload(store)?);
        Ok(out)
    }

    fn subscribe<S: ReplicaStore>(
        &mut self,
        store: &S,
        company: Company,
    ) -> Result<Frame, SessionError<S::Error>> {
        let after = store.checkpoint(&company).map_err(SessionError::Store)?;
        self.cursors.insert(company.clone(), after);
        self.phases
            .insert(company.clone(), CompanyPhase::CatchingUp);
        Ok(Frame::Subscribe { company, after })
    }

    fn on_feed<S: ReplicaStore>(&mut self, store: &mut S, page: FeedPage) -> Out<S::Error> {
        let cursor = self.cursors.get(&page.company).copied();
        if cursor != Some(page.from) || page.upto < page.from {
            // Applying a page that does not start at our checkpoint could skip entries for
            // good; end the session and resume from the stored checkpoint instead.
            return Err(SessionError::Protocol(format!(
                "feed page {}..{} for {} does not follow checkpoint {:?}",
                page.from, page.upto, page.company, cursor
            )));
        }
        store.apply_feed(&page).map_err(SessionError::Store)?;
        self.cursors.insert(page.company.clone(), page.upto);
        Ok(vec![Frame::PageAck {
            company: page.company,
            upto: page.upto,
        }])
    }

    fn on_caught_up<E: std::error::Error>(&mut self, company: Company, upto: Seq) -> Out<E> {
        if self.cursors.get(&company) != Some(&upto) {
            return Err(SessionError::Protocol(format!(
                "caught up at {upto} for {company} but checkpoint is {:?}",
                self.cursors.get(&company)
            )));
        }
        self.phases.insert(company, CompanyPhase::Live);
        Ok(Vec::new())
    }

    fn on_ack<S: ReplicaStore>(&mut self, store: &mut S, upto: u64) -> Out<S::Error> {
        if self.upload_in_flight != Some(upto) {
            // A duplicated or stale ack: acknowledging again is harmless, but nothing moves.
            tracing::debug!(upto, "ignoring ack that matches no upload in flight");
            return Ok(Vec::new());
        }
        store.ack_outbox(upto).map_err(SessionError::Store)?;
        self.upload_in_flight = None;
        self.next_upload(store)
    }

    fn on_refused<S: ReplicaStore>(&mut self, store: &mut S, r: Refusals) -> Out<S::Error> {
        if self.upload_in_flight.is_none_or(|u| r.upto > u) {
            tracing::debug!(
                upto = r.upto,
                "ignoring refusals that match no upload in flight"
            );
            return Ok(Vec::new());
        }
        for d in &r.docs {
            tracing::warn!(doc = %d.doc, code = ?d.code, reason = %d.message, "the relay refused a document's changes");
        }
        store.refuse(&r.docs).map_err(SessionError::Store)?;
        Ok(Vec::new())
    }

    fn next_upload<S: ReplicaStore>(&mut self, store: &S) -> Out<S::Error> {
        // During a repair the relay may lack the history our outbox changes depend on; the
        // repair finds our own changes it lacks and queues them first, so uploads wait until
        // it is done.
        let repairing = self.repairs.values().any(|r| r.head.is_some())
            || self
                .phases
                .values()
                .any(|p| *p == CompanyPhase::Reconciling);
        if !self.welcomed
            || repairing
            || self.upload_in_flight.is_some()
            || !self.may_write_anything()
        {
            return Ok(Vec::new());
        }
        match store
            .outbox_batch(self.cfg.max_upload_bytes, self.cfg.max_upload_changes)
            .map_err(SessionError::Store)?
        {
            Some(batch) => {
                self.upload_in_flight = Some(batch.upto);
                Ok(vec![Frame::Upload(batch)])
            }
            None => {
                self.outbox_empty = true;
                Ok(Vec::new())
            }
        }
    }

    fn on_diff<S: ReplicaStore>(
        &mut self,
        store: &mut S,
        company: Company,
        head: Seq,
        buckets: &[u8],
        theirs: Vec<(DocId, [u8; 32])>,
    ) -> Out<S::Error> {
        if self.phases.get(&company) != Some(&CompanyPhase::Reconciling) {
            return Err(SessionError::Protocol(format!(
                "reconcile diff for {company}, which is not reconciling"
            )));
        }
        let wanted: BTreeSet<u8> = buckets.iter().copied().collect();
        let mine: BTreeMap<DocId, [u8; 32]> = store
            .doc_digests(&company)
            .map_err(SessionError::Store)?
            .into_iter()
            .filter(|(d, _)| wanted.contains(&bucket_of(d)))
            .collect();
        let theirs: BTreeMap<DocId, [u8; 32]> = theirs.into_iter().collect();
        // Quarantined documents are repaired whatever their digests say: what the relay has
        // may now apply.
        let quarantined: BTreeSet<DocId> = store
            .quarantined(&company)
            .map_err(SessionError::Store)?
            .into_iter()
            .collect();
        let differing: VecDeque<DocId> = mine
            .keys()
            .chain(theirs.keys())
            .chain(quarantined.iter())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|d| mine.get(d) != theirs.get(d) || quarantined.contains(d))
            .copied()
            .collect();
        tracing::info!(%company, docs = differing.len(), "repairing documents that differ");
        self.repairs.insert(
            company.clone(),
            Repair {
                queue: differing,
                active: BTreeMap::new(),
                head: Some(head),
            },
        );
        self.pump_repair(store, company)
    }

    fn pump_repair<S: ReplicaStore>(&mut self, store: &mut S, company: Company) -> Out<S::Error> {
        let mut out = Vec::new();
        let Some(repair) = self.repairs.get_mut(&company) else {
            return Ok(out);
        };
        while repair.active.len() < self.cfg.repair_concurrency {
            let Some(doc_id) = repair.queue.pop_front() else {
                break;
            };
            let doc = store
                .load_doc(&doc_id)
                .map_err(SessionError::Store)?
                .unwrap_or_default();
            let mut state = sync::State::new();
            let message = doc.generate_sync_message(&mut state).map(|m| m.encode());
            repair.active.insert(doc_id, (doc, state));
            out.push(Frame::DocSync {
                company: company.clone(),
                doc: doc_id,
                message,
            });
        }
        if repair.active.is_empty() && repair.queue.is_empty() {
            let head = repair.head;
            self.repairs.remove(&company);
            match head {
                Some(head) => {
                    store
                        .set_checkpoint(&company, head)
                        .map_err(SessionError::Store)?;
                    tracing::info!(%company, head, "repair finished; following the feed");
                    out.push(self.subscribe(store, company)?);
                }
                None => tracing::info!(%company, "quarantined documents retried"),
            }
            out.extend(self.next_upload(store)?);
        }
        Ok(out)
    }

    fn on_doc_sync<S: ReplicaStore>(
        &mut self,
        store: &mut S,
        company: Company,
        doc_id: DocId,
        message: Option<Vec<u8>>,
    ) -> Out<S::Error> {
        let me = self.cfg.replica;
        let Some((doc, state)) = self
            .repairs
            .get_mut(&company)
            .and_then(|r| r.active.get_mut(&doc_id))
        else {
            return Err(SessionError::Protocol(format!(
                "sync message for {doc_id}, which is not being repaired"
            )));
        };
        let mut tell_relay = false;
        let step = match message {
            // The relay has said all it has: this document's repair ends here.
            None => Ok(None),
            Some(bytes) => {
                let before = doc.get_heads();
                contain(|| {
                    let msg = sync::Message::decode(&bytes).map_err(|e| e.to_string())?;
                    doc.receive_sync_message(state, msg)
                        .map_err(|e| e.to_string())?;
                    let learnt: Vec<Change> = doc.get_changes(&before);
                    let reply = doc.generate_sync_message(state).map(|m| m.encode());
                    Ok::<_, String>((learnt, reply))
                })
                .and_then(|r| r)
                .map(Some)
            }
        };
        let reply = match step {
            Err(reason) => {
                // Nothing of this document is trusted; every other one goes on.
                tracing::warn!(doc = %doc_id, %reason, "quarantining a document the relay's repair could not apply");
                store
                    .quarantine(&company, &doc_id, &reason)
                    .map_err(SessionError::Store)?;
                self.finish_doc(&company, &doc_id);
                let mut out = vec![Frame::DocSync {
                    company: company.clone(),
                    doc: doc_id,
                    message: None,
                }];
                out.extend(self.pump_repair(store, company)?);
                return Ok(out);
            }
            Ok(None) => None,
            Ok(Some((learnt, reply))) => {
                if !learnt.is_empty() {
                    store
                        .apply_changes(&company, &doc_id, learnt)
                        .map_err(SessionError::Store)?;
                }
                if reply.is_none() {
                    tell_relay = true;
                }
                reply
            }
        };
        if let Some(reply) = reply {
            return Ok(vec![Frame::DocSync {
                company,
                doc: doc_id,
                message: Some(reply),
            }]);
        }
        // Done: what of ours does the relay still lack? Its own history only comes back from
        // the replicas that wrote it, through their outboxes.
        // Read from the store, not the copy being synced: edits made during the repair are in
        // the outbox, and requeueing replaces the document's entries there.
        let stored = store.load_doc(&doc_id).map_err(SessionError::Store)?;
        let own = match (
            stored,
            self.repairs
                .get(&company)
                .and_then(|r| r.active.get(&doc_id)),
        ) {
            (Some(doc), Some((_, state))) => own_changes_missing(&doc, doc_id, state, me),
            _ => Vec::new(),
        };
        if !own.is_empty() {
            tracing::info!(doc = %doc_id, changes = own.len(), "queueing own changes the relay lost");
            store
                .requeue(&company, &doc_id, own)
                .map_err(SessionError::Store)?;
        }
        store.unquarantine(&doc_id).map_err(SessionError::Store)?;
        self.finish_doc(&company, &doc_id);
        let mut out = Vec::new();
        if tell_relay {
            out.push(Frame::DocSync {
                company: company.clone(),
                doc: doc_id,
                message: None,
            });
        }
        out.extend(self.pump_repair(store, company)?);
        Ok(out)
    }

    fn finish_doc(&mut self, company: &Company, doc: &DocId) {
        if let Some(r) = self.repairs.get_mut(company) {
            r.active.remove(doc);
        }
    }
}

/// This replica's changes (any incarnation), and the document's genesis change, that the
/// other side, at its last heads, lacks.
fn own_changes_missing(
    doc: &Automerge,
    doc_id: DocId,
    state: &sync::State,
    me: ReplicaId,
) -> Vec<Change> {
    let theirs: Vec<ChangeHash> = state
        .their_heads
        .iter()
        .flatten()
        .filter(|h| doc.get_change_meta_by_hash(h).is_some())
        .copied()
        .collect();
    doc.get_changes(&theirs)
        .into_iter()
        .filter(|c| {
            replica_of_actor(c.actor_id()) == Some(me) || crate::change::is_genesis(c, doc_id)
        })
        .collect()
}
