//! Two branches create the same person offline: the duplicate is detected, merged on request,
//! nothing is lost, and edits that later arrive for the merged-away record land on the survivor.

use anyhow::Result;
use ficha_e2e::{Relay, note_texts};
use std::collections::BTreeSet;

#[test]
fn offline_duplicates_are_found_merged_and_forwarded() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "madrid", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "sevilla", &["acme"])?;
    a.sync()?;
    b.sync()?;
    // The same person walks into both branches while they are offline.
    let in_a = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Rocío Durán",
        "--email",
        "rocio@example.com",
    ])?;
    a.ok(&["note", "add", &in_a, "--text", "first visit in Madrid"])?;
    let in_b = b.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Rocio Duran",
        "--email",
        "ROCIO@example.com",
        "--phone",
        "600 123 456",
    ])?;
    b.ok(&["note", "add", &in_b, "--text", "first visit in Sevilla"])?;
    // Different people sharing a family phone.
    let p1 = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Luis Ortega",
        "--phone",
        "+34 611 222 333",
    ])?;
    let p2 = a.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Elena Ortega",
        "--phone",
        "611222333",
    ])?;
    a.sync()?;
    b.sync()?;
    a.sync()?;

    let list: serde_json::Value =
        serde_json::from_str(&a.ok(&["duplicates", "list", "--json"])?)?;
    let pairs: Vec<(BTreeSet<String>, Vec<String>)> = list
        .as_array()
        .map(|l| {
            l.iter()
                .map(|c| {
                    let ids = [c["a"]["id"].as_str(), c["b"]["id"].as_str()]
                        .into_iter()
                        .flatten()
                        .map(str::to_string)
                        .collect();
                    let reasons = c["reasons"]
                        .as_array()
                        .map(|r| {
                            r.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    (ids, reasons)
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(pairs.len(), 2, "{list}");
    let rocio = BTreeSet::from([in_a.clone(), in_b.clone()]);
    assert!(
        pairs
            .iter()
            .any(|(ids, r)| *ids == rocio && r.contains(&"email".to_string()))
    );
    assert!(
        pairs
            .iter()
            .any(|(ids, r)| *ids == BTreeSet::from([p1.clone(), p2.clone()])
                && r.contains(&"phone".to_string()))
    );
    assert_eq!(
        a.show(&in_b)?["state"],
        "active",
        "nothing is merged automatically"
    );

    // A person decides: the Ortegas are two people; Rocío is one.
    a.ok(&["duplicates", "dismiss", &p1, &p2])?;
    // Sevilla, offline, adds a note to its record before hearing of the merge.
    b.ok(&["note", "add", &in_b, "--text", "late note from Sevilla"])?;
    a.ok(&["duplicates", "merge", &in_a, &in_b])?;
    a.sync()?;
    b.sync()?;
    a.sync()?;
    b.sync()?;

    let (va, vb) = (a.show(&in_a)?, b.show(&in_a)?);
    assert_eq!(va, vb);
    assert_eq!(
        note_texts(&va),
        BTreeSet::from([
            "first visit in Madrid".into(),
            "first visit in Sevilla".into(),
            "late note from Sevilla".into()
        ])
    );
    assert_eq!(
        va["phone"], "600 123 456",
        "an empty field is filled from the other record"
    );
    assert_eq!(
        va["name"], "Rocío Durán",
        "the survivor keeps its own values"
    );
    let tomb = b.show(&in_b)?;
    assert_eq!(tomb["state"], "merged");
    assert_eq!(tomb["merged_into"], in_a.as_str());
    let listed = b.ok(&["client", "list", "--json"])?;
    assert!(!listed.contains(&in_b), "tombstones are not listed");
    assert_eq!(
        b.ok(&["duplicates", "list", "--json"])?,
        "[]",
        "dismissal and merge synced to the other branch"
    );
    Ok(())
}

#[test]
fn reactivating_an_archived_client_checks_for_active_duplicates_first() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    // Two branches of two companies archive their former clients; the central office's
    // token covers both companies, so its archive is group-wide.
    let madrid = relay.replica(&tmp.path().join("madrid"), "madrid", &["clinica"])?;
    let bcn = relay.replica(&tmp.path().join("bcn"), "bcn", &["salon"])?;
    let hq = relay.replica(&tmp.path().join("hq"), "hq", &["clinica", "salon"])?;
    let old = madrid.ok(&[
        "client",
        "add",
        "--company",
        "clinica",
        "--name",
        "Ana Vidal",
        "--email",
        "ana@vidal.es",
    ])?;
    let other_co = bcn.ok(&["client", "add", "--company", "salon", "--name", "Pau Soler"])?;
    madrid.ok(&["client", "archive", &old])?;
    bcn.ok(&["client", "archive", &other_co])?;
    madrid.sync()?;
    bcn.sync()?;
    hq.sync()?;
    let archive = |r: &ficha_e2e::Replica, extra: &[&str]| -> Result<BTreeSet<String>> {
        let mut args = vec!["client", "list", "--json", "--state", "archived"];
        args.extend_from_slice(extra);
        let v: serde_json::Value = serde_json::from_str(&r.ok(&args)?)?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["company"].as_str().map(str::to_string))
            .collect())
    };
    let both: BTreeSet<String> = ["clinica".to_string(), "salon".to_string()].into();
    assert_eq!(
        archive(&hq, &[])?,
        both,
        "the archive spans the token's companies"
    );
    assert_eq!(
        archive(&madrid, &[])?,
        ["clinica".to_string()].into(),
        "a branch sees its own"
    );
    assert_eq!(
        archive(&hq, &["--company", "salon"])?,
        ["salon".to_string()].into()
    );
    // By period: archived today, so from today on finds both and before today finds none.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(archive(&hq, &["--since", &today])?, both);
    assert!(archive(&hq, &["--until", &today])?.is_empty());
    assert!(
        !hq.run(&["client", "list", "--since", "yesterday"])?
            .status
            .success()
    );
    // She comes back and is registered anew before anyone looks in the archive.
    let new = hq.ok(&[
        "client",
        "add",
        "--company",
        "clinica",
        "--name",
        "Ana Vidal",
        "--email",
        "ANA@vidal.es",
    ])?;
    let refused = hq.run(&["client", "restore", &old])?;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&new),
        "names the active duplicate"
    );
    assert_eq!(hq.show(&old)?["state"], "archived", "nothing changed");
    hq.ok(&["duplicates", "merge", &old, &new])?;
    hq.ok(&["client", "restore", &old])?;
    assert_eq!(hq.show(&old)?["state"], "active");
    hq.ok(&["client", "restore", &other_co])?;
    hq.sync()?;
    bcn.sync()?;
    assert_eq!(
        bcn.show(&other_co)?["state"],
        "active",
        "the branch sees the reactivation"
    );
    let log = hq.show(&old)?["log"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        log.iter()
            .any(|e| e["kind"] == "archived" && e["who"] == "madrid"),
        "archive events are recorded"
    );
    Ok(())
}
