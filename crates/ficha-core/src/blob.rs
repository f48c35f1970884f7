//! Attachments: immutable blobs named by the blake3 hash of their bytes.
//!
//! A document refers to a blob by its hash; the bytes travel separately (the relay's
//! `/blobs/{hash}` endpoint), so a replica syncs documents without their files and fetches a
//! file only when someone opens it. The same bytes have the same name, so they are stored once.

use std::fmt;
use std::str::FromStr;

/// Largest blob accepted anywhere (replica and relay), in bytes.
pub const MAX_BLOB_BYTES: usize = 8 << 20;

/// The name of a blob: the blake3 hash of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// True if `bytes` are what this hash names.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        // blake3::Hash compares in constant time; not a secret, but no reason to differ.
        blake3::Hash::from_bytes(self.0) == blake3::hash(bytes)
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&blake3::Hash::from_bytes(self.0).to_hex())
    }
}

/// Why a string is not a blob hash.
#[derive(Debug, thiserror::Error)]
#[error("not a blob hash (64 hex digits): {0:?}")]
pub struct BadBlobHash(pub String);

impl FromStr for BlobHash {
    type Err = BadBlobHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        blake3::Hash::from_hex(s.trim())
            .map(|h| Self(*h.as_bytes()))
            .map_err(|_| BadBlobHash(s.chars().take(80).collect()))
    }
}

/// Refuses a blob above [`MAX_BLOB_BYTES`], with the sizes a person needs to act.
pub fn check_size(len: usize) -> Result<(), String> {
    if len > MAX_BLOB_BYTES {
        return Err(format!(
            "the file is {len} bytes; attachments may be at most {MAX_BLOB_BYTES} bytes ({} MiB)",
            MAX_BLOB_BYTES >> 20
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_round_trips_through_text_and_names_only_its_bytes() {
        let h = BlobHash::of(b"skin test photo");
        let back: BlobHash = h.to_string().parse().expect("parses");
        assert_eq!(back, h);
        assert!(h.matches(b"skin test photo"));
        assert!(!h.matches(b"skin test photo!"));
        assert!("zz".parse::<BlobHash>().is_err());
        assert!(check_size(MAX_BLOB_BYTES).is_ok());
        assert!(check_size(MAX_BLOB_BYTES + 1).is_err());
    }
}
