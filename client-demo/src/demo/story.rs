//! `ficha demo` without flags: the two-branch offline story, narrated step by step and checked.

use std::time::Duration;

use anyhow::{Result, bail, ensure};

use super::{step, sync};
use crate::app::Replica;
use crate::sync::sync_once;

/// Runs the story; fails unless both replicas converge.
pub async fn run() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay_dir = tmp.path().join("relay");
    step("Starting a relay and issuing one token per branch");
    let relay = ficha_relay::spawn(&relay_dir, "127.0.0.1:0".parse()?).await?;
    let addr = relay.addr;
    println!(
        "   relay listening on {addr}, data in {}",
        relay_dir.display()
    );
    let mut replicas = Vec::new();
    for name in ["branch-madrid", "branch-sevilla"] {
        let token = ficha_relay::issue_token(&relay_dir, name, &["clinica-sol".into()], false, 30)?;
        let dir = tmp.path().join(name);
        let id = Replica::init(&dir, name, &relay.url(), &token)?;
        println!("   {name}: replica {} in {}", id.replica, dir.display());
        replicas.push((name, Replica::open(&dir)?));
    }
    let (a_name, a) = &replicas[0];
    let (b_name, b) = &replicas[1];

    step(&format!(
        "{a_name} creates a client and syncs; {b_name} syncs and sees it"
    ));
    let id = a.add_client(
        "clinica-sol",
        "Lucía Fernández",
        Some("lucia@example.com"),
        Some("+34 600 111 222"),
    )?;
    println!("   created client {id}");
    sync(a_name, a).await?;
    sync(b_name, b).await?;
    println!("   {b_name} sees: {}", b.show(id)?["name"]);

    step("The relay goes down: both branches keep working on the same client");
    relay.stop().await;
    a.add_note(id, "Prefers appointments in the morning")?;
    a.add_comment(
        id,
        "Asked for the invoice by email",
        false,
        true,
        "high",
        &[],
    )?;
    a.add_alert(id, "allergy", "critical", "Latex allergy")?;
    a.set_field(id, "phone", "+34 600 999 001")?;
    println!("   {a_name}: note, pinned comment, latex alert, phone +34 600 999 001");
    b.add_note(id, "Referred by Dr. Ruiz")?;
    b.add_comment(id, "Private: pending payment", true, false, "normal", &[])?;
    b.add_alert(id, "payment", "high", "Pending balance of 40 EUR")?;
    b.set_field(id, "phone", "+34 600 999 002")?;
    println!("   {b_name}: note, private comment, payment alert, phone +34 600 999 002");
    match sync_once(a.store().clone(), Duration::from_secs(3)).await {
        Err(e) => println!(
            "   {a_name} tries to sync: {e} (edits stay safe in its outbox: {} pending)",
            a.pending_upload()?
        ),
        Ok(()) => bail!("sync succeeded with the relay down"),
    }

    step("The relay comes back; both branches sync");
    let relay = ficha_relay::spawn(&relay_dir, addr).await?;
    sync(a_name, a).await?;
    sync(b_name, b).await?;
    sync(a_name, a).await?;

    step("The merged client on both branches");
    let (va, vb) = (a.show(id)?, b.show(id)?);
    println!("{}", serde_json::to_string_pretty(&va)?);
    relay.stop().await;
    ensure!(va == vb, "the replicas did not converge");
    let count = |k: &str| va[k].as_array().map_or(0, Vec::len);
    ensure!(
        count("notes") == 2 && count("comments") == 2 && count("alerts") == 2,
        "an item was lost in the merge"
    );
    println!(
        "\nConverged: identical client and heads on both branches; phone {} won, {} kept under conflicts.",
        va["phone"], va["conflicts"]["phone"]
    );
    Ok(())
}
