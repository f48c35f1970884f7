//! Digests that let two sides find the documents they disagree on without loading any.

use automerge::ChangeHash;

use crate::ids::DocId;

/// Every document of a company with its heads digest, sorted by document id.
pub type DocDigests = Vec<(DocId, [u8; 32])>;

/// Number of buckets the document-id space is split into for reconciliation.
pub const BUCKETS: usize = 256;

/// A digest of one document's heads (order-independent: heads are sorted first).
pub fn heads_digest(heads: &[ChangeHash]) -> [u8; 32] {
    let mut sorted: Vec<&ChangeHash> = heads.iter().collect();
    sorted.sort();
    let mut h = blake3::Hasher::new();
    for head in sorted {
        h.update(&head.0);
    }
    *h.finalize().as_bytes()
}

/// The bucket a document falls in.
pub fn bucket_of(doc: &DocId) -> u8 {
    doc.0[0]
}

/// Digests of every bucket over `(doc, heads digest)` pairs, which must be sorted by doc id.
pub fn bucket_digests<'a>(
    docs: impl IntoIterator<Item = (&'a DocId, &'a [u8; 32])>,
) -> Vec<[u8; 32]> {
    let mut hashers: Vec<blake3::Hasher> = (0..BUCKETS).map(|_| blake3::Hasher::new()).collect();
    for (doc, digest) in docs {
        let h = &mut hashers[usize::from(bucket_of(doc))];
        h.update(&doc.0);
        h.update(digest);
    }
    hashers.iter().map(|h| *h.finalize().as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_digest_ignores_order_but_not_content() {
        let a = ChangeHash([1; 32]);
        let b = ChangeHash([2; 32]);
        assert_eq!(heads_digest(&[a, b]), heads_digest(&[b, a]));
        assert_ne!(heads_digest(&[a]), heads_digest(&[a, b]));
    }

    #[test]
    fn one_changed_document_changes_one_bucket() {
        let docs: Vec<(DocId, [u8; 32])> = (0..50u8)
            .map(|i| (DocId([i.wrapping_mul(37); 16]), [i; 32]))
            .collect();
        let mut sorted = docs.clone();
        sorted.sort();
        let before = bucket_digests(sorted.iter().map(|(d, h)| (d, h)));
        sorted[10].1 = [99; 32];
        let after = bucket_digests(sorted.iter().map(|(d, h)| (d, h)));
        let differing = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 1);
    }
}
