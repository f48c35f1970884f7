//! Sync workloads: initial sync, idle reconnect and reconnect after edits, over loopback.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use automerge::Automerge;
use ficha_app::sync::sync_once;
use ficha_core::DocId;
use ficha_core::replica::ReplicaStore;
use ficha_store::SyncStore;
use serde_json::{Value, json};

use crate::fixtures::{Corpus, Scratch, clients, par_map, relay_with, replica, traffic};
use crate::naive;
use crate::report::{Row, phase};
use crate::samod_baseline::{self, AGAINST as SAMOD, AGAINST_SCALED as SAMOD_SCALED};

const FOREVER: Duration = Duration::from_secs(3600);
const NAIVE: &str = "naive per-doc automerge sync";
/// The relay's compaction period in `reconnect_after_edits`.
const COMPACTED: Duration = Duration::from_millis(100);
/// Documents parsed to measure the initial sync's floor.
const FLOOR_SAMPLE: usize = 2_000;

fn docs(count: usize, items: usize) -> Result<Vec<(DocId, Automerge)>> {
    clients(0, count, items)
}

/// The samod figures, or `None` (reported on stderr) so one failing baseline does not hide our
/// rows and the naive ones.
fn samod_or_report<T>(cost: Result<T>, workload: &str) -> Option<T> {
    cost.inspect_err(|e| eprintln!("{workload}: samod baseline failed: {e:#}"))
        .ok()
}

