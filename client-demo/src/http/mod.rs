//! The local HTTP API of `ficha serve` (and the small web page that uses it).
//!
//! Every handler runs its store work on tokio's blocking pool: a durable edit waits for an
//! fsync, and must not hold up the async workers serving everyone else. Requests must name
//! this server and writes must be JSON or carry the request header ([`guard`]); every error is
//! a JSON object with an `error` key.

mod auth;
mod cases;
mod guard;
mod records;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::app::{AppError, ErrorKind, Replica, parse_id, parse_item};
use crate::sync::SyncStatus;

pub use auth::{API_KEY_FILE, Auth, COOKIE, api_key};
pub use guard::REQUEST_HEADER;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The open replica.
    pub replica: Arc<Replica>,
    /// The background sync's status.
    pub sync: Arc<SyncStatus>,
    /// The address the server listens on: requests must name it (None: any port).
    pub listen: Option<SocketAddr>,
    /// The API key and signed-in sessions.
    pub auth: Arc<Auth>,
    /// The time zone the page shows times in (None: the browser's).
    pub time_zone: Option<chrono_tz::Tz>,
}

/// An error as the API answers it.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let status = match e.kind() {
            ErrorKind::BadInput => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        Self {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type ApiResult = Result<Json<serde_json::Value>, ApiError>;

/// Runs store work off the async workers.
async fn blocking<T: Send + 'static>(
    s: &ApiState,
    f: impl FnOnce(&Replica) -> Result<T, AppError> + Send + 'static,
) -> Result<T, ApiError> {
    let replica = s.replica.clone();
    let caller = auth::current();
    let work = move || match auth::acting(&replica, &caller)? {
        Some(employee) => f(&employee),
        None => f(&replica),
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("the request failed inside the server ({e}); it changed nothing"),
        }),
    }
}

/// Runs store work off the async workers and answers with `ok`.
async fn done(
    s: &ApiState,
    f: impl FnOnce(&Replica) -> Result<(), AppError> + Send + 'static,
) -> ApiResult {
    blocking(s, f).await?;
    Ok(Json(json!({ "ok": true })))
}

/// Runs an action that returns a new id, and answers with it.
async fn created(
    s: &ApiState,
    f: impl FnOnce(&Replica) -> Result<String, AppError> + Send + 'static,
) -> ApiResult {
    let id = blocking(s, f).await?;
    Ok(Json(json!({ "id": id })))
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(web::app_js))
        .route("/i18n.js", get(web::i18n_js))
        .route("/file.js", get(web::file_js))
        .route("/app.css", get(web::app_css))
        .route("/clients", get(web::app_page))
        .route("/clients/{id}", get(web::app_page))
        .route("/archive", get(web::app_page))
        .route("/trash", get(web::app_page))
        .route("/duplicates", get(web::app_page))
        .route("/notifications", get(web::app_page))
        .route("/api/events", get(web::events))
        .route("/api/sync", post(web::switch))
        .route("/api/status", get(status))
        .route("/api/metrics", get(metrics))
        .route("/api/clients/bulk", post(bulk))
        .route("/api/trash/purge", post(purge))
        .route("/api/duplicates", get(duplicates))
        .route("/api/duplicates/merge", post(merge))
        .route("/api/duplicates/dismiss", post(dismiss))
        .route("/api/clients", get(list).post(create))
        .route("/api/clients/similar", get(similar))
        .route("/api/clients/{id}", get(show))
        .route("/api/clients/{id}/fields", post(set_field))
        .route("/api/clients/{id}/notes", post(add_note))
        .route("/api/clients/{id}/comments", post(add_comment))
        .route("/api/clients/{id}/alerts", post(add_alert))
        .route(
            "/api/clients/{id}/{collection}/{item}",
            post(edit_annotation),
        )
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
        .route("/api/clients/{id}/records", get(records::of_client))
        .route("/api/clients/{id}/statement", get(records::statement))
        .route(
            "/api/clients/{id}/wallet",
            get(records::wallet).post(records::wallet_move),
        )
        .route("/api/clients/{id}/relations", get(records::relations))
        .route("/api/relations", post(records::relate))
        .route("/api/cases", get(cases::list).post(cases::create))
        .route("/api/cases/{id}", post(cases::set))
        .route("/api/notifications", get(cases::notifications))
        .route("/api/notifications/{id}/read", post(cases::read))
        .route("/api/clients/{id}/time", post(cases::add_time))
        .route("/api/time/report", get(cases::report))
        .route(
            "/api/clients/{id}/messages",
            get(cases::messages).post(cases::send_message),
        )
        .route("/api/messages/{id}/retry", post(cases::retry))
        .route("/api/kinds", get(records::kinds))
        .route("/api/sections", get(records::sections))
        .route("/api/records", get(records::list).post(records::create))
        .route("/api/records/{id}", get(records::show).post(records::set))
        .route(
            "/api/employees",
            get(records::employees).post(records::add_employee),
        )
        .route("/api/employees/{id}/password", post(records::password))
        .route(
            "/api/session",
            get(records::whoami)
                .post(auth::sign_in)
                .delete(auth::sign_out),
        )
        .route("/api/session/language", post(records::language))
        .fallback(guard::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::signed_in,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::local_only,
        ))
        .layer(axum::middleware::from_fn(guard::json_errors))
        .with_state(state)
}

