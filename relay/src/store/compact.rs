//! Folding a document's feed entries into one saved document, off the live path.

use automerge::{Automerge, ReadDoc};
use rayon::prelude::*;
use redb::{ReadableDatabase, ReadableTable};

use ficha_core::DocId;
use ficha_core::frame::MAX_ENTRY_BYTES;
use ficha_core::guard::contain;

use super::schema::*;
use super::{FeedRecord, RedbRelayStore, RelayStoreError, StoreHandle, decode, encode};

/// Entries per document left unfolded, so that a replica behind by a few edits of a document
/// downloads those edits, not the whole document.
pub const KEEP_RECENT_ENTRIES: usize = 4;

/// Bytes of entries one compaction pass folds at most (a document larger than this is folded
/// alone): what bounds compaction's memory, whatever the documents' number or size.
pub const COMPACT_BYTES: usize = 16 << 20;

impl RedbRelayStore {
    /// Folds the older feed entries of recently changed documents, up to `max_bytes` of entries
    /// (at least one document), into one saved Automerge document each; returns how many
    /// documents it looked at (0 once none is left to fold).
    ///
    /// A document's last [`KEEP_RECENT_ENTRIES`] entries stay as they came, so a replica that
    /// synced recently still downloads only the changes it lacks, not the whole document. The
    /// entries before them are folded into the newest of those older entries, and the rest of
    /// them deleted, so every checkpoint stays valid: a replica whose checkpoint lies before a
    /// deleted entry receives the folded one, which contains everything up to it. A first entry
    /// that is not yet a saved document (a history uploaded at once) is saved in place. Runs off
    /// the live path (the server calls it from a background task). A document that does not
    /// load, or whose fold would not fit in one entry, keeps its entries and is recorded in
    /// [`UNFOLDABLE`]; the rest of the pass goes on.
    pub fn compact(&mut self, max_bytes: usize) -> Result<usize, RelayStoreError> {
        let txn = self.db.begin_write()?;
        let mut done = 0;
        {
            let mut dirty = txn.open_table(DIRTY)?;
            let mut feed = txn.open_table(FEED)?;
            let mut entries_t = txn.open_table(DOC_ENTRIES)?;
            let docs_t = txn.open_table(DOCS)?;
            let mut unfoldable = txn.open_table(UNFOLDABLE)?;
            let mut batch = Vec::new();
            for item in dirty.iter()? {
                batch.push(*item?.0.value());
                if batch.len() >= 10_000 {
                    break;
                }
            }
            let mut plans = Vec::new();
            let mut bytes = 0usize;
            for id in batch {
                if bytes >= max_bytes {
                    break;
                }
                done += 1;
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
                        bytes += fr.changes.len();
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
            // the relay waits for the batch: fold on every core.
            let folded: Vec<Fold> = plans.par_iter().map(fold).collect();
            for (plan, fold) in plans.iter().zip(folded) {
                let saved = match fold {
                    Fold::Saved(saved) => saved,
                    // Changes still waiting for their history; fold them once it arrives.
                    Fold::Waiting => continue,
                    Fold::Unfoldable(why) => {
                        tracing::warn!(doc = %DocId(plan.id), reason = %why, "compaction leaves a document unfolded");
                        unfoldable.insert(&plan.id, why.as_str())?;
                        continue;
                    }
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

/// What folding one document gave.
enum Fold {
    /// The saved document, to replace the folded entries.
    Saved(Vec<u8>),
    /// Some history is missing: fold later.
    Waiting,
    /// Cannot be folded (does not load, or would not fit in one entry), with why.
    Unfoldable(String),
}

/// One document's entries as one saved document.
fn fold(plan: &Plan) -> Fold {
    let folded = contain(|| {
        let mut automerge = Automerge::new();
        for part in &plan.parts {
            automerge
                .load_incremental(part)
                .map_err(|e| e.to_string())?;
        }
        if !automerge.get_missing_deps(&[]).is_empty() {
            return Ok(None);
        }
        Ok(Some(automerge.save()))
    })
    .and_then(|r| r);
    match folded {
        Ok(Some(saved)) if saved.len() > MAX_ENTRY_BYTES => Fold::Unfoldable(format!(
            "folded it would take {} bytes, more than one entry may ({MAX_ENTRY_BYTES})",
            saved.len()
        )),
        Ok(Some(saved)) => Fold::Saved(saved),
        Ok(None) => Fold::Waiting,
        Err(e) => Fold::Unfoldable(format!("does not load: {e}")),
    }
}

impl StoreHandle {
    /// Documents compaction leaves unfolded, with why.
    pub fn unfoldable(&self) -> Result<Vec<(DocId, String)>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for row in txn.open_table(UNFOLDABLE)?.iter()? {
            let (id, why) = row?;
            out.push((DocId(*id.value()), why.value().to_string()));
        }
        Ok(out)
    }
}
