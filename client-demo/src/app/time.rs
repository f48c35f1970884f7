//! Quick time entry (seed 003): on "finish", the client's project and task are found or
//! created by rule, and the time is recorded on them. Two laptops doing this offline for the
//! same client end with one project and one task: a record the rule creates has an id derived
//! from what the rule saw and starts from a genesis change every replica writes byte for byte
//! the same (see `ficha_core::change::is_genesis`), so Automerge sees one document.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;
use uuid::Uuid;

use ficha_core::{Company, DocId};
use ficha_domain::record::{self, RecordFilter, RecordSort, RecordSummary};

use super::records::{Given, spec, values_of};
use super::{AppError, Replica, now_ms};

/// Project statuses a quick entry may record time on.
const ACTIVE: &[&str] = &["planned", "active"];

/// What a quick entry recorded: the entry and the project and task it went to.
#[derive(Debug, Clone, Serialize)]
pub struct QuickEntry {
    /// The time entry.
    pub entry: String,
    /// Its project (found, or created by the rule).
    pub project: String,
    /// Its task.
    pub task: String,
}

/// The quick entry form.
#[derive(Debug, Clone, Default)]
pub struct TimeForm {
    /// What was done.
    pub text: String,
    /// Who did it (id or code).
    pub employee: String,
    /// The day (YYYY-MM-DD).
    pub date: String,
    /// How long.
    pub minutes: Option<i64>,
    /// When to act next (YYYY-MM-DD).
    pub next_action: Option<String>,
    /// The project, when the client has several active ones.
    pub project: Option<String>,
}

/// What the rule decided for one record.
enum Found {
    Existing(String),
    Derived(Uuid),
}

fn text(r: &RecordSummary, k: &str) -> Option<String> {
    r.fields.get(k).and_then(Json::as_str).map(str::to_string)
}

impl Replica {
    fn linked_of_kind(&self, kind: &str, to: &str) -> Result<Vec<RecordSummary>, AppError> {
        self.list_records(
            &RecordFilter {
                kind: Some(kind.into()),
                linked: Some(to.into()),
                ..RecordFilter::default()
            },
            &RecordSort::default(),
            0,
            None,
        )
    }

    /// Records time on a client as the quick entry form does (see the module's rule).
    pub fn add_time(&self, client: DocId, form: &TimeForm) -> Result<QuickEntry, AppError> {
        self.require(super::Role::Staff)?;
        let summary = self.client_summary(&client)?;
        let company = Company::new(&summary.company)?;
        self.check_granted(&company)?;
        self.check_actor_company(&company)?;
        let employee = self.active_employee(&form.employee)?;
        if employee.company != summary.company {
            return Err(AppError::BadInput(format!(
                "{} is not an employee of {}",
                employee.name, summary.company
            )));
        }
        if form.text.trim().is_empty() {
            return Err(AppError::BadInput("say what was done: --text".into()));
        }
        let client_id = client.to_string();
        let client_code = summary.code.clone().unwrap_or_default();
        let projects: Vec<RecordSummary> = self
            .linked_of_kind("project", &client_id)?
            .into_iter()
            .filter(|p| p.client.as_deref() == Some(client_id.as_str()))
            .collect();
        let project = match &form.project {
            Some(p) => {
                let chosen = projects.iter().find(|r| r.id == p.trim()).ok_or_else(|| {
                    AppError::NotFound(format!("client {client} has no project {p}"))
                })?;
                Found::Existing(chosen.id.clone())
            }
            None => choose_project(&projects, &client_code, &summary.company, &client_id)?,
        };
        let project_id = match &project {
            Found::Existing(id) => id.clone(),
            Found::Derived(id) => id.to_string(),
        };
        let tasks = match &project {
            Found::Existing(id) => self.linked_of_kind("task", id)?,
            Found::Derived(_) => Vec::new(),
        };
        let task = choose_task(&tasks, &summary.company, &project_id);
        let task_id = match &task {
            Found::Existing(id) => id.clone(),
            Found::Derived(id) => id.to_string(),
        };

        let who = self.who();
        let now = now_ms();
        let client_uuid = Uuid::from_bytes(client.0);
        let batch = self.batch()?;
        if let Found::Derived(id) = project {
            let s = spec("project")?;
            let genesis = record::genesis(s, id, company.as_str(), Some(client_uuid))?;
            if batch.ensure_genesis(DocId::from(id), &company, &genesis)? {
                let mut given = vec![
                    ("name".to_string(), Given::Text(summary.name.clone())),
                    ("status".to_string(), Given::Text("active".into())),
                ];
                if !client_code.is_empty() {
                    given.push(("code".into(), Given::Text(client_code.clone())));
                }
                let values = values_of(s, &given)?;
                batch.edit_doc(DocId::from(id), |d| {
                    record::fill(d, &values, &who, Uuid::new_v4(), now).map_err(AppError::from)
                })?;
            }
        }
        let task_doc = super::parse_id(&task_id)?;
        if let Found::Derived(id) = task {
            let s = spec("task")?;
            let genesis = record::genesis(s, id, company.as_str(), Some(client_uuid))?;
            if batch.ensure_genesis(task_doc, &company, &genesis)? {
                let given = vec![
                    ("project".to_string(), Given::Text(project_id.clone())),
                    ("title".to_string(), Given::Text("Seguimiento".into())),
                ];
                let values = values_of(s, &given)?;
                batch.edit_doc(task_doc, |d| {
                    record::fill(d, &values, &who, Uuid::new_v4(), now).map_err(AppError::from)
                })?;
            }
        }
        let entry_spec = spec("time_entry")?;
        let mut given = vec![
            ("project".to_string(), Given::Text(project_id.clone())),
            ("task".to_string(), Given::Text(task_id.clone())),
            ("employee".to_string(), Given::Text(employee.id.clone())),
            ("date".to_string(), Given::Text(form.date.clone())),
            ("text".to_string(), Given::Text(form.text.clone())),
        ];
        given.extend(
            form.minutes
                .map(|m| ("minutes".to_string(), Given::Text(m.to_string()))),
        );
        given.extend(
            form.next_action
                .clone()
                .map(|d| ("next_action".to_string(), Given::Text(d))),
        );
        let values = values_of(entry_spec, &given)?;
        let entry = Uuid::new_v4();
        batch.create_doc(DocId::from(entry), &company, |d| {
            record::create(
                d,
                entry_spec,
                entry,
                company.as_str(),
                Some(client_uuid),
                &values,
                &who,
                Uuid::new_v4(),
                now,
            )
            .map_err(AppError::from)
        })?;
        if let Some(day) = &form.next_action {
            // The latest entry's date wins on every replica: the field merges by time.
            let s = spec("task")?;
            let values = values_of(s, &[("next_action".to_string(), Given::Text(day.clone()))])?;
            batch.edit_doc(task_doc, |d| {
                record::set(
                    d,
                    &values,
                    &who,
                    &mut std::iter::repeat_with(Uuid::new_v4),
                    now,
                )
                .map_err(AppError::from)
            })?;
        }
        self.commit(batch)?;
        Ok(QuickEntry {
            entry: entry.to_string(),
            project: project_id,
            task: task_id,
        })
    }

