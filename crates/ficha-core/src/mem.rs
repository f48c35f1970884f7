//! In-memory stores: the model the simulation runs on and the redb stores are checked against.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use automerge::ReadDoc;
use automerge::{ActorId, Automerge, Change, ChangeHash};

use crate::change;
use crate::digest::{DocDigests, heads_digest};
use crate::frame::{ByteBuf, DocChanges, FeedEntry, FeedPage, RefusedDoc, Upload};
use crate::guard::contain;
use crate::ids::{Company, DocId, RelayEpoch, ReplicaId, Seq};
use crate::relay::{Binding, IngestDoc, LoadedDoc, NewEntry, RelayStore};
use crate::replica::ReplicaStore;

/// A replica's durable state, in memory.
#[derive(Default, Clone)]
pub struct MemReplicaStore {
    epoch: Option<RelayEpoch>,
    repairing: bool,
    checkpoints: BTreeMap<Company, Seq>,
    docs: BTreeMap<DocId, (Company, Automerge)>,
    outbox: BTreeMap<u64, (DocId, Company, Vec<u8>)>,
    next_outbox: u64,
    refused: BTreeMap<u64, (DocId, String)>,
    quarantined: BTreeMap<DocId, (Company, String)>,
}

/// Merges bytes into a document; on failure the document is left as it was.
fn merge(doc: &mut Automerge, bytes: &[u8]) -> Result<(), String> {
    let before = doc.clone();
    match contain(|| doc.load_incremental(bytes)) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            *doc = before;
            Err(e.to_string())
        }
        Err(panic) => {
            *doc = before;
            Err(panic)
        }
    }
}

impl MemReplicaStore {
    /// Applies a local edit as `actor` and queues the resulting change for upload.
    pub fn edit(
        &mut self,
        doc_id: DocId,
        company: &Company,
        actor: &ActorId,
        f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
    ) -> Option<ChangeHash> {
        let (_, doc) = self
            .docs
            .entry(doc_id)
            .or_insert_with(|| (company.clone(), Automerge::new()));
        doc.set_actor(actor.clone());
        let mut tx = doc.transaction();
        f(&mut tx);
        let (hash, _) = tx.commit();
        let hash = hash?;
        let change = doc.get_change_by_hash(&hash)?;
        self.next_outbox += 1;
        self.outbox.insert(
            self.next_outbox,
            (doc_id, company.clone(), change.raw_bytes().to_vec()),
        );
        Some(hash)
    }

    /// One document, if present.
    pub fn doc(&self, doc: &DocId) -> Option<&Automerge> {
        self.docs.get(doc).map(|(_, d)| d)
    }

    /// Every document id.
    pub fn doc_ids(&self) -> Vec<DocId> {
        self.docs.keys().copied().collect()
    }

    /// Number of changes not yet acknowledged.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Forgets the relay epoch (as if restored onto a new machine with no sync state).
    pub fn forget_epoch(&mut self) {
        self.epoch = None;
        self.checkpoints.clear();
    }

    /// Outbox entries the relay refused for good, with the reason.
    pub fn refused(&self) -> Vec<(DocId, String)> {
        self.refused.values().cloned().collect()
    }

    /// Documents in quarantine, with the reason.
    pub fn quarantine_list(&self) -> Vec<(DocId, String)> {
        self.quarantined
            .iter()
            .map(|(d, (_, r))| (*d, r.clone()))
            .collect()
    }

    /// Queues raw change bytes for upload as if this replica had made them (hostile tests).
    pub fn push_outbox(&mut self, doc: DocId, company: &Company, bytes: Vec<u8>) {
        self.next_outbox += 1;
        self.outbox
            .insert(self.next_outbox, (doc, company.clone(), bytes));
    }
}

impl ReplicaStore for MemReplicaStore {
    type Error = Infallible;

    fn epoch(&self) -> Result<Option<RelayEpoch>, Infallible> {
        Ok(self.epoch)
    }

    fn set_epoch(&mut self, epoch: RelayEpoch, repair: bool) -> Result<(), Infallible> {
        self.epoch = Some(epoch);
        self.repairing |= repair;
        self.checkpoints.clear();
        Ok(())
    }

