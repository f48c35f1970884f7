//! Quick time entry through the real binaries: two laptops record time offline for the same
//! client; once synced through the relay there is one project (coded as the client) and one
//! task, both entries survive, and the task's next action is the latest entry's.

use anyhow::{Context, Result};
use ficha_e2e::{Relay, Replica};
use serde_json::Value;

fn json(r: &Replica, args: &[&str]) -> Result<Value> {
    let out = r.ok(args)?;
    serde_json::from_str(&out).with_context(|| format!("{args:?} printed {out:?}"))
}

fn ids(r: &Replica, kind: &str, client: &str) -> Result<Vec<String>> {
    let list = json(r, &["record", "list", kind, "--client", client, "--json"])?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["id"].as_str().map(String::from))
        .collect())
}

#[test]
fn two_laptops_offline_end_with_one_project_and_one_task_and_every_entry() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "laptop-a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "laptop-b", &["acme"])?;
    let hq = relay.replica(&tmp.path().join("hq"), "central", &["acme"])?;
    let client = a.add_client("acme", "Talleres Ruiz")?;
    a.ok(&["client", "set", &client, "code", "TRZ"])?;
    a.add_employee("acme", "Ana", "ANA")?;
    a.add_employee("acme", "Luis", "LUIS")?;
    for r in [&a, &b, &hq] {
        r.sync()?;
    }
    // Offline on both laptops: the client has no project yet.
    let ea = json(
        &a,
        &[
            "time",
            "add",
            "--client",
            &client,
            "--text",
            "Instalación",
            "--employee",
            "ANA",
            "--date",
            "2026-12-01",
            "--minutes",
            "90",
            "--next-action",
            "2026-12-10",
        ],
    )?;
    std::thread::sleep(std::time::Duration::from_millis(20));
    let eb = json(
        &b,
        &[
            "time",
            "add",
            "--client",
            &client,
            "--text",
            "Formación",
            "--employee",
            "LUIS",
            "--date",
            "2026-12-02",
            "--minutes",
            "45",
            "--next-action",
            "2026-12-12",
        ],
    )?;
    assert_eq!(
        ea["project"], eb["project"],
        "the same project, derived offline"
    );
    assert_eq!(ea["task"], eb["task"]);
    assert_ne!(ea["entry"], eb["entry"]);
    // A second entry on laptop a reuses its project and task.
    let ea2 = json(
        &a,
        &[
            "time",
            "add",
            "--client",
            &client,
            "--text",
            "Llamada",
            "--employee",
            "ANA",
            "--date",
            "2026-12-01",
            "--minutes",
            "10",
        ],
    )?;
    assert_eq!(
        (&ea2["project"], &ea2["task"]),
        (&ea["project"], &ea["task"])
    );

    for r in [&a, &b, &hq, &a, &b] {
        r.sync()?;
    }
    for r in [&a, &b, &hq] {
        assert_eq!(ids(r, "project", &client)?.len(), 1, "one project");
        assert_eq!(ids(r, "task", &client)?.len(), 1, "one task");
        assert_eq!(ids(r, "time_entry", &client)?.len(), 3, "every entry");
        let project = json(
            r,
            &[
                "record",
                "show",
                ea["project"].as_str().context("p")?,
                "--json",
            ],
        )?;
        assert_eq!(project["code"], "TRZ", "coded as the client: {project}");
        assert_eq!(project["status"], "active");
        assert_eq!(project["conflicts"], serde_json::json!({}), "{project}");
        let task = json(
            r,
            &[
                "record",
                "show",
                ea["task"].as_str().context("t")?,
                "--json",
            ],
        )?;
        assert_eq!(
            task["next_action"], "2026-12-12",
            "the latest entry's: {task}"
        );
        let report = json(r, &["time", "report", "--of", &client, "--json"])?;
        assert_eq!(report["total_minutes"], 145);
        let status = json(r, &["status", "--json"])?;
        assert_eq!(
            status["refused"],
            serde_json::json!([]),
            "nothing refused: {status}"
        );
        assert_eq!(status["pending_upload"], 0, "{status}");
    }
    // Per employee.
    let ana = json(&hq, &["time", "report", "--of", "ANA", "--json"])?;
    assert_eq!(ana["total_minutes"], 100);
    // The task done, the next entry opens a new task in the same project.
    hq.ok(&[
        "record",
        "set",
        ea["task"].as_str().context("t")?,
        "status=done",
    ])?;
    let next = json(
        &hq,
        &[
            "time",
            "add",
            "--client",
            &client,
            "--text",
            "Revisión",
            "--employee",
            "ANA",
            "--date",
            "2026-12-05",
        ],
    )?;
    assert_eq!(next["project"], ea["project"]);
    assert_ne!(next["task"], ea["task"]);
    Ok(())
}

#[test]
fn several_active_projects_without_the_clients_code_are_a_question() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "laptop-a", &["acme"])?;
    let client = a.add_client("acme", "Sol")?;
    a.ok(&["client", "set", &client, "code", "SOL"])?;
    a.add_employee("acme", "Ana", "ANA")?;
    let p1 = a.ok(&[
        "record",
        "add",
        "project",
        "--client",
        &client,
        "name=Web",
        "status=active",
    ])?;
    a.ok(&[
        "record",
        "add",
        "project",
        "--client",
        &client,
        "name=App",
        "status=active",
    ])?;
    let asked = a.run(&[
        "time",
        "add",
        "--client",
        &client,
        "--text",
        "x",
        "--employee",
        "ANA",
        "--date",
        "2026-12-01",
    ])?;
    assert!(!asked.status.success());
    let err = String::from_utf8_lossy(&asked.stderr);
    assert!(err.contains(&p1) && err.contains("--project"), "{err}");
    let chosen = json(
        &a,
        &[
            "time",
            "add",
            "--client",
            &client,
            "--text",
            "x",
            "--employee",
            "ANA",
            "--date",
            "2026-12-01",
            "--project",
            &p1,
        ],
    )?;
    assert_eq!(chosen["project"], p1.as_str());
    // One of them coded as the client: that one, without asking.
    a.ok(&["record", "set", &p1, "code=SOL"])?;
    let coded = json(
        &a,
        &[
            "time",
            "add",
            "--client",
            &client,
            "--text",
            "y",
            "--employee",
            "ANA",
            "--date",
            "2026-12-02",
        ],
    )?;
    assert_eq!(coded["project"], p1.as_str());
    Ok(())
}
