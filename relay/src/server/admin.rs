//! Admin endpoints for commands that cannot open the database while the relay holds it.
//!
//! Answered only with the admin key derived from the signing secret (whoever has it could
//! already read the secret file), on the main listener or on the admin listener if one is
//! given. No address is trusted: behind a reverse proxy on the same host, every request
//! comes from loopback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};

use super::{Shared, blocking};

type Reply = (StatusCode, String);

/// Checks the caller and returns the one query parameter an admin call needs.
fn param(
    shared: &Shared,
    peer: SocketAddr,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    name: &str,
) -> Result<String, Reply> {
    if !Shared::authorised(headers, &shared.admin_key) {
        tracing::warn!(%peer, "refusing an admin call without a valid admin key");
        return Err((StatusCode::UNAUTHORIZED, "admin key required".into()));
    }
    q.get(name)
        .filter(|v| !v.trim().is_empty())
        .cloned()
        .ok_or_else(|| (StatusCode::BAD_REQUEST, format!("missing {name}")))
}

/// `POST /admin/backup?out=ABSOLUTE_PATH`: a consistent copy while serving.
pub(super) async fn backup(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let out = match param(&shared, peer, &headers, &q, "out") {
        Ok(o) => o,
        Err(reply) => return reply,
    };
    let dest = Path::new(&out);
    if !dest.is_absolute() {
        return (
            StatusCode::BAD_REQUEST,
            format!("{out} is not an absolute path"),
        );
    }
    // A read transaction of its own: sessions keep being served while the copy runs.
    match blocking(|| shared.store.backup(dest)) {
        Ok(()) => {
            tracing::info!(out = %dest.display(), "backup written");
            (StatusCode::OK, format!("backup written to {out}"))
        }
        Err(e) => {
            tracing::warn!(error = %e, "backup failed");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// `POST /admin/revoke?replica=NAME`: refuses the name's tokens and ends its open sessions.
pub(super) async fn revoke(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let name = match param(&shared, peer, &headers, &q, "replica") {
        Ok(n) => n,
        Err(reply) => return reply,
    };
    let result =
        shared.with_relay(
            |relay| match relay.store_mut().revoke(&name, super::now_secs()) {
                Ok(()) => {
                    let outputs = relay.revoked(&name);
                    (Ok(outputs.len() / 2), outputs)
                }
                Err(e) => (Err(e), Vec::new()),
            },
        );
    match result {
        Ok(closed) => {
            tracing::info!(replica = %name, closed, "replica revoked");
            (
                StatusCode::OK,
                format!("revoked {name}; closed {closed} open sessions"),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "revocation failed");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

const PAGE: &str = include_str!("admin.html");

/// `GET /admin`: the admin page; it asks for the admin key and sends it with every call.
pub(super) async fn page() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [
            (axum::http::header::CACHE_CONTROL, "no-store"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        axum::response::Html(PAGE),
    )
        .into_response()
}

fn check(shared: &Shared, peer: SocketAddr, headers: &HeaderMap) -> Result<(), Reply> {
    if Shared::authorised(headers, &shared.admin_key) {
        return Ok(());
    }
    tracing::warn!(%peer, "refusing an admin call without a valid admin key");
    Err((
        StatusCode::UNAUTHORIZED,
        "admin key required: print it with `ficha-relay admin-key --data DIR`".into(),
    ))
}

fn json(v: serde_json::Value) -> Reply {
    (StatusCode::OK, v.to_string())
}

/// `GET /admin/api/overview`: open sessions, recent refusals and quarantined documents.
pub(super) async fn overview(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Reply {
    if let Err(reply) = check(&shared, peer, &headers) {
        return reply;
    }
    let (sessions, refused) = {
        let relay = super::lock(&shared.relay);
        let refused: Vec<_> = relay.recent_refusals().cloned().collect();
        (relay.sessions_info(), refused)
    };
    let stored = blocking(|| {
        Ok::<_, crate::stores::AnyError>((shared.store.feed_heads()?, shared.store.unfoldable()?))
    });
    let (heads, unfoldable) = match stored {
        Ok(x) => x,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let sessions: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            let lag: serde_json::Map<String, serde_json::Value> = s
                .cursors
                .iter()
                .map(|(c, at)| {
                    let head = heads.get(c).copied().unwrap_or(0);
                    (c.clone(), head.saturating_sub(*at).into())
                })
                .collect();
            serde_json::json!({
                "conn": s.conn, "replica": s.replica, "code": s.code, "companies": s.companies,
                "read_only": s.read_only, "connected_at": s.connected_at, "last_seen": s.last_seen,
                "lag": lag, "unacked": s.unacked,
            })
        })
        .collect();
    let refused: Vec<_> = refused
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "at": r.at, "replica": r.replica, "doc": r.doc.map(|d| d.to_string()),
                "code": format!("{:?}", r.code), "reason": r.reason,
            })
        })
        .collect();
    let quarantined: Vec<_> = unfoldable
        .into_iter()
        .map(|(doc, why)| serde_json::json!({"doc": doc.to_string(), "reason": why}))
        .collect();
    json(serde_json::json!({
        "sessions": sessions,
        "refused": refused,
        "refused_at_accept": shared.refused.load(std::sync::atomic::Ordering::Relaxed),
        "quarantined": quarantined,
    }))
}

/// `GET /admin/api/companies`: documents, bytes, feed position and parked changes per company.
pub(super) async fn companies(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Reply {
    if let Err(reply) = check(&shared, peer, &headers) {
        return reply;
    }
    match blocking(|| shared.store.census()) {
        Ok(c) => json(serde_json::json!(c)),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Body of `POST /admin/api/token`.
#[derive(serde::Deserialize)]
pub(super) struct NewToken {
    replica: String,
    companies: Vec<String>,
    #[serde(default)]
    read_only: bool,
    #[serde(default = "default_ttl")]
    ttl_days: u64,
}

fn default_ttl() -> u64 {
    crate::DEFAULT_TTL_DAYS
}

/// `POST /admin/api/token` `{"replica", "companies": [..], "read_only"?, "ttl_days"?}`: a
/// token, as `ficha-relay token` prints it, and the replica's code.
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Reply {
    if let Err(reply) = check(&shared, peer, &headers) {
        return reply;
    }
    let req: NewToken = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "the body must be {{\"replica\", \"companies\": [..], \"read_only\"?, \"ttl_days\"?}}: {e}"
                ),
            );
        }
    };
    let dir = shared.dir.clone();
    let issued = blocking(|| {
        crate::issue_token(
            &dir,
            &req.replica,
            &req.companies,
            req.read_only,
            req.ttl_days,
        )
    });
    match issued {
        Ok(token) => {
            let code = ficha_core::token::peek(&token)
                .map(|c| c.code)
                .unwrap_or_default();
            tracing::info!(replica = %req.replica, code = %code, "token issued from the admin page");
            json(serde_json::json!({"token": token, "code": code}))
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
    }
}
