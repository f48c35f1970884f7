//! A company's first sync when most of its documents are records linked to clients: ours
//! against the naive per-document Automerge sync and against the parse floor, as the
//! initial_sync workload measures clients alone.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use automerge::{AutoCommit, Automerge};
use ficha_app::sync::sync_once;
use ficha_core::DocId;
use ficha_core::ids::actor_for;
use ficha_domain::Actor;
use ficha_domain::record;
use serde_json::json;
use uuid::Uuid;

use crate::fixtures::{AUTHOR, Scratch, clients, par_map, relay_with, replica};
use crate::naive;
use crate::report::{Row, phase};

const KINDS: &[&str] = &[
    "appointment",
    "invoice",
    "service",
    "procedure",
    "transaction",
];

/// `per_client` records of mixed kinds for each of `clients` clients, as saved documents.
fn linked(clients: &[(DocId, Automerge)], per_client: usize) -> Result<Vec<(DocId, Automerge)>> {
    let jobs: Vec<(usize, DocId)> = clients
        .iter()
        .flat_map(|(c, _)| (0..per_client).map(move |i| (i, *c)))
        .enumerate()
        .map(|(n, (_, c))| (n, c))
        .collect();
    par_map(&jobs, |&(n, client)| {
        let spec = record::kind(KINDS[n % KINDS.len()]).ok_or_else(|| anyhow::anyhow!("kind"))?;
        let values = crate::fixtures::record_values(spec, n, "servicio")?;
        let id = Uuid::from_u128(0x5EC0_0000_0000_0000_0000_0000_0000_0000 + n as u128);
        let mut doc = AutoCommit::new().with_actor(actor_for(AUTHOR, 1));
        let client = Uuid::from_bytes(client.0);
        record::create(
            &mut doc,
            spec,
            id,
            "bench",
            Some(client),
            &values,
            &Actor::replica("bench"),
            Uuid::nil(),
            0,
        )?;
        doc.commit();
        Ok((DocId::from(id), doc.document().clone()))
    })
}

/// First sync of `count` clients with `per_client` linked records each.
pub async fn records_sync(count: usize, per_client: usize) -> Result<Vec<Row>> {
    let scratch = Scratch::new()?;
    let mut lap = Instant::now();
    let mut docs = clients(0, count, 2)?;
    let records = linked(&docs, per_client)?;
    let n_records = records.len();
    docs.extend(records);
    phase("records_sync", "build clients and records", &mut lap);
    let relay_dir = scratch.path("relay");
    relay_with(&relay_dir, &docs)?;
    phase("records_sync", "fill and compact the relay", &mut lap);
    let relay = ficha_relay::spawn(&relay_dir, "127.0.0.1:0".parse()?).await?;
    let store = replica(&scratch.path("r"), &relay_dir, &relay.url(), "r")?;
    let t = Instant::now();
    sync_once(store.clone(), Duration::from_secs(3600)).await?;
    let secs = t.elapsed().as_secs_f64();
    phase("records_sync", "ours", &mut lap);
    ensure!(
        store.doc_count()? == docs.len() as u64,
        "the sync missed documents"
    );
    relay.stop().await;
    let saved: Vec<Vec<u8>> = docs.iter().map(|(_, d)| d.save()).collect();
    let addr = naive::serve(docs.iter().map(|(_, d)| d.clone()).collect()).await?;
    let mut empty: Vec<Automerge> = (0..docs.len()).map(|_| Automerge::new()).collect();
    let cost = naive::sync_all(addr, &mut empty).await?;
    phase("records_sync", "naive", &mut lap);
    let t = Instant::now();
    par_map(&saved, |b| {
        Ok(Automerge::load_unverified_heads(b).map(drop)?)
    })?;
    let floor = t.elapsed().as_secs_f64();
    phase("records_sync", "floor", &mut lap);
    let meta = json!({ "clients": count, "records": n_records });
    Ok(vec![
        Row::new(
            "records_sync",
            "wall time to a durable replica",
            secs,
            cost.secs,
            "s",
            "naive per-doc automerge sync",
            meta.clone(),
        ),
        Row::new(
            "records_sync",
            "same, vs the parse floor",
            secs,
            floor,
            "s",
            "parse every document once on every core, no I/O",
            meta,
        ),
    ])
}
