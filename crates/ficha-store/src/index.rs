//! The list index: search terms and list order, kept in the same transaction as each document
//! write, so a query never loads a document and never sees an index behind the data.

use std::collections::HashSet;
use std::ops::ControlFlow;

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, WriteTransaction};

use ficha_core::DocId;
use ficha_core::index::IndexKeys;

use crate::error::StoreError;
use crate::schema::{DOC_KEYS, ORDER, SUMMARIES, TERMS};

/// Bumped when the rows derived from summaries change meaning; a store opened with an older
/// index rebuilds it from the summaries (no document is loaded).
pub(crate) const INDEX_VERSION: u64 = 1;

/// The index tables one write transaction touches.
pub(crate) struct IndexTables<'t> {
    terms: Table<'t, (&'static str, &'static [u8; 16]), ()>,
    order: Table<'t, (&'static str, &'static [u8; 16]), ()>,
    doc_keys: Table<'t, &'static [u8; 16], &'static [u8]>,
}

impl<'t> IndexTables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            terms: txn.open_table(TERMS)?,
            order: txn.open_table(ORDER)?,
            doc_keys: txn.open_table(DOC_KEYS)?,
        })
    }

    /// Replaces a document's rows with `keys`, touching only the rows that differ: adding a
    /// note changes no term, so it costs one read here.
    pub(crate) fn update(&mut self, doc: &DocId, keys: &IndexKeys) -> Result<(), StoreError> {
        let id = doc.as_bytes();
        let old: Option<IndexKeys> = match self.doc_keys.get(id)? {
            Some(v) => Some(
                postcard::from_bytes(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("index keys of {doc}: {e}")))?,
            ),
            None => None,
        };
        if old.as_ref() == Some(keys) {
            return Ok(());
        }
        let old = old.unwrap_or_default();
        for t in old.terms.iter().filter(|t| !keys.terms.contains(t)) {
            self.terms.remove((t.as_str(), id))?;
        }
        for t in keys.terms.iter().filter(|t| !old.terms.contains(t)) {
            self.terms.insert((t.as_str(), id), ())?;
        }
        if old.order != keys.order {
            self.order.remove((old.order.as_str(), id))?;
        }
        self.order.insert((keys.order.as_str(), id), ())?;
        let bytes = postcard::to_allocvec(keys)
            .map_err(|e| StoreError::Corrupt(format!("index keys: {e}")))?;
        self.doc_keys.insert(id, bytes.as_slice())?;
        Ok(())
    }

    /// Drops every row, before a rebuild.
    pub(crate) fn clear(&mut self) -> Result<(), StoreError> {
        self.terms.retain(|_, _| false)?;
        self.order.retain(|_, _| false)?;
        self.doc_keys.retain(|_, _| false)?;
        Ok(())
    }
}

/// A consistent read view of the index and the summaries.
pub struct IndexReader {
    terms: ReadOnlyTable<(&'static str, &'static [u8; 16]), ()>,
    order: ReadOnlyTable<(&'static str, &'static [u8; 16]), ()>,
    summaries: ReadOnlyTable<&'static [u8; 16], &'static [u8]>,
}

impl IndexReader {
    pub(crate) fn open(txn: &ReadTransaction) -> Result<Option<Self>, StoreError> {
        crate::optional((|| {
            Ok(Self {
                terms: txn.open_table(TERMS)?,
                order: txn.open_table(ORDER)?,
                summaries: txn.open_table(SUMMARIES)?,
            })
        })())
    }

    /// Documents holding exactly `term`; None once more than `cap` are found.
    pub fn exact(&self, term: &str, cap: usize) -> Result<Option<HashSet<DocId>>, StoreError> {
        self.collect(term, cap, |t| t == term)
    }

    /// Documents holding a term that starts with `prefix`; None once more than `cap` are found.
    pub fn prefix(&self, prefix: &str, cap: usize) -> Result<Option<HashSet<DocId>>, StoreError> {
        self.collect(prefix, cap, |t| t.starts_with(prefix))
    }

    /// Walks terms from `from` while `keep` holds. The cap keeps an unselective lookup (every
    /// client of a company) from costing more than the rows a page would read anyway.
    fn collect(
        &self,
        from: &str,
        cap: usize,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Option<HashSet<DocId>>, StoreError> {
        let mut out = HashSet::new();
        for row in self.terms.range((from, &[0u8; 16])..)? {
            let row = row?;
            let (term, doc) = row.0.value();
            if !keep(term) {
                break;
            }
            if out.len() == cap {
                return Ok(None);
            }
            out.insert(DocId(*doc));
        }
        Ok(Some(out))
    }

    /// One document's summary.
    pub fn summary(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .summaries
            .get(doc.as_bytes())?
            .map(|v| v.value().to_vec()))
    }

    /// Visits the documents whose order key starts with `prefix`, in order, from the first
    /// key at or after `from`, until `f` breaks: one kind's list, or a range of it by date.
    pub fn in_order_within(
        &self,
        prefix: &str,
        from: &str,
        mut f: impl FnMut(&str, DocId) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError> {
        let start = if from >= prefix { from } else { prefix };
        for row in self.order.range((start, &[0u8; 16])..)? {
            let row = row?;
            let (key, doc) = row.0.value();
            if !key.starts_with(prefix) || f(key, DocId(*doc))?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Visits documents in list order until `f` breaks.
    pub fn in_order(
        &self,
        mut f: impl FnMut(DocId) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError> {
        for row in self.order.iter()? {
            if f(DocId(*row?.0.value().1))?.is_break() {
                break;
            }
        }
        Ok(())
    }
}
