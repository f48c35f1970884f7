//! Reads: loading a client with a long history, and searching the client list.

use std::time::Instant;

use anyhow::Result;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, ROOT};
use ficha_core::DocId;
use ficha_core::frame::{FeedEntry, FeedPage};
use ficha_core::replica::ReplicaStore;
use ficha_store::SyncStore;
use serde_json::json;

use crate::fixtures::{Corpus, Scratch, changes, client, company, local_replica};
use crate::report::{Row, median};

/// A client edited in `changes` separate changes, loaded from the store.
pub fn long_history(changes_count: usize) -> Result<Vec<Row>> {
    let scratch = Scratch::new()?;
    let store = local_replica(&scratch, "r")?;
    let (id, base) = client(1, 0)?;
    let mut sync = SyncStore(&store);
    let bytes: Vec<u8> = changes(&base)
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect();
    sync.apply_feed(&FeedPage {
        company: company(),
        from: 0,
        upto: 1,
        entries: vec![FeedEntry {
            seq: 1,
            doc: id,
            changes: bytes,
        }],
    })?;
    let edit = |d: &mut AutoCommit, i: usize| {
        d.put(
            ROOT,
            format!("visit_{}", i % 50),
            format!("visit {i}: treatment notes"),
        )
    };
    for i in 0..changes_count {
        store.edit_doc(id, |d| -> anyhow::Result<()> { Ok(edit(d, i)?) })?;
    }
    // The last edit left the document materialised: a read copies it from memory.
    let mut warm = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let _ = store.read_doc(&id)?;
        warm.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // Reopened, the store has nothing in memory: every read loads snapshot and chunks.
    let chunks = store.chunk_count(&id)?;
    drop(store);
    let store = ficha_store::Store::open(
        &scratch.path("r"),
        std::sync::Arc::new(ficha_domain::index::DomainIndexer),
    )?;
    let mut ours = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let _ = store.read_doc(&id)?;
        ours.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // The same state as one change.
    let mut one = AutoCommit::load(&base.save())?;
    for i in 0..changes_count {
        edit(&mut one, i)?;
    }
    one.commit();
    let saved = one.save();
    let mut baseline = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let _ = Automerge::load(&saved)?;
        baseline.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // The floor of any store keeping the history: Automerge loading the whole history saved
    // as one document, without even verifying its heads.
    let history_saved = store.read_doc(&id)?.map(|d| d.save()).unwrap_or_default();
    let mut floor = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let _ = Automerge::load_unverified_heads(&history_saved)?;
        floor.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // For reference: the uncompacted history, applied change by change.
    let full = store
        .read_doc(&id)?
        .map(|d| d.get_changes(&[]))
        .unwrap_or_default();
    let mut raw = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let mut d = Automerge::new();
        for c in &full {
            d.load_incremental(c.raw_bytes())?;
        }
        raw.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let base_med = median(&mut baseline);
    let sz = json!({ "changes": changes_count, "chunks_after_compaction": chunks });
    Ok([
        ("median load (compacted store)", median(&mut ours)),
        (
            "floor: Automerge load of the history saved whole",
            median(&mut floor),
        ),
        ("median read, document still in memory", median(&mut warm)),
        ("median load (uncompacted history)", median(&mut raw)),
    ]
    .into_iter()
    .map(|(metric, ms)| {
        Row::new(
            "long_history",
            metric,
            ms,
            base_med,
            "ms",
            "same state saved as one change",
            sz.clone(),
        )
    })
    .collect())
}

fn matches(name: &str, needle: &str) -> bool {
    name.to_lowercase().contains(needle)
}

/// Search by name over the corpus's clients: the index vs loading every document.
pub fn query(corpus: &Corpus, scan_sample: usize) -> Result<Vec<Row>> {
    let store = &corpus.replica;
    let ids: Vec<DocId> = corpus.docs.iter().map(|(id, _)| *id).collect();
    let count = ids.len();
    let needle = "004242";
    let search = ficha_domain::search::Filter {
        text: Some(format!("client {needle}")),
        ..Default::default()
    };
    let timed = |f: &ficha_domain::search::Filter, limit: Option<usize>| -> Result<(f64, usize)> {
        let mut times = Vec::new();
        let mut hits = 0;
        for _ in 0..20 {
            let t = Instant::now();
            hits = ficha_app::listing::query(store, f, 0, limit)?.len();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok((median(&mut times), hits))
    };
    let (ours, hits) = timed(&search, None)?;
    let first_page = ficha_domain::search::Filter {
        company: Some("bench".into()),
        state: Some("active".into()),
        ..Default::default()
    };
    let (page_ms, page_hits) = timed(&first_page, Some(50))?;
    // The index's predecessor: decode every summary and match it.
    let mut summary_scan = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let n = store
            .summaries()?
            .into_iter()
            .filter_map(|(_, b)| serde_json::from_slice::<ficha_domain::ClientSummary>(&b).ok())
            .filter(|c| search.matches(c))
            .count();
        summary_scan.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(n, hits, "the index and the summary scan must agree");
    }
    let summary_scan_ms = median(&mut summary_scan);
    // Baseline: load every document and read its name (timed on a sample, scaled to all).
    let sample = scan_sample.min(ids.len());
    let t = Instant::now();
    let mut scan_hits = 0;
    for id in &ids[..sample] {
        if let Some(d) = store.read_doc(id)?
            && matches(&ficha_domain::summary(&d)?.name, needle)
        {
            scan_hits += 1;
        }
    }
    let scan_ms = t.elapsed().as_secs_f64() * 1e3 * (ids.len() as f64 / sample.max(1) as f64);
    Ok(vec![
        Row::new(
            "query",
            "median search by name",
            ours,
            scan_ms,
            "ms",
            "scan + load every document",
            json!({ "clients": count, "hits": hits, "scan_measured_on": sample, "scan_hits_in_sample": scan_hits }),
        ),
        Row::new(
            "query",
            "median search by name vs summary scan",
            ours,
            summary_scan_ms,
            "ms",
            "decode and match every summary (no index)",
            json!({ "clients": count, "hits": hits }),
        ),
        Row::new(
            "query",
            "median first page (50) of a company filter",
            page_ms,
            scan_ms,
            "ms",
            "scan + load every document",
            json!({ "clients": count, "hits": page_hits }),
        ),
    ])
}
