//! The user story of issue 2, through the real binaries: two branches edit one client offline
//! and converge; tokens for another company are refused; `ficha serve` receives live changes.

use std::time::Duration;

use anyhow::Result;
use ficha_e2e::{Relay, Replica, Served, eventually};
use serde_json::Value;

fn texts(v: &Value, list: &str) -> Vec<String> {
    let mut t: Vec<String> = v[list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    x["text"]
                        .as_str()
                        .or(x["description"].as_str())
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    t.sort();
    t
}

#[test]
fn two_branches_edit_offline_and_converge() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let port = relay.port;
    let a = relay.replica(&tmp.path().join("a"), "branch-a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "branch-b", &["acme"])?;

    let id = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Ana Pérez",
        "--email",
        "ana@example.com",
    ])?;
    a.sync()?;
    b.sync()?;
    assert_eq!(b.show(&id)?["name"], "Ana Pérez");
    assert_eq!(b.show(&id)?["email"], "ana@example.com");

    // The relay goes away; both branches keep working.
    relay.kill();
    let failed = a.run(&["sync", "--timeout-secs", "5"])?;
    assert!(!failed.status.success(), "sync must fail without a relay");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("cannot reach the relay"));

    a.ok(&["note", "add", &id, "--text", "note from A"])?;
    a.ok(&[
        "comment",
        "add",
        &id,
        "--text",
        "comment from A",
        "--pinned",
        "--priority",
        "high",
    ])?;
    a.ok(&[
        "alert",
        "add",
        &id,
        "--type",
        "allergy",
        "--priority",
        "critical",
        "--description",
        "latex (A)",
    ])?;
    a.ok(&["client", "set", &id, "phone", "+34 600 000 001"])?;
    b.ok(&["note", "add", &id, "--text", "note from B"])?;
    b.ok(&[
        "comment",
        "add",
        &id,
        "--text",
        "comment from B",
        "--private",
    ])?;
    b.ok(&[
        "alert",
        "add",
        &id,
        "--type",
        "debt",
        "--priority",
        "low",
        "--description",
        "owes 20 (B)",
    ])?;
    b.ok(&["client", "set", &id, "phone", "+34 600 000 002"])?;

    let relay = Relay::start(&tmp.path().join("relay"), port)?;
    a.sync()?;
    b.sync()?;
    a.sync()?;
    let (va, vb) = (a.show(&id)?, b.show(&id)?);
    assert_eq!(va, vb, "both replicas hold the identical merged client");
    assert_eq!(texts(&va, "notes"), ["note from A", "note from B"]);
    assert_eq!(texts(&va, "comments"), ["comment from A", "comment from B"]);
    assert_eq!(texts(&va, "alerts"), ["latex (A)", "owes 20 (B)"]);
    let phone = va["phone"].as_str().unwrap_or_default();
    assert!(phone == "+34 600 000 001" || phone == "+34 600 000 002");
    assert!(va["heads"].as_array().is_some_and(|h| !h.is_empty()));
    drop(relay);
    Ok(())
}

#[test]
fn a_token_for_another_company_sees_nothing_and_forged_tokens_are_refused() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let id = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Secret Client",
    ])?;
    a.sync()?;

    let other = relay.replica(&tmp.path().join("o"), "o", &["beta"])?;
    other.sync()?;
    assert_eq!(other.ok(&["client", "list", "--json"])?, "[]");
    assert!(
        !other
            .run(&["client", "show", &id, "--json"])?
            .status
            .success()
    );
    let refused = other.run(&["client", "add", "--company", "acme", "--name", "X"])?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not granted"));

    // A token altered to claim another company fails its signature at the relay.
    let good = relay.token("f", &["beta"], false)?;
    let forged = {
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        let other_claims = relay.token("f", &["acme"], false)?;
        parts[1] = other_claims
            .split('.')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        parts.join(".")
    };
    let f = Replica::init(&tmp.path().join("f"), "f", &relay.url(), &forged)?;
    let out = f.run(&["sync", "--timeout-secs", "10"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));

    // A read-only token may read but its uploads are refused.
    let ro = Replica::init(
        &tmp.path().join("r"),
        "r",
        &relay.url(),
        &relay.token("r", &["acme"], true)?,
    )?;
    ro.sync()?;
    assert_eq!(ro.show(&id)?["name"], "Secret Client");
    Ok(())
}

