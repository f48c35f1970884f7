//! Support cases (seed 004): the events a case keeps, the SLA plan that applies to it, and the
//! notifications its assignee gets. Everything here is computed from synced records and a
//! `now` given by the caller, so every replica holding the same records gives the same answer.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, NaiveTime};
use serde::Serialize;
use serde_json::Value as Json;

use crate::error::DomainError;
use crate::record::RecordSummary;
use crate::record::kinds::PRIORITY;
use crate::sla::{self, Calendar, Event, Sla, Targets};

/// Statuses that end the work on a case.
pub const DONE: &[&str] = &["resolved", "closed"];

/// Something that happened to a case: an SLA event or an assignment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CaseEvent {
    /// An event the service level counts.
    Sla(Event),
    /// Given to this employee (id).
    Assigned(String),
}

/// How an event is kept: a member of the case's `events` set, `<ms>|<what>[|<arg>]`. Two
/// replicas adding the same event at the same moment add one member.
pub fn encode(at_ms: i64, event: &CaseEvent) -> String {
    let what = match event {
        CaseEvent::Sla(Event::Created) => "created".to_string(),
        CaseEvent::Sla(Event::FirstResponse) => "first_response".to_string(),
        CaseEvent::Sla(Event::Status(s)) => format!("status|{s}"),
        CaseEvent::Sla(Event::Resolved) => "resolved".to_string(),
        CaseEvent::Sla(Event::Reopened) => "reopened".to_string(),
        CaseEvent::Assigned(e) => format!("assigned|{e}"),
    };
    format!("{:013}|{what}", at_ms.max(0))
}

/// The event a member holds; None for one this version does not know (kept, not counted).
pub fn decode(member: &str) -> Option<(i64, CaseEvent)> {
    let mut parts = member.splitn(3, '|');
    let at = parts.next()?.parse().ok()?;
    let event = match (parts.next()?, parts.next()) {
        ("created", None) => CaseEvent::Sla(Event::Created),
        ("first_response", None) => CaseEvent::Sla(Event::FirstResponse),
        ("status", Some(s)) => CaseEvent::Sla(Event::Status(s.to_string())),
        ("resolved", None) => CaseEvent::Sla(Event::Resolved),
        ("reopened", None) => CaseEvent::Sla(Event::Reopened),
        ("assigned", Some(e)) => CaseEvent::Assigned(e.to_string()),
        _ => return None,
    };
    Some((at, event))
}

/// The events a case starts with.
pub fn created(status: &str, assignee: &str) -> Vec<CaseEvent> {
    let mut out = vec![
        CaseEvent::Sla(Event::Created),
        CaseEvent::Sla(Event::Status(status.to_string())),
        CaseEvent::Assigned(assignee.to_string()),
    ];
    // Opened already past "new": whoever opened it was talking to the client.
    if status != "new" {
        out.push(CaseEvent::Sla(Event::FirstResponse));
    }
    if DONE.contains(&status) {
        out.push(CaseEvent::Sla(Event::Resolved));
    }
    out
}

/// The events of a status change from `old` to `new`. Leaving "new" is the first response;
/// reaching resolved or closed resolves; leaving them reopens.
pub fn status_changed(old: &str, new: &str, answered: bool) -> Vec<CaseEvent> {
    if old == new {
        return Vec::new();
    }
    let mut out = vec![CaseEvent::Sla(Event::Status(new.to_string()))];
    if old == "new" && !answered {
        out.push(CaseEvent::Sla(Event::FirstResponse));
    }
    match (DONE.contains(&old), DONE.contains(&new)) {
        (false, true) => out.push(CaseEvent::Sla(Event::Resolved)),
        (true, false) => out.push(CaseEvent::Sla(Event::Reopened)),
        _ => {}
    }
    out
}

/// The events of a case's summary, in the order every replica agrees on.
pub fn events(case: &RecordSummary) -> Vec<(i64, CaseEvent)> {
    let mut out: Vec<(i64, CaseEvent)> = match case.fields.get("events") {
        Some(Json::Array(members)) => members
            .iter()
            .filter_map(Json::as_str)
            .filter_map(decode)
            .collect(),
        _ => Vec::new(),
    };
    out.sort();
    out
}

/// Whether the case had its first response.
pub fn answered(case: &RecordSummary) -> bool {
    events(case)
        .iter()
        .any(|(_, e)| *e == CaseEvent::Sla(Event::FirstResponse))
}

/// A company's service levels: a calendar, per priority its targets, and the statuses that
/// stop the clock.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The plan's name ("default" for the built-in one).
    pub name: String,
    /// Working hours.
    pub calendar: Calendar,
    /// Targets in the order of [`PRIORITY`].
    pub targets: [Targets; 4],
    /// Statuses that pause the clock.
    pub paused: Vec<String>,
}

