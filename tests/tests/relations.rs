//! Relations between client accounts through the real binaries: two branches each make one
//! client the other's parent while offline; after syncing, both clients show the conflict,
//! every replica keeps the same edge and leaves out the same one, and nothing is lost. A
//! central office relates accounts of two companies.

use anyhow::Result;
use ficha_e2e::{Relay, Replica};
use serde_json::Value;

fn tree(r: &Replica, client: &str) -> Result<Value> {
    Ok(serde_json::from_str(
        &r.ok(&["relation", "list", client, "--json"])?,
    )?)
}

#[test]
fn a_cycle_made_offline_is_shown_on_both_clients_and_broken_alike_everywhere() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "branch-a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "branch-b", &["acme"])?;
    let hq = relay.replica(&tmp.path().join("hq"), "central", &["acme", "beta"])?;
    let holding = a.ok(&["client", "add", "--company", "acme", "--name", "Holding SA"])?;
    let sub = a.ok(&["client", "add", "--company", "acme", "--name", "Filial SL"])?;
    let foreign = hq.ok(&["client", "add", "--company", "beta", "--name", "Socio Beta"])?;
    for r in [&a, &b, &hq] {
        r.sync()?;
    }
    a.ok(&["relation", "add", &holding, &sub, "--type", "parent"])?;
    b.ok(&["relation", "add", &sub, &holding, "--type", "parent"])?;
    // Once a replica knows the first edge, the second is refused at once.
    assert!(
        !a.run(&["relation", "add", &sub, &holding])?
            .status
            .success()
    );
    for r in [&a, &b, &hq, &a] {
        r.sync()?;
    }
    let on_a = (tree(&a, &holding)?, tree(&a, &sub)?);
    for r in [&b, &hq] {
        assert_eq!(
            (tree(r, &holding)?, tree(r, &sub)?),
            on_a,
            "the same tree everywhere"
        );
    }
    let (h, s) = on_a;
    assert_eq!(h["broken"].as_array().map(Vec::len), Some(1), "{h}");
    assert_eq!(h["broken"], s["broken"], "shown on both clients");
    // One of the two edges is in the tree, the other left out: exactly one parent relation.
    let up = (
        h["ancestors"].as_array().map(Vec::len),
        s["ancestors"].as_array().map(Vec::len),
    );
    assert!(
        matches!(up, (Some(0), Some(1)) | (Some(1), Some(0))),
        "{up:?}"
    );
    let shown: Value = serde_json::from_str(&b.ok(&["client", "show", &sub, "--json"])?)?;
    assert!(
        shown["derived_alerts"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x["type"] == "relation_conflict"))
    );

    // Partners across two companies, on the replica that sees both.
    hq.ok(&["relation", "add", &holding, &foreign, "--type", "partner"])?;
    let t = tree(&hq, &foreign)?;
    assert_eq!(t["other_relations"][0]["type"], "partner");
    assert!(
        !a.run(&["relation", "add", &holding, &foreign, "--type", "partner"])?
            .status
            .success(),
        "a does not see beta"
    );
    Ok(())
}