    /// Minutes recorded, in total and per client, employee and project, of the entries the
    /// filter selects (`linked` a client, a project or an employee; `since`/`until` days).
    pub fn time_report(&self, filter: &RecordFilter) -> Result<Json, AppError> {
        let mut filter = filter.clone();
        filter.kind = Some("time_entry".into());
        let entries = self.list_records(&filter, &RecordSort::default(), 0, None)?;
        let mut by: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
        let mut total = 0;
        for e in &entries {
            let m = e.fields.get("minutes").and_then(Json::as_i64).unwrap_or(0);
            total += m;
            for (axis, key) in [
                ("client", e.client.clone()),
                ("employee", text(e, "employee")),
                ("project", text(e, "project")),
            ] {
                *by.entry(axis)
                    .or_default()
                    .entry(key.unwrap_or_default())
                    .or_default() += m;
            }
        }
        Ok(serde_json::json!({
            "entries": entries.len(),
            "total_minutes": total,
            "by_client": by.get("client"),
            "by_employee": by.get("employee"),
            "by_project": by.get("project"),
        }))
    }
}

/// The project rule: none active, create one (coded as the client); one active, or several of
/// which one has the client's code, use it; several without, ask.
fn choose_project(
    projects: &[RecordSummary],
    client_code: &str,
    company: &str,
    client: &str,
) -> Result<Found, AppError> {
    let active: Vec<&RecordSummary> = projects
        .iter()
        .filter(|p| p.status.as_deref().is_some_and(|s| ACTIVE.contains(&s)))
        .collect();
    match active.as_slice() {
        [] => {
            let known: Vec<String> = projects.iter().map(|p| p.id.clone()).collect();
            Ok(Found::Derived(record::derived_id(
                "project", company, client, &known,
            )))
        }
        [one] => Ok(Found::Existing(one.id.clone())),
        many => {
            let coded: Vec<&&RecordSummary> = many
                .iter()
                .filter(|p| {
                    !client_code.is_empty() && text(p, "code").as_deref() == Some(client_code)
                })
                .collect();
            if let [one] = coded.as_slice() {
                return Ok(Found::Existing(one.id.clone()));
            }
            let list: Vec<String> = many
                .iter()
                .map(|p| format!("{} ({})", p.id, p.title))
                .collect();
            Err(AppError::Conflict(format!(
                "this client has {} active projects and none is coded {client_code:?}: choose one with --project ID: {}",
                many.len(),
                list.join(", ")
            )))
        }
    }
}

/// The task rule: no pending task, create one; else the most recent pending one.
fn choose_task(tasks: &[RecordSummary], company: &str, project: &str) -> Found {
    let newest = tasks
        .iter()
        .filter(|t| t.status.as_deref() == Some("pending"))
        .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    match newest {
        Some(t) => Found::Existing(t.id.clone()),
        None => {
            let known: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
            Found::Derived(record::derived_id("task", company, project, &known))
        }
    }
}
