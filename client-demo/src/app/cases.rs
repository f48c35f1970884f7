//! Support cases: numbered on save from this replica's series, their SLA computed from the
//! events they keep, and the notifications of the employee they are assigned to.

use std::collections::BTreeSet;

use serde_json::{Value as Json, json};

use ficha_core::DocId;
use ficha_domain::case::{self, CaseEvent, Notification};
use ficha_domain::record::{self, RecordFilter, RecordSort, RecordSummary, Stored};
use ficha_domain::sla::{Sla, State};

use super::records::{Also, Given};
use super::{AppError, Replica, iso, now_ms};

/// Categories a company that declared none offers.
pub const DEFAULT_CATEGORIES: &[&str] = &[
    "technical_problem",
    "query",
    "request",
    "complaint",
    "other",
];

/// What `case list` selects.
#[derive(Debug, Default, Clone)]
pub struct CaseFilter {
    /// Assigned to this employee (id or code).
    pub assignee: Option<String>,
    /// In this status.
    pub status: Option<String>,
    /// Only cases past a target.
    pub breached: bool,
    /// Only cases with less than a fifth of their time left.
    pub at_risk: bool,
    /// Of this client.
    pub client: Option<DocId>,
}

fn text(r: &RecordSummary, k: &str) -> Option<String> {
    r.fields.get(k).and_then(Json::as_str).map(str::to_string)
}

fn given_text(given: &[(String, Given)], name: &str) -> Option<String> {
    given.iter().find_map(|(k, v)| match v {
        _ if k != name => None,
        Given::Text(t) => Some(t.clone()),
        Given::Json(Json::String(t)) => Some(t.clone()),
        Given::Json(_) => None,
    })
}

fn events_value(at: i64, events: &[CaseEvent]) -> Stored {
    Stored::Set(events.iter().map(|e| case::encode(at, e)).collect())
}

impl Replica {
    /// Opens a case on `client`; returns its id and number. `given` holds the form's fields
    /// (title, category, status, priority, description, assignee, contact, department,
    /// policy, …); every required one missing is named in the refusal.
    pub fn add_case(
        &self,
        client: DocId,
        given: &[(String, Given)],
    ) -> Result<(DocId, String), AppError> {
        let spec = super::records::spec("case")?;
        let missing: Vec<String> = spec
            .fields
            .iter()
            .filter(|f| f.required)
            .filter(|f| given_text(given, f.name).is_none_or(|v| v.trim().is_empty()))
            .map(|f| f.name.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(ficha_domain::DomainError::Missing {
                kind: "case".into(),
                fields: missing,
            }
            .into());
        }
        let summary = self.client_summary(&client)?;
        let mut given = given.to_vec();
        self.check_case_fields(&summary.company, Some(client), &mut given)?;
        let status = given_text(&given, "status").unwrap_or_default();
        let assignee = given_text(&given, "assignee").unwrap_or_default();
        let now = now_ms();
        let events = events_value(now, &case::created(&status, &assignee));
        let id = self.add_record_with(
            "case",
            Some(client),
            None,
            &given,
            vec![("events", events)],
            now,
        )?;
        let number = text(&self.record_summary(&id)?, "number").unwrap_or_default();
        Ok((id, number))
    }

