//! What the domain tells the store about each document so lists never load one: a summary
//! and the index rows derived from it. The domain implements [`Indexer`]; the store keeps the
//! rows in the same transaction as the document.

use automerge::Automerge;
use serde::{Deserialize, Serialize};

/// What a summary is found by: the domain decides, the store keeps the rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexKeys {
    /// Where the document sits in the list's order.
    pub order: String,
    /// Terms a lookup may match exactly or by prefix.
    pub terms: Vec<String>,
}

/// Turns a document's summary into index bytes; provided by the domain layer.
pub trait Indexer: Send + Sync + 'static {
    /// The summary stored for this document (None if it is not a record the domain knows).
    fn summarize(&self, doc: &Automerge) -> Option<Vec<u8>>;

    /// The search terms and list position of a summary (None: not indexed).
    fn keys(&self, _summary: &[u8]) -> Option<IndexKeys> {
        None
    }

    /// The summary and its index keys, computed together on every write. The default derives
    /// the keys from the summary's bytes; an indexer that has the summary decoded at hand can
    /// skip decoding it again.
    fn summarize_with_keys(&self, doc: &Automerge) -> Option<(Vec<u8>, Option<IndexKeys>)> {
        let summary = self.summarize(doc)?;
        let keys = self.keys(&summary);
        Some((summary, keys))
    }

    /// Changes whenever `keys` would derive different rows, so stores rebuild their index.
    fn version(&self) -> u64 {
        0
    }
}

/// An indexer that stores nothing (for tests and tools that need no lists).
pub struct NoIndex;

impl Indexer for NoIndex {
    fn summarize(&self, _doc: &Automerge) -> Option<Vec<u8>> {
        None
    }
}
