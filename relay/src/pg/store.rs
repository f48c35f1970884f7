//! [`RelayStore`] on PostgreSQL: what the redb store keeps (feed, documents and their heads,
//! change hashes, parked changes, name and actor bindings, revocations), in tables every relay
//! node on the database shares, so a checkpoint is valid on any node.
//!
//! The relay core calls its store synchronously (under its lock, off the async workers), so
//! each call here runs its queries to completion on a small runtime of the store's own.

use automerge::{ActorId, Change, ChangeHash};
use tokio_postgres::Transaction;

use ficha_core::digest::{DocDigests, heads_digest};
use ficha_core::frame::FeedEntry;
use ficha_core::mem::advance_heads;
use ficha_core::relay::{Binding, IngestDoc, LoadedDoc, NewEntry, RelayStore};
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId, Seq};

use super::{Conn, PgError, block_on, draw_seqs, seq_of};

/// The tables beyond the feed's, created if missing.
const STORE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    doc BYTEA PRIMARY KEY,
    company TEXT NOT NULL,
    heads BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS docs_by_company ON docs (company, doc);
CREATE INDEX IF NOT EXISTS feed_by_doc ON feed (doc, seq);
CREATE TABLE IF NOT EXISTS hashes (doc BYTEA NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (doc, hash));
CREATE TABLE IF NOT EXISTS parked (
    doc BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    change BYTEA NOT NULL,
    PRIMARY KEY (doc, hash)
);
CREATE TABLE IF NOT EXISTS parked_count (company TEXT PRIMARY KEY, n BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS bindings (name TEXT PRIMARY KEY, id BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS replica_names (id BYTEA PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS repo_actors (actor BYTEA PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (name TEXT PRIMARY KEY, at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (hash BYTEA PRIMARY KEY, bytes BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS blob_companies (
    hash BYTEA NOT NULL,
    company TEXT NOT NULL,
    PRIMARY KEY (hash, company)
);
";

/// A relay store on one PostgreSQL database (or one schema of it).
pub struct PgRelayStore {
    conn: Conn,
    epoch: RelayEpoch,
    /// Where ingests notify the other nodes ([`super::notify`]).
    channel: String,
    /// How to connect again after the database restarts or drops the connection.
    url: String,
    schema: Option<String>,
}

fn heads_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    let mut sorted: Vec<&ChangeHash> = heads.iter().collect();
    sorted.sort();
    sorted.iter().flat_map(|h| h.0).collect()
}

fn heads_of(bytes: &[u8]) -> Result<Vec<ChangeHash>, PgError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(PgError::Corrupt(
            "stored heads are not 32-byte hashes".into(),
        ));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            ChangeHash(h)
        })
        .collect())
}

fn doc_of(bytes: Vec<u8>) -> Result<DocId, PgError> {
    let id: [u8; 16] = bytes
        .try_into()
        .map_err(|_| PgError::Corrupt("a document id is not 16 bytes".into()))?;
    Ok(DocId(id))
}

fn company_of(s: &str) -> Result<Company, PgError> {
    Company::new(s).map_err(|e| PgError::Corrupt(e.to_string()))
}

impl PgRelayStore {
    /// Connects to `url` and creates the tables if missing; `schema`, if given, holds them
    /// (created if missing). Every node on the database shares one epoch: the first to start
    /// draws it.
    pub fn connect(
        url: &str,
        schema: Option<&str>,
        new_epoch: RelayEpoch,
    ) -> Result<Self, PgError> {
        let conn = super::open(url, schema)?;
        let client = &conn.client;
        let epoch = block_on(&conn.rt, async {
            // Nodes starting together would race to create the same tables, which PostgreSQL
            // answers with a duplicate-key error: one migrates at a time.
            client
                .batch_execute("SELECT pg_advisory_lock(7300151)")
                .await?;
            super::migrate(client).await?;
            client.batch_execute(STORE_SCHEMA).await?;
            client
                .batch_execute("SELECT pg_advisory_unlock(7300151)")
                .await?;
            client
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING",
                    &[&new_epoch.0.as_slice()],
                )
                .await?;
            let stored: Vec<u8> = client
                .query_one("SELECT value FROM meta WHERE key = 'epoch'", &[])
                .await?
                .try_get(0)?;
            let epoch: [u8; 16] = stored
                .try_into()
                .map_err(|_| PgError::Corrupt("the stored epoch is not 16 bytes".into()))?;
            Ok::<_, PgError>(RelayEpoch(epoch))
        })?;
        Ok(Self {
            conn,
            epoch,
            channel: super::notify::channel(schema),
            url: url.to_string(),
            schema: schema.map(str::to_string),
        })
    }

    /// Connects again if the database dropped the connection (a restart, a failover, an
    /// operator's `pg_terminate_backend`); until then every call fails, and the sessions
    /// they serve end and resume from their checkpoints. True if it reconnected.
    pub fn reconnect_if_closed(&mut self) -> Result<bool, PgError> {
        if !self.conn.client.is_closed() {
            return Ok(false);
        }
        self.conn = super::open(&self.url, self.schema.as_deref())?;
        Ok(true)
    }

    /// Gives the database a new epoch, as `ficha-relay restore` does for redb: after the
    /// database was restored to an older point, replicas whose checkpoints lie past its feed
    /// must repair instead of waiting at a sequence number that will be given again. Run it
    /// with every node stopped (a node reads the epoch when it starts).
    pub fn rotate_epoch(&mut self, epoch: RelayEpoch) -> Result<(), PgError> {
        block_on(
            &self.conn.rt,
            self.conn.client.execute(
                "UPDATE meta SET value = $1 WHERE key = 'epoch'",
                &[&epoch.0.as_slice()],
            ),
        )?;
        self.epoch = epoch;
        Ok(())
    }

    /// Records which signing secret the nodes on this database use (by a hash that reveals
    /// nothing of it), or refuses a node whose secret differs: its tokens would fail on the
    /// others, and theirs on it.
    pub fn claim_secret(&mut self, fingerprint: [u8; 32]) -> Result<(), PgError> {
        let client = &self.conn.client;
        block_on(&self.conn.rt, async {
            client
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('secret', $1) ON CONFLICT (key) DO NOTHING",
                    &[&fingerprint.as_slice()],
                )
                .await?;
            let stored: Vec<u8> = client
                .query_one("SELECT value FROM meta WHERE key = 'secret'", &[])
                .await?
                .try_get(0)?;
            if stored == fingerprint {
                Ok(())
            } else {
                Err(PgError::SecretMismatch)
            }
        })
    }

    /// The channel this store's ingests notify (see [`super::notify::listen`]).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Revokes every token of `name` issued at or before `at` (seconds since the Unix epoch).
    pub fn revoke(&mut self, name: &str, at: u64) -> Result<(), PgError> {
        let at = i64::try_from(at).map_err(|_| PgError::Corrupt("time too large".into()))?;
        block_on(&self.conn.rt, self.conn.client.execute(
            "INSERT INTO revocations (name, at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET at = GREATEST(revocations.at, $2)",
            &[&name, &at],
        ))?;
        Ok(())
    }
}

