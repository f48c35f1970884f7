//! Error types of the sync core, one per boundary.

use thiserror::Error;

/// An identifier that does not parse.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// Not a UUID.
    #[error("{0:?} is not a valid id (expected a UUID)")]
    BadUuid(String),
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
    /// Bytes that are not one valid Automerge change (this includes a wrong hash/checksum).
    #[error("change does not parse: {0}")]
    Unparseable(String),
    /// Written under an actor that is not the uploading replica's.
    #[error("change was written by another replica's actor")]
    ForeignActor,
}
