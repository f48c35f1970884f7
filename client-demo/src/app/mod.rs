//! The replica as a user sees it: client records over the store, with sync notified on edit.
//!
//! `edits` holds the actions that change one client, `lifecycle` the state changes and their
//! rules (reactivation, tombstones, bulk actions), `queries` the lists, metrics and status.

pub mod cases;
mod edits;
mod lifecycle;
mod messages;
pub mod people;
mod queries;
pub mod records;
mod relations;
pub mod time;
mod wallet;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::Notify;
use uuid::Uuid;

use ficha_core::{Company, DocId, ReplicaId, token};
use ficha_domain::DomainError;
use ficha_store::{Batch, Identity, Store, StoreError};

pub use lifecycle::Selection;
pub use messages::{INTERRUPTED, Outcome, Outgoing};
pub use people::{Acting, Employee, Role};
pub use queries::{Status, iso};
pub use records::{Given, LinkFilter};

/// What a user action can fail with, typed to the end: the local API maps each kind to its
/// status code, the CLI prints it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AppError {
    /// The store failed or refused (not initialised, locked, unknown id, too large…).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The record refused the edit (a field, a value, an item).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Input that does not make sense.
    #[error("{0}")]
    BadInput(String),
    /// An id or a company code that is not one.
    #[error(transparent)]
    Id(#[from] ficha_core::IdError),
    /// A view that could not be turned into JSON (a bug, not the caller's input).
    #[error("cannot show this as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Something named that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A business rule refused the action (a likely duplicate, a tombstone…); what to do is in
    /// the message.
    #[error("{0}")]
    Conflict(String),
    /// A numbered record (a case, an issued invoice) on a replica whose token has no code.
    #[error(
        "this replica has no code for numbering cases and invoices: its token was issued before codes existed. Ask the relay's operator for a new token (`ficha-relay token --replica NAME ...`) and run `ficha token set TOKEN`"
    )]
    NoNumberingCode,
    /// The replica's token may not write, so its edits could never be uploaded.
    #[error(
        "this replica's token is read-only: an edit made here could never reach the relay. Ask the relay's operator for a write token and run `ficha token set TOKEN`"
    )]
    ReadOnly,
    /// A company this replica's token does not grant.
    #[error("company {company} is not granted to this replica (its token grants: {granted})")]
    NotGranted {
        /// The company asked for.
        company: String,
        /// The companies the token grants.
        granted: String,
    },
    /// Whoever acts may not do this (a viewer editing, staff purging, another company).
    #[error("{0}")]
    Denied(String),
    /// Not signed in, or a wrong password.
    #[error("{0}")]
    Unauthenticated(String),
    /// An attachment could not be moved to or from the relay.
    #[error(transparent)]
    Blob(#[from] crate::files::BlobError),
}

/// How an error reads to a machine: the local API's status code follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input (400).
    BadInput,
    /// Not signed in (401).
    Unauthenticated,
    /// Not allowed here (403).
    Forbidden,
    /// Does not exist (404).
    NotFound,
    /// A rule refused it (409).
    Conflict,
    /// Too large (413).
    TooLarge,
    /// This replica failed (500).
    Internal,
    /// Busy with another process (503).
    Busy,
}

impl AppError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use crate::files::BlobError;
        match self {
            AppError::NotFound(_)
            | AppError::Store(StoreError::UnknownDoc(_))
            | AppError::Domain(DomainError::UnknownItem { .. } | DomainError::WrongKind { .. })
            | AppError::Blob(BlobError::Missing(_)) => ErrorKind::NotFound,
            AppError::Conflict(_)
            | AppError::Store(StoreError::DocExists(_))
            | AppError::Domain(DomainError::Rule(_)) => ErrorKind::Conflict,
            AppError::ReadOnly | AppError::NoNumberingCode | AppError::Denied(_) => {
                ErrorKind::Forbidden
            }
            AppError::Unauthenticated(_) => ErrorKind::Unauthenticated,
            AppError::Store(StoreError::TooLarge { .. }) => ErrorKind::TooLarge,
            AppError::Store(StoreError::Locked(_)) => ErrorKind::Busy,
            AppError::BadInput(_)
            | AppError::Id(_)
            | AppError::NotGranted { .. }
            | AppError::Domain(_) => ErrorKind::BadInput,
            AppError::Store(_) | AppError::Blob(_) | AppError::Json(_) => ErrorKind::Internal,
        }
    }

    /// True when the error is about the caller's input or a rule, not this replica failing
    /// (an import reports such a row and goes on).
    pub fn is_row_error(&self) -> bool {
        !matches!(self.kind(), ErrorKind::Internal | ErrorKind::Busy)
    }
}

/// What one import row writes besides the name.
#[derive(Clone, Copy)]
pub struct ImportedRow<'a> {
    /// Field values, by field name.
    pub fields: &'a [(&'a str, String)],
    /// Client groups to add.
    pub groups: &'a [String],
    /// A note to add (once).
    pub note: Option<&'a str>,
}

/// An open replica, acting as itself or as an employee.
pub struct Replica {
    store: Arc<Store>,
    changed: Arc<Notify>,
    /// Counts local edits, for pages watching the replica live (`GET /api/events`).
    revision: Arc<tokio::sync::watch::Sender<u64>>,
    acting: Acting,
}

