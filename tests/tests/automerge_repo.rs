//! Stock automerge-repo clients (the pinned npm packages in `tests/automerge-repo`) against the
//! real relay's `/automerge` endpoint, with Ficha replicas on the other side: a record created
//! by a replica is read from Node; a note and a field written from Node reach a live replica
//! and one that reconnects later; a replica's edit reaches a watching Node client; another
//! company's token, a read-only token's write and a bad token get what the issue names; and a
//! note body edited at once from Node and from a replica keeps both edits; an ephemeral
//! message (presence) reaches the other peer of the record.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ficha_e2e::{Relay, Served, automerge_repo_client, eventually};
use serde_json::Value;

/// Runs one command of client.mjs and parses the JSON line it prints.
fn node(script: &Path, args: &[&str]) -> Result<Value> {
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(script.parent().context("script dir")?)
        .output()
        .context("run node")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "node {args:?} failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let last = stdout.lines().last().context("node printed nothing")?;
    Ok(serde_json::from_str(last)?)
}

fn note<'a>(client: &'a Value, id: &str) -> Option<&'a Value> {
    client["notes"].as_array()?.iter().find(|n| n["id"] == id)
}

#[test]
fn stock_automerge_repo_clients_read_write_and_watch_ficha_records() -> Result<()> {
    let Some(script) = automerge_repo_client()? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "recepcion", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "cabina", &["acme"])?;
    let beta = relay.replica(&tmp.path().join("c"), "beta", &["beta"])?;
    let ana = a.add_client("acme", "Ana Ruiz")?;
    let first = a.ok(&["note", "add", &ana, "--text", "Alergia al látex"])?;
    let other = beta.add_client("beta", "Otra Empresa")?;
    for r in [&a, &b, &beta] {
        r.sync()?;
    }
    let url = a.show(&ana)?["automerge_url"]
        .as_str()
        .context("automerge_url")?
        .to_string();
    let other_url = beta.show(&other)?["automerge_url"]
        .as_str()
        .context("automerge_url")?
        .to_string();
    let ws = |token: &str| format!("ws://127.0.0.1:{}/automerge?token={token}", relay.port);
    let tablet = ws(&relay.token("tablet", &["acme"], false)?);

    // Read what a replica created: every value serialises in JavaScript (no BigInt).
    let doc = node(&script, &["read", &tablet, &url])?;
    assert_eq!(doc["name"], "Ana Ruiz", "{doc}");
    assert_eq!(doc["company"], "acme");
    assert_eq!(doc["notes"][&first]["text"], "Alergia al látex", "{doc}");

    // Write a note and a field from Node; one replica is live, the other reconnects later.
    let live = Served::start(&b)?;
    let wrote = node(
        &script,
        &[
            "write",
            &tablet,
            &url,
            "5f0c6b1e-7d7e-4d2a-9c1e-2b1a3c4d5e6f",
            "Prefiere citas de tarde",
            "phone",
            "600 123 456",
        ],
    )?;
    assert_eq!(
        wrote["phone"], "600 123 456",
        "read back on a second connection"
    );
    let on_live = eventually(Duration::from_secs(20), || {
        let c = live.get(&format!("/api/clients/{ana}")).ok()?;
        (note(&c, "5f0c6b1e-7d7e-4d2a-9c1e-2b1a3c4d5e6f").is_some() && c["phone"] == "600 123 456")
            .then_some(c)
    });
    assert!(
        on_live.is_some(),
        "the live replica shows Node's note and phone"
    );
    a.sync()?;
    let on_a = a.show(&ana)?;
    assert_eq!(
        note(&on_a, "5f0c6b1e-7d7e-4d2a-9c1e-2b1a3c4d5e6f").map(|n| n["text"].clone()),
        Some(Value::from("Prefiere citas de tarde")),
        "{on_a}"
    );
    assert_eq!(on_a["phone"], "600 123 456");
    drop(live);

    // Watch from Node while a replica edits.
    let mut watcher = Command::new("node")
        .arg(&script)
        .args(["watch", &tablet, &url, "email", "ana@example.es"])
        .current_dir(script.parent().context("dir")?)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(watcher.stdout.take().context("stdout")?).lines();
    let ready = lines.next().context("watcher said nothing")??;
    assert!(ready.contains("watching"), "{ready}");
    a.ok(&["client", "set", &ana, "email", "ana@example.es"])?;
    a.sync()?;
    let seen: Value = serde_json::from_str(&lines.next().context("watcher ended")??)?;
    assert_eq!(seen["email"], "ana@example.es");
    assert!(watcher.wait()?.success());

    // Presence between two peers of the record: passed on, never stored.
    let presence = node(&script, &["ephemeral", &tablet, &url])?;
    assert_eq!(presence["received"]["cursor"], 7, "{presence}");

    // Another company's token: the record looks like one that does not exist.
    let foreign = ws(&relay.token("tablet-beta", &["beta"], false)?);
    let refused = node(&script, &["read", &foreign, &url])?;
    let missing = node(
        &script,
        &["read", &foreign, "automerge:2Ynj7oxxh9Dz3je7bXdhqU4SKJib"],
    )?;
    assert!(refused["unavailable"].is_string(), "{refused}");
    assert!(missing["unavailable"].is_string(), "{missing}");
    assert_eq!(
        node(&script, &["read", &foreign, &other_url])?["name"],
        "Otra Empresa"
    );

    // A read-only token reads, and its write ends the session with an error; nothing stored.
    let kiosk = ws(&relay.token("kiosko", &["acme"], true)?);
    let tried = node(&script, &["raw-write", &kiosk, &url, "name", "Cambiado"])?;
    assert_eq!(tried["read"], "Ana Ruiz", "{tried}");
    assert_eq!(tried["answer"]["type"], "error", "{tried}");
    assert!(
        tried["answer"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("read-only")),
        "{tried}"
    );
    assert_eq!(tried["closed"], true);
    a.sync()?;
    assert_eq!(a.show(&ana)?["name"], "Ana Ruiz");

    // A bad token: an error message and a close, never an HTTP error at upgrade; a stock Repo
    // with it does not crash, it finds nothing.
    let bad = ws("ft1.not.valid");
    let joined = node(&script, &["raw-join", &bad])?;
    assert_eq!(joined["answer"]["type"], "error", "{joined}");
    assert_eq!(joined["closed"], true);
    assert!(node(&script, &["read", &bad, &url])?["unavailable"].is_string());

    // One note body edited at once: Node at the start, a replica (offline) at the end.
    a.ok(&[
        "note",
        "set",
        &ana,
        &first,
        "text=Alergia al látex (confirmada)",
    ])?;
    let writer = ws(&relay.token("tablet-escritura", &["acme"], false)?);
    node(&script, &["prepend", &writer, &url, &first, "IMPORTANTE: "])?;
    a.sync()?;
    let both = "IMPORTANTE: Alergia al látex (confirmada)";
    assert_eq!(
        note(&a.show(&ana)?, &first).map(|n| n["text"].clone()),
        Some(Value::from(both))
    );
    assert_eq!(
        node(&script, &["read", &tablet, &url])?["notes"][&first]["text"],
        both
    );
    b.sync()?;
    assert_eq!(
        note(&b.show(&ana)?, &first).map(|n| n["text"].clone()),
        Some(Value::from(both))
    );
    // Every Node process has gone: the relay holds no automerge-repo session or document.
    let idle = eventually(Duration::from_secs(10), || {
        let peers = relay.metric("ficha_automerge_peers").ok()?;
        let open = relay.metric("ficha_automerge_open_documents").ok()?;
        (peers == 0 && open == 0).then_some(())
    });
    assert!(idle.is_some(), "sessions and open documents are released");
    Ok(())
}
