//! The local HTTP API of `ficha serve` (and the small web page that uses it).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::app::{AppError, Replica, Status, parse_id};
use crate::sync::SyncStatus;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The open replica.
    pub replica: Arc<Replica>,
    /// The background sync's status.
    pub sync: Arc<SyncStatus>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = if self.is_not_found() {
            StatusCode::NOT_FOUND
        } else if self.is_bad_input() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

type ApiResult = Result<Json<serde_json::Value>, AppError>;

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .route("/api/metrics", get(metrics))
        .route("/api/clients/bulk", post(bulk))
        .route("/api/trash/purge", post(purge))
        .route("/api/duplicates", get(duplicates))
        .route("/api/duplicates/merge", post(merge))
        .route("/api/duplicates/dismiss", post(dismiss))
        .route("/api/clients", get(list).post(create))
        .route("/api/clients/{id}", get(show))
        .route("/api/clients/{id}/fields", post(set_field))
        .route("/api/clients/{id}/notes", post(add_note))
        .route("/api/clients/{id}/comments", post(add_comment))
        .route("/api/clients/{id}/alerts", post(add_alert))
        .route("/api/clients/{id}/items/{section}", post(add_item))
        .route(
            "/api/clients/{id}/items/{section}/{item}",
            post(set_item).delete(remove_item),
        )
        .route("/api/clients/{id}/groups", post(group))
        .route("/api/clients/{id}/state", post(set_state))
        .route("/api/clients/{id}/log", post(log))
        .route(
            "/api/clients/{id}/files",
            post(attach).layer(axum::extract::DefaultBodyLimit::max(
                ficha_core::blob::MAX_BLOB_BYTES,
            )),
        )
        .route("/api/clients/{id}/files/{item}", get(file))
        .with_state(state)
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn status(State(s): State<ApiState>) -> ApiResult {
    let store = s.replica.store();
    let status = Status {
        relay: if s.sync.connected() {
            "connected"
        } else {
            "disconnected"
        },
        pending_upload: store.pending_upload()?,
        replica: store.identity().name.clone(),
        documents: store.doc_count()?,
        last_error: s.sync.last_error(),
    };
    Ok(Json(json!(status)))
}

/// Query parameters of `GET /api/clients` and `GET /api/metrics`.
#[derive(Deserialize, Default)]
struct ListQuery {
    search: Option<String>,
    company: Option<String>,
    state: Option<String>,
    group: Option<String>,
    centre: Option<String>,
    origin: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
    sort: Option<String>,
}

impl ListQuery {
    fn filter(&self) -> Result<ficha_domain::search::Filter, AppError> {
        let day = |d: &Option<String>| d.as_deref().map(crate::app::day_start_ms).transpose();
        Ok(ficha_domain::search::Filter {
            text: self.search.clone(),
            company: self.company.clone(),
            state: self.state.clone(),
            group: self.group.clone(),
            centre: self.centre.clone(),
            origin: self.origin.clone(),
            since: day(&self.since)?,
            until: day(&self.until)?,
        })
    }
}

async fn list(State(s): State<ApiState>, Query(q): Query<ListQuery>) -> ApiResult {
    let sort = match &q.sort {
        Some(s) => s.parse().map_err(AppError::BadInput)?,
        None => ficha_domain::search::Sort::Name,
    };
    let page = s
        .replica
        .page_sorted(&q.filter()?, sort, q.offset, q.limit)?;
    Ok(Json(json!(page)))
}

async fn metrics(State(s): State<ApiState>, Query(q): Query<ListQuery>) -> ApiResult {
    Ok(Json(s.replica.metrics(&q.filter()?)?))
}

#[derive(Deserialize)]
struct NewClient {
    company: String,
    name: String,
    email: Option<String>,
    phone: Option<String>,
}

async fn create(State(s): State<ApiState>, Json(b): Json<NewClient>) -> ApiResult {
    let id = s
        .replica
        .add_client(&b.company, &b.name, b.email.as_deref(), b.phone.as_deref())?;
    Ok(Json(json!({ "id": id.to_string() })))
}

async fn show(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(s.replica.show(parse_id(&id)?)?))
}

#[derive(Deserialize)]
struct FieldValue {
    field: String,
    value: String,
}

