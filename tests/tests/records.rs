//! Records of every kind through the real binaries. Two branches of one company and a central
//! office that sees two companies create one record of every kind the registry declares,
//! offline; after syncing through the relay every replica holds identical records; concurrent
//! edits of one record merge field by field; a record of another company never reaches a
//! replica whose token does not grant it.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use ficha_e2e::{Relay, Replica};
use serde_json::Value;

fn json(r: &Replica, args: &[&str]) -> Result<Value> {
    let out = r.ok(args)?;
    serde_json::from_str(&out).with_context(|| format!("{args:?} printed {out}"))
}

/// A valid value for a field as `record kinds --json` describes it; None when it cannot be
/// given yet (a reference to a kind with no record so far).
fn value_for(
    field: &Value,
    made: &BTreeMap<String, String>,
    client: &str,
    n: usize,
) -> Option<String> {
    if field["system"] == true {
        // Written by Ficha itself (numbers, events, delivery state): refused by hand.
        return None;
    }
    Some(match field["type"].as_str()? {
        "text" => format!("texto {n} Implementación"),
        "long_text" => format!("notas del registro {n}"),
        "integer" => format!("{}", n + 1),
        "money" => format!("{}.50EUR", 10 + n),
        "date" => format!("2026-12-{:02}", 1 + n % 27),
        "date_time" => format!("2026-12-{:02}T10:30:00+01:00", 1 + n % 27),
        "enum" => field["default"]
            .as_str()
            .or_else(|| field["values"][0].as_str())?
            .to_string(),
        "reference" => match field["references"].as_str()? {
            "client" => client.to_string(),
            kind => made.get(kind)?.clone(),
        },
        "boolean" => "true".into(),
        "set" => "uno,dos".into(),
        "lines" => format!("Servicio {n};2;{}EUR;21", 5 + n),
        _ => return None,
    })
}

/// Creates one record of every kind on `r` for `client` (or in `company` for company-level
/// kinds), references to earlier records included; returns kind -> id.
fn one_of_each(
    r: &Replica,
    kinds: &Value,
    client: &str,
    company: &str,
) -> Result<BTreeMap<String, String>> {
    let mut made = BTreeMap::new();
    // A kind whose required reference names a kind not made yet waits for a later pass.
    for _pass in 0..3 {
        for (n, k) in kinds.as_array().context("kinds")?.iter().enumerate() {
            let kind = k["kind"].as_str().context("kind")?;
            if made.contains_key(kind) {
                continue;
            }
            let mut args: Vec<String> = vec!["record".into(), "add".into(), kind.into()];
            if k["parent"] == "company" {
                args.extend(["--company".into(), company.into()]);
            } else {
                args.extend(["--client".into(), client.into()]);
            }
            let mut ready = true;
            for f in k["fields"].as_array().context("fields")? {
                match value_for(f, &made, client, n) {
                    Some(v) => args.push(format!("{}={v}", f["name"].as_str().context("name")?)),
                    None if f["required"] == true => ready = false,
                    None => {}
                }
            }
            if kind == "employee" {
                // Codes are unique per company: each replica's employee its own.
                args.retain(|a| !a.starts_with("code="));
            }
            if ready {
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                made.insert(kind.to_string(), r.ok(&argv)?);
            }
        }
    }
    Ok(made)
}

/// What a record looks like to compare across replicas: everything but the log's ISO copies.
fn record(r: &Replica, id: &str) -> Result<Value> {
    json(r, &["record", "show", id, "--json"])
}

