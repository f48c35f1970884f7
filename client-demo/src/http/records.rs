//! `/api/kinds`, `/api/records`, `/api/employees`: the same actions as `ficha record` and
//! `ficha employee`, in the same JSON shapes.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use ficha_domain::record::{RecordFilter, RecordSort};

use super::{ApiResult, ApiState, blocking, created, done};
use crate::app::{AppError, Given, parse_id};

/// `GET /api/kinds`.
pub(super) async fn kinds() -> ApiResult {
    Ok(Json(crate::app::records::kinds_json()))
}

/// `GET /api/sections`: the client file's collections and their fields.
pub(super) async fn sections() -> ApiResult {
    Ok(Json(crate::app::records::sections_json()))
}

/// Query of `GET /api/records` and `GET /api/clients/{id}/records`.
#[derive(Deserialize, Default)]
pub(super) struct RecordQuery {
    kind: Option<String>,
    client: Option<String>,
    company: Option<String>,
    status: Option<String>,
    search: Option<String>,
    since: Option<String>,
    until: Option<String>,
    sort: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

impl RecordQuery {
    fn filter(&self) -> Result<(RecordFilter, RecordSort), AppError> {
        if let Some(c) = &self.client {
            parse_id(c)?;
        }
        let filter = RecordFilter {
            kind: self.kind.clone(),
            linked: self.client.clone(),
            company: self.company.clone(),
            status: self.status.clone(),
            search: self.search.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            fields: Vec::new(),
        };
        let sort = self
            .sort
            .as_deref()
            .unwrap_or("")
            .parse()
            .unwrap_or_default();
        Ok((filter, sort))
    }
}

/// `GET /api/records?kind=&client=&…`.
pub(super) async fn list(State(s): State<ApiState>, Query(q): Query<RecordQuery>) -> ApiResult {
    let rows = blocking(&s, move |r| {
        let (filter, sort) = q.filter()?;
        if filter.kind.is_none() && filter.linked.is_none() && filter.search.is_none() {
            return Err(AppError::BadInput(
                "name a kind (?kind=invoice), a client (?client=ID) or a search (?search=…)".into(),
            ));
        }
        r.list_records(&filter, &sort, q.offset, q.limit)
    })
    .await?;
    Ok(Json(json!(rows)))
}

/// `GET /api/clients/{id}/records?kind=`: a client's tab.
pub(super) async fn of_client(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(mut q): Query<RecordQuery>,
) -> ApiResult {
    q.client = Some(id);
    let rows = blocking(&s, move |r| {
        let (filter, sort) = q.filter()?;
        r.client_summary(&parse_id(filter.linked.as_deref().unwrap_or_default())?)?;
        r.list_records(&filter, &sort, q.offset, q.limit)
    })
    .await?;
    Ok(Json(json!(rows)))
}

/// `GET /api/clients/{id}/statement`.
pub(super) async fn statement(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(
        blocking(&s, move |r| r.statement(&parse_id(&id)?)).await?,
    ))
}

/// Field values of a JSON body: every key but the ones that place the record.
pub(super) fn given(body: &serde_json::Map<String, Value>, skip: &[&str]) -> Vec<(String, Given)> {
    body.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), Given::Json(v.clone())))
        .collect()
}

pub(super) fn object(body: Value) -> Result<serde_json::Map<String, Value>, AppError> {
    match body {
        Value::Object(m) => Ok(m),
        other => Err(AppError::BadInput(format!(
            "the body must be a JSON object of fields, not {other}"
        ))),
    }
}

/// `POST /api/records` `{"kind", "client"?, "company"?, <field>: value…}`.
pub(super) async fn create(State(s): State<ApiState>, Json(body): Json<Value>) -> ApiResult {
    created(&s, move |r| {
        let body = object(body)?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let kind =
            text("kind").ok_or_else(|| AppError::BadInput("give the record's \"kind\"".into()))?;
        let client = text("client").as_deref().map(parse_id).transpose()?;
        let values = given(&body, &["kind", "client", "company"]);
        Ok(
            r.add_record(&kind, client, text("company").as_deref(), &values)?
                .to_string(),
        )
    })
    .await
}

/// `GET /api/records/{id}`.
pub(super) async fn show(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(
        blocking(&s, move |r| r.show_record(parse_id(&id)?)).await?,
    ))
}

