//! The two stores a relay serves from: the embedded redb file (the default, one node) or a
//! PostgreSQL database several nodes share (`serve --store postgres://…`). The relay core sees
//! one [`RelayStore`]; the network layer one [`AnyHandle`] for what it reads beside the core.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use automerge::{ActorId, ChangeHash};
use thiserror::Error;

use ficha_core::blob::BlobHash;
use ficha_core::digest::DocDigests;
use ficha_core::frame::FeedEntry;
use ficha_core::relay::{Binding, IngestDoc, LoadedDoc, NewEntry, RelayStore};
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId, Seq};

use crate::pg::{PgError, PgHandle, PgRelayStore};
use crate::store::{CompanyCensus, RedbRelayStore, RelayStoreError, StoreCounts, StoreHandle};

/// What either store fails with.
#[derive(Debug, Error)]
pub enum AnyError {
    /// The redb store failed.
    #[error(transparent)]
    Redb(#[from] RelayStoreError),
    /// The PostgreSQL store failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// An operation the PostgreSQL store leaves to the database's own tools.
    #[error("{0}")]
    NotOnPostgres(&'static str),
}

/// The store a relay serves from.
pub enum AnyStore {
    /// One redb file in the data directory.
    Redb(RedbRelayStore),
    /// A database shared by the nodes of a cluster (boxed: it holds its own runtime).
    Pg(Box<PgRelayStore>),
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Redb($s) => $e.map_err(AnyError::from),
            AnyStore::Pg($s) => $e.map_err(AnyError::from),
        }
    };
}

impl AnyStore {
    /// True when other relay nodes may write this store.
    pub fn shared(&self) -> bool {
        matches!(self, AnyStore::Pg(_))
    }

    /// Folds feed entries, a bounded batch per call (redb only for now: a PostgreSQL feed is
    /// kept whole).
    pub fn compact(&mut self, max_bytes: usize) -> Result<usize, AnyError> {
        match self {
            AnyStore::Redb(s) => Ok(s.compact(max_bytes)?),
            AnyStore::Pg(_) => Ok(0),
        }
    }

    /// Connects the PostgreSQL store again if the database dropped its connection.
    pub fn reconnect_if_closed(&mut self) -> Result<bool, AnyError> {
        match self {
            AnyStore::Redb(_) => Ok(false),
            AnyStore::Pg(s) => Ok(s.reconnect_if_closed()?),
        }
    }

    /// Revokes every token of `name` issued at or before `at`.
    pub fn revoke(&mut self, name: &str, at: u64) -> Result<(), AnyError> {
        each!(self, s => s.revoke(name, at))
    }
}

impl RelayStore for AnyStore {
    type Error = AnyError;

    fn epoch(&self) -> RelayEpoch {
        match self {
            AnyStore::Redb(s) => s.epoch(),
            AnyStore::Pg(s) => s.epoch(),
        }
    }
    fn revoked_at(&self, name: &str) -> Result<Option<u64>, AnyError> {
        each!(self, s => s.revoked_at(name))
    }
    fn bind_replica(&mut self, name: &str, id: ReplicaId) -> Result<Binding, AnyError> {
        each!(self, s => s.bind_replica(name, id))
    }
    fn bind_actors(&mut self, name: &str, a: &[ActorId]) -> Result<Option<ActorId>, AnyError> {
        each!(self, s => s.bind_actors(name, a))
    }
    fn read_feed(&self, c: &Company, after: Seq, max: usize) -> Result<Vec<FeedEntry>, AnyError> {
        each!(self, s => s.read_feed(c, after, max))
    }
    fn doc_company(&self, doc: &DocId) -> Result<Option<Company>, AnyError> {
        each!(self, s => s.doc_company(doc))
    }
    fn ingest(&mut self, o: ReplicaId, docs: Vec<IngestDoc>) -> Result<Vec<NewEntry>, AnyError> {
        each!(self, s => s.ingest(o, docs))
    }
    fn parked_count(&self, company: &Company) -> Result<usize, AnyError> {
        each!(self, s => s.parked_count(company))
    }
    fn doc_digests(&self, company: &Company) -> Result<(Seq, DocDigests), AnyError> {
        each!(self, s => s.doc_digests(company))
    }
    fn load_doc(&self, doc: &DocId) -> Result<Option<LoadedDoc>, AnyError> {
        each!(self, s => s.load_doc(doc))
    }
    fn doc_state(&self, doc: &DocId) -> Result<Option<(Vec<ChangeHash>, usize)>, AnyError> {
        each!(self, s => s.doc_state(doc))
    }
    fn set_heads(&mut self, doc: &DocId, heads: &[ChangeHash]) -> Result<(), AnyError> {
        each!(self, s => s.set_heads(doc, heads))
    }
}

