//! Folding a document's feed entries into one saved document, off the live path.

use automerge::{Automerge, ReadDoc};
use redb::ReadableTable;

use ficha_core::DocId;

use super::schema::*;
use super::{FeedRecord, RedbRelayStore, RelayStoreError, decode, encode};

impl RedbRelayStore {
    /// Folds the feed entries of up to `max_docs` recently changed documents into one saved
    /// Automerge document each; returns how many documents were compacted.
    ///
    /// The folded bytes replace the document's *latest* entry and the earlier entries are
    /// deleted, so every checkpoint stays valid: a replica whose checkpoint lies before any
    /// deleted entry still receives the surviving entry, which contains everything. Runs off the
    /// live path (the server calls it from a background task); it is the only relay code that
    /// loads a whole document outside repair.
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
                let Some(&last) = seqs.last() else { continue };
                let c = rec.company.as_str();
                let mut automerge = Automerge::new();
                let mut origin = [0u8; 16];
                for seq in &seqs {
                    if let Some(v) = feed.get((c, *seq))? {
                        let fr: FeedRecord = decode(v.value(), "feed entry")?;
                        origin = fr.origin;
                        automerge.load_incremental(&fr.changes).map_err(|e| {
                            RelayStoreError::Corrupt(format!("document {doc}: {e}"))
                        })?;
                    }
                }
                if !automerge.get_missing_deps(&[]).is_empty() {
                    // Changes still waiting for their history: fold them once it arrives.
                    continue;
                }
                let folded = FeedRecord {
                    doc: id,
                    origin,
                    changes: automerge.save(),
                };
                feed.insert((c, last), encode(&folded).as_slice())?;
                for seq in &seqs[..seqs.len() - 1] {
                    feed.remove((c, *seq))?;
                    entries_t.remove((&id, *seq))?;
                }
                done += 1;
            }
        }
        txn.commit()?;
        Ok(done)
    }
}
