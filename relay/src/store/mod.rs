//! The relay's redb store: per-company change feeds and the indexes the protocol needs.
//!
//! Every `ingest` is one durable write transaction. Nothing here holds documents in memory:
//! `load_doc` reads only that document's feed entries (through `DOC_ENTRIES`), and digests come
//! from stored heads, maintained incrementally as changes arrive.

mod backup;
mod schema;

use std::path::{Path, PathBuf};

use automerge::{Automerge, ChangeHash, ReadDoc};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use ficha_core::digest::{DocDigests, heads_digest};
use ficha_core::frame::FeedEntry;
use ficha_core::mem::advance_heads;
use ficha_core::relay::{IngestDoc, RelayStore};
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId, Seq};

use schema::*;

/// Database file name inside the relay's data directory.
pub const DB_FILE: &str = "relay.redb";

/// What the relay store can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RelayStoreError {
    /// Another process holds the database.
    #[error(
        "the relay database in {0} is in use by another process (is `ficha-relay serve` running?)"
    )]
    Locked(String),
    /// Stored bytes that do not decode.
    #[error("corrupt relay record: {0}")]
    Corrupt(String),
    /// redb failed.
    #[error("storage: {0}")]
    Redb(#[from] redb::Error),
    /// The file system failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
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

/// The relay's database.
pub struct RedbRelayStore {
    db: Database,
    epoch: RelayEpoch,
    dir: PathBuf,
}

/// Counts for metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreCounts {
    /// Documents stored.
    pub documents: u64,
    /// Changes stored since the database was created.
    pub changes: u64,
}