impl Plan {
    /// The plan of a company that declared none: office hours in Madrid; critical 1 h / 4 h,
    /// high 2 h / 8 h, medium 4 h / 16 h, low 8 h / 40 h; "pending" pauses.
    pub fn built_in() -> Plan {
        let t = |r: i64, s: i64| Targets {
            first_response_min: r * 60,
            resolution_min: s * 60,
        };
        Plan {
            name: "default".into(),
            calendar: Calendar::office(chrono_tz::Europe::Madrid),
            targets: [t(8, 40), t(4, 16), t(2, 8), t(1, 4)],
            paused: vec!["pending".into()],
        }
    }

    /// The plan an `sla_plan` record declares.
    pub fn from_record(r: &RecordSummary) -> Result<Plan, DomainError> {
        let bad = |field: &str, reason: String| DomainError::InvalidValue {
            field: field.into(),
            reason,
        };
        let text = |k: &str| r.fields.get(k).and_then(Json::as_str).unwrap_or_default();
        let list = |k: &str| -> Vec<String> {
            match r.fields.get(k) {
                Some(Json::Array(a)) => a
                    .iter()
                    .filter_map(Json::as_str)
                    .map(String::from)
                    .collect(),
                _ => Vec::new(),
            }
        };
        let tz: chrono_tz::Tz = text("timezone").parse().map_err(|_| {
            bad(
                "timezone",
                format!(
                    "{:?} is not a time zone such as Europe/Madrid",
                    text("timezone")
                ),
            )
        })?;
        let mut calendar = Calendar {
            tz,
            days: parse_hours(text("hours")).map_err(|e| bad("hours", e))?,
            holidays: BTreeSet::new(),
        };
        for day in list("holidays") {
            let d = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .map_err(|_| bad("holidays", format!("{day:?} is not a YYYY-MM-DD day")))?;
            calendar.holidays.insert(d);
        }
        let mut targets = Plan::built_in().targets;
        for (i, p) in PRIORITY.iter().enumerate() {
            let minutes = |k: String| r.fields.get(&k).and_then(Json::as_i64);
            if let Some(m) = minutes(format!("response_{p}_min")) {
                targets[i].first_response_min = m.max(0);
            }
            if let Some(m) = minutes(format!("resolution_{p}_min")) {
                targets[i].resolution_min = m.max(0);
            }
        }
        Ok(Plan {
            name: text("name").to_string(),
            calendar,
            targets,
            paused: list("paused"),
        })
    }

    /// The targets of a priority (medium for one this version does not know).
    pub fn targets(&self, priority: &str) -> Targets {
        let i = PRIORITY.iter().position(|p| *p == priority).unwrap_or(1);
        self.targets[i]
    }
}

/// Parses working hours: `mon-fri 09:00-18:00`, several groups separated by commas
/// (`mon-thu 08:00-17:00, fri 08:00-14:00`).
pub fn parse_hours(s: &str) -> Result<[Option<(NaiveTime, NaiveTime)>; 7], String> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let help = || {
        format!("{s:?}: write working hours as `mon-fri 09:00-18:00` (groups separated by commas)")
    };
    let day = |d: &str| DAYS.iter().position(|x| *x == d.trim().to_lowercase());
    let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").ok();
    let mut out = [None; 7];
    for group in s.split(',').filter(|g| !g.trim().is_empty()) {
        let (days, hours) = group.trim().split_once(' ').ok_or_else(help)?;
        let (from, to) = match days.split_once('-') {
            Some((a, b)) => (day(a).ok_or_else(help)?, day(b).ok_or_else(help)?),
            None => {
                let d = day(days).ok_or_else(help)?;
                (d, d)
            }
        };
        let (open, close) = hours.split_once('-').ok_or_else(help)?;
        let (open, close) = (time(open).ok_or_else(help)?, time(close).ok_or_else(help)?);
        if close <= open || to < from {
            return Err(help());
        }
        for slot in out.iter_mut().take(to + 1).skip(from) {
            *slot = Some((open, close));
        }
    }
    Ok(out)
}

/// The plan of a case: its policy's plan when the policy names one the company has, else the
/// company's default plan, else the built-in one. `plans` are the company's `sla_plan`
/// records and `policy_plan` the plan name of the case's policy.
pub fn plan_for(plans: &[RecordSummary], policy_plan: Option<&str>) -> Result<Plan, DomainError> {
    let ordered = crate::record::in_agreed_order(plans, "sla_plan", |r| Some(r.clone()));
    let named = policy_plan.filter(|n| !n.is_empty()).and_then(|n| {
        ordered
            .iter()
            .find(|r| r.fields.get("name").and_then(Json::as_str) == Some(n))
    });
    let default = || {
        ordered
            .iter()
            .find(|r| r.fields.get("default").and_then(Json::as_bool) == Some(true))
    };
    match named.or_else(default) {
        Some(r) => Plan::from_record(r),
        None => Ok(Plan::built_in()),
    }
}

