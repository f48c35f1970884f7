//! A consistent copy of every table, read in one transaction while the relay keeps serving.

use std::path::Path;

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, Value,
    WriteTransaction,
};

use super::RelayStoreError;
use super::schema::*;

fn copy<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<(), RelayStoreError> {
    let from = src.open_table(def)?;
    let mut to = dst.open_table(def)?;
    for item in from.iter()? {
        let (k, v) = item?;
        to.insert(k.value(), v.value())?;
    }
    Ok(())
}

/// Copies every table of `db` into a new database file at `dest`.
pub(super) fn copy_all(db: &Database, dest: &Path) -> Result<(), RelayStoreError> {
    if dest.exists() {
        std::fs::remove_file(dest)?;
    }
    let out = Database::create(dest).map_err(|e| RelayStoreError::Redb(e.into()))?;
    let src = db.begin_read()?;
    let dst = out.begin_write()?;
    copy(&src, &dst, META)?;
    copy(&src, &dst, FEED)?;
    copy(&src, &dst, HEADS)?;
    copy(&src, &dst, DOCS)?;
    copy(&src, &dst, DOC_ENTRIES)?;
    copy(&src, &dst, HASHES)?;
    copy(&src, &dst, COMPANY_DOCS)?;
    copy(&src, &dst, BINDINGS)?;
    copy(&src, &dst, REVOKED)?;
    copy(&src, &dst, DIRTY)?;
    dst.commit()?;
    Ok(())
}
