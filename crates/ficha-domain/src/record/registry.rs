//! What a record kind is: its fields, their types and merge rules, what it links to and how it
//! is listed. Every kind is one [`KindSpec`] in [`crate::record::kinds::KINDS`]; the CLI, the
//! HTTP routes, validation, views, the list index and `docs/records.md` all read it from there.

use serde::Serialize;

/// How a field's value is written and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// One line of text.
    Text,
    /// Free text, stored as Automerge text so concurrent edits both survive.
    LongText,
    /// A whole number.
    Integer,
    /// An amount in integer minor units with its ISO 4217 currency (`1234.50EUR`).
    Money,
    /// A calendar day, `YYYY-MM-DD`.
    Date,
    /// A moment, ISO 8601 with an offset (`2026-12-03T10:00:00+01:00`); stored in UTC.
    DateTime,
    /// One of a fixed list.
    Enum(&'static [&'static str]),
    /// The id of another record of this kind (`"client"` for a client).
    Ref(&'static str),
    /// true or false.
    Bool,
    /// A set of short strings (comma-separated when written as text).
    Set,
    /// Lines of a commercial document: description, quantity, unit price, tax rate.
    Lines,
}

impl FieldType {
    /// The name `record kinds` shows.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::LongText => "long_text",
            FieldType::Integer => "integer",
            FieldType::Money => "money",
            FieldType::Date => "date",
            FieldType::DateTime => "date_time",
            FieldType::Enum(_) => "enum",
            FieldType::Ref(_) => "reference",
            FieldType::Bool => "boolean",
            FieldType::Set => "set",
            FieldType::Lines => "lines",
        }
    }

    /// How a field of this type merges unless its declaration says otherwise.
    pub const fn merge(self) -> Merge {
        match self {
            FieldType::LongText => Merge::Text,
            FieldType::Set => Merge::Set,
            FieldType::Lines => Merge::Items,
            _ => Merge::Register,
        }
    }
}

/// How concurrent edits of one field combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Merge {
    /// One value wins on every replica; the others stay visible under `conflicts`.
    Register,
    /// Character-level merge: both edits survive.
    Text,
    /// Additions and removals of members all survive.
    Set,
    /// A map of items keyed by id: concurrent additions all survive.
    Items,
    /// A status that only moves forward through the declared order, also through a merge.
    Monotonic,
    /// The value written last (by the writer's clock) wins on every replica, whatever the
    /// order the edits arrive in (a task's next action: the one of the latest time entry).
    Latest,
}

/// One field of a kind.
#[derive(Debug)]
pub struct FieldSpec {
    /// Its key in the document, the CLI (`FIELD=VALUE`) and JSON.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// Must be given at creation.
    pub required: bool,
    /// How it merges.
    pub merge: Merge,
    /// Its words are search terms of the record.
    pub search: bool,
    /// Never shown (a password hash).
    pub hidden: bool,
    /// Shown, but written only by Ficha itself (a case number, SLA events).
    pub system: bool,
    /// The value a new record gets when none is given.
    pub default: Option<&'static str>,
}

/// Where a record of a kind hangs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Parent {
    /// Always linked to a client (`--client ID`).
    Client,
    /// Linked to a client when one is given; otherwise it belongs to a company.
    OptionalClient,
    /// Belongs to a company, never to one client (employees, products, campaigns).
    Company,
}

/// What totals a kind contributes to a client's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// Nothing.
    None,
    /// A sale once issued; pending until paid (invoices).
    Sale,
    /// Subtracted from sales (credit notes).
    Refund,
}

/// One record kind.
#[derive(Debug)]
pub struct KindSpec {
    /// Its name: stored at the document's root, used in commands and routes.
    pub name: &'static str,
    /// What people call it, in Spanish.
    pub label_es: &'static str,
    /// What people call it, in English.
    pub label_en: &'static str,
    /// Bumped when its layout changes (signed, as every integer a record stores: JavaScript
    /// readers get unsigned ones as BigInt).
    pub version: i64,
    /// Where it hangs.
    pub parent: Parent,
    /// Its fields.
    pub fields: &'static [FieldSpec],
    /// The fields whose values, joined, are its title in lists.
    pub title: &'static [&'static str],
    /// The field `--status` filters by.
    pub status: Option<&'static str>,
    /// The field `--since`/`--until` filter by and lists are ordered by (else creation).
    pub date: Option<&'static str>,
    /// The field holding its total, when it has one (money).
    pub total: Option<&'static str>,
    /// What it adds to a client's account.
    pub account: Account,
    /// Never edited once made (ledger movements): a mistake is corrected by a new record.
    pub append_only: bool,
    /// How its records get a number no other replica can give, offline too.
    pub numbering: Option<Numbering>,
}

/// Numbers from a series of the replica's own: `<replica code>-<sequence>`, the sequence
/// kept by the replica in the transaction that writes the number, so two replicas never give
/// the same number and a crash never gives one twice.
#[derive(Debug, Clone, Copy)]
pub struct Numbering {
    /// The series' name in the replica's counters (one series per kind).
    pub series: &'static str,
    /// The field the number goes in.
    pub field: &'static str,
    /// The field the replica's code goes in when the kind keeps the series apart (invoices:
    /// series `A1`, number `17`); without one the number is `A1-17`.
    pub series_field: Option<&'static str>,
    /// Numbered when its status becomes this (an invoice on issue); None: on creation.
    pub at_status: Option<&'static str>,
}

impl Numbering {
    /// The values to write for sequence `seq` of the replica with `code`.
    pub fn values(&self, code: &str, seq: u64) -> Vec<(&'static str, String)> {
        match self.series_field {
            Some(series) => vec![(series, code.to_string()), (self.field, seq.to_string())],
            None => vec![(self.field, format!("{code}-{seq}"))],
        }
    }
}

impl KindSpec {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The names of its fields a person may set, for error messages.
    pub fn field_names(&self) -> String {
        self.fields
            .iter()
            .filter(|f| !f.hidden)
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Its reference fields, with the kind each points to.
    pub fn links(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.fields.iter().filter_map(|f| match f.ty {
            FieldType::Ref(k) => Some((f.name, k)),
            _ => None,
        })
    }
}

/// A field declaration with the merge rule of its type.
pub const fn field(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        required: false,
        merge: ty.merge(),
        search: false,
        hidden: false,
        system: false,
        default: None,
    }
}

impl FieldSpec {
    /// Must be given at creation.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Its words are search terms.
    pub const fn searched(mut self) -> Self {
        self.search = true;
        self
    }

    /// Only moves forward through its enum's order.
    pub const fn monotonic(mut self) -> Self {
        self.merge = Merge::Monotonic;
        self
    }

    /// Never shown.
    pub const fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    /// Written only by Ficha, never through `FIELD=VALUE`.
    pub const fn system(mut self) -> Self {
        self.system = true;
        self
    }

    /// The value written last wins, by the writer's clock.
    pub const fn latest(mut self) -> Self {
        self.merge = Merge::Latest;
        self
    }

    /// Given this value at creation when none is.
    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }
}

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static KindSpec> {
    super::kinds::KINDS.iter().find(|k| k.name == name)
}

/// Every kind's name, for error messages.
pub fn kind_names() -> String {
    super::kinds::KINDS
        .iter()
        .map(|k| k.name)
        .collect::<Vec<_>>()
        .join(", ")
}
