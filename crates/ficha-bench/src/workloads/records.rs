//! Records linked to clients: a client's tab of many records and a search across kinds, read
//! through the per-kind index, against decoding and matching every summary (no index).

use std::time::Instant;

use anyhow::Result;
use ficha_core::DocId;
use ficha_domain::Actor;
use ficha_domain::record::{self, RecordFilter, RecordSort};
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

use crate::fixtures::{Scratch, company, local_replica};
use crate::report::{Row, median};

const WORDS: &[&str] = &[
    "corte",
    "tinte",
    "revisión",
    "implementación",
    "mantenimiento",
    "programación",
];

/// `clients` clients, `records` records of five kinds spread over them, and one client with
/// `tab` records of its own.
pub fn records(clients: usize, records_count: usize, tab: usize) -> Result<Vec<Row>> {
    let scratch = Scratch::new()?;
    let store = local_replica(&scratch, "r")?;
    let co = company();
    let actor = Actor::replica("bench");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(12);
    let client_ids: Vec<Uuid> = (0..clients)
        .map(|_| Uuid::from_bytes(rng.random()))
        .collect();
    let build = std::time::Instant::now();
    for chunk in client_ids.chunks(5_000) {
        let batch = store.batch()?;
        for id in chunk {
            batch.create_doc(DocId::from(*id), &co, |d| -> Result<()> {
                Ok(ficha_domain::new_client(
                    d,
                    *id,
                    co.as_str(),
                    "Cliente de prueba",
                    None,
                    None,
                    0,
                )?)
            })?;
        }
        batch.commit()?;
    }
    let kinds = [
        "appointment",
        "invoice",
        "service",
        "procedure",
        "transaction",
    ];
    let big = client_ids[0];
    let total = records_count + tab;
    for start in (0..total).step_by(5_000) {
        let batch = store.batch()?;
        for i in start..(start + 5_000).min(total) {
            let client = if i < tab {
                big
            } else {
                client_ids[rng.random_range(0..clients)]
            };
            let spec =
                record::kind(kinds[i % kinds.len()]).ok_or_else(|| anyhow::anyhow!("kind"))?;
            let word = WORDS[i % WORDS.len()];
            let values = crate::fixtures::record_values(spec, i, word)?;
            let id = Uuid::from_bytes(rng.random());
            batch.create_doc(DocId::from(id), &co, |d| -> Result<()> {
                Ok(record::create(
                    d,
                    spec,
                    id,
                    co.as_str(),
                    Some(client),
                    &values,
                    &actor,
                    Uuid::nil(),
                    0,
                )?)
            })?;
        }
        batch.commit()?;
    }
    eprintln!(
        "  corpus: {clients} clients, {total} records in {:.1} s",
        build.elapsed().as_secs_f64()
    );

    let timed = |f: &RecordFilter, want: usize| -> Result<f64> {
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let n = ficha_app::listing::query_records(&store, f, &RecordSort::default(), 0, None)?
                .len();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(n == want, "the index found {n}, the scan {want}");
        }
        Ok(median(&mut times))
    };
    // The baseline: every summary decoded and matched, as a store without the index would.
    let scan = |f: &RecordFilter| -> Result<(f64, usize)> {
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..3 {
            let t = Instant::now();
            n = store
                .summaries()?
                .into_iter()
                .filter_map(|(_, b)| serde_json::from_slice::<record::RecordSummary>(&b).ok())
                .filter(|r| f.matches(r))
                .count();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok((median(&mut times), n))
    };
    let tab_filter = RecordFilter {
        linked: Some(big.to_string()),
        ..RecordFilter::default()
    };
    let (tab_scan, tab_n) = scan(&tab_filter)?;
    let tab_ms = timed(&tab_filter, tab_n)?;
    let search = RecordFilter {
        search: Some("implementa 4".into()),
        ..RecordFilter::default()
    };
    let (search_scan, search_n) = scan(&search)?;
    let search_ms = timed(&search, search_n)?;
    let page = RecordFilter {
        kind: Some("appointment".into()),
        status: Some("scheduled".into()),
        since: Some("2026-06-01".into()),
        until: Some("2026-06-07".into()),
        ..RecordFilter::default()
    };
    let (page_scan, page_n) = scan(&page)?;
    let page_ms = timed(&page, page_n)?;
    let meta = json!({ "clients": clients, "records": total });
    Ok(vec![
        Row::new(
            "records",
            format!("a client's tab of {tab_n} records"),
            tab_ms,
            tab_scan,
            "ms",
            "decode and match every summary (no index)",
            meta.clone(),
        ),
        Row::new(
            "records",
            format!("search across kinds ({search_n} hits)"),
            search_ms,
            search_scan,
            "ms",
            "decode and match every summary (no index)",
            meta.clone(),
        ),
        Row::new(
            "records",
            format!("scheduled appointments of one week ({page_n})"),
            page_ms,
            page_scan,
            "ms",
            "decode and match every summary (no index)",
            meta,
        ),
    ])
}
