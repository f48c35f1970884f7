//! What sync could not use, kept aside and visible instead of lost or fatal: outbox entries
//! the relay refused for good, and documents whose data from the relay does not apply.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use ficha_core::frame::RefusedDoc;
use ficha_core::{Company, DocId};

use crate::error::StoreError;
use crate::schema::{OUTBOX, QUARANTINE, REFUSED};
use crate::{OutboxEntry, Store, optional};

/// An outbox entry the relay refused, with its reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Refused {
    pub entry: OutboxEntry,
    pub reason: String,
}

/// A document set aside: why, and the bytes that did not apply (retried with the next ones).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Quarantined {
    pub company: String,
    pub reason: String,
    pub kept: Vec<Vec<u8>>,
}

fn encode<T: Serialize>(v: &T, what: &str) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Ids are text in what people and scripts read.
fn as_text<S: serde::Serializer>(doc: &DocId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(doc)
}

/// A refused outbox entry as the API and CLI report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedEntry {
    /// Its outbox position.
    pub position: u64,
    /// The document.
    #[serde(serialize_with = "as_text")]
    pub doc: DocId,
    /// The relay's reason.
    pub reason: String,
}

/// A quarantined document as the API and CLI report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantinedDoc {
    /// The document.
    #[serde(serialize_with = "as_text")]
    pub doc: DocId,
    /// Its company.
    pub company: String,
    /// Why it could not be applied.
    pub reason: String,
}

/// Moves every outbox entry of the refused documents to [`REFUSED`] (one transaction).
pub(crate) fn refuse(txn: &WriteTransaction, refused: &[RefusedDoc]) -> Result<(), StoreError> {
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut table = txn.open_table(REFUSED)?;
    let mut moved = Vec::new();
    for row in outbox.iter()? {
        let (seq, bytes) = row?;
        let entry: OutboxEntry = decode(bytes.value(), "outbox entry")?;
        if let Some(r) = refused.iter().find(|r| r.doc == entry.doc) {
            moved.push((seq.value(), entry, r.message.clone()));
        }
    }
    for (seq, entry, reason) in moved {
        outbox.remove(seq)?;
        table.insert(
            seq,
            encode(&Refused { entry, reason }, "refused entry")?.as_slice(),
        )?;
    }
    Ok(())
}

/// Sets `doc` aside with `reason`, keeping `bytes` (if any) to retry.
pub(crate) fn quarantine(
    txn: &WriteTransaction,
    company: &Company,
    doc: &DocId,
    reason: &str,
    bytes: Option<&[u8]>,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(QUARANTINE)?;
    let mut q: Quarantined = match table.get(doc.as_bytes())? {
        Some(v) => decode(v.value(), "quarantine")?,
        None => Quarantined::default(),
    };
    q.company = company.to_string();
    q.reason = reason.to_string();
    if let Some(b) = bytes {
        q.kept.push(b.to_vec());
    }
    table.insert(doc.as_bytes(), encode(&q, "quarantine")?.as_slice())?;
    tracing::error!(doc = %doc, %company, %reason, "document quarantined: its data from the relay does not apply");
    Ok(())
}

/// The bytes kept aside for `doc`, taken out of quarantine (None if it is not there).
pub(crate) fn take(txn: &WriteTransaction, doc: &DocId) -> Result<Option<Quarantined>, StoreError> {
    let mut table = txn.open_table(QUARANTINE)?;
    let taken = table.remove(doc.as_bytes())?;
    taken.map(|v| decode(v.value(), "quarantine")).transpose()
}

impl Store {
    /// Outbox entries the relay refused for good, oldest first.
    pub fn refused(&self) -> Result<Vec<RefusedEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = optional(txn.open_table(REFUSED))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (seq, v) = row?;
            let r: Refused = decode(v.value(), "refused entry")?;
            out.push(RefusedEntry {
                position: seq.value(),
                doc: r.entry.doc,
                reason: r.reason,
            });
        }
        Ok(out)
    }

    /// Documents in quarantine.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedDoc>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = optional(txn.open_table(QUARANTINE))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (id, v) = row?;
            let q: Quarantined = decode(v.value(), "quarantine")?;
            out.push(QuarantinedDoc {
                doc: DocId(*id.value()),
                company: q.company,
                reason: q.reason,
            });
        }
        Ok(out)
    }

    /// Puts every refused entry back in the outbox (after a new token, the relay may take
    /// them); returns how many. Their positions are kept, so they go up in their old order.
    pub fn retry_refused(&self) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        let n = {
            let mut table = txn.open_table(REFUSED)?;
            let mut outbox = txn.open_table(OUTBOX)?;
            let mut n = 0;
            for row in table.iter()? {
                let (seq, v) = row?;
                let r: Refused = decode(v.value(), "refused entry")?;
                outbox.insert(seq.value(), r.entry.encode()?.as_slice())?;
                n += 1;
            }
            table.retain(|_, _| false)?;
            n
        };
        txn.commit()?;
        Ok(n)
    }
}
