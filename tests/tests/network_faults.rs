//! Replicas behind a fault-injecting proxy keep editing; connections are cut mid-frame,
//! stalled, delayed and reset. Once the network heals, everything acknowledged arrives
//! everywhere exactly once.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use ficha_e2e::proxy::FaultProxy;
use ficha_e2e::{Relay, Replica, Served, eventually, note_texts};

#[test]
fn sync_survives_cuts_stalls_and_resets_without_duplicates() -> Result<()> {
    let seed: u64 = std::env::var("FICHA_PROXY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let proxy = FaultProxy::start(relay.port, seed)?;
    let url = format!("ws://127.0.0.1:{}/sync", proxy.port);
    let a = Replica::init(
        &tmp.path().join("a"),
        "a",
        &url,
        &relay.token("a", &["acme"], false)?,
    )?;
    let b = Replica::init(
        &tmp.path().join("b"),
        "b",
        &url,
        &relay.token("b", &["acme"], false)?,
    )?;
    let id = a.ok(&["client", "add", "--company", "acme", "--name", "Flaky Link"])?;
    let (sa, sb) = (Served::start(&a)?, Served::start(&b)?);

    let mut acknowledged = BTreeSet::new();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(8) {
        // B learns the client through the faulty link before it can annotate it.
        let (served, who) = if i % 2 == 0 { (&sa, "a") } else { (&sb, "b") };
        let text = format!("{who}-{i}");
        if let Ok((200, _)) = served.post(
            &format!("/api/clients/{id}/notes"),
            serde_json::json!({ "text": text }),
        ) {
            acknowledged.insert(text);
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let cuts = proxy.counts.cuts.load(Ordering::Relaxed);
    let connections = proxy.counts.connections.load(Ordering::Relaxed);
    proxy.set_faults(false);
    let healed = eventually(Duration::from_secs(60), || {
        let va = sa.get(&format!("/api/clients/{id}")).ok()?;
        let vb = sb.get(&format!("/api/clients/{id}")).ok()?;
        let idle = sa.get("/api/status").ok()?["pending_upload"] == 0
            && sb.get("/api/status").ok()?["pending_upload"] == 0;
        (idle && va == vb && note_texts(&va).len() >= acknowledged.len()).then_some(va)
    });
    let merged =
        healed.expect("replicas converge once the network heals (FICHA_PROXY_SEED={seed})");
    let all: Vec<String> = merged["notes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["text"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let unique: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "a note was duplicated");
    assert!(
        acknowledged.is_subset(&unique),
        "an acknowledged note was lost"
    );
    assert!(
        cuts > 0 && connections > 2,
        "the proxy really cut connections ({cuts} cuts, {connections} connections)"
    );
    println!(
        "{} notes through {connections} connections and {cuts} cuts: none lost, none duplicated",
        all.len()
    );
    Ok(())
}
