//! Who may open a session: replica name ↔ replica id bindings and revocations.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

use automerge::ActorId;

use ficha_core::ReplicaId;
use ficha_core::relay::Binding;

use super::schema::{ACTORS, BINDINGS, REPLICA_NAMES, REVOCATIONS, REVOKED};
use super::{RelayStoreError, StoreHandle};

/// Brings the access tables of a database written by an older relay up to this layout, in
/// the opening transaction: every binding gets its reverse, and every old revocation (which
/// had no time) counts from now, so a token issued from now on readmits its replica.
pub(super) fn upgrade(txn: &WriteTransaction) -> Result<(), RelayStoreError> {
    let mut names = txn.open_table(REPLICA_NAMES)?;
    if names.is_empty()? {
        for row in txn.open_table(BINDINGS)?.iter()? {
            let (name, id) = row?;
            if names.get(id.value())?.is_none() {
                names.insert(id.value(), name.value())?;
            }
        }
    }
    let mut old = txn.open_table(REVOKED)?;
    let mut revocations = txn.open_table(REVOCATIONS)?;
    if !old.is_empty()? {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for row in old.iter()? {
            let (name, _) = row?;
            if revocations.get(name.value())?.is_none() {
                revocations.insert(name.value(), now)?;
            }
        }
        old.retain(|_, ()| false)?;
    }
    Ok(())
}

/// Binds `name` and `id` to each other on first use; refuses either being bound elsewhere.
pub(super) fn bind(
    txn: &WriteTransaction,
    name: &str,
    id: ReplicaId,
) -> Result<Binding, RelayStoreError> {
    let mut by_name = txn.open_table(BINDINGS)?;
    let mut by_id = txn.open_table(REPLICA_NAMES)?;
    let bound_id = by_name.get(name)?.map(|v| *v.value());
    let bound_name = by_id.get(id.as_bytes())?.map(|v| v.value().to_string());
    match (bound_id, bound_name) {
        (Some(b), _) if b != id.0 => Ok(Binding::NameTaken),
        (_, Some(n)) if n != name => Ok(Binding::IdTaken),
        (Some(_), Some(_)) => Ok(Binding::Bound),
        _ => {
            by_name.insert(name, &id.0)?;
            by_id.insert(id.as_bytes(), name)?;
            Ok(Binding::Bound)
        }
    }
}

/// Binds every actor to `name` unless one is bound to another name, which is returned.
pub(super) fn bind_actors(
    txn: &WriteTransaction,
    name: &str,
    actors: &[ActorId],
) -> Result<Option<ActorId>, RelayStoreError> {
    let mut table = txn.open_table(ACTORS)?;
    for a in actors {
        if table.get(a.to_bytes())?.is_some_and(|n| n.value() != name) {
            return Ok(Some(a.clone()));
        }
    }
    for a in actors {
        table.insert(a.to_bytes(), name)?;
    }
    Ok(None)
}

impl StoreHandle {
    /// When tokens of this replica name were last revoked, if ever.
    pub fn revoked_at(&self, name: &str) -> Result<Option<u64>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(REVOCATIONS)?.get(name)?.map(|v| v.value()))
    }

    /// True when a token of `name` issued at `issued_at` was revoked since.
    pub fn is_revoked(&self, name: &str, issued_at: u64) -> Result<bool, RelayStoreError> {
        Ok(self.revoked_at(name)?.is_some_and(|at| issued_at <= at))
    }
}
