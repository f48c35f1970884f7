//! The relay's redb store: per-company change feeds and the indexes the protocol needs.
//!
//! Every `ingest` is one durable write transaction (redb's default durability: fsync on
//! commit). Nothing here holds documents in memory: `load_doc` reads only that document's feed
//! entries (through `DOC_ENTRIES`), and digests come from stored heads, maintained
//! incrementally as changes arrive. [`ficha_core::mem::MemRelayStore`] is the model this store
//! must match, result for result.

mod access;
mod backup;
mod blobs;
mod census;
mod compact;
mod feed;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use ficha_core::{DocId, RelayEpoch};

use schema::*;

pub use census::CompanyCensus;
pub use compact::{COMPACT_BYTES, KEEP_RECENT_ENTRIES};
pub use schema::SCHEMA_VERSION;

/// Database file name inside the relay's data directory.
pub const DB_FILE: &str = "relay.redb";

/// What the relay store can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RelayStoreError {
    /// Another process (or another handle in this one) holds the database.
    #[error(
        "the relay database {0} is in use by another process (is `ficha-relay serve` running?)"
    )]
    Locked(String),
    /// The database was written by a newer (or unknown) layout.
    #[error("the relay database has schema version {found}, this build reads version {supported}")]
    Schema {
        /// Version found in the file.
        found: u64,
        /// Version this build writes.
        supported: u64,
    },
    /// A file that should be a relay database (a backup) is not one.
    #[error("{0} is not a ficha relay database")]
    NotRelayDatabase(String),
    /// A document was sent under a company other than the one it is stored under.
    #[error("document {doc} belongs to company {stored}, not {given}")]
    CompanyMismatch {
        /// The document.
        doc: DocId,
        /// Its stored company.
        stored: String,
        /// The company it came with.
        given: String,
    },
    /// A path that cannot be used for this operation.
    #[error("{0}")]
    BadPath(String),
    /// Stored bytes that do not decode.
    #[error("corrupt relay record: {0}")]
    Corrupt(String),
    /// redb failed.
    #[error("storage: {0}")]
    Redb(#[from] redb::Error),
    /// The file system failed on a path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for RelayStoreError {
            fn from(e: $t) -> Self {
                RelayStoreError::Redb(e.into())
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

/// Attaches the path to an I/O error.
fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> RelayStoreError + '_ {
    move |source| RelayStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One feed entry as stored.
#[derive(Serialize, Deserialize)]
struct FeedRecord {
    doc: [u8; 16],
    origin: [u8; 16],
    changes: Vec<u8>,
}

/// One document's record.
#[derive(Serialize, Deserialize)]
struct DocRecord {
    company: String,
    heads: Vec<[u8; 32]>,
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    match postcard::to_allocvec(v) {
        Ok(b) => b,
        Err(e) => unreachable!("invariant: relay records always serialise: {e}"),
    }
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, RelayStoreError> {
    postcard::from_bytes(bytes).map_err(|e| RelayStoreError::Corrupt(format!("{what}: {e}")))
}

const EPOCH: &str = "epoch";
const SCHEMA: &str = "schema_version";
const CHANGES: &str = "changes_stored";

fn u64_of(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(b)
}

/// Opens a database file, telling "held by a running relay" apart from other failures.
/// redb's page cache for the relay: bounded, so the relay's memory does not follow the size
/// of its database (redb's default is 1 GiB).
pub const CACHE_BYTES: usize = 64 << 20;

fn open_db(path: &Path) -> Result<Database, RelayStoreError> {
    match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            Err(RelayStoreError::Locked(path.display().to_string()))
        }
        Err(e) => Err(RelayStoreError::Redb(e.into())),
    }
}

/// Reads (or, when `create` allows, writes) the epoch and schema version, and creates every
/// table so readers never meet a missing one.
fn init(db: &Database, path: &Path, create: bool) -> Result<RelayEpoch, RelayStoreError> {
    let txn = db.begin_write()?;
    let epoch = {
        let mut meta = txn.open_table(META)?;
        let epoch = meta.get(EPOCH)?.map(|v| <[u8; 16]>::try_from(v.value()));
        let schema = meta.get(SCHEMA)?.map(|v| u64_of(v.value()));
        match (epoch, schema) {
            (Some(Ok(e)), Some(SCHEMA_VERSION)) => RelayEpoch(e),
            (Some(Err(_)), _) => return Err(RelayStoreError::Corrupt("epoch".into())),
            (Some(Ok(_)), found) => {
                return Err(RelayStoreError::Schema {
                    found: found.unwrap_or(0),
                    supported: SCHEMA_VERSION,
                });
            }
            (None, _) if !create => {
                return Err(RelayStoreError::NotRelayDatabase(
                    path.display().to_string(),
                ));
            }
            (None, _) => {
                let e = RelayEpoch::from(uuid::Uuid::new_v4());
                meta.insert(EPOCH, e.as_bytes().as_slice())?;
                meta.insert(SCHEMA, SCHEMA_VERSION.to_be_bytes().as_slice())?;
                e
            }
        }
    };
    txn.open_table(FEED)?;
    txn.open_table(HEADS)?;
    txn.open_table(DOCS)?;
    txn.open_table(DOC_ENTRIES)?;
    txn.open_table(HASHES)?;
    txn.open_table(COMPANY_DOCS)?;
    txn.open_table(DIRTY)?;
    txn.open_table(BLOBS)?;
    txn.open_table(BLOB_COMPANIES)?;
    txn.open_table(PARKED)?;
    txn.open_table(PARKED_COUNT)?;
    txn.open_table(UNFOLDABLE)?;
    txn.open_table(ACTORS)?;
    access::upgrade(&txn)?;
    txn.commit()?;
    Ok(epoch)
}

/// Counts for metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreCounts {
    /// Documents stored.
    pub documents: u64,
    /// Changes stored since the database was created.
    pub changes: u64,
}

