//! The store as the sync core sees it: [`ficha_core::replica::ReplicaStore`].

use std::collections::HashMap;

use automerge::{AutoCommit, Automerge, Change};
use rayon::prelude::*;
use redb::{ReadableDatabase, ReadableTable};

use ficha_core::digest::{DocDigests, heads_digest};
use ficha_core::frame::{ByteBuf, DocChanges, FeedEntry, FeedPage, Upload};
use ficha_core::replica::ReplicaStore;
use ficha_core::{Company, DocId, RelayEpoch, Seq};

use ficha_core::frame::RefusedDoc;
use ficha_core::guard::contain;

use crate::doc_cache::Warm;
use crate::doc_io::{Derived, DocMeta, DocTables};
use crate::error::StoreError;
use crate::identity::{EPOCH, REPAIRING, epoch_of};
use crate::quarantine;
use crate::schema::{CHECKPOINTS, COMPANY_DOCS, DOCS, META, OUTBOX};
use crate::{OutboxEntry, Store, Touched, optional};

/// A borrowed store, handed to a sync session.
pub struct SyncStore<'a>(pub &'a Store);

/// What merging bytes into a document did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Merged {
    /// They name the document under another company: nothing was written.
    OtherCompany,
    /// They do not apply (Automerge refused them or failed on them), with why: nothing was
    /// written.
    Refused(String),
    /// The document held them already: nothing was written.
    Unchanged,
    /// They were stored.
    Stored,
}

impl Store {
    /// Applies incoming bytes to one document inside `tables`.
    /// A document the cache held comes back, to be cached again once `tables` commit.
    pub(crate) fn merge_incoming(
        &self,
        tables: &mut DocTables<'_>,
        company: &Company,
        doc_id: &DocId,
        bytes: &[u8],
    ) -> Result<(Merged, Touched), StoreError> {
        let meta = tables.meta(doc_id)?;
        if let Some(m) = &meta
            && m.company != company.as_str()
        {
            tracing::warn!(doc = %doc_id, "ignoring changes that would move a document to another company");
            return Ok((Merged::OtherCompany, None));
        }
        // Only a document someone is working on stays warm: caching every document of a feed
        // page would only churn the cache.
        let warm = meta
            .as_ref()
            .and_then(|m| self.cache.take(doc_id, &m.heads));
        let was_warm = warm.is_some();
        let mut doc = match (warm, &meta) {
            (Some(d), _) => d,
            (None, Some(_)) => tables.load(doc_id)?,
            (None, None) => AutoCommit::new(),
        };
        let before = doc.get_heads();
        // Bytes from another machine: a panic in Automerge loses this copy of the document
        // (it is dropped here, and reloaded from storage next time), nothing else.
        let loaded =
            contain(|| doc.load_incremental(bytes)).and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(reason) = loaded {
            tracing::warn!(doc = %doc_id, %reason, "changes that do not apply");
            return Ok((Merged::Refused(reason), None));
        }
        let unchanged = doc.get_heads() == before && doc.get_missing_deps(&[]).is_empty();
        let (merged, heads) = match meta {
            // Our own changes echoed back, or a duplicate: nothing new to keep.
            Some(m) if unchanged => (Merged::Unchanged, m.heads),
            meta => {
                let first = meta.as_ref().is_none_or(|m| m.next_chunk == 0)
                    && tables.snapshots.get(doc_id.as_bytes())?.is_none();
                let chunks = meta.as_ref().map_or(0, |m| m.chunks);
                let indexer = self.indexer.as_ref();
                let after = doc.document();
                let derived = match contain(|| Derived::of(after, bytes, first, chunks, indexer)) {
                    Ok(d) => d,
                    Err(reason) => return Ok((Merged::Refused(reason), None)),
                };
                (
                    Merged::Stored,
                    tables.write(doc_id, company, meta, bytes, derived)?,
                )
            }
        };
        Ok((merged, was_warm.then(|| (*doc_id, Warm { heads, doc }))))
    }
}

impl Store {
    /// Merges bytes from the relay into a document, setting the document aside (with the
    /// bytes) when they do not apply, and retrying what it set aside before once new bytes
    /// apply. Never fails for the bytes themselves: only for the store.
    pub(crate) fn merge_from_relay(
        &self,
        txn: &redb::WriteTransaction,
        tables: &mut DocTables<'_>,
        company: &Company,
        doc_id: &DocId,
        bytes: &[u8],
    ) -> Result<Touched, StoreError> {
        let (merged, touched) = self.merge_incoming(tables, company, doc_id, bytes)?;
        match merged {
            Merged::Refused(reason) => {
                quarantine::quarantine(txn, company, doc_id, &reason, Some(bytes))?;
                Ok(None)
            }
            Merged::Stored => {
                // What did not apply before may apply on top of what just did.
                match quarantine::take(txn, doc_id)? {
                    None => Ok(touched),
                    Some(q) => {
                        let mut still = Vec::new();
                        for kept in q.kept {
                            if let (Merged::Refused(_), _) =
                                self.merge_incoming(tables, company, doc_id, &kept)?
                            {
                                still.push(kept);
                            }
                        }
                        if !still.is_empty() {
                            for kept in &still {
                                quarantine::quarantine(
                                    txn,
                                    company,
                                    doc_id,
                                    &q.reason,
                                    Some(kept),
                                )?;
                            }
                        } else {
                            tracing::info!(doc = %doc_id, "quarantined changes applied: the document is whole again");
                        }
                        // The document changed again under the cached copy.
                        Ok(None)
                    }
                }
            }
            Merged::OtherCompany | Merged::Unchanged => Ok(touched),
        }
    }
}