/// Milliseconds since the Unix epoch, for record timestamps.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Midnight UTC of a YYYY-MM-DD day, in ms since the Unix epoch.
pub fn day_start_ms(day: &str) -> Result<i64, AppError> {
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|e| AppError::BadInput(format!("{day:?} is not a YYYY-MM-DD date: {e}")))?;
    Ok(d.and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_millis())
}

/// An ISO 8601 moment (`2026-12-05T17:00:00+01:00`) in ms since the Unix epoch.
pub fn moment_ms(at: &str) -> Result<i64, AppError> {
    chrono::DateTime::parse_from_rfc3339(at.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            AppError::BadInput(format!(
                "{at:?} is not an ISO 8601 moment such as 2026-12-05T17:00:00+01:00: {e}"
            ))
        })
}

/// Parses a client id given by a user.
pub fn parse_id(s: &str) -> Result<DocId, AppError> {
    Ok(DocId::from_str(s)?)
}

/// Parses an item id given by a user.
pub fn parse_item(s: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(s.trim())
        .map_err(|_| AppError::BadInput(format!("{s:?} is not a valid item id")))
}

impl Replica {
    /// Creates a replica in `dir`, bound to a relay and a token.
    pub fn init(
        dir: &Path,
        name: &str,
        relay_url: &str,
        token: &str,
    ) -> Result<Identity, AppError> {
        if !(relay_url.starts_with("ws://") || relay_url.starts_with("wss://")) {
            return Err(AppError::BadInput(format!(
                "relay URL {relay_url:?} must start with ws:// or wss://"
            )));
        }
        token::peek(token).map_err(|e| AppError::BadInput(format!("token: {e}")))?;
        let identity = Identity {
            replica: ReplicaId::from(Uuid::new_v4()),
            name: name.to_string(),
            relay_url: relay_url.to_string(),
            token: token.trim().to_string(),
        };
        Store::init(dir, &identity)?;
        Ok(identity)
    }

    /// Opens the replica in `dir`.
    pub fn open(dir: &Path) -> Result<Self, AppError> {
        let store = Store::open(dir, Arc::new(ficha_domain::index::DomainIndexer))?;
        let actor = ficha_domain::Actor::replica(&store.identity().name);
        Ok(Self {
            store: Arc::new(store),
            changed: Arc::new(Notify::new()),
            revision: Arc::new(tokio::sync::watch::Sender::new(0)),
            acting: Acting {
                actor,
                employee: None,
                language: None,
            },
        })
    }

    /// The store, for the sync driver.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Signalled after every local edit.
    pub fn changed(&self) -> &Arc<Notify> {
        &self.changed
    }

    /// The companies this replica's token grants.
    pub fn granted(&self) -> Vec<Company> {
        token::peek(&self.store.identity().token)
            .map(|c| c.companies)
            .unwrap_or_default()
    }

    /// Whether this replica's token may upload.
    pub fn may_write(&self) -> bool {
        token::peek(&self.store.identity().token).is_ok_and(|c| c.write)
    }

    /// The store, for an edit: refused on a read-only replica, whose edits could never be
    /// uploaded.
    pub(crate) fn writer(&self) -> Result<&Store, AppError> {
        self.require(Role::Staff)?;
        if self.may_write() {
            Ok(&self.store)
        } else {
            Err(AppError::ReadOnly)
        }
    }

    pub(crate) fn check_granted(&self, company: &Company) -> Result<(), AppError> {
        let granted = self.granted();
        if granted.contains(company) {
            Ok(())
        } else {
            Err(AppError::NotGranted {
                company: company.to_string(),
                granted: granted
                    .iter()
                    .map(Company::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }

    pub(crate) fn edited(&self) {
        self.changed.notify_one();
        self.revision.send_modify(|r| *r += 1);
    }

    /// Changes whenever a local edit is committed.
    pub fn edits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Starts a batch of edits that become durable together (imports, bulk actions).
    pub fn batch(&self) -> Result<Batch<'_>, AppError> {
        Ok(self.writer()?.batch()?)
    }

    /// Makes a batch durable and wakes the sync loop for it.
    pub fn commit(&self, batch: Batch<'_>) -> Result<(), AppError> {
        batch.commit()?;
        self.edited();
        Ok(())
    }

    /// Replaces this replica's token (after it expired or was revoked) and puts the changes
    /// the relay refused back in the outbox, since the new token may allow them; returns how
    /// many. The relay checks the token at the next sync.
    pub fn set_token(&self, token: &str) -> Result<usize, AppError> {
        let claims = token::peek(token).map_err(|e| AppError::BadInput(format!("token: {e}")))?;
        let name = &self.store.identity().name;
        if &claims.replica != name {
            return Err(AppError::BadInput(format!(
                "this token was issued for replica {:?}, and this replica is {name:?}: ask for a token with --replica {name}",
                claims.replica
            )));
        }
        self.store.replace_token(token.trim())?;
        if !claims.code.is_empty() {
            self.store.adopt_numbering_code(&claims.code)?;
        }
        Ok(self.store.retry_refused()?)
    }

    /// Local changes the relay has not acknowledged yet.
    pub fn pending_upload(&self) -> Result<u64, AppError> {
        Ok(self.store.pending_upload()?)
    }
}

pub(crate) fn describe(values: &[(String, String)]) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `key=value` arguments.
pub fn parse_pairs(args: &[String]) -> Result<Vec<(String, String)>, AppError> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| AppError::BadInput(format!("{a:?} is not key=value")))
        })
        .collect()
}
