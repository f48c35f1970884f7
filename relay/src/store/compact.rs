//! Folding a document's feed entries into one saved document, off the live path.

use automerge::{Automerge, ReadDoc};
use rayon::prelude::*;
use redb::ReadableTable;

use ficha_core::DocId;

use super::schema::*;
use super::{FeedRecord, RedbRelayStore, RelayStoreError, decode, encode};

/// Entries per document left unfolded, so that a replica behind by a few edits of a document
/// downloads those edits, not the whole document.
pub const KEEP_RECENT_ENTRIES: usize = 4;

impl RedbRelayStore {
    /// Folds the older feed entries of up to `max_docs` recently changed documents into one
    /// saved Automerge document each; returns how many documents were compacted.
    ///
    /// A document's last [`KEEP_RECENT_ENTRIES`] entries stay as they came, so a replica that
    /// synced recently still downloads only the changes it lacks, not the whole document. The
    /// entries before them are folded into the newest of those older entries, and the rest of
    /// them deleted, so every checkpoint stays valid: a replica whose checkpoint lies before a
    /// deleted entry receives the folded one, which contains everything up to it. A first entry
    /// that is not yet a saved document (a history uploaded at once) is saved in place. Runs off
    /// the live path (the server calls it from a background task); it is the only relay code
    /// that loads a whole document outside repair.
    pub fn compact(&mut self, max_docs: usize) -> Result<usize, RelayStoreError> {
        let txn = self.db.begin_write()?;
        let mut done = 0;
        {
            let mut dirty = txn.open_table(DIRTY)?;
            let mut feed = txn.open_table(FEED)?;
            let mut entries_t = txn.open_table(DOC_ENTRIES)?;
            let docs_t = txn.open_table(DOCS)?;
            let batch: Vec<[u8; 16]> = dirty
                .iter()?
                .take(max_docs)
                .map(|i| i.map(|(k, _)| *k.value()))
                .collect::<Result<_, _>>()?;
            let mut plans = Vec::new();
            for id in batch {
                dirty.remove(&id)?;
                let doc = DocId(id);
                let Some(rec) = Self::doc_record(&docs_t, &doc)? else {
                    continue;
                };
                let seqs: Vec<u64> = entries_t
                    .range((&id, 0)..=(&id, u64::MAX))?
                    .map(|i| i.map(|(k, _)| k.value().1))
                    .collect::<Result<_, _>>()?;
                if seqs.is_empty() {
                    continue;
                }
                let fold = seqs.len().saturating_sub(KEEP_RECENT_ENTRIES).max(1);
                let mut plan = Plan {
                    id,
                    company: rec.company,
                    folded: seqs[..fold].to_vec(),
                    origin: [0u8; 16],
                    parts: Vec::with_capacity(fold),
                };
                for seq in &plan.folded {
                    if let Some(v) = feed.get((plan.company.as_str(), *seq))? {
                        let fr: FeedRecord = decode(v.value(), "feed entry")?;
                        plan.origin = fr.origin;
                        plan.parts.push(fr.changes);
                    }
                }
                // A lone entry that is already a saved document has nothing left to fold.
                if let [only] = plan.parts.as_slice()
                    && fold == 1
                    && ficha_core::change::is_saved_document(only)
                {
                    continue;
                }
                plans.push(plan);
            }
            // Loading a history is the whole cost of compaction, documents are independent, and
            // the relay waits for the batch: fold on every core. A failure fails the batch,
            // which then changes nothing.
            let folded: Vec<Option<Vec<u8>>> =
                plans.par_iter().map(fold).collect::<Result<_, _>>()?;
            for (plan, saved) in plans.iter().zip(folded) {
                // None: changes still waiting for their history; fold them once it arrives.
                let Some(saved) = saved else {
                    continue;
                };
                let c = plan.company.as_str();
                let Some((&last, older)) = plan.folded.split_last() else {
                    continue;
                };
                let folded = FeedRecord {
                    doc: plan.id,
                    origin: plan.origin,
                    changes: saved,
                };
                feed.insert((c, last), encode(&folded).as_slice())?;
                for seq in older {
                    feed.remove((c, *seq))?;
                    entries_t.remove((&plan.id, *seq))?;
                }
                done += 1;
            }
        }
        txn.commit()?;
        Ok(done)
    }
}

/// One document's entries to fold, read before any Automerge work starts.
struct Plan {
    id: [u8; 16],
    company: String,
    /// Feed positions folded, oldest first; the fold is written at the last.
    folded: Vec<u64>,
    origin: [u8; 16],
    parts: Vec<Vec<u8>>,
}

/// One document's entries as one saved document; None while some history is missing.
fn fold(plan: &Plan) -> Result<Option<Vec<u8>>, RelayStoreError> {
    let mut automerge = Automerge::new();
    for part in &plan.parts {
        automerge
            .load_incremental(part)
            .map_err(|e| RelayStoreError::Corrupt(format!("document {}: {e}", DocId(plan.id))))?;
    }
    if !automerge.get_missing_deps(&[]).is_empty() {
        return Ok(None);
    }
    Ok(Some(automerge.save()))
}
