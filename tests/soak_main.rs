//! `ficha-soak`: hundreds of replica sessions across many companies editing through the real
//! relay for minutes; prints throughput, delivery delays, relay memory and errors.
//!
//! `cargo build --release -p ficha-relay && cargo run --release -p ficha-e2e --bin ficha-soak`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ficha_e2e::soak::{SoakConfig, run};

#[derive(Parser)]
#[command(about = "Soak the relay: many replica sessions editing at once")]
struct Args {
    /// Concurrent replica sessions.
    #[arg(long, default_value_t = 200)]
    sessions: usize,
    /// Companies the sessions are spread over.
    #[arg(long, default_value_t = 20)]
    companies: usize,
    /// Seconds of editing.
    #[arg(long, default_value_t = 180)]
    seconds: u64,
    /// Milliseconds between two edits of one replica.
    #[arg(long, default_value_t = 1000)]
    edit_every_ms: u64,
    /// Hostile connections uploading as fast as they can without reading.
    #[arg(long, default_value_t = 0)]
    flooders: usize,
    /// What the flooders send.
    #[arg(long, value_enum, default_value_t = ficha_e2e::soak::FloodKind::Upload)]
    flood: ficha_e2e::soak::FloodKind,
    /// The relay binary (default: ficha-relay beside this one).
    #[arg(long)]
    relay: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let relay = args.relay.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("ficha-relay")))
            .unwrap_or_else(|| PathBuf::from("ficha-relay"))
    });
    if !relay.exists() {
        eprintln!(
            "no relay binary at {}: run `cargo build --release -p ficha-relay` first, or pass --relay",
            relay.display()
        );
        return ExitCode::FAILURE;
    }
    let cfg = SoakConfig {
        sessions: args.sessions,
        companies: args.companies,
        duration: Duration::from_secs(args.seconds),
        edit_every: Duration::from_millis(args.edit_every_ms),
        flooders: args.flooders,
        flood: args.flood,
    };
    match run(&relay, &cfg) {
        Ok(r) => {
            if args.json {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            } else {
                let rss = &r.relay_rss_mib;
                let (first, max, last) = (
                    rss.first().copied().unwrap_or(f64::NAN),
                    rss.iter().copied().fold(f64::NAN, f64::max),
                    rss.last().copied().unwrap_or(f64::NAN),
                );
                println!(
                    "{} sessions, {} companies, {:.0} s: {} edits ({:.1}/s), {}/{} arrivals\n\
                     delay commit→arrival: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
                     relay RSS: {first:.1} MiB at start, {max:.1} MiB peak, {last:.1} MiB at end\n\
                     flood: {} frames pushed, {} flooder connections cut\n\
                     errors: {}",
                    r.sessions,
                    r.companies,
                    r.seconds,
                    r.edits,
                    r.edits_per_sec,
                    r.deliveries,
                    r.expected_deliveries,
                    r.delay_p50_ms,
                    r.delay_p99_ms,
                    r.delay_max_ms,
                    r.flood_frames,
                    r.flood_cuts,
                    r.errors.len()
                );
                for e in r.errors.iter().take(20) {
                    println!("  {e}");
                }
            }
            if r.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("soak failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
