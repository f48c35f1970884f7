//! Who may use the local API and what each role may do, through the real `ficha serve`: no
//! key, no entry; a wrong password is refused; viewers read, staff edit, admins also purge,
//! merge and run bulk actions; every action's log entry names the employee and the replica,
//! from the API and from `ficha --as`.

use anyhow::{Context, Result};
use std::time::Duration;

use ficha_e2e::{Relay, Served, eventually};
use reqwest::Method;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

/// A browser-like caller: only the session cookie it was given, never the key.
struct Session {
    base: String,
    cookie: Option<String>,
}

impl Session {
    fn anonymous(served: &Served) -> Self {
        Session {
            base: served.base.clone(),
            cookie: None,
        }
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let mut req = Client::new().request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Response = req.send()?;
        let status = r.status().as_u16();
        Ok((status, r.json().unwrap_or(Value::Null)))
    }

    fn sign_in(served: &Served, employee: &str, password: &str) -> Result<(u16, Self)> {
        let r = Client::new()
            .post(format!("{}/api/session", served.base))
            .json(&json!({"employee": employee, "password": password}))
            .send()?;
        let status = r.status().as_u16();
        let cookie = ficha_e2e::session_cookie(&r);
        Ok((
            status,
            Session {
                base: served.base.clone(),
                cookie,
            },
        ))
    }
}

