//! The local edit journal: a local edit is durable once its change is appended here and
//! fsynced; redb commits it without an fsync of its own.
//!
//! A durable redb commit writes every page a transaction dirtied in three B-trees (the document,
//! its new chunk, the outbox) plus redb's own bookkeeping, scattered over the file, and each
//! scattered page costs the disk more than the change itself. Appending the change to one file
//! costs a single sequential write. redb's non-durable commits keep the store consistent
//! (a crash rolls it back to its last durable commit), and the journal's records put back
//! whatever the rollback dropped: re-applying an Automerge change a document already holds
//! is a no-op, so replaying is safe however much of the journal was already in redb.
//!
//! Every [`CHECKPOINT_AFTER_RECORDS`] edits (and when the store closes) one local edit commits
//! durably instead, which makes every earlier edit durable in redb, and the journal is emptied.
//!
//! The file is written in place, never grown per record: it starts with a header holding a
//! generation number, and is pre-filled with zeros. Appending to a growing file makes every
//! fdatasync commit the file's new size as well (a file-system journal commit, which also waits
//! for other files' pending data); overwriting pre-allocated bytes flushes only the record. So
//! emptying the journal bumps the generation instead of truncating, and each record's checksum
//! (blake3, over generation, position and payload) covers the generation: reading stops at the
//! first record that does not match, whether torn by a crash (never acknowledged) or left from
//! an earlier generation.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::mpsc;

use redb::ReadableTable;

use std::collections::HashMap;

use ficha_core::DocId;

use crate::doc_io::DocTables;
use crate::error::StoreError;
use crate::schema::OUTBOX;
use crate::{OutboxEntry, Store};

/// File name of the journal inside a data directory.
pub const JOURNAL_FILE: &str = "edits.journal";

/// Journaled edits after which the next edit commits durably and empties the journal. Bounds
/// both the replay after a crash and the memory redb holds for non-durable commits.
pub const CHECKPOINT_AFTER_RECORDS: usize = 512;

/// Length (4 bytes), checksum (8) and outbox position (8) before each record's payload.
const HEADER: usize = 20;

/// What the file starts with: this magic, then the generation (8 bytes).
const MAGIC: &[u8; 8] = b"FICHAJ01";

/// Where the first record starts.
const FIRST: u64 = 16;

/// Zeros the file is extended by when a record would not fit: far more than the records of one
/// generation usually take, so a size change is rare.
const PREALLOCATE: u64 = 1 << 20;

/// Largest payload a record may claim; anything larger is a torn or foreign tail.
const MAX_RECORD: usize = 64 << 20;

/// One journaled edit: its outbox position and the outbox entry it wrote.
pub(crate) struct Record {
    pub seq: u64,
    pub entry: OutboxEntry,
}

/// The open journal file and how much of it holds whole records.
pub(crate) struct Journal {
    file: File,
    /// Current generation: records of other generations are not part of the journal.
    generation: u64,
    /// The file's length: bytes up to here exist (zeros past the records).
    allocated: u64,
    /// Bytes of whole, fsynced records: the next record is written here, over anything a
    /// failed append left behind.
    good_len: u64,
    /// Where the last whole record starts, to take it back if its transaction fails.
    last_start: u64,
    records: usize,
    /// Length of a record written and being fsynced, not yet confirmed.
    pending: Option<u64>,
    syncer: Syncer,
}

/// A thread that fsyncs the journal on request, so the disk works while the edit's thread
/// updates its tables: the edit waits only for whichever of the two takes longer.
struct Syncer {
    request: mpsc::Sender<()>,
    done: mpsc::Receiver<std::io::Result<()>>,
}