#[derive(Deserialize)]
struct PageQuery {
    token: Option<String>,
}

async fn page(State(s): State<ApiState>, Query(q): Query<PageQuery>) -> Response {
    if let Some(t) = q.token
        && let Some(signed_in) = auth::link(State(s), &t).await
    {
        return signed_in;
    }
    web::shell()
}

async fn status(State(s): State<ApiState>) -> ApiResult {
    let relay = if s.sync.connected() {
        "connected"
    } else {
        "disconnected"
    };
    let sync = s.sync.state();
    let last_error = s.sync.last_error();
    let progress = s.sync.progress();
    let status = blocking(&s, move |r| r.status(relay, sync, last_error, progress)).await?;
    let mut status = json!(status);
    status["offline"] = json!(s.sync.offline());
    status["time_zone"] = json!(s.time_zone.map(|tz| tz.name()));
    Ok(Json(status))
}

/// Query parameters of `GET /api/clients` and `GET /api/metrics`, and the filter of a bulk
/// action.
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
    services: Option<String>,
    service_type: Option<String>,
    #[serde(default)]
    upcoming: bool,
}

impl ListQuery {
    fn links(&self) -> crate::app::LinkFilter {
        crate::app::LinkFilter {
            services: self.services.clone(),
            service_type: self.service_type.clone(),
            upcoming: self.upcoming,
        }
    }

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
    let page = blocking(&s, move |r| {
        let sort = match &q.sort {
            Some(s) => s.parse().map_err(AppError::BadInput)?,
            None => ficha_domain::search::Sort::Name,
        };
        r.client_rows(&q.filter()?, &q.links(), sort, q.offset, q.limit)
    })
    .await?;
    Ok(Json(json!(page)))
}

async fn metrics(State(s): State<ApiState>, Query(q): Query<ListQuery>) -> ApiResult {
    Ok(Json(
        blocking(&s, move |r| r.metrics(&q.filter()?, &q.links())).await?,
    ))
}

#[derive(Deserialize)]
struct NewClient {
    company: String,
    name: String,
    email: Option<String>,
    phone: Option<String>,
}

async fn create(State(s): State<ApiState>, Json(b): Json<NewClient>) -> ApiResult {
    created(&s, move |r| {
        let id = r.add_client(&b.company, &b.name, b.email.as_deref(), b.phone.as_deref())?;
        Ok(id.to_string())
    })
    .await
}

/// `GET /api/clients/similar?company=&name=&email=&phone=&tax_id=&birth_date=`: existing
/// clients the one about to be created may duplicate.
async fn similar(
    State(s): State<ApiState>,
    Query(p): Query<crate::duplicates::Prospect>,
) -> ApiResult {
    Ok(Json(json!(blocking(&s, move |r| r.similar(&p)).await?)))
}

async fn show(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(blocking(&s, move |r| r.show(parse_id(&id)?)).await?))
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
    done(&s, move |r| r.set_field(parse_id(&id)?, &b.field, &b.value)).await
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
    category: Option<String>,
    keywords: Option<Vec<String>>,
    attachments: Option<Vec<String>>,
    #[serde(default)]
    pinned: bool,
}

async fn add_note(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<NewNote>,
) -> ApiResult {
    created(&s, move |r| {
        let mut extras = Vec::new();
        extras.extend(b.category.map(|c| ("category".to_string(), c)));
        extras.extend(b.keywords.map(|k| ("keywords".to_string(), k.join(","))));
        extras.extend(
            b.attachments
                .map(|a| ("attachments".to_string(), a.join(","))),
        );
        if b.pinned {
            extras.push(("pinned".into(), "true".into()));
        }
        Ok(r.add_note_with(parse_id(&id)?, &b.text, &extras)?
            .to_string())
    })
    .await
}

#[derive(Deserialize)]
struct NewComment {
    text: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    pinned: bool,
    priority: Option<String>,
    appointment: Option<String>,
    attachments: Option<Vec<String>>,
}

