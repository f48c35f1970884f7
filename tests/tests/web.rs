//! The web app in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`tests/browser/web.mjs`), against two real `ficha serve` replicas and a relay.
//!
//! CI installs Chromium and the pinned npm packages (`.ci/run`); run locally without them,
//! this test says what is missing and passes, unless CI=true, where it fails.

use std::process::Command;

use anyhow::{Context, Result};
use ficha_e2e::{Relay, Served};
use serde_json::json;

#[test]
fn staff_use_the_web_app_offline_and_see_other_branches_edits_live() -> Result<()> {
    let Some((browser, here)) = ficha_e2e::browser()? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "branch-a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "branch-b", &["acme"])?;
    let (sa, sb) = (Served::start(&a)?, Served::start(&b)?);
    let (status, hired) = sa.post(
        "/api/employees",
        json!({"company": "acme", "name": "Lucía Recepción", "code": "L1", "role": "staff", "password": "clave-larga-1"}),
    )?;
    anyhow::ensure!(status == 200, "employee: {hired}");
    let (status, cat) = sa.post(
        "/api/records",
        json!({"kind": "case_category", "company": "acme", "name": "Problema técnico"}),
    )?;
    anyhow::ensure!(status == 200, "category: {cat}");
    // Kept after the run (target/tmp/screenshots) so a person can look.
    let out_dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&out_dir)?;
    let run = Command::new("node")
        .arg(here.join("web.mjs"))
        .env("CHROMIUM", &browser)
        .env("A_URL", &sa.base)
        .env("A_PID", sa.pid().to_string())
        .env("B_URL", &sb.base)
        .env(
            "B_LINK",
            sb.sign_in_link().context("B printed a sign-in link")?,
        )
        .env(
            "RELAY_ADMIN",
            format!("http://127.0.0.1:{}/admin", relay.port),
        )
        .env("ADMIN_KEY", ficha_e2e::admin_key(&relay.data)?)
        .env("BACKUP", tmp.path().join("relay-backup.redb"))
        .env("EMPLOYEE", "L1")
        .env("PASSWORD", "clave-larga-1")
        .env("SHOTS", &out_dir)
        .env("PROFILE", tmp.path().join("chromium-profile"))
        .output()
        .context("run node")?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stdout}\n{stderr}\nscreenshots in {}", out_dir.display());
    anyhow::ensure!(run.status.success(), "the browser run failed");
    // What the browser did reached both replicas' stores, not only their pages.
    let client = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client "))
        .context("the script names the client it made")?
        .trim()
        .to_string();
    // The token the admin page issued is a real one: a replica can start with it.
    let issued = stdout
        .lines()
        .find_map(|l| l.strip_prefix("admin token "))
        .context("the script prints the token the admin page issued")?
        .trim();
    let claims = ficha_core::token::peek(issued).context("the admin page's token decodes")?;
    anyhow::ensure!(
        claims.replica == "portatil-consultor"
            && claims.companies.iter().any(|c| c.as_str() == "acme"),
        "the token is for what the page asked: {claims:?}"
    );
    anyhow::ensure!(
        tmp.path().join("relay-backup.redb").exists(),
        "the admin page's backup was written"
    );
    let on_b = sb.get(&format!("/api/clients/{client}"))?;
    let notes = ficha_e2e::note_texts(&on_b);
    anyhow::ensure!(
        notes.contains("Nota escrita sin conexión"),
        "the note typed offline on A is on B: {notes:?}"
    );
    Ok(())
}
