//! Writing a record: creation, field edits, lines, and the audit log every edit appends to.
//! None commits: the store commits once per user action.
//!
//! Layout: the root holds what the record is (`kind`, `kind_version`, `id`, `company`, the
//! `client` it hangs on, `created_at`, `updated_at`); `fields` holds one key per field, each
//! merging as its declaration says; `log` is a map of entries that only grows.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc};
use uuid::Uuid;

use super::registry::{FieldSpec, FieldType, KindSpec, Merge, Parent};
use super::value::{Money, Stored};
use crate::actor::Actor;
use crate::error::DomainError;
use crate::read;
use crate::schema::{COMPANY, CREATED_AT, ID, SCHEMA, SCHEMA_VERSION};

/// Root key: what kind of record the document is (absent on clients made before kinds).
pub const KIND: &str = "kind";
/// Root key: the layout version of that kind.
pub const KIND_VERSION: &str = "kind_version";
/// Root key: the client a record hangs on.
pub const CLIENT: &str = "client";
/// Root key: the map of fields.
pub const FIELDS: &str = "fields";
/// Root key: the audit log.
pub const LOG: &str = "log";
/// Root key: last edit time (ms).
pub const UPDATED_AT: &str = "updated_at";

/// One field and the value to give it.
pub type Assignment = (&'static FieldSpec, Stored);

/// One line of a commercial document.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// What was sold.
    pub description: String,
    /// How many, in thousandths (1.5 → 1500), so fractions of hours and kilos fit.
    pub quantity_milli: i64,
    /// Price of one.
    pub unit_price: Money,
    /// Tax rate in hundredths of a percent (21 % → 2100).
    pub tax_bp: i64,
}

/// The kind a document says it is; a document without one is a client.
pub fn kind_of(doc: &impl ReadDoc) -> Result<String, DomainError> {
    Ok(read::string(doc, &ROOT, KIND)?.unwrap_or_else(|| "client".into()))
}

/// The spec of a record document, or a typed error if it is a client or unknown.
pub fn spec_of(doc: &impl ReadDoc) -> Result<&'static KindSpec, DomainError> {
    let kind = kind_of(doc)?;
    super::registry::kind(&kind).ok_or(DomainError::WrongKind {
        expected: "a record".into(),
        found: kind,
    })
}

fn fields_obj(doc: &AutoCommit) -> Result<ObjId, DomainError> {
    read::map(doc, &ROOT, FIELDS)?.ok_or_else(|| DomainError::WrongKind {
        expected: "a record".into(),
        found: "a document without fields".into(),
    })
}

/// Initialises an empty document as a record of `spec`. `client` is required or refused as
/// the kind's parent says; required fields must be among `values`.
#[allow(clippy::too_many_arguments)]
pub fn create(
    doc: &mut AutoCommit,
    spec: &'static KindSpec,
    id: Uuid,
    company: &str,
    client: Option<Uuid>,
    values: &[Assignment],
    actor: &Actor,
    log_id: Uuid,
    now_ms: i64,
) -> Result<(), DomainError> {
    match (spec.parent, client) {
        (Parent::Client, None) => {
            return Err(DomainError::InvalidValue {
                field: "client".into(),
                reason: format!("a {} belongs to a client: give --client ID", spec.name),
            });
        }
        (Parent::Company, Some(_)) => {
            return Err(DomainError::InvalidValue {
                field: "client".into(),
                reason: format!("a {} belongs to a company, not to a client", spec.name),
            });
        }
        _ => {}
    }
    check_required(spec, values)?;
    layout(doc, spec, id, company, client, now_ms)?;
    let fields = fields_obj(doc)?;
    for (f, v) in values {
        write(doc, &fields, f, v, now_ms)?;
    }
    log(doc, log_id, actor, "created", spec.name, None, now_ms)?;
    Ok(())
}