async fn add_comment(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<NewComment>,
) -> ApiResult {
    created(&s, move |r| {
        let priority = b.priority.as_deref().unwrap_or("normal");
        let mut extras = Vec::new();
        extras.extend(b.appointment.map(|a| ("appointment".to_string(), a)));
        extras.extend(
            b.attachments
                .map(|a| ("attachments".to_string(), a.join(","))),
        );
        let c = r.add_comment(
            parse_id(&id)?,
            &b.text,
            b.private,
            b.pinned,
            priority,
            &extras,
        )?;
        Ok(c.to_string())
    })
    .await
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
    created(&s, move |r| {
        let a = r.add_alert(parse_id(&id)?, &b.kind, &b.priority, &b.description)?;
        Ok(a.to_string())
    })
    .await
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

async fn add_item(
    State(s): State<ApiState>,
    Path((id, section)): Path<(String, String)>,
    Json(b): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult {
    created(&s, move |r| {
        Ok(r.add_item(parse_id(&id)?, &section, &pairs(b))?.to_string())
    })
    .await
}

async fn set_item(
    State(s): State<ApiState>,
    Path((id, section, item)): Path<(String, String, String)>,
    Json(b): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult {
    done(&s, move |r| {
        r.set_item(parse_id(&id)?, &section, parse_item(&item)?, &pairs(b))
    })
    .await
}

async fn remove_item(
    State(s): State<ApiState>,
    Path((id, section, item)): Path<(String, String, String)>,
) -> ApiResult {
    done(&s, move |r| {
        r.remove_item(parse_id(&id)?, &section, parse_item(&item)?)
    })
    .await
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
    done(&s, move |r| r.group(parse_id(&id)?, &b.group, !b.remove)).await
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
    /// Reactivate even if the client may duplicate an active one.
    #[serde(default)]
    force: bool,
}

async fn set_state(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<StateBody>,
) -> ApiResult {
    done(&s, move |r| r.set_state(parse_id(&id)?, &b.state, b.force)).await
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
    done(&s, move |r| r.log(parse_id(&id)?, &b.kind, &b.text)).await
}

async fn duplicates(State(s): State<ApiState>) -> ApiResult {
    let list = blocking(&s, |r| r.duplicates()).await?;
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
struct MergeBody {
    survivor: String,
    other: String,
}

async fn merge(State(s): State<ApiState>, Json(b): Json<MergeBody>) -> ApiResult {
    let copied = blocking(&s, move |r| {
        r.merge(parse_id(&b.survivor)?, parse_id(&b.other)?)
    })
    .await?;
    Ok(Json(json!({ "ok": true, "copied": copied })))
}

#[derive(Deserialize)]
struct DismissBody {
    a: String,
    b: String,
}

async fn dismiss(State(s): State<ApiState>, Json(b): Json<DismissBody>) -> ApiResult {
    done(&s, move |r| r.dismiss(parse_id(&b.a)?, parse_id(&b.b)?)).await
}

#[derive(Deserialize)]
struct BulkBody {
    action: String,
    value: Option<String>,
    #[serde(default)]
    ids: Vec<String>,
    /// Confirms that a filter naming nothing means every client.
    #[serde(default)]
    all: bool,
    /// Reactivate even clients that may duplicate active ones.
    #[serde(default)]
    force: bool,
    #[serde(flatten)]
    filter: ListQuery,
}

async fn bulk(State(s): State<ApiState>, Json(b): Json<BulkBody>) -> ApiResult {
    let n = blocking(&s, move |r| {
        let ids = b
            .ids
            .iter()
            .map(|i| parse_id(i))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = b.filter.filter()?;
        r.check_filter(&filter)?;
        let selection = if ids.is_empty() {
            crate::app::Selection::Filter {
                filter: &filter,
                all: b.all,
            }
        } else {
            crate::app::Selection::Ids(&ids)
        };
        r.bulk(selection, &b.action, b.value.as_deref(), b.force)
    })
    .await?;
    Ok(Json(json!({ "changed": n })))
}

#[derive(Deserialize)]
struct AttachQuery {
    name: String,
    kind: Option<String>,
    mime: Option<String>,
}

/// `POST /api/clients/{id}/files?name=N[&kind=image|file][&mime=M]`, the raw bytes as body
/// (with the `X-Ficha-Request` header).
async fn attach(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    body: axum::body::Bytes,
) -> ApiResult {
    created(&s, move |r| {
        let item = r.attach(
            parse_id(&id)?,
            &q.name,
            &body,
            q.kind.as_deref(),
            q.mime.as_deref(),
        )?;
        Ok(item.to_string())
    })
    .await
}

/// `GET /api/clients/{id}/files/{item}`: the bytes, fetched from the relay on first use.
async fn file(
    State(s): State<ApiState>,
    Path((id, item)): Path<(String, String)>,
) -> Result<Response, ApiError> {
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
    let report = blocking(&s, move |r| {
        let days = b
            .older_than_days
            .unwrap_or(ficha_domain::purge::DEFAULT_RETENTION_DAYS);
        r.purge_trash(days)
    })
    .await?;
    Ok(Json(json!(report)))
}

/// `POST /api/clients/{id}/{notes|comments|alerts}/{item}` `{"text"?, "pinned"?, "active"?, …}`:
/// edits, pins, deactivates.
async fn edit_annotation(
    State(s): State<ApiState>,
    Path((id, collection, item)): Path<(String, String, String)>,
    Json(body): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult {
    done(&s, move |r| {
        let values: Vec<(String, String)> = body
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Array(a) => a
                        .iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect();
        r.edit_annotation(parse_id(&id)?, &collection, parse_item(&item)?, &values)
    })
    .await
}
