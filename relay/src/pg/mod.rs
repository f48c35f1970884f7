//! The relay's shared store on PostgreSQL, for several relay nodes on one database (issue 15):
//! [`PgRelayStore`], and its change feed, gap-free under concurrent writers on any number of
//! nodes.
//!
//! A reader moves its checkpoint to the last sequence number it read, so no number may become
//! visible after a larger one of the same company. A sequence or `BIGSERIAL` column does not
//! give that: numbers are drawn when a row is inserted, and transactions commit in any order, so
//! a polling reader passes a number whose transaction has not committed yet and never reads it
//! (`relay/tests/pg_feed.rs` measures it). Here each company has one counter row: an ingest
//! draws its numbers with `UPDATE ... RETURNING` inside its transaction, which holds the row's
//! lock until commit, so one company's ingests commit in the order of their numbers, while
//! different companies' ingests never wait for each other.

mod handle;
pub mod notify;
mod store;

use thiserror::Error;
use tokio_postgres::{Client, GenericClient, NoTls};

pub use handle::PgHandle;
pub use store::PgRelayStore;

use ficha_core::frame::FeedEntry;
use ficha_core::{Company, DocId, ReplicaId, Seq};

/// What the PostgreSQL store can fail with.
#[derive(Debug, Error)]
pub enum PgError {
    /// The database refused or the connection broke.
    #[error("PostgreSQL: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// A row that does not hold what this relay writes.
    #[error("PostgreSQL row is not a relay row: {0}")]
    Corrupt(String),
    /// An ingest named a document under another company than the one it is stored in.
    #[error("document {doc} belongs to company {stored}, not {given}")]
    CompanyMismatch {
        /// The document.
        doc: DocId,
        /// Its stored company.
        stored: String,
        /// The company it came with.
        given: String,
    },
    /// A schema name that is not lower-case letters, digits and underscores.
    #[error(
        "schema name {0:?}: use 1 to 48 lower-case letters, digits and underscores, not starting with pg_ (PostgreSQL keeps those)"
    )]
    BadSchema(String),
    /// This node signs tokens with another secret than the nodes already on the database.
    #[error(
        "this relay's signing secret differs from the one the other nodes on this database use: copy `relay.secret` from a node's data directory into this node's before starting it"
    )]
    SecretMismatch,
    /// The store's own runtime could not start.
    #[error("cannot start the PostgreSQL store's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Starts a small runtime of the caller's own and connects on it; `schema`, if given, holds
/// the tables (created if missing) and is every statement's search path.
pub(crate) fn open(url: &str, schema: Option<&str>) -> Result<Conn, PgError> {
    if let Some(s) = schema
        && (s.is_empty()
            || s.len() > 48
            || s.starts_with("pg_")
            || !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    {
        return Err(PgError::BadSchema(s.to_string()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PgError::Runtime)?;
    let client = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended");
            }
        });
        // "already exists, skipping" on every start is noise in the relay's log.
        client
            .batch_execute("SET client_min_messages TO warning")
            .await?;
        if let Some(s) = schema {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS \"{s}\"; SET search_path TO \"{s}\""
                ))
                .await?;
        }
        Ok::<_, PgError>(client)
    })?;
    Ok(Conn {
        rt: Some(rt),
        client,
    })
}