fn check_required(spec: &KindSpec, values: &[Assignment]) -> Result<(), DomainError> {
    let missing: Vec<&str> = spec
        .fields
        .iter()
        .filter(|f| f.required && !values.iter().any(|(g, _)| g.name == f.name))
        .map(|f| f.name)
        .collect();
    match missing.as_slice() {
        [] => Ok(()),
        [one] => Err(DomainError::InvalidValue {
            field: (*one).into(),
            reason: format!("a {} needs {one}", spec.name),
        }),
        many => Err(DomainError::Missing {
            kind: spec.name.into(),
            fields: many.iter().map(|f| f.to_string()).collect(),
        }),
    }
}

/// What every record of `spec` starts with: its identity, its containers and its defaults.
/// It depends only on its arguments, so the genesis of a derived record is the same bytes on
/// every replica.
fn layout(
    doc: &mut AutoCommit,
    spec: &'static KindSpec,
    id: Uuid,
    company: &str,
    client: Option<Uuid>,
    created_at: i64,
) -> Result<(), DomainError> {
    doc.put(ROOT, SCHEMA, SCHEMA_VERSION)?;
    doc.put(ROOT, KIND, spec.name)?;
    doc.put(ROOT, KIND_VERSION, spec.version)?;
    doc.put(ROOT, ID, id.to_string())?;
    doc.put(ROOT, COMPANY, company)?;
    if let Some(c) = client {
        doc.put(ROOT, CLIENT, c.to_string())?;
    }
    doc.put(ROOT, CREATED_AT, created_at)?;
    doc.put(ROOT, UPDATED_AT, created_at)?;
    // Every container is made here, by the one replica that creates the record: two replicas
    // creating the same container concurrently would each make their own, and one would win.
    let fields = doc.put_object(ROOT, FIELDS, ObjType::Map)?;
    for f in spec.fields {
        match f.merge {
            Merge::Text => {
                doc.put_object(&fields, f.name, ObjType::Text)?;
            }
            Merge::Set | Merge::Items | Merge::Monotonic | Merge::Latest => {
                doc.put_object(&fields, f.name, ObjType::Map)?;
            }
            Merge::Register => {}
        }
    }
    doc.put_object(ROOT, LOG, ObjType::Map)?;
    for f in spec.fields {
        if let Some(d) = f.default {
            write(
                doc,
                &fields,
                f,
                &super::value::parse(f, d, None)?,
                created_at,
            )?;
        }
    }
    Ok(())
}

