//! What a new user runs into, through the real CLI: every path back to active runs the
//! duplicate check, tombstones stay tombstones, state changes keep their time, bulk actions
//! are all or nothing, a typo in a filter is an error, a read-only replica refuses edits, a
//! token can be replaced, and CSV in and out is safe.

use anyhow::Result;
use ficha_e2e::{Relay, Replica};
use serde_json::Value;

fn fails_saying(r: &Replica, args: &[&str], says: &str) -> Result<()> {
    let out = r.run(args)?;
    assert!(!out.status.success(), "{args:?} must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(says), "{args:?}: {err}");
    Ok(())
}

fn state(r: &Replica, id: &str) -> Result<String> {
    Ok(r.show(id)?["state"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[test]
fn every_way_back_to_active_checks_for_a_duplicate_across_companies() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let hq = relay.replica(&tmp.path().join("hq"), "hq", &["clinica", "salon"])?;
    let old = hq.ok(&[
        "client",
        "add",
        "--company",
        "clinica",
        "--name",
        "Ana Vidal",
        "--email",
        "ana@vidal.es",
    ])?;
    hq.ok(&["client", "archive", &old])?;
    // The same person, active in the other company of the group.
    let active = hq.ok(&[
        "client",
        "add",
        "--company",
        "salon",
        "--name",
        "Ana Vidal",
        "--email",
        "ana@vidal.es",
    ])?;
    for args in [
        vec!["client", "set", old.as_str(), "state", "active"],
        vec!["client", "set", old.as_str(), "archived", "false"],
        vec!["client", "restore", old.as_str()],
        vec!["client", "bulk", "restore", "--ids", old.as_str()],
        vec!["client", "bulk", "restore", "--state", "archived"],
    ] {
        fails_saying(&hq, &args, &active)?;
        assert_eq!(state(&hq, &old)?, "archived", "{args:?} changed nothing");
    }
    hq.ok(&["client", "restore", &old, "--force"])?;
    assert_eq!(state(&hq, &old)?, "active");

    // A tombstone keeps its history and never changes state again.
    let copy = hq.ok(&["client", "add", "--company", "clinica", "--name", "Ana V."])?;
    hq.ok(&["duplicates", "merge", &old, &copy])?;
    for args in [
        vec!["client", "restore", copy.as_str(), "--force"],
        vec!["client", "set", copy.as_str(), "state", "active"],
        vec!["client", "archive", copy.as_str()],
    ] {
        let out = hq.run(&args)?;
        assert!(!out.status.success(), "{args:?} must fail");
    }
    Ok(())
}

#[test]
fn a_state_change_keeps_its_time_so_the_trash_keeps_its_retention() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let id = a.ok(&["client", "add", "--company", "acme", "--name", "Ana"])?;
    let before = chrono::Utc::now().timestamp_millis();
    a.ok(&["client", "set", &id, "state", "trashed"])?;
    let list: Value =
        serde_json::from_str(&a.ok(&["client", "list", "--json", "--state", "trashed"])?)?;
    let at = list[0]["state_at"].as_i64().unwrap_or(0);
    assert!(
        at >= before - 1000,
        "state_at {at} is the time of the change"
    );
    let report: Value = serde_json::from_str(&a.ok(&["trash", "purge"])?)?;
    assert_eq!(report["purged"], 0, "within its 30 days");
    assert_eq!(state(&a, &id)?, "trashed");
    Ok(())
}

#[test]
fn bulk_actions_and_filters_refuse_what_would_surprise() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let x = a.ok(&["client", "add", "--company", "acme", "--name", "Ana"])?;
    let y = a.ok(&["client", "add", "--company", "acme", "--name", "Bea"])?;
    fails_saying(&a, &["client", "bulk", "archive"], "--all")?;
    let unknown = "00000000-0000-0000-0000-0000000000ee";
    fails_saying(
        &a,
        &[
            "client",
            "bulk",
            "archive",
            "--ids",
            &format!("{x},{unknown}"),
        ],
        unknown,
    )?;
    assert_eq!(state(&a, &x)?, "active", "nothing changed");
    assert_eq!(a.ok(&["client", "bulk", "archive", "--all"])?, "2");
    assert_eq!(
        (state(&a, &x)?, state(&a, &y)?),
        ("archived".into(), "archived".into())
    );
    fails_saying(&a, &["client", "list", "--state", "bogus"], "bogus")?;
    fails_saying(
        &a,
        &["client", "list", "--company", "nobody"],
        "not granted",
    )?;
    fails_saying(&a, &["client", "stats", "--state", "bogus"], "bogus")?;
    fails_saying(
        &a,
        &["log", "add", &x, "--kind", "merged", "--text", "forged"],
        "merged",
    )?;
    Ok(())
}

#[test]
fn a_read_only_replica_refuses_edits_and_a_new_token_readmits_a_revoked_one() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay_dir = tmp.path().join("relay");
    let relay = Relay::start(&relay_dir, 0)?;
    let viewer = Replica::init(
        &tmp.path().join("v"),
        "viewer",
        &relay.url(),
        &relay.token("viewer", &["acme"], true)?,
    )?;
    fails_saying(
        &viewer,
        &["client", "add", "--company", "acme", "--name", "Ana"],
        "token set",
    )?;
    let status: Value = serde_json::from_str(&viewer.ok(&["status", "--json"])?)?;
    assert_eq!(status["pending_upload"], 0);
    assert_eq!(status["read_only"], true);

    let a = relay.replica(&tmp.path().join("a"), "laptop", &["acme"])?;
    let id = a.ok(&["client", "add", "--company", "acme", "--name", "Ana"])?;
    a.sync()?;
    let revoke = std::process::Command::new(ficha_e2e::bin("ficha-relay"))
        .args(["revoke", "--data"])
        .arg(&relay_dir)
        .args(["--replica", "laptop"])
        .output()?;
    assert!(revoke.status.success());
    a.ok(&["note", "add", &id, "--text", "written while revoked"])?;
    fails_saying(&a, &["sync", "--timeout-secs", "10"], "revoked")?;
    // A token issued after the revocation readmits the replica, under the same id.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let fresh = relay.token("laptop", &["acme"], false)?;
    fails_saying(
        &a,
        &["token", "set", &relay.token("other", &["acme"], false)?],
        "laptop",
    )?;
    a.ok(&["token", "set", &fresh])?;
    a.sync()?;
    let status: Value = serde_json::from_str(&a.ok(&["status", "--json"])?)?;
    assert_eq!(status["pending_upload"], 0, "the note went up");
    assert!(
        status["last_sync_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    Ok(())
}

#[test]
fn csv_rows_that_swallow_lines_are_errors_and_exports_are_safe_to_open() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let csv = tmp.path().join("in.csv");
    std::fs::write(
        &csv,
        "name,phone,note\n\
         Ana,600111222,first\n\
         \"Bea,600111333,the quote is never closed\n\
         Carla,600111444,third\n\
         Dani,600111555,fourth\n",
    )?;
    let report: Value = serde_json::from_str(&a.ok(&[
        "import",
        csv.to_str().unwrap_or_default(),
        "--company",
        "acme",
    ])?)?;
    assert_eq!(report["created"], 1, "{report}");
    assert_eq!(report["errors"][0]["line"], 3, "{report}");
    let names: Value = serde_json::from_str(&a.ok(&["client", "list", "--json"])?)?;
    assert_eq!(
        names.as_array().map_or(0, Vec::len),
        1,
        "no client holds several rows"
    );

    let id = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "=HYPERLINK(\"http://x\")",
    ])?;
    a.ok(&["client", "set", &id, "phone", "+34 600 000 001"])?;
    let out = tmp.path().join("out.csv");
    a.ok(&["export", "--out", out.to_str().unwrap_or_default()])?;
    let text = std::fs::read_to_string(&out)?;
    assert!(text.contains("'=HYPERLINK"), "{text}");
    assert!(text.contains("'+34 600 000 001"), "{text}");
    assert!(!text.contains(",=HYPERLINK"), "{text}");
    Ok(())
}
