//! The feed on PostgreSQL stays gap-free under concurrent writers: a reader that polls and
//! moves its checkpoint to the last number it read never passes a number that commits later.
//! The same harness run on the naive design (a `BIGSERIAL` column) catches it skipping rows, so
//! the test can fail.
//!
//! Needs a PostgreSQL server: `FICHA_TEST_POSTGRES=postgres://…` (`.ci/run` starts a throwaway
//! one with `.ci/postgres-up`). Without it the test says so and passes, except in CI.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use ficha_core::{Company, DocId, ReplicaId};
use ficha_relay::pg;

mod common;

const WRITERS: usize = 8;
const INGESTS_PER_WRITER: usize = 60;
const ENTRIES_PER_INGEST: usize = 3;

/// A connection whose tables live in a schema of their own, so runs never meet.
async fn connect(url: &str, schema: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("connection: {e}");
        }
    });
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
        ))
        .await
        .expect("schema");
    client
}

/// How a design writes and reads its feed.
#[derive(Clone, Copy)]
enum Design {
    /// `ficha_relay::pg`: a counter row per company, taken in the ingest transaction.
    CounterRow,
    /// A `BIGSERIAL` column: numbers drawn at insert, committed in any order.
    Serial,
}

async fn setup(client: &Client, design: Design) {
    match design {
        Design::CounterRow => pg::migrate(client).await.expect("migrate"),
        Design::Serial => client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS naive_feed (seq BIGSERIAL PRIMARY KEY, company TEXT NOT NULL, changes BYTEA NOT NULL)",
            )
            .await
            .expect("naive table"),
    }
}

async fn ingest(client: &mut Client, design: Design, company: &Company, n: usize) {
    let entries: Vec<(DocId, Vec<u8>)> = (0..ENTRIES_PER_INGEST)
        .map(|i| (DocId([i as u8; 16]), vec![n as u8; 64]))
        .collect();
    match design {
        Design::CounterRow => {
            pg::append(client, company, ReplicaId([1; 16]), &entries)
                .await
                .expect("append");
        }
        Design::Serial => {
            let txn = client.transaction().await.expect("txn");
            for (_, changes) in &entries {
                txn.execute(
                    "INSERT INTO naive_feed (company, changes) VALUES ($1, $2)",
                    &[&company.as_str(), changes],
                )
                .await
                .expect("insert");
            }
            // What an ingest does between drawing its numbers and committing (checking and
            // indexing changes): the window in which a later number can commit first.
            tokio::time::sleep(Duration::from_millis(1)).await;
            txn.commit().await.expect("commit");
        }
    }
}

async fn poll(client: &Client, design: Design, company: &Company, after: u64) -> Vec<u64> {
    match design {
        Design::CounterRow => pg::read(client, company, after, 10_000)
            .await
            .expect("read")
            .into_iter()
            .map(|e| e.seq)
            .collect(),
        Design::Serial => client
            .query(
                "SELECT seq FROM naive_feed WHERE company = $1 AND seq > $2 ORDER BY seq",
                &[&company.as_str(), &(after as i64)],
            )
            .await
            .expect("read")
            .iter()
            .map(|r| r.get::<_, i64>(0) as u64)
            .collect(),
    }
}

/// Runs concurrent writers and one polling reader; returns (rows written, rows the reader
/// read, highest number).
async fn race(url: &str, design: Design, schema: &str) -> (usize, usize, u64) {
    let company = Company::new("acme").expect("company");
    setup(&connect(url, schema).await, design).await;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (client, done, company) = (connect(url, schema).await, done.clone(), company.clone());
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = BTreeSet::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let rows = poll(&client, design, &company, cursor).await;
                if let Some(last) = rows.last() {
                    cursor = *last;
                }
                seen.extend(rows);
                if finished {
                    return seen;
                }
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut client = connect(url, schema).await;
        let company = company.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..INGESTS_PER_WRITER {
                ingest(&mut client, design, &company, w * 1000 + i).await;
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.expect("reader");
    let written = WRITERS * INGESTS_PER_WRITER * ENTRIES_PER_INGEST;
    let max = seen.iter().max().copied().unwrap_or(0);
    (written, seen.len(), max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_polling_reader_misses_nothing_under_concurrent_writers_and_the_naive_design_does() {
    let Some(url) = common::postgres() else {
        return;
    };
    let run = format!("t{}", std::process::id());
    let (written, read, max) = race(&url, Design::CounterRow, &format!("{run}_counter")).await;
    assert_eq!(read, written, "the reader read every entry");
    assert_eq!(
        max as usize, written,
        "count = max(seq): no number left unused"
    );

    // The same race on the naive design: a bounded number of tries to catch a skip.
    let mut skipped = 0;
    for attempt in 0..5 {
        let (written, read, _) = race(&url, Design::Serial, &format!("{run}_naive{attempt}")).await;
        skipped = written - read;
        if skipped > 0 {
            break;
        }
    }
    assert!(
        skipped > 0,
        "the harness catches the naive design skipping rows"
    );
    eprintln!("naive BIGSERIAL feed: the reader skipped {skipped} rows");
    let prefix = format!("{run}_");
    tokio::task::spawn_blocking(move || common::drop_schemas(&url, &prefix))
        .await
        .expect("drop");
}