/// A read-only handle on the database: metrics and backups without the relay's lock.
#[derive(Clone)]
pub struct StoreHandle {
    db: Arc<Database>,
    path: PathBuf,
}

impl StoreHandle {
    /// Document and change counts, from one read transaction.
    pub fn counts(&self) -> Result<StoreCounts, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let documents = txn.open_table(DOCS)?.len()?;
        let changes = txn
            .open_table(META)?
            .get(CHANGES)?
            .map_or(0, |v| u64_of(v.value()));
        Ok(StoreCounts { documents, changes })
    }

    /// Writes a consistent copy of the database to `dest` while writers go on; the file
    /// appears only once complete. Restore it with [`RedbRelayStore::restore`], never by
    /// copying it in place: a restored database must get a new epoch.
    pub fn backup(&self, dest: &Path) -> Result<(), RelayStoreError> {
        backup::copy_all(&self.db, &self.path, dest)
    }
}

/// The relay's database.
pub struct RedbRelayStore {
    db: Arc<Database>,
    epoch: RelayEpoch,
    dir: PathBuf,
    path: PathBuf,
}

impl RedbRelayStore {
    /// Opens (or creates, with a fresh random epoch) the relay database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, RelayStoreError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        Self::open_file(dir, &dir.join(DB_FILE), true)
    }

    fn open_file(dir: &Path, path: &Path, create: bool) -> Result<Self, RelayStoreError> {
        let db = open_db(path)?;
        let epoch = init(&db, path, create)?;
        Ok(Self {
            db: Arc::new(db),
            epoch,
            dir: dir.to_path_buf(),
            path: path.to_path_buf(),
        })
    }

    /// Replaces the database in `dir` with the backup at `backup` and gives it a NEW epoch,
    /// so every replica notices, reconciles and re-uploads what the backup lacks. Refuses
    /// while a relay serves from `dir`.
    pub fn restore(backup: &Path, dir: &Path) -> Result<RelayEpoch, RelayStoreError> {
        backup::restore(backup, dir)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A handle for metrics and backups that does not need `&self` (or the relay's lock).
    pub fn handle(&self) -> StoreHandle {
        StoreHandle {
            db: self.db.clone(),
            path: self.path.clone(),
        }
    }

    /// Gives this database a new epoch (after a restore): every replica will repair.
    pub fn rotate_epoch(&mut self) -> Result<RelayEpoch, RelayStoreError> {
        let e = RelayEpoch::from(uuid::Uuid::new_v4());
        let txn = self.db.begin_write()?;
        txn.open_table(META)?
            .insert(EPOCH, e.as_bytes().as_slice())?;
        txn.commit()?;
        self.epoch = e;
        Ok(e)
    }

    /// Revokes every token of a replica name issued up to `at` (seconds since the Unix
    /// epoch), durably; a token issued later is accepted again.
    pub fn revoke(&mut self, name: &str, at: u64) -> Result<(), RelayStoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(REVOCATIONS)?.insert(name, at)?;
        txn.commit()?;
        Ok(())
    }

    /// Document and change counts.
    pub fn counts(&self) -> Result<StoreCounts, RelayStoreError> {
        self.handle().counts()
    }

    /// Writes a consistent copy of the database to `dest` (see [`StoreHandle::backup`]).
    pub fn backup(&self, dest: &Path) -> Result<(), RelayStoreError> {
        self.handle().backup(dest)
    }

    fn doc_record(
        table: &impl ReadableTable<&'static [u8; 16], &'static [u8]>,
        doc: &DocId,
    ) -> Result<Option<DocRecord>, RelayStoreError> {
        table
            .get(doc.as_bytes())?
            .map(|v| decode(v.value(), "doc"))
            .transpose()
    }
}

/// Replaces the database in `dir` with `backup` and gives it a new epoch (see
/// [`RedbRelayStore::restore`]).
pub fn restore(backup: &Path, dir: &Path) -> Result<RelayEpoch, RelayStoreError> {
    RedbRelayStore::restore(backup, dir)
}