#[test]
fn serve_receives_live_changes_and_uploads_api_edits() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "b", &["acme"])?;
    let id = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Live Client",
    ])?;
    a.sync()?;

    let served = Served::start(&b)?;
    let shown = eventually(Duration::from_secs(20), || {
        served
            .get(&format!("/api/clients/{id}"))
            .ok()
            .filter(|v| v["name"] == "Live Client")
    });
    assert!(shown.is_some(), "serve catches up in the background");
    let status = eventually(Duration::from_secs(10), || {
        served
            .get("/api/status")
            .ok()
            .filter(|s| s["relay"] == "connected")
    });
    assert!(status.is_some());

    // A change made elsewhere arrives without any action on B.
    a.ok(&["note", "add", &id, "--text", "pushed live"])?;
    a.sync()?;
    let live = eventually(Duration::from_secs(20), || {
        served.get(&format!("/api/clients/{id}")).ok().filter(|v| {
            v["notes"]
                .as_array()
                .is_some_and(|n| n.iter().any(|x| x["text"] == "pushed live"))
        })
    });
    assert!(live.is_some(), "live push reached the serving replica");

    // An edit through the API is uploaded and reaches A.
    let (code, created) = served.post(
        "/api/clients",
        serde_json::json!({"company": "acme", "name": "From API"}),
    )?;
    assert_eq!(code, 200);
    let new_id = created["id"].as_str().unwrap_or_default().to_string();
    let (code, _) = served.post(
        &format!("/api/clients/{new_id}/notes"),
        serde_json::json!({"text": "api note"}),
    )?;
    assert_eq!(code, 200);
    let drained = eventually(Duration::from_secs(20), || {
        served
            .get("/api/status")
            .ok()
            .filter(|s| s["pending_upload"] == 0)
    });
    assert!(drained.is_some(), "API edits are acknowledged by the relay");
    a.sync()?;
    assert_eq!(a.show(&new_id)?["name"], "From API");

    // Bad input is refused clearly and changes nothing.
    let (code, err) = served.post(
        "/api/clients",
        serde_json::json!({"company": "nope", "name": "X"}),
    )?;
    assert_eq!(code, 400);
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("not granted"))
    );
    let (code, _) = served.post(
        "/api/clients/not-an-id/notes",
        serde_json::json!({"text": "x"}),
    )?;
    assert_eq!(code, 400);

    // While serve holds the store, the CLI fails at once with a clear message.
    let out = b.run(&["client", "list", "--json"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    Ok(())
}

#[test]
fn the_demo_runs_and_reports_convergence() -> Result<()> {
    let out = std::process::Command::new(ficha_e2e::bin("ficha"))
        .arg("demo")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Converged"));
    assert!(stdout.contains("cannot reach the relay"));
    Ok(())
}

#[test]
fn the_cli_explains_what_is_wrong_and_changes_nothing() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let missing = Replica {
        data: tmp.path().join("nothing-here"),
        env: Vec::new(),
    };
    let out = missing.run(&["client", "list", "--json"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("init"));

    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let again = a.run(&[
        "init",
        "--name",
        "a",
        "--relay",
        &relay.url(),
        "--token",
        "x",
    ])?;
    assert!(!again.status.success(), "init twice is refused");
    let id = a.ok(&["client", "add", "--company", "acme", "--name", "Ana"])?;
    let before = a.show(&id)?;
    for (args, says) in [
        (
            vec![
                "client",
                "show",
                "00000000-0000-0000-0000-000000000001",
                "--json",
            ],
            "unknown client",
        ),
        (
            vec!["client", "show", "not-an-id", "--json"],
            "not a valid id",
        ),
        (
            vec!["client", "set", id.as_str(), "shoe_size", "42"],
            "unknown field",
        ),
        (
            vec!["client", "set", id.as_str(), "email", "nope"],
            "not an email",
        ),
        (
            vec![
                "alert",
                "add",
                id.as_str(),
                "--type",
                "x",
                "--priority",
                "urgent",
                "--description",
                "d",
            ],
            "priority",
        ),
        (vec!["note", "add", id.as_str(), "--text", ""], "empty"),
    ] {
        let out = a.run(&args)?;
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(a.show(&id)?, before, "failed commands changed nothing");
    Ok(())
}

#[test]
fn revoking_a_replica_refuses_it_while_the_relay_keeps_serving() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay_dir = tmp.path().join("relay");
    let relay = Relay::start(&relay_dir, 0)?;
    let a = relay.replica(&tmp.path().join("a"), "laptop-7", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "b", &["acme"])?;
    a.sync()?;
    let out = std::process::Command::new(ficha_e2e::bin("ficha-relay"))
        .args(["revoke", "--data"])
        .arg(&relay_dir)
        .args(["--replica", "laptop-7"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = a.run(&["sync", "--timeout-secs", "10"])?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("revoked"));
    b.sync()?;
    Ok(())
}
