//! Every redb table of the relay, and the schema version, in one place.

use redb::TableDefinition;

/// Bumped whenever a table's layout changes.
pub const SCHEMA_VERSION: u64 = 1;

/// Epoch (16 bytes), schema version and changes counter (8-byte big-endian).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The change feed: (company, seq) → postcard [`super::FeedRecord`].
pub const FEED: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("feed");
/// Per company: the last seq used.
pub const HEADS: TableDefinition<&str, u64> = TableDefinition::new("feed_heads");
/// Per document: postcard [`super::DocRecord`] (company, heads).
pub const DOCS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("docs");
/// Feed entries of each document, so one document loads without scanning the feed.
pub const DOC_ENTRIES: TableDefinition<(&[u8; 16], u64), ()> = TableDefinition::new("doc_entries");
/// Change hashes stored per document, for de-duplication.
pub const HASHES: TableDefinition<(&[u8; 16], &[u8; 32]), ()> = TableDefinition::new("hashes");
/// Documents by company, for repair digests.
pub const COMPANY_DOCS: TableDefinition<(&str, &[u8; 16]), ()> =
    TableDefinition::new("company_docs");
/// Replica name → the replica id that first used it.
pub const BINDINGS: TableDefinition<&str, &[u8; 16]> = TableDefinition::new("bindings");
/// Replica id → the replica name that first used it (the other half of [`BINDINGS`]).
pub const REPLICA_NAMES: TableDefinition<&[u8; 16], &str> = TableDefinition::new("replica_names");
/// automerge-repo actor → the token name that first wrote with it through `/automerge`.
pub const ACTORS: TableDefinition<&[u8], &str> = TableDefinition::new("repo_actors");
/// Revoked replica names, as written by relays before revocations carried a time; moved into
/// [`REVOCATIONS`] at open.
pub const REVOKED: TableDefinition<&str, ()> = TableDefinition::new("revoked");
/// Replica name → when its tokens were last revoked (seconds since the Unix epoch): tokens
/// issued at or before it are refused.
pub const REVOCATIONS: TableDefinition<&str, u64> = TableDefinition::new("revocations");
/// Changes waiting for their dependencies: (document, change hash) → the change's bytes.
pub const PARKED: TableDefinition<(&[u8; 16], &[u8; 32]), &[u8]> = TableDefinition::new("parked");
/// Per company: how many changes are parked in its documents.
pub const PARKED_COUNT: TableDefinition<&str, u64> = TableDefinition::new("parked_count");
/// Documents compaction could not fold, with why (reported, never retried on their own).
pub const UNFOLDABLE: TableDefinition<&[u8; 16], &str> = TableDefinition::new("unfoldable");
/// Documents whose feed entries may be folded into one (see `RedbRelayStore::compact`).
pub const DIRTY: TableDefinition<&[u8; 16], ()> = TableDefinition::new("dirty_docs");
/// Attachment bytes by blake3 hash, stored once.
pub const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// Which companies uploaded each blob: a token sees a blob only through one of its companies.
pub const BLOB_COMPANIES: TableDefinition<(&[u8; 32], &str), ()> =
    TableDefinition::new("blob_companies");