    fn needs_repair(&self, company: &Company) -> Result<bool, Infallible> {
        Ok(self.repairing && !self.checkpoints.contains_key(company))
    }

    fn checkpoint(&self, company: &Company) -> Result<Seq, Infallible> {
        Ok(self.checkpoints.get(company).copied().unwrap_or(0))
    }

    fn set_checkpoint(&mut self, company: &Company, seq: Seq) -> Result<(), Infallible> {
        self.checkpoints.insert(company.clone(), seq);
        Ok(())
    }

    fn outbox_batch(
        &self,
        max_bytes: usize,
        max_changes: usize,
    ) -> Result<Option<Upload>, Infallible> {
        let mut docs: Vec<DocChanges> = Vec::new();
        let (mut bytes, mut count, mut upto) = (0, 0, None);
        for (seq, (doc, company, change)) in &self.outbox {
            if count > 0 && (count >= max_changes || bytes + change.len() > max_bytes) {
                break;
            }
            bytes += change.len();
            count += 1;
            upto = Some(*seq);
            match docs.last_mut() {
                Some(last) if last.doc == *doc => last.changes.push(ByteBuf::from(change.clone())),
                _ => docs.push(DocChanges {
                    doc: *doc,
                    company: company.clone(),
                    changes: vec![ByteBuf::from(change.clone())],
                }),
            }
        }
        Ok(upto.map(|upto| Upload { upto, docs }))
    }

    fn ack_outbox(&mut self, upto: u64) -> Result<(), Infallible> {
        self.outbox.retain(|seq, _| *seq > upto);
        Ok(())
    }

    fn apply_feed(&mut self, page: &FeedPage) -> Result<(), Infallible> {
        for entry in &page.entries {
            if entry.changes.is_empty() {
                continue;
            }
            let (company, doc) = self
                .docs
                .entry(entry.doc)
                .or_insert_with(|| (page.company.clone(), Automerge::new()));
            if *company != page.company {
                continue;
            }
            if let Err(reason) = merge(doc, &entry.changes) {
                self.quarantined
                    .insert(entry.doc, (page.company.clone(), reason));
            }
        }
        self.checkpoints.insert(page.company.clone(), page.upto);
        Ok(())
    }

    fn doc_digests(&self, company: &Company) -> Result<DocDigests, Infallible> {
        Ok(self
            .docs
            .iter()
            .filter(|(_, (c, _))| c == company)
            .map(|(id, (_, d))| (*id, heads_digest(&d.get_heads())))
            .collect())
    }

    fn load_doc(&self, doc: &DocId) -> Result<Option<Automerge>, Infallible> {
        Ok(self.docs.get(doc).map(|(_, d)| d.clone()))
    }

    fn apply_changes(
        &mut self,
        company: &Company,
        doc: &DocId,
        changes: Vec<Change>,
    ) -> Result<(), Infallible> {
        let (_, d) = self
            .docs
            .entry(*doc)
            .or_insert_with(|| (company.clone(), Automerge::new()));
        let bytes: Vec<u8> = changes
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
        if let Err(reason) = merge(d, &bytes) {
            self.quarantined.insert(*doc, (company.clone(), reason));
        }
        Ok(())
    }

    fn refuse(&mut self, refused: &[RefusedDoc]) -> Result<(), Infallible> {
        for r in refused {
            let seqs: Vec<u64> = self
                .outbox
                .iter()
                .filter(|(_, (d, _, _))| *d == r.doc)
                .map(|(s, _)| *s)
                .collect();
            for seq in seqs {
                self.outbox.remove(&seq);
                self.refused.insert(seq, (r.doc, r.message.clone()));
            }
        }
        Ok(())
    }

    fn requeue(
        &mut self,
        company: &Company,
        doc: &DocId,
        changes: Vec<Change>,
    ) -> Result<(), Infallible> {
        // The changes still waiting in the outbox are among these, and must go up in this
        // order: one actor's changes in sequence, or the relay refuses the gap.
        self.outbox.retain(|_, (d, _, _)| d != doc);
        for c in changes {
            self.push_outbox(*doc, company, c.raw_bytes().to_vec());
        }
        Ok(())
    }

