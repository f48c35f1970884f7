//! The wallet through the real binaries: two branches deduct offline from the same client,
//! both movements survive, and every replica shows the same overdrawn balance and alert until
//! funds are added; a movement reversed in both branches offline is undone once; movements are
//! never edited.

use anyhow::{Context, Result};
use ficha_e2e::{Relay, Replica};
use serde_json::Value;

fn wallet(r: &Replica, client: &str) -> Result<Value> {
    Ok(serde_json::from_str(
        &r.ok(&["wallet", "show", client, "--json"])?,
    )?)
}

#[test]
fn offline_deductions_overdraw_the_same_way_everywhere_and_a_reversal_counts_once() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "branch-a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "branch-b", &["acme"])?;
    let hq = relay.replica(&tmp.path().join("hq"), "central", &["acme"])?;
    let client = a.ok(&["client", "add", "--company", "acme", "--name", "Marta"])?;
    a.ok(&[
        "wallet", "add", &client, "--amount", "50EUR", "--note", "bono",
    ])?;
    for r in [&a, &b, &hq] {
        r.sync()?;
    }
    // Offline, each branch sees 50.00 and spends 30.00 of it.
    let da = a.ok(&["wallet", "deduct", &client, "--amount", "30EUR"])?;
    b.ok(&["wallet", "deduct", &client, "--amount", "30EUR"])?;
    assert_eq!(wallet(&a, &client)?["balance"], 2_000);
    for r in [&a, &b, &hq, &a] {
        r.sync()?;
    }
    for r in [&a, &b, &hq] {
        let w = wallet(r, &client)?;
        assert_eq!(
            (w["balance"].clone(), w["total_spent"].clone()),
            (Value::from(-1_000), Value::from(6_000))
        );
        assert_eq!(w["overdraft"], true);
        assert_eq!(
            w["movements"].as_array().map(Vec::len),
            Some(3),
            "nothing dropped"
        );
        let shown: Value = serde_json::from_str(&r.ok(&["client", "show", &client, "--json"])?)?;
        assert_eq!(
            shown["derived_alerts"][0]["type"], "overdraft",
            "{}",
            shown["derived_alerts"]
        );
    }

    // Both branches reverse branch a's deduction offline: it is undone once.
    a.ok(&["wallet", "reverse", &client, &da])?;
    a.sync()?;
    b.sync()?;
    assert!(
        !b.run(&["wallet", "reverse", &client, &da])?
            .status
            .success(),
        "b now knows"
    );
    hq.ok(&["wallet", "reverse", &client, &da])?;
    for r in [&a, &hq, &b, &a, &hq] {
        r.sync()?;
    }
    let (wa, whq, wb) = (
        wallet(&a, &client)?,
        wallet(&hq, &client)?,
        wallet(&b, &client)?,
    );
    assert_eq!(wa, whq);
    assert_eq!(wa, wb);
    assert_eq!(wa["balance"], 2_000, "one reversal counts: {wa}");
    let ignored: Vec<&Value> = wa["movements"]
        .as_array()
        .context("movements")?
        .iter()
        .filter(|m| m["counts"] == false)
        .collect();
    assert_eq!(
        ignored.len(),
        1,
        "the second reversal is kept, and does not count"
    );
    assert!(
        ignored[0]["ignored_because"]
            .as_str()
            .is_some_and(|w| w.contains("already reversed"))
    );
    let shown: Value = serde_json::from_str(&a.ok(&["client", "show", &client, "--json"])?)?;
    assert_eq!(
        shown["derived_alerts"],
        serde_json::json!([]),
        "the overdraft cleared"
    );

    // A movement is never edited; amounts must be positive; one currency per wallet.
    assert!(
        !a.run(&["record", "set", &da, "amount=1EUR"])?
            .status
            .success()
    );
    assert!(
        !a.run(&["wallet", "deduct", &client, "--amount", "-5EUR"])?
            .status
            .success()
    );
    assert!(
        !a.run(&["wallet", "add", &client, "--amount", "5USD"])?
            .status
            .success()
    );
    Ok(())
}
