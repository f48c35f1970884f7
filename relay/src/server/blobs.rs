//! `PUT/GET /blobs/{hash}`: attachments travel beside the change feed, over plain HTTP with
//! the replica's token, so a replica syncs documents without files and fetches a file lazily.
//!
//! A GET answers only through a company of the token that uploaded the blob; otherwise it is
//! a 404 exactly like a missing blob, so a token learns nothing of another company's files.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use ficha_core::Company;
use ficha_core::blob::{BlobHash, check_size};
use ficha_core::token::{Claims, redact, verify};

use super::{Shared, blocking, now_secs};

/// A refusal: status and a message a person can act on.
type Refusal = (StatusCode, String);

fn reply(code: StatusCode, message: impl Into<String>) -> Refusal {
    (code, message.into())
}

/// Checks the bearer token: signature, expiry and revocation.
fn claims(shared: &Shared, headers: &HeaderMap) -> Result<Claims, Refusal> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| reply(StatusCode::UNAUTHORIZED, "a bearer token is required"))?;
    let claims = verify(&shared.secret, token, now_secs()).map_err(|e| {
        tracing::warn!(token = %redact(token), error = %e, "blob request refused");
        reply(StatusCode::UNAUTHORIZED, format!("token refused: {e}"))
    })?;
    match blocking(|| shared.store.is_revoked(&claims.replica, claims.issued_at)) {
        Ok(false) => Ok(claims),
        Ok(true) => Err(reply(StatusCode::UNAUTHORIZED, "token revoked")),
        Err(e) => Err(reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

fn hash_of(s: &str) -> Result<BlobHash, Refusal> {
    s.parse()
        .map_err(|e: ficha_core::blob::BadBlobHash| reply(StatusCode::BAD_REQUEST, e.to_string()))
}

/// `PUT /blobs/{hash}?company=C`: stores the body if it hashes to `hash`.
pub(super) async fn put(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = (|| {
        let claims = claims(&shared, &headers)?;
        let hash = hash_of(&hash)?;
        let company = q
            .get("company")
            .ok_or_else(|| reply(StatusCode::BAD_REQUEST, "missing ?company="))
            .and_then(|c| {
                Company::new(c).map_err(|e| reply(StatusCode::BAD_REQUEST, e.to_string()))
            })?;
        if !claims.write || !claims.companies.contains(&company) {
            return Err(reply(
                StatusCode::FORBIDDEN,
                format!("this token may not write to company {company}"),
            ));
        }
        check_size(body.len()).map_err(|e| reply(StatusCode::PAYLOAD_TOO_LARGE, e))?;
        if !hash.matches(&body) {
            return Err(reply(
                StatusCode::BAD_REQUEST,
                format!("the body does not hash to {hash}"),
            ));
        }
        match blocking(|| shared.store.put_blob(&hash, &company, &body)) {
            Ok(true) => Ok((StatusCode::CREATED, "stored").into_response()),
            Ok(false) => Ok((StatusCode::OK, "already stored").into_response()),
            Err(e) => Err(reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /blobs/{hash}`: the bytes, if a company of the token has them.
pub(super) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = (|| {
        let claims = claims(&shared, &headers)?;
        let hash = hash_of(&hash)?;
        match blocking(|| shared.store.blob_for(&hash, &claims.companies)) {
            Ok(Some(bytes)) => {
                Ok(([("content-type", "application/octet-stream")], bytes).into_response())
            }
            Ok(None) => Err(reply(StatusCode::NOT_FOUND, format!("no blob {hash}"))),
            Err(e) => Err(reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}
