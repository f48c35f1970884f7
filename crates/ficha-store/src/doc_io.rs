//! Reading and writing one document inside a transaction: a compacted snapshot plus
//! incremental chunks, never touching any other document.

use automerge::{AutoCommit, Automerge, ChangeHash, ReadDoc};
use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use ficha_core::{Company, DocId};

use crate::error::StoreError;
use crate::index::IndexTables;
use crate::schema::{CHUNKS, COMPANY_DOCS, DOCS, SNAPSHOTS, SUMMARIES};
use ficha_core::index::{IndexKeys, Indexer};

/// Chunks a document may accumulate before it is compacted into a new snapshot.
pub const COMPACT_AFTER_CHUNKS: u32 = 8;

/// A document's first bytes up to this size are kept as a chunk, not saved as a snapshot.
const SMALL_FIRST_ARRIVAL: usize = 2048;

/// What the store keeps about a document besides its bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocMeta {
    /// Its company.
    pub company: String,
    /// Its current heads.
    pub heads: Vec<[u8; 32]>,
    /// Number the next chunk gets.
    pub next_chunk: u32,
    /// Chunks stored since the snapshot.
    pub chunks: u32,
}

impl DocMeta {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("doc meta: {e}")))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        match postcard::to_allocvec(self) {
            Ok(v) => v,
            Err(e) => unreachable!("invariant: doc meta always serialises: {e}"),
        }
    }

    /// Heads as Automerge hashes.
    pub fn change_hashes(&self) -> Vec<ChangeHash> {
        self.heads.iter().map(|h| ChangeHash(*h)).collect()
    }
}

/// The raw parts of a stored document.
pub(crate) struct StoredDoc {
    pub snapshot: Option<Vec<u8>>,
    pub chunks: Vec<Vec<u8>>,
}

fn doc_err(doc: &DocId, e: impl std::fmt::Display) -> StoreError {
    StoreError::Document {
        doc: *doc,
        message: e.to_string(),
    }
}

impl StoredDoc {
    /// Reads the snapshot and chunks of a document (its meta says it exists).
    pub(crate) fn read(
        snapshots: &impl ReadableTable<&'static [u8; 16], &'static [u8]>,
        chunks: &impl ReadableTable<(&'static [u8; 16], u32), &'static [u8]>,
        doc: &DocId,
    ) -> Result<Self, StoreError> {
        let snapshot = snapshots.get(doc.as_bytes())?.map(|v| v.value().to_vec());
        let mut parts = Vec::new();
        for item in chunks.range((doc.as_bytes(), 0)..=(doc.as_bytes(), u32::MAX))? {
            parts.push(item?.1.value().to_vec());
        }
        Ok(Self {
            snapshot,
            chunks: parts,
        })
    }

    /// Materialises the document for reading or syncing.
    pub(crate) fn automerge(&self, doc: &DocId) -> Result<Automerge, StoreError> {
        let mut d = match &self.snapshot {
            // Our own snapshot, checksummed by redb: rebuilding every change hash to verify
            // the heads would cost more than the rest of the load.
            Some(s) => Automerge::load_unverified_heads(s).map_err(|e| doc_err(doc, e))?,
            None => Automerge::new(),
        };
        for c in &self.chunks {
            d.load_incremental(c).map_err(|e| doc_err(doc, e))?;
        }
        Ok(d)
    }

    /// Materialises the document for a local edit.
    pub(crate) fn autocommit(&self, doc: &DocId) -> Result<AutoCommit, StoreError> {
        let mut d = match &self.snapshot {
            Some(s) => AutoCommit::load_unverified_heads(s).map_err(|e| doc_err(doc, e))?,
            None => AutoCommit::new(),
        };
        for c in &self.chunks {
            d.load_incremental(c).map_err(|e| doc_err(doc, e))?;
        }
        Ok(d)
    }
}

/// The tables one document write touches, opened once per transaction.
pub(crate) struct DocTables<'t> {
    pub docs: Table<'t, &'static [u8; 16], &'static [u8]>,
    pub snapshots: Table<'t, &'static [u8; 16], &'static [u8]>,
    pub chunks: Table<'t, (&'static [u8; 16], u32), &'static [u8]>,
    pub company_docs: Table<'t, (&'static str, &'static [u8; 16]), ()>,
    pub summaries: Table<'t, &'static [u8; 16], &'static [u8]>,
    pub index: IndexTables<'t>,
}