/// The network layer's own way into the store: metrics, the admin page, blobs, revocation
/// checks of blob requests. Never waits for the relay's lock.
#[derive(Clone)]
pub enum AnyHandle {
    /// A read handle on the redb file.
    Redb(StoreHandle),
    /// A connection of its own to the shared database.
    Pg(Arc<PgHandle>),
}

macro_rules! each_handle {
    ($self:expr, $h:ident => $e:expr) => {
        match $self {
            AnyHandle::Redb($h) => $e.map_err(AnyError::from),
            AnyHandle::Pg($h) => $e.map_err(AnyError::from),
        }
    };
}

impl AnyHandle {
    /// Document and change counts.
    pub fn counts(&self) -> Result<StoreCounts, AnyError> {
        each_handle!(self, h => h.counts())
    }
    /// Every company's figures.
    pub fn census(&self) -> Result<Vec<CompanyCensus>, AnyError> {
        each_handle!(self, h => h.census())
    }
    /// Each company's last feed sequence.
    pub fn feed_heads(&self) -> Result<BTreeMap<String, u64>, AnyError> {
        each_handle!(self, h => h.feed_heads())
    }
    /// Documents compaction leaves unfolded (none on PostgreSQL, which does not fold).
    pub fn unfoldable(&self) -> Result<Vec<(DocId, String)>, AnyError> {
        match self {
            AnyHandle::Redb(h) => Ok(h.unfoldable()?),
            AnyHandle::Pg(_) => Ok(Vec::new()),
        }
    }
    /// True when a token of `name` issued at `issued_at` was revoked since.
    pub fn is_revoked(&self, name: &str, issued_at: u64) -> Result<bool, AnyError> {
        each_handle!(self, h => h.is_revoked(name, issued_at))
    }
    /// Stores a blob for `company`; true if `company` did not have it yet.
    pub fn put_blob(&self, hash: &BlobHash, c: &Company, bytes: &[u8]) -> Result<bool, AnyError> {
        each_handle!(self, h => h.put_blob(hash, c, bytes))
    }
    /// A blob's bytes, if one of `companies` uploaded it.
    pub fn blob_for(&self, hash: &BlobHash, cs: &[Company]) -> Result<Option<Vec<u8>>, AnyError> {
        each_handle!(self, h => h.blob_for(hash, cs))
    }
    /// Number of distinct blobs stored.
    pub fn blob_count(&self) -> Result<u64, AnyError> {
        each_handle!(self, h => h.blob_count())
    }
    /// Writes a consistent copy of the redb file; a PostgreSQL cluster is backed up with
    /// `pg_dump` or base backups instead.
    pub fn backup(&self, dest: &Path) -> Result<(), AnyError> {
        match self {
            AnyHandle::Redb(h) => Ok(h.backup(dest)?),
            AnyHandle::Pg(_) => Err(AnyError::NotOnPostgres(
                "this relay stores in PostgreSQL: back it up with pg_dump (or a base backup), not ficha-relay backup",
            )),
        }
    }
}
