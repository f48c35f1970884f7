//! Crash anywhere: `kill -9` a serving replica, and separately the relay, at random moments
//! during a storm of API edits and syncs. After every restart the store opens, every edit the
//! API reported as saved is there, and in the end all replicas converge.
//!
//! `FICHA_CRASHES` sets the number of kills (default 100); `FICHA_CRASH_SEED` the seed.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use ficha_e2e::{Relay, Replica, Served, eventually, note_texts};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[test]
fn acknowledged_edits_survive_kill_9_of_replicas_and_relay() -> Result<()> {
    let crashes: usize = std::env::var("FICHA_CRASHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("FICHA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!("crash test: {crashes} kills, FICHA_CRASH_SEED={seed}");
    let mut rng = SmallRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir()?;
    let relay_dir = tmp.path().join("relay");
    let mut relay = Some(Relay::start(&relay_dir, 0)?);
    let port = relay.as_ref().map_or(0, |r| r.port);
    let url = format!("ws://127.0.0.1:{port}/sync");
    let tok = |n: &str| ficha_e2e::token(&relay_dir, n, &["acme"], false);
    let a = Replica::init(&tmp.path().join("a"), "a", &url, &tok("a")?)?;
    let b = Replica::init(&tmp.path().join("b"), "b", &url, &tok("b")?)?;
    let id = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Crash Dummy",
    ])?;
    a.sync()?;
    b.sync()?;

    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    let mut replica_kills = 0;
    let mut relay_kills = 0;
    for round in 0..crashes {
        let victim_is_relay = rng.random_bool(0.25);
        let (who, replica) = if rng.random_bool(0.5) {
            ("a", &a)
        } else {
            ("b", &b)
        };
        let served = Served::start(replica)?;
        // A storm of edits; each one the API answers 200 for must survive what follows.
        let edits = rng.random_range(1..12);
        for i in 0..edits {
            let text = format!("{who}-{round}-{i}");
            let (code, _) = served.post(
                &format!("/api/clients/{id}/notes"),
                serde_json::json!({ "text": text }),
            )?;
            if code == 200 {
                acknowledged.insert(text);
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
        if victim_is_relay {
            if let Some(r) = relay.take() {
                r.kill();
                relay_kills += 1;
            }
            drop(served);
            relay = Some(Relay::start(&relay_dir, port)?);
        } else {
            served.kill9();
            replica_kills += 1;
        }
        // The store reopens and holds every acknowledged edit made on it.
        let shown = replica.show(&id)?;
        let mine: BTreeSet<String> = acknowledged
            .iter()
            .filter(|t| t.starts_with(who))
            .cloned()
            .collect();
        let present = note_texts(&shown);
        let missing: Vec<&String> = mine.difference(&present).collect();
        assert!(
            missing.is_empty(),
            "round {round}: {who} lost acknowledged edits {missing:?} (FICHA_CRASH_SEED={seed})"
        );
    }
    // Quiescence: everything reaches everyone.
    let converged = eventually(Duration::from_secs(60), || {
        a.sync().ok()?;
        b.sync().ok()?;
        a.sync().ok()?;
        let (va, vb) = (a.show(&id).ok()?, b.show(&id).ok()?);
        (va == vb).then_some(va)
    });
    let merged = converged.expect("replicas converge after the storm");
    let present = note_texts(&merged);
    let missing: Vec<&String> = acknowledged.difference(&present).collect();
    assert!(missing.is_empty(), "lost after sync: {missing:?}");
    assert_eq!(
        note_texts(&merged).len(),
        acknowledged.len(),
        "nothing duplicated"
    );
    assert!(a.ok(&["status"])?.contains("\"pending_upload\": 0"));
    println!(
        "survived {replica_kills} replica kills and {relay_kills} relay kills; {} acknowledged edits, none lost",
        acknowledged.len()
    );
    drop(relay);
    Ok(())
}
