//! The whole client file through the real binaries: sections, groups, lifecycle and the
//! activity log, edited on two branches offline and merged.

use anyhow::Result;
use ficha_e2e::Relay;

#[test]
fn the_whole_file_merges_across_branches() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "branch-a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "branch-b", &["acme"])?;
    let id = a.ok(&["client", "add", "--company", "acme", "--name", "Marta Gil"])?;
    let test = a.ok(&[
        "item",
        "add",
        &id,
        "skin_tests",
        "responsible=Dr. Ruiz",
        "description=patch test",
    ])?;
    a.sync()?;
    b.sync()?;

    // Offline on both sides.
    a.ok(&[
        "item",
        "set",
        &id,
        "skin_tests",
        &test,
        "status=in_progress",
    ])?;
    a.ok(&[
        "item",
        "set",
        &id,
        "skin_tests",
        &test,
        "status=satisfactory",
    ])?;
    let allergy = a.ok(&[
        "item",
        "add",
        &id,
        "allergies",
        "type=latex",
        "severity=severe",
        "diagnosed_on=2024-05-02",
    ])?;
    a.ok(&[
        "item",
        "add",
        &id,
        "emails",
        "value=marta@work.es",
        "kind=work",
        "primary=true",
    ])?;
    a.ok(&["client", "set", &id, "tax_id", "12345678Z"])?;
    a.ok(&["group", "add", &id, "vip"])?;
    b.ok(&[
        "item",
        "add",
        &id,
        "emails",
        "value=marta@gmail.com",
        "kind=personal",
        "primary=true",
    ])?;
    b.ok(&[
        "item",
        "add",
        &id,
        "reviews",
        "rating=5",
        "text=Great service",
        "source=google",
    ])?;
    b.ok(&[
        "item",
        "add",
        &id,
        "contacts",
        "name=Luis Gil",
        "role=husband",
        "phone=+34 600 1",
    ])?;
    b.ok(&["group", "add", &id, "newsletter"])?;
    b.ok(&[
        "log",
        "add",
        &id,
        "--kind",
        "call",
        "--text",
        "Confirmed Tuesday",
    ])?;
    b.ok(&["client", "archive", &id])?;

    a.sync()?;
    b.sync()?;
    a.sync()?;
    let (va, vb) = (a.show(&id)?, b.show(&id)?);
    assert_eq!(va, vb);
    assert_eq!(
        va["skin_tests"][0]["status"], "satisfactory",
        "b's stale pending did not win"
    );
    assert_eq!(va["allergies"][0]["severity"], "severe");
    assert_eq!(va["emails"].as_array().map(Vec::len), Some(2));
    assert_eq!(va["reviews"][0]["rating"], 5);
    assert_eq!(va["contacts"][0]["name"], "Luis Gil");
    assert_eq!(va["groups"], serde_json::json!(["newsletter", "vip"]));
    assert_eq!(va["profile"]["tax_id"], "12345678Z");
    assert_eq!(va["state"], "archived");
    assert_eq!(va["archived"], true);
    let log = va["log"].as_array().cloned().unwrap_or_default();
    assert!(
        log.iter()
            .any(|e| e["kind"] == "call" && e["who"] == "branch-b")
    );
    assert!(
        log.iter()
            .any(|e| e["kind"] == "skin_tests_changed" && e["who"] == "branch-a")
    );
    assert!(log.len() >= 12, "every action was logged: {}", log.len());

    // Clinical items are deactivated, never deleted; bad values are refused.
    a.ok(&["item", "remove", &id, "allergies", &allergy])?;
    assert_eq!(a.show(&id)?["allergies"][0]["active"], false);
    assert!(
        !a.run(&["item", "set", &id, "skin_tests", &test, "status=pending"])?
            .status
            .success()
    );
    assert!(
        !a.run(&["item", "add", &id, "reviews", "rating=9"])?
            .status
            .success()
    );
    assert!(
        !a.run(&["item", "add", &id, "pets", "name=x"])?
            .status
            .success()
    );
    a.ok(&["client", "restore", &id])?;
    assert_eq!(a.show(&id)?["state"], "active");
    Ok(())
}

