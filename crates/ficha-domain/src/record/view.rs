//! Reading a record: the JSON view with conflicts and log, and the summary lists are built from.

use std::collections::BTreeMap;

use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use super::doc::{CLIENT, FIELDS, KIND_VERSION, LOG, Line, UPDATED_AT, spec_of};
use super::registry::{Account, FieldSpec, FieldType, KindSpec, Merge};
use super::value::{self, Money, Stored};
use crate::error::DomainError;
use crate::read;
use crate::schema::{COMPANY, CREATED_AT, ID};

/// What the list of a kind shows and filters by, without loading the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordSummary {
    /// The record's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its company.
    pub company: String,
    /// The client it hangs on.
    pub client: Option<String>,
    /// Its title (the kind's title fields, joined).
    pub title: String,
    /// The value of its status field.
    pub status: Option<String>,
    /// Its date (day, or ISO 8601 moment) as its kind declares, for ranges and order.
    pub date: Option<String>,
    /// Its total, computed from its lines when it has any.
    pub total: Option<Money>,
    /// What has been paid of it.
    pub paid: Option<Money>,
    /// Scalar fields (shown values), for filters and sorting.
    pub fields: BTreeMap<String, Json>,
    /// Records it refers to: (field, id).
    pub links: Vec<(String, String)>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last edit (ms).
    pub updated_at: i64,
}

/// The records of `kind` turned by `f`, in the order every replica agrees on whatever order
/// they arrived in: creation time, then id. Views derived from many records (a wallet, an
/// account tree) are computed in this order, so every replica derives the same.
pub fn in_agreed_order<T>(
    records: &[RecordSummary],
    kind: &str,
    f: impl Fn(&RecordSummary) -> Option<T>,
) -> Vec<T> {
    let mut of_kind: Vec<&RecordSummary> = records.iter().filter(|r| r.kind == kind).collect();
    of_kind.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    of_kind.into_iter().filter_map(f).collect()
}