/// Stores one admitted document's changes in `txn`, as the redb store does.
async fn ingest_doc(
    txn: &Transaction<'_>,
    origin: ReplicaId,
    item: IngestDoc,
    out: &mut Vec<NewEntry>,
) -> Result<(), PgError> {
    let IngestDoc {
        doc,
        company,
        applied,
        parked,
        unparked,
        uploader_holds,
    } = item;
    let id = doc.0.as_slice();
    let c = company.as_str();
    let row = txn
        .query_opt(
            "SELECT company, heads FROM docs WHERE doc = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    let mut heads = match row {
        Some(r) => {
            let stored: String = r.try_get(0)?;
            if stored != c {
                return Err(PgError::CompanyMismatch {
                    doc,
                    stored,
                    given: c.to_string(),
                });
            }
            heads_of(&r.try_get::<_, Vec<u8>>(1)?)?
        }
        None => {
            txn.execute(
                "INSERT INTO docs (doc, company, heads) VALUES ($1, $2, '')",
                &[&id, &c],
            )
            .await?;
            Vec::new()
        }
    };
    let mut delta: i64 = 0;
    for hash in &unparked {
        delta -= txn
            .execute(
                "DELETE FROM parked WHERE doc = $1 AND hash = $2",
                &[&id, &hash.0.as_slice()],
            )
            .await? as i64;
    }
    for p in &parked {
        delta += txn
            .execute(
                "INSERT INTO parked (doc, hash, change) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&id, &p.hash().0.as_slice(), &p.raw_bytes()],
            )
            .await? as i64;
    }
    if delta != 0 {
        txn.execute(
            "INSERT INTO parked_count (company, n) VALUES ($1, GREATEST($2, 0)) ON CONFLICT (company) DO UPDATE SET n = GREATEST(parked_count.n + $2, 0)",
            &[&c, &delta],
        )
        .await?;
    }
    let mut new: Vec<Change> = Vec::new();
    for ch in applied {
        let fresh = txn
            .execute(
                "INSERT INTO hashes (doc, hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&id, &ch.hash().0.as_slice()],
            )
            .await?;
        if fresh == 1 {
            advance_heads(&mut heads, &ch);
            new.push(ch);
        }
    }
    let payloads = ficha_core::change::pack(&mut new);
    if payloads.is_empty() {
        return Ok(());
    }
    let n =
        i64::try_from(payloads.len()).map_err(|_| PgError::Corrupt("too many entries".into()))?;
    let last = draw_seqs(txn, &company, n).await?;
    for (i, changes) in payloads.into_iter().enumerate() {
        let seq = last - n + 1 + i as i64;
        txn.execute(
            "INSERT INTO feed (company, seq, doc, origin, changes) VALUES ($1, $2, $3, $4, $5)",
            &[&c, &seq, &id, &origin.0.as_slice(), &changes],
        )
        .await?;
        out.push(NewEntry {
            company: company.clone(),
            entry: FeedEntry {
                seq: seq_of(seq)?,
                doc,
                changes,
            },
            uploader_holds,
        });
    }
    txn.execute(
        "UPDATE docs SET heads = $2 WHERE doc = $1",
        &[&id, &heads_bytes(&heads)],
    )
    .await?;
    Ok(())
}

