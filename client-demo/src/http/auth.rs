//! Who is calling the local API: the holder of the replica's API key (scripts, tests, the
//! person who started `ficha serve`), or an employee signed in with their password.
//!
//! Every `/api/*` request but `GET /api/status` and `POST /api/session` needs
//! `Authorization: Bearer <DIR/api.key>` or a session cookie. The caller is kept in a
//! task-local for the request, so each handler's store work acts as that caller without every
//! handler passing it along.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::ApiState;
use crate::app::{AppError, Employee, Replica};

/// The file `ficha init` writes the API key to (mode 0600).
pub const API_KEY_FILE: &str = "api.key";
/// The session cookie's name, before the replica's own suffix: browsers keep cookies per host,
/// not per port, so two replicas served on one machine need cookies of their own names.
pub const COOKIE: &str = "ficha_session";
/// How long a session lasts without use.
const IDLE: Duration = Duration::from_secs(12 * 3600);

/// 32 random bytes as hex, from the OS.
fn random_hex() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("{}{}", a.simple(), b.simple())
}

/// Reads the replica's API key, creating it (mode 0600) if the replica predates it.
pub fn api_key(dir: &Path) -> std::io::Result<String> {
    let path = dir.join(API_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(k) if !k.trim().is_empty() => return Ok(k.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = random_hex();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    std::io::Write::write_all(&mut opts.open(&path)?, key.as_bytes())?;
    Ok(key)
}

/// Who a request acts as.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The key holder: the replica itself.
    Replica,
    /// A signed-in employee, by id.
    Employee(String),
}

struct Session {
    caller: Caller,
    seen: Instant,
}

/// The API key, the open sessions and the one-time sign-in link.
pub struct Auth {
    key: String,
    /// This replica's session cookie name.
    cookie: String,
    sessions: Mutex<HashMap<String, Session>>,
    link: Mutex<Option<String>>,
}

tokio::task_local! {
    static CALLER: Caller;
}

/// Constant-time comparison, so a key is not guessed byte by byte from response times.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Auth {
    /// With the replica's key; no session yet.
    pub fn new(key: String) -> Self {
        let suffix = blake3::hash(key.as_bytes()).to_hex();
        Auth {
            cookie: format!("{COOKIE}_{}", &suffix[..12]),
            key,
            sessions: Mutex::new(HashMap::new()),
            link: Mutex::new(None),
        }
    }

    /// A new one-time sign-in token for `/?token=…` (replacing any unused one).
    pub fn one_time_link(&self) -> String {
        let t = random_hex();
        *lock(&self.link) = Some(t.clone());
        t
    }

    fn open(&self, caller: Caller) -> String {
        let id = random_hex();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.seen.elapsed() < IDLE);
        sessions.insert(
            id.clone(),
            Session {
                caller,
                seen: Instant::now(),
            },
        );
        id
    }

    fn session(&self, headers: &HeaderMap) -> Option<Caller> {
        let id = cookie(&self.cookie, headers)?;
        let mut sessions = lock(&self.sessions);
        let s = sessions.get_mut(&id)?;
        if s.seen.elapsed() >= IDLE {
            sessions.remove(&id);
            return None;
        }
        s.seen = Instant::now();
        Some(s.caller.clone())
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(&self.cookie, headers) {
            lock(&self.sessions).remove(&id);
        }
    }

    fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match bearer {
            Some(k) if same(k.trim(), &self.key) => Some(Caller::Replica),
            Some(_) => None,
            None => self.session(headers),
        }
    }
}

fn cookie(name: &str, headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(name: &str, id: &str) -> String {
    format!("{name}={id}; HttpOnly; SameSite=Strict; Path=/")
}

fn unauthorised(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// Refuses API calls without a key or a session, and runs the rest as their caller.
pub(super) async fn signed_in(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let open = (path == "/api/status" && req.method() == Method::GET)
        || (path == "/api/session" && req.method() != Method::GET)
        || !path.starts_with("/api/");
    if open {
        let caller = s.auth.caller(req.headers()).unwrap_or(Caller::Replica);
        return CALLER.scope(caller, next.run(req)).await;
    }
    match s.auth.caller(req.headers()) {
        Some(caller) => CALLER.scope(caller, next.run(req)).await,
        None => unauthorised(
            "sign in first: POST /api/session with an employee and password, or send Authorization: Bearer with the key in the replica's api.key file",
        ),
    }
}

/// The current request's caller (outside a request: the replica).
pub(super) fn current() -> Caller {
    CALLER.try_with(Caller::clone).unwrap_or(Caller::Replica)
}

/// The replica as `caller`: itself, or the signed-in employee (who must still be active).
pub(super) fn acting(replica: &Replica, caller: &Caller) -> Result<Option<Replica>, AppError> {
    match caller {
        Caller::Employee(id) => {
            let e = replica.active_employee(id).map_err(|_| {
                AppError::Unauthenticated(
                    "this session's employee is no longer active: sign in again".into(),
                )
            })?;
            Ok(Some(replica.acting_as(&e)?))
        }
        Caller::Replica => Ok(None),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct SignIn {
    employee: String,
    password: String,
}

/// `POST /api/session`: signs an employee in; the answer sets the session cookie.
pub(super) async fn sign_in(
    State(s): State<ApiState>,
    axum::Json(b): axum::Json<SignIn>,
) -> Response {
    let replica = s.replica.clone();
    let checked =
        tokio::task::spawn_blocking(move || replica.sign_in(&b.employee, &b.password)).await;
    let employee: Employee = match checked {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return super::ApiError::from(e).into_response(),
        Err(_) => return unauthorised("wrong employee or password"),
    };
    let id = s.auth.open(Caller::Employee(employee.id.clone()));
    (
        [(header::SET_COOKIE, set_cookie(&s.auth.cookie, &id))],
        axum::Json(json!({ "employee": employee })),
    )
        .into_response()
}

/// `DELETE /api/session`: signs out.
pub(super) async fn sign_out(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    s.auth.close(&headers);
    (
        [(
            header::SET_COOKIE,
            format!("{}=; Max-Age=0; Path=/", s.auth.cookie),
        )],
        axum::Json(json!({ "ok": true })),
    )
        .into_response()
}

/// `GET /?token=…`: the one-time link `ficha serve` prints opens a key holder's session.
pub(super) async fn link(State(s): State<ApiState>, token: &str) -> Option<Response> {
    let mut link = lock(&s.auth.link);
    if !link.as_deref().is_some_and(|t| same(t, token)) {
        return None;
    }
    *link = None;
    drop(link);
    let id = s.auth.open(Caller::Replica);
    Some(
        (
            [(header::SET_COOKIE, set_cookie(&s.auth.cookie, &id))],
            Redirect::to("/"),
        )
            .into_response(),
    )
}