#[test]
fn roles_are_enforced_and_the_log_names_who_did_what() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let replica = relay.replica(&tmp.path().join("a"), "front-desk", &["acme"])?;
    // The first admin comes from the CLI; the rest through the API by the key holder.
    replica.ok(&[
        "employee",
        "add",
        "--company",
        "acme",
        "--name",
        "Alba Admin",
        "--code",
        "A1",
        "--role",
        "admin",
    ])?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(replica.data.join("api.key"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "ficha init keeps the API key private");
    }
    let served = Served::start(&replica)?;
    for (name, code, role) in [
        ("Sara Staff", "S1", "staff"),
        ("Vera Viewer", "V1", "viewer"),
    ] {
        let (status, _) = served.post(
            "/api/employees",
            json!({"company": "acme", "name": name, "code": code, "role": role, "password": "secreto-largo"}),
        )?;
        assert_eq!(status, 200);
    }
    let (status, _) = served.post(
        "/api/employees/A1/password",
        json!({"password": "clave-de-alba"}),
    )?;
    assert_eq!(status, 200);

    // The link `ficha serve` prints signs its holder in once, as the replica.
    let link = eventually(Duration::from_secs(5), || served.sign_in_link()).context("a link")?;
    let no_redirects = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let opened = no_redirects.get(&link).send()?;
    assert_eq!(
        opened.status().as_u16(),
        303,
        "the link signs in and goes to the page"
    );
    let cookie = ficha_e2e::session_cookie(&opened).context("a session cookie")?;
    let holder = Session {
        base: served.base.clone(),
        cookie: Some(cookie),
    };
    assert_eq!(holder.call(Method::GET, "/api/clients", None)?.0, 200);
    let again = no_redirects.get(&link).send()?;
    assert!(
        again.headers().get("set-cookie").is_none(),
        "the link works once"
    );

    let nobody = Session::anonymous(&served);
    assert_eq!(
        nobody.call(Method::GET, "/api/clients", None)?.0,
        401,
        "no key, no list"
    );
    assert_eq!(
        nobody
            .call(Method::GET, "/api/records?kind=invoice", None)?
            .0,
        401
    );
    assert_eq!(
        nobody
            .call(
                Method::POST,
                "/api/clients",
                Some(json!({"company": "acme", "name": "X"}))
            )?
            .0,
        401
    );
    assert_eq!(
        nobody.call(Method::GET, "/api/status", None)?.0,
        200,
        "status stays open"
    );
    let wrong_key = Client::new()
        .get(format!("{}/api/clients", served.base))
        .bearer_auth("not-the-key")
        .send()?;
    assert_eq!(wrong_key.status().as_u16(), 401);
    assert_eq!(Session::sign_in(&served, "S1", "wrong password")?.0, 401);
    assert_eq!(Session::sign_in(&served, "nobody", "secreto-largo")?.0, 401);

    let (status, viewer) = Session::sign_in(&served, "V1", "secreto-largo")?;
    assert_eq!(status, 200);
    let (status, staff) = Session::sign_in(&served, "S1", "secreto-largo")?;
    assert_eq!(status, 200);
    let (status, admin) = Session::sign_in(&served, "A1", "clave-de-alba")?;
    assert_eq!(status, 200);
    assert_eq!(
        viewer.call(Method::GET, "/api/session", None)?.1["role"],
        "viewer"
    );

    // Viewers read, never write.
    assert_eq!(viewer.call(Method::GET, "/api/clients", None)?.0, 200);
    let (status, body) = viewer.call(
        Method::POST,
        "/api/clients",
        Some(json!({"company": "acme", "name": "Nope"})),
    )?;
    assert_eq!(status, 403, "{body}");
    // Staff edit, and their edits are signed with their name and the replica.
    let (status, made) = staff.call(
        Method::POST,
        "/api/clients",
        Some(json!({"company": "acme", "name": "Carla Gómez"})),
    )?;
    assert_eq!(status, 200, "{made}");
    let client = made["id"].as_str().context("id")?.to_string();
    let (status, _) = staff.call(
        Method::POST,
        &format!("/api/clients/{client}/fields"),
        Some(json!({"field": "phone", "value": "+34 600 000 111"})),
    )?;
    assert_eq!(status, 200);
    let (status, rec) = staff.call(
        Method::POST,
        "/api/records",
        Some(json!({"kind": "appointment", "client": client, "start": "2026-12-10T09:00:00+01:00", "service": "Corte"})),
    )?;
    assert_eq!(status, 200, "{rec}");
    let (status, body) = viewer.call(
        Method::POST,
        &format!("/api/records/{}", rec["id"].as_str().context("id")?),
        Some(json!({"status": "confirmed"})),
    )?;
    assert_eq!(status, 403, "{body}");
    // Purges, bulk actions and new employees are for admins.
    assert_eq!(
        staff
            .call(Method::POST, "/api/trash/purge", Some(json!({})))?
            .0,
        403
    );
    let bulk = json!({"action": "archive", "ids": [client]});
    assert_eq!(
        staff
            .call(Method::POST, "/api/clients/bulk", Some(bulk.clone()))?
            .0,
        403
    );
    let hire = json!({"company": "acme", "name": "Otro", "role": "admin"});
    assert_eq!(
        staff
            .call(Method::POST, "/api/employees", Some(hire.clone()))?
            .0,
        403
    );
    assert_eq!(
        admin
            .call(Method::POST, "/api/trash/purge", Some(json!({})))?
            .0,
        200
    );
    assert_eq!(
        admin.call(Method::POST, "/api/employees", Some(hire))?.0,
        200
    );

    // The registry, a client's tab and the employees, in the API's shapes.
    let (_, kinds) = viewer.call(Method::GET, "/api/kinds", None)?;
    let invoice = kinds
        .as_array()
        .context("kinds")?
        .iter()
        .find(|k| k["kind"] == "invoice")
        .context("invoice kind")?;
    assert!(
        invoice["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["name"] == "lines"))
    );
    let (_, tab) = viewer.call(
        Method::GET,
        &format!("/api/clients/{client}/records?kind=appointment"),
        None,
    )?;
    assert_eq!(tab.as_array().map(Vec::len), Some(1), "{tab}");
    assert_eq!(tab[0]["id"], rec["id"]);
    let (_, staff_list) = viewer.call(Method::GET, "/api/employees", None)?;
    let codes: Vec<&str> = staff_list
        .as_array()
        .context("employees")?
        .iter()
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert!(
        ["A1", "S1", "V1"].iter().all(|c| codes.contains(c)),
        "{codes:?}"
    );
    assert!(
        staff_list.to_string().find("password").is_none(),
        "no hash leaves the replica"
    );

    let (_, shown) = admin.call(Method::GET, &format!("/api/clients/{client}"), None)?;
    let log = shown["log"].as_array().context("log")?;
    let phone = log
        .iter()
        .find(|e| e["kind"] == "field_set")
        .context("phone logged")?;
    assert_eq!(phone["employee_name"], "Sara Staff");
    assert_eq!(phone["replica"], "front-desk");
    assert_eq!(phone["field"], "phone");
    assert!(
        log.iter().all(|e| e["employee_name"] == "Sara Staff"),
        "{log:?}"
    );
    let (_, appt) = admin.call(
        Method::GET,
        &format!("/api/records/{}", rec["id"].as_str().context("id")?),
        None,
    )?;
    assert_eq!(appt["log"][0]["employee_name"], "Sara Staff");
    drop(served);

    // The CLI: --as names the employee; a viewer is refused; without --as the replica acts.
    let note = replica.ok(&["--as", "S1", "note", "add", &client, "--text", "Llamó"])?;
    assert!(!note.is_empty());
    let refused = replica.run(&[
        "--as",
        "V1",
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Z",
    ])?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("viewer"));
    replica.ok(&["note", "add", &client, "--text", "Sin empleado"])?;
    let shown = replica.show(&client)?;
    let notes: Vec<&Value> = shown["log"]
        .as_array()
        .context("log")?
        .iter()
        .filter(|e| e["kind"] == "note_added")
        .collect();
    assert_eq!(notes.len(), 2);
    assert!(
        notes
            .iter()
            .any(|e| e["employee_name"] == "Sara Staff" && e["replica"] == "front-desk")
    );
    assert!(
        notes
            .iter()
            .any(|e| e["employee_name"].is_null() && e["replica"] == "front-desk")
    );
    Ok(())
}