impl Syncer {
    fn spawn(file: File) -> Result<Self, StoreError> {
        let (request, requests) = mpsc::channel::<()>();
        let (answer, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("ficha-journal-sync".into())
            .spawn(move || {
                // Ends when the journal (and so the request sender) is dropped.
                for () in requests {
                    if answer.send(file.sync_data()).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self { request, done })
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.request
            .send(())
            .map_err(|_| StoreError::Corrupt("the journal's fsync thread is gone".into()))
    }

    fn wait(&self) -> Result<(), StoreError> {
        match self.done.recv() {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::Corrupt(
                "the journal's fsync thread is gone".into(),
            )),
        }
    }
}

fn checksum(generation: u64, seq: u64, payload: &[u8]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(&generation.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    out
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and returns the whole records of its current
    /// generation, in the order they were written.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Vec<Record>, Vec<Damage>), StoreError> {
        let path = dir.join(JOURNAL_FILE);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.is_empty() {
            // A new journal: generation 1, made durable with its pre-allocation below.
            bytes.extend_from_slice(MAGIC);
            bytes.extend_from_slice(&1u64.to_le_bytes());
            file.write_all(&bytes)?;
        }
        let generation = generation(&bytes).ok_or_else(|| {
            StoreError::Corrupt(format!("{} is not a Ficha edit journal", path.display()))
        })?;
        let (records, good_len, damage) = parse(&bytes, generation)?;
        for d in &damage {
            tracing::error!(
                offset = d.offset,
                bytes = d.len,
                positions = ?d.positions,
                "the edit journal was damaged on disk; the edits it held there are lost, every whole record around them is kept"
            );
        }
        let syncer = Syncer::spawn(file.try_clone()?)?;
        let mut journal = Self {
            file,
            generation,
            allocated: bytes.len() as u64,
            good_len,
            last_start: good_len,
            records: records.len(),
            pending: None,
            syncer,
        };
        journal.allocate(FIRST + PREALLOCATE)?;
        if created {
            // The file's name must survive a crash as well as its bytes.
            File::open(dir)?.sync_all()?;
        }
        Ok((journal, records, damage))
    }

    /// Whether the next edit should commit durably and empty the journal.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.records >= CHECKPOINT_AFTER_RECORDS
    }

    /// Whether any record is waiting for a durable commit.
    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Writes one record and starts its fsync; [`Journal::finish`] waits for it.
    pub(crate) fn begin(&mut self, seq: u64, payload: &[u8]) -> Result<(), StoreError> {
        self.abandon()?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| (l as usize) <= MAX_RECORD)
            .ok_or_else(|| StoreError::Corrupt(format!("edit of {} bytes", payload.len())))?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(self.generation, seq, payload));
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(payload);
        self.allocate(self.good_len + record.len() as u64)?;
        self.file.seek(SeekFrom::Start(self.good_len))?;
        if let Err(e) = self.file.write_all(&record) {
            self.cut(self.good_len)?;
            return Err(e.into());
        }
        self.syncer.sync()?;
        self.pending = Some(record.len() as u64);
        Ok(())
    }

    /// Waits until the record [`Journal::begin`] wrote is on disk: the edit is durable.
    pub(crate) fn finish(&mut self) -> Result<(), StoreError> {
        let Some(len) = self.pending.take() else {
            return Err(StoreError::Corrupt("no journal record to finish".into()));
        };
        if let Err(e) = self.syncer.wait() {
            self.cut(self.good_len)?;
            return Err(e);
        }
        self.last_start = self.good_len;
        self.good_len += len;
        self.records += 1;
        Ok(())
    }

    /// Drops a record begun for an edit that failed before it was finished.
    pub(crate) fn abandon(&mut self) -> Result<(), StoreError> {
        if self.pending.take().is_some() {
            // Its fsync was requested: collect the answer, whatever it is, before cutting.
            let _ = self.syncer.wait();
            self.cut(self.good_len)?;
        }
        Ok(())
    }

    /// Takes back the last finished record, whose transaction redb then refused.
    pub(crate) fn retract(&mut self) -> Result<(), StoreError> {
        self.good_len = self.last_start;
        self.records = self.records.saturating_sub(1);
        self.cut(self.good_len)
    }

    /// Empties the journal once redb holds every record durably: a new generation disowns
    /// every record written before.
    pub(crate) fn reset(&mut self) -> Result<(), StoreError> {
        self.abandon()?;
        let generation = self.generation + 1;
        self.file.seek(SeekFrom::Start(8))?;
        self.file.write_all(&generation.to_le_bytes())?;
        self.file.sync_data()?;
        self.generation = generation;
        self.good_len = FIRST;
        self.last_start = FIRST;
        self.records = 0;
        Ok(())
    }

    /// Disowns whatever starts at `at` (a record that must not be replayed), on disk.
    fn cut(&mut self, at: u64) -> Result<(), StoreError> {
        let end = (at + HEADER as u64).min(self.allocated);
        if end > at {
            self.file.seek(SeekFrom::Start(at))?;
            self.file.write_all(&vec![0u8; (end - at) as usize])?;
        }
        self.file.sync_data()?;
        Ok(())
    }

    /// Makes sure the file reaches `end` without growing when written, extending it with zeros
    /// (and syncing its new size) when it does not.
    fn allocate(&mut self, end: u64) -> Result<(), StoreError> {
        if end <= self.allocated {
            return Ok(());
        }
        let target = end.max(self.allocated + PREALLOCATE);
        self.file.seek(SeekFrom::Start(self.allocated))?;
        self.file
            .write_all(&vec![0u8; (target - self.allocated) as usize])?;
        self.file.sync_data()?;
        self.allocated = target;
        Ok(())
    }
}