/// The service level of a case under `plan` at `now_ms`.
pub fn sla_of(case: &RecordSummary, plan: &Plan, now_ms: i64) -> Sla {
    let evs: Vec<(i64, Event)> = events(case)
        .into_iter()
        .filter_map(|(t, e)| match e {
            CaseEvent::Sla(e) => Some((t, e)),
            CaseEvent::Assigned(_) => None,
        })
        .collect();
    let priority = case
        .fields
        .get("priority")
        .and_then(Json::as_str)
        .unwrap_or("medium");
    let paused: Vec<&str> = plan.paused.iter().map(String::as_str).collect();
    sla::compute(
        &evs,
        &plan.calendar,
        plan.targets(priority),
        &paused,
        now_ms,
    )
}

/// Something an employee should see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// The same on every replica for the same cause.
    pub id: String,
    /// assigned, sla_at_risk or sla_breached.
    pub kind: &'static str,
    /// The case.
    pub case: String,
    /// Its number.
    pub number: String,
    /// Its title.
    pub title: String,
    /// When it happened (ms), for assignments.
    pub at: Option<i64>,
    /// Read on any of the employee's replicas.
    pub read: bool,
}

fn notification_id(case: &str, cause: &str) -> String {
    let h = blake3::hash(format!("{case}|{cause}").as_bytes());
    h.to_hex()[..20].to_string()
}

/// The notifications of employee `me` from the cases given with their service levels: each
/// assignment of a case still assigned to them, and each case of theirs at risk or breached.
/// `read` holds the ids they marked read.
pub fn notifications(
    cases: &[(RecordSummary, Sla)],
    me: &str,
    read: &BTreeSet<String>,
) -> Vec<Notification> {
    let mut out = Vec::new();
    for (case, sla) in cases {
        if case.fields.get("assignee").and_then(Json::as_str) != Some(me) {
            continue;
        }
        let number = case
            .fields
            .get("number")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let make = |kind: &'static str, cause: String, at: Option<i64>| {
            let id = notification_id(&case.id, &cause);
            Notification {
                read: read.contains(&id),
                id,
                kind,
                case: case.id.clone(),
                number: number.to_string(),
                title: case.title.clone(),
                at,
            }
        };
        for (at, e) in events(case) {
            if e == CaseEvent::Assigned(me.to_string()) {
                out.push(make("assigned", encode(at, &e), Some(at)));
            }
        }
        let open = !case.status.as_deref().is_some_and(|s| DONE.contains(&s));
        match sla.state {
            sla::State::AtRisk if open => {
                out.push(make("sla_at_risk", format!("at_risk|{me}"), None))
            }
            sla::State::Breached if open => {
                out.push(make("sla_breached", format!("breached|{me}"), None))
            }
            _ => {}
        }
    }
    out
}

/// Counts of cases per SLA state, for the office's overview.
pub fn by_state(slas: &[Sla]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in slas {
        let key = serde_json::to_value(s.state)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_unknown_ones_are_skipped() {
        for e in [
            CaseEvent::Sla(Event::Created),
            CaseEvent::Sla(Event::Status("pending".into())),
            CaseEvent::Assigned("e1".into()),
            CaseEvent::Sla(Event::Reopened),
        ] {
            assert_eq!(decode(&encode(42, &e)), Some((42, e)));
        }
        assert_eq!(decode("0000000000042|escalated"), None);
        // Members sort by time, as the clock reads them.
        assert!(
            encode(9, &CaseEvent::Sla(Event::Created))
                < encode(10, &CaseEvent::Sla(Event::Created))
        );
    }

    #[test]
    fn status_changes_give_first_response_resolution_and_reopening() {
        assert_eq!(
            status_changed("new", "in_progress", false),
            vec![
                CaseEvent::Sla(Event::Status("in_progress".into())),
                CaseEvent::Sla(Event::FirstResponse)
            ]
        );
        assert!(
            status_changed("in_progress", "resolved", true)
                .contains(&CaseEvent::Sla(Event::Resolved))
        );
        assert!(
            status_changed("closed", "in_progress", true)
                .contains(&CaseEvent::Sla(Event::Reopened))
        );
        assert!(status_changed("resolved", "closed", true).len() == 1);
        assert!(status_changed("pending", "pending", true).is_empty());
    }

    #[test]
    fn working_hours_parse_in_groups_and_bad_ones_say_how_to_write_them() {
        let h = parse_hours("mon-thu 08:00-17:00, fri 08:00-14:00").unwrap_or_default();
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").ok();
        assert_eq!(h[0], t("08:00").zip(t("17:00")));
        assert_eq!(h[4], t("08:00").zip(t("14:00")));
        assert_eq!(h[5], None);
        for bad in [
            "mon-fri",
            "mon-fri 18:00-09:00",
            "xyz 09:00-10:00",
            "fri-mon 09:00-10:00",
        ] {
            let e = parse_hours(bad).err().unwrap_or_default();
            assert!(e.contains("mon-fri 09:00-18:00"), "{bad}: {e}");
        }
    }
}
