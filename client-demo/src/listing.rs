//! The client list's query planner: index lookups narrow the candidates, the list order gives
//! paging, and every candidate is checked against its summary, so the index can only make a
//! query faster, never change its answer.

use std::collections::HashSet;
use std::ops::ControlFlow;

use automerge::Automerge;
use ficha_core::DocId;
use ficha_domain::ClientSummary;
use ficha_domain::search::{Filter, Probe, Sort, index_terms, order_key};
use ficha_store::{IndexKeys, IndexReader, Indexer, Store, StoreError};

/// Indexes client documents: a JSON summary, plus search terms and list order derived from it.
pub struct ClientIndexer;

impl Indexer for ClientIndexer {
    fn summarize(&self, doc: &Automerge) -> Option<Vec<u8>> {
        let summary = ficha_domain::summary(doc).ok()?;
        serde_json::to_vec(&summary).ok()
    }

    fn keys(&self, summary: &[u8]) -> Option<IndexKeys> {
        Some(keys_of(&serde_json::from_slice(summary).ok()?))
    }

    fn summarize_with_keys(&self, doc: &Automerge) -> Option<(Vec<u8>, Option<IndexKeys>)> {
        let summary = ficha_domain::summary(doc).ok()?;
        Some((serde_json::to_vec(&summary).ok()?, Some(keys_of(&summary))))
    }

    /// 2: summaries (and so terms) are cut to their fields' lengths.
    fn version(&self) -> u64 {
        2
    }
}

fn keys_of(c: &ClientSummary) -> IndexKeys {
    IndexKeys {
        order: order_key(c),
        terms: index_terms(c),
    }
}

/// A stored summary; one that does not decode is damage to report, never a client to leave
/// out of a list without a word.
pub fn decode_summary(id: &DocId, bytes: &[u8]) -> Result<ClientSummary, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        StoreError::Corrupt(format!(
            "the list entry of client {id} is damaged ({e}); the database file replica.redb may be damaged: run `ficha check`"
        ))
    })
}

/// Below this many candidates, reading their summaries and sorting beats walking the list.
const SORT_BELOW: usize = 4096;
/// Once this few candidates remain, checking their summaries beats more lookups.
const ENOUGH_LOOKUPS: usize = 256;
/// A lookup finding more clients than this narrows too little to be worth finishing.
const LOOKUP_CAP: usize = 4096;

/// The clients `filter` matches, in list order, skipping `offset` and stopping at `limit`.
pub fn query(
    store: &Store,
    filter: &Filter,
    offset: usize,
    limit: Option<usize>,
) -> Result<Vec<ClientSummary>, StoreError> {
    let Some(index) = store.index()? else {
        return Ok(Vec::new());
    };
    let limit = limit.unwrap_or(usize::MAX);
    let candidates = narrow(&index, filter)?;
    let summary = |id: &DocId| -> Result<Option<ClientSummary>, StoreError> {
        Ok(index
            .summary(id)?
            .map(|b| decode_summary(id, &b))
            .transpose()?
            .filter(|c| filter.matches(c)))
    };
    match candidates {
        Some(ids) if ids.len() < SORT_BELOW => {
            let mut found = Vec::with_capacity(ids.len());
            for id in &ids {
                found.extend(summary(id)?);
            }
            found.sort_by_cached_key(|c| (order_key(c), c.id));
            Ok(found.into_iter().skip(offset).take(limit).collect())
        }
        candidates => {
            let mut found = Vec::new();
            let mut skipped = 0;
            index.in_order(|id| {
                if found.len() >= limit {
                    return Ok(ControlFlow::Break(()));
                }
                if candidates.as_ref().is_some_and(|c| !c.contains(&id)) {
                    return Ok(ControlFlow::Continue(()));
                }
                if let Some(c) = summary(&id)? {
                    if skipped < offset {
                        skipped += 1;
                    } else {
                        found.push(c);
                    }
                }
                Ok(ControlFlow::Continue(()))
            })?;
            Ok(found)
        }
    }
}

/// One page of the clients `filter` matches, in the order `sort` asks for. Orders other than
/// the index's read every match before paging.
pub fn query_sorted(
    store: &Store,
    filter: &Filter,
    sort: Sort,
    offset: usize,
    limit: Option<usize>,
) -> Result<Vec<ClientSummary>, StoreError> {
    if sort == Sort::Name {
        return query(store, filter, offset, limit);
    }
    let mut all = query(store, filter, 0, None)?;
    sort.apply(&mut all);
    Ok(all
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect())
}

/// Candidates from the index (None: nothing the filter names narrows it usefully).
///
/// A clause whose lookups find more than `LOOKUP_CAP` clients is skipped: walking the list and
/// checking summaries costs less than materialising every client of a company.
fn narrow(index: &IndexReader, filter: &Filter) -> Result<Option<HashSet<DocId>>, StoreError> {
    let mut candidates: Option<HashSet<DocId>> = None;
    'clauses: for clause in filter.plan() {
        if candidates
            .as_ref()
            .is_some_and(|c| c.len() <= ENOUGH_LOOKUPS)
        {
            break;
        }
        let mut any = HashSet::new();
        for probe in &clause {
            let found = match probe {
                Probe::Exact(t) => index.exact(t, LOOKUP_CAP)?,
                Probe::Prefix(p) => index.prefix(p, LOOKUP_CAP)?,
            };
            match found {
                Some(f) => any.extend(f),
                None => continue 'clauses,
            }
        }
        candidates = Some(match candidates {
            None => any,
            Some(c) => c.intersection(&any).copied().collect(),
        });
    }
    Ok(candidates)
}
