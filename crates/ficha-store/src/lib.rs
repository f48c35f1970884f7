//! The replica's embedded store: one redb file per data directory.
//!
//! It holds every document the replica may see (a compacted snapshot plus incremental chunks
//! each), an index by company, each document's heads, the domain's summaries, the outbox of
//! local changes the relay has not acknowledged, the relay checkpoints and the replica's
//! identity. A local edit is one write transaction, durable when the call returns; an incoming
//! feed page is one transaction together with its checkpoint. Reading one document never
//! loads another.

mod blobs;
mod derived;
mod doc_cache;
mod doc_io;
mod error;
mod identity;
mod index;
mod journal;
mod quarantine;
mod schema;
mod sync_store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit, Automerge};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use ficha_core::frame::MAX_CHANGE_BYTES;
use ficha_core::ids::actor_for;
use ficha_core::{Company, DocId, ReplicaId};

pub use doc_cache::CACHED_DOCS;
pub use doc_io::{COMPACT_AFTER_CHUNKS, DocMeta};
pub use error::StoreError;
pub use ficha_core::index::{IndexKeys, Indexer, NoIndex};
pub use identity::Identity;
pub use index::IndexReader;
pub use journal::{CHECKPOINT_AFTER_RECORDS, JOURNAL_FILE, journaled_edits};
pub use quarantine::{QuarantinedDoc, RefusedEntry};
pub use sync_store::SyncStore;

use doc_cache::{DocCache, Warm};
use doc_io::{DocTables, StoredDoc};
use journal::Journal;
use schema::{CHUNKS, DOCS, OUTBOX, SNAPSHOTS, SUMMARIES};

/// File name of the database inside a data directory.
pub const DB_FILE: &str = "replica.redb";

/// One local change waiting for the relay's acknowledgement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutboxEntry {
    pub doc: DocId,
    pub company: Company,
    pub change: Vec<u8>,
}

impl OutboxEntry {
    /// The bytes stored in the outbox and in the edit journal.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, StoreError> {
        postcard::to_allocvec(self).map_err(|e| StoreError::Corrupt(format!("outbox entry: {e}")))
    }
}

/// An open replica store.
pub struct Store {
    db: Database,
    dir: PathBuf,
    identity: Identity,
    actor: ActorId,
    indexer: Arc<dyn Indexer>,
    cache: DocCache,
    /// Held from the start of a local edit's transaction until it is durable, so emptying the
    /// journal can never drop an edit redb has not made durable.
    journal: Mutex<Journal>,
}

/// A document left materialised by a write, to be cached once the write is durable.
type Touched = Option<(DocId, Warm)>;

/// redb's page cache for a replica. Its default (1 GiB) would let a replica's memory grow with
/// every document it syncs; past this, reads fall back to the OS page cache.
pub const CACHE_BYTES: usize = 32 << 20;

