//! A branch whose link to the relay comes back is in sync again within seconds, however long
//! the outage: `ficha serve` backs off to 5 seconds at most.

use std::time::{Duration, Instant};

use anyhow::Result;
use ficha_e2e::{Relay, Served, eventually};

#[test]
fn serve_reconnects_within_seconds_of_a_long_outage() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay_dir = tmp.path().join("relay");
    let relay = Relay::start(&relay_dir, 0)?;
    let port = relay.port;
    let replica = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let served = Served::start(&replica)?;
    // "connected" is said at hello; a sync has happened once the first catch-up ends.
    let connected = |s: &Served| {
        s.get("/api/status")
            .ok()
            .filter(|v| v["relay"] == "connected" && v["last_sync_at"].is_string())
    };
    let first = eventually(Duration::from_secs(20), || connected(&served)).expect("connects");
    let first_sync = first["last_sync_at"].clone();
    relay.kill();
    eventually(Duration::from_secs(10), || {
        served
            .get("/api/status")
            .ok()
            .filter(|v| v["relay"] == "disconnected")
    })
    .expect("sees the outage");
    // Long enough for an unbounded doubling backoff to be waiting 12 s or more.
    std::thread::sleep(Duration::from_secs(13));
    let _relay = Relay::start(&relay_dir, port)?;
    let back = Instant::now();
    let again = eventually(Duration::from_secs(7), || {
        connected(&served).filter(|v| v["last_sync_at"] != first_sync)
    });
    assert!(
        again.is_some(),
        "not reconnected {:?} after the relay came back",
        back.elapsed()
    );
    Ok(())
}
