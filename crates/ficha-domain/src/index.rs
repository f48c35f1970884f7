//! The list index of every kind: what the store keeps for each document so that "all invoices
//! of this client" or "every open appointment of centre X next week" are index lookups.
//!
//! Every row is scoped by kind (`invoice␟st:issued`, `client␟w:ana`), so one table serves all
//! kinds and a lookup never crosses into another kind; `*␟…` rows are shared by every record
//! kind (search across kinds, everything linked to a client).

use automerge::Automerge;
use ficha_core::index::{IndexKeys, Indexer};

use crate::record::{RecordSummary, kind_of};
use crate::search::{Probe, index_terms, normalise, order_key};
use crate::view::ClientSummary;

/// Separates a kind from the rest of an index row.
pub const SEP: char = '\u{1f}';
/// The scope of rows every record kind writes.
pub const ANY: &str = "*";
/// The most search words one record adds to the index.
const MAX_WORDS: usize = 64;

/// `kind␟term`.
pub fn scoped(kind: &str, term: &str) -> String {
    format!("{kind}{SEP}{term}")
}

/// The index row prefix of one kind's list.
pub fn order_prefix(kind: &str) -> String {
    format!("{kind}{SEP}")
}

/// A probe of the client planner, scoped to clients.
pub fn client_probe(p: &Probe) -> Probe {
    match p {
        Probe::Exact(t) => Probe::Exact(scoped("client", t)),
        Probe::Prefix(t) => Probe::Prefix(scoped("client", t)),
    }
}

/// The term of a record linked to `target` (a client or any record).
pub fn link_term(kind: &str, target: &str) -> String {
    scoped(kind, &format!("@{target}"))
}

/// Words of a text, as the index keeps them.
pub fn words(s: &str) -> Vec<String> {
    normalise(s)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The words a record is found by: its title and every searched field.
pub fn record_words(r: &RecordSummary) -> Vec<String> {
    let mut out = words(&r.title);
    if let Some(spec) = crate::record::kind(&r.kind) {
        for f in spec.fields.iter().filter(|f| f.search) {
            if let Some(serde_json::Value::String(s)) = r.fields.get(f.name) {
                out.extend(words(s));
            }
        }
    }
    out.sort();
    out.dedup();
    out.truncate(MAX_WORDS);
    out
}

/// The rows of a record: company, links, status, day, enum values, words.
pub fn record_terms(r: &RecordSummary) -> Vec<String> {
    let k = r.kind.as_str();
    let mut terms = vec![scoped(k, &format!("co:{}", r.company))];
    if let Some(c) = &r.client {
        terms.push(link_term(k, c));
        terms.push(link_term(ANY, c));
    }
    for (_, target) in &r.links {
        terms.push(link_term(k, target));
        terms.push(link_term(ANY, target));
    }
    if let Some(s) = &r.status {
        terms.push(scoped(k, &format!("st:{s}")));
    }
    if let Some(d) = r.date.as_deref().and_then(|d| d.get(..10)) {
        terms.push(scoped(k, &format!("d:{d}")));
    }
    if let Some(spec) = crate::record::kind(k) {
        for f in spec.fields {
            if field_row(f)
                && let Some(v) = r.fields.get(f.name)
            {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                terms.push(scoped(k, &format!("f:{}={}", f.name, normalise(&v))));
            }
        }
    }
    for w in record_words(r) {
        terms.push(scoped(k, &format!("w:{w}")));
        terms.push(scoped(ANY, &format!("w:{w}")));
    }
    terms.sort();
    terms.dedup();
    terms
}

/// Whether the index keeps a `f:FIELD=VALUE` row for this field: enums, booleans and codes.
/// The planner probes these rows only for such fields; any other field it leaves to the check
/// against the summary.
pub fn field_row(f: &crate::record::FieldSpec) -> bool {
    matches!(
        f.ty,
        crate::record::FieldType::Enum(_) | crate::record::FieldType::Bool
    ) || f.name == "code"
}

/// Where a record sits in its kind's list: by its date (or creation), oldest first.
pub fn record_order(r: &RecordSummary) -> String {
    let when = r
        .date
        .clone()
        .or_else(|| crate::record::iso(r.created_at))
        .unwrap_or_default();
    format!("{}{SEP}{when}", r.kind)
}

/// What the store keeps for one document.
#[derive(Debug)]
pub enum Summary {
    /// A client.
    Client(ClientSummary),
    /// A record of another kind.
    Record(RecordSummary),
}

impl Summary {
    /// The summary of a document of any kind.
    pub fn of(doc: &Automerge) -> Result<Self, crate::DomainError> {
        if kind_of(doc)? == "client" {
            Ok(Summary::Client(crate::summary(doc)?))
        } else {
            Ok(Summary::Record(crate::record::summary(doc)?))
        }
    }

    /// Back from stored bytes: a record summary names its kind, a client's does not.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let v: serde_json::Value = serde_json::from_slice(bytes)?;
        if v.get("kind").is_some() {
            Ok(Summary::Record(serde_json::from_value(v)?))
        } else {
            Ok(Summary::Client(serde_json::from_value(v)?))
        }
    }

    fn encode(&self) -> Option<Vec<u8>> {
        match self {
            Summary::Client(c) => serde_json::to_vec(c).ok(),
            Summary::Record(r) => serde_json::to_vec(r).ok(),
        }
    }

    /// Its index rows.
    pub fn keys(&self) -> IndexKeys {
        match self {
            Summary::Client(c) => IndexKeys {
                order: scoped("client", &order_key(c)),
                terms: index_terms(c).iter().map(|t| scoped("client", t)).collect(),
            },
            Summary::Record(r) => IndexKeys {
                order: record_order(r),
                terms: record_terms(r),
            },
        }
    }
}

/// Indexes documents of every kind.
pub struct DomainIndexer;

impl Indexer for DomainIndexer {
    fn summarize(&self, doc: &Automerge) -> Option<Vec<u8>> {
        Summary::of(doc).ok()?.encode()
    }

    fn keys(&self, summary: &[u8]) -> Option<IndexKeys> {
        Some(Summary::decode(summary).ok()?.keys())
    }

    fn summarize_with_keys(&self, doc: &Automerge) -> Option<(Vec<u8>, Option<IndexKeys>)> {
        let s = Summary::of(doc).ok()?;
        Some((s.encode()?, Some(s.keys())))
    }

    /// 3: rows scoped by kind, records indexed.
    fn version(&self) -> u64 {
        3
    }
}
