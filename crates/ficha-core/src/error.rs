//! Error types of the sync core, one per boundary.

use thiserror::Error;

/// An identifier that does not parse.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// Not a UUID.
    #[error("{0:?} is not a valid id (expected a UUID)")]
    BadUuid(String),
    /// Not an automerge-repo document id or URL of 16 bytes.
    #[error("{0:?} is not an automerge document id (expected automerge:<base58check of 16 bytes>)")]
    BadAutomergeId(String),
    /// Not a valid company code.
    #[error("{0:?} is not a valid company code (1-64 letters, digits, '-', '_' or '.')")]
    BadCompany(String),
}

/// A frame that cannot be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Larger than the negotiated maximum.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the offending frame.
        size: usize,
        /// Maximum accepted.
        limit: usize,
    },
    /// Does not start with Ficha's magic byte.
    #[error("not a Ficha frame (bad magic byte)")]
    BadMagic,
    /// Speaks a protocol version this build does not know.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The body does not parse.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// A token that must be refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not in the `ft1.<claims>.<mac>` shape.
    #[error("token is malformed")]
    Malformed,
    /// The MAC does not match: forged or altered.
    #[error("token signature is invalid")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Its replica was revoked on the relay.
    #[error("token was revoked")]
    Revoked,
}

/// A change that the relay or a replica must not store.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeError {
    /// Bytes that are not one valid Automerge change.
    #[error("change does not parse: {0}")]
    Unparseable(String),
    /// The checksum in the change's header does not match its contents (altered in transit or
    /// forged).
    #[error("change header checksum does not match its contents")]
    BadChecksum,
    /// Written under an actor that is not the uploading replica's.
    #[error("change was written by another replica's actor")]
    ForeignActor,
    /// Larger than any replica accepts.
    #[error("change of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The most accepted.
        limit: usize,
    },
    /// Its sequence number skips ahead of the actor's previous change in the document.
    #[error(
        "change {found} of its actor does not follow change {previous}: a sequence number was skipped"
    )]
    SeqGap {
        /// The actor's last sequence number in the document.
        previous: u64,
        /// The sequence number the change claims.
        found: u64,
    },
    /// Its (actor, sequence number) is already used in the document by a different change.
    #[error("sequence number {seq} of its actor is already used by another change")]
    SeqReused {
        /// The sequence number claimed twice.
        seq: u64,
    },
    /// Its operation ids overlap those of a change it follows.
    #[error("operation ids from {start_op} overlap those of an earlier change")]
    OpsOverlap {
        /// The first operation id the change claims.
        start_op: u64,
    },
    /// Carries an author footer anywhere but on its actor's first change.
    #[error("an author may only be named by an actor's first change")]
    LateAuthor,
    /// Automerge refused to apply it to the document (or failed while applying it).
    #[error("change does not apply to its document: {0}")]
    DoesNotApply(String),
}