#[test]
fn every_kind_syncs_between_branches_and_a_central_office_and_merges_field_by_field() -> Result<()>
{
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "branch-a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "branch-b", &["acme"])?;
    let hq = relay.replica(&tmp.path().join("hq"), "central", &["acme", "beta"])?;
    let kinds = json(&a, &["record", "kinds", "--json"])?;
    let count = kinds.as_array().context("kinds")?.len();
    assert!(
        count >= 25,
        "the registry declares the documented kinds: {count}"
    );

    let ana = a.ok(&["client", "add", "--company", "acme", "--name", "Ana Pérez"])?;
    let beto = hq.ok(&["client", "add", "--company", "beta", "--name", "Beto Ruiz"])?;
    for r in [&a, &hq, &b] {
        r.sync()?;
    }
    // Offline on all three at once.
    let from_a = one_of_each(&a, &kinds, &ana, "acme")?;
    let from_b = one_of_each(&b, &kinds, &ana, "acme")?;
    let from_hq = one_of_each(&hq, &kinds, &beto, "beta")?;
    assert_eq!(
        from_a.len(),
        count,
        "every kind could be created: {from_a:?}"
    );
    assert_eq!(from_b.len(), count);
    assert_eq!(from_hq.len(), count);
    for r in [&a, &b, &hq, &a, &b] {
        r.sync()?;
    }

    for (kind, id) in from_a.iter().chain(&from_b) {
        let on_a = record(&a, id)?;
        assert_eq!(on_a["kind"], kind.as_str());
        assert_eq!(
            on_a,
            record(&b, id)?,
            "{kind} {id} differs between the branches"
        );
        assert_eq!(
            on_a,
            record(&hq, id)?,
            "{kind} {id} differs at the central office"
        );
    }
    for (kind, id) in &from_hq {
        assert_eq!(record(&hq, id)?["company"], "beta");
        for branch in [&a, &b] {
            let out = branch.run(&["record", "show", id, "--json"])?;
            assert!(
                !out.status.success(),
                "a beta {kind} reached an acme-only replica"
            );
        }
    }
    // Every kind lists both branches' records of the client, on every replica alike.
    for k in kinds.as_array().context("kinds")? {
        let kind = k["kind"].as_str().context("kind")?;
        let list = |r: &Replica| -> Result<Vec<String>> {
            let scope: Vec<&str> = if k["parent"] == "company" {
                vec!["--company", "acme"]
            } else {
                vec!["--client", ana.as_str()]
            };
            let mut args = vec!["record", "list", kind, "--json"];
            args.extend(scope);
            let rows = json(r, &args)?;
            let mut ids: Vec<String> = rows
                .as_array()
                .context("rows")?
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect();
            ids.sort();
            Ok(ids)
        };
        let mut want = vec![from_a[kind].clone(), from_b[kind].clone()];
        want.sort();
        assert_eq!(list(&a)?, want, "{kind} on branch a");
        assert_eq!(list(&b)?, want, "{kind} on branch b");
        assert_eq!(list(&hq)?, want, "{kind} at the central office");
    }
    let shown = json(&hq, &["client", "show", &ana, "--json"])?;
    assert_eq!(shown["linked"]["invoice"], 2, "{}", shown["linked"]);
    // Each record names the automerge-repo URL an automerge-repo app opens it by.
    let url = shown["automerge_url"].as_str().context("automerge_url")?;
    assert_eq!(ficha_core::DocId::from_automerge(url)?.to_string(), ana);
    let invoice_url = record(&hq, &from_a["invoice"])?["automerge_url"].clone();
    let invoice_id = ficha_core::DocId::from_automerge(invoice_url.as_str().context("a url")?)?;
    assert_eq!(invoice_id.to_string(), from_a["invoice"]);

    // The same invoice edited in both branches at once: different fields both survive, the
    // field both set converges to one value with the other kept under conflicts.
    let invoice = &from_a["invoice"];
    a.ok(&[
        "record",
        "set",
        invoice,
        "number=A-7",
        "due_date=2027-01-10",
    ])?;
    b.ok(&[
        "record",
        "set",
        invoice,
        "series=2026",
        "due_date=2027-01-20",
    ])?;
    for r in [&a, &b, &a] {
        r.sync()?;
    }
    let (va, vb) = (record(&a, invoice)?, record(&b, invoice)?);
    assert_eq!(va, vb);
    assert_eq!(va["number"], "A-7");
    assert_eq!(va["series"], "2026");
    let due = va["due_date"].as_str().context("due date")?;
    let lost = &va["conflicts"]["due_date"][0];
    let both: std::collections::BTreeSet<&str> = [due, lost.as_str().context("loser")?].into();
    assert_eq!(both, ["2027-01-10", "2027-01-20"].into());
    // And each edit is in the log with the value it replaced.
    let log = va["log"].as_array().context("log")?;
    assert!(
        log.iter()
            .any(|e| e["field"] == "number" && e["replica"] == "branch-a"),
        "{log:?}"
    );
    Ok(())
}