impl ReplicaStore for SyncStore<'_> {
    type Error = StoreError;

    fn epoch(&self) -> Result<Option<RelayEpoch>, StoreError> {
        let txn = self.0.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(EPOCH)?.and_then(|v| epoch_of(v.value())))
    }

    fn set_epoch(&mut self, epoch: RelayEpoch, repair: bool) -> Result<(), StoreError> {
        let txn = self.0.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(EPOCH, epoch.as_bytes().as_slice())?;
            if repair {
                meta.insert(REPAIRING, [1u8].as_slice())?;
            }
            let mut cps = txn.open_table(CHECKPOINTS)?;
            cps.retain(|_, _| false)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn needs_repair(&self, company: &Company) -> Result<bool, StoreError> {
        let txn = self.0.db.begin_read()?;
        let repairing = txn.open_table(META)?.get(REPAIRING)?.is_some();
        if !repairing {
            return Ok(false);
        }
        match optional(txn.open_table(CHECKPOINTS))? {
            Some(t) => Ok(t.get(company.as_str())?.is_none()),
            None => Ok(true),
        }
    }

    fn checkpoint(&self, company: &Company) -> Result<Seq, StoreError> {
        let txn = self.0.db.begin_read()?;
        match optional(txn.open_table(CHECKPOINTS))? {
            Some(t) => Ok(t.get(company.as_str())?.map_or(0, |v| v.value())),
            None => Ok(0),
        }
    }

    fn set_checkpoint(&mut self, company: &Company, seq: Seq) -> Result<(), StoreError> {
        let txn = self.0.db.begin_write()?;
        txn.open_table(CHECKPOINTS)?.insert(company.as_str(), seq)?;
        txn.commit()?;
        Ok(())
    }

    fn outbox_batch(
        &self,
        max_bytes: usize,
        max_changes: usize,
    ) -> Result<Option<Upload>, StoreError> {
        let txn = self.0.db.begin_read()?;
        let Some(table) = optional(txn.open_table(OUTBOX))? else {
            return Ok(None);
        };
        let mut docs: Vec<DocChanges> = Vec::new();
        let (mut bytes, mut count, mut upto) = (0usize, 0usize, None);
        for item in table.iter()? {
            let (seq, v) = item?;
            let entry: OutboxEntry = postcard::from_bytes(v.value())
                .map_err(|e| StoreError::Corrupt(format!("outbox entry: {e}")))?;
            if count > 0 && (count >= max_changes || bytes + entry.change.len() > max_bytes) {
                break;
            }
            bytes += entry.change.len();
            count += 1;
            upto = Some(seq.value());
            match docs.last_mut() {
                Some(last) if last.doc == entry.doc => {
                    last.changes.push(ByteBuf::from(entry.change));
                }
                _ => docs.push(DocChanges {
                    doc: entry.doc,
                    company: entry.company,
                    changes: vec![ByteBuf::from(entry.change)],
                }),
            }
        }
        Ok(upto.map(|upto| Upload { upto, docs }))
    }

    fn ack_outbox(&mut self, upto: u64) -> Result<(), StoreError> {
        let txn = self.0.db.begin_write()?;
        txn.open_table(OUTBOX)?.retain_in(..=upto, |_, _| false)?;
        crate::identity::acked_upto(&txn, upto)?;
        txn.commit()?;
        Ok(())
    }

    fn apply_feed(&mut self, page: &FeedPage) -> Result<(), StoreError> {
        let txn = self.0.db.begin_write()?;
        let mut warm = Vec::new();
        {
            let mut tables = DocTables::open(&txn)?;
            let entries: Vec<&FeedEntry> = page
                .entries
                .iter()
                .filter(|e| !e.changes.is_empty())
                .collect();
            // Documents arriving for the first time (an initial sync) are parsed on every core;
            // the page's other entries merge one by one, in order.
            let mut per_doc: HashMap<DocId, usize> = HashMap::new();
            for e in &entries {
                *per_doc.entry(e.doc).or_default() += 1;
            }
            let mut fresh = Vec::new();
            for e in &entries {
                if per_doc.get(&e.doc) == Some(&1) && tables.meta(&e.doc)?.is_none() {
                    fresh.push(*e);
                } else {
                    let touched = self.0.merge_from_relay(
                        &txn,
                        &mut tables,
                        &page.company,
                        &e.doc,
                        &e.changes,
                    )?;
                    warm.extend(touched);
                }
            }
            let indexer = self.0.indexer.as_ref();
            let derived: Vec<Result<Derived, String>> = fresh
                .par_iter()
                .map(|e| Derived::fresh(&e.doc, &e.changes, indexer))
                .collect();
            for (e, derived) in fresh.iter().zip(derived) {
                match derived {
                    Ok(derived) => {
                        tables.write(&e.doc, &page.company, None, &e.changes, derived)?;
                    }
                    Err(reason) => {
                        quarantine::quarantine(
                            &txn,
                            &page.company,
                            &e.doc,
                            &reason,
                            Some(&e.changes),
                        )?;
                    }
                }
            }
            txn.open_table(CHECKPOINTS)?
                .insert(page.company.as_str(), page.upto)?;
        }
        txn.commit()?;
        for (doc, warm) in warm {
            self.0.cache.put(doc, warm);
        }
        Ok(())
    }

    fn doc_digests(&self, company: &Company) -> Result<DocDigests, StoreError> {
        let txn = self.0.db.begin_read()?;
        let (Some(index), Some(docs)) = (
            optional(txn.open_table(COMPANY_DOCS))?,
            optional(txn.open_table(DOCS))?,
        ) else {
            return Ok(Vec::new());
        };
        let lo = (company.as_str(), &[0u8; 16]);
        let hi = (company.as_str(), &[0xffu8; 16]);
        let mut out = Vec::new();
        for item in index.range(lo..=hi)? {
            let (k, _) = item?;
            let id = DocId(*k.value().1);
            if let Some(meta) = docs.get(id.as_bytes())? {
                let meta = DocMeta::decode(meta.value())?;
                out.push((id, heads_digest(&meta.change_hashes())));
            }
        }
        Ok(out)
    }

    fn load_doc(&self, doc: &DocId) -> Result<Option<Automerge>, StoreError> {
        self.0.read_doc(doc)
    }

    fn apply_changes(
        &mut self,
        company: &Company,
        doc: &DocId,
        changes: Vec<Change>,
    ) -> Result<(), StoreError> {
        let bytes: Vec<u8> = changes
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
        let txn = self.0.db.begin_write()?;
        let touched = {
            let mut tables = DocTables::open(&txn)?;
            self.0
                .merge_from_relay(&txn, &mut tables, company, doc, &bytes)?
        };
        txn.commit()?;
        self.0.keep_warm(touched);
        Ok(())
    }

    fn refuse(&mut self, refused: &[RefusedDoc]) -> Result<(), StoreError> {
        let txn = self.0.db.begin_write()?;
        quarantine::refuse(&txn, refused)?;
        txn.commit()?;
        Ok(())
    }

    fn requeue(
        &mut self,
        company: &Company,
        doc: &DocId,
        changes: Vec<Change>,
    ) -> Result<(), StoreError> {
        let txn = self.0.db.begin_write()?;
        {
            let mut outbox = txn.open_table(OUTBOX)?;
            // The document's entries still waiting are among `changes`, which go up in order.
            let mut stale = Vec::new();
            for row in outbox.iter()? {
                let (seq, v) = row?;
                let entry: OutboxEntry = postcard::from_bytes(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("outbox entry: {e}")))?;
                if entry.doc == *doc {
                    stale.push(seq.value());
                }
            }
            for seq in stale {
                outbox.remove(seq)?;
            }
            for c in changes {
                let seq = crate::identity::next_outbox_seq(&txn, &outbox)?;
                let entry = OutboxEntry {
                    doc: *doc,
                    company: company.clone(),
                    change: c.raw_bytes().to_vec(),
                };
                outbox.insert(seq, entry.encode()?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn quarantine(
        &mut self,
        company: &Company,
        doc: &DocId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let txn = self.0.db.begin_write()?;
        quarantine::quarantine(&txn, company, doc, reason, None)?;
        txn.commit()?;
        Ok(())
    }

    fn quarantined(&self, company: &Company) -> Result<Vec<DocId>, StoreError> {
        Ok(self
            .0
            .quarantined()?
            .into_iter()
            .filter(|q| q.company == company.as_str())
            .map(|q| q.doc)
            .collect())
    }

    fn unquarantine(&mut self, doc: &DocId) -> Result<(), StoreError> {
        let txn = self.0.db.begin_write()?;
        let kept = quarantine::take(&txn, doc)?;
        txn.commit()?;
        if kept.is_some() {
            tracing::info!(doc = %doc, "a repair brought the document whole: out of quarantine");
        }
        Ok(())
    }
}