    fn quarantine(
        &mut self,
        company: &Company,
        doc: &DocId,
        reason: &str,
    ) -> Result<(), Infallible> {
        self.quarantined
            .insert(*doc, (company.clone(), reason.to_string()));
        Ok(())
    }

    fn quarantined(&self, company: &Company) -> Result<Vec<DocId>, Infallible> {
        Ok(self
            .quarantined
            .iter()
            .filter(|(_, (c, _))| c == company)
            .map(|(d, _)| *d)
            .collect())
    }

    fn unquarantine(&mut self, doc: &DocId) -> Result<(), Infallible> {
        self.quarantined.remove(doc);
        Ok(())
    }
}

struct RelayDoc {
    company: Company,
    hashes: BTreeSet<ChangeHash>,
    heads: Vec<ChangeHash>,
    parked: Vec<Change>,
}

/// A relay's durable state, in memory.
pub struct MemRelayStore {
    epoch: RelayEpoch,
    names: BTreeMap<String, ReplicaId>,
    ids: BTreeMap<ReplicaId, String>,
    revoked: BTreeMap<String, u64>,
    actors: BTreeMap<ActorId, String>,
    feeds: BTreeMap<Company, Vec<(FeedEntry, ReplicaId)>>,
    docs: BTreeMap<DocId, RelayDoc>,
}

impl MemRelayStore {
    /// An empty relay database with this epoch.
    pub fn new(epoch: RelayEpoch) -> Self {
        Self {
            epoch,
            names: BTreeMap::new(),
            ids: BTreeMap::new(),
            revoked: BTreeMap::new(),
            actors: BTreeMap::new(),
            feeds: BTreeMap::new(),
            docs: BTreeMap::new(),
        }
    }

    /// Revokes every token of a replica name issued at or before `at`.
    pub fn revoke(&mut self, name: &str, at: u64) {
        self.revoked.insert(name.to_string(), at);
    }

    /// Every change hash stored (applied) for a document.
    pub fn hashes(&self, doc: &DocId) -> BTreeSet<ChangeHash> {
        self.docs
            .get(doc)
            .map(|d| d.hashes.clone())
            .unwrap_or_default()
    }

    /// Every document id stored.
    pub fn doc_ids(&self) -> Vec<DocId> {
        self.docs.keys().copied().collect()
    }

    /// The feed of a company, as stored.
    pub fn feed(&self, company: &Company) -> Vec<FeedEntry> {
        self.feeds
            .get(company)
            .map(|f| f.iter().map(|(e, _)| e.clone()).collect())
            .unwrap_or_default()
    }
}

/// Heads after applying `change` to a document whose heads were `heads`, when changes arrive
/// in causal order (a change's dependencies stop being heads).
pub fn advance_heads(heads: &mut Vec<ChangeHash>, change: &Change) {
    heads.retain(|h| !change.deps().contains(h));
    heads.push(change.hash());
    heads.sort();
}

impl RelayStore for MemRelayStore {
    type Error = Infallible;

    fn epoch(&self) -> RelayEpoch {
        self.epoch
    }

    fn revoked_at(&self, name: &str) -> Result<Option<u64>, Infallible> {
        Ok(self.revoked.get(name).copied())
    }

    fn bind_replica(&mut self, name: &str, id: ReplicaId) -> Result<Binding, Infallible> {
        match (self.names.get(name), self.ids.get(&id)) {
            (Some(bound), _) if *bound != id => Ok(Binding::NameTaken),
            (_, Some(bound)) if bound != name => Ok(Binding::IdTaken),
            _ => {
                self.names.insert(name.to_string(), id);
                self.ids.insert(id, name.to_string());
                Ok(Binding::Bound)
            }
        }
    }

