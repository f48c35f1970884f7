//! `ficha demo`: the product on embedded defaults. Without flags, the two-branch offline story,
//! checked (exit 0 only if the replicas converge); `--web`, a group of four replicas with Spanish
//! sample data, each serving its page; `--script`, a realistic day played out on that group.

mod group;
mod sample;
mod script;
mod story;
mod web;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::app::Replica;
use crate::sync::sync_once;

pub use group::{Group, PLACES, Place};

/// What `ficha demo` runs.
pub enum Mode {
    /// The two-branch offline story.
    Story,
    /// Four replicas' pages and the relay's admin page, until Ctrl-C.
    Web,
    /// A day of the group, printed.
    Script,
}

/// Runs the demo in `mode`, in `dir` or in a temporary directory.
pub async fn run(mode: Mode, dir: Option<PathBuf>) -> Result<()> {
    match mode {
        Mode::Story => story::run().await,
        Mode::Web => web::run(dir).await,
        Mode::Script => script::run(dir).await,
    }
}

/// How long one sync round may take before the demo says the relay is unreachable.
const ROUND: Duration = Duration::from_secs(30);

fn step(text: &str) {
    println!("\n== {text}");
}

async fn sync(name: &str, r: &Replica) -> Result<()> {
    sync_once(r.store().clone(), ROUND)
        .await
        .with_context(|| format!("{name} could not sync"))?;
    println!("   {name}: synced ({} pending upload)", r.pending_upload()?);
    Ok(())
}