fn open_db(dir: &Path) -> Result<Database, StoreError> {
    match Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(dir.join(DB_FILE))
    {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            Err(StoreError::Locked(dir.display().to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// A table nothing was written to yet does not exist: read it as absent instead of failing.
pub(crate) fn optional<T>(opened: Result<T, redb::TableError>) -> Result<Option<T>, StoreError> {
    match opened {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Runs `f` against the last local change of `doc`, as raw bytes.
fn last_change_bytes(doc: &mut AutoCommit) -> Option<Vec<u8>> {
    doc.get_last_local_change().map(|c| c.raw_bytes().to_vec())
}

impl Store {
    /// Creates a new replica in `dir` (which may not exist yet).
    pub fn init(dir: &Path, identity: &Identity) -> Result<(), StoreError> {
        std::fs::create_dir_all(dir)?;
        if dir.join(DB_FILE).exists() {
            return Err(StoreError::AlreadyInitialised(dir.display().to_string()));
        }
        let db = open_db(dir)?;
        identity::write(&db, identity)?;
        Ok(())
    }

    /// Opens the replica in `dir`, with the domain's indexer.
    pub fn open(dir: &Path, indexer: Arc<dyn Indexer>) -> Result<Self, StoreError> {
        if !dir.join(DB_FILE).exists() {
            return Err(StoreError::NotInitialised(dir.display().to_string()));
        }
        let damaged = |reason: String| StoreError::Damaged {
            path: dir.join(DB_FILE).display().to_string(),
            reason,
        };
        // redb fails on some damage by panicking: that is a damaged file, not a crash.
        let mut db = ficha_core::guard::contain(|| open_db(dir)).map_err(damaged)??;
        // Every page's checksum, before anything is read: damage must stop the opening with a
        // clear error, never show as a shorter list. (About 2 ms per MiB of database.)
        match ficha_core::guard::contain(|| db.check_integrity()).map_err(damaged)? {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "redb repaired the database after an unclean shutdown; the edit journal restores what it held"
            ),
            Err(e) => return Err(damaged(e.to_string())),
        }
        let identity = match ficha_core::guard::contain(|| identity::read(&db)).map_err(damaged)? {
            Ok(i) => i,
            Err(StoreError::Corrupt(reason)) => return Err(damaged(reason)),
            Err(e @ StoreError::Schema { .. }) => return Err(e),
            Err(StoreError::Redb(e)) => return Err(damaged(e.to_string())),
            Err(_) => return Err(StoreError::NotInitialised(dir.display().to_string())),
        };
        // A fresh actor suffix per opening: see `ficha_core::ids::actor_for`.
        let incarnation = uuid::Uuid::new_v4().as_u128() as u32;
        let actor = actor_for(identity.replica, incarnation);
        let (journal, records, damage) = Journal::open(dir)?;
        let store = Self {
            db,
            dir: dir.to_path_buf(),
            identity,
            actor,
            indexer,
            cache: DocCache::new(),
            journal: Mutex::new(journal),
        };
        store.replay_journal(records)?;
        store.record_journal_damage(&damage)?;
        store.reindex_if_stale()?;
        Ok(store)
    }

    /// Verifies the whole database file (every page's checksum, by redb) and that every
    /// document's record and summary decode; the replica must not be open elsewhere. Returns
    /// what it checked, or the damage.
    pub fn check(dir: &Path) -> Result<u64, StoreError> {
        let damaged = |reason: String| StoreError::Damaged {
            path: dir.join(DB_FILE).display().to_string(),
            reason,
        };
        let mut db = ficha_core::guard::contain(|| open_db(dir)).map_err(damaged)??;
        let intact = ficha_core::guard::contain(|| db.check_integrity())
            .map_err(damaged)?
            .map_err(|e| damaged(e.to_string()))?;
        if !intact {
            return Err(damaged("redb's integrity check failed".into()));
        }
        let txn = db.begin_read()?;
        let mut checked = 0;
        if let Some(docs) = optional(txn.open_table(DOCS))? {
            for row in docs.iter()? {
                let (id, meta) = row?;
                DocMeta::decode(meta.value())
                    .map_err(|e| damaged(format!("document {}: {e}", DocId(*id.value()))))?;
                checked += 1;
            }
        }
        Ok(checked)
    }

    /// Rebuilds the list index from the stored summaries when it was built by another version
    /// of the index or of the domain's indexer. Loads no document.
    fn reindex_if_stale(&self) -> Result<(), StoreError> {
        let wanted = (index::INDEX_VERSION << 32) | self.indexer.version();
        // Every open (every CLI command) passes here: check with a read, write only to rebuild.
        let built = self
            .db
            .begin_read()?
            .open_table(schema::META)?
            .get(identity::INDEX_BUILT)?
            .map(|v| identity::u64_of(v.value()));
        if built == Some(wanted) {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(schema::META)?;
            let summaries = txn.open_table(SUMMARIES)?;
            let mut tables = index::IndexTables::open(&txn)?;
            tables.clear()?;
            let mut rebuilt = 0u64;
            for row in summaries.iter()? {
                let (id, summary) = row?;
                if let Some(keys) = self.indexer.keys(summary.value()) {
                    tables.update(&DocId(*id.value()), &keys)?;
                    rebuilt += 1;
                }
            }
            meta.insert(identity::INDEX_BUILT, wanted.to_be_bytes().as_slice())?;
            tracing::info!(documents = rebuilt, "rebuilt the list index");
        }
        txn.commit()?;
        Ok(())
    }

    /// A consistent read view of the list index and summaries (None before any document).
    pub fn index(&self) -> Result<Option<IndexReader>, StoreError> {
        IndexReader::open(&self.db.begin_read()?)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Who this replica is and where it syncs.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// This replica's id.
    pub fn replica(&self) -> ReplicaId {
        self.identity.replica
    }

    /// Creates a document in `company` by running `f` on an empty one; durable when it returns.
    /// The caller's error type carries both `f`'s refusals and the store's failures, typed.
    pub fn create_doc<T, E: From<StoreError>>(
        &self,
        doc: DocId,
        company: &Company,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<T, E> {
        self.local_edit(doc, Some(company), f)
    }

    /// Edits an existing document by running `f` on it; durable when it returns.
    pub fn edit_doc<T, E: From<StoreError>>(
        &self,
        doc: DocId,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<T, E> {
        self.local_edit(doc, None, f)
    }

    /// One local edit in its own transaction, made durable by the journal (see
    /// [`journal`](crate::journal)) or, every so many edits, by a durable commit.
    fn local_edit<T, E: From<StoreError>>(
        &self,
        doc: DocId,
        create_in: Option<&Company>,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut journal = self.journal_lock();
        let mut txn = self.db.begin_write().map_err(StoreError::from)?;
        let journaled = !journal.wants_checkpoint();
        let written = self.write_local(&txn, doc, create_in, f, journaled.then_some(&mut *journal));
        let (out, touched, changed) = match written {
            Ok(w) => w,
            Err(e) => {
                // The transaction is dropped: its record must not be replayed either.
                journal.abandon()?;
                return Err(e);
            }
        };
        if !changed || journaled {
            // Durable from the journal's fsync on: a crash before redb's commit is repaired by
            // the replay. With nothing changed there is nothing to make durable.
            if changed {
                journal.finish()?;
            }
            let committed = (move || -> Result<(), StoreError> {
                txn.set_durability(Durability::None)
                    .map_err(redb::Error::from)?;
                txn.commit()?;
                Ok(())
            })();
            if let Err(e) = committed {
                // Refused: the journal must not bring the edit back at the next open.
                if changed {
                    journal.retract()?;
                }
                return Err(e.into());
            }
        } else {
            txn.commit().map_err(StoreError::from)?;
            journal.reset()?;
        }
        drop(journal);
        self.keep_warm(touched);
        Ok(out)
    }

    /// Makes every journaled edit durable in redb and empties the journal.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let mut journal = self.journal_lock();
        if journal.is_empty() {
            return Ok(());
        }
        self.db.begin_write()?.commit()?;
        journal.reset()
    }

    fn journal_lock(&self) -> MutexGuard<'_, Journal> {
        // A panic mid-append leaves the journal's length at its last whole record, where the
        // next append writes: the journal stays usable.
        self.journal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a batch: many local edits in one transaction, durable together at
    /// [`Batch::commit`] (nothing of it survives a crash before). For bulk work such as imports,
    /// where one fsync per record would dominate.
    pub fn batch(&self) -> Result<Batch<'_>, StoreError> {
        Ok(Batch {
            store: self,
            txn: self.db.begin_write()?,
        })
    }

    /// Caches a document whose write has committed.
    fn keep_warm(&self, touched: Touched) {
        if let Some((doc, warm)) = touched {
            self.cache.put(doc, warm);
        }
    }

    /// One local edit inside `txn`. A failing `f` writes nothing, so a batch carries on.
    /// Returns the edited document for the caller to cache once `txn` commits.
    fn write_local<T, E: From<StoreError>>(
        &self,
        txn: &redb::WriteTransaction,
        doc_id: DocId,
        create_in: Option<&Company>,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
        journal: Option<&mut Journal>,
    ) -> Result<(T, Touched, bool), E> {
        let mut tables = DocTables::open(txn)?;
        let meta = tables.meta(&doc_id)?;
        let (mut doc, company) = match (&meta, create_in) {
            (Some(_), Some(_)) => return Err(StoreError::DocExists(doc_id).into()),
            (None, None) => return Err(StoreError::UnknownDoc(doc_id).into()),
            (None, Some(c)) => (AutoCommit::new(), c.clone()),
            (Some(m), None) => {
                let company =
                    Company::new(&m.company).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let doc = match self.cache.take(&doc_id, &m.heads) {
                    Some(warm) => warm,
                    None => tables.load(&doc_id)?,
                };
                (doc, company)
            }
        };
        doc.set_actor(self.actor.clone());
        let result = f(&mut doc)?;
        let now = chrono_free_now();
        if doc
            .commit_with(CommitOptions::default().with_time(now))
            .is_none()
        {
            // Nothing changed: nothing to store or send.
            let touched = meta.map(|m| {
                (
                    doc_id,
                    Warm {
                        heads: m.heads,
                        doc,
                    },
                )
            });
            return Ok((result, touched, false));
        }
        let change = last_change_bytes(&mut doc)
            .ok_or_else(|| StoreError::Corrupt("commit produced no change".into()))?;
        // Refused before anything is written or acknowledged: the relay would refuse it, and a
        // change that can never be uploaded must not wait in the outbox forever.
        if change.len() > MAX_CHANGE_BYTES {
            return Err(StoreError::TooLarge {
                size: change.len(),
                limit: MAX_CHANGE_BYTES,
            }
            .into());
        }
        let mut outbox = txn.open_table(OUTBOX).map_err(StoreError::from)?;
        let seq = identity::next_outbox_seq(txn, &outbox)?;
        let entry = OutboxEntry {
            doc: doc_id,
            company,
            change,
        };
        let bytes = entry.encode()?;
        if let Some(journal) = journal {
            // The disk works on the record while this thread updates the tables.
            journal.begin(seq, &bytes)?;
        }
        let heads = tables.append(
            &doc_id,
            &entry.company,
            meta,
            &entry.change,
            doc.document(),
            self.indexer.as_ref(),
        )?;
        outbox
            .insert(seq, bytes.as_slice())
            .map_err(StoreError::from)?;
        Ok((result, Some((doc_id, Warm { heads, doc })), true))
    }

    /// Loads one document, or None if the replica does not hold it.
    pub fn read_doc(&self, doc: &DocId) -> Result<Option<Automerge>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(docs) = optional(txn.open_table(DOCS))? else {
            return Ok(None);
        };
        let Some(meta) = docs.get(doc.as_bytes())? else {
            return Ok(None);
        };
        let meta = DocMeta::decode(meta.value())?;
        if let Some(warm) = self.cache.copy(doc, &meta.heads) {
            return Ok(Some(warm));
        }
        StoredDoc::read(&txn.open_table(SNAPSHOTS)?, &txn.open_table(CHUNKS)?, doc)?
            .automerge(doc)
            .map(Some)
    }

    /// A document's stored metadata (company, heads) without loading it.
    pub fn doc_meta(&self, doc: &DocId) -> Result<Option<DocMeta>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(docs) = optional(txn.open_table(DOCS))? else {
            return Ok(None);
        };
        docs.get(doc.as_bytes())?
            .map(|v| DocMeta::decode(v.value()))
            .transpose()
    }

    /// Every document's summary, in document-id order, without loading any document.
    pub fn summaries(&self) -> Result<Vec<(DocId, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = optional(txn.open_table(SUMMARIES))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.push((DocId(*k.value()), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Number of local changes the relay has not acknowledged.
    pub fn pending_upload(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        optional(txn.open_table(OUTBOX))?.map_or(Ok(0), |t| Ok(t.len()?))
    }

    /// Number of documents held.
    pub fn doc_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        optional(txn.open_table(DOCS))?.map_or(Ok(0), |t| Ok(t.len()?))
    }

    /// Chunks a document has since its last snapshot (observability and tests).
    pub fn chunk_count(&self, doc: &DocId) -> Result<u32, StoreError> {
        Ok(self.doc_meta(doc)?.map_or(0, |m| m.chunks))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // A clean close leaves nothing to replay.
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "could not checkpoint the edit journal on close; it will be replayed at the next open");
        }
    }
}

/// Change timestamps in seconds; only informational in Automerge, so the system clock is fine.
fn chrono_free_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Local edits sharing one write transaction; see [`Store::batch`].
pub struct Batch<'s> {
    store: &'s Store,
    txn: redb::WriteTransaction,
}

impl Batch<'_> {
    /// Creates a document, as [`Store::create_doc`], inside the batch.
    pub fn create_doc<T, E: From<StoreError>>(
        &self,
        doc: DocId,
        company: &Company,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<T, E> {
        Ok(self
            .store
            .write_local(&self.txn, doc, Some(company), f, None)?
            .0)
    }

    /// Edits a document, as [`Store::edit_doc`], inside the batch.
    pub fn edit_doc<T, E: From<StoreError>>(
        &self,
        doc: DocId,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<T, E> {
        Ok(self.store.write_local(&self.txn, doc, None, f, None)?.0)
    }

    /// Makes every edit of the batch durable at once.
    pub fn commit(self) -> Result<(), StoreError> {
        self.txn.commit()?;
        Ok(())
    }
}
