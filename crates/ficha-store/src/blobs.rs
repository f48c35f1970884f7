//! Attachment blobs in the replica: bytes by hash, and the ones still to upload.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use ficha_core::Company;
use ficha_core::blob::BlobHash;

use crate::error::StoreError;
use crate::schema::{BLOB_OUTBOX, BLOBS};
use crate::{Batch, Store, optional};

/// Stores `bytes` under `hash` (once) and, if `upload_for` is given, queues it for the relay.
fn put(
    txn: &WriteTransaction,
    hash: &BlobHash,
    bytes: &[u8],
    upload_for: Option<&Company>,
) -> Result<(), StoreError> {
    if !hash.matches(bytes) {
        return Err(StoreError::Corrupt(format!(
            "blob {hash} does not match its bytes"
        )));
    }
    let mut blobs = txn.open_table(BLOBS)?;
    if blobs.get(&hash.0)?.is_none() {
        blobs.insert(&hash.0, bytes)?;
    }
    if let Some(c) = upload_for {
        txn.open_table(BLOB_OUTBOX)?.insert(&hash.0, c.as_str())?;
    }
    Ok(())
}

impl Batch<'_> {
    /// Stores a blob added here, to be uploaded, in the batch's transaction: the document
    /// that refers to it and its bytes become durable together.
    pub fn add_blob(
        &self,
        hash: &BlobHash,
        bytes: &[u8],
        company: &Company,
    ) -> Result<(), StoreError> {
        put(&self.txn, hash, bytes, Some(company))
    }
}

impl Store {
    /// A blob's bytes, if this replica holds them.
    pub fn blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = optional(txn.open_table(BLOBS))? else {
            return Ok(None);
        };
        Ok(table.get(&hash.0)?.map(|v| v.value().to_vec()))
    }

    /// Keeps a blob fetched from the relay (checked against its hash), so the next read is local.
    pub fn cache_blob(&self, hash: &BlobHash, bytes: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        put(&txn, hash, bytes, None)?;
        txn.commit()?;
        Ok(())
    }

    /// Blobs waiting to be uploaded, with the company each was attached in.
    pub fn pending_blobs(&self) -> Result<Vec<(BlobHash, String)>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = optional(txn.open_table(BLOB_OUTBOX))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (h, c) = row?;
            out.push((BlobHash(*h.value()), c.value().to_string()));
        }
        Ok(out)
    }

    /// Drops a blob from the upload queue once the relay has stored it.
    pub fn blob_uploaded(&self, hash: &BlobHash) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(BLOB_OUTBOX)?.remove(&hash.0)?;
        txn.commit()?;
        Ok(())
    }
}
