//! CSV import and export of clients.
//!
//! Import maps columns by header (Spanish or English names, or an explicit mapping file), runs
//! each row as one store transaction (a bad row stores nothing and is reported with its line
//! number; the others go on unless told to stop), updates instead of duplicating on re-import
//! (matching by code, tax id or email), flags rows that look like existing clients, and tags
//! every client it creates with the batch id so `import revert` can undo the batch.

use std::collections::HashMap;
use std::io::Read;

use serde::Serialize;
use uuid::Uuid;

use ficha_core::{Company, DocId};
use ficha_domain::ClientSummary;
use ficha_domain::search::{Filter, normalise};

use ficha_store::Batch;

use crate::app::{AppError, ImportedRow, Replica, now_ms};
use crate::duplicates::match_keys;

/// Fields a column can map to: the record's own fields plus what an import row can carry.
fn fields() -> Vec<&'static str> {
    ficha_domain::schema::TEXT_FIELDS
        .iter()
        .chain(ficha_domain::profile::PROFILE_FIELDS)
        .copied()
        .chain([
            ficha_domain::profile::ADDITIONAL_INFO,
            "company",
            "group",
            "note",
        ])
        .collect()
}

/// Recognises a header in Spanish or English.
fn field_of(header: &str) -> Option<&'static str> {
    let h = normalise(header.trim())
        .replace(['-', '.'], " ")
        .replace('_', " ");
    let f = match h.as_str() {
        "name" | "nombre" | "nombre completo" | "full name" | "cliente" => "name",
        "first name" | "nombre de pila" => "first_name",
        "last name" | "surname" | "apellidos" | "apellido" => "last_name",
        "legal name" | "razon social" => "legal_name",
        "email" | "e mail" | "mail" | "correo" | "correo electronico" => "email",
        "phone" | "telephone" | "mobile" | "telefono" | "movil" | "tel" => "phone",
        "tax id" | "nif" | "dni" | "cif" | "nie" | "vat" | "rfc" => "tax_id",
        "birth date"
        | "birthday"
        | "date of birth"
        | "fecha de nacimiento"
        | "fecha nacimiento"
        | "nacimiento" => "birth_date",
        "gender" | "sex" | "sexo" | "genero" => "gender",
        "language" | "preferred language" | "idioma" => "preferred_language",
        "origin" | "source" | "origen" => "origin",
        "centre" | "center" | "home centre" | "centro" => "home_centre",
        "employee" | "assigned employee" | "empleado" | "responsable" => "assigned_employee",
        "code" | "client code" | "codigo" | "codigo cliente" => "code",
        "company" | "empresa" => "company",
        "group" | "groups" | "grupo" | "grupos" => "group",
        "note" | "notes" | "nota" | "notas" | "observaciones" => "note",
        "additional information" | "additional info" | "informacion adicional" => "additional_info",
        _ => return fields().into_iter().find(|f| *f == h.replace(' ', "_")),
    };
    Some(f)
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The batch id (revert with `ficha import revert BATCH`).
    pub batch: String,
    /// Whether anything was written.
    pub dry_run: bool,
    /// Rows read.
    pub rows: usize,
    /// Clients created.
    pub created: usize,
    /// Existing clients updated (matched by code, tax id or email).
    pub updated: usize,
    /// Rows that changed nothing.
    pub unchanged: usize,
    /// Created rows that look like an existing client.
    pub flagged: Vec<Flag>,
    /// Rows refused, with their line numbers.
    pub errors: Vec<RowError>,
    /// Columns ignored (no field recognised).
    pub ignored_columns: Vec<String>,
}

/// A row that may duplicate an existing client.
#[derive(Debug, Serialize)]
pub struct Flag {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// The existing client.
    pub duplicate_of: String,
    /// What they share.
    pub reason: &'static str,
}

/// A refused row.
#[derive(Debug, Serialize)]
pub struct RowError {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// Why.
    pub error: String,
}

/// How to run an import.
pub struct Options {
    /// Company for rows without a company column.
    pub company: Option<String>,
    /// Explicit header → field mapping (overrides recognition).
    pub mapping: HashMap<String, String>,
    /// Report only.
    pub dry_run: bool,
    /// Stop at the first bad row (rows before it stay imported).
    pub stop_on_error: bool,
}

