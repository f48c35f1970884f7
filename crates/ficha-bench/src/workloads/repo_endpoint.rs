//! The relay's `/automerge` endpoint against samod's own server, both serving the same stock
//! automerge-repo client (samod, the Rust twin of automerge-repo, speaking the same protocol as
//! the npm packages) over a counted link: the first read of one record, opening many records,
//! and the relay's memory while automerge-repo peers hold them open.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use automerge::ChangeHash;
use serde_json::json;

use crate::fixtures::{Scratch, clients, company, relay_with};
use crate::report::Row;
use crate::samod_baseline::{AGAINST as SAMOD, Finder, initial_sync};
use crate::workloads::memory::{rss_mib, spawn_relay};

const WORKLOAD: &str = "automerge_endpoint";

fn sorted_heads(doc: &automerge::Automerge) -> Vec<ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort();
    heads
}

/// `docs` clients of `items` items: the first read of one through each server, all of them
/// opened at once through each, and the relay's RSS with them open against its RSS idle.
pub async fn automerge_endpoint(docs: usize, items: usize) -> Result<Vec<Row>> {
    let corpus = clients(0, docs, items)?;
    let scratch = Scratch::new()?;
    let relay_dir = scratch.path("relay");
    relay_with(&relay_dir, &corpus)?;
    let token =
        ficha_relay::issue_token(&relay_dir, "tablet", &[company().as_str().into()], true, 1)?;
    let (relay, port) = spawn_relay(&relay_dir)?;
    let pid = relay.0.id();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let path = format!("/automerge?token={token}");
    let wanted: Vec<(samod::DocumentId, Vec<ChangeHash>)> = corpus
        .iter()
        .map(|(id, d)| {
            let doc = samod::DocumentId::try_from(id.0.to_vec())
                .map_err(|e| anyhow::anyhow!("document id: {e:?}"))?;
            Ok((doc, sorted_heads(d)))
        })
        .collect::<Result<_>>()?;
    let saved: Vec<Vec<u8>> = corpus.iter().map(|(_, d)| d.save()).collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let idle = rss_mib(pid).context("relay RSS")?;

    let (ours_one, one) = Finder::find(addr, &path, &wanted[..1]).await?;
    one.close().await;
    let theirs_one = initial_sync(&saved[..1]).await?;
    let (ours_all, all) = Finder::find(addr, &path, &wanted).await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let open = rss_mib(pid).context("relay RSS")?;
    all.close().await;
    let theirs_all = initial_sync(&saved).await?;
    drop(relay);

    let sizes = json!({ "docs": docs, "items_per_doc": items });
    let mut rows = Vec::new();
    for (what, ours, theirs) in [
        ("first read of one record", ours_one, theirs_one),
        ("open every record", ours_all, theirs_all),
    ] {
        rows.push(Row::new(
            WORKLOAD,
            format!("{what}: time"),
            ours.secs * 1e3,
            theirs.secs * 1e3,
            "ms",
            SAMOD,
            sizes.clone(),
        ));
        rows.push(Row::new(
            WORKLOAD,
            format!("{what}: bytes"),
            ours.bytes,
            theirs.bytes,
            "B",
            SAMOD,
            sizes.clone(),
        ));
        rows.push(Row::new(
            WORKLOAD,
            format!("{what}: messages"),
            ours.messages,
            theirs.messages,
            "msgs",
            SAMOD,
            sizes.clone(),
        ));
    }
    rows.push(Row::new(
        WORKLOAD,
        format!("relay RSS, {docs} records open by a peer"),
        open,
        idle,
        "MiB",
        "the same relay before any peer connected",
        sizes,
    ));
    Ok(rows)
}