impl RelayStore for PgRelayStore {
    type Error = PgError;

    fn epoch(&self) -> RelayEpoch {
        self.epoch
    }

    fn revoked_at(&self, name: &str) -> Result<Option<u64>, PgError> {
        let row = block_on(
            &self.conn.rt,
            self.conn
                .client
                .query_opt("SELECT at FROM revocations WHERE name = $1", &[&name]),
        )?;
        row.map(|r| {
            let at: i64 = r.try_get(0)?;
            u64::try_from(at).map_err(|_| PgError::Corrupt("negative revocation time".into()))
        })
        .transpose()
    }

    fn bind_replica(&mut self, name: &str, id: ReplicaId) -> Result<Binding, PgError> {
        let client = &mut self.conn.client;
        block_on(&self.conn.rt, async {
            let txn = client.transaction().await?;
            let bytes = id.0.as_slice();
            txn.execute(
                "INSERT INTO bindings (name, id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&name, &bytes],
            )
            .await?;
            txn.execute(
                "INSERT INTO replica_names (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&bytes, &name],
            )
            .await?;
            let bound_id: Vec<u8> = txn
                .query_one("SELECT id FROM bindings WHERE name = $1", &[&name])
                .await?
                .try_get(0)?;
            let bound_name: String = txn
                .query_one("SELECT name FROM replica_names WHERE id = $1", &[&bytes])
                .await?
                .try_get(0)?;
            // A half-made binding (one side taken by another) is rolled back.
            let binding = if bound_id != bytes {
                Binding::NameTaken
            } else if bound_name != name {
                Binding::IdTaken
            } else {
                txn.commit().await?;
                return Ok(Binding::Bound);
            };
            txn.rollback().await?;
            Ok(binding)
        })
    }

    fn bind_actors(&mut self, name: &str, actors: &[ActorId]) -> Result<Option<ActorId>, PgError> {
        let client = &mut self.conn.client;
        block_on(&self.conn.rt, async {
            let txn = client.transaction().await?;
            for a in actors {
                txn.execute(
                    "INSERT INTO repo_actors (actor, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&a.to_bytes(), &name],
                )
                .await?;
            }
            for a in actors {
                let owner: String = txn
                    .query_one(
                        "SELECT name FROM repo_actors WHERE actor = $1",
                        &[&a.to_bytes()],
                    )
                    .await?
                    .try_get(0)?;
                if owner != name {
                    txn.rollback().await?;
                    return Ok(Some(a.clone()));
                }
            }
            txn.commit().await?;
            Ok(None)
        })
    }

    fn read_feed(
        &self,
        company: &Company,
        after: Seq,
        max_bytes: usize,
    ) -> Result<Vec<FeedEntry>, PgError> {
        let mut out: Vec<FeedEntry> = Vec::new();
        let mut bytes = 0usize;
        let mut from = after;
        loop {
            let batch = block_on(
                &self.conn.rt,
                super::read(&self.conn.client, company, from, 256),
            )?;
            let full = batch.len() < 256;
            for e in batch {
                // The first entry always goes out, however large, or the feed could never
                // advance.
                if !out.is_empty() && bytes + e.changes.len() > max_bytes {
                    return Ok(out);
                }
                bytes += e.changes.len();
                from = e.seq;
                out.push(e);
            }
            if full {
                return Ok(out);
            }
        }
    }

