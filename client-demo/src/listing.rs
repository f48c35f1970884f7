//! The client list's query planner: index lookups narrow the candidates, the list order gives
//! paging, and every candidate is checked against its summary, so the index can only make a
//! query faster, never change its answer.

use std::collections::HashSet;
use std::ops::ControlFlow;

use ficha_core::DocId;
use ficha_domain::ClientSummary;
use ficha_domain::index::{client_probe, order_prefix};
use ficha_domain::record::{RecordFilter, RecordSort, RecordSummary};
use ficha_domain::search::{Filter, Plan, Probe, Sort, order_key};
use ficha_store::{IndexReader, Store, StoreError};

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
    let plan: Plan = filter
        .plan()
        .iter()
        .map(|c| c.iter().map(client_probe).collect())
        .collect();
    let candidates = narrow(&index, plan)?;
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
            index.in_order_within(&order_prefix("client"), "", |_, id| {
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
fn narrow(index: &IndexReader, plan: Plan) -> Result<Option<HashSet<DocId>>, StoreError> {
    let mut candidates: Option<HashSet<DocId>> = None;
    'clauses: for clause in plan {
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

/// A stored record summary; one that does not decode is damage, as for clients.
pub fn decode_record(id: &DocId, bytes: &[u8]) -> Result<RecordSummary, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        StoreError::Corrupt(format!(
            "the list entry of record {id} is damaged ({e}); the database file replica.redb may be damaged: run `ficha check`"
        ))
    })
}

/// The records `filter` matches, sorted by `sort`, skipping `offset`, at most `limit`; and how
/// many match in all. Index lookups narrow the candidates; with none to narrow by, the kind's
/// own list is walked (in its date order, so a page in that order stops early).
pub fn query_records(
    store: &Store,
    filter: &RecordFilter,
    sort: &RecordSort,
    offset: usize,
    limit: Option<usize>,
) -> Result<Vec<RecordSummary>, StoreError> {
    let Some(index) = store.index()? else {
        return Ok(Vec::new());
    };
    let limit = limit.unwrap_or(usize::MAX);
    let summary = |id: &DocId| -> Result<Option<RecordSummary>, StoreError> {
        let Some(bytes) = index.summary(id)? else {
            return Ok(None);
        };
        // Clients have no `kind` in their summaries: a cross-kind term never names one, but
        // a damaged row must not turn into a client shown as a record.
        if !bytes.windows(6).any(|w| w == b"\"kind\"") {
            return Ok(None);
        }
        Ok(Some(decode_record(id, &bytes)?).filter(|r| filter.matches(r)))
    };
    let in_index_order = sort.field.is_none() && !sort.desc;
    match (narrow(&index, filter.plan())?, filter.kind.as_deref()) {
        (None, Some(kind)) if in_index_order => {
            let mut found = Vec::new();
            let mut skipped = 0;
            // Dates sort as text: a --since day starts the walk there.
            let prefix = order_prefix(kind);
            let from = filter
                .since
                .as_deref()
                .map(|d| format!("{prefix}{d}"))
                .unwrap_or_default();
            index.in_order_within(&prefix, &from, |_, id| {
                if found.len() >= limit {
                    return Ok(ControlFlow::Break(()));
                }
                if let Some(r) = summary(&id)? {
                    if skipped < offset {
                        skipped += 1;
                    } else {
                        found.push(r);
                    }
                }
                Ok(ControlFlow::Continue(()))
            })?;
            Ok(found)
        }
        (candidates, kind) => {
            let ids: Vec<DocId> = match (candidates, kind) {
                (Some(c), _) => c.into_iter().collect(),
                (None, Some(kind)) => {
                    let mut all = Vec::new();
                    index.in_order_within(&order_prefix(kind), "", |_, id| {
                        all.push(id);
                        Ok(ControlFlow::Continue(()))
                    })?;
                    all
                }
                (None, None) => {
                    let mut all = Vec::new();
                    for k in ficha_domain::record::kinds::KINDS {
                        index.in_order_within(&order_prefix(k.name), "", |_, id| {
                            all.push(id);
                            Ok(ControlFlow::Continue(()))
                        })?;
                    }
                    all
                }
            };
            let mut found = Vec::with_capacity(ids.len());
            for id in &ids {
                found.extend(summary(id)?);
            }
            sort.apply(&mut found);
            Ok(found.into_iter().skip(offset).take(limit).collect())
        }
    }
}

/// How many records of each kind link to `target` (a client or a record): index lookups only.
pub fn linked_counts(
    store: &Store,
    target: &DocId,
) -> Result<std::collections::BTreeMap<String, usize>, StoreError> {
    let mut out = std::collections::BTreeMap::new();
    let Some(index) = store.index()? else {
        return Ok(out);
    };
    let t = target.to_string();
    for k in ficha_domain::record::kinds::KINDS {
        let n = index
            .exact(&ficha_domain::index::link_term(k.name, &t), usize::MAX)?
            .map_or(0, |s| s.len());
        if n > 0 {
            out.insert(k.name.to_string(), n);
        }
    }
    Ok(out)
}
