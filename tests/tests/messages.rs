//! Email through the real binaries and a real SMTP exchange on loopback: messages queued on a
//! branch that is offline are sent once by the company's sender after a sync; a sender killed
//! while the server holds its reply never sends that message again on its own (it is shown
//! failed, for a person to decide), and every other message goes exactly once.

use std::time::Duration;

use anyhow::{Context, Result};
use ficha_e2e::smtp::SmtpServer;
use ficha_e2e::{Relay, Replica, Served, eventually};
use serde_json::Value;

fn list(r: &Replica, client: &str) -> Result<Value> {
    Ok(serde_json::from_str(
        &r.ok(&["message", "list", client, "--json"])?,
    )?)
}

fn status_of(list: &Value, id: &str) -> String {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|m| m["id"] == id)
        .and_then(|m| m["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn times_received(smtp: &SmtpServer, id: &str) -> usize {
    smtp.received()
        .iter()
        .filter(|m| m.message_id == format!("<{id}@ficha>"))
        .count()
}

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn queued_offline_sent_once_by_the_sender_and_never_twice_across_its_crash() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let branch = relay.replica(&tmp.path().join("branch"), "branch-a", &["acme"])?;
    let office = relay.replica(&tmp.path().join("office"), "office", &["acme"])?;
    let client = branch.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Marta",
        "--email",
        "marta@example.com",
    ])?;
    branch.ok(&[
        "record",
        "add",
        "invoice",
        "--client",
        &client,
        "status=issued",
        "lines=Corte;1;25EUR;21",
    ])?;
    // Offline on the branch: three messages and the statement.
    let ids: Vec<String> = (1..=3)
        .map(|i| {
            branch.ok(&[
                "message",
                "send",
                &client,
                "--to",
                "marta@example.com",
                "--subject",
                &format!("Cita {i}"),
                "--body",
                "Le esperamos.",
            ])
        })
        .collect::<Result<_>>()?;
    let statement = branch.ok(&["client", "statement", &client, "--email"])?;
    assert_eq!(status_of(&list(&branch, &client)?, &ids[0]), "queued");
    branch.sync()?;
    office.sync()?;

    // The office sends; the server holds its reply to the first message, and the sender dies.
    let smtp = SmtpServer::start()?;
    smtp.hold_next_reply();
    let sender = Served::start_with(&office, &["--smtp", &smtp.url()])?;
    eventually(WAIT, || smtp.is_holding().then_some(()))
        .context("the first message reached the server")?;
    sender.kill9();
    let held = smtp.received()[0].message_id.clone();
    let held_id = held
        .trim_matches(['<', '>'])
        .trim_end_matches("@ficha")
        .to_string();

    // Started again: the interrupted one is not sent again; the others go once each.
    let sender = Served::start_with(&office, &["--smtp", &smtp.url()])?;
    let all: Vec<String> = ids.iter().cloned().chain([statement.clone()]).collect();
    eventually(WAIT, || (smtp.received().len() == 4).then_some(()))
        .context("every message sent")?;
    let api = |path: &str| sender.get(path);
    let shown = eventually(WAIT, || {
        let l = api(&format!("/api/clients/{client}/messages")).ok()?;
        let settled = all
            .iter()
            .all(|id| ["sent", "failed"].contains(&status_of(&l, id).as_str()));
        settled.then_some(l)
    })
    .context("every message settled")?;
    for id in &all {
        let expected = if *id == held_id { "failed" } else { "sent" };
        assert_eq!(status_of(&shown, id), expected, "{id}: {shown}");
        assert_eq!(times_received(&smtp, id), 1, "{id} received once");
    }
    let failed = shown
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["id"] == held_id.as_str())
        .cloned()
        .unwrap_or_default();
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("message retry")),
        "{failed}"
    );
    let sent = shown
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["status"] == "sent")
        .cloned()
        .unwrap_or_default();
    assert!(
        sent["reply"].as_str().is_some_and(|r| r.starts_with("250")),
        "{sent}"
    );
    assert!(
        smtp.received().iter().any(|m| m.subject.contains("Marta")),
        "the statement went"
    );

    // The branch sees the outcome; a person retries the interrupted one from there.
    eventually(WAIT, || {
        branch.sync().ok()?;
        (status_of(&list(&branch, &client).ok()?, &held_id) == "failed").then_some(())
    })
    .context("the branch sees the failure")?;
    branch.ok(&["message", "retry", &held_id])?;
    branch.sync()?;
    eventually(WAIT, || {
        (times_received(&smtp, &held_id) == 2).then_some(())
    })
    .context("sent again once retried")?;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.received().len(), 5, "nothing else went twice");
    let retried = branch.run(&["message", "retry", &ids[1]])?;
    assert!(
        !retried.status.success(),
        "a sent message is not sent again"
    );
    Ok(())
}

#[test]
fn a_refused_recipient_fails_with_the_reason_and_a_server_down_keeps_the_queue() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let office = relay.replica(&tmp.path().join("office"), "office", &["acme"])?;
    let client = office.add_client("acme", "Luis")?;
    let bad = office.ok(&[
        "message",
        "send",
        &client,
        "--to",
        "reject@example.com",
        "--subject",
        "Hola",
        "--body",
        "x",
    ])?;
    let good = office.ok(&[
        "message",
        "send",
        &client,
        "--to",
        "luis@example.com",
        "--subject",
        "Hola",
        "--body",
        "y",
    ])?;
    assert!(
        office
            .run(&[
                "message",
                "send",
                &client,
                "--to",
                "not an address",
                "--subject",
                "s",
                "--body",
                "b"
            ])?
            .status
            .code()
            != Some(0)
    );
    // Nothing listens on the port yet: the queue waits.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let sender = Served::start_with(&office, &["--smtp", &format!("smtp://127.0.0.1:{port}")])?;
    std::thread::sleep(Duration::from_secs(3));
    let waiting = sender.get(&format!("/api/clients/{client}/messages"))?;
    assert_eq!(status_of(&waiting, &good), "queued", "{waiting}");
    let smtp = SmtpServer::start_on(port)?;
    let done = eventually(WAIT, || {
        let l = sender
            .get(&format!("/api/clients/{client}/messages"))
            .ok()?;
        (status_of(&l, &good) == "sent" && status_of(&l, &bad) == "failed").then_some(l)
    })
    .context("both settled")?;
    let refused = done
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["id"] == bad.as_str())
        .cloned()
        .unwrap_or_default();
    assert!(
        refused["error"].as_str().is_some_and(|e| e.contains("550")),
        "{refused}"
    );
    assert_eq!(times_received(&smtp, &good), 1);
    assert_eq!(times_received(&smtp, &bad), 0);
    // Over HTTP too: queue one, it goes.
    let (st, made) = sender.post(
        &format!("/api/clients/{client}/messages"),
        serde_json::json!({"to": "luis@example.com", "subject": "API", "body": "z"}),
    )?;
    assert_eq!(st, 200, "{made}");
    let id = made["id"].as_str().context("id")?.to_string();
    eventually(WAIT, || (times_received(&smtp, &id) == 1).then_some(())).context("sent")?;
    Ok(())
}
