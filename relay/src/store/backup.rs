//! Backups (a consistent copy of every table, taken in one read transaction while the relay
//! keeps serving) and restores (which always give the database a new epoch).

use std::path::{Path, PathBuf};

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, Value,
    WriteTransaction,
};

use ficha_core::RelayEpoch;

use super::schema::*;
use super::{DB_FILE, RedbRelayStore, RelayStoreError, io_at, open_db};

/// Where a restore stages the copy before it replaces the live file.
const RESTORING_FILE: &str = "relay.redb.restoring";

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

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> Result<PathBuf, RelayStoreError> {
    let name = path.file_name().ok_or_else(|| {
        RelayStoreError::BadPath(format!("{} does not name a file", path.display()))
    })?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(path.with_file_name(name))
}

/// The directory holding `path` ("." for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename durable.
fn sync_dir(dir: &Path) -> Result<(), RelayStoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Whether `a` and `b` name the same file (`b` need not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| {
        p.canonicalize().ok().or_else(|| {
            let parent = parent_of(p).canonicalize().ok()?;
            Some(parent.join(p.file_name()?))
        })
    };
    matches!((canonical(a), canonical(b)), (Some(x), Some(y)) if x == y)
}

/// Copies every table of `db` (whose file is `live`) into a new database file at `dest`.
pub(super) fn copy_all(db: &Database, live: &Path, dest: &Path) -> Result<(), RelayStoreError> {
    if same_file(live, dest) {
        return Err(RelayStoreError::BadPath(format!(
            "{} is the live database; write the backup somewhere else",
            dest.display()
        )));
    }
    // Built under another name and renamed once committed: a crash never leaves a file at
    // `dest` that looks like a complete backup but is not.
    let partial = sibling(dest, ".partial")?;
    if partial.exists() {
        std::fs::remove_file(&partial).map_err(io_at(&partial))?;
    }
    let result = (|| {
        let out = Database::create(&partial).map_err(|e| RelayStoreError::Redb(e.into()))?;
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
        copy(&src, &dst, REPLICA_NAMES)?;
        copy(&src, &dst, ACTORS)?;
        copy(&src, &dst, REVOKED)?;
        copy(&src, &dst, REVOCATIONS)?;
        copy(&src, &dst, DIRTY)?;
        copy(&src, &dst, PARKED)?;
        copy(&src, &dst, PARKED_COUNT)?;
        copy(&src, &dst, UNFOLDABLE)?;
        copy(&src, &dst, BLOBS)?;
        copy(&src, &dst, BLOB_COMPANIES)?;
        dst.commit()?;
        Ok::<_, RelayStoreError>(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, dest).map_err(io_at(dest))?;
    sync_dir(parent_of(dest))
}

/// Holds the live database, if any, so that no relay serves from it during the restore.
///
/// A live file too damaged to open does not stop the restore: replacing it is the point.
fn hold_live(target: &Path) -> Result<Option<Database>, RelayStoreError> {
    if !target.exists() {
        return Ok(None);
    }
    match open_db(target) {
        Ok(db) => Ok(Some(db)),
        Err(e @ RelayStoreError::Locked(_)) => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "the database being replaced does not open");
            Ok(None)
        }
    }
}

/// Replaces the database in `dir` with `backup` and gives it a new epoch.
pub(super) fn restore(backup: &Path, dir: &Path) -> Result<RelayEpoch, RelayStoreError> {
    if !backup.is_file() {
        return Err(RelayStoreError::BadPath(format!(
            "{} is not a backup file",
            backup.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let target = dir.join(DB_FILE);
    let live = hold_live(&target)?;
    let staged = dir.join(RESTORING_FILE);
    if staged.exists() {
        std::fs::remove_file(&staged).map_err(io_at(&staged))?;
    }
    std::fs::copy(backup, &staged).map_err(io_at(&staged))?;
    // Opening checks that the copy is a relay database of a schema this build reads.
    let epoch = RedbRelayStore::open_file(dir, &staged, false)
        .map_err(|e| match e {
            RelayStoreError::Redb(_) | RelayStoreError::NotRelayDatabase(_) => {
                RelayStoreError::NotRelayDatabase(backup.display().to_string())
            }
            other => other,
        })
        .and_then(|mut store| store.rotate_epoch());
    let epoch = match epoch {
        Ok(e) => e,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    std::fs::rename(&staged, &target).map_err(io_at(&target))?;
    sync_dir(dir)?;
    drop(live);
    Ok(epoch)
}
