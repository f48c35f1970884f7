//! Three `ficha-relay serve --store postgres://…` nodes on one database serve replicas spread
//! over them: two connect to a node each, a third through a load balancer over all three.
//! While they edit one client, the third's node is killed mid-stream (it lands on another
//! node and resumes from its checkpoint) and the database cuts every node's connections (its
//! store's, its notifications', its metrics'), as a restart or failover would. Afterwards every replica holds every acknowledged note exactly once, and the
//! shared feed has `count = max(seq)`: no sequence number was skipped.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ficha_e2e::balancer::Balancer;
use ficha_e2e::{Relay, Replica, Served, eventually, note_texts, postgres};

/// Runs one statement batch against the test database and returns the rows.
fn query(url: &str, sql: &str) -> Result<Vec<tokio_postgres::Row>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client.query(sql, &[]).await?)
    })
}

#[test]
fn replicas_on_three_nodes_of_one_database_converge_through_a_node_crash() -> Result<()> {
    let Some(url) = postgres() else {
        return Ok(());
    };
    let schema = format!("e2e_cluster_{}", std::process::id());
    let tmp = tempfile::tempdir()?;
    let dirs: Vec<_> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| tmp.path().join(n))
        .collect();
    let first = Relay::start_on(&dirs[0], &url, &schema)?;
    // Every node signs with one secret: copied, as an operator provisions nodes.
    for d in &dirs[1..] {
        std::fs::create_dir_all(d)?;
        std::fs::copy(dirs[0].join("relay.secret"), d.join("relay.secret"))?;
    }
    let second = Relay::start_on(&dirs[1], &url, &schema)?;
    let third = Relay::start_on(&dirs[2], &url, &schema)?;
    let balancer = Balancer::start(vec![third.port, first.port, second.port])?;

    let token = |name: &str| first.token(name, &["acme"], false);
    let a = Replica::init(&tmp.path().join("a"), "a", &first.url(), &token("a")?)?;
    let b = Replica::init(&tmp.path().join("b"), "b", &second.url(), &token("b")?)?;
    let c_url = format!("ws://127.0.0.1:{}/sync", balancer.port);
    let c = Replica::init(&tmp.path().join("c"), "c", &c_url, &token("c")?)?;
    let id = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Clínica Norte",
    ])?;
    let served = [Served::start(&a)?, Served::start(&b)?, Served::start(&c)?];

    // A note written on node 1 reaches node 2's replica live, through the database.
    let (code, _) = served[0].post(
        &format!("/api/clients/{id}/notes"),
        serde_json::json!({ "text": "first" }),
    )?;
    assert_eq!(code, 200);
    let t = Instant::now();
    let live = eventually(Duration::from_secs(20), || {
        let v = served[1].get(&format!("/api/clients/{id}")).ok()?;
        note_texts(&v).contains("first").then_some(())
    });
    assert!(live.is_some(), "node 2's replica never got node 1's note");
    eprintln!("first note crossed nodes in {:?}", t.elapsed());

    let mut acknowledged = BTreeSet::from(["first".to_string()]);
    let mut third = Some(third);
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(6) {
        if i == 40 {
            // The third replica's node dies with its session mid-stream.
            if let Some(n) = third.take() {
                n.kill();
            }
        }
        if i == 80 {
            query(
                &url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )?;
        }
        let who = i % 3;
        let text = format!("n{who}-{i}");
        if let Ok((200, _)) = served[who].post(
            &format!("/api/clients/{id}/notes"),
            serde_json::json!({ "text": text }),
        ) {
            acknowledged.insert(text);
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }

    let healing = Instant::now();
    let converged = eventually(Duration::from_secs(60), || {
        for s in &served {
            let v = s.get(&format!("/api/clients/{id}")).ok()?;
            let notes = v["notes"].as_array()?;
            if note_texts(&v) != acknowledged || notes.len() != acknowledged.len() {
                return None;
            }
        }
        Some(())
    });
    eprintln!("converged {:?} after the edits stopped", healing.elapsed());
    let seen: Vec<usize> = served
        .iter()
        .map(|s| {
            s.get(&format!("/api/clients/{id}"))
                .map(|v| note_texts(&v).len())
                .unwrap_or(0)
        })
        .collect();
    assert!(
        converged.is_some(),
        "replicas hold {seen:?} of {} acknowledged notes",
        acknowledged.len()
    );
    let routed = balancer
        .routed
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    assert!(
        routed.len() >= 2 && routed[1..].iter().any(|p| *p != routed[0]),
        "the balanced replica never moved to another node: {routed:?}"
    );

    let rows = query(
        &url,
        &format!("SELECT company, count(*), max(seq) FROM \"{schema}\".feed GROUP BY company"),
    )?;
    assert!(!rows.is_empty(), "the feed is empty");
    for r in &rows {
        let (company, n, max): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(n, max, "feed of {company} skipped sequence numbers");
    }
    drop(served);
    query(&url, &format!("DROP SCHEMA \"{schema}\" CASCADE")).context("drop the schema")?;
    Ok(())
}
