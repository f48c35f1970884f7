//! `ficha demo --script` and `ficha demo --web`, through the real binary: the scripted day
//! keeps every rule a merge alone cannot (checked again afterwards with the CLI on the replicas
//! it left), and the web demo serves four signed-in pages over one relay, its offline switch cuts
//! a replica's link and reconnecting merges, and its data reopens.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::blocking::Client;
use serde_json::{Value, json};

use ficha_e2e::{Replica, bin, eventually};

fn at(dir: &Path, place: &str) -> Replica {
    Replica {
        data: dir.join(place),
        env: Vec::new(),
    }
}

fn clients(r: &Replica) -> Result<Vec<Value>> {
    let v: Value = serde_json::from_str(&r.ok(&["client", "list", "--json"])?)?;
    v.as_array().cloned().context("a client list")
}

#[test]
fn the_scripted_day_keeps_every_rule_and_leaves_converged_replicas() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("day");
    let out = Command::new(bin("ficha"))
        .args(["demo", "--script", "--dir"])
        .arg(&dir)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the scripted day failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for fact in [
        "duplicate found: Rosa Medina Ortiz twice",
        "overdraft shown on every replica",
        "apart by construction",
        "projects: one",
        "reactivation of",
        "Converged",
    ] {
        assert!(
            stdout.contains(fact),
            "the day did not say {fact:?}:\n{stdout}"
        );
    }
    let numbers = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("case numbers: "))
        .context("the case numbers")?;
    let (a, b) = numbers.split_once(" and ").context("two case numbers")?;
    let b = b.split(',').next().unwrap_or(b);
    assert_ne!(a, b, "two cases opened offline got one number");

    // The replicas the day left, read with the CLI: the office holds both companies' clients,
    // each branch its own, and the double spend is an overdraft everywhere the wallet is.
    let office = clients(&at(&dir, "oficina-central"))?;
    let madrid = clients(&at(&dir, "sucursal-madrid"))?;
    let laptop = clients(&at(&dir, "portatil-consultora"))?;
    let sevilla = clients(&at(&dir, "sucursal-sevilla"))?;
    let ids = |v: &[Value]| {
        let mut ids: Vec<String> = v.iter().map(|c| c["id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&madrid), ids(&laptop));
    assert_eq!(office.len(), madrid.len() + sevilla.len());
    let rosas = office
        .iter()
        .filter(|c| c["name"] == "Rosa Medina Ortiz" && c["state"] == "active")
        .count();
    assert_eq!(
        rosas, 1,
        "the two Rosas were not merged into one active client"
    );
    let lucia = madrid
        .iter()
        .find(|c| c["name"] == "Lucía Fernández Gómez")
        .context("the day's first client")?["id"]
        .as_str()
        .context("an id")?
        .to_string();
    for place in ["sucursal-madrid", "portatil-consultora", "oficina-central"] {
        let w: Value =
            serde_json::from_str(&at(&dir, place).ok(&["wallet", "show", &lucia, "--json"])?)?;
        assert_eq!(w["overdraft"], true, "{place}: {w}");
        assert_eq!(w["balance"], -2500, "{place}: {w}");
    }
    Ok(())
}

/// `ficha demo --web` running, with what it printed.
struct WebDemo {
    child: Child,
    lines: Vec<String>,
}

impl WebDemo {
    fn start(dir: &Path) -> Result<Self> {
        let mut child = Command::new(bin("ficha"))
            .args(["demo", "--web", "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(l) if l.contains("Ready; Ctrl-C to stop") => break,
                Ok(l) => lines.push(l),
                Err(_) => bail!("the web demo never said it was ready: {lines:?}"),
            }
        }
        Ok(Self { child, lines })
    }

    /// The URL printed after `label`, in the block that starts with the line that `place`
    /// names.
    fn url_of(&self, place: &str, label: &str) -> Result<String> {
        self.lines
            .iter()
            .skip_while(|l| !l.contains(place))
            .take_while(|l| !l.trim().is_empty())
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .with_context(|| format!("no {label} for {place:?} in {:?}", self.lines))
    }

    /// The page URL printed for `place`.
    fn url(&self, place: &str) -> Result<String> {
        self.url_of(place, &format!("{place}:"))
    }

    /// Stops it as Ctrl-C does; returns whether it exited cleanly.
    fn interrupt(mut self) -> Result<bool> {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()?;
        Ok(self.child.wait()?.success())
    }
}

impl Drop for WebDemo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed-in page's calls: its session cookie only.
struct Page {
    base: String,
    cookie: String,
}

impl Page {
    fn sign_in(base: &str, employee: &str) -> Result<Self> {
        let r = Client::new()
            .post(format!("{base}/api/session"))
            .json(&json!({"employee": employee, "password": "ficha-demo"}))
            .send()?;
        anyhow::ensure!(
            r.status().is_success(),
            "{employee} could not sign in on {base}"
        );
        let cookie = ficha_e2e::session_cookie(&r).context("a session cookie")?;
        Ok(Self {
            base: base.to_string(),
            cookie,
        })
    }

    /// Opens the one-time sign-in link the demo printed, as a browser would.
    fn one_time(link: &str) -> Result<Self> {
        let r = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?
            .get(link)
            .send()?;
        let cookie = ficha_e2e::session_cookie(&r).context("the one-time link gave no session")?;
        let base = link.split("/?token=").next().unwrap_or(link).to_string();
        Ok(Self { base, cookie })
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = Client::new()
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send()?;
        anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
        Ok(r.json()?)
    }

    fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body))
    }
}

