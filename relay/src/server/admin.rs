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
