//! The domain's error type.

use thiserror::Error;

/// Why an edit or a view of a client record failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DomainError {
    /// A field name the record does not have.
    #[error("unknown field {field:?}; valid fields: {valid}")]
    UnknownField {
        /// The name given.
        field: String,
        /// The names accepted.
        valid: String,
    },
    /// Required fields not given, each named.
    #[error("a {kind} needs {}: give each one", fields.join(", "))]
    Missing {
        /// The kind.
        kind: String,
        /// The fields missing.
        fields: Vec<String>,
    },
    /// A value that does not fit its field.
    #[error("invalid value for {field}: {reason}")]
    InvalidValue {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Longer than the field allows.
    #[error("{field} has {len} characters; it may have at most {max}")]
    TooLong {
        /// The field.
        field: String,
        /// Its length in characters.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// No item with this id in the section.
    #[error("there is no item {item} in {section}")]
    UnknownItem {
        /// The section.
        section: String,
        /// The item id asked for.
        item: String,
    },
    /// The document is not a client record (or is damaged).
    #[error("not a client record: {0}")]
    NotAClient(String),
    /// The document is another kind of record than the one asked for.
    #[error("this is {found}, not {expected}")]
    WrongKind {
        /// What was asked for.
        expected: String,
        /// What the document is.
        found: String,
    },
    /// A business rule refuses the edit (the record is unchanged).
    #[error("{0}")]
    Rule(String),
    /// Automerge refused the operation.
    #[error("document error: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}
