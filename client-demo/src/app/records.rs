//! Records of every kind linked to clients: one set of actions for all kinds, driven by the
//! domain's registry.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value as Json, json};
use uuid::Uuid;

use ficha_core::{Company, DocId};
use ficha_domain::record::{
    self, Assignment, FieldType, KindSpec, Line, Money, Parent, RecordFilter, RecordSort,
    RecordSummary,
};

use super::{AppError, Replica, now_ms};

/// A value given for a field: typed text (CLI, CSV) or JSON (HTTP).
#[derive(Debug, Clone)]
pub enum Given {
    /// As a person types it (`1234.50EUR`, `2026-12-03`, `a,b`).
    Text(String),
    /// As JSON.
    Json(Json),
}

/// The kind called `name`, or an error listing the kinds.
pub fn spec(name: &str) -> Result<&'static KindSpec, AppError> {
    if name == "client" {
        return Err(AppError::BadInput(
            "clients have their own commands: `ficha client add|set|show|list`".into(),
        ));
    }
    record::kind(name).ok_or_else(|| {
        AppError::BadInput(format!(
            "unknown kind {name:?}; kinds: {}",
            record::kind_names()
        ))
    })
}

/// Every kind as `record kinds --json` and `GET /api/kinds` show it.
pub fn kinds_json() -> Json {
    let kinds: Vec<Json> = record::kinds::KINDS
        .iter()
        .map(|k| {
            let fields: Vec<Json> = k
                .fields
                .iter()
                .filter(|f| !f.hidden)
                .map(|f| {
                    let mut o = json!({
                        "name": f.name,
                        "type": f.ty.name(),
                        "required": f.required,
                        "merge": f.merge,
                        "search": f.search,
                        "system": f.system,
                    });
                    if let FieldType::Enum(values) = f.ty {
                        o["values"] = json!(values);
                    }
                    if let FieldType::Ref(target) = f.ty {
                        o["references"] = json!(target);
                    }
                    if let Some(d) = f.default {
                        o["default"] = json!(d);
                    }
                    o
                })
                .collect();
            let mut links: Vec<Json> = k
                .links()
                .map(|(field, kind)| json!({"field": field, "kind": kind}))
                .collect();
            if k.parent != Parent::Company {
                links.insert(0, json!({"field": "client", "kind": "client"}));
            }
            json!({
                "kind": k.name,
                "label": k.label_es,
                "label_en": k.label_en,
                "version": k.version,
                "parent": k.parent,
                "fields": fields,
                "links": links,
                "status": k.status,
                "date": k.date,
            })
        })
        .collect();
    Json::Array(kinds)
}

/// The client file's collections (addresses, allergies, reviews…) as JSON, for forms and tabs.
pub fn sections_json() -> Json {
    use ficha_domain::sections::{Kind, SECTIONS};
    let sections: Vec<Json> = SECTIONS
        .iter()
        .map(|s| {
            let fields: Vec<Json> = s
                .fields
                .iter()
                .map(|f| {
                    let ty = match f.kind {
                        Kind::Str => "text",
                        Kind::Body => "long_text",
                        Kind::Bool => "bool",
                        Kind::Date => "date",
                        Kind::Enum(_) => "enum",
                        Kind::Rating => "rating",
                        Kind::List => "list",
                    };
                    let mut o = json!({"name": f.name, "type": ty, "required": f.required});
                    if let Kind::Enum(values) = f.kind {
                        o["values"] = json!(values);
                    }
                    o
                })
                .collect();
            json!({
                "section": s.name,
                "clinical": s.clinical,
                "has_primary": s.has_primary,
                "fields": fields,
            })
        })
        .collect();
    Json::Array(sections)
}

