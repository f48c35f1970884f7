//! The store's error type.

use thiserror::Error;

use ficha_core::DocId;

/// What can go wrong in the replica store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory holds no replica.
    #[error("no replica in {0}: run `ficha --data {0} init` first")]
    NotInitialised(String),
    /// `init` on a directory that already holds one.
    #[error("a replica already exists in {0}")]
    AlreadyInitialised(String),
    /// Another process (such as `ficha serve`) has the store open.
    #[error(
        "the data directory {0} is in use by another ficha process (is `ficha serve` running?)"
    )]
    Locked(String),
    /// No such document.
    #[error("unknown client id {0}")]
    UnknownDoc(DocId),
    /// A document id that already exists.
    #[error("document {0} already exists")]
    DocExists(DocId),
    /// The store was written by a newer build.
    #[error("store schema version {found} is newer than this build supports ({supported})")]
    Schema {
        /// Version on disk.
        found: u64,
        /// Version of this build.
        supported: u64,
    },
    /// The database file is damaged (it does not open, or what it holds does not decode).
    #[error(
        "the replica's database {path} is damaged ({reason}). Restore the data directory from a copy, or create a new replica and sync it; edits not yet uploaded are also in edits.journal beside it"
    )]
    Damaged {
        /// The database file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// Stored bytes that do not decode.
    #[error("corrupt store record: {0}")]
    Corrupt(String),
    /// Automerge refused a document.
    #[error("document {doc}: {message}")]
    Document {
        /// The document.
        doc: DocId,
        /// Automerge's complaint.
        message: String,
    },
    /// A local edit whose change is larger than any relay accepts.
    #[error(
        "this edit would be a change of {size} bytes; the most a change may be is {limit} bytes: split it into smaller edits"
    )]
    TooLarge {
        /// The change's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Automerge refused an edit (tools and tests that edit documents directly).
    #[error("edit refused: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// redb failed.
    #[error("storage: {0}")]
    Redb(#[from] redb::Error),
    /// The file system failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        StoreError::Redb(e.into())
    }
}