    fn doc_company(&self, doc: &DocId) -> Result<Option<Company>, PgError> {
        let row = block_on(
            &self.conn.rt,
            self.conn.client.query_opt(
                "SELECT company FROM docs WHERE doc = $1",
                &[&doc.0.as_slice()],
            ),
        )?;
        row.map(|r| company_of(&r.try_get::<_, String>(0)?))
            .transpose()
    }

    fn ingest(
        &mut self,
        origin: ReplicaId,
        docs: Vec<IngestDoc>,
    ) -> Result<Vec<NewEntry>, PgError> {
        let (client, channel) = (&mut self.conn.client, &self.channel);
        block_on(&self.conn.rt, async {
            let txn = client.transaction().await?;
            let mut out = Vec::new();
            for item in docs {
                ingest_doc(&txn, origin, item, &mut out).await?;
            }
            let mut moved: Vec<&Company> = out.iter().map(|e| &e.company).collect();
            moved.sort();
            moved.dedup();
            for company in moved {
                super::notify::notify(&txn, channel, company).await?;
            }
            txn.commit().await?;
            Ok(out)
        })
    }

    fn parked_count(&self, company: &Company) -> Result<usize, PgError> {
        let row = block_on(
            &self.conn.rt,
            self.conn.client.query_opt(
                "SELECT n FROM parked_count WHERE company = $1",
                &[&company.as_str()],
            ),
        )?;
        let n: i64 = match row {
            Some(r) => r.try_get(0)?,
            None => 0,
        };
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn doc_digests(&self, company: &Company) -> Result<(Seq, DocDigests), PgError> {
        let client = &self.conn.client;
        block_on(&self.conn.rt, async {
            // One snapshot: the head and the digests describe the same instant.
            client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            let result = async {
                let head: i64 = client
                    .query_opt(
                        "SELECT seq FROM feed_heads WHERE company = $1",
                        &[&company.as_str()],
                    )
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?
                    .unwrap_or(0);
                let rows = client
                    .query(
                        "SELECT doc, heads FROM docs WHERE company = $1 ORDER BY doc",
                        &[&company.as_str()],
                    )
                    .await?;
                let mut docs = Vec::with_capacity(rows.len());
                for r in rows {
                    let id = doc_of(r.try_get(0)?)?;
                    let heads = heads_of(&r.try_get::<_, Vec<u8>>(1)?)?;
                    docs.push((id, heads_digest(&heads)));
                }
                Ok::<_, PgError>((seq_of(head)?, docs))
            }
            .await;
            client.batch_execute("COMMIT").await?;
            result
        })
    }

    fn load_doc(&self, doc: &DocId) -> Result<Option<LoadedDoc>, PgError> {
        let client = &self.conn.client;
        let id = doc.0.as_slice();
        block_on(&self.conn.rt, async {
            if client
                .query_opt("SELECT 1 FROM docs WHERE doc = $1", &[&id])
                .await?
                .is_none()
            {
                return Ok(None);
            }
            let mut loaded = LoadedDoc::default();
            for r in client
                .query(
                    "SELECT changes FROM feed WHERE doc = $1 ORDER BY seq",
                    &[&id],
                )
                .await?
            {
                loaded
                    .add_entry(&r.try_get::<_, Vec<u8>>(0)?)
                    .map_err(|e| PgError::Corrupt(format!("document {doc}: {e}")))?;
            }
            for r in client
                .query("SELECT change FROM parked WHERE doc = $1", &[&id])
                .await?
            {
                loaded
                    .add_parked(&r.try_get::<_, Vec<u8>>(0)?)
                    .map_err(|e| PgError::Corrupt(format!("parked change of {doc}: {e}")))?;
            }
            Ok(Some(loaded.finish()))
        })
    }

    fn doc_state(&self, doc: &DocId) -> Result<Option<(Vec<ChangeHash>, usize)>, PgError> {
        let row = block_on(
            &self.conn.rt,
            self.conn.client.query_opt(
                "SELECT heads, (SELECT count(*) FROM parked WHERE parked.doc = docs.doc) FROM docs WHERE doc = $1",
                &[&doc.0.as_slice()],
            ),
        )?;
        row.map(|r| {
            let parked: i64 = r.try_get(1)?;
            Ok((
                heads_of(&r.try_get::<_, Vec<u8>>(0)?)?,
                usize::try_from(parked).unwrap_or(usize::MAX),
            ))
        })
        .transpose()
    }

    fn set_heads(&mut self, doc: &DocId, heads: &[ChangeHash]) -> Result<(), PgError> {
        block_on(
            &self.conn.rt,
            self.conn.client.execute(
                "UPDATE docs SET heads = $2 WHERE doc = $1",
                &[&doc.0.as_slice(), &heads_bytes(heads)],
            ),
        )?;
        Ok(())
    }
}