/// Turns given values into assignments, checking each against its field; `currency=` goes
/// with a money amount given in minor units, and `lines` values become lines.
fn assignments(
    spec: &'static KindSpec,
    given: &[(String, Given)],
) -> Result<(Vec<Assignment>, Vec<Line>), AppError> {
    let currency = given.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("currency", Given::Text(t)) => Some(t.clone()),
        ("currency", Given::Json(Json::String(t))) => Some(t.clone()),
        _ => None,
    });
    let mut out = Vec::new();
    let mut lines = Vec::new();
    for (name, value) in given {
        if name == "currency" {
            continue;
        }
        let f = spec.field(name).filter(|f| !f.hidden).ok_or_else(|| {
            ficha_domain::DomainError::UnknownField {
                field: name.clone(),
                valid: spec.field_names(),
            }
        })?;
        if f.system {
            return Err(AppError::BadInput(format!(
                "{name} is written by Ficha itself, not by hand{}",
                match spec.numbering {
                    Some(n) if n.field == name => ": every record gets its number when saved",
                    _ => "",
                }
            )));
        }
        if f.ty == FieldType::Lines {
            lines.extend(parse_lines(value)?);
            continue;
        }
        let stored = match value {
            Given::Text(t) => record::parse(f, t, currency.as_deref())?,
            Given::Json(j) => record::parse_json(f, j, currency.as_deref())?,
        };
        out.push((f, stored));
    }
    Ok((out, lines))
}

/// Given values as assignments of `spec`'s fields (lines refused: none of the kinds derived
/// records are made of has them).
pub(crate) fn values_of(
    spec: &'static KindSpec,
    given: &[(String, Given)],
) -> Result<Vec<Assignment>, AppError> {
    let (values, lines) = assignments(spec, given)?;
    if !lines.is_empty() {
        return Err(AppError::BadInput(format!("a {} has no lines", spec.name)));
    }
    Ok(values)
}

/// System values as assignments of `spec`'s fields.
fn system_assignments(
    spec: &'static KindSpec,
    system: SystemValues,
) -> Result<Vec<Assignment>, AppError> {
    system
        .into_iter()
        .map(|(name, v)| {
            let f = spec
                .field(name)
                .ok_or_else(|| ficha_domain::DomainError::UnknownField {
                    field: name.into(),
                    valid: spec.field_names(),
                })?;
            Ok((f, v))
        })
        .collect()
}

/// The values sequence `seq` of the replica with `code` writes.
fn numbered_values(
    spec: &'static KindSpec,
    n: &record::Numbering,
    code: &str,
    seq: u64,
) -> Result<Vec<Assignment>, AppError> {
    system_assignments(
        spec,
        n.values(code, seq)
            .into_iter()
            .map(|(f, v)| (f, record::Stored::Str(v)))
            .collect(),
    )
}

/// `lines=DESCRIPTION;QUANTITY;UNIT_PRICE[;TAX%]`, or JSON objects with those keys.
fn parse_lines(value: &Given) -> Result<Vec<Line>, AppError> {
    let bad = |why: String| AppError::BadInput(format!("lines: {why}"));
    let one = |desc: &str, qty: &str, price: &str, tax: &str| -> Result<Line, AppError> {
        let q: f64 = qty
            .trim()
            .replace(',', ".")
            .parse()
            .map_err(|_| bad(format!("quantity {qty:?} is not a number")))?;
        let t: f64 = if tax.trim().is_empty() {
            0.0
        } else {
            tax.trim()
                .trim_end_matches('%')
                .replace(',', ".")
                .parse()
                .map_err(|_| bad(format!("tax rate {tax:?} is not a percentage")))?
        };
        if !(0.0..=100.0).contains(&t) || !(-1e9..=1e9).contains(&q) {
            return Err(bad("quantity or tax rate out of range".into()));
        }
        Ok(Line {
            description: desc.trim().to_string(),
            quantity_milli: (q * 1000.0).round() as i64,
            unit_price: Money::parse("unit_price", price, None)?,
            tax_bp: (t * 100.0).round() as i64,
        })
    };
    match value {
        Given::Text(t) => {
            let parts: Vec<&str> = t.split(';').collect();
            match parts.as_slice() {
                [d, q, p] => Ok(vec![one(d, q, p, "")?]),
                [d, q, p, x] => Ok(vec![one(d, q, p, x)?]),
                _ => Err(bad(format!(
                    "{t:?} is not DESCRIPTION;QUANTITY;UNIT_PRICE;TAX%, e.g. \"Corte;1;25EUR;21\""
                ))),
            }
        }
        Given::Json(Json::Array(items)) => items
            .iter()
            .map(|i| {
                let s = |k: &str| match &i[k] {
                    Json::String(s) => s.clone(),
                    Json::Null => String::new(),
                    other => other.to_string(),
                };
                let price = match &i["unit_price"] {
                    Json::Object(m) => Money {
                        amount: m.get("amount").and_then(Json::as_i64).unwrap_or_default(),
                        currency: m
                            .get("currency")
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    }
                    .display()
                    .replace(' ', ""),
                    _ => s("unit_price"),
                };
                one(&s("description"), &s("quantity"), &price, &s("tax_rate"))
            })
            .collect(),
        Given::Json(other) => Err(bad(format!("{other} is not a list of lines"))),
    }
}