/// Rows against samod: (metric, ours, samod's figure, unit). samod runs on at most
/// [`samod_baseline::MAX_DOCS`] documents; its figures are scaled linearly to ours, which
/// flatters it (its cost grows faster than the number of documents).
fn samod_rows(
    workload: &'static str,
    metrics: [(&str, f64, f64, &'static str); 3],
    sizes: &Value,
) -> Vec<Row> {
    metrics
        .into_iter()
        .map(|(metric, ours, theirs, unit)| {
            Row::new(
                workload,
                metric,
                ours,
                theirs,
                unit,
                SAMOD_SCALED,
                sizes.clone(),
            )
        })
        .collect()
}

/// Initial sync of `count` clients with `items` items each to an empty replica.
pub async fn initial_sync(count: usize, items: usize) -> Result<Vec<Row>> {
    let scratch = Scratch::new()?;
    let mut lap = Instant::now();
    let docs = docs(count, items)?;
    phase("initial_sync", "build clients", &mut lap);
    let saved_docs: Vec<Vec<u8>> = docs.iter().map(|(_, d)| d.save()).collect();
    let saved: usize = saved_docs.iter().map(Vec::len).sum();
    let relay_dir = scratch.path("relay");
    phase("initial_sync", "save clients", &mut lap);
    relay_with(&relay_dir, &docs)?;
    phase("initial_sync", "fill and compact the relay", &mut lap);
    let relay = ficha_relay::spawn(&relay_dir, "127.0.0.1:0".parse()?).await?;
    let store = replica(&scratch.path("r"), &relay_dir, &relay.url(), "r")?;
    let before = traffic(&relay).await?;
    let t = Instant::now();
    sync_once(store.clone(), FOREVER).await?;
    let secs = t.elapsed().as_secs_f64();
    phase("initial_sync", "ours", &mut lap);
    let ours = traffic(&relay).await? - before;
    ensure!(
        store.doc_count()? == count as u64,
        "initial sync missed documents"
    );
    relay.stop().await;

    let addr = naive::serve(docs.iter().map(|(_, d)| d.clone()).collect()).await?;
    let mut empty: Vec<Automerge> = (0..count).map(|_| Automerge::new()).collect();
    let cost = naive::sync_all(addr, &mut empty).await?;
    phase("initial_sync", "naive", &mut lap);
    // The floor of any replica that can list and search what it received: parsing every
    // document once (its heads and summary need it), in memory, with no I/O at all.
    // Every document costs about the same to parse, so a sample, scaled, keeps the full run short.
    let sample = &saved_docs[..count.min(FLOOR_SAMPLE)];
    // On every core, as the replica parses new documents.
    let t = Instant::now();
    par_map(sample, |bytes| {
        Ok(Automerge::load_unverified_heads(bytes).map(drop)?)
    })?;
    let parse_secs = t.elapsed().as_secs_f64() * count as f64 / sample.len().max(1) as f64;
    phase("initial_sync", "floor", &mut lap);
    let samod_docs = count.min(samod_baseline::MAX_DOCS);
    let samod = samod_or_report(
        samod_baseline::initial_sync(&saved_docs[..samod_docs]).await,
        "initial_sync",
    );
    phase("initial_sync", "samod", &mut lap);
    let sizes = json!({ "docs": count, "items_per_doc": items, "saved_bytes": saved });
    let mut rows = vec![
        Row::new(
            "initial_sync",
            "wall time to a durable replica",
            secs,
            cost.secs,
            "s",
            NAIVE,
            sizes.clone(),
        ),
        Row::new(
            "initial_sync",
            "floor: parse every document once on every core, no I/O",
            parse_secs,
            cost.secs,
            "s",
            NAIVE,
            json!({ "docs": count, "items_per_doc": items, "parsed_sample": sample.len() }),
        ),
        Row::new(
            "initial_sync",
            "bytes on the wire",
            ours.bytes,
            cost.bytes,
            "B",
            NAIVE,
            sizes.clone(),
        ),
        Row::new(
            "initial_sync",
            "bytes on the wire / saved size",
            ours.bytes,
            saved as f64,
            "B",
            "sum of Automerge save() sizes",
            sizes.clone(),
        ),
        Row::new(
            "initial_sync",
            "frames (round trips ~ frames/2)",
            ours.frames,
            cost.messages,
            "frames",
            NAIVE,
            sizes.clone(),
        ),
    ];
    if let Some(samod) = samod {
        let sizes = json!({
            "docs": count,
            "items_per_doc": items,
            "saved_bytes": saved,
            "samod_docs": samod_docs,
            "samod_tcp_bytes": samod.tcp_bytes,
            "samod_flush_secs": samod.flush_secs,
        });
        let scale = count as f64 / samod_docs.max(1) as f64;
        rows.extend(samod_rows(
            "initial_sync",
            [
                (
                    "wall time to a durable replica",
                    secs,
                    samod.secs * scale,
                    "s",
                ),
                ("bytes on the wire", ours.bytes, samod.bytes * scale, "B"),
                (
                    "frames (round trips ~ frames/2)",
                    ours.frames,
                    samod.messages * scale,
                    "frames",
                ),
            ],
            &sizes,
        ));
    }
    Ok(rows)
}

/// Reconnect with every document of the corpus on both sides and nothing changed.
pub async fn idle_reconnect(corpus: &Corpus) -> Result<Vec<Row>> {
    let mut lap = Instant::now();
    let (docs, count) = (&corpus.docs, corpus.docs.len());
    let relay = corpus
        .relay
        .as_ref()
        .context("the corpus relay was stopped")?;
    let store = corpus.replica.clone();
    let before = traffic(relay).await?;
    let t = Instant::now();
    sync_once(store.clone(), FOREVER).await?;
    let secs = t.elapsed().as_secs_f64();
    let ours = traffic(relay).await? - before;
    phase("idle_reconnect", "ours", &mut lap);

    let server_docs: Vec<Automerge> = docs.iter().map(|(_, d)| d.clone()).collect();
    let mut client_docs = server_docs.clone();
    let addr = naive::serve(server_docs).await?;
    let cost = naive::sync_all(addr, &mut client_docs).await?;
    phase("idle_reconnect", "naive", &mut lap);
    let samod_docs = count.min(samod_baseline::MAX_DOCS);
    let saved: Vec<Vec<u8>> = docs[..samod_docs].iter().map(|(_, d)| d.save()).collect();
    let samod = samod_or_report(
        samod_baseline::idle_reconnect(&saved).await,
        "idle_reconnect",
    );
    phase("idle_reconnect", "samod", &mut lap);
    let sizes =
        json!({ "docs": count, "items_per_doc": corpus.items, "baseline_docs_preloaded": true });
    let mut rows = vec![
        Row::new(
            "idle_reconnect",
            "bytes on the wire",
            ours.bytes,
            cost.bytes,
            "B",
            NAIVE,
            sizes.clone(),
        ),
        Row::new(
            "idle_reconnect",
            "frames",
            ours.frames,
            cost.messages,
            "frames",
            NAIVE,
            sizes.clone(),
        ),
        Row::new(
            "idle_reconnect",
            "wall time",
            secs,
            cost.secs,
            "s",
            NAIVE,
            sizes,
        ),
    ];
    if let Some(samod) = samod {
        let sizes = json!({
            "docs": count,
            "samod_docs": samod_docs,
            "samod_tcp_bytes": samod.tcp_bytes,
        });
        let scale = count as f64 / samod_docs.max(1) as f64;
        rows.extend(samod_rows(
            "idle_reconnect",
            [
                ("bytes on the wire", ours.bytes, samod.bytes * scale, "B"),
                ("frames", ours.frames, samod.messages * scale, "frames"),
                ("wall time", secs, samod.secs * scale, "s"),
            ],
            &sizes,
        ));
    }
    Ok(rows)
}

/// Reconnect of a reader after a writer made `k` edits over `m` documents, for each k.
pub async fn reconnect_after_edits(count: usize, ks: &[usize]) -> Result<Vec<Row>> {
    let scratch = Scratch::new()?;
    let mut lap = Instant::now();
    let docs = docs(count, 20)?;
    phase("reconnect_after_edits", "build clients", &mut lap);
    let samod_docs = count.min(samod_baseline::MAX_DOCS);
    let saved: Vec<Vec<u8>> = docs[..samod_docs].iter().map(|(_, d)| d.save()).collect();
    // Only the rounds whose changed documents fit in samod's share compare like for like.
    let samod_ks: Vec<usize> = ks.iter().copied().filter(|k| *k <= samod_docs).collect();
    // Run first so its rows can sit next to ours; it edits its own copies of the documents.
    let samod = samod_or_report(
        samod_baseline::reconnect_after_edits(&saved, &samod_ks).await,
        "reconnect_after_edits",
    );
    phase("reconnect_after_edits", "samod", &mut lap);
    let ids: Vec<DocId> = docs.iter().map(|(id, _)| *id).collect();
    let relay_dir = scratch.path("relay");
    relay_with(&relay_dir, &docs)?;
    phase(
        "reconnect_after_edits",
        "fill and compact the relay",
        &mut lap,
    );
    // A reader reconnects long after the writer's edits, so the relay's background compaction
    // has run by then; a short period lets the bench wait for it instead of for minutes.
    let limits = ficha_relay::Limits {
        compact_every: COMPACTED,
        ..ficha_relay::Limits::default()
    };
    let relay = ficha_relay::spawn_with(&relay_dir, "127.0.0.1:0".parse()?, limits).await?;
    let writer = replica(&scratch.path("w"), &relay_dir, &relay.url(), "w")?;
    let reader = replica(&scratch.path("r"), &relay_dir, &relay.url(), "r")?;
    sync_once(writer.clone(), FOREVER).await?;
    sync_once(reader.clone(), FOREVER).await?;
    phase("reconnect_after_edits", "first syncs", &mut lap);
    let mut rows = Vec::new();
    for (round, &k) in ks.iter().enumerate() {
        let m = k.min(count);
        for i in 0..k {
            let doc = ids[i % m];
            let note = uuid::Uuid::from_u64_pair(0xED17 + round as u64, i as u64);
            writer.edit_doc(doc, |d| -> anyhow::Result<()> {
                Ok(ficha_domain::add_note(
                    d,
                    note,
                    "Called to confirm the appointment; prefers SMS.",
                    1_800_000_000_000,
                )?)
            })?;
        }
        let change_bytes: usize = SyncStore(&writer)
            .outbox_batch(usize::MAX, usize::MAX)?
            .map_or(0, |u| {
                u.docs
                    .iter()
                    .flat_map(|d| d.changes.iter())
                    .map(|c| c.len())
                    .sum()
            });
        sync_once(writer.clone(), FOREVER).await?;
        tokio::time::sleep(COMPACTED * 5).await;
        let before = traffic(&relay).await?;
        sync_once(reader.clone(), FOREVER).await?;
        let ours = traffic(&relay).await? - before;
        let budget = change_bytes as f64 + 64.0 * m as f64;
        rows.push(Row::new(
            "reconnect_after_edits",
            format!("bytes, k={k} m={m}"),
            ours.bytes,
            budget,
            "B",
            "size of the changes + 64 B per changed doc",
            json!({ "docs": count, "k": k, "m": m, "change_bytes": change_bytes }),
        ));
        let samod_round = samod_ks.iter().position(|x| *x == k);
        if let Some(cost) = samod.as_ref().zip(samod_round).and_then(|(s, i)| s.get(i)) {
            rows.push(Row::new(
                "reconnect_after_edits",
                format!("bytes, k={k} m={m}"),
                ours.bytes,
                cost.bytes,
                "B",
                SAMOD,
                json!({
                    "docs": count, "k": k, "m": m,
                    "samod_docs": samod_docs,
                    "samod_messages": cost.messages,
                    "samod_secs": cost.secs,
                    "samod_tcp_bytes": cost.tcp_bytes,
                }),
            ));
        }
    }
    phase("reconnect_after_edits", "rounds", &mut lap);
    relay.stop().await;
    Ok(rows)
}
