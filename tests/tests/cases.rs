//! Support cases through the real binaries: two branches open cases offline and their numbers
//! never collide; every replica computes the same SLA; the assignee is notified on their own
//! replica, and a notification read on one replica of theirs is read on all.

use anyhow::{Context, Result};
use ficha_e2e::{Relay, Replica};
use serde_json::Value;

fn json(r: &Replica, args: &[&str]) -> Result<Value> {
    let out = r.ok(args)?;
    serde_json::from_str(&out).with_context(|| format!("{args:?} printed {out:?}"))
}

fn open_case(
    r: &Replica,
    client: &str,
    title: &str,
    priority: &str,
    assignee: &str,
) -> Result<Value> {
    json(
        r,
        &[
            "case",
            "add",
            "--client",
            client,
            "--title",
            title,
            "--category",
            "query",
            "--status",
            "new",
            "--priority",
            priority,
            "--description",
            "No arranca",
            "--assignee",
            assignee,
        ],
    )
}

fn iso_in(minutes: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339()
}

#[test]
fn offline_branches_number_cases_apart_and_the_assignee_is_notified_on_their_replica() -> Result<()>
{
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "branch-a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "branch-b", &["acme"])?;
    let client = a.add_client("acme", "Talleres Ruiz")?;
    let ana = a.add_employee("acme", "Ana", "ANA")?;
    a.add_employee("acme", "Luis", "LUIS")?;
    a.sync()?;
    b.sync()?;

    // Offline, each branch opens cases.
    let a1 = open_case(&a, &client, "Impresora", "high", "ANA")?;
    let a2 = open_case(&a, &client, "Correo", "low", "LUIS")?;
    let b1 = open_case(&b, &client, "Factura", "critical", "ANA")?;
    let numbers: Vec<&str> = [&a1, &a2, &b1]
        .iter()
        .map(|c| c["number"].as_str().unwrap_or_default())
        .collect();
    let (ca, n1) = numbers[0].split_once('-').context("CODE-SEQ")?;
    assert_eq!(n1, "1");
    assert_eq!(numbers[1], format!("{ca}-2"));
    let (cb, _) = numbers[2].split_once('-').context("CODE-SEQ")?;
    assert_ne!(ca, cb, "each replica has its own code: {numbers:?}");

    // Missing required fields are each named; nothing is made.
    let refused = a.run(&["case", "add", "--client", &client, "--title", "x"])?;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    for f in ["category", "status", "priority", "description", "assignee"] {
        assert!(err.contains(f), "{f} not named in {err}");
    }
    let unknown = a.run(&[
        "case",
        "add",
        "--client",
        &client,
        "--title",
        "x",
        "--category",
        "nonsense",
        "--status",
        "new",
        "--priority",
        "normal",
        "--description",
        "d",
        "--assignee",
        "ANA",
    ])?;
    assert!(!unknown.status.success());
    assert!(
        a.run(&[
            "case",
            "set",
            a1["id"].as_str().unwrap_or_default(),
            "number=X-1"
        ])?
        .status
        .code()
            != Some(0),
        "a number is never set by hand"
    );

    for r in [&a, &b, &a] {
        r.sync()?;
    }
    // Every replica lists the same cases with the same SLA, now and a week ahead.
    let week = iso_in(7 * 24 * 60);
    let mut seen = Vec::new();
    for r in [&a, &b] {
        let list = json(r, &["case", "list", "--json"])?;
        assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");
        let breached = json(r, &["case", "list", "--breached", "--at", &week, "--json"])?;
        assert_eq!(
            breached.as_array().map(Vec::len),
            Some(3),
            "none answered in a week"
        );
        let anas = json(r, &["case", "list", "--assignee", "ANA", "--json"])?;
        assert_eq!(anas.as_array().map(Vec::len), Some(2));
        seen.push(list);
    }
    let by_number = |l: &Value| {
        let mut v: Vec<(String, Value)> = l
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["number"].as_str().unwrap_or_default().to_string(),
                    c["sla"].clone(),
                )
            })
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    assert_eq!(by_number(&seen[0]), by_number(&seen[1]));
    assert!(seen[0][0]["sla"]["first_response_due"].is_string());

    // Ana, on branch b, is told of both cases given to her, one of them opened on branch a.
    let notes = json(&b, &["--as", "ANA", "notifications", "--json"])?;
    let assigned: Vec<&str> = notes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["kind"] == "assigned")
        .filter_map(|n| n["number"].as_str())
        .collect();
    assert_eq!(assigned.len(), 2, "{notes}");
    assert!(assigned.contains(&numbers[0]));
    // She reads one on branch b; once synced, branch a never shows it again.
    let first = notes[0]["id"].as_str().context("id")?.to_string();
    b.ok(&["--as", "ANA", "notifications", "read", &first])?;
    b.sync()?;
    a.sync()?;
    let on_a = json(&a, &["--as", "ANA", "notifications", "--json"])?;
    assert!(
        on_a.as_array()
            .into_iter()
            .flatten()
            .all(|n| n["id"] != first.as_str()),
        "{on_a}"
    );
    assert_eq!(on_a.as_array().map(Vec::len), Some(1));
    // Reassigning notifies the new assignee; the status change is an SLA event.
    let a2id = a2["id"].as_str().context("id")?;
    a.ok(&["case", "set", a2id, "assignee=ANA", "status=in_progress"])?;
    let now_ana = json(&a, &["--as", "ANA", "notifications", "--json"])?;
    assert_eq!(now_ana.as_array().map(Vec::len), Some(2), "{now_ana}");
    let list = json(&a, &["case", "list", "--status", "in_progress", "--json"])?;
    assert_eq!(list[0]["number"], numbers[1]);
    assert!(
        list[0]["sla"]["first_response_due"].is_null(),
        "answered: {}",
        list[0]
    );
    let _ = ana;

    // Invoices: the same scheme, a series per replica, numbered when issued.
    let issued = a.ok(&[
        "record",
        "add",
        "invoice",
        "--client",
        &client,
        "status=issued",
        "lines=Corte;1;25EUR;21",
    ])?;
    let draft = a.ok(&[
        "record",
        "add",
        "invoice",
        "--client",
        &client,
        "lines=Tinte;1;40EUR;21",
    ])?;
    let shown = json(&a, &["record", "show", &issued, "--json"])?;
    assert_eq!(
        (shown["series"].as_str(), shown["number"].as_str()),
        (Some(ca), Some("1"))
    );
    assert!(
        json(&a, &["record", "show", &draft, "--json"])?["number"].is_null(),
        "a draft has no number"
    );
    a.ok(&["record", "set", &draft, "status=issued"])?;
    assert_eq!(
        json(&a, &["record", "show", &draft, "--json"])?["number"],
        "2"
    );
    let on_b = b.ok(&[
        "record",
        "add",
        "invoice",
        "--client",
        &client,
        "status=issued",
        "lines=Corte;1;25EUR;21",
    ])?;
    let shown_b = json(&b, &["record", "show", &on_b, "--json"])?;
    assert_eq!(
        (shown_b["series"].as_str(), shown_b["number"].as_str()),
        (Some(cb), Some("1"))
    );
    Ok(())
}