/// Values Ficha writes itself into system fields (a case's events), beside a person's.
pub type SystemValues = Vec<(&'static str, record::Stored)>;

/// A change to apply in the same edit as a record's fields (events, read marks).
pub(crate) type Also<'a> =
    Box<dyn FnOnce(&mut automerge::AutoCommit, i64) -> Result<(), AppError> + 'a>;

impl Replica {
    /// Creates a record of `kind`, linked to `client` (whose company it takes) or in
    /// `company`; returns its id.
    pub fn add_record(
        &self,
        kind: &str,
        client: Option<DocId>,
        company: Option<&str>,
        given: &[(String, Given)],
    ) -> Result<DocId, AppError> {
        self.add_record_with(kind, client, company, given, Vec::new(), now_ms())
    }

    /// [`Replica::add_record`] with system values, at `now`. A kind numbered on creation (or
    /// created in the status that numbers it) takes the next number of this replica's series.
    pub(crate) fn add_record_with(
        &self,
        kind: &str,
        client: Option<DocId>,
        company: Option<&str>,
        given: &[(String, Given)],
        system: SystemValues,
        now: i64,
    ) -> Result<DocId, AppError> {
        let spec = spec(kind)?;
        // Who may sign in and with what role is for admins to decide.
        let needs = if spec.name == "employee" {
            super::people::Role::Admin
        } else {
            super::people::Role::Staff
        };
        self.require(needs)?;
        let company = self.company_of_new(spec, client, company)?;
        self.check_granted(&company)?;
        self.check_actor_company(&company)?;
        let (mut values, lines) = assignments(spec, given)?;
        values.extend(system_assignments(spec, system)?);
        self.check_links(&company, &values)?;
        let id = Uuid::new_v4();
        let doc = DocId::from(id);
        let who = self.who();
        let write = |d: &mut automerge::AutoCommit, numbered: Vec<Assignment>| {
            let mut values = values.clone();
            values.extend(numbered);
            record::create(
                d,
                spec,
                id,
                company.as_str(),
                client.map(|c| Uuid::from_bytes(c.0)),
                &values,
                &who,
                Uuid::new_v4(),
                now,
            )?;
            for l in &lines {
                record::add_line(d, Uuid::new_v4(), l, &who, Uuid::new_v4(), now)?;
            }
            Ok::<(), AppError>(())
        };
        let store = self.writer()?;
        match self.numbering_due(spec, &values, None)? {
            Some((n, code)) => store.create_numbered(doc, &company, n.series, |d, seq| {
                write(d, numbered_values(spec, &n, &code, seq)?)
            })?,
            None => store.create_doc(doc, &company, |d| write(d, Vec::new()))?,
        }
        self.edited();
        Ok(doc)
    }

    /// The company a new record of `spec` belongs to.
    fn company_of_new(
        &self,
        spec: &KindSpec,
        client: Option<DocId>,
        company: Option<&str>,
    ) -> Result<Company, AppError> {
        match (client, company) {
            (Some(c), _) => {
                let summary = self.client_summary(&c)?;
                if let Some(co) = company
                    && co != summary.company
                {
                    return Err(AppError::BadInput(format!(
                        "client {c} belongs to {}, not to {co}",
                        summary.company
                    )));
                }
                Ok(Company::new(&summary.company)?)
            }
            (None, Some(co)) => {
                Company::new(co).map_err(|e| AppError::BadInput(format!("company: {e}")))
            }
            (None, None) => Err(AppError::BadInput(format!(
                "a {} needs --client ID{}",
                spec.name,
                if spec.parent == Parent::Client {
                    ""
                } else {
                    " or --company C"
                }
            ))),
        }
    }

    /// The numbering this write must take, with this replica's code: when the kind numbers on
    /// creation, or the write brings it to the status that numbers it and it has no number.
    fn numbering_due(
        &self,
        spec: &KindSpec,
        values: &[Assignment],
        current: Option<&RecordSummary>,
    ) -> Result<Option<(record::Numbering, String)>, AppError> {
        let Some(n) = spec.numbering else {
            return Ok(None);
        };
        let given = |name: &str| {
            values.iter().find_map(|(f, v)| match v {
                record::Stored::Str(s) if f.name == name => Some(s.clone()),
                _ => None,
            })
        };
        let numbered = given(n.field).is_some_and(|v| !v.is_empty())
            || current
                .and_then(|c| c.fields.get(n.field))
                .and_then(Json::as_str)
                .is_some_and(|v| !v.is_empty());
        let due = match n.at_status {
            None => current.is_none(),
            Some(status) => spec.status.and_then(given).as_deref() == Some(status),
        };
        if numbered || !due {
            return Ok(None);
        }
        Ok(Some((n, self.numbering_code()?)))
    }

    /// This replica's code for its number series, kept in its store from the first token
    /// that carried one.
    pub fn numbering_code(&self) -> Result<String, AppError> {
        if let Some(code) = self.store.numbering_code()? {
            return Ok(code);
        }
        let code = ficha_core::token::peek(&self.store.identity().token)
            .map(|c| c.code)
            .unwrap_or_default();
        if code.is_empty() {
            return Err(AppError::NoNumberingCode);
        }
        Ok(self.store.adopt_numbering_code(&code)?)
    }

    /// Sets fields of a record (and adds lines given as `lines`).
    pub fn set_record(&self, id: DocId, given: &[(String, Given)]) -> Result<(), AppError> {
        self.set_record_with(id, given, None)
    }

    /// [`Replica::set_record`], with `also` applied in the same edit.
    pub(crate) fn set_record_with(
        &self,
        id: DocId,
        given: &[(String, Given)],
        also: Option<Also<'_>>,
    ) -> Result<(), AppError> {
        self.require(super::people::Role::Staff)?;
        let summary = self.record_summary(&id)?;
        let spec = spec(&summary.kind)?;
        let company = Company::new(&summary.company)?;
        self.check_actor_company(&company)?;
        if spec.name == "employee" {
            self.require(super::people::Role::Admin)?;
        }
        if spec.append_only {
            return Err(AppError::Conflict(format!(
                "a {} is never changed once made: add a new one (a reversal) instead",
                spec.name
            )));
        }
        let (values, lines) = assignments(spec, given)?;
        if values.is_empty() && lines.is_empty() {
            return Err(AppError::BadInput(format!(
                "nothing to set: give FIELD=VALUE (fields of a {}: {})",
                spec.name,
                spec.field_names()
            )));
        }
        self.check_links(&company, &values)?;
        let who = self.who();
        let now = now_ms();
        let write = |d: &mut automerge::AutoCommit, numbered: Vec<Assignment>| {
            let mut values = values.clone();
            values.extend(numbered);
            record::set(
                d,
                &values,
                &who,
                &mut std::iter::repeat_with(Uuid::new_v4),
                now,
            )?;
            for l in &lines {
                record::add_line(d, Uuid::new_v4(), l, &who, Uuid::new_v4(), now)?;
            }
            if let Some(also) = also {
                also(d, now)?;
            }
            Ok::<(), AppError>(())
        };
        let store = self.writer()?;
        match self.numbering_due(spec, &values, Some(&summary))? {
            Some((n, code)) => store.edit_numbered(id, n.series, |d, seq| {
                write(d, numbered_values(spec, &n, &code, seq)?)
            })?,
            None => store.edit_doc(id, |d| write(d, Vec::new()))?,
        }
        self.edited();
        Ok(())
    }

    /// A reference must name a record of the right kind in the same company: a link across
    /// companies would show one company's data to another's replicas.
    fn check_links(&self, company: &Company, values: &[Assignment]) -> Result<(), AppError> {
        for (f, v) in values {
            let (FieldType::Ref(kind), record::Stored::Str(target)) = (f.ty, v) else {
                continue;
            };
            if target.is_empty() {
                continue;
            }
            let id = super::parse_id(target)?;
            let (found_kind, found_company) = match kind {
                "client" => {
                    let c = self.client_summary(&id)?;
                    ("client".to_string(), c.company)
                }
                _ => {
                    let r = self.record_summary(&id).map_err(|_| {
                        AppError::BadInput(format!("{}: there is no {kind} {target}", f.name))
                    })?;
                    (r.kind, r.company)
                }
            };
            // A relation may join accounts of two companies this replica sees; every other
            // link stays inside its record's company.
            let cross = f.name == "child" && kind == "client";
            if cross {
                self.check_granted(&Company::new(&found_company)?)?;
            }
            if found_kind != kind || (!cross && found_company != company.as_str()) {
                return Err(AppError::BadInput(format!(
                    "{}: {target} is not a {kind} of {company}",
                    f.name
                )));
            }
        }
        Ok(())
    }

    /// A record's summary (its list row), or not found.
    pub fn record_summary(&self, id: &DocId) -> Result<RecordSummary, AppError> {
        let not_found = || AppError::NotFound(format!("there is no record {id} on this replica"));
        let index = self.store.index()?.ok_or_else(not_found)?;
        let bytes = index.summary(id)?.ok_or_else(not_found)?;
        match ficha_domain::index::Summary::decode(&bytes) {
            Ok(ficha_domain::index::Summary::Record(r)) => Ok(r),
            Ok(ficha_domain::index::Summary::Client(_)) => Err(AppError::NotFound(format!(
                "{id} is a client, not a record: use `ficha client show {id}`"
            ))),
            Err(_) => Ok(crate::listing::decode_record(id, &bytes)?),
        }
    }

    /// A client's summary, or not found.
    pub(crate) fn client_summary(
        &self,
        id: &DocId,
    ) -> Result<ficha_domain::ClientSummary, AppError> {
        let not_found = || AppError::NotFound(format!("there is no client {id} on this replica"));
        let index = self.store.index()?.ok_or_else(not_found)?;
        let bytes = index.summary(id)?.ok_or_else(not_found)?;
        match ficha_domain::index::Summary::decode(&bytes) {
            Ok(ficha_domain::index::Summary::Client(c)) => Ok(c),
            Ok(ficha_domain::index::Summary::Record(r)) => Err(AppError::NotFound(format!(
                "{id} is a {}, not a client",
                r.kind
            ))),
            Err(_) => Ok(crate::listing::decode_summary(id, &bytes)?),
        }
    }

    /// The whole record: `{id, kind, company, client, <fields>…, heads, conflicts, log}`, with
    /// ISO 8601 beside every time.
    pub fn show_record(&self, id: DocId) -> Result<Json, AppError> {
        let doc = self.store.read_doc(&id)?.ok_or_else(|| {
            AppError::NotFound(format!("there is no record {id} on this replica"))
        })?;
        let mut v = match record::view(&doc) {
            Ok(v) => v,
            Err(ficha_domain::DomainError::WrongKind { found, .. }) => {
                return Err(AppError::NotFound(format!(
                    "{id} is not a record ({found}); a client is shown by `ficha client show {id}`"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.check_readable(v["company"].as_str().unwrap_or_default())?;
        super::queries::add_iso_dates(&mut v);
        v["automerge_url"] = id.automerge_url().into();
        Ok(v)
    }

    /// A page of records, and checks that the filter names what exists.
    pub fn list_records(
        &self,
        filter: &RecordFilter,
        sort: &RecordSort,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<Vec<RecordSummary>, AppError> {
        if let Some(k) = &filter.kind {
            let spec = spec(k)?;
            if let Some(s) = &filter.status
                && let Some(FieldType::Enum(values)) =
                    spec.status.and_then(|f| spec.field(f)).map(|f| f.ty)
                && !values.contains(&s.as_str())
            {
                return Err(AppError::BadInput(format!(
                    "{s:?} is not a status of a {k}; statuses: {}",
                    values.join(", ")
                )));
            }
            if let Some(f) = &sort.field
                && spec.field(f).is_none()
                && !["title", "created_at", "updated_at", "total"].contains(&f.as_str())
            {
                return Err(AppError::BadInput(format!(
                    "cannot sort a {k} by {f:?}; fields: {}",
                    spec.field_names()
                )));
            }
        }
        for d in [&filter.since, &filter.until].into_iter().flatten() {
            super::day_start_ms(d)?;
        }
        let mut filter = filter.clone();
        if filter.company.is_none()
            && let Some(own) = self.actor_company()
        {
            filter.company = Some(own);
        }
        Ok(crate::listing::query_records(
            &self.store,
            &filter,
            sort,
            offset,
            limit,
        )?)
    }

    /// Every record linked to a client (or a record), in date order.
    pub fn linked_records(&self, id: &DocId) -> Result<Vec<RecordSummary>, AppError> {
        let filter = RecordFilter {
            linked: Some(id.to_string()),
            ..RecordFilter::default()
        };
        self.list_records(&filter, &RecordSort::default(), 0, None)
    }

    /// What links to a client, by kind, and its account: sales (issued and paid invoices
    /// minus credit notes) and what is pending, per currency.
    pub fn client_account(&self, id: &DocId) -> Result<Json, AppError> {
        self.account_of(id, &self.linked_records(id)?)
    }

    /// The account of a client from its linked records, already listed.
    pub(crate) fn account_of(
        &self,
        id: &DocId,
        records: &[RecordSummary],
    ) -> Result<Json, AppError> {
        let linked = crate::listing::linked_counts(&self.store, id)?;
        let (sales, pending) = totals(records);
        let last = records.iter().map(|r| r.updated_at).max();
        Ok(json!({
            "linked": linked,
            "sales_total": sales,
            "pending_total": pending,
            "records_updated_at": last,
        }))
    }

    /// The current account of a client: every pending document and the totals.
    pub fn statement(&self, id: &DocId) -> Result<Json, AppError> {
        let client = self.client_summary(id)?;
        let records = self.linked_records(id)?;
        let pending: Vec<Json> = records
            .iter()
            .filter_map(|r| {
                let due = r.pending()?;
                Some(json!({
                    "id": r.id,
                    "kind": r.kind,
                    "title": r.title,
                    "date": r.date,
                    "due_date": r.fields.get("due_date"),
                    "total": r.total.as_ref().map(Money::json),
                    "paid": r.paid.as_ref().map(Money::json),
                    "pending": due.json(),
                }))
            })
            .collect();
        let (sales, pending_total) = totals(&records);
        Ok(json!({
            "client": id.to_string(),
            "name": client.name,
            "company": client.company,
            "pending": pending,
            "sales_total": sales,
            "pending_total": pending_total,
        }))
    }
}

/// Sales and pending amounts per currency, in minor units.
pub fn totals(records: &[RecordSummary]) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let mut sales = BTreeMap::new();
    let mut pending = BTreeMap::new();
    for r in records {
        if let Some(m) = r.sale() {
            *sales.entry(m.currency).or_insert(0) += m.amount;
        }
        if let Some(m) = r.pending() {
            *pending.entry(m.currency).or_insert(0) += m.amount;
        }
    }
    (sales, pending)
}

/// Client list filters that look at a client's records: services and appointments.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LinkFilter {
    /// `with` (an active service), `without` (no active service) or `cancelled` (a cancelled
    /// service and no active one).
    pub services: Option<String>,
    /// Only clients with a service of this service type (active, with `services=with`).
    pub service_type: Option<String>,
    /// Only clients with an upcoming appointment (scheduled or confirmed, from now on).
    #[serde(default)]
    pub upcoming: bool,
}

impl LinkFilter {
    /// True when it selects nothing beyond the plain filter.
    pub fn is_empty(&self) -> bool {
        self.services.is_none() && self.service_type.is_none() && !self.upcoming
    }
}

impl Replica {
    /// The clients holding a record of `kind` that `keep` accepts.
    fn clients_with(
        &self,
        kind: &str,
        filter: RecordFilter,
        keep: impl Fn(&RecordSummary) -> bool,
    ) -> Result<HashSet<String>, AppError> {
        let rows = self.list_records(
            &RecordFilter {
                kind: Some(kind.into()),
                ..filter
            },
            &RecordSort::default(),
            0,
            None,
        )?;
        Ok(rows
            .iter()
            .filter(|r| keep(r))
            .filter_map(|r| r.client.clone())
            .collect())
    }

    /// Whether each client passes the link filter, as a predicate over client ids.
    pub fn link_predicate(
        &self,
        links: &LinkFilter,
        now_ms: i64,
    ) -> Result<impl Fn(&str) -> bool + use<>, AppError> {
        let of_type = |r: &RecordSummary| {
            links
                .service_type
                .as_deref()
                .is_none_or(|t| r.fields.get("service_type").and_then(Json::as_str) == Some(t))
        };
        // Every service is read once, and only when a service filter is given.
        let services = match (links.services.as_deref(), links.service_type.is_some()) {
            (None, false) => None,
            (kind, _) => {
                let all = self.list_records(
                    &RecordFilter {
                        kind: Some("service".into()),
                        ..RecordFilter::default()
                    },
                    &RecordSort::default(),
                    0,
                    None,
                )?;
                let clients_where = |keep: &dyn Fn(&RecordSummary) -> bool| -> HashSet<String> {
                    all.iter()
                        .filter(|r| keep(r))
                        .filter_map(|r| r.client.clone())
                        .collect()
                };
                let active = || {
                    clients_where(&|r: &RecordSummary| {
                        r.status.as_deref() == Some("active") && of_type(r)
                    })
                };
                Some(match kind {
                    None => (clients_where(&of_type), true),
                    Some("with") => (active(), true),
                    Some("without") => (active(), false),
                    Some("cancelled") => {
                        let cancelled = clients_where(&|r: &RecordSummary| {
                            r.status.as_deref() == Some("cancelled") && of_type(r)
                        });
                        (cancelled.difference(&active()).cloned().collect(), true)
                    }
                    Some(other) => {
                        return Err(AppError::BadInput(format!(
                            "--services {other:?}: use with, without or cancelled"
                        )));
                    }
                })
            }
        };
        let upcoming = if links.upcoming {
            let now = ficha_domain::record::iso(now_ms).unwrap_or_default();
            Some(self.clients_with(
                "appointment",
                RecordFilter {
                    since: now.get(..10).map(str::to_string),
                    ..RecordFilter::default()
                },
                |r| {
                    matches!(r.status.as_deref(), Some("scheduled" | "confirmed"))
                        && r.date.as_deref().is_some_and(|d| d >= now.as_str())
                },
            )?)
        } else {
            None
        };
        Ok(move |id: &str| {
            services
                .as_ref()
                .is_none_or(|(set, inside)| set.contains(id) == *inside)
                && upcoming.as_ref().is_none_or(|set| set.contains(id))
        })
    }

    /// A client list row: its summary with its sales and last update.
    pub fn client_row(&self, c: &ficha_domain::ClientSummary) -> Result<Json, AppError> {
        let id = DocId::from(c.id);
        let account = self.client_account(&id)?;
        let last = [
            Some(c.created_at),
            c.state_at,
            account["records_updated_at"].as_i64(),
        ]
        .into_iter()
        .flatten()
        .max();
        let mut row = serde_json::to_value(c)?;
        row["sales_total"] = account["sales_total"].clone();
        row["last_update"] = json!(last.and_then(super::iso));
        super::queries::add_iso_dates(&mut row);
        Ok(row)
    }

    /// A page of client rows: the plain filter, then the link filter, then paging.
    pub fn client_rows(
        &self,
        filter: &ficha_domain::search::Filter,
        links: &LinkFilter,
        sort: ficha_domain::search::Sort,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<Vec<Json>, AppError> {
        let page = if links.is_empty() {
            self.page_sorted(filter, sort, offset, limit)?
        } else {
            let keep = self.link_predicate(links, now_ms())?;
            self.page_sorted(filter, sort, 0, None)?
                .into_iter()
                .filter(|c| keep(&c.id.to_string()))
                .skip(offset)
                .take(limit.unwrap_or(usize::MAX))
                .collect()
        };
        page.iter().map(|c| self.client_row(c)).collect()
    }

    /// Sales of these clients, per currency: every kind that counts in an account is read
    /// once, not once per client.
    pub fn total_sales(
        &self,
        clients: std::collections::HashSet<String>,
    ) -> Result<BTreeMap<String, i64>, AppError> {
        let mut records = Vec::new();
        for k in record::kinds::KINDS
            .iter()
            .filter(|k| k.account != record::Account::None)
        {
            records.extend(
                self.list_records(
                    &RecordFilter {
                        kind: Some(k.name.into()),
                        ..RecordFilter::default()
                    },
                    &RecordSort::default(),
                    0,
                    None,
                )?
                .into_iter()
                .filter(|r| r.client.as_ref().is_some_and(|c| clients.contains(c))),
            );
        }
        Ok(totals(&records).0)
    }
}
