//! The documents the relay keeps in memory to admit changes into, bounded by stored size and
//! by count.

use lru::LruCache;

use crate::admit::WarmDoc;
use crate::ids::DocId;

/// Recently used documents, evicted least recently used first once their bytes or their
/// number exceed the caps.
pub(super) struct DocCache {
    docs: LruCache<DocId, WarmDoc>,
    bytes: usize,
    max_bytes: usize,
    max_docs: usize,
}

impl DocCache {
    pub(super) fn new(max_bytes: usize, max_docs: usize) -> Self {
        Self {
            docs: LruCache::unbounded(),
            bytes: 0,
            max_bytes,
            max_docs: max_docs.max(1),
        }
    }

    /// Takes a document out to work on it; [`DocCache::put`] returns it.
    pub(super) fn take(&mut self, doc: &DocId) -> Option<WarmDoc> {
        let warm = self.docs.pop(doc)?;
        self.bytes = self.bytes.saturating_sub(warm.bytes());
        Some(warm)
    }

    /// Keeps a document that is still trustworthy, evicting others to stay within the cap.
    pub(super) fn put(&mut self, doc: DocId, warm: WarmDoc) {
        if warm.is_poisoned() {
            return;
        }
        self.bytes += warm.bytes();
        if let Some(old) = self.docs.put(doc, warm) {
            self.bytes = self.bytes.saturating_sub(old.bytes());
        }
        while (self.bytes > self.max_bytes || self.docs.len() > self.max_docs)
            && self.docs.len() > 1
        {
            match self.docs.pop_lru() {
                Some((_, old)) => self.bytes = self.bytes.saturating_sub(old.bytes()),
                None => break,
            }
        }
    }

    /// Forgets a document (its state may be ahead of storage).
    pub(super) fn evict(&mut self, doc: &DocId) {
        self.take(doc);
    }

    /// Documents held.
    pub(super) fn len(&self) -> usize {
        self.docs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_at_most_its_count_of_documents_most_recent_first() {
        let mut cache = DocCache::new(usize::MAX, 3);
        for i in 0..5u8 {
            cache.put(DocId([i; 16]), WarmDoc::empty());
        }
        assert_eq!(cache.len(), 3);
        assert!(
            cache.take(&DocId([0; 16])).is_none(),
            "the oldest went first"
        );
        assert!(cache.take(&DocId([4; 16])).is_some());
    }
}
