//! A TCP load balancer for tests of a relay cluster: each new connection goes to the next
//! backend, in turn, that accepts it, so a replica whose node died lands on another.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A running balancer; its threads end with the process.
pub struct Balancer {
    /// The port replicas connect to.
    pub port: u16,
    /// Which backend each connection went to, in order.
    pub routed: Arc<Mutex<Vec<u16>>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Balancer {
    /// Balances over `backends` (ports on loopback).
    pub fn start(backends: Vec<u16>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let routed = Arc::new(Mutex::new(Vec::new()));
        let log = routed.clone();
        let next = AtomicUsize::new(0);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let start = next.fetch_add(1, Ordering::Relaxed);
                let server = (0..backends.len()).find_map(|i| {
                    let port = backends[(start + i) % backends.len()];
                    TcpStream::connect(("127.0.0.1", port))
                        .ok()
                        .map(|s| (port, s))
                });
                let Some((port, server)) = server else {
                    continue;
                };
                if let Ok(mut l) = log.lock() {
                    l.push(port);
                }
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(s2, c2));
            }
        });
        Ok(Self { port, routed })
    }
}