/// The id of a record rule `rule` creates under `parent`, having seen `known` (the ids of
/// its siblings): every replica that saw the same derives the same id.
pub fn derived_id(rule: &str, company: &str, parent: &str, known: &[String]) -> Uuid {
    let mut known = known.to_vec();
    known.sort();
    let mut h = blake3::Hasher::new_derive_key("ficha 2026 derived record id");
    for part in [rule, company, parent]
        .into_iter()
        .chain(known.iter().map(String::as_str))
    {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&h.finalize().as_bytes()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The first change of a record whose id every replica derives the same way (the project a
/// quick time entry creates): its layout only, written by the document's genesis actor at time
/// zero, so two replicas creating it offline write the same bytes. [`fill`] then adds what
/// each replica knows.
pub fn genesis(
    spec: &'static KindSpec,
    id: Uuid,
    company: &str,
    client: Option<Uuid>,
) -> Result<Vec<u8>, DomainError> {
    let doc_id = ficha_core::DocId::from(id);
    let mut doc = AutoCommit::new().with_actor(ficha_core::ids::genesis_actor(doc_id));
    layout(&mut doc, spec, id, company, client, 0)?;
    doc.commit_with(automerge::transaction::CommitOptions::default().with_time(0));
    doc.get_last_local_change()
        .map(|c| c.raw_bytes().to_vec())
        .ok_or_else(|| DomainError::Rule("a record's layout is never empty".into()))
}

/// Gives a record started from its [`genesis`] its values and creation entry; a record some
/// other replica filled already only gets the values.
pub fn fill(
    doc: &mut AutoCommit,
    values: &[Assignment],
    actor: &Actor,
    log_id: Uuid,
    now_ms: i64,
) -> Result<(), DomainError> {
    let spec = spec_of(doc)?;
    check_required(spec, values)?;
    let fields = fields_obj(doc)?;
    for (f, v) in values {
        write(doc, &fields, f, v, now_ms)?;
    }
    if read::int(doc, &ROOT, CREATED_AT)? == 0 {
        doc.put(ROOT, CREATED_AT, now_ms)?;
        log(doc, log_id, actor, "created", spec.name, None, now_ms)?;
    }
    doc.put(ROOT, UPDATED_AT, now_ms)?;
    Ok(())
}

/// Adds members to a set field without touching the others (events, read marks): what other
/// replicas added concurrently stays.
pub fn add_members(
    doc: &mut AutoCommit,
    field: &str,
    members: &[String],
    now_ms: i64,
) -> Result<(), DomainError> {
    let spec = spec_of(doc)?;
    let f = spec
        .field(field)
        .filter(|f| f.merge == Merge::Set)
        .ok_or_else(|| DomainError::UnknownField {
            field: field.into(),
            valid: spec.field_names(),
        })?;
    let fields = fields_obj(doc)?;
    let set = obj(doc, &fields, f.name, ObjType::Map)?;
    for m in members {
        crate::limits::check(f.name, m)?;
        doc.put(&set, m.as_str(), true)?;
    }
    doc.put(ROOT, UPDATED_AT, now_ms)?;
    Ok(())
}

/// Sets fields of an existing record, logging each with its old value.
pub fn set(
    doc: &mut AutoCommit,
    values: &[Assignment],
    actor: &Actor,
    log_ids: &mut impl Iterator<Item = Uuid>,
    now_ms: i64,
) -> Result<(), DomainError> {
    let spec = spec_of(doc)?;
    let fields = fields_obj(doc)?;
    for (f, v) in values {
        if spec.field(f.name).is_none() {
            return Err(DomainError::UnknownField {
                field: f.name.into(),
                valid: spec.field_names(),
            });
        }
        let old = super::view::field_text(doc, &fields, f)?;
        write(doc, &fields, f, v, now_ms)?;
        let new = super::view::field_text(doc, &fields, f)?;
        if old != new {
            let id = log_ids.next().unwrap_or_else(Uuid::nil);
            let shown = if f.hidden { None } else { old.as_deref() };
            let text = if f.hidden {
                format!("{} changed", f.name)
            } else {
                format!("{} = {}", f.name, new.unwrap_or_default())
            };
            log(
                doc,
                id,
                actor,
                "field_set",
                &text,
                Some((f.name, shown)),
                now_ms,
            )?;
        }
    }
    doc.put(ROOT, UPDATED_AT, now_ms)?;
    Ok(())
}

fn write(
    doc: &mut AutoCommit,
    fields: &ObjId,
    f: &FieldSpec,
    v: &Stored,
    now_ms: i64,
) -> Result<(), DomainError> {
    match (f.merge, v) {
        (Merge::Latest, Stored::Str(s)) => {
            let written = obj(doc, fields, f.name, ObjType::Map)?;
            doc.put(&written, super::view::latest_key(now_ms, s), s.as_str())?;
        }
        (Merge::Monotonic, Stored::Str(s)) => {
            let FieldType::Enum(order) = f.ty else {
                return Err(DomainError::InvalidValue {
                    field: f.name.into(),
                    reason: "only an enum can move forward".into(),
                });
            };
            let reached = obj(doc, fields, f.name, ObjType::Map)?;
            let rank = |v: &str| order.iter().position(|o| *o == v);
            if let Some(current) = super::view::furthest(doc, &reached, order)?
                && rank(s) < rank(&current)
            {
                return Err(DomainError::Rule(format!(
                    "{} only moves forward ({}); it is {current} already",
                    f.name,
                    order.join(" → ")
                )));
            }
            doc.put(&reached, s.as_str(), true)?;
        }
        (Merge::Text, Stored::Text(s)) => {
            let text = obj(doc, fields, f.name, ObjType::Text)?;
            doc.update_text(&text, s)?;
        }
        (Merge::Set, Stored::Set(members)) => {
            let set = obj(doc, fields, f.name, ObjType::Map)?;
            let old: Vec<String> = doc.keys(&set).collect();
            for m in old.iter().filter(|m| !members.contains(m)) {
                doc.delete(&set, m.as_str())?;
            }
            for m in members.iter().filter(|m| !old.contains(m)) {
                doc.put(&set, m.as_str(), true)?;
            }
        }
        (Merge::Register, Stored::Str(s)) if s.is_empty() => {
            doc.delete(fields, f.name)?;
        }
        (Merge::Register, Stored::Str(s)) => doc.put(fields, f.name, s.as_str())?,
        (Merge::Register, Stored::Int(i)) => doc.put(fields, f.name, *i)?,
        (Merge::Register, Stored::Bool(b)) => doc.put(fields, f.name, *b)?,
        (_, other) => {
            return Err(DomainError::InvalidValue {
                field: f.name.into(),
                reason: format!("{other:?} does not fit a {} field", f.ty.name()),
            });
        }
    }
    Ok(())
}

/// The container at `key`, made if a document from before the field existed lacks it.
fn obj(doc: &mut AutoCommit, parent: &ObjId, key: &str, ty: ObjType) -> Result<ObjId, DomainError> {
    if let Some((automerge::Value::Object(t), id)) = doc.get(parent, key)?
        && t == ty
    {
        return Ok(id);
    }
    Ok(doc.put_object(parent, key, ty)?)
}

/// Adds a line to the record's `lines`; every line of a record is in one currency.
pub fn add_line(
    doc: &mut AutoCommit,
    line_id: Uuid,
    line: &Line,
    actor: &Actor,
    log_id: Uuid,
    now_ms: i64,
) -> Result<(), DomainError> {
    let spec = spec_of(doc)?;
    let Some(f) = spec.fields.iter().find(|f| f.ty == FieldType::Lines) else {
        return Err(DomainError::UnknownField {
            field: "lines".into(),
            valid: spec.field_names(),
        });
    };
    crate::limits::check_line("description", &line.description)?;
    let fields = fields_obj(doc)?;
    if let Some(existing) = super::view::lines(doc, &fields, f)?.first()
        && existing.unit_price.currency != line.unit_price.currency
    {
        return Err(DomainError::Rule(format!(
            "the lines of this {} are in {}; a line in {} cannot join them",
            spec.name, existing.unit_price.currency, line.unit_price.currency
        )));
    }
    let lines = obj(doc, &fields, f.name, ObjType::Map)?;
    let item = doc.put_object(&lines, line_id.to_string(), ObjType::Map)?;
    doc.put(&item, "description", line.description.as_str())?;
    doc.put(&item, "quantity_milli", line.quantity_milli)?;
    doc.put(&item, "unit_price", line.unit_price.stored())?;
    doc.put(&item, "tax_bp", line.tax_bp)?;
    doc.put(&item, "created_at", now_ms)?;
    let text = format!("{} × {}", line.description, line.unit_price.display());
    log(doc, log_id, actor, "line_added", &text, None, now_ms)?;
    doc.put(ROOT, UPDATED_AT, now_ms)?;
    Ok(())
}

/// Appends an entry to the audit log: what, when, on which replica, by which employee, and
/// for a field change the value it replaced.
pub fn log(
    doc: &mut AutoCommit,
    id: Uuid,
    actor: &Actor,
    kind: &str,
    text: &str,
    field: Option<(&str, Option<&str>)>,
    now_ms: i64,
) -> Result<(), DomainError> {
    crate::limits::check("text", text)?;
    let log = obj(doc, &ROOT, LOG, ObjType::Map)?;
    let entry = doc.put_object(&log, id.to_string(), ObjType::Map)?;
    doc.put(&entry, "at", now_ms)?;
    doc.put(&entry, "kind", kind)?;
    doc.put(&entry, "text", text)?;
    doc.put(&entry, "who", actor.display())?;
    doc.put(&entry, "replica", actor.replica.as_str())?;
    if let Some(e) = &actor.employee {
        doc.put(&entry, "employee_id", e.id.as_str())?;
        doc.put(&entry, "employee_name", e.name.as_str())?;
    }
    if let Some((name, old)) = field {
        doc.put(&entry, "field", name)?;
        if let Some(old) = old {
            doc.put(&entry, "old", old)?;
        }
    }
    Ok(())
}
