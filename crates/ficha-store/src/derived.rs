//! Edits whose outcome must agree across replicas that never talked: numbers from the
//! replica's own series, and documents derived from their id (created by any replica, seen as
//! one).

use automerge::AutoCommit;
use redb::{ReadableTable, WriteTransaction};

use ficha_core::{Company, DocId};

use crate::doc_io::DocTables;
use crate::error::StoreError;
use crate::identity::u64_of;
use crate::schema::{META, OUTBOX};
use crate::{Batch, OutboxEntry, Store};

const SERIES_PREFIX: &str = "series/";
const NUMBERING_CODE: &str = "numbering_code";

impl Store {
    /// Creates a document numbered from this replica's `series`: `f` gets the next sequence
    /// number, which is stored in the same durable transaction as the document, so a number
    /// is never given twice, even across a crash.
    pub fn create_numbered<T, E: From<StoreError>>(
        &self,
        doc: DocId,
        company: &Company,
        series: &str,
        f: impl FnOnce(&mut AutoCommit, u64) -> Result<T, E>,
    ) -> Result<T, E> {
        self.numbered(doc, Some(company), series, f)
    }

    /// Edits a document with the next number of `series`, as [`Store::create_numbered`].
    pub fn edit_numbered<T, E: From<StoreError>>(
        &self,
        doc: DocId,
        series: &str,
        f: impl FnOnce(&mut AutoCommit, u64) -> Result<T, E>,
    ) -> Result<T, E> {
        self.numbered(doc, None, series, f)
    }

    fn numbered<T, E: From<StoreError>>(
        &self,
        doc: DocId,
        create_in: Option<&Company>,
        series: &str,
        f: impl FnOnce(&mut AutoCommit, u64) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut journal = self.journal_lock();
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let key = format!("{SERIES_PREFIX}{series}");
        let seq = last_in(&txn, &key)? + 1;
        let (out, touched, _) = self.write_local(&txn, doc, create_in, |d| f(d, seq), None)?;
        txn.open_table(META)
            .map_err(StoreError::from)?
            .insert(key.as_str(), seq.to_be_bytes().as_slice())
            .map_err(StoreError::from)?;
        // Not journaled: the journal replays documents, not counters. A durable commit makes
        // the edits journaled before it durable too, so the journal starts afresh.
        txn.commit().map_err(StoreError::from)?;
        journal.reset()?;
        drop(journal);
        self.keep_warm(touched);
        Ok(out)
    }

    /// The last number this replica gave in `series` (0 before the first).
    pub fn last_number(&self, series: &str) -> Result<u64, StoreError> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get(format!("{SERIES_PREFIX}{series}").as_str())?
            .map_or(0, |v| u64_of(v.value())))
    }

    /// The code the relay gave this replica for its number series, once known.
    pub fn numbering_code(&self) -> Result<Option<String>, StoreError> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get(NUMBERING_CODE)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    /// Keeps `code` as this replica's numbering code unless it has one: a replica's series
    /// never changes name, so a number it gave is never given again under another code.
    pub fn adopt_numbering_code(&self, code: &str) -> Result<String, StoreError> {
        let txn = self.db.begin_write()?;
        let kept = {
            let mut meta = txn.open_table(META)?;
            let existing = meta
                .get(NUMBERING_CODE)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            match existing {
                Some(c) => c,
                None => {
                    meta.insert(NUMBERING_CODE, code.as_bytes())?;
                    code.to_string()
                }
            }
        };
        txn.commit()?;
        Ok(kept)
    }

    /// Stores `genesis` as the first change of `doc` unless the replica holds the document
    /// already (made here before, or synced from a replica that derived it too). Returns
    /// whether it was stored. The change is uploaded like a local one.
    fn write_genesis(
        &self,
        txn: &WriteTransaction,
        doc_id: DocId,
        company: &Company,
        genesis: &[u8],
    ) -> Result<bool, StoreError> {
        let mut tables = DocTables::open(txn)?;
        if tables.meta(&doc_id)?.is_some() {
            return Ok(false);
        }
        let change = ficha_core::change::parse(genesis).map_err(|e| StoreError::Document {
            doc: doc_id,
            message: e.to_string(),
        })?;
        if !ficha_core::change::is_genesis(&change, doc_id) {
            return Err(StoreError::Document {
                doc: doc_id,
                message: "not this document's genesis change (its actor, sequence, dependencies or time differ)".into(),
            });
        }
        let mut doc = AutoCommit::new();
        doc.apply_changes([change])?;
        let mut outbox = txn.open_table(OUTBOX)?;
        let seq = crate::identity::next_outbox_seq(txn, &outbox)?;
        let entry = OutboxEntry {
            doc: doc_id,
            company: company.clone(),
            change: genesis.to_vec(),
        };
        tables.append(
            &doc_id,
            company,
            None,
            genesis,
            doc.document(),
            self.indexer.as_ref(),
        )?;
        outbox.insert(seq, entry.encode()?.as_slice())?;
        Ok(true)
    }
}

fn last_in(txn: &WriteTransaction, key: &str) -> Result<u64, StoreError> {
    Ok(txn
        .open_table(META)?
        .get(key)?
        .map_or(0, |v| u64_of(v.value())))
}

impl Batch<'_> {
    /// Makes sure the replica holds `doc`, starting it from its genesis change if not;
    /// returns whether it was started here. See [`ficha_core::change::is_genesis`].
    pub fn ensure_genesis(
        &self,
        doc: DocId,
        company: &Company,
        genesis: &[u8],
    ) -> Result<bool, StoreError> {
        self.store.write_genesis(&self.txn, doc, company, genesis)
    }
}
