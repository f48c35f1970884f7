//! A small SMTP server on loopback for the email tests: it speaks enough SMTP for lettre,
//! records every message it receives, refuses recipients whose address contains "reject",
//! and can hold its reply to a message it has received, as a server would when the sender is
//! cut off at that moment.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;

/// A message the server received (whether or not it answered).
#[derive(Debug, Clone)]
pub struct Received {
    /// Its Message-ID header.
    pub message_id: String,
    /// Its Subject header.
    pub subject: String,
    /// Its recipients.
    pub to: Vec<String>,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    hold_next: AtomicBool,
    holding: AtomicBool,
}

/// The running server (it stops with the test process).
pub struct SmtpServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
}

impl SmtpServer {
    /// Starts on a free port.
    pub fn start() -> Result<Self> {
        Self::start_on(0)
    }

    /// Starts on `port` (0 for a free one).
    pub fn start_on(port: u16) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s);
                });
            }
        });
        Ok(Self { port, shared })
    }

    /// Its URL for `ficha serve --smtp`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The next message is received but never answered, until its sender goes away.
    pub fn hold_next_reply(&self) {
        self.shared.hold_next.store(true, Ordering::SeqCst);
    }

    /// A received message is waiting for its reply.
    pub fn is_holding(&self) -> bool {
        self.shared.holding.load(Ordering::SeqCst)
    }
}

fn serve(conn: TcpStream, s: &Shared) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut lines = BufReader::new(conn);
    out.write_all(b"220 ficha-test ESMTP\r\n")?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            out.write_all(b"250-ficha-test\r\n250 8BITMIME\r\n")?;
        } else if upper.starts_with("MAIL FROM") {
            to.clear();
            out.write_all(b"250 2.1.0 OK\r\n")?;
        } else if upper.starts_with("RCPT TO") {
            if cmd.contains("reject") {
                out.write_all(b"550 5.1.1 no such mailbox here\r\n")?;
            } else {
                to.push(cmd[8..].trim().trim_matches(['<', '>']).to_string());
                out.write_all(b"250 2.1.5 OK\r\n")?;
            }
        } else if upper == "DATA" {
            out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
            let (mut message_id, mut subject) = (String::new(), String::new());
            loop {
                line.clear();
                if lines.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let l = line.trim_end();
                if l == "." {
                    break;
                }
                if let Some(v) = l.strip_prefix("Message-ID: ") {
                    message_id = v.to_string();
                }
                if let Some(v) = l.strip_prefix("Subject: ") {
                    subject = v.to_string();
                }
            }
            let n = {
                let mut r = s.received.lock().map_err(|_| std::io::ErrorKind::Other)?;
                r.push(Received {
                    message_id,
                    subject,
                    to: to.clone(),
                });
                r.len()
            };
            if s.hold_next.swap(false, Ordering::SeqCst) {
                s.holding.store(true, Ordering::SeqCst);
                // Received, never answered: wait for the sender to go away.
                while lines.read_line(&mut line)? > 0 {}
                s.holding.store(false, Ordering::SeqCst);
                return Ok(());
            }
            out.write_all(format!("250 2.0.0 queued as T{n}\r\n").as_bytes())?;
        } else if upper == "QUIT" {
            out.write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"250 OK\r\n")?;
        }
    }
}
