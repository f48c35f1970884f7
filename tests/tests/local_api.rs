//! The local API belongs to the person at the machine: a page on another site can neither read
//! it (DNS rebinding) nor write to it (cross-site forms), every error is JSON with the status
//! its kind deserves, and no route creates a file without its bytes.

use anyhow::Result;
use ficha_e2e::{Relay, Served};
use reqwest::blocking::Client;
use serde_json::{Value, json};

struct Api {
    served: Served,
    port: u16,
    http: Client,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.base)
    }

    /// A request that names the server as a browser on it would.
    fn ours(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("host", format!("127.0.0.1:{}", self.port))
            .bearer_auth(&self.served.key)
    }
}

fn start(dir: &std::path::Path) -> Result<(Relay, Api)> {
    let relay = Relay::start(&dir.join("relay"), 0)?;
    let replica = relay.replica(&dir.join("a"), "a", &["acme"])?;
    let served = Served::start(&replica)?;
    let port: u16 = served.base.rsplit(':').next().unwrap_or("0").parse()?;
    Ok((
        relay,
        Api {
            served,
            port,
            http: Client::new(),
        },
    ))
}

fn error_of(r: reqwest::blocking::Response) -> Result<(u16, String)> {
    let status = r.status().as_u16();
    let body: Value = r.json()?;
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error key in {body}"))
        .to_string();
    Ok((status, error))
}

#[test]
fn another_site_can_neither_read_nor_write() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (_relay, api) = start(tmp.path())?;
    let count = |api: &Api| -> Result<usize> {
        let list: Value = api
            .ours(reqwest::Method::GET, "/api/clients")
            .send()?
            .json()?;
        Ok(list.as_array().map_or(0, Vec::len))
    };
    // DNS rebinding: the page's own name, resolved to loopback.
    let rebound = api
        .http
        .get(api.url("/api/clients"))
        .header("host", format!("evil.example:{}", api.port))
        .send()?;
    let (status, error) = error_of(rebound)?;
    assert_eq!(status, 421, "{error}");
    // A cross-site form: text/plain needs no preflight, so it must be refused.
    let form = api
        .ours(reqwest::Method::POST, "/api/clients")
        .header("content-type", "text/plain")
        .body(r#"{"company":"acme","name":"Forged"}"#)
        .send()?;
    assert_eq!(error_of(form)?.0, 415);
    // A JSON write naming another site's origin.
    let cross = api
        .ours(reqwest::Method::POST, "/api/clients")
        .header("origin", "http://evil.example")
        .json(&json!({"company": "acme", "name": "Forged"}))
        .send()?;
    assert_eq!(error_of(cross)?.0, 403);
    assert_eq!(count(&api)?, 0, "nothing was created");
    // The page itself, and a script without an Origin, may.
    let own = api
        .ours(reqwest::Method::POST, "/api/clients")
        .header("origin", format!("http://localhost:{}", api.port))
        .json(&json!({"company": "acme", "name": "Ana"}))
        .send()?;
    assert_eq!(own.status().as_u16(), 200);
    assert_eq!(count(&api)?, 1);
    Ok(())
}

#[test]
fn errors_are_json_with_the_status_of_their_kind_and_files_come_with_bytes() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (_relay, api) = start(tmp.path())?;
    let created: Value = api
        .ours(reqwest::Method::POST, "/api/clients")
        .json(&json!({"company": "acme", "name": "Ana", "email": "ana@example.com"}))
        .send()?
        .json()?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let post = |path: &str, body: Value| api.ours(reqwest::Method::POST, path).json(&body).send();
    // Unknown route, unknown client, unknown item: 404.
    assert_eq!(
        error_of(api.ours(reqwest::Method::GET, "/api/nothing").send()?)?.0,
        404
    );
    let missing = "00000000-0000-0000-0000-0000000000aa";
    assert_eq!(
        error_of(
            api.ours(reqwest::Method::GET, &format!("/api/clients/{missing}"))
                .send()?
        )?
        .0,
        404
    );
    let item = format!("/api/clients/{id}/items/allergies/{missing}");
    assert_eq!(error_of(post(&item, json!({"active": "false"}))?)?.0, 404);
    // A body that is not what the route reads: 4xx, as JSON.
    let bad = api
        .ours(reqwest::Method::POST, &format!("/api/clients/{id}/notes"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()?;
    let (status, _) = error_of(bad)?;
    assert!((400..500).contains(&status), "{status}");
    // Too long a field: 400 with the numbers.
    let long = post(
        &format!("/api/clients/{id}/fields"),
        json!({"field": "phone", "value": "6".repeat(8192)}),
    )?;
    let (status, error) = error_of(long)?;
    assert_eq!(status, 400);
    assert!(error.contains("8192"), "{error}");
    // A file reference without its bytes is refused; a file with its bytes needs the header.
    let forged = post(
        &format!("/api/clients/{id}/items/files"),
        json!({"hash": "00".repeat(32), "name": "x.pdf"}),
    )?;
    assert_eq!(error_of(forged)?.0, 400);
    let bare = api
        .ours(
            reqwest::Method::POST,
            &format!("/api/clients/{id}/files?name=a.txt"),
        )
        .body("hello")
        .send()?;
    assert_eq!(error_of(bare)?.0, 415);
    let with_bytes = api
        .ours(
            reqwest::Method::POST,
            &format!("/api/clients/{id}/files?name=a.txt"),
        )
        .header("x-ficha-request", "1")
        .body("hello")
        .send()?;
    assert_eq!(with_bytes.status().as_u16(), 200);
    let client: Value = api
        .ours(reqwest::Method::GET, &format!("/api/clients/{id}"))
        .send()?
        .json()?;
    assert_eq!(client["files"].as_array().map_or(0, Vec::len), 1);
    // An ISO date beside every timestamp.
    assert!(
        client["created_at_iso"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z'))
    );
    // A bulk action without a selection needs "all".
    let all = post("/api/clients/bulk", json!({"action": "archive"}))?;
    let (status, error) = error_of(all)?;
    assert_eq!(status, 400);
    assert!(error.contains("all"), "{error}");
    // The status names what a person must know.
    let status: Value = api
        .ours(reqwest::Method::GET, "/api/status")
        .send()?
        .json()?;
    for key in ["quarantined", "refused", "last_sync_at", "relay", "sync"] {
        assert!(status.get(key).is_some(), "{key} in {status}");
    }
    Ok(())
}

#[test]
fn the_page_shows_times_in_the_time_zone_serve_was_given() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let replica = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let wrong = std::process::Command::new(ficha_e2e::bin("ficha"))
        .arg("--data")
        .arg(&replica.data)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--time-zone",
            "Mars/Olympus",
        ])
        .output()?;
    assert!(!wrong.status.success(), "an unknown zone is refused");
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("Europe/Madrid"),
        "and the error says what to give: {said}"
    );
    let canary = Served::start_with(&replica, &["--time-zone", "Atlantic/Canary"])?;
    assert_eq!(canary.get("/api/status")?["time_zone"], "Atlantic/Canary");
    drop(canary);
    let plain = Served::start(&replica)?;
    assert!(
        plain.get("/api/status")?["time_zone"].is_null(),
        "by default, the browser's"
    );
    Ok(())
}
