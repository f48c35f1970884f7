//! Documents a user is working on, kept materialised between edits.
//!
//! Loading a client document costs far more than editing it (a saved document is parsed and its
//! op set rebuilt), so a replica keeps the few documents edited or read last in memory. An
//! entry is used only while its heads equal the heads stored for the document, so a change
//! merged from the relay, a crash or another process can never be hidden by the cache: they
//! change the stored heads and the next use reloads.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use automerge::AutoCommit;
use lru::LruCache;

use ficha_core::DocId;

/// How many documents stay materialised. A client of 100 items takes a few hundred KB in
/// memory; this keeps the cache's share of a replica's memory to a few MB.
pub const CACHED_DOCS: usize = 16;

/// A materialised document and the heads it was at.
pub(crate) struct Warm {
    pub heads: Vec<[u8; 32]>,
    pub doc: AutoCommit,
}

/// The bounded, least-recently-used set of materialised documents.
pub(crate) struct DocCache(Mutex<LruCache<DocId, Warm>>);

impl DocCache {
    pub(crate) fn new() -> Self {
        let cap = NonZeroUsize::new(CACHED_DOCS).unwrap_or(NonZeroUsize::MIN);
        Self(Mutex::new(LruCache::new(cap)))
    }

    /// Takes the document out if it is cached at exactly `heads`; a stale entry is dropped.
    pub(crate) fn take(&self, doc: &DocId, heads: &[[u8; 32]]) -> Option<AutoCommit> {
        let warm = self.lock().pop(doc)?;
        (warm.heads == heads).then_some(warm.doc)
    }

    /// A copy of the document if it is cached at exactly `heads`, leaving it cached.
    pub(crate) fn copy(&self, doc: &DocId, heads: &[[u8; 32]]) -> Option<automerge::Automerge> {
        let mut cache = self.lock();
        let warm = cache.get_mut(doc)?;
        (warm.heads == heads).then(|| warm.doc.document().clone())
    }

    /// Keeps a document that is now durably stored at its `heads`.
    pub(crate) fn put(&self, doc: DocId, warm: Warm) {
        self.lock().put(doc, warm);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<DocId, Warm>> {
        // A panic while holding the lock leaves at worst a stale entry, which `take` and
        // `copy` refuse by heads; the cache stays usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
