//! Per-company figures for the admin page, read from one read transaction without the
//! relay's lock.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable};

use super::schema::{COMPANY_DOCS, FEED, HEADS, PARKED_COUNT};
use super::{RelayStoreError, StoreHandle};

/// What one company holds on this relay.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CompanyCensus {
    /// The company.
    pub company: String,
    /// Documents stored.
    pub documents: u64,
    /// Bytes of its feed entries (what a replica downloads to catch up from zero).
    pub bytes: u64,
    /// The last feed sequence given.
    pub feed_head: u64,
    /// Changes parked, waiting for their dependencies.
    pub parked: u64,
}

impl StoreHandle {
    /// Every company's figures, by company. Reads the whole feed's entry sizes: an admin
    /// request, not something on a replica's path.
    pub fn census(&self) -> Result<Vec<CompanyCensus>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let mut by: BTreeMap<String, CompanyCensus> = BTreeMap::new();
        for row in txn.open_table(COMPANY_DOCS)?.iter()? {
            let (k, _) = row?;
            let (c, _) = k.value();
            by.entry(c.to_string()).or_default().documents += 1;
        }
        for row in txn.open_table(FEED)?.iter()? {
            let (k, v) = row?;
            let (c, _) = k.value();
            by.entry(c.to_string()).or_default().bytes += v.value().len() as u64;
        }
        for row in txn.open_table(HEADS)?.iter()? {
            let (k, v) = row?;
            by.entry(k.value().to_string()).or_default().feed_head = v.value();
        }
        for row in txn.open_table(PARKED_COUNT)?.iter()? {
            let (k, v) = row?;
            by.entry(k.value().to_string()).or_default().parked = v.value();
        }
        Ok(by
            .into_iter()
            .map(|(company, c)| CompanyCensus { company, ..c })
            .collect())
    }

    /// The data directory the database lives in.
    pub fn dir(&self) -> &std::path::Path {
        self.path.parent().unwrap_or(std::path::Path::new("."))
    }
}

impl StoreHandle {
    /// Each company's last feed sequence: what a session's cursor lags behind.
    pub fn feed_heads(&self) -> Result<BTreeMap<String, u64>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let mut out = BTreeMap::new();
        for row in txn.open_table(HEADS)?.iter()? {
            let (k, v) = row?;
            out.insert(k.value().to_string(), v.value());
        }
        Ok(out)
    }
}