    fn bind_actors(
        &mut self,
        name: &str,
        actors: &[ActorId],
    ) -> Result<Option<ActorId>, Infallible> {
        if let Some(taken) = actors
            .iter()
            .find(|a| self.actors.get(*a).is_some_and(|n| n != name))
        {
            return Ok(Some(taken.clone()));
        }
        for a in actors {
            self.actors.insert(a.clone(), name.to_string());
        }
        Ok(None)
    }

    fn read_feed(
        &self,
        company: &Company,
        after: Seq,
        max_bytes: usize,
    ) -> Result<Vec<FeedEntry>, Infallible> {
        let feed = self.feeds.get(company).map(Vec::as_slice).unwrap_or(&[]);
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(feed.len());
        let mut out = Vec::new();
        let mut bytes = 0;
        for (entry, _) in &feed[start..] {
            if !out.is_empty() && bytes + entry.changes.len() > max_bytes {
                break;
            }
            bytes += entry.changes.len();
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn doc_company(&self, doc: &DocId) -> Result<Option<Company>, Infallible> {
        Ok(self.docs.get(doc).map(|d| d.company.clone()))
    }

    fn ingest(
        &mut self,
        origin: ReplicaId,
        docs: Vec<IngestDoc>,
    ) -> Result<Vec<NewEntry>, Infallible> {
        let mut out = Vec::new();
        for IngestDoc {
            doc,
            company,
            applied,
            parked,
            unparked,
            uploader_holds,
        } in docs
        {
            let rd = self.docs.entry(doc).or_insert_with(|| RelayDoc {
                company: company.clone(),
                hashes: BTreeSet::new(),
                heads: Vec::new(),
                parked: Vec::new(),
            });
            rd.parked.retain(|p| !unparked.contains(&p.hash()));
            rd.parked.extend(parked);
            let mut new: Vec<Change> = applied
                .into_iter()
                .filter(|c| rd.hashes.insert(c.hash()))
                .collect();
            for c in &new {
                advance_heads(&mut rd.heads, c);
            }
            let feed = self.feeds.entry(company.clone()).or_default();
            for bytes in change::pack(&mut new) {
                let entry = FeedEntry {
                    seq: feed.len() as u64 + 1,
                    doc,
                    changes: bytes,
                };
                feed.push((entry.clone(), origin));
                out.push(NewEntry {
                    company: company.clone(),
                    entry,
                    uploader_holds,
                });
            }
        }
        Ok(out)
    }

    fn parked_count(&self, company: &Company) -> Result<usize, Infallible> {
        Ok(self
            .docs
            .values()
            .filter(|d| &d.company == company)
            .map(|d| d.parked.len())
            .sum())
    }

    fn doc_digests(&self, company: &Company) -> Result<(Seq, DocDigests), Infallible> {
        let head = self.feeds.get(company).map_or(0, |f| f.len() as u64);
        let docs = self
            .docs
            .iter()
            .filter(|(_, d)| &d.company == company)
            .map(|(id, d)| (*id, heads_digest(&d.heads)))
            .collect();
        Ok((head, docs))
    }

    fn load_doc(&self, doc: &DocId) -> Result<Option<LoadedDoc>, Infallible> {
        let Some(rd) = self.docs.get(doc) else {
            return Ok(None);
        };
        let mut d = Automerge::new();
        let mut bytes = 0;
        for (entry, _) in self
            .feeds
            .get(&rd.company)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if entry.doc == *doc {
                bytes += entry.changes.len();
                let _ = d.load_incremental(&entry.changes);
            }
        }
        Ok(Some(LoadedDoc {
            doc: d,
            parked: rd.parked.clone(),
            bytes,
        }))
    }

    fn doc_state(&self, doc: &DocId) -> Result<Option<(Vec<ChangeHash>, usize)>, Infallible> {
        Ok(self
            .docs
            .get(doc)
            .map(|rd| (rd.heads.clone(), rd.parked.len())))
    }

    fn set_heads(&mut self, doc: &DocId, heads: &[ChangeHash]) -> Result<(), Infallible> {
        if let Some(rd) = self.docs.get_mut(doc) {
            rd.heads = heads.to_vec();
            rd.heads.sort();
        }
        Ok(())
    }
}
