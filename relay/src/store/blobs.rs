//! Attachment blobs on the relay, outside the change feed: content-addressed, so storing one
//! twice is harmless, and scoped by company, so a token never learns of another's files.

use redb::{ReadableDatabase, ReadableTable};

use ficha_core::Company;
use ficha_core::blob::BlobHash;

use super::schema::{BLOB_COMPANIES, BLOBS};
use super::{RelayStoreError, StoreHandle};

impl StoreHandle {
    /// Stores a blob (its bytes already checked against the hash) for `company`; durable on
    /// return. True if `company` did not have it yet: whether another company stored the same
    /// bytes is never told.
    pub fn put_blob(
        &self,
        hash: &BlobHash,
        company: &Company,
        bytes: &[u8],
    ) -> Result<bool, RelayStoreError> {
        let txn = self.db.begin_write()?;
        let new = {
            let mut blobs = txn.open_table(BLOBS)?;
            if blobs.get(&hash.0)?.is_none() {
                blobs.insert(&hash.0, bytes)?;
            }
            txn.open_table(BLOB_COMPANIES)?
                .insert((&hash.0, company.as_str()), ())?
                .is_none()
        };
        txn.commit()?;
        Ok(new)
    }

    /// A blob's bytes, if one of `companies` uploaded it (None otherwise, exactly as if it did
    /// not exist).
    pub fn blob_for(
        &self,
        hash: &BlobHash,
        companies: &[Company],
    ) -> Result<Option<Vec<u8>>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let owners = txn.open_table(BLOB_COMPANIES)?;
        let mut visible = false;
        for c in companies {
            if owners.get((&hash.0, c.as_str()))?.is_some() {
                visible = true;
                break;
            }
        }
        if !visible {
            return Ok(None);
        }
        Ok(txn
            .open_table(BLOBS)?
            .get(&hash.0)?
            .map(|v| v.value().to_vec()))
    }

    /// Number of distinct blobs stored.
    pub fn blob_count(&self) -> Result<u64, RelayStoreError> {
        use redb::ReadableTableMetadata;
        Ok(self.db.begin_read()?.open_table(BLOBS)?.len()?)
    }
}
