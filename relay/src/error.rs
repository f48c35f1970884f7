//! What the relay library's entry points fail with, worded for the person running them.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::store::RelayStoreError;

/// An error from starting, serving or administering a relay.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] RelayStoreError),
    /// The PostgreSQL store failed.
    #[error(transparent)]
    Postgres(#[from] crate::pg::PgError),
    /// The signing secret cannot be read or created.
    #[error("signing secret in {dir}: {source}")]
    Secret {
        /// The data directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
    /// A company code is invalid.
    #[error(transparent)]
    Company(#[from] ficha_core::IdError),
    /// An argument cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The running relay refused or failed an admin call.
    #[error("the relay at {addr} answered: {message}")]
    Admin {
        /// The relay's address.
        addr: String,
        /// What it said (or why it could not be asked).
        message: String,
    },
    /// The system clock reads before 1970, so token times would be wrong.
    #[error("the system clock is set before 1970")]
    Clock,
}