#[test]
fn an_employee_keeps_their_language_and_is_warned_of_a_likely_duplicate() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let replica = relay.replica(&tmp.path().join("a"), "front-desk", &["acme", "beta"])?;
    let served = Served::start(&replica)?;
    for (company, name, code, role) in [
        ("acme", "Sara Staff", "S1", "staff"),
        ("acme", "Vera Viewer", "V1", "viewer"),
    ] {
        let (status, body) = served.post(
            "/api/employees",
            json!({"company": company, "name": name, "code": code, "role": role, "password": "secreto-largo"}),
        )?;
        assert_eq!(status, 200, "{body}");
    }

    // A viewer may not edit clients but keeps her own language, in her record.
    let (_, viewer) = Session::sign_in(&served, "V1", "secreto-largo")?;
    let who = |s: &Session| -> Result<Value> { Ok(s.call(Method::GET, "/api/session", None)?.1) };
    let choose = |s: &Session, language: &str| {
        s.call(
            Method::POST,
            "/api/session/language",
            Some(json!({ "language": language })),
        )
    };
    assert_eq!(who(&viewer)?["language"], "es", "Spanish first");
    let (status, body) = choose(&viewer, "en")?;
    assert_eq!(status, 200, "{body}");
    let (_, again) = Session::sign_in(&served, "V1", "secreto-largo")?;
    assert_eq!(
        who(&again)?["language"],
        "en",
        "a new session speaks her language"
    );
    let (status, body) = choose(&viewer, "fr")?;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("es (español) or en"), "{body}");
    assert_eq!(
        who(&viewer)?["language"],
        "en",
        "a refused language changes nothing"
    );
    let (status, body) = served.post("/api/session/language", json!({"language": "en"}))?;
    assert_eq!(status, 400, "the key holder is no employee: {body}");

    // Before a client is created, those it may duplicate in its company.
    let (_, staff) = Session::sign_in(&served, "S1", "secreto-largo")?;
    let (status, made) = staff.call(
        Method::POST,
        "/api/clients",
        Some(json!({"company": "acme", "name": "Carla Gómez", "email": "carla@example.com", "phone": "+34 600 000 111"})),
    )?;
    assert_eq!(status, 200, "{made}");
    let similar = |query: &str| -> Result<Vec<(String, Value)>> {
        let (status, body) =
            staff.call(Method::GET, &format!("/api/clients/similar?{query}"), None)?;
        assert_eq!(status, 200, "{body}");
        Ok(body
            .as_array()
            .context("a list")?
            .iter()
            .map(|s| {
                (
                    s["client"]["id"].as_str().unwrap_or("").to_string(),
                    s["reasons"].clone(),
                )
            })
            .collect())
    };
    let id = made["id"].as_str().context("id")?.to_string();
    assert_eq!(
        similar("company=acme&name=Carla%20G&phone=600%2000%2001%2011")?,
        vec![(id.clone(), json!(["phone"]))],
        "the same number, typed another way"
    );
    assert_eq!(
        similar("company=acme&name=C&email=%20CARLA@Example.com&phone=600000111")?,
        vec![(id, json!(["email", "phone"]))]
    );
    assert!(
        similar("company=beta&name=Carla&email=carla@example.com")?.is_empty(),
        "another company's client is not a duplicate"
    );
    assert!(
        similar("company=acme&name=Carla&phone=699999999&email=")?.is_empty(),
        "nobody has that phone"
    );
    Ok(())
}
