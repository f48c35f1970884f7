//! What the relay's network layer asks the PostgreSQL store outside the relay core (metrics,
//! the admin page, blobs, revocation checks), on a connection of its own so these never wait
//! for the relay's lock.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio_postgres::Client;

use ficha_core::Company;
use ficha_core::blob::BlobHash;

use super::{Conn, PgError, block_on, open};
use crate::store::{CompanyCensus, StoreCounts};

/// A connection for the network layer's own reads and blob writes.
pub struct PgHandle {
    conn: Mutex<Conn>,
    url: String,
    schema: Option<String>,
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl PgHandle {
    /// Connects to `url` (tables in `schema`, created by [`super::PgRelayStore::connect`]).
    pub fn connect(url: &str, schema: Option<&str>) -> Result<Self, PgError> {
        Ok(Self {
            conn: Mutex::new(open(url, schema)?),
            url: url.to_string(),
            schema: schema.map(str::to_string),
        })
    }

    fn run<R>(
        &self,
        f: impl for<'c> FnOnce(&'c Client) -> futures_util::future::BoxFuture<'c, Result<R, PgError>>,
    ) -> Result<R, PgError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.client.is_closed() {
            // The database dropped the connection (restart, failover): connect again.
            *guard = open(&self.url, self.schema.as_deref())?;
        }
        block_on(&guard.rt, f(&guard.client))
    }

    /// Documents and changes stored, cluster-wide.
    pub fn counts(&self) -> Result<StoreCounts, PgError> {
        self.run(|c| {
            Box::pin(async move {
                let r = c
                    .query_one(
                        "SELECT (SELECT count(*) FROM docs), (SELECT count(*) FROM hashes)",
                        &[],
                    )
                    .await?;
                Ok(StoreCounts {
                    documents: count(r.try_get(0)?),
                    changes: count(r.try_get(1)?),
                })
            })
        })
    }

    /// Every company's figures, by company.
    pub fn census(&self) -> Result<Vec<CompanyCensus>, PgError> {
        self.run(|c| {
            Box::pin(async move {
                let mut by: BTreeMap<String, CompanyCensus> = BTreeMap::new();
                for r in c
                    .query("SELECT company, count(*) FROM docs GROUP BY company", &[])
                    .await?
                {
                    by.entry(r.try_get(0)?).or_default().documents = count(r.try_get(1)?);
                }
                for r in c
                    .query(
                        "SELECT company, sum(octet_length(changes))::BIGINT FROM feed GROUP BY company",
                        &[],
                    )
                    .await?
                {
                    by.entry(r.try_get(0)?).or_default().bytes = count(r.try_get(1)?);
                }
                for r in c.query("SELECT company, seq FROM feed_heads", &[]).await? {
                    by.entry(r.try_get(0)?).or_default().feed_head = count(r.try_get(1)?);
                }
                for r in c.query("SELECT company, n FROM parked_count", &[]).await? {
                    by.entry(r.try_get(0)?).or_default().parked = count(r.try_get(1)?);
                }
                Ok(by
                    .into_iter()
                    .map(|(company, c)| CompanyCensus { company, ..c })
                    .collect())
            })
        })
    }

    /// Each company's last feed sequence.
    pub fn feed_heads(&self) -> Result<BTreeMap<String, u64>, PgError> {
        self.run(|c| {
            Box::pin(async move {
                let mut out = BTreeMap::new();
                for r in c.query("SELECT company, seq FROM feed_heads", &[]).await? {
                    out.insert(r.try_get(0)?, count(r.try_get(1)?));
                }
                Ok(out)
            })
        })
    }

    /// Every revocation: replica name and the time up to which its tokens are refused.
    pub fn revocations(&self) -> Result<BTreeMap<String, u64>, PgError> {
        self.run(|c| {
            Box::pin(async move {
                let mut out = BTreeMap::new();
                for r in c.query("SELECT name, at FROM revocations", &[]).await? {
                    out.insert(r.try_get(0)?, count(r.try_get(1)?));
                }
                Ok(out)
            })
        })
    }

    /// True when a token of `name` issued at `issued_at` was revoked since.
    pub fn is_revoked(&self, name: &str, issued_at: u64) -> Result<bool, PgError> {
        let name = name.to_string();
        self.run(|c| {
            Box::pin(async move {
                let at: Option<i64> = c
                    .query_opt("SELECT at FROM revocations WHERE name = $1", &[&name])
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                Ok(at.is_some_and(|at| i64::try_from(issued_at).is_ok_and(|i| i <= at)))
            })
        })
    }

    /// Stores a blob for `company`; true if `company` did not have it yet.
    pub fn put_blob(
        &self,
        hash: &BlobHash,
        company: &Company,
        bytes: &[u8],
    ) -> Result<bool, PgError> {
        let (hash, company, bytes) = (
            hash.0.to_vec(),
            company.as_str().to_string(),
            bytes.to_vec(),
        );
        self.run(|c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO blobs (hash, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&hash, &bytes],
                )
                .await?;
                let new = c
                    .execute(
                        "INSERT INTO blob_companies (hash, company) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[&hash, &company],
                    )
                    .await?;
                Ok(new == 1)
            })
        })
    }

    /// A blob's bytes, if one of `companies` uploaded it.
    pub fn blob_for(
        &self,
        hash: &BlobHash,
        companies: &[Company],
    ) -> Result<Option<Vec<u8>>, PgError> {
        let hash = hash.0.to_vec();
        let companies: Vec<String> = companies.iter().map(|c| c.as_str().to_string()).collect();
        self.run(|c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT b.bytes FROM blobs b WHERE b.hash = $1 AND EXISTS (SELECT 1 FROM blob_companies o WHERE o.hash = $1 AND o.company = ANY($2))",
                        &[&hash, &companies],
                    )
                    .await?;
                Ok(row.map(|r| r.try_get(0)).transpose()?)
            })
        })
    }

    /// Number of distinct blobs stored.
    pub fn blob_count(&self) -> Result<u64, PgError> {
        self.run(|c| {
            Box::pin(async move {
                let r = c.query_one("SELECT count(*) FROM blobs", &[]).await?;
                Ok(count(r.try_get(0)?))
            })
        })
    }
}