#[test]
fn an_sla_plan_pauses_while_pending_and_the_office_sees_cases_at_risk() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "branch-a", &["acme"])?;
    let client = a.add_client("acme", "Clínica Sol")?;
    a.add_employee("acme", "Ana", "ANA")?;
    // Round the clock, so the test does not depend on when it runs.
    a.ok(&[
        "record",
        "add",
        "sla_plan",
        "--company",
        "acme",
        "name=24x7",
        "default=true",
        "hours=mon-sun 00:00-23:59",
        "timezone=UTC",
        "response_high_min=1000",
        "resolution_high_min=100",
    ])?;
    let c = open_case(&a, &client, "Caída", "high", "ANA")?;
    let id = c["id"].as_str().context("id")?;
    let risk = json(
        &a,
        &["case", "list", "--at-risk", "--at", &iso_in(85), "--json"],
    )?;
    assert_eq!(risk.as_array().map(Vec::len), Some(1), "{risk}");
    let due = risk[0]["sla"]["resolution_due"]
        .as_str()
        .context("due")?
        .to_string();
    let at_risk = json(
        &a,
        &[
            "--as",
            "ANA",
            "notifications",
            "--at",
            &iso_in(85),
            "--json",
        ],
    )?;
    assert!(
        at_risk
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["kind"] == "sla_at_risk")
    );
    // Pending on the customer: the clock stops, nothing is due.
    a.ok(&["case", "set", id, "status=pending"])?;
    let paused = json(&a, &["case", "list", "--at", &iso_in(300), "--json"])?;
    assert_eq!(paused[0]["sla"]["state"], "paused", "{paused}");
    assert!(paused[0]["sla"]["resolution_due"].is_null());
    // Back in progress: due later than before, never earlier.
    a.ok(&["case", "set", id, "status=in_progress"])?;
    let resumed = json(&a, &["case", "list", "--json"])?;
    let later = resumed[0]["sla"]["resolution_due"]
        .as_str()
        .context("due")?;
    assert!(later >= due.as_str(), "{later} < {due}");
    Ok(())
}