/// Edits waiting in the journal of the replica in `dir` for redb to make them durable (none
/// after a clean close). Reads the file only; for status displays and tests.
pub fn journaled_edits(dir: &Path) -> Result<usize, StoreError> {
    let bytes = match std::fs::read(dir.join(JOURNAL_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    match generation(&bytes) {
        Some(generation) => Ok(parse(&bytes, generation)?.0.len()),
        None => Ok(0),
    }
}

/// The generation a journal's header names; None if `bytes` do not start with one.
fn generation(bytes: &[u8]) -> Option<u64> {
    let head = bytes.get(..FIRST as usize)?;
    (&head[..8] == MAGIC).then(|| u64::from_le_bytes(head[8..16].try_into().unwrap_or_default()))
}

/// A stretch of the journal between whole records that holds none: damaged after it was
/// written, since a whole record follows it. The edits it held were acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Where the stretch starts in the file.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Outbox positions of the edits it held (between the records around it).
    pub positions: std::ops::RangeInclusive<u64>,
}

/// The record at `at`, if a whole one of `generation` starts there.
fn record_at(bytes: &[u8], at: usize, generation: u64) -> Option<(u64, &[u8])> {
    let head = bytes.get(at..at + HEADER)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let seq = u64::from_le_bytes(head[12..20].try_into().unwrap_or_default());
    let payload = bytes.get(at + HEADER..at + HEADER + len)?;
    (checksum(generation, seq, payload) == head[4..12]).then_some((seq, payload))
}

/// The whole records of `generation` in `bytes`, in order, where the last ends, and the
/// damaged stretches found between them.
///
/// A stretch that is not a record ends the journal when no whole record follows it (a write
/// torn by a crash, never acknowledged, or older records past the end), but a record damaged
/// in place must not take the acknowledged records after it along: reading resumes at the
/// next whole record, and the stretch is reported.
fn parse(bytes: &[u8], generation: u64) -> Result<(Vec<Record>, u64, Vec<Damage>), StoreError> {
    let mut records: Vec<Record> = Vec::new();
    let mut damage = Vec::new();
    let mut at = FIRST as usize;
    let mut end = at;
    while at + HEADER <= bytes.len() {
        if let Some((seq, payload)) = record_at(bytes, at, generation) {
            let entry: OutboxEntry = postcard::from_bytes(payload)
                .map_err(|e| StoreError::Corrupt(format!("edit journal record {seq}: {e}")))?;
            records.push(Record { seq, entry });
            at += HEADER + payload.len();
            end = at;
            continue;
        }
        if bytes[at..].iter().all(|b| *b == 0) {
            break;
        }
        let Some(next) = (at + 1..=bytes.len().saturating_sub(HEADER))
            .find(|&i| record_at(bytes, i, generation).is_some())
        else {
            break;
        };
        let after = record_at(bytes, next, generation).map_or(0, |(seq, _)| seq);
        let before = records.last().map_or(0, |r| r.seq);
        damage.push(Damage {
            offset: at as u64,
            len: (next - at) as u64,
            positions: before + 1..=after.saturating_sub(1),
        });
        at = next;
    }
    Ok((records, end as u64, damage))
}

impl Store {
    /// Puts back the journaled edits a crash rolled out of redb, in one durable transaction,
    /// then empties the journal. Edits redb already holds are recognised and skipped. Each
    /// document is loaded and written once, however many of its edits the journal holds.
    pub(crate) fn replay_journal(&self, records: Vec<Record>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut order: Vec<DocId> = Vec::new();
        let mut by_doc: HashMap<DocId, Vec<&Record>> = HashMap::new();
        for r in &records {
            by_doc
                .entry(r.entry.doc)
                .or_insert_with(|| {
                    order.push(r.entry.doc);
                    Vec::new()
                })
                .push(r);
        }
        let txn = self.db.begin_write()?;
        let mut restored = 0usize;
        {
            let mut tables = DocTables::open(&txn)?;
            let mut outbox = txn.open_table(OUTBOX)?;
            for doc in order {
                let recs = &by_doc[&doc];
                restored += self.replay_doc(&mut tables, &mut outbox, doc, recs)?;
            }
        }
        txn.commit()?;
        tracing::info!(
            journaled = records.len(),
            restored,
            "replayed the edit journal after an unclean shutdown"
        );
        self.journal_lock().reset()
    }

    /// Restores one document's lost edits and their outbox entries; returns how many.
    fn replay_doc(
        &self,
        tables: &mut DocTables<'_>,
        outbox: &mut redb::Table<'_, u64, &'static [u8]>,
        doc: DocId,
        recs: &[&Record],
    ) -> Result<usize, StoreError> {
        let company = &recs[0].entry.company;
        let refused = |message: String| StoreError::Document { doc, message };
        let meta = tables.meta(&doc)?;
        if meta.as_ref().is_some_and(|m| m.company != company.as_str()) {
            return Err(refused("journaled edits name another company".into()));
        }
        let mut held = match &meta {
            Some(_) => tables.load(&doc)?,
            None => automerge::AutoCommit::new(),
        };
        let mut lost = Vec::new();
        for r in recs {
            let change = ficha_core::change::parse(&r.entry.change)
                .map_err(|e| refused(format!("journaled edit {}: {e}", r.seq)))?;
            if held
                .document()
                .get_change_meta_by_hash(&change.hash())
                .is_none()
            {
                lost.push(*r);
            }
        }
        if lost.is_empty() {
            // redb kept them all: the durable commit after them covered them.
            return Ok(0);
        }
        let bytes: Vec<u8> = lost.iter().flat_map(|r| r.entry.change.clone()).collect();
        held.load_incremental(&bytes)
            .map_err(|e| refused(format!("journaled edits do not apply: {e}")))?;
        tables.append(
            &doc,
            company,
            meta,
            &bytes,
            held.document(),
            self.indexer.as_ref(),
        )?;
        for r in &lost {
            // Lost with its edit, so never acknowledged: it still has to be sent.
            if outbox.get(r.seq)?.is_none() {
                outbox.insert(r.seq, r.entry.encode()?.as_slice())?;
            }
        }
        Ok(lost.len())
    }
}

/// Where the last damaged journal was reported, for status displays.
const JOURNAL_DAMAGE: &str = "journal_damage";

impl Store {
    /// Records the damage an opening found in the journal, so `status` shows it until the
    /// next damaged opening replaces it.
    pub(crate) fn record_journal_damage(&self, damage: &[Damage]) -> Result<(), StoreError> {
        if damage.is_empty() {
            return Ok(());
        }
        let report = damage
            .iter()
            .map(|d| {
                format!(
                    "{} bytes at offset {} (outbox positions {}..={})",
                    d.len,
                    d.offset,
                    d.positions.start(),
                    d.positions.end()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let txn = self.db.begin_write()?;
        txn.open_table(crate::schema::META)?
            .insert(JOURNAL_DAMAGE, report.as_bytes())?;
        txn.commit()?;
        Ok(())
    }

    /// What the last damaged journal lost, if one was ever found.
    pub fn journal_damage(&self) -> Result<Option<String>, StoreError> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        Ok(txn
            .open_table(crate::schema::META)?
            .get(JOURNAL_DAMAGE)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }
}