impl RedbRelayStore {
    /// Opens (or creates) the relay database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, RelayStoreError> {
        std::fs::create_dir_all(dir)?;
        let db = match Database::create(dir.join(DB_FILE)) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(RelayStoreError::Locked(dir.display().to_string()));
            }
            Err(e) => return Err(RelayStoreError::Redb(e.into())),
        };
        let txn = db.begin_write()?;
        let epoch = {
            let mut meta = txn.open_table(META)?;
            let existing = meta
                .get(EPOCH)?
                .and_then(|v| <[u8; 16]>::try_from(v.value()).ok());
            match existing {
                Some(e) => RelayEpoch(e),
                None => {
                    let e = RelayEpoch::from(uuid::Uuid::new_v4());
                    meta.insert(EPOCH, e.as_bytes().as_slice())?;
                    meta.insert(SCHEMA, SCHEMA_VERSION.to_be_bytes().as_slice())?;
                    e
                }
            }
        };
        // Create every table so readers never meet a missing one.
        txn.open_table(FEED)?;
        txn.open_table(HEADS)?;
        txn.open_table(DOCS)?;
        txn.open_table(DOC_ENTRIES)?;
        txn.open_table(HASHES)?;
        txn.open_table(COMPANY_DOCS)?;
        txn.open_table(BINDINGS)?;
        txn.open_table(REVOKED)?;
        txn.open_table(DIRTY)?;
        txn.commit()?;
        Ok(Self {
            db,
            epoch,
            dir: dir.to_path_buf(),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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

    /// Revokes every token of a replica name.
    pub fn revoke(&mut self, name: &str) -> Result<(), RelayStoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(REVOKED)?.insert(name, ())?;
        txn.commit()?;
        Ok(())
    }

    /// Document and change counts.
    pub fn counts(&self) -> Result<StoreCounts, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let documents = txn.open_table(DOCS)?.len()?;
        let changes = txn
            .open_table(META)?
            .get(CHANGES)?
            .map_or(0, |v| u64_of(v.value()));
        Ok(StoreCounts { documents, changes })
    }

    /// Writes a consistent copy of the database to `dest` (while serving).
    pub fn backup(&self, dest: &Path) -> Result<(), RelayStoreError> {
        backup::copy_all(&self.db, dest)
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

impl RedbRelayStore {
    /// Folds the feed entries of up to `max_docs` recently changed documents into one saved
    /// Automerge document each; returns how many documents were compacted.
    ///
    /// The folded bytes replace the document's *latest* entry and the earlier entries are
    /// deleted, so every checkpoint stays valid: a replica whose checkpoint lies before any
    /// deleted entry still receives the surviving entry, which contains everything. Runs off the
    /// live path (the server calls it from a background task); it is the only relay code that
    /// loads a whole document outside repair.
    pub fn compact(&mut self, max_docs: usize) -> Result<usize, RelayStoreError> {
        let txn = self.db.begin_write()?;
        let mut done = 0;
        {
            let mut dirty = txn.open_table(DIRTY)?;
            let mut feed = txn.open_table(FEED)?;
            let mut entries_t = txn.open_table(DOC_ENTRIES)?;
            let docs_t = txn.open_table(DOCS)?;
            let batch: Vec<[u8; 16]> = dirty
                .iter()?
                .take(max_docs)
                .map(|i| i.map(|(k, _)| *k.value()))
                .collect::<Result<_, _>>()?;
            for id in batch {
                dirty.remove(&id)?;
                let doc = DocId(id);
                let Some(rec) = Self::doc_record(&docs_t, &doc)? else {
                    continue;
                };
                let seqs: Vec<u64> = entries_t
                    .range((&id, 0)..=(&id, u64::MAX))?
                    .map(|i| i.map(|(k, _)| k.value().1))
                    .collect::<Result<_, _>>()?;
                let Some(&last) = seqs.last() else { continue };
                let c = rec.company.as_str();
                let mut automerge = Automerge::new();
                let mut origin = [0u8; 16];
                for seq in &seqs {
                    if let Some(v) = feed.get((c, *seq))? {
                        let fr: FeedRecord = decode(v.value(), "feed entry")?;
                        origin = fr.origin;
                        automerge.load_incremental(&fr.changes).map_err(|e| {
                            RelayStoreError::Corrupt(format!("document {doc}: {e}"))
                        })?;
                    }
                }
                if !automerge.get_missing_deps(&[]).is_empty() {
                    // Changes still waiting for their history: fold them once it arrives.
                    continue;
                }
                let folded = FeedRecord {
                    doc: id,
                    origin,
                    changes: automerge.save(),
                };
                feed.insert((c, last), encode(&folded).as_slice())?;
                for seq in &seqs[..seqs.len() - 1] {
                    feed.remove((c, *seq))?;
                    entries_t.remove((&id, *seq))?;
                }
                done += 1;
            }
        }
        txn.commit()?;
        Ok(done)
    }
}

/// Replaces the database in `dir` with `backup` and gives it a new epoch.
pub fn restore(backup: &Path, dir: &Path) -> Result<RelayEpoch, RelayStoreError> {
    std::fs::create_dir_all(dir)?;
    let target = dir.join(DB_FILE);
    let tmp = dir.join("relay.redb.restoring");
    std::fs::copy(backup, &tmp)?;
    std::fs::rename(&tmp, &target)?;
    let mut store = RedbRelayStore::open(dir)?;
    store.rotate_epoch()
}

impl RelayStore for RedbRelayStore {
    type Error = RelayStoreError;

    fn epoch(&self) -> RelayEpoch {
        self.epoch
    }

    fn is_revoked(&self, name: &str) -> Result<bool, RelayStoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(REVOKED)?.get(name)?.is_some())
    }

    fn bind_replica(&mut self, name: &str, id: ReplicaId) -> Result<bool, RelayStoreError> {
        let txn = self.db.begin_write()?;
        let ok = {
            let mut t = txn.open_table(BINDINGS)?;
            let bound = t.get(name)?.map(|v| *v.value());
            match bound {
                Some(b) => b == id.0,
                None => {
                    t.insert(name, &id.0)?;
                    true
                }
            }
        };
        txn.commit()?;
        Ok(ok)
    }

    fn read_feed(
        &self,
        company: &Company,
        after: Seq,
        max_bytes: usize,
    ) -> Result<Vec<FeedEntry>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let feed = txn.open_table(FEED)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let c = company.as_str();
        for item in feed.range((c, after.saturating_add(1))..=(c, u64::MAX))? {
            let (k, v) = item?;
            let rec: FeedRecord = decode(v.value(), "feed entry")?;
            if !out.is_empty() && bytes + rec.changes.len() > max_bytes {
                break;
            }
            bytes += rec.changes.len();
            out.push(FeedEntry {
                seq: k.value().1,
                doc: DocId(rec.doc),
                changes: rec.changes,
            });
        }
        Ok(out)
    }

    fn doc_company(&self, doc: &DocId) -> Result<Option<Company>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let rec = Self::doc_record(&txn.open_table(DOCS)?, doc)?;
        rec.map(|r| Company::new(&r.company).map_err(|e| RelayStoreError::Corrupt(e.to_string())))
            .transpose()
    }

    fn ingest(
        &mut self,
        origin: ReplicaId,
        docs: Vec<IngestDoc>,
    ) -> Result<Vec<(Company, FeedEntry)>, RelayStoreError> {
        let txn = self.db.begin_write()?;
        let mut out = Vec::new();
        {
            let mut feed = txn.open_table(FEED)?;
            let mut heads_t = txn.open_table(HEADS)?;
            let mut docs_t = txn.open_table(DOCS)?;
            let mut entries_t = txn.open_table(DOC_ENTRIES)?;
            let mut hashes_t = txn.open_table(HASHES)?;
            let mut company_t = txn.open_table(COMPANY_DOCS)?;
            let mut meta = txn.open_table(META)?;
            let mut dirty = txn.open_table(DIRTY)?;
            let mut stored = 0u64;
            for IngestDoc {
                doc,
                company,
                changes,
            } in docs
            {
                let mut rec = match Self::doc_record(&docs_t, &doc)? {
                    Some(r) => r,
                    None => {
                        company_t.insert((company.as_str(), doc.as_bytes()), ())?;
                        DocRecord {
                            company: company.as_str().to_string(),
                            heads: Vec::new(),
                        }
                    }
                };
                let mut heads: Vec<ChangeHash> = rec.heads.iter().map(|h| ChangeHash(*h)).collect();
                let mut bytes = Vec::new();
                for mut c in changes {
                    let hash = c.hash();
                    if hashes_t.get((doc.as_bytes(), &hash.0))?.is_some() {
                        continue;
                    }
                    hashes_t.insert((doc.as_bytes(), &hash.0), ())?;
                    advance_heads(&mut heads, &c);
                    // Automerge's own DEFLATE form: every loader accepts it, and it is what
                    // makes feed bytes comparable to saved documents.
                    bytes.extend_from_slice(&c.bytes());
                    stored += 1;
                }
                if bytes.is_empty() {
                    continue;
                }
                let seq = heads_t.get(company.as_str())?.map_or(0, |v| v.value()) + 1;
                heads_t.insert(company.as_str(), seq)?;
                let record = FeedRecord {
                    doc: doc.0,
                    origin: origin.0,
                    changes: bytes,
                };
                feed.insert((company.as_str(), seq), encode(&record).as_slice())?;
                entries_t.insert((doc.as_bytes(), seq), ())?;
                dirty.insert(doc.as_bytes(), ())?;
                rec.heads = heads.iter().map(|h| h.0).collect();
                docs_t.insert(doc.as_bytes(), encode(&rec).as_slice())?;
                out.push((
                    company,
                    FeedEntry {
                        seq,
                        doc,
                        changes: record.changes,
                    },
                ));
            }
            let total = meta.get(CHANGES)?.map_or(0, |v| u64_of(v.value())) + stored;
            meta.insert(CHANGES, total.to_be_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(out)
    }

    fn doc_digests(&self, company: &Company) -> Result<(Seq, DocDigests), RelayStoreError> {
        let txn = self.db.begin_read()?;
        let head = txn
            .open_table(HEADS)?
            .get(company.as_str())?
            .map_or(0, |v| v.value());
        let index = txn.open_table(COMPANY_DOCS)?;
        let docs = txn.open_table(DOCS)?;
        let c = company.as_str();
        let mut out = Vec::new();
        for item in index.range((c, &[0u8; 16])..=(c, &[0xffu8; 16]))? {
            let id = DocId(*item?.0.value().1);
            if let Some(rec) = Self::doc_record(&docs, &id)? {
                let heads: Vec<ChangeHash> = rec.heads.iter().map(|h| ChangeHash(*h)).collect();
                out.push((id, heads_digest(&heads)));
            }
        }
        Ok((head, out))
    }

    fn load_doc(&self, doc: &DocId) -> Result<Option<Automerge>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let Some(rec) = Self::doc_record(&txn.open_table(DOCS)?, doc)? else {
            return Ok(None);
        };
        let entries = txn.open_table(DOC_ENTRIES)?;
        let feed = txn.open_table(FEED)?;
        let mut d = Automerge::new();
        for item in entries.range((doc.as_bytes(), 0)..=(doc.as_bytes(), u64::MAX))? {
            let seq = item?.0.value().1;
            if let Some(v) = feed.get((rec.company.as_str(), seq))? {
                let fr: FeedRecord = decode(v.value(), "feed entry")?;
                if let Err(e) = d.load_incremental(&fr.changes) {
                    return Err(RelayStoreError::Corrupt(format!("document {doc}: {e}")));
                }
            }
        }
        Ok(Some(d))
    }

    fn set_heads(&mut self, doc: &DocId, heads: &[ChangeHash]) -> Result<(), RelayStoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut docs = txn.open_table(DOCS)?;
            if let Some(mut rec) = Self::doc_record(&docs, doc)? {
                let mut h: Vec<[u8; 32]> = heads.iter().map(|h| h.0).collect();
                h.sort();
                rec.heads = h;
                docs.insert(doc.as_bytes(), encode(&rec).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}