async fn set_field(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<FieldValue>,
) -> ApiResult {
    s.replica.set_field(parse_id(&id)?, &b.field, &b.value)?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

async fn add_note(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<NewNote>,
) -> ApiResult {
    let note = s.replica.add_note(parse_id(&id)?, &b.text)?;
    Ok(Json(json!({ "id": note.to_string() })))
}

#[derive(Deserialize)]
struct NewComment {
    text: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    pinned: bool,
    priority: Option<String>,
}

async fn add_comment(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<NewComment>,
) -> ApiResult {
    let priority = b.priority.as_deref().unwrap_or("normal");
    let c = s
        .replica
        .add_comment(parse_id(&id)?, &b.text, b.private, b.pinned, priority)?;
    Ok(Json(json!({ "id": c.to_string() })))
}

#[derive(Deserialize)]
struct NewAlert {
    #[serde(rename = "type")]
    kind: String,
    priority: String,
    description: String,
}

async fn add_alert(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<NewAlert>,
) -> ApiResult {
    let a = s
        .replica
        .add_alert(parse_id(&id)?, &b.kind, &b.priority, &b.description)?;
    Ok(Json(json!({ "id": a.to_string() })))
}

fn pairs(body: serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    body.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect()
}

fn item_id(s: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(s)
        .map_err(|_| AppError::BadInput(format!("{s:?} is not a valid item id")))
}

async fn add_item(
    State(s): State<ApiState>,
    Path((id, section)): Path<(String, String)>,
    Json(b): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult {
    let item = s.replica.add_item(parse_id(&id)?, &section, &pairs(b))?;
    Ok(Json(json!({ "id": item.to_string() })))
}

async fn set_item(
    State(s): State<ApiState>,
    Path((id, section, item)): Path<(String, String, String)>,
    Json(b): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult {
    s.replica
        .set_item(parse_id(&id)?, &section, item_id(&item)?, &pairs(b))?;
    Ok(Json(json!({ "ok": true })))
}

async fn remove_item(
    State(s): State<ApiState>,
    Path((id, section, item)): Path<(String, String, String)>,
) -> ApiResult {
    s.replica
        .remove_item(parse_id(&id)?, &section, item_id(&item)?)?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
struct GroupBody {
    group: String,
    #[serde(default)]
    remove: bool,
}

async fn group(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<GroupBody>,
) -> ApiResult {
    s.replica.group(parse_id(&id)?, &b.group, !b.remove)?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
}

async fn set_state(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<StateBody>,
) -> ApiResult {
    s.replica.set_state(parse_id(&id)?, &b.state)?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
struct LogBody {
    #[serde(default = "contact")]
    kind: String,
    text: String,
}

fn contact() -> String {
    "contact".into()
}

async fn log(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<LogBody>,
) -> ApiResult {
    s.replica.log(parse_id(&id)?, &b.kind, &b.text)?;
    Ok(Json(json!({ "ok": true })))
}

async fn duplicates(State(s): State<ApiState>) -> ApiResult {
    Ok(Json(json!(s.replica.duplicates()?)))
}

#[derive(Deserialize)]
struct MergeBody {
    survivor: String,
    other: String,
}

async fn merge(State(s): State<ApiState>, Json(b): Json<MergeBody>) -> ApiResult {
    let copied = s
        .replica
        .merge(parse_id(&b.survivor)?, parse_id(&b.other)?)?;
    Ok(Json(json!({ "ok": true, "copied": copied })))
}

#[derive(Deserialize)]
struct DismissBody {
    a: String,
    b: String,
}

async fn dismiss(State(s): State<ApiState>, Json(b): Json<DismissBody>) -> ApiResult {
    s.replica.dismiss(parse_id(&b.a)?, parse_id(&b.b)?)?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
struct BulkBody {
    action: String,
    value: Option<String>,
    #[serde(default)]
    ids: Vec<String>,
    #[serde(flatten)]
    filter: ListQuery,
}

async fn bulk(State(s): State<ApiState>, Json(b): Json<BulkBody>) -> ApiResult {
    let ids = b
        .ids
        .iter()
        .map(|i| parse_id(i))
        .collect::<Result<Vec<_>, _>>()?;
    let n = s
        .replica
        .bulk(&b.filter.filter()?, &ids, &b.action, b.value.as_deref())?;
    Ok(Json(json!({ "changed": n })))
}

#[derive(Deserialize)]
struct AttachQuery {
    name: String,
    kind: Option<String>,
    mime: Option<String>,
}

/// `POST /api/clients/{id}/files?name=N[&kind=image|file][&mime=M]`, the raw bytes as body.
async fn attach(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    body: axum::body::Bytes,
) -> ApiResult {
    let item = s.replica.attach(
        parse_id(&id)?,
        &q.name,
        &body,
        q.kind.as_deref(),
        q.mime.as_deref(),
    )?;
    Ok(Json(json!({ "id": item })))
}

/// `GET /api/clients/{id}/files/{item}`: the bytes, fetched from the relay on first use.
async fn file(
    State(s): State<ApiState>,
    Path((id, item)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let (file, bytes) = s.replica.file_bytes(parse_id(&id)?, &item).await?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        file.name.replace(['"', '\\', '\r', '\n'], "_")
    );
    Ok((
        [
            ("content-type", "application/octet-stream".to_string()),
            ("content-disposition", disposition),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
struct PurgeBody {
    older_than_days: Option<u32>,
}

async fn purge(State(s): State<ApiState>, Json(b): Json<PurgeBody>) -> ApiResult {
    let days = b
        .older_than_days
        .unwrap_or(ficha_domain::purge::DEFAULT_RETENTION_DAYS);
    Ok(Json(json!(s.replica.purge_trash(days)?)))
}
