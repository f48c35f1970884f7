//! The client record ("ficha") as an Automerge document.
//!
//! Merge rules, chosen per field:
//! - every scalar field (name, email, phone, archived) is its own key at the root, so it merges
//!   as an independent register: concurrent edits converge to the same winner on every replica
//!   (Automerge's deterministic order) and the losers stay listed in `conflicts`;
//! - notes, comments and alerts are maps keyed by the item's UUID, never lists, so concurrent
//!   additions all survive and a merge never drops an item;
//! - note and comment bodies and alert descriptions are Automerge text, so concurrent edits of
//!   one body both survive.
//!
//! - the other collections (emails, phones, addresses, allergies, skin tests, reviews, contacts,
//!   files) follow the same rules, described once in [`sections::SECTIONS`]; allergies, alerts
//!   and skin tests are deactivated, never deleted;
//! - a skin test's status only moves forward, also through a merge ([`skin`]);
//! - groups are a set; the activity log only grows.
//!
//! Nothing here reads a clock or a random source: ids and timestamps are arguments.

pub mod actor;
pub mod annotations;
pub mod case;
mod edit;
mod error;
pub mod index;
mod kinds;
pub mod limits;
pub mod merge;
pub mod profile;
pub mod purge;
mod read;
pub mod record;
pub mod relations;
pub mod schema;
pub mod search;
pub mod sections;
pub mod skin;
pub mod sla;
mod view;
pub mod wallet;

pub use actor::{Actor, EmployeeRef};
pub use edit::{add_alert, add_comment, add_note, new_client, set_archived, set_field};
pub use error::DomainError;
pub use kinds::{AlertPriority, Priority};
pub use profile::{add_group, field_value, log_event, log_field, remove_group, set_state};
pub use schema::SCHEMA_VERSION;
pub use sections::{add_item, remove_item, set_item};
pub use view::{Alert, ClientSummary, ClientView, Comment, LogEntry, Note, summary, view};