#[test]
fn cases_notifications_and_time_work_over_http_for_the_signed_in_employee() -> Result<()> {
    use ficha_e2e::Served;
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "branch-a", &["acme"])?;
    let client = a.add_client("acme", "Sol")?;
    let served = Served::start(&a)?;
    let (st, _) = served.post(
        "/api/employees",
        serde_json::json!({"company": "acme", "name": "Ana", "code": "ANA", "role": "staff", "password": "secreto-largo"}),
    )?;
    assert_eq!(st, 200);
    // Every missing field is named, in one refusal.
    let (st, err) = served.post(
        "/api/cases",
        serde_json::json!({"client": client, "title": "x"}),
    )?;
    assert_eq!(st, 400, "{err}");
    let msg = err["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("priority") && msg.contains("assignee"),
        "{err}"
    );
    let (st, made) = served.post(
        "/api/cases",
        serde_json::json!({"client": client, "title": "Caída", "category": "technical_problem",
            "status": "new", "priority": "critical", "description": "No arranca", "assignee": "ANA"}),
    )?;
    assert_eq!(st, 200, "{made}");
    assert!(
        made["number"].as_str().is_some_and(|n| n.ends_with("-1")),
        "{made}"
    );
    let listed = served.get("/api/cases?assignee=ANA")?;
    assert_eq!(listed[0]["number"], made["number"]);
    assert!(listed[0]["sla"]["resolution_due"].is_string());
    let (st, _) = served.post(
        &format!("/api/cases/{}", made["id"].as_str().context("id")?),
        serde_json::json!({"status": "in_progress"}),
    )?;
    assert_eq!(st, 200);
    let (st, entry) = served.post(
        &format!("/api/clients/{client}/time"),
        serde_json::json!({"text": "Visita", "employee": "ANA", "date": "2026-12-03", "minutes": 30}),
    )?;
    assert_eq!(st, 200, "{entry}");
    assert!(entry["project"].is_string() && entry["task"].is_string());
    assert_eq!(
        served.get(&format!("/api/time/report?of={client}"))?["total_minutes"],
        30
    );

    // Ana signs in and sees her notification; read, it is gone.
    let http = reqwest::blocking::Client::new();
    let signed = http
        .post(format!("{}/api/session", served.base))
        .json(&serde_json::json!({"employee": "ANA", "password": "secreto-largo"}))
        .send()?;
    let cookie = ficha_e2e::session_cookie(&signed).context("a session cookie")?;
    let mine = |all: bool| -> Result<Value> {
        Ok(http
            .get(format!("{}/api/notifications?all={all}", served.base))
            .header("cookie", &cookie)
            .send()?
            .json()?)
    };
    let unread = mine(false)?;
    assert_eq!(unread.as_array().map(Vec::len), Some(1), "{unread}");
    let id = unread[0]["id"].as_str().context("id")?;
    let read = http
        .post(format!("{}/api/notifications/{id}/read", served.base))
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .body("{}")
        .send()?;
    assert_eq!(read.status().as_u16(), 200);
    assert_eq!(mine(false)?.as_array().map(Vec::len), Some(0));
    assert_eq!(mine(true)?[0]["read"], true);
    Ok(())
}
