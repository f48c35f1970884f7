//! Every redb table of a replica, and the schema version, in one place.

use redb::TableDefinition;

/// Bumped whenever a table's layout changes.
pub const SCHEMA_VERSION: u64 = 1;

/// Identity and sync settings: replica id, name, relay URL, token, relay epoch, repair flag.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Per document: postcard-encoded [`crate::doc_io::DocMeta`] (company, heads, chunk counter).
pub const DOCS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("docs");
/// Per document: the compacted Automerge snapshot.
pub const SNAPSHOTS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("snapshots");
/// Per document and chunk number: incremental Automerge changes since the snapshot.
pub const CHUNKS: TableDefinition<(&[u8; 16], u32), &[u8]> = TableDefinition::new("chunks");
/// Index of documents by company.
pub const COMPANY_DOCS: TableDefinition<(&str, &[u8; 16]), ()> =
    TableDefinition::new("company_docs");
/// Per document: the domain's summary (what lists and searches read instead of documents).
pub const SUMMARIES: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("summaries");
/// Local changes not yet acknowledged by the relay, in the order they were made.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Per company: the last relay feed position applied.
pub const CHECKPOINTS: TableDefinition<&str, u64> = TableDefinition::new("checkpoints");
/// Search index: one row per (term, document) for every term the domain derives from a summary.
pub const TERMS: TableDefinition<(&str, &[u8; 16]), ()> = TableDefinition::new("terms");
/// Documents in the list's order: (the domain's sort key, document).
pub const ORDER: TableDefinition<(&str, &[u8; 16]), ()> = TableDefinition::new("order");
/// Per document: its current index keys, so an update removes exactly the stale rows.
pub const DOC_KEYS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("doc_keys");
/// Attachment bytes by blake3 hash: stored once however many clients refer to them.
pub const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// Blobs added here and not yet uploaded to the relay: hash → company it was attached in.
pub const BLOB_OUTBOX: TableDefinition<&[u8; 32], &str> = TableDefinition::new("blob_outbox");
/// Outbox entries the relay refused for good: position → postcard [`crate::quarantine::Refused`].
pub const REFUSED: TableDefinition<u64, &[u8]> = TableDefinition::new("refused");
/// Documents whose data from the relay could not be applied: id → postcard
/// [`crate::quarantine::Quarantined`] (the reason and the bytes kept aside).
pub const QUARANTINE: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("quarantine");
