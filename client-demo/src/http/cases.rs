//! Support cases, notifications and quick time entry over HTTP: the operations of
//! `ficha case`, `ficha notifications` and `ficha time`.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::cases::{CaseFilter, case_json};
use crate::app::time::TimeForm;
use crate::app::{AppError, moment_ms, now_ms, parse_id};

use super::records::{given, object};
use super::{ApiResult, ApiState, blocking, done};

#[derive(Deserialize)]
pub(super) struct CaseQuery {
    assignee: Option<String>,
    status: Option<String>,
    client: Option<String>,
    #[serde(default)]
    breached: bool,
    #[serde(default)]
    at_risk: bool,
    /// ISO 8601; now when absent.
    at: Option<String>,
}

/// `GET /api/cases?assignee=&status=&client=&breached=true&at_risk=true&at=`.
pub(super) async fn list(State(s): State<ApiState>, Query(q): Query<CaseQuery>) -> ApiResult {
    let rows = blocking(&s, move |r| {
        let filter = CaseFilter {
            assignee: q.assignee,
            status: q.status,
            breached: q.breached,
            at_risk: q.at_risk,
            client: q.client.as_deref().map(parse_id).transpose()?,
        };
        let at =
            q.at.as_deref()
                .map(moment_ms)
                .transpose()?
                .unwrap_or_else(now_ms);
        let cases = r.cases(&filter, at)?;
        Ok(cases
            .iter()
            .map(|(c, sla)| case_json(c, sla))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!(rows)))
}

/// `POST /api/cases` `{"client", "title", "category", "status", "priority", "description",
/// "assignee", …}` → `{"id", "number"}`.
pub(super) async fn create(State(s): State<ApiState>, Json(body): Json<Value>) -> ApiResult {
    let (id, number) = blocking(&s, move |r| {
        let body = object(body)?;
        let client = body
            .get("client")
            .and_then(Value::as_str)
            .ok_or_else(|| AppError::BadInput("give the case's \"client\"".into()))?;
        r.add_case(parse_id(client)?, &given(&body, &["client"]))
    })
    .await?;
    Ok(Json(json!({"id": id.to_string(), "number": number})))
}

/// `POST /api/cases/{id}` `{<field>: value…}`; a status change is an SLA event.
pub(super) async fn set(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    done(&s, move |r| {
        let body = object(body)?;
        r.set_case(parse_id(&id)?, &given(&body, &[]))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct NotificationQuery {
    #[serde(default)]
    all: bool,
    at: Option<String>,
}

fn signed_in(r: &crate::app::Replica) -> Result<String, AppError> {
    r.acting_employee().ok_or_else(|| {
        AppError::BadInput(
            "notifications belong to an employee: sign in as one (POST /api/session)".into(),
        )
    })
}

/// `GET /api/notifications?all=true&at=`: the signed-in employee's.
pub(super) async fn notifications(
    State(s): State<ApiState>,
    Query(q): Query<NotificationQuery>,
) -> ApiResult {
    let list = blocking(&s, move |r| {
        let at =
            q.at.as_deref()
                .map(moment_ms)
                .transpose()?
                .unwrap_or_else(now_ms);
        r.notifications(&signed_in(r)?, q.all, at)
    })
    .await?;
    Ok(Json(json!(list)))
}

/// `POST /api/notifications/{id}/read`.
pub(super) async fn read(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    done(&s, move |r| r.mark_read(&signed_in(r)?, &id)).await
}

#[derive(Deserialize)]
pub(super) struct TimeBody {
    text: String,
    employee: String,
    date: String,
    minutes: Option<i64>,
    next_action: Option<String>,
    project: Option<String>,
}

/// `POST /api/clients/{id}/time` `{"text", "employee", "date", "minutes"?, "next_action"?,
/// "project"?}` → `{"entry", "project", "task"}`.
pub(super) async fn add_time(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<TimeBody>,
) -> ApiResult {
    let done = blocking(&s, move |r| {
        let form = TimeForm {
            text: b.text,
            employee: b.employee,
            date: b.date,
            minutes: b.minutes,
            next_action: b.next_action,
            project: b.project,
        };
        r.add_time(parse_id(&id)?, &form)
    })
    .await?;
    Ok(Json(json!(done)))
}

#[derive(Deserialize)]
pub(super) struct ReportQuery {
    of: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// `GET /api/time/report?of=CLIENT|PROJECT|EMPLOYEE&since=&until=`.
pub(super) async fn report(State(s): State<ApiState>, Query(q): Query<ReportQuery>) -> ApiResult {
    Ok(Json(
        blocking(&s, move |r| {
            let employee = match &q.of {
                Some(o) if parse_id(o).is_err() => Some(r.employee(o)?.id),
                _ => None,
            };
            r.time_report(&ficha_domain::record::RecordFilter {
                linked: employee.or(q.of),
                since: q.since,
                until: q.until,
                ..Default::default()
            })
        })
        .await?,
    ))
}

/// `GET /api/clients/{id}/messages`: every message with its status.
pub(super) async fn messages(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let list = blocking(&s, move |r| r.messages(&parse_id(&id)?)).await?;
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
pub(super) struct NewMessage {
    to: String,
    subject: String,
    #[serde(default)]
    body: String,
}

/// `POST /api/clients/{id}/messages` `{"to", "subject", "body"}` → `{"id"}` (queued).
pub(super) async fn send_message(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(m): Json<NewMessage>,
) -> ApiResult {
    super::created(&s, move |r| {
        Ok(r.send_message(parse_id(&id)?, &m.to, &m.subject, &m.body)?
            .to_string())
    })
    .await
}

/// `POST /api/messages/{id}/retry`: a failed message back in the queue.
pub(super) async fn retry(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    done(&s, move |r| r.retry_message(parse_id(&id)?)).await
}