/// A connection on a small runtime of its own: the relay core and the network layer call the
/// store synchronously, off the async workers, and each call runs its queries to completion.
pub(crate) struct Conn {
    /// Always set; taken only by `drop`.
    pub(crate) rt: Option<tokio::runtime::Runtime>,
    pub(crate) client: Client,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids on an async worker (where a relay
        // that shuts down drops its store): let it end in the background instead.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs `f` to completion on a connection's runtime.
pub(crate) fn block_on<F: std::future::Future>(
    rt: &Option<tokio::runtime::Runtime>,
    f: F,
) -> F::Output {
    match rt {
        Some(rt) => rt.block_on(f),
        None => unreachable!("invariant: the runtime is taken only when the connection is dropped"),
    }
}

/// The tables, created if missing (in the connection's schema).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS feed_heads (
    company TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS feed (
    company TEXT NOT NULL,
    seq BIGINT NOT NULL,
    doc BYTEA NOT NULL,
    origin BYTEA NOT NULL,
    changes BYTEA NOT NULL,
    PRIMARY KEY (company, seq)
);
";

/// Creates the tables if they are missing.
pub async fn migrate(client: &Client) -> Result<(), PgError> {
    client.batch_execute(SCHEMA).await?;
    Ok(())
}

fn seq_of(v: i64) -> Result<Seq, PgError> {
    Seq::try_from(v).map_err(|_| PgError::Corrupt(format!("negative sequence number {v}")))
}

/// Draws the next `n` sequence numbers of a company's feed inside the caller's transaction and
/// returns the last; the counter row stays locked until that transaction ends, so the next
/// ingest of this company (on any node) waits and commits after it.
async fn draw_seqs(txn: &impl GenericClient, company: &Company, n: i64) -> Result<i64, PgError> {
    txn.execute(
        "INSERT INTO feed_heads (company, seq) VALUES ($1, 0) ON CONFLICT (company) DO NOTHING",
        &[&company.as_str()],
    )
    .await?;
    Ok(txn
        .query_one(
            "UPDATE feed_heads SET seq = seq + $2 WHERE company = $1 RETURNING seq",
            &[&company.as_str(), &n],
        )
        .await?
        .try_get(0)?)
}

/// Appends entries (document, concatenated changes) to a company's feed in one transaction;
/// returns their sequence numbers, consecutive, in order.
pub async fn append(
    client: &mut Client,
    company: &Company,
    origin: ReplicaId,
    entries: &[(DocId, Vec<u8>)],
) -> Result<Vec<Seq>, PgError> {
    let n =
        i64::try_from(entries.len()).map_err(|_| PgError::Corrupt("too many entries".into()))?;
    let txn = client.transaction().await?;
    txn.execute(
        "INSERT INTO feed_heads (company, seq) VALUES ($1, 0) ON CONFLICT (company) DO NOTHING",
        &[&company.as_str()],
    )
    .await?;
    // The row lock taken here is held until commit: the next ingest of this company waits.
    let last: i64 = txn
        .query_one(
            "UPDATE feed_heads SET seq = seq + $2 WHERE company = $1 RETURNING seq",
            &[&company.as_str(), &n],
        )
        .await?
        .try_get(0)?;
    let insert = txn
        .prepare(
            "INSERT INTO feed (company, seq, doc, origin, changes) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    let mut seqs = Vec::with_capacity(entries.len());
    for (i, (doc, changes)) in entries.iter().enumerate() {
        let seq = last - n + 1 + i as i64;
        txn.execute(
            &insert,
            &[
                &company.as_str(),
                &seq,
                &doc.0.as_slice(),
                &origin.0.as_slice(),
                changes,
            ],
        )
        .await?;
        seqs.push(seq_of(seq)?);
    }
    txn.commit().await?;
    Ok(seqs)
}

/// A company's feed entries after `after`, at most `limit`, in order.
pub async fn read(
    client: &Client,
    company: &Company,
    after: Seq,
    limit: i64,
) -> Result<Vec<FeedEntry>, PgError> {
    let after =
        i64::try_from(after).map_err(|_| PgError::Corrupt("checkpoint too large".into()))?;
    let rows = client
        .query(
            "SELECT seq, doc, changes FROM feed WHERE company = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&company.as_str(), &after, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let doc: Vec<u8> = r.try_get(1)?;
            let doc: [u8; 16] = doc
                .try_into()
                .map_err(|_| PgError::Corrupt("a document id is not 16 bytes".into()))?;
            Ok(FeedEntry {
                seq: seq_of(r.try_get(0)?)?,
                doc: DocId(doc),
                changes: r.try_get(2)?,
            })
        })
        .collect()
}
