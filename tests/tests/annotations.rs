//! Notes, comments and alerts after they are added, through the real CLI: a note's category
//! and keywords, pinning and deactivation, a comment about one of the client's appointments
//! (and never another client's), an alert switched off; bad keys change nothing.

use anyhow::{Context, Result};
use ficha_e2e::Relay;
use serde_json::Value;

fn item<'a>(client: &'a Value, collection: &str, id: &str) -> Result<&'a Value> {
    client[collection]
        .as_array()
        .context("collection")?
        .iter()
        .find(|n| n["id"] == id)
        .context("item")
}

#[test]
fn annotations_are_edited_pinned_deactivated_and_linked_to_the_clients_appointments() -> Result<()>
{
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let r = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let ana = r.ok(&["client", "add", "--company", "acme", "--name", "Ana"])?;
    let eva = r.ok(&["client", "add", "--company", "acme", "--name", "Eva"])?;
    let note = r.ok(&[
        "note",
        "add",
        &ana,
        "--text",
        "Prefiere mañanas",
        "--category",
        "preferencias",
        "--keywords",
        "horario,vip",
    ])?;
    r.ok(&[
        "note",
        "set",
        &ana,
        &note,
        "pinned=true",
        "text=Prefiere mañanas, antes de las 10",
    ])?;
    let shown = r.show(&ana)?;
    let n = item(&shown, "notes", &note)?;
    assert_eq!(n["category"], "preferencias");
    assert_eq!(n["keywords"], serde_json::json!(["horario", "vip"]));
    assert_eq!(n["pinned"], true);
    assert_eq!(n["text"], "Prefiere mañanas, antes de las 10");
    r.ok(&["note", "set", &ana, &note, "active=false"])?;
    assert_eq!(item(&r.show(&ana)?, "notes", &note)?["active"], false);

    let own = r.ok(&[
        "record",
        "add",
        "appointment",
        "--client",
        &ana,
        "start=2026-12-10T10:00:00Z",
    ])?;
    let other = r.ok(&[
        "record",
        "add",
        "appointment",
        "--client",
        &eva,
        "start=2026-12-11T10:00:00Z",
    ])?;
    let comment = r.ok(&[
        "comment",
        "add",
        &ana,
        "--text",
        "Llegó tarde",
        "--appointment",
        &own,
    ])?;
    assert_eq!(
        item(&r.show(&ana)?, "comments", &comment)?["appointment"],
        own.as_str()
    );
    let refused = r.run(&[
        "comment",
        "add",
        &ana,
        "--text",
        "x",
        "--appointment",
        &other,
    ])?;
    assert!(!refused.status.success(), "another client's appointment");

    let alert = r.ok(&[
        "alert",
        "add",
        &ana,
        "--type",
        "allergy",
        "--priority",
        "high",
        "--description",
        "Látex",
    ])?;
    r.ok(&[
        "alert",
        "set",
        &ana,
        &alert,
        "active=false",
        "priority=critical",
    ])?;
    let a = r.show(&ana)?;
    let al = item(&a, "alerts", &alert)?;
    assert_eq!(
        (al["active"].clone(), al["priority"].clone()),
        (false.into(), "critical".into())
    );

    let before = r.show(&ana)?["heads"].clone();
    for bad in [
        vec!["pinned=maybe"],
        vec!["colour=red"],
        vec!["text=ok", "active=perhaps"],
    ] {
        let mut args = vec!["note", "set", ana.as_str(), note.as_str()];
        args.extend(bad);
        assert!(!r.run(&args)?.status.success());
    }
    assert_eq!(
        r.show(&ana)?["heads"],
        before,
        "refused edits changed nothing"
    );
    Ok(())
}