fn ids(rows: &Value) -> Result<std::collections::BTreeSet<String>> {
    Ok(rows
        .as_array()
        .context("rows")?
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect())
}

#[test]
fn clients_are_found_by_their_services_and_appointments_and_their_accounts_add_up() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let r = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let add = |name: &str| r.ok(&["client", "add", "--company", "acme", "--name", name]);
    let (subscriber, former, none) = (add("Suscrita")?, add("Antigua")?, add("Nadie")?);
    r.ok(&[
        "record",
        "add",
        "service",
        "--client",
        &subscriber,
        "name=Soporte",
        "service_type=Implementación",
        "type=subscription",
    ])?;
    let old = r.ok(&[
        "record",
        "add",
        "service",
        "--client",
        &former,
        "name=Soporte",
        "service_type=Programación",
    ])?;
    r.ok(&["record", "set", &old, "status=cancelled"])?;
    r.ok(&[
        "record",
        "add",
        "appointment",
        "--client",
        &none,
        "start=2099-01-10T09:00:00Z",
    ])?;
    r.ok(&[
        "record",
        "add",
        "appointment",
        "--client",
        &former,
        "start=2001-01-10T09:00:00Z",
    ])?;
    let list = |extra: &[&str]| -> Result<std::collections::BTreeSet<String>> {
        let mut args = vec!["client", "list", "--json"];
        args.extend(extra);
        ids(&json(&r, &args)?)
    };
    assert_eq!(list(&["--services", "with"])?, [subscriber.clone()].into());
    assert_eq!(list(&["--services", "cancelled"])?, [former.clone()].into());
    assert_eq!(
        list(&["--services", "without"])?,
        [former.clone(), none.clone()].into()
    );
    assert_eq!(
        list(&["--service-type", "Implementación"])?,
        [subscriber.clone()].into()
    );
    assert_eq!(
        list(&["--upcoming"])?,
        [none.clone()].into(),
        "past appointments do not count"
    );
    assert!(
        !r.run(&["client", "list", "--services", "maybe"])?
            .status
            .success()
    );

    // 100.00 + 21 % = 121.00 issued, 21.00 paid; a credit note of 10.00 issued; a draft
    // that does not count yet.
    let invoice = r.ok(&[
        "record",
        "add",
        "invoice",
        "--client",
        &subscriber,
        "number=1",
        "lines=Cuota;1;100EUR;21",
    ])?;
    r.ok(&[
        "record",
        "set",
        &invoice,
        "status=issued",
        "amount_paid=21EUR",
    ])?;
    r.ok(&[
        "record",
        "add",
        "invoice",
        "--client",
        &subscriber,
        "number=2",
        "lines=Extra;1;50EUR;21",
    ])?;
    let credit = r.ok(&[
        "record",
        "add",
        "credit_note",
        "--client",
        &subscriber,
        &format!("invoice={invoice}"),
        "total=10EUR",
    ])?;
    r.ok(&["record", "set", &credit, "status=issued"])?;
    let shown = json(&r, &["client", "show", &subscriber, "--json"])?;
    assert_eq!(shown["sales_total"]["EUR"], 12_100 - 1_000);
    assert_eq!(shown["pending_total"]["EUR"], 10_000);
    assert!(
        shown["last_update"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let stats = json(&r, &["client", "stats"])?;
    assert_eq!(stats["total_sales"]["EUR"], 11_100);
    let statement = json(&r, &["client", "statement", &subscriber])?;
    let pending = statement["pending"].as_array().context("pending")?;
    assert_eq!(
        pending.len(),
        1,
        "only the issued invoice is owed: {pending:?}"
    );
    assert_eq!(pending[0]["pending"]["amount"], 10_000);
    let csv = r.ok(&["client", "statement", &subscriber, "--format", "csv"])?;
    assert!(csv.contains("100.00 EUR"), "{csv}");
    let rows = json(&r, &["client", "list", "--json", "--search", "suscrita"])?;
    assert_eq!(rows[0]["sales_total"]["EUR"], 11_100);
    Ok(())
}