/// `POST /api/records/{id}` `{<field>: value…}`.
pub(super) async fn set(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    done(&s, move |r| {
        let body = object(body)?;
        r.set_record(parse_id(&id)?, &given(&body, &[]))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct EmployeeQuery {
    company: Option<String>,
}

/// `GET /api/employees?company=`.
pub(super) async fn employees(
    State(s): State<ApiState>,
    Query(q): Query<EmployeeQuery>,
) -> ApiResult {
    let list = blocking(&s, move |r| r.employees(q.company.as_deref())).await?;
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
pub(super) struct NewEmployee {
    company: String,
    name: String,
    code: Option<String>,
    email: Option<String>,
    role: Option<String>,
    centre: Option<String>,
    password: Option<String>,
}

/// `POST /api/employees` (admins): `{"company", "name", "code"?, "email"?, "role"?,
/// "centre"?, "password"?}`.
pub(super) async fn add_employee(
    State(s): State<ApiState>,
    Json(b): Json<NewEmployee>,
) -> ApiResult {
    created(&s, move |r| {
        let id = r.add_employee(
            &b.company,
            &b.name,
            b.code.as_deref(),
            b.email.as_deref(),
            b.role.as_deref(),
            b.centre.as_deref(),
        )?;
        if let Some(p) = &b.password {
            r.set_password(&id.to_string(), p)?;
        }
        Ok(id.to_string())
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct Password {
    password: String,
}

/// `POST /api/employees/{id}/password` `{"password"}`: the employee or an admin.
pub(super) async fn password(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<Password>,
) -> ApiResult {
    done(&s, move |r| r.set_password(&id, &b.password)).await
}

/// `GET /api/session`: who this session acts as.
pub(super) async fn whoami(State(s): State<ApiState>) -> ApiResult {
    let who = blocking(&s, |r| Ok(r.acting_json())).await?;
    Ok(Json(who))
}

#[derive(Deserialize)]
pub(super) struct Language {
    language: String,
}

/// `POST /api/session/language` `{"language": "es"|"en"}`: the signed-in employee's own
/// language, kept in their employee record so every replica they sign in to speaks it.
pub(super) async fn language(State(s): State<ApiState>, Json(b): Json<Language>) -> ApiResult {
    done(&s, move |r| match r.acting_employee() {
        Some(id) => r.set_language(&id, &b.language),
        None => Err(AppError::BadInput(
            "sign in as an employee to keep a language; the key holder uses ?lang=en".into(),
        )),
    })
    .await
}

/// `GET /api/clients/{id}/wallet`.
pub(super) async fn wallet(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let w = blocking(&s, move |r| r.wallet(&parse_id(&id)?)).await?;
    Ok(Json(json!(w)))
}

#[derive(Deserialize)]
pub(super) struct WalletMove {
    #[serde(rename = "type")]
    kind: String,
    amount: Option<String>,
    reverses: Option<String>,
    note: Option<String>,
}

/// `POST /api/clients/{id}/wallet` `{"type": "add_funds|deduct|reward|redeem", "amount":
/// "50EUR"}` or `{"type": "reversal", "reverses": MOVEMENT}`.
pub(super) async fn wallet_move(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(b): Json<WalletMove>,
) -> ApiResult {
    created(&s, move |r| {
        let client = parse_id(&id)?;
        let made = match (b.kind.as_str(), b.reverses, b.amount) {
            ("reversal", Some(m), _) => r.wallet_reverse(client, &m, b.note.as_deref())?,
            ("reversal", None, _) => {
                return Err(AppError::BadInput(
                    "a reversal names the movement it reverses: \"reverses\"".into(),
                ));
            }
            (kind, _, Some(amount)) => r.wallet_move(client, kind, &amount, b.note.as_deref())?,
            (_, _, None) => {
                return Err(AppError::BadInput(
                    "give the \"amount\", e.g. \"50EUR\"".into(),
                ));
            }
        };
        Ok(made.to_string())
    })
    .await
}

/// `GET /api/clients/{id}/relations`: relations and the account tree.
pub(super) async fn relations(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(
        blocking(&s, move |r| r.relations_of(&parse_id(&id)?)).await?,
    ))
}

#[derive(Deserialize)]
pub(super) struct NewRelation {
    parent: String,
    child: String,
    #[serde(rename = "type", default = "parent_kind")]
    kind: String,
}

fn parent_kind() -> String {
    "parent".into()
}

/// `POST /api/relations` `{"parent", "child", "type"?: "parent|partner|other"}`.
pub(super) async fn relate(State(s): State<ApiState>, Json(b): Json<NewRelation>) -> ApiResult {
    created(&s, move |r| {
        Ok(
            r.relate(parse_id(&b.parent)?, parse_id(&b.child)?, &b.kind)?
                .to_string(),
        )
    })
    .await
}
