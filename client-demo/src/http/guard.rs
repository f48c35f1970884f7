//! What keeps the local API to the person at the machine, and its errors in one shape.
//!
//! A web page the user visits can send requests to `127.0.0.1`: by DNS rebinding (its own name
//! resolving to loopback) it can even read the answers. So every request must name this
//! server in its `Host` (an IP address or `localhost`, with this server's port): a rebound
//! name never does. A page can also send a "simple" cross-site POST (a form, `text/plain`)
//! without asking first: every write must carry JSON (`Content-Type: application/json`) or
//! the `X-Ficha-Request` header, which a page can only send after a CORS preflight this server
//! never grants, and any `Origin` it names must be this server.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiState;

/// The header a script or the page sends with a write that is not JSON (a file's bytes).
pub const REQUEST_HEADER: &str = "x-ficha-request";

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// `host[:port]` split, for a `Host` header or an `Origin`'s authority.
fn split_host(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// True when `authority` names this server: `localhost` or an IP address, with its port.
fn is_us(authority: &str, listen: Option<SocketAddr>) -> bool {
    let Some((host, port)) = split_host(authority.trim()) else {
        return false;
    };
    let named = host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok();
    let port_ok = match listen {
        Some(l) => port.unwrap_or(80) == l.port(),
        None => true,
    };
    named && port_ok
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Refuses requests that a page on another site could have made on the user's behalf.
pub(super) async fn local_only(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(|h| is_us(h, s.listen)) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this server answers requests for its own address only (open it as http://127.0.0.1:PORT or http://localhost:PORT)",
        );
    }
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if writes {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if let Some(o) = origin {
            let ours = o
                .strip_prefix("http://")
                .is_some_and(|authority| is_us(authority, s.listen));
            if !ours {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "writes are accepted from this server's own page only",
                );
            }
        }
        // A DELETE cannot come from another site without a preflight: no header needed.
        let simple_method = *req.method() != Method::DELETE;
        if simple_method && !is_json(headers) && !headers.contains_key(REQUEST_HEADER) {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send JSON (Content-Type: application/json), or the X-Ficha-Request header with a file's bytes",
            );
        }
    }
    next.run(req).await
}

/// Makes every error a JSON object with an `error` key, whoever produced it (a handler, an
/// extractor that refused a body, a missing route, a body over its limit).
pub(super) async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let already = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || already {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_string(),
    };
    let mut out = (parts.status, axum::Json(json!({ "error": text }))).into_response();
    for (k, v) in &parts.headers {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// The answer to a route that does not exist.
pub(super) async fn not_found() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "no such route: see the README's HTTP API",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_server_by_address_or_localhost_is_us() {
        let listen: Option<SocketAddr> = "127.0.0.1:7400".parse().ok();
        assert!(is_us("127.0.0.1:7400", listen));
        assert!(is_us("localhost:7400", listen));
        assert!(is_us("[::1]:7400", listen));
        assert!(!is_us("evil.example:7400", listen), "a rebound name");
        assert!(!is_us("127.0.0.1:7401", listen), "another port");
        assert!(!is_us("127.0.0.1.evil.example:7400", listen));
        assert!(!is_us("", listen));
    }
}