impl RecordSummary {
    /// A field's value, if it is text.
    pub fn text(&self, field: &str) -> Option<String> {
        self.fields
            .get(field)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// What it adds to its client's sales (negative for refunds), if it counts.
    pub fn sale(&self) -> Option<Money> {
        let spec = super::registry::kind(&self.kind)?;
        let counts = matches!(self.status.as_deref(), Some("issued" | "paid"));
        let total = self.total.clone()?;
        match spec.account {
            Account::Sale if counts => Some(total),
            Account::Refund if counts => Some(Money {
                amount: -total.amount,
                currency: total.currency,
            }),
            _ => None,
        }
    }

    /// What is still owed on it (issued and not fully paid), if anything.
    pub fn pending(&self) -> Option<Money> {
        let spec = super::registry::kind(&self.kind)?;
        if spec.account != Account::Sale || self.status.as_deref() != Some("issued") {
            return None;
        }
        let total = self.total.clone()?;
        let paid = self
            .paid
            .as_ref()
            .filter(|p| p.currency == total.currency)
            .map_or(0, |p| p.amount);
        (total.amount > paid).then(|| Money {
            amount: total.amount - paid,
            currency: total.currency,
        })
    }
}

/// A scalar as Ficha stores it, reading what JavaScript clients write in its place: a
/// timestamp or a whole float where an integer is kept.
fn scalar(s: &ScalarValue) -> Option<Stored> {
    match s {
        ScalarValue::Str(s) => Some(Stored::Str(s.to_string())),
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Some(Stored::Int(*i)),
        ScalarValue::Uint(u) => Some(Stored::Int(i64::try_from(*u).unwrap_or(i64::MAX))),
        ScalarValue::F64(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(Stored::Int(*f as i64)),
        ScalarValue::Boolean(b) => Some(Stored::Bool(*b)),
        _ => None,
    }
}

fn stored_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Result<Vec<Stored>, DomainError> {
    let mut out = Vec::new();
    for (v, id) in doc.get_all(obj, key)? {
        match v {
            Value::Scalar(s) => out.extend(scalar(s.as_ref())),
            Value::Object(ObjType::Text) => out.push(Stored::Text(doc.text(&id)?)),
            Value::Object(_) => {}
        }
    }
    // get_all lists values in op order; the winner is what `get` returns.
    if let Some((Value::Scalar(w), _)) = doc.get(obj, key)?
        && let Some(w) = scalar(w.as_ref())
        && let Some(pos) = out.iter().position(|v| *v == w)
    {
        let w = out.remove(pos);
        out.insert(0, w);
    }
    Ok(out)
}

/// The key a value of a [`Merge::Latest`] field is written under: the writer's time, then
/// the value, so the greatest key is the latest value and ties break the same everywhere.
pub fn latest_key(now_ms: i64, value: &str) -> String {
    format!("{:016x}|{value}", now_ms.max(0))
}

/// The latest value of a [`Merge::Latest`] field (None when unset or cleared).
fn latest(doc: &impl ReadDoc, fields: &ObjId, name: &str) -> Result<Option<String>, DomainError> {
    let Some(m) = read::map(doc, fields, name)? else {
        return Ok(None);
    };
    Ok(doc
        .keys(&m)
        .max()
        .and_then(|k| k.split_once('|').map(|(_, v)| v.to_string()))
        .filter(|v| !v.is_empty()))
}

/// The furthest state reached of a monotonic field.
pub fn furthest(
    doc: &impl ReadDoc,
    reached: &ObjId,
    order: &[&str],
) -> Result<Option<String>, DomainError> {
    let mut best: Option<usize> = None;
    for k in doc.keys(reached) {
        if let Some(rank) = order.iter().position(|o| *o == k) {
            best = best.max(Some(rank));
        }
    }
    Ok(best.map(|r| order[r].to_string()))
}

/// A field's value as JSON, and the values that lost a concurrent edit.
fn field_json(
    doc: &impl ReadDoc,
    fields: &ObjId,
    f: &FieldSpec,
) -> Result<(Json, Vec<Json>), DomainError> {
    Ok(match f.merge {
        Merge::Register => {
            let all = stored_at(doc, fields, f.name)?;
            let mut shown = all.iter().map(|s| value::show(f, s));
            let winner = shown.next().unwrap_or(Json::Null);
            // Two replicas writing the same value concurrently agree: no conflict to show.
            let mut losers: Vec<Json> = shown.filter(|v| *v != winner).collect();
            losers.dedup();
            (winner, losers)
        }
        Merge::Text => (
            Json::String(read::string(doc, fields, f.name)?.unwrap_or_default()),
            Vec::new(),
        ),
        Merge::Set => {
            let mut members: Vec<String> = match read::map(doc, fields, f.name)? {
                Some(m) => doc.keys(&m).collect(),
                None => Vec::new(),
            };
            members.sort();
            (json!(members), Vec::new())
        }
        Merge::Monotonic => {
            let FieldType::Enum(order) = f.ty else {
                return Ok((Json::Null, Vec::new()));
            };
            let state = match read::map(doc, fields, f.name)? {
                Some(m) => furthest(doc, &m, order)?,
                None => None,
            };
            (state.map_or(Json::Null, Json::String), Vec::new())
        }
        Merge::Latest => (
            latest(doc, fields, f.name)?.map_or(Json::Null, Json::String),
            Vec::new(),
        ),
        Merge::Items => {
            let lines = lines(doc, fields, f)?;
            (
                Json::Array(
                    lines_with_ids(doc, fields, f)?
                        .into_iter()
                        .zip(lines)
                        .map(|(id, l)| line_json(&id, &l))
                        .collect(),
                ),
                Vec::new(),
            )
        }
    })
}

/// A field's value as one line of text (for the log's old values), None when unset.
pub fn field_text(
    doc: &impl ReadDoc,
    fields: &ObjId,
    f: &FieldSpec,
) -> Result<Option<String>, DomainError> {
    let (v, _) = field_json(doc, fields, f)?;
    Ok(match v {
        Json::Null => None,
        Json::String(s) => Some(s),
        Json::Object(m) if f.ty == FieldType::Money => {
            m.get("text").and_then(Json::as_str).map(str::to_string)
        }
        Json::Array(a) if a.is_empty() => None,
        other => Some(other.to_string()),
    })
}

fn lines_with_ids(
    doc: &impl ReadDoc,
    fields: &ObjId,
    f: &FieldSpec,
) -> Result<Vec<String>, DomainError> {
    let Some(map) = read::map(doc, fields, f.name)? else {
        return Ok(Vec::new());
    };
    let mut keyed = Vec::new();
    for id in doc.keys(&map) {
        if let Some(item) = read::map(doc, &map, &id)? {
            keyed.push((read::int(doc, &item, "created_at")?, id));
        }
    }
    keyed.sort();
    Ok(keyed.into_iter().map(|(_, id)| id).collect())
}

/// The lines of a commercial document, oldest first.
pub fn lines(doc: &impl ReadDoc, fields: &ObjId, f: &FieldSpec) -> Result<Vec<Line>, DomainError> {
    let Some(map) = read::map(doc, fields, f.name)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for id in lines_with_ids(doc, fields, f)? {
        let Some(item) = read::map(doc, &map, &id)? else {
            continue;
        };
        let Some(price) =
            read::string(doc, &item, "unit_price")?.and_then(|s| Money::from_stored(&s))
        else {
            continue;
        };
        out.push(Line {
            description: read::string(doc, &item, "description")?.unwrap_or_default(),
            quantity_milli: read::int(doc, &item, "quantity_milli")?,
            unit_price: price,
            tax_bp: read::int(doc, &item, "tax_bp")?,
        });
    }
    Ok(out)
}

/// Net, tax and total of lines, each line's tax rounded half away from zero.
pub fn totals(lines: &[Line]) -> Option<(Money, Money, Money)> {
    let currency = lines.first()?.unit_price.currency.clone();
    let (mut net, mut tax) = (0i128, 0i128);
    for l in lines {
        let line_net = round_div(l.quantity_milli as i128 * l.unit_price.amount as i128, 1000);
        net += line_net;
        tax += round_div(line_net * l.tax_bp as i128, 10_000);
    }
    let m = |amount: i128| Money {
        amount: amount.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        currency: currency.clone(),
    };
    Some((m(net), m(tax), m(net + tax)))
}

fn round_div(n: i128, d: i128) -> i128 {
    if n >= 0 {
        (n + d / 2) / d
    } else {
        (n - d / 2) / d
    }
}

fn line_json(id: &str, l: &Line) -> Json {
    json!({
        "id": id,
        "description": l.description,
        "quantity": l.quantity_milli as f64 / 1000.0,
        "unit_price": l.unit_price.json(),
        "tax_rate": l.tax_bp as f64 / 100.0,
    })
}

fn required(doc: &impl ReadDoc, key: &str) -> Result<String, DomainError> {
    read::string(doc, &ROOT, key)?.ok_or_else(|| DomainError::WrongKind {
        expected: "a record".into(),
        found: format!("a document without {key}"),
    })
}

/// The whole record as the API shows it: `{id, kind, company, client, <fields>…, heads,
/// conflicts, log}`.
pub fn view(doc: &Automerge) -> Result<Json, DomainError> {
    let spec = spec_of(doc)?;
    let fields = read::map(doc, &ROOT, FIELDS)?.ok_or_else(|| DomainError::WrongKind {
        expected: "a record".into(),
        found: "a document without fields".into(),
    })?;
    let mut out = Map::new();
    out.insert("id".into(), json!(required(doc, ID)?));
    out.insert("kind".into(), json!(spec.name));
    out.insert(
        "kind_version".into(),
        json!(read::int(doc, &ROOT, KIND_VERSION)?),
    );
    out.insert("company".into(), json!(required(doc, COMPANY)?));
    out.insert("client".into(), json!(read::string(doc, &ROOT, CLIENT)?));
    let mut conflicts = Map::new();
    for f in spec.fields.iter().filter(|f| !f.hidden) {
        let (v, losers) = field_json(doc, &fields, f)?;
        out.insert(f.name.into(), v);
        if !losers.is_empty() {
            conflicts.insert(f.name.into(), Json::Array(losers));
        }
    }
    if let Some(f) = spec.fields.iter().find(|f| f.ty == FieldType::Lines)
        && let Some((net, tax, total)) = totals(&lines(doc, &fields, f)?)
    {
        out.insert("net".into(), net.json());
        out.insert("tax".into(), tax.json());
        out.insert("total".into(), total.json());
    }
    let created = read::int(doc, &ROOT, CREATED_AT)?;
    let updated = read::int_opt(doc, &ROOT, UPDATED_AT)?.unwrap_or(created);
    out.insert("created_at".into(), json!(created));
    out.insert("updated_at".into(), json!(updated));
    let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    heads.sort();
    out.insert("heads".into(), json!(heads));
    out.insert("conflicts".into(), Json::Object(conflicts));
    out.insert("log".into(), json!(log(doc)?));
    Ok(Json::Object(out))
}

/// The audit log, oldest first: every key an entry has (who, replica, employee, old value).
pub fn log(doc: &impl ReadDoc) -> Result<Vec<Map<String, Json>>, DomainError> {
    let Some(log) = read::map(doc, &ROOT, LOG)? else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    for id in doc.keys(&log) {
        let Some(e) = read::map(doc, &log, &id)? else {
            continue;
        };
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        let at = read::int(doc, &e, "at")?;
        m.insert("at".into(), json!(at));
        for key in [
            "kind",
            "text",
            "who",
            "replica",
            "employee_id",
            "employee_name",
            "field",
            "old",
        ] {
            if let Some(v) = read::string(doc, &e, key)? {
                m.insert(key.into(), json!(v));
            }
        }
        entries.push((at, id, m));
    }
    entries.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(entries.into_iter().map(|(_, _, m)| m).collect())
}

/// The summary a record's list row and index keys come from.
pub fn summary(doc: &impl ReadDoc) -> Result<RecordSummary, DomainError> {
    let spec: &KindSpec = spec_of(doc)?;
    let fields = read::map(doc, &ROOT, FIELDS)?.ok_or_else(|| DomainError::WrongKind {
        expected: "a record".into(),
        found: "a document without fields".into(),
    })?;
    let mut shown = BTreeMap::new();
    let mut links = Vec::new();
    for f in spec.fields.iter().filter(|f| !f.hidden) {
        if matches!(f.merge, Merge::Text | Merge::Items) {
            continue;
        }
        let (v, _) = field_json(doc, &fields, f)?;
        if v.is_null() {
            continue;
        }
        if let (FieldType::Ref(_), Json::String(id)) = (f.ty, &v) {
            links.push((f.name.to_string(), id.clone()));
        }
        shown.insert(f.name.to_string(), v);
    }
    let text = |name: &str| -> Option<String> {
        shown.get(name).map(|v| match v {
            Json::String(s) => s.clone(),
            Json::Object(m) => m
                .get("text")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            other => other.to_string(),
        })
    };
    let title = spec
        .title
        .iter()
        .filter_map(|t| text(t))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let money = |name: Option<&str>| -> Option<Money> {
        let v = shown.get(name?)?;
        serde_json::from_value(v.clone()).ok()
    };
    let from_lines = match spec.fields.iter().find(|f| f.ty == FieldType::Lines) {
        Some(f) => totals(&lines(doc, &fields, f)?).map(|(_, _, t)| t),
        None => None,
    };
    let created_at = read::int(doc, &ROOT, CREATED_AT)?;
    Ok(RecordSummary {
        id: required(doc, ID)?,
        kind: spec.name.to_string(),
        company: required(doc, COMPANY)?,
        client: read::string(doc, &ROOT, CLIENT)?,
        title,
        status: spec.status.and_then(text),
        date: spec.date.and_then(text),
        total: from_lines.or_else(|| money(spec.total)),
        paid: money(Some("amount_paid")),
        fields: shown,
        links,
        created_at,
        updated_at: read::int_opt(doc, &ROOT, UPDATED_AT)?.unwrap_or(created_at),
    })
}