#[test]
fn the_list_searches_filters_and_counts_without_opening_documents() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme", "beta"])?;
    let jose = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "José Núñez",
        "--phone",
        "+34 600 11 22 33",
    ])?;
    let ana = a.ok(&[
        "client",
        "add",
        "--company",
        "beta",
        "--name",
        "Ana Ruiz",
        "--email",
        "ana@ruiz.es",
    ])?;
    let old = a.ok(&["client", "add", "--company", "acme", "--name", "Old Client"])?;
    a.ok(&["group", "add", &jose, "vip"])?;
    a.ok(&["item", "add", &jose, "reviews", "rating=5"])?;
    a.ok(&["item", "add", &ana, "reviews", "rating=2"])?;
    a.ok(&["client", "archive", &old])?;
    let names = |args: &[&str]| -> Result<Vec<String>> {
        let mut cmd = vec!["client", "list", "--json"];
        cmd.extend_from_slice(args);
        let v: serde_json::Value = serde_json::from_str(&a.ok(&cmd)?)?;
        Ok(v.as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    };
    assert_eq!(names(&["--search", "jose nunez"])?, ["José Núñez"]);
    assert_eq!(names(&["--search", "600112233"])?, ["José Núñez"]);
    assert_eq!(names(&["--search", "RUIZ.ES"])?, ["Ana Ruiz"]);
    assert_eq!(names(&["--company", "beta"])?, ["Ana Ruiz"]);
    assert_eq!(names(&["--group", "vip"])?, ["José Núñez"]);
    assert_eq!(names(&["--state", "archived"])?, ["Old Client"]);
    assert_eq!(names(&["--limit", "1", "--offset", "1"])?, ["José Núñez"]);
    assert_eq!(
        names(&["--sort", "created-desc"])?,
        ["Old Client", "Ana Ruiz", "José Núñez"]
    );
    assert_eq!(
        names(&["--sort", "rating"])?,
        ["José Núñez", "Ana Ruiz", "Old Client"],
        "best average first, unreviewed last"
    );
    assert!(
        !a.run(&["client", "list", "--sort", "colour"])?
            .status
            .success()
    );
    // Bulk actions over a filter and over a selection.
    assert_eq!(
        a.ok(&[
            "client",
            "bulk",
            "add-group",
            "spring-campaign",
            "--company",
            "acme",
            "--state",
            "active"
        ])?,
        "1"
    );
    assert_eq!(names(&["--group", "spring-campaign"])?, ["José Núñez"]);
    assert_eq!(
        a.ok(&[
            "client",
            "bulk",
            "assign",
            "Marta",
            "--ids",
            &format!("{jose},{ana}")
        ])?,
        "2"
    );
    assert_eq!(a.show(&ana)?["profile"]["assigned_employee"], "Marta");
    assert!(!a.run(&["client", "bulk", "paint-blue"])?.status.success());
    a.ok(&["client", "trash", &ana])?;
    assert!(
        !names(&[])?.contains(&"Ana Ruiz".to_string()),
        "trash is hidden"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&a.ok(&["client", "stats", "--state", "active"])?)?;
    assert_eq!(stats["total_clients"], 1);
    let all: serde_json::Value =
        serde_json::from_str(&a.ok(&["client", "stats", "--company", "acme"])?)?;
    assert_eq!(all["total_reviews"], 1);
    assert_eq!(all["average_rating"], 5.0);
    Ok(())
}

#[test]
fn archiving_while_another_branch_edits_keeps_both_and_flags_it() -> Result<()> {
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
        "Leaving Client",
    ])?;
    let quiet = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Quiet Client",
    ])?;
    a.sync()?;
    b.sync()?;
    // Offline: A archives both; B, unaware, writes a note on one of them.
    a.ok(&["client", "archive", &id])?;
    a.ok(&["client", "archive", &quiet])?;
    assert_eq!(a.show(&id)?["edited_while_archived"], false);
    b.ok(&[
        "note",
        "add",
        &id,
        "--text",
        "called about her last invoice",
    ])?;
    a.sync()?;
    b.sync()?;
    a.sync()?;
    let (va, vb) = (a.show(&id)?, b.show(&id)?);
    assert_eq!(va, vb);
    assert_eq!(va["state"], "archived", "the archive holds");
    assert_eq!(
        va["notes"][0]["text"], "called about her last invoice",
        "the edit is kept"
    );
    assert_eq!(va["edited_while_archived"], true);
    assert_eq!(a.show(&quiet)?["edited_while_archived"], false);
    Ok(())
}

#[test]
fn trash_is_kept_for_its_retention_then_purged_everywhere() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "madrid", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "sevilla", &["acme"])?;
    let gone = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Marta Gil",
        "--email",
        "marta@gil.es",
    ])?;
    a.ok(&["note", "add", &gone, "--text", "allergic to latex"])?;
    a.ok(&[
        "item",
        "add",
        &gone,
        "allergies",
        "type=latex",
        "severity=severe",
    ])?;
    let kept = a.ok(&["client", "add", "--company", "acme", "--name", "Pau Vila"])?;
    a.ok(&["client", "trash", &gone])?;
    a.sync()?;
    b.sync()?;
    let report = |r: &ficha_e2e::Replica, days: &str| -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&r.ok(&[
            "trash",
            "purge",
            "--older-than-days",
            days,
        ])?)?)
    };
    // Inside the retention period nothing is purged and the client is restorable.
    let r = report(&a, "30")?;
    assert_eq!(
        (r["purged"].as_u64(), r["kept"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(a.show(&gone)?["name"], "Marta Gil");
    // Meanwhile branch B, offline, writes on the trashed client.
    b.ok(&["note", "add", &gone, "--text", "called about her file"])?;
    // Retention over (0 days): purged.
    let r = report(&a, "0")?;
    assert_eq!(r["purged"], 1);
    let v = a.show(&gone)?;
    assert_eq!(v["state"], "purged");
    assert_eq!(v["name"], "(purged)");
    assert!(v["email"].is_null());
    assert_eq!(v["notes"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["allergies"].as_array().map(Vec::len), Some(0));
    let log = v["log"].as_array().cloned().unwrap_or_default();
    assert!(
        log.iter()
            .any(|e| e["kind"] == "purged" && e["who"] == "madrid"),
        "the purge is on the record"
    );
    assert!(
        log.iter().all(|e| e["text"] == ""),
        "log texts may quote data"
    );
    assert_eq!(a.show(&kept)?["name"], "Pau Vila");
    let listed = a.ok(&["client", "list", "--json"])?;
    assert!(!listed.contains(&gone), "purged clients leave the list");
    assert!(
        a.ok(&["client", "list", "--json", "--state", "purged"])?
            .contains(&gone)
    );
    // B's offline note merges in after the purge; purging again cleans it on every branch.
    b.sync()?;
    a.sync()?;
    assert_eq!(a.show(&gone)?["notes"].as_array().map(Vec::len), Some(1));
    assert_eq!(report(&a, "0")?["recleaned"], 1);
    a.sync()?;
    b.sync()?;
    let vb = b.show(&gone)?;
    assert_eq!(vb["state"], "purged");
    assert_eq!(vb["notes"].as_array().map(Vec::len), Some(0));
    assert_eq!(vb["heads"], a.show(&gone)?["heads"]);
    Ok(())
}
