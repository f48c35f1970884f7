//! What a list of records asks for, checked against summaries, and the index lookups that
//! find every record it matches.

use serde_json::Value as Json;

use super::view::RecordSummary;
use crate::index::{ANY, field_row, link_term, scoped, words};
use crate::search::{Plan, Probe, normalise};

/// A list of records: one kind, or every kind when `kind` is None.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only records linked to this client or record.
    pub linked: Option<String>,
    /// Only this company.
    pub company: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Every word a prefix of a word of the title or a searched field.
    pub search: Option<String>,
    /// Only records dated on or after this day (YYYY-MM-DD).
    pub since: Option<String>,
    /// Only records dated on or before this day.
    pub until: Option<String>,
    /// Only records whose field equals the value (enum, boolean, code, reference).
    pub fields: Vec<(String, String)>,
}

/// Ranges up to this many days are looked up day by day in the index.
const DAY_PROBES: i64 = 62;

impl RecordFilter {
    /// True if the record matches every criterion.
    pub fn matches(&self, r: &RecordSummary) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        let day = r.date.as_deref().and_then(|d| d.get(..10));
        eq(&self.kind, Some(&r.kind))
            && eq(&self.company, Some(&r.company))
            && eq(&self.status, r.status.as_deref())
            && self.linked.as_deref().is_none_or(|l| {
                r.client.as_deref() == Some(l) || r.links.iter().any(|(_, t)| t == l)
            })
            && self
                .since
                .as_deref()
                .is_none_or(|s| day.is_some_and(|d| d >= s))
            && self
                .until
                .as_deref()
                .is_none_or(|u| day.is_some_and(|d| d <= u))
            && self.fields.iter().all(|(f, v)| {
                r.fields.get(f).is_some_and(|have| {
                    let have = have
                        .as_str()
                        .map_or_else(|| have.to_string(), str::to_string);
                    normalise(&have) == normalise(v)
                })
            })
            && self.search.as_deref().is_none_or(|q| {
                let have = crate::index::record_words(r);
                words(q)
                    .iter()
                    .all(|w| have.iter().any(|h| h.starts_with(w.as_str())))
            })
    }

    /// Index lookups that find every record this filter matches (maybe more).
    pub fn plan(&self) -> Plan {
        let scope = self.kind.as_deref().unwrap_or(ANY);
        let mut plan = Plan::new();
        if let Some(q) = &self.search {
            let mut ws = words(q);
            ws.sort_by_key(|w| std::cmp::Reverse(w.len()));
            for w in ws {
                plan.push(vec![Probe::Prefix(scoped(scope, &format!("w:{w}")))]);
            }
        }
        if let Some(l) = &self.linked {
            plan.push(vec![Probe::Exact(link_term(scope, l))]);
        }
        let Some(kind) = self.kind.as_deref() else {
            return plan;
        };
        // Only fields the index keeps a row for: a probe for any other field (a reference, a
        // plain text, a day) would find nothing and so hide every record that matches.
        let indexed = |f: &str| {
            super::registry::kind(kind)
                .and_then(|k| k.field(f))
                .is_some_and(field_row)
        };
        for (f, v) in self.fields.iter().filter(|(f, _)| indexed(f)) {
            plan.push(vec![Probe::Exact(scoped(
                kind,
                &format!("f:{f}={}", normalise(v)),
            ))]);
        }
        if let Some(s) = &self.status {
            plan.push(vec![Probe::Exact(scoped(kind, &format!("st:{s}")))]);
        }
        if let (Some(since), Some(until)) = (&self.since, &self.until)
            && let Some(days) = days_between(since, until)
        {
            plan.push(
                days.iter()
                    .map(|d| Probe::Exact(scoped(kind, &format!("d:{d}"))))
                    .collect(),
            );
        }
        if let Some(c) = &self.company {
            plan.push(vec![Probe::Exact(scoped(kind, &format!("co:{c}")))]);
        }
        plan
    }
}

fn days_between(since: &str, until: &str) -> Option<Vec<String>> {
    let a = chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d").ok()?;
    let b = chrono::NaiveDate::parse_from_str(until, "%Y-%m-%d").ok()?;
    let n = (b - a).num_days();
    if !(0..=DAY_PROBES).contains(&n) {
        return None;
    }
    Some(
        (0..=n)
            .map(|i| (a + chrono::Days::new(i as u64)).to_string())
            .collect(),
    )
}

/// The order of a list of records: by a field (dates, names, amounts), then id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSort {
    /// The field; None is the kind's date (or creation).
    pub field: Option<String>,
    /// Largest first.
    pub desc: bool,
}

impl std::str::FromStr for RecordSort {
    type Err = std::convert::Infallible;

    /// `FIELD`, `FIELD-desc` or `-FIELD`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, desc) = match (s.strip_suffix("-desc"), s.strip_prefix('-')) {
            (Some(n), _) => (n, true),
            (None, Some(n)) => (n, true),
            _ => (s, false),
        };
        Ok(RecordSort {
            field: (!name.is_empty() && name != "date").then(|| name.to_string()),
            desc,
        })
    }
}

impl RecordSort {
    /// Sorts records; records without the field come last.
    pub fn apply(&self, records: &mut [RecordSummary]) {
        let key = |r: &RecordSummary| -> (u8, SortKey, String) {
            let v = match &self.field {
                None => SortKey::of_text(crate::index::record_order(r)),
                Some(f) => match f.as_str() {
                    "title" => SortKey::of_text(r.title.clone()),
                    "created_at" => SortKey::Num(r.created_at as i128),
                    "updated_at" => SortKey::Num(r.updated_at as i128),
                    "total" => r
                        .total
                        .as_ref()
                        .map_or(SortKey::None, |m| SortKey::Num(m.amount as i128)),
                    f => r.fields.get(f).map_or(SortKey::None, SortKey::of_json),
                },
            };
            (u8::from(v == SortKey::None), v, r.id.clone())
        };
        records.sort_by_cached_key(key);
        if self.desc {
            // Reverse the present values only: missing ones stay last.
            let present = records.iter().take_while(|r| key(r).0 == 0).count();
            records[..present].reverse();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Num(i128),
    Text(String),
    None,
}

impl SortKey {
    fn of_text(s: String) -> Self {
        SortKey::Text(normalise(&s))
    }

    fn of_json(v: &Json) -> Self {
        match v {
            Json::Number(n) => n
                .as_i64()
                .map_or(SortKey::None, |i| SortKey::Num(i as i128)),
            Json::String(s) => SortKey::of_text(s.clone()),
            Json::Bool(b) => SortKey::Num(i128::from(*b)),
            Json::Object(m) => m
                .get("amount")
                .and_then(Json::as_i64)
                .map_or(SortKey::None, |a| SortKey::Num(a as i128)),
            _ => SortKey::None,
        }
    }
}