impl<'t> DocTables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            docs: txn.open_table(DOCS)?,
            snapshots: txn.open_table(SNAPSHOTS)?,
            chunks: txn.open_table(CHUNKS)?,
            company_docs: txn.open_table(COMPANY_DOCS)?,
            summaries: txn.open_table(SUMMARIES)?,
            index: IndexTables::open(txn)?,
        })
    }

    /// A document's meta, without reading its bytes.
    pub(crate) fn meta(&self, doc: &DocId) -> Result<Option<DocMeta>, StoreError> {
        self.docs
            .get(doc.as_bytes())?
            .map(|v| DocMeta::decode(v.value()))
            .transpose()
    }

    /// Materialises a stored document for editing or merging.
    pub(crate) fn load(&self, doc: &DocId) -> Result<AutoCommit, StoreError> {
        StoredDoc::read(&self.snapshots, &self.chunks, doc)?.autocommit(doc)
    }

    /// Records new bytes for a document whose in-memory state is now `after`; returns the heads
    /// stored for it.
    ///
    /// `bytes` are stored as they came (not re-encoded from `after`): changes whose
    /// dependencies have not arrived yet are queued inside Automerge and must survive a reload.
    pub(crate) fn append(
        &mut self,
        doc: &DocId,
        company: &Company,
        meta: Option<DocMeta>,
        bytes: &[u8],
        after: &Automerge,
        indexer: &dyn Indexer,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let first = meta.as_ref().is_none_or(|m| m.next_chunk == 0)
            && self.snapshots.get(doc.as_bytes())?.is_none();
        let chunks = meta.as_ref().map_or(0, |m| m.chunks);
        let derived = Derived::of(after, bytes, first, chunks, indexer);
        self.write(doc, company, meta, bytes, derived)
    }

    /// Stores `bytes` and what was derived from the document after them; returns its heads.
    pub(crate) fn write(
        &mut self,
        doc: &DocId,
        company: &Company,
        meta: Option<DocMeta>,
        bytes: &[u8],
        derived: Derived,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut meta = match meta {
            Some(m) => m,
            None => {
                self.company_docs
                    .insert((company.as_str(), doc.as_bytes()), ())?;
                DocMeta {
                    company: company.as_str().to_string(),
                    heads: Vec::new(),
                    next_chunk: 0,
                    chunks: 0,
                }
            }
        };
        meta.heads = derived.heads;
        if let Some(snapshot) = derived.snapshot {
            // One transaction replaces the snapshot and drops the chunks: a crash leaves either
            // the old snapshot with its chunks or the new snapshot alone, never a gap.
            self.snapshots.insert(doc.as_bytes(), snapshot.as_slice())?;
            self.chunks
                .retain_in((doc.as_bytes(), 0)..=(doc.as_bytes(), u32::MAX), |_, _| {
                    false
                })?;
            meta.chunks = 0;
        } else {
            self.chunks
                .insert((doc.as_bytes(), meta.next_chunk), bytes)?;
            meta.next_chunk += 1;
            meta.chunks += 1;
        }
        self.docs.insert(doc.as_bytes(), meta.encode().as_slice())?;
        if let Some((summary, keys)) = derived.summary {
            // Most edits (a note, an appointment) leave the summary as it was; rewriting it
            // would dirty its table and the index's for nothing, and each costs pages at commit.
            let same = self
                .summaries
                .get(doc.as_bytes())?
                .is_some_and(|old| old.value() == summary.as_slice());
            if !same {
                self.summaries.insert(doc.as_bytes(), summary.as_slice())?;
                if let Some(keys) = keys {
                    self.index.update(doc, &keys)?;
                }
            }
        }
        Ok(meta.heads)
    }
}

/// What a write stores about a document besides its new bytes, computed from the document
/// after them. Pure: computed on any thread, written inside the transaction.
pub(crate) struct Derived {
    heads: Vec<[u8; 32]>,
    /// A new snapshot replacing the snapshot and chunks, or None to store the bytes as a chunk.
    snapshot: Option<Vec<u8>>,
    summary: Option<(Vec<u8>, Option<IndexKeys>)>,
}

impl Derived {
    /// `first`: nothing of the document is stored yet; `chunks`: chunks stored since its
    /// snapshot.
    pub(crate) fn of(
        after: &Automerge,
        bytes: &[u8],
        first: bool,
        chunks: u32,
        indexer: &dyn Indexer,
    ) -> Self {
        let mut heads: Vec<[u8; 32]> = after.get_heads().iter().map(|h| h.0).collect();
        heads.sort();
        let complete = after.get_missing_deps(&[]).is_empty();
        // A document arriving whole with a long history (initial sync) is stored as a snapshot
        // at once: loading a saved document is far cheaper than replaying many changes. A small
        // first arrival (a new client's one change) replays as fast as it would load, and saving
        // it would cost more than the rest of its write.
        let whole = first && bytes.len() > SMALL_FIRST_ARRIVAL;
        let snapshot = (complete && (whole || chunks + 1 >= COMPACT_AFTER_CHUNKS)).then(|| {
            // A saved document from a compacted feed is already a snapshot: keep it as is.
            if first && ficha_core::change::is_saved_document(bytes) {
                bytes.to_vec()
            } else {
                after.save()
            }
        });
        Self {
            heads,
            snapshot,
            summary: indexer.summarize_with_keys(after),
        }
    }

    /// A document this replica does not hold yet, from the first bytes it received; why not
    /// if Automerge refuses them (or fails on them).
    pub(crate) fn fresh(doc: &DocId, bytes: &[u8], indexer: &dyn Indexer) -> Result<Self, String> {
        ficha_core::guard::contain(|| {
            let mut after = Automerge::new();
            after.load_incremental(bytes).map_err(|e| e.to_string())?;
            Ok(Self::of(&after, bytes, true, 0, indexer))
        })
        .and_then(|r| r)
        .inspect_err(|e| tracing::warn!(doc = %doc, error = %e, "changes that do not apply"))
    }
}