    /// Sets fields of a case: a status change adds its SLA events, a new assignee their
    /// assignment, in the same edit.
    pub fn set_case(&self, id: DocId, given: &[(String, Given)]) -> Result<(), AppError> {
        let current = self.record_summary(&id)?;
        if current.kind != "case" {
            return Err(AppError::BadInput(format!(
                "{id} is a {}, not a case: use `ficha record set`",
                current.kind
            )));
        }
        let mut given = given.to_vec();
        self.check_case_fields(&current.company, None, &mut given)?;
        let mut events = Vec::new();
        if let Some(new) = given_text(&given, "status") {
            let old = current.status.clone().unwrap_or_default();
            events.extend(case::status_changed(&old, &new, case::answered(&current)));
        }
        if let Some(a) = given_text(&given, "assignee")
            && text(&current, "assignee").as_deref() != Some(a.as_str())
        {
            events.push(CaseEvent::Assigned(a));
        }
        let also: Also<'_> = Box::new(move |d, now| {
            let members: Vec<String> = events.iter().map(|e| case::encode(now, e)).collect();
            record::add_members(d, "events", &members, now)?;
            Ok(())
        });
        self.set_record_with(id, &given, Some(also))
    }

    /// Checks what the form constrains beyond the kind: the category is one of the company's,
    /// the contact one of the client's, the assignee an active employee of the company (given
    /// by id or code; stored by id).
    fn check_case_fields(
        &self,
        company: &str,
        client: Option<DocId>,
        given: &mut [(String, Given)],
    ) -> Result<(), AppError> {
        for (k, v) in given.iter_mut() {
            let Some(value) = (match v {
                Given::Text(t) => Some(t.clone()),
                Given::Json(Json::String(t)) => Some(t.clone()),
                Given::Json(_) => None,
            }) else {
                continue;
            };
            match k.as_str() {
                "category" => {
                    let offered = self.case_categories(company)?;
                    if !offered.contains(&value) {
                        return Err(AppError::BadInput(format!(
                            "category {value:?} is not one of {company}'s: {}",
                            offered.join(", ")
                        )));
                    }
                }
                "assignee" => {
                    let e = self.employee(&value)?;
                    if e.company != company || !e.active {
                        return Err(AppError::BadInput(format!(
                            "assignee {value:?} is not an active employee of {company}"
                        )));
                    }
                    *v = Given::Text(e.id);
                }
                "contact" if !value.is_empty() => {
                    let Some(client) = client else { continue };
                    let file = serde_json::to_value(self.client_file(client)?)?;
                    let contacts = file["contacts"].as_array().cloned().unwrap_or_default();
                    if !contacts
                        .iter()
                        .any(|c| c["id"].as_str() == Some(value.as_str()))
                    {
                        let names: Vec<String> = contacts
                            .iter()
                            .map(|c| {
                                format!(
                                    "{} ({})",
                                    c["id"].as_str().unwrap_or_default(),
                                    c["name"].as_str().unwrap_or_default()
                                )
                            })
                            .collect();
                        return Err(AppError::BadInput(format!(
                            "contact {value:?} is not one of this client's contacts{}",
                            if names.is_empty() {
                                ": it has none; add one with `ficha item add ID contacts name=…`"
                                    .to_string()
                            } else {
                                format!(": {}", names.join(", "))
                            }
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The categories a company's cases may have: its `case_category` records, or the
    /// built-in list when it declared none.
    pub fn case_categories(&self, company: &str) -> Result<Vec<String>, AppError> {
        let declared = self.list_records(
            &RecordFilter {
                kind: Some("case_category".into()),
                company: Some(company.into()),
                ..RecordFilter::default()
            },
            &RecordSort::default(),
            0,
            None,
        )?;
        let mut names: Vec<String> = declared.iter().filter_map(|r| text(r, "name")).collect();
        if names.is_empty() {
            names = DEFAULT_CATEGORIES.iter().map(|c| c.to_string()).collect();
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Cases with their service level at `now_ms`, as the filter selects.
    pub fn cases(
        &self,
        filter: &CaseFilter,
        now_ms: i64,
    ) -> Result<Vec<(RecordSummary, Sla)>, AppError> {
        let assignee = match &filter.assignee {
            Some(a) => Some(self.employee(a)?.id),
            None => None,
        };
        let listed = self.list_records(
            &RecordFilter {
                kind: Some("case".into()),
                status: filter.status.clone(),
                linked: assignee
                    .clone()
                    .or_else(|| filter.client.map(|c| c.to_string())),
                ..RecordFilter::default()
            },
            &RecordSort::default(),
            0,
            None,
        )?;
        let mut plans = std::collections::HashMap::new();
        let mut out = Vec::new();
        for c in listed {
            if assignee.is_some() && text(&c, "assignee") != assignee {
                continue;
            }
            if filter
                .client
                .is_some_and(|id| c.client.as_deref() != Some(&id.to_string()))
            {
                continue;
            }
            let policy = text(&c, "policy");
            let key = (c.company.clone(), policy.clone());
            if !plans.contains_key(&key) {
                let plan = self.plan_for(&c.company, policy.as_deref())?;
                plans.insert(key.clone(), plan);
            }
            let Some(plan) = plans.get(&key) else {
                continue;
            };
            let sla = case::sla_of(&c, plan, now_ms);
            if (filter.breached && sla.state != State::Breached)
                || (filter.at_risk && sla.state != State::AtRisk)
            {
                continue;
            }
            out.push((c, sla));
        }
        Ok(out)
    }

    /// The SLA plan of a case of `company` under `policy` (a policy record's id).
    fn plan_for(&self, company: &str, policy: Option<&str>) -> Result<case::Plan, AppError> {
        let plans = self.list_records(
            &RecordFilter {
                kind: Some("sla_plan".into()),
                company: Some(company.into()),
                ..RecordFilter::default()
            },
            &RecordSort::default(),
            0,
            None,
        )?;
        let named = match policy {
            Some(p) => self
                .record_summary(&super::parse_id(p)?)
                .ok()
                .and_then(|r| text(&r, "sla_plan")),
            None => None,
        };
        Ok(case::plan_for(&plans, named.as_deref())?)
    }

    /// The notifications of `employee` (id or code) at `now_ms`; unread only unless `all`.
    pub fn notifications(
        &self,
        employee: &str,
        all: bool,
        now_ms: i64,
    ) -> Result<Vec<Notification>, AppError> {
        let e = self.employee(employee)?;
        let read = self.read_marks(&e.id)?;
        let cases = self.cases(
            &CaseFilter {
                assignee: Some(e.id.clone()),
                ..CaseFilter::default()
            },
            now_ms,
        )?;
        let mut out = case::notifications(&cases, &e.id, &read);
        out.retain(|n| all || !n.read);
        Ok(out)
    }

    fn read_marks(&self, employee: &str) -> Result<BTreeSet<String>, AppError> {
        let r = self.record_summary(&super::parse_id(employee)?)?;
        Ok(match r.fields.get("read_notifications") {
            Some(Json::Array(a)) => a
                .iter()
                .filter_map(Json::as_str)
                .map(String::from)
                .collect(),
            _ => BTreeSet::new(),
        })
    }

    /// Marks a notification of `employee` read, on every replica of theirs once synced.
    pub fn mark_read(&self, employee: &str, id: &str) -> Result<(), AppError> {
        let e = self.employee(employee)?;
        let known = self.notifications(&e.id, true, now_ms())?;
        if !known.iter().any(|n| n.id == id.trim()) {
            return Err(AppError::NotFound(format!(
                "{} has no notification {id}; `ficha notifications --as {}` lists them",
                e.name,
                e.code.as_deref().unwrap_or(&e.id)
            )));
        }
        if !self.may_write() {
            return Err(AppError::ReadOnly);
        }
        let doc = super::parse_id(&e.id)?;
        let member = vec![id.trim().to_string()];
        self.store().edit_doc(doc, |d| {
            record::add_members(d, "read_notifications", &member, now_ms()).map_err(AppError::from)
        })?;
        self.edited();
        Ok(())
    }
}

/// A case as `case list --json` shows it: its summary, number and SLA with ISO 8601 times.
pub fn case_json(c: &RecordSummary, sla: &Sla) -> Json {
    let at = |ms: Option<i64>| ms.and_then(iso).map_or(Json::Null, Json::String);
    json!({
        "id": c.id,
        "number": text(c, "number"),
        "title": text(c, "title"),
        "client": c.client,
        "company": c.company,
        "status": c.status,
        "priority": text(c, "priority"),
        "category": text(c, "category"),
        "assignee": text(c, "assignee"),
        "department": text(c, "department"),
        "policy": text(c, "policy"),
        "created_at": iso(c.created_at),
        "sla": {
            "state": sla.state,
            "first_response_due": at(sla.first_response_due),
            "resolution_due": at(sla.resolution_due),
        },
    })
}
