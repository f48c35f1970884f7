//! Durable local edits and batched ingest, against raw redb and raw fdatasync.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use ficha_core::replica::ReplicaStore;
use ficha_store::SyncStore;
use rand::Rng;
use serde_json::json;

use crate::fixtures::{Scratch, clients, local_replica, page};
use crate::report::{Row, median};

/// Adding a note to one of `count` stored clients, and ingest batching.
pub fn local_edit(count: usize, samples: usize, ingest: usize) -> Result<Vec<Row>> {
    let scratch = Scratch::new()?;
    let store = local_replica(&scratch, "r")?;
    let docs = clients(0, count, 20)?;
    let mut sync = SyncStore(&store);
    let mut seq = 0;
    for chunk in docs.chunks(500) {
        sync.apply_feed(&page(seq, chunk))?;
        seq += chunk.len() as u64;
    }

    // Each sample is two notes on a client picked at random: the first finds it on disk only
    // (cold), the second finds it still materialised from the first, as when a user adds
    // notes to the ficha open in front of them (warm).
    let mut rng = rand::rng();
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let mut sizes = Vec::new();
    let text = &"Follow-up call: confirmed the next visit and the allergy notes. ".repeat(3)[..160];
    for i in 0..samples {
        let (doc, _) = &docs[rng.random_range(0..docs.len())];
        for (n, times) in [&mut cold, &mut warm].into_iter().enumerate() {
            let note = uuid::Uuid::from_u64_pair(0xB0B + n as u64, i as u64);
            let t = Instant::now();
            store.edit_doc(*doc, |d| -> anyhow::Result<()> {
                Ok(ficha_domain::add_note(d, note, text, 1_800_000_000_000)?)
            })?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    if let Some(batch) = sync.outbox_batch(usize::MAX, usize::MAX)? {
        sizes = batch
            .docs
            .iter()
            .flat_map(|d| d.changes.iter())
            .map(|c| c.to_vec())
            .collect();
    }

    // Baselines: the same bytes written by raw redb, and by write + fdatasync.
    let raw = redb::Database::create(scratch.path("raw.redb"))?;
    let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("raw");
    let mut redb_ms = Vec::new();
    let mut fsync_ms = Vec::new();
    let mut file = std::fs::File::create(scratch.path("raw.bin"))?;
    for (i, bytes) in sizes.iter().enumerate() {
        let t = Instant::now();
        let txn = raw.begin_write()?;
        txn.open_table(table)?.insert(i as u64, bytes.as_slice())?;
        txn.commit()?;
        redb_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        file.write_all(bytes)?;
        file.sync_data()?;
        fsync_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // The floor: the same Automerge edit on a document in memory, and the bytes of its change
    // (what any store must write), with no storage at all.
    let mut in_memory = Vec::new();
    let mut doc = automerge::AutoCommit::load(&docs[0].1.save())?;
    for i in 0..samples {
        let note = uuid::Uuid::from_u64_pair(0xF100, i as u64);
        let t = Instant::now();
        ficha_domain::add_note(&mut doc, note, text, 1_800_000_000_000)?;
        doc.commit();
        let change = doc.get_last_local_change().map(|c| c.raw_bytes().len());
        in_memory.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(change.is_some(), "the edit made no change");
    }
    let (warm_med, cold_med) = (median(&mut warm), median(&mut cold));
    let (redb_med, fsync_med) = (median(&mut redb_ms), median(&mut fsync_ms));
    let sz = json!({ "stored_clients": count, "samples": samples });
    let mut rows = Vec::new();
    for (metric, ours) in [
        ("median add-note + durable commit, client open", warm_med),
        (
            "median add-note + durable commit, client on disk only",
            cold_med,
        ),
        (
            "floor: the same edit and its change bytes in memory, no storage",
            median(&mut in_memory),
        ),
    ] {
        rows.push(Row::new(
            "local_edit",
            metric,
            ours,
            redb_med,
            "ms",
            "raw redb write of the same bytes",
            sz.clone(),
        ));
        rows.push(Row::new(
            "local_edit",
            metric,
            ours,
            fsync_med,
            "ms",
            "raw write + fdatasync of the same bytes",
            sz.clone(),
        ));
    }

    // Ingest: one transaction for a page of `ingest` documents vs one per document.
    let fresh = clients(1_000_000, ingest, 0)?;
    let batched = local_replica(&scratch, "b1")?;
    let single = local_replica(&scratch, "b2")?;
    let t = Instant::now();
    SyncStore(&batched).apply_feed(&page(0, &fresh))?;
    let batched_rate = ingest as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (i, d) in fresh.iter().enumerate() {
        SyncStore(&single).apply_feed(&page(i as u64, std::slice::from_ref(d)))?;
    }
    let single_rate = ingest as f64 / t.elapsed().as_secs_f64();
    rows.push(Row::new(
        "local_edit",
        "ingest throughput, batched page",
        batched_rate,
        single_rate,
        "chg/s",
        "one transaction per change",
        json!({ "changes": ingest }),
    ));
    Ok(rows)
}