fn notes(page: &Page, client: &str) -> Result<Vec<String>> {
    let file = page.get(&format!("/api/clients/{client}"))?;
    Ok(file["notes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|n| n["text"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

#[test]
fn the_web_demo_serves_four_pages_whose_offline_switch_cuts_and_merges() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("demo");
    let demo = WebDemo::start(&dir)?;
    let madrid = Page::sign_in(&demo.url("sucursal-madrid")?, "ana")?;
    let laptop = Page::sign_in(&demo.url("portatil-consultora")?, "carmen")?;
    let office = Page::sign_in(&demo.url("oficina-central")?, "luis")?;
    let whole = Page::one_time(&demo.url_of(
        "oficina-central",
        "todo lo que guarda, una vez / everything it holds, once:",
    )?)?;
    let sevilla = Page::sign_in(&demo.url("sucursal-sevilla")?, "rocio")?;

    // Sample data of both companies, already on every replica that holds them.
    let metrics = |p: &Page| -> Result<u64> {
        p.get("/api/metrics")?["total_clients"]
            .as_u64()
            .context("total_clients")
    };
    assert_eq!(metrics(&madrid)?, 60);
    assert_eq!(metrics(&laptop)?, 60);
    assert_eq!(metrics(&sevilla)?, 60);
    // An employee sees their own company; the office's replica itself, the whole group.
    assert_eq!(metrics(&office)?, 60);
    assert_eq!(metrics(&whole)?, 120);
    assert_eq!(
        madrid.get("/api/status")?["time_zone"],
        "Europe/Madrid",
        "the pages show times as the group in Spain reads them"
    );
    let list = madrid.get("/api/clients?limit=200")?;
    let first = list
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "Lucía Fernández Gómez"))
        .context("the first sample client")?;
    let id = first["id"].as_str().context("an id")?.to_string();
    assert!(first["sales_total"]["EUR"].as_i64().unwrap_or(0) > 0);

    // The madrid page goes offline: its note stays there until it is back online.
    madrid.post("/api/sync", json!({"online": false}))?;
    madrid.post(
        &format!("/api/clients/{id}/notes"),
        json!({"text": "Nota escrita sin conexión"}),
    )?;
    laptop.post(
        &format!("/api/clients/{id}/notes"),
        json!({"text": "Nota del portátil"}),
    )?;
    // Long enough for a connected replica to receive it many times over (~0.1 s).
    std::thread::sleep(Duration::from_secs(3));
    let cut = notes(&madrid, &id)?;
    assert!(
        !cut.contains(&"Nota del portátil".to_string()),
        "an offline page received an edit: {cut:?}"
    );
    madrid.post("/api/sync", json!({"online": true}))?;
    for page in [&madrid, &laptop] {
        eventually(Duration::from_secs(30), || {
            let n = notes(page, &id).ok()?;
            (n.contains(&"Nota escrita sin conexión".to_string())
                && n.contains(&"Nota del portátil".to_string()))
            .then_some(())
        })
        .context("the two notes did not merge on both pages")?;
    }

    // The relay's admin page sees the four replicas, with the key the demo printed.
    let relay = demo.url_of("Relay:", "administración / admin page:")?;
    let key = demo
        .lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("clave / key:"))
        .context("the admin key")?
        .trim()
        .to_string();
    let overview = Client::new()
        .get(format!("{relay}/api/overview"))
        .bearer_auth(&key)
        .send()?
        .text()?;
    for place in [
        "sucursal-madrid",
        "sucursal-sevilla",
        "portatil-consultora",
        "oficina-central",
    ] {
        assert!(overview.contains(place), "{place} not in {overview}");
    }

    assert!(demo.interrupt()?, "the web demo did not stop cleanly");
    // Run again on the same directory: it reopens, with the merged notes.
    let again = WebDemo::start(&dir)?;
    assert!(again.lines.iter().any(|l| l.contains("Reopening the demo")));
    let madrid = Page::sign_in(&again.url("sucursal-madrid")?, "carmen")?;
    let n = notes(&madrid, &id)?;
    assert!(
        n.contains(&"Nota escrita sin conexión".to_string()),
        "{n:?}"
    );
    assert!(again.interrupt()?);
    Ok(())
}

#[test]
fn a_visitor_signs_in_to_the_web_demo_in_a_real_browser() -> Result<()> {
    let Some((browser, here)) = ficha_e2e::browser()? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let demo = WebDemo::start(&tmp.path().join("demo"))?;
    let out_dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&out_dir)?;
    let run = Command::new("node")
        .arg(here.join("demo.mjs"))
        .env("CHROMIUM", &browser)
        .env("MADRID_URL", demo.url("sucursal-madrid")?)
        .env(
            "OFFICE_LINK",
            demo.url_of(
                "oficina-central",
                "todo lo que guarda, una vez / everything it holds, once:",
            )?,
        )
        .env("SHOTS", &out_dir)
        .env("PROFILE", tmp.path().join("chromium-profile"))
        .output()
        .context("run node")?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!(
        "{stdout}\n{}\nscreenshots in {}",
        String::from_utf8_lossy(&run.stderr),
        out_dir.display()
    );
    anyhow::ensure!(
        run.status.success() && stdout.contains("demo ok"),
        "the browser run failed"
    );
    assert!(demo.interrupt()?);
    Ok(())
}
