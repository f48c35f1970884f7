//! A small fault-injecting TCP proxy for loopback tests: cuts connections mid-frame, stalls,
//! delays and resets, with a seeded random source so a failure can be replayed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections cut in the middle of a transfer.
    pub cuts: AtomicU64,
    /// Stalls injected.
    pub stalls: AtomicU64,
}

/// A proxy from a local port to `127.0.0.1:target`.
pub struct FaultProxy {
    /// The port clients connect to.
    pub port: u16,
    faults: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// What happened so far.
    pub counts: Arc<FaultCounts>,
}

impl FaultProxy {
    /// Starts forwarding to `target`, injecting faults while they are enabled.
    pub fn start(target: u16, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let faults = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(FaultCounts::default());
        let (f, s, c) = (faults.clone(), stop.clone(), counts.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        n += 1;
                        c.connections.fetch_add(1, Ordering::Relaxed);
                        let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        for (from, to, dir) in [
                            (client.try_clone(), upstream.try_clone(), 0u64),
                            (upstream.try_clone(), client.try_clone(), 1u64),
                        ] {
                            if let (Ok(from), Ok(to)) = (from, to) {
                                let rng = SmallRng::seed_from_u64(seed ^ (n * 2 + dir));
                                let (f, c) = (f.clone(), c.clone());
                                std::thread::spawn(move || pump(from, to, rng, &f, &c));
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            port,
            faults,
            stop,
            counts,
        })
    }

    /// Turns fault injection on or off (existing connections included).
    pub fn set_faults(&self, on: bool) {
        self.faults.store(on, Ordering::Relaxed);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    mut rng: SmallRng,
    faults: &AtomicBool,
    counts: &FaultCounts,
) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut len = n;
        if faults.load(Ordering::Relaxed) {
            let roll: f64 = rng.random();
            if roll < 0.04 {
                // Cut mid-frame: forward a prefix, then reset both sides.
                len = rng.random_range(0..n);
                let _ = to.write_all(&buf[..len]);
                counts.cuts.fetch_add(1, Ordering::Relaxed);
                break;
            } else if roll < 0.08 {
                counts.stalls.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(rng.random_range(100..600)));
            } else if roll < 0.3 {
                std::thread::sleep(Duration::from_millis(rng.random_range(1..30)));
            }
        }
        if to.write_all(&buf[..len]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
