//! Key names of the client document, in one place.

/// Version of the document layout, stored under [`SCHEMA`] (a signed integer: JavaScript
/// readers get unsigned ones as BigInt, which JSON cannot carry).
pub const SCHEMA_VERSION: i64 = 1;

/// Root key: layout version.
pub const SCHEMA: &str = "schema";
/// Root key: the client's id (the document id).
pub const ID: &str = "id";
/// Root key: the owning company.
pub const COMPANY: &str = "company";
/// Root key: creation time (ms).
pub const CREATED_AT: &str = "created_at";
/// Root key: whether the client is archived.
pub const ARCHIVED: &str = "archived";
/// Root key: notes, a map from note id to note.
pub const NOTES: &str = "notes";
/// Root key: comments, a map from comment id to comment.
pub const COMMENTS: &str = "comments";
/// Root key: alerts, a map from alert id to alert.
pub const ALERTS: &str = "alerts";

/// Scalar text fields settable with `set_field`, each its own register at the root.
pub const TEXT_FIELDS: &[&str] = &["name", "email", "phone"];