/// Every client's update keys (code, tax id, email) and similarity keys (phone, name + birth
/// date), so a row finds its client without a query per row.
fn key_index(clients: &[ClientSummary]) -> HashMap<(String, &'static str, String), DocId> {
    let mut idx = HashMap::new();
    for c in clients {
        let update = keys_of(c.code.as_deref(), c.tax_id.as_deref(), c.email.as_deref());
        for (kind, key) in update.into_iter().chain(crate::duplicates::keys(c)) {
            idx.insert((c.company.clone(), kind, key), DocId::from(c.id));
        }
    }
    idx
}

fn keys_of(
    code: Option<&str>,
    tax: Option<&str>,
    email: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(c) = code.filter(|c| !c.trim().is_empty()) {
        out.push(("code", c.trim().to_string()));
    }
    if let Some(t) = tax.filter(|t| !t.trim().is_empty()) {
        out.push((
            "tax_id",
            t.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_uppercase(),
        ));
    }
    if let Some(e) = email.filter(|e| e.contains('@')) {
        out.push(("email", e.trim().to_lowercase()));
    }
    out
}

/// Imports clients from CSV.
pub fn import(
    replica: &Replica,
    input: impl Read,
    opts: &Options,
    progress: &mut dyn FnMut(usize),
) -> Result<Report, AppError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| AppError::BadInput(format!("cannot read the header line: {e}")))?
        .clone();
    let mut columns: Vec<Option<&'static str>> = Vec::new();
    let mut report = Report {
        batch: Uuid::new_v4().to_string(),
        dry_run: opts.dry_run,
        ..Report::default()
    };
    for h in headers.iter() {
        let mapped = match opts.mapping.get(h) {
            Some(f) => Some(fields().into_iter().find(|x| x == f).ok_or_else(|| {
                AppError::BadInput(format!(
                    "mapping names unknown field {f:?}; fields: {}",
                    fields().join(", ")
                ))
            })?),
            None => field_of(h),
        };
        if mapped.is_none() {
            report.ignored_columns.push(h.to_string());
        }
        columns.push(mapped);
    }
    if !columns
        .iter()
        .any(|c| matches!(c, Some("name" | "first_name" | "last_name" | "legal_name")))
    {
        return Err(AppError::BadInput(
            "no name column (name/nombre, first_name, last_name or legal_name)".into(),
        ));
    }
    // The batch id is made just above from a fresh UUID: failing to read it back is a bug.
    let batch = Uuid::parse_str(&report.batch)
        .map_err(|_| AppError::BadInput(format!("{:?} is not an import batch id", report.batch)))?;
    let mut existing = key_index(&replica.query(&Filter {
        state: Some("active".into()),
        ..Filter::default()
    })?);
    existing.extend(key_index(&replica.query(&Filter {
        state: Some("archived".into()),
        ..Filter::default()
    })?));
    let mut records = reader.records().peekable();
    let mut stopped = false;
    let mut next_line = 2u64;
    while !stopped && records.peek().is_some() {
        // One transaction per batch of rows: an fsync per client would dominate a long import.
        // A crash loses at most the open batch, and re-importing the file is idempotent.
        let writes = replica.batch()?;
        for record in records.by_ref().take(ROWS_PER_TRANSACTION) {
            // The line a row starts on, as an editor shows it (a quoted field may span lines).
            let line = record
                .as_ref()
                .ok()
                .and_then(|r| r.position())
                .map_or(next_line, |p| p.line());
            next_line = line + 1;
            report.rows += 1;
            progress(report.rows);
            let result = record
                .map_err(|e| AppError::BadInput(format!("unreadable row: {e}")))
                .and_then(|r| {
                    check_row(&r, columns.len())?;
                    row(
                        replica,
                        &writes,
                        &columns,
                        &r,
                        opts,
                        batch,
                        &mut existing,
                        line,
                        &mut report,
                    )
                });
            match result {
                Ok(()) => {}
                // The store failing is not the row's fault: stop, keeping the batches done.
                Err(e) if !e.is_row_error() => return Err(e),
                Err(e) => {
                    report.errors.push(RowError {
                        line,
                        error: e.to_string(),
                    });
                    if opts.stop_on_error {
                        stopped = true;
                        break;
                    }
                }
            }
        }
        if !opts.dry_run {
            replica.commit(writes)?;
        }
    }
    Ok(report)
}

/// Rows written per transaction.
const ROWS_PER_TRANSACTION: usize = 500;

/// Refuses a row one of whose quoted fields ran into the following lines: a quote that is
/// never closed makes the parser read the next rows as part of one field, which would import
/// them as one client. A line of it that holds as many separators as a row is such a row.
fn check_row(record: &csv::StringRecord, columns: usize) -> Result<(), AppError> {
    let separators = columns.saturating_sub(1).max(1);
    for field in record.iter() {
        let swallowed = field
            .lines()
            .skip(1)
            .any(|l| l.matches([',', ';']).count() >= separators);
        if swallowed {
            return Err(AppError::BadInput(
                "a quoted field of this row runs into the following lines (is a closing quote missing?): fix the quotes and import again".into(),
            ));
        }
    }
    Ok(())
}

