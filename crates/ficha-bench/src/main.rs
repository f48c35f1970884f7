//! `ficha-bench`: every hot path against its natural baseline, measured in the same run.
//!
//! `cargo run --release -p ficha-bench -- [--quick] [--json] [--only NAME]`

mod fixtures;
mod naive;
mod report;
mod samod_baseline;
mod workloads;

use anyhow::Result;
use clap::Parser;

use report::Row;

/// Benchmarks of Ficha's hot paths against their baselines.
#[derive(Parser)]
#[command(name = "ficha-bench")]
struct Args {
    /// Smaller sizes: finishes in about a minute.
    #[arg(long)]
    quick: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Run only these workloads (repeatable).
    #[arg(long)]
    only: Vec<String>,
}

struct Sizes {
    edit_clients: usize,
    edit_samples: usize,
    ingest: usize,
    initial_docs: usize,
    initial_items: usize,
    /// Clients of the corpus idle reconnect, query and memory share.
    corpus_docs: usize,
    corpus_items: usize,
    edit_docs: usize,
    ks: Vec<usize>,
    fanout_subscribers: usize,
    fanout_changes: usize,
    history: usize,
    scan_sample: usize,
    memory_sessions: usize,
    /// Clients and linked records of the records workload, and one client's tab.
    record_clients: usize,
    records: usize,
    tab: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                edit_clients: 1_000,
                edit_samples: 100,
                ingest: 1_000,
                initial_docs: 1_000,
                initial_items: 20,
                corpus_docs: 10_000,
                corpus_items: 2,
                edit_docs: 1_000,
                ks: vec![1, 100, 1_000],
                fanout_subscribers: 20,
                fanout_changes: 200,
                history: 1_000,
                scan_sample: 2_000,
                memory_sessions: 200,
                record_clients: 2_000,
                records: 20_000,
                tab: 1_000,
            }
        } else {
            Self {
                edit_clients: 10_000,
                edit_samples: 300,
                ingest: 5_000,
                initial_docs: 10_000,
                initial_items: 100,
                corpus_docs: 100_000,
                corpus_items: 2,
                edit_docs: 10_000,
                ks: vec![1, 100, 10_000],
                fanout_subscribers: 100,
                fanout_changes: 500,
                history: 1_000,
                scan_sample: 5_000,
                memory_sessions: 200,
                record_clients: 20_000,
                records: 200_000,
                tab: 1_000,
            }
        }
    }
}

fn main() -> Result<()> {
    // The memory workload re-executes this binary as a relay or a replica process.
    if workloads::memory::child_main(&std::env::args().collect::<Vec<_>>())? {
        return Ok(());
    }
    let args = Args::parse();
    let s = Sizes::new(args.quick);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    if !args.json {
        println!(
            "{:<22} {:<34} {:>14} {:>14} {:>10} {:<6}",
            "workload", "metric", "ours", "baseline", "ratio", "unit"
        );
    }
    let started = std::time::Instant::now();
    let lap = std::cell::Cell::new(started);
    // Each workload's wall time, fixtures included, goes to stderr: the run has a budget.
    let emit = |rows: Result<Vec<Row>>, name: &str| {
        match rows {
            Ok(rows) => rows.iter().for_each(|r| r.print(args.json)),
            Err(e) => eprintln!("{name} failed: {e:#}"),
        }
        eprintln!(
            "{name}: {:.1} s",
            lap.replace(std::time::Instant::now())
                .elapsed()
                .as_secs_f64()
        );
    };
    if wanted("local_edit") {
        emit(
            workloads::edit::local_edit(s.edit_clients, s.edit_samples, s.ingest),
            "local_edit",
        );
    }
    if wanted("initial_sync") {
        emit(
            rt.block_on(workloads::sync::initial_sync(
                s.initial_docs,
                s.initial_items,
            )),
            "initial_sync",
        );
    }
    // Built once, before the first workload that reads it, and timed on its own line.
    let mut corpus = None;
    if ["idle_reconnect", "query", "memory"]
        .iter()
        .any(|w| wanted(w))
    {
        let built = rt.block_on(fixtures::Corpus::build(s.corpus_docs, s.corpus_items));
        corpus = built
            .inspect_err(|e| eprintln!("corpus failed: {e:#}"))
            .ok();
        emit(Ok(Vec::new()), "corpus");
    }
    if let Some(c) = corpus.as_ref().filter(|_| wanted("idle_reconnect")) {
        emit(
            rt.block_on(workloads::sync::idle_reconnect(c)),
            "idle_reconnect",
        );
    }
    if wanted("reconnect_after_edits") {
        emit(
            rt.block_on(workloads::sync::reconnect_after_edits(s.edit_docs, &s.ks)),
            "reconnect_after_edits",
        );
    }
    if wanted("fanout") {
        emit(
            rt.block_on(workloads::fanout::fanout(
                s.fanout_subscribers,
                s.fanout_changes,
            )),
            "fanout",
        );
    }
    // Needs a PostgreSQL server (`.ci/postgres-up` starts one): named, never assumed.
    if wanted("cluster") {
        match std::env::var("FICHA_BENCH_POSTGRES")
            .or_else(|_| std::env::var("FICHA_TEST_POSTGRES"))
        {
            Ok(url) => emit(
                rt.block_on(workloads::fanout::cluster(
                    &url,
                    s.fanout_subscribers,
                    s.fanout_changes,
                )),
                "cluster",
            ),
            Err(_) => eprintln!("cluster: skipped (set FICHA_BENCH_POSTGRES=postgres://…)"),
        }
    }
    if wanted("records") {
        emit(
            workloads::records::records(s.record_clients, s.records, s.tab),
            "records",
        );
    }
    if wanted("records_sync") {
        emit(
            rt.block_on(workloads::records_sync::records_sync(
                s.record_clients / 4,
                10,
            )),
            "records_sync",
        );
    }
    if wanted("automerge_endpoint") {
        emit(
            rt.block_on(workloads::repo_endpoint::automerge_endpoint(1_000, 20)),
            "automerge_endpoint",
        );
    }
    if wanted("long_history") {
        emit(workloads::read::long_history(s.history), "long_history");
    }
    if let Some(c) = corpus.as_ref().filter(|_| wanted("query")) {
        emit(workloads::read::query(c, s.scan_sample), "query");
    }
    if let Some(c) = corpus.as_mut().filter(|_| wanted("memory")) {
        emit(
            rt.block_on(workloads::memory::memory(c, s.memory_sessions)),
            "memory",
        );
    }
    eprintln!("whole run: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
