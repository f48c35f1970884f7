//! The web app staff use all day: its files, embedded in the binary (no CDN, nothing fetched
//! at run time), the live push that keeps an open page current, and the page's offline switch.
//!
//! The page is plain JavaScript over the same JSON API scripts use: it renders from what the
//! API answers, so when `ficha serve` stops it can say so, keep what was typed, and retry.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;

use super::{ApiResult, ApiState};

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const I18N_JS: &str = include_str!("../web/i18n.js");
const FILE_JS: &str = include_str!("../web/file.js");
const APP_CSS: &str = include_str!("../web/app.css");

/// The app's HTML shell, for `/` and every page of the app (`/clients/{id}` survives a reload).
pub(super) fn shell() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(INDEX)).into_response()
}

/// `GET /clients/{id}` and the app's other paths: the shell, which routes on the URL.
pub(super) async fn app_page() -> Response {
    shell()
}

fn asset(body: &'static str, mime: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /app.js`.
pub(super) async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

/// `GET /i18n.js`.
pub(super) async fn i18n_js() -> Response {
    asset(I18N_JS, "text/javascript; charset=utf-8")
}

/// `GET /file.js`.
pub(super) async fn file_js() -> Response {
    asset(FILE_JS, "text/javascript; charset=utf-8")
}

/// `GET /app.css`.
pub(super) async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// `GET /api/events`: a Server-Sent Event `change` whenever a local edit commits, documents
/// arrive from the relay, or the link goes up or down. The page re-reads what it shows then,
/// instead of polling. Bursts are coalesced: one event per 50 ms at most.
pub(super) async fn events(
    State(s): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let edits = s.replica.edits();
    let synced = s.sync.changes();
    let stream = futures_util::stream::unfold(
        (edits, synced, true),
        |(mut edits, mut synced, first)| async move {
            if !first {
                tokio::select! {
                    r = edits.changed() => r.ok()?,
                    r = synced.changed() => r.ok()?,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                edits.borrow_and_update();
                synced.borrow_and_update();
            }
            let revision = *edits.borrow() + *synced.borrow();
            let event = Event::default().event("change").data(revision.to_string());
            Some((Ok(event), (edits, synced, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(Deserialize)]
pub(super) struct Link {
    online: bool,
}

/// `POST /api/sync {"online": false}`: the page's switch that cuts this replica's link to the
/// relay (edits are kept locally and uploaded when it is switched back on).
pub(super) async fn switch(State(s): State<ApiState>, Json(b): Json<Link>) -> ApiResult {
    s.sync.set_offline(!b.online);
    Ok(Json(json!({ "online": b.online })))
}