/// A cell as written by a spreadsheet-safe export (a leading `'` before `=`, `+`, `-`, `@`),
/// read back as the value it protects.
fn unescape(v: &str) -> &str {
    match v.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => v,
    }
}

/// A cell that a spreadsheet would not run as a formula: one starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return gets a leading `'` (OWASP's advice for CSV injection).
pub(crate) fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{v}"))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    replica: &Replica,
    writes: &Batch<'_>,
    columns: &[Option<&'static str>],
    record: &csv::StringRecord,
    opts: &Options,
    batch: Uuid,
    existing: &mut HashMap<(String, &'static str, String), DocId>,
    line: u64,
    report: &mut Report,
) -> Result<(), AppError> {
    let mut values: Vec<(&'static str, String)> = Vec::new();
    for (col, v) in columns.iter().zip(record.iter()) {
        if let Some(f) = col
            && !v.is_empty()
        {
            values.push((f, unescape(v).to_string()));
        }
    }
    let get = |f: &str| values.iter().find(|(k, _)| *k == f).map(|(_, v)| v.clone());
    let company = get("company")
        .or_else(|| opts.company.clone())
        .ok_or_else(|| {
            AppError::BadInput("no company (add a company column or pass --company)".into())
        })?;
    let name = get("name")
        .or_else(|| {
            let full = [get("first_name"), get("last_name")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!full.is_empty()).then_some(full)
        })
        .or_else(|| get("legal_name"))
        .ok_or_else(|| AppError::BadInput("the name is empty".into()))?;
    let keys = keys_of(
        get("code").as_deref(),
        get("tax_id").as_deref(),
        get("email").as_deref(),
    );
    let matched = keys.iter().find_map(|(kind, key)| {
        existing
            .get(&(company.clone(), *kind, key.clone()))
            .copied()
    });
    let fields: Vec<(&'static str, String)> = values
        .iter()
        .filter(|(k, _)| !matches!(*k, "company" | "group" | "note" | "name"))
        .cloned()
        .chain(std::iter::once(("name", name.clone())))
        .collect();
    let groups: Vec<String> = get("group")
        .map(|g| {
            g.split([';', ','])
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let note = get("note");
    if opts.dry_run {
        // Validate on a scratch document so a dry run refuses exactly what a real run would.
        let mut scratch = automerge::AutoCommit::new();
        ficha_domain::new_client(&mut scratch, Uuid::nil(), &company, &name, None, None, 0)?;
        for (f, v) in &fields {
            ficha_domain::set_field(&mut scratch, f, v, 0)?;
        }
        for g in &groups {
            ficha_domain::add_group(&mut scratch, g)?;
        }
        if let Some(n) = &note {
            ficha_domain::add_note(&mut scratch, Uuid::nil(), n, 0)?;
        }
        if matched.is_some() {
            report.updated += 1
        } else {
            report.created += 1
        }
        return Ok(());
    }
    let imported = ImportedRow {
        fields: &fields,
        groups: &groups,
        note: note.as_deref(),
    };
    match matched {
        Some(id) => {
            let changed = replica.apply_import(writes, id, &imported)?;
            if changed {
                report.updated += 1
            } else {
                report.unchanged += 1
            }
        }
        None => {
            let id = replica.create_imported(writes, &company, &name, &imported, batch)?;
            let similar = match_keys(
                get("tax_id").as_deref(),
                get("email").as_deref(),
                get("phone").as_deref(),
                &name,
                get("birth_date").as_deref(),
            );
            for (kind, key) in similar {
                match existing.get(&(company.clone(), kind, key.clone())) {
                    Some(other) if *other != id => report.flagged.push(Flag {
                        line,
                        duplicate_of: other.to_string(),
                        reason: kind,
                    }),
                    _ => {
                        existing.insert((company.clone(), kind, key), id);
                    }
                }
            }
            for (kind, key) in keys {
                existing.insert((company.clone(), kind, key), id);
            }
            report.created += 1;
        }
    }
    Ok(())
}

/// Trashes every client the batch created; returns how many.
pub fn revert(replica: &Replica, batch: &str) -> Result<usize, AppError> {
    let mut n = 0;
    for state in ["active", "archived"] {
        for c in replica.query(&Filter {
            state: Some(state.into()),
            ..Filter::default()
        })? {
            if c.import_batch.as_deref() == Some(batch) {
                replica.set_state(DocId::from(c.id), "trashed", false)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Writes the clients a filter selects as CSV.
pub fn export_csv(clients: &[ClientSummary], out: impl std::io::Write) -> Result<(), AppError> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| AppError::BadInput(format!("cannot write CSV: {e}"));
    w.write_record([
        "id",
        "company",
        "name",
        "email",
        "phone",
        "tax_id",
        "code",
        "birth_date",
        "state",
        "groups",
        "home_centre",
        "origin",
    ])
    .map_err(io)?;
    for c in clients {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let cells = [
            c.id.to_string(),
            c.company.clone(),
            c.name.clone(),
            opt(&c.email),
            opt(&c.phone),
            opt(&c.tax_id),
            opt(&c.code),
            opt(&c.birth_date),
            c.state.clone(),
            c.groups.join(";"),
            opt(&c.home_centre),
            opt(&c.origin),
        ];
        w.write_record(cells.iter().map(|c| escape(c).into_owned()))
            .map_err(io)?;
    }
    w.flush()
        .map_err(|e| AppError::BadInput(format!("cannot write CSV: {e}")))?;
    Ok(())
}

impl Replica {
    /// Creates a client from an import row, tagged with its batch, inside `w`.
    pub fn create_imported(
        &self,
        w: &Batch<'_>,
        company: &str,
        name: &str,
        row: &ImportedRow<'_>,
        batch: Uuid,
    ) -> Result<DocId, AppError> {
        let ImportedRow {
            fields,
            groups,
            note,
        } = *row;
        let company = Company::new(company)?;
        self.check_granted(&company)?;
        let id = Uuid::new_v4();
        let who = self.who();
        w.create_doc(DocId::from(id), &company, |d| {
            ficha_domain::new_client(d, id, company.as_str(), name, None, None, now_ms())?;
            for (f, v) in fields {
                ficha_domain::set_field(d, f, v, now_ms())?;
            }
            for g in groups {
                ficha_domain::add_group(d, g)?;
            }
            if let Some(n) = note {
                ficha_domain::add_note(d, Uuid::new_v4(), n, now_ms())?;
            }
            ficha_domain::merge::mark_import(d, batch)?;
            ficha_domain::log_event(
                d,
                Uuid::new_v4(),
                &who,
                "imported",
                &format!("batch {batch}"),
                now_ms(),
            )?;
            Ok::<(), AppError>(())
        })?;
        self.edited();
        Ok(DocId::from(id))
    }

    /// Applies an import row to an existing client, writing only what differs; true if
    /// anything changed.
    pub fn apply_import(
        &self,
        w: &Batch<'_>,
        id: DocId,
        row: &ImportedRow<'_>,
    ) -> Result<bool, AppError> {
        let ImportedRow {
            fields,
            groups,
            note,
        } = *row;
        let who = self.who();
        let changed = w.edit_doc(id, |d| {
            let current = serde_json::to_value(ficha_domain::view(d.document())?)?;
            let mut changed = false;
            for (f, v) in fields {
                let now = current.get(*f).or_else(|| current["profile"].get(*f));
                let same = matches!(now, Some(serde_json::Value::String(s)) if s == v);
                if !same {
                    ficha_domain::set_field(d, f, v, now_ms())?;
                    changed = true;
                }
            }
            for g in groups {
                if !current["groups"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == g))
                {
                    ficha_domain::add_group(d, g)?;
                    changed = true;
                }
            }
            if let Some(n) = note
                && !current["notes"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["text"] == n))
            {
                ficha_domain::add_note(d, Uuid::new_v4(), n, now_ms())?;
                changed = true;
            }
            if changed {
                ficha_domain::log_event(
                    d,
                    Uuid::new_v4(),
                    &who,
                    "import_updated",
                    "updated by an import",
                    now_ms(),
                )?;
            }
            Ok::<bool, AppError>(changed)
        })?;
        if changed {
            self.edited();
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_are_escaped_and_read_back() {
        for v in [
            "=HYPERLINK(\"x\")",
            "+34 600 111 222",
            "-1",
            "@SUM(A1)",
            "\tx",
        ] {
            let e = escape(v);
            assert!(e.starts_with('\''), "{v} -> {e}");
            assert_eq!(unescape(&e), v);
        }
        assert_eq!(escape("Ana"), "Ana");
        assert_eq!(
            unescape("'quoted"),
            "'quoted",
            "only what an export escaped"
        );
    }
}
