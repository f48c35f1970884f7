//! Records of every kind beyond the client, driven by one registry of kinds
//! ([`kinds::KINDS`]): each kind's fields, types, merge rules, links and list keys are data,
//! and the functions here work for all of them.

mod doc;
mod doc_table;
pub mod kinds;
mod query;
mod registry;
mod value;
mod view;

pub use doc::{
    Assignment, CLIENT, FIELDS, KIND, KIND_VERSION, LOG, Line, UPDATED_AT, add_line, add_members,
    create, derived_id, fill, genesis, kind_of, log, set, spec_of,
};
pub use doc_table::markdown;
pub use query::{RecordFilter, RecordSort};
pub use registry::{
    Account, FieldSpec, FieldType, KindSpec, Merge, Numbering, Parent, field, kind, kind_names,
};
pub use value::{Money, Stored, iso, parse, parse_json, show};
pub use view::{
    RecordSummary, furthest, in_agreed_order, lines, log as log_entries, summary, totals, view,
};
