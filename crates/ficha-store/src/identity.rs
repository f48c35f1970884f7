//! The replica's identity and sync settings, stored in the `meta` table.

use redb::{Database, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use ficha_core::{RelayEpoch, ReplicaId};

use crate::error::StoreError;
use crate::schema::{META, SCHEMA_VERSION};

/// Who a replica is and where it syncs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Chosen at `init`, never changes.
    pub replica: ReplicaId,
    /// A human name (the token's replica name).
    pub name: String,
    /// The relay's WebSocket URL.
    pub relay_url: String,
    /// The token the relay issued.
    pub token: String,
}

const IDENTITY: &str = "identity";
const SCHEMA: &str = "schema_version";
pub(crate) const EPOCH: &str = "epoch";
pub(crate) const REPAIRING: &str = "repairing";
const OUTBOX_NEXT: &str = "outbox_next";
pub(crate) const INDEX_BUILT: &str = "index_built";

pub(crate) fn write(db: &Database, identity: &Identity) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let bytes = postcard::to_allocvec(identity)
            .map_err(|e| StoreError::Corrupt(format!("identity: {e}")))?;
        meta.insert(IDENTITY, bytes.as_slice())?;
        meta.insert(SCHEMA, SCHEMA_VERSION.to_be_bytes().as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

pub(crate) fn read(db: &Database) -> Result<Identity, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    if let Some(v) = meta.get(SCHEMA)? {
        let found = u64_of(v.value());
        if found > SCHEMA_VERSION {
            return Err(StoreError::Schema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    let v = meta
        .get(IDENTITY)?
        .ok_or_else(|| StoreError::Corrupt("no identity".into()))?;
    postcard::from_bytes(v.value()).map_err(|e| StoreError::Corrupt(format!("identity: {e}")))
}

pub(crate) fn u64_of(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(b)
}

/// Allocates the next outbox position inside the caller's transaction.
///
/// Positions never repeat, so a late acknowledgement can never delete a newer change: the next
/// one follows the last entry, or, with the outbox empty, the floor [`acked_upto`] recorded.
/// Reading the floor instead of bumping a counter keeps a local edit from dirtying one more
/// table (each one costs its pages at commit).
pub(crate) fn next_outbox_seq(
    txn: &WriteTransaction,
    outbox: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<u64, StoreError> {
    let after_last = outbox.last()?.map_or(1, |(k, _)| k.value() + 1);
    let floor = txn
        .open_table(META)?
        .get(OUTBOX_NEXT)?
        .map_or(1, |v| u64_of(v.value()));
    Ok(after_last.max(floor))
}

/// Records that positions up to `upto` were acknowledged and may be deleted.
pub(crate) fn acked_upto(txn: &WriteTransaction, upto: u64) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let floor = meta.get(OUTBOX_NEXT)?.map_or(1, |v| u64_of(v.value()));
    let next = floor.max(upto.saturating_add(1));
    meta.insert(OUTBOX_NEXT, next.to_be_bytes().as_slice())?;
    Ok(())
}

pub(crate) fn epoch_of(bytes: &[u8]) -> Option<RelayEpoch> {
    <[u8; 16]>::try_from(bytes).ok().map(RelayEpoch)
}

/// When a sync last completed (ms since the Unix epoch).
const LAST_SYNC: &str = "last_sync_at";

impl crate::Store {
    /// Replaces the token this replica presents (after it expired or was revoked); this
    /// store's copy of the identity changes at its next opening.
    pub fn replace_token(&self, token: &str) -> Result<(), StoreError> {
        let mut identity = self.identity().clone();
        identity.token = token.to_string();
        write(&self.db, &identity)
    }

    /// Records that a sync completed at `ms`.
    pub fn set_last_sync(&self, ms: i64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(META)?
            .insert(LAST_SYNC, ms.to_be_bytes().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// When a sync last completed, if ever.
    pub fn last_sync(&self) -> Result<Option<i64>, StoreError> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        Ok(txn
            .open_table(META)?
            .get(LAST_SYNC)?
            .map(|v| u64_of(v.value()) as i64))
    }
}
