//! The store as the relay core sees it: [`RelayStore`] over the feed, documents and parked
//! changes.

use automerge::{Change, ChangeHash};
use redb::{ReadableDatabase, ReadableTable};

use ficha_core::digest::{DocDigests, heads_digest};
use ficha_core::frame::FeedEntry;
use ficha_core::mem::advance_heads;
use ficha_core::relay::{Binding, IngestDoc, LoadedDoc, NewEntry, RelayStore};
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId, Seq};

use super::schema::*;
use super::{
    CHANGES, DocRecord, FeedRecord, RedbRelayStore, RelayStoreError, access, decode, encode, u64_of,
};

impl RelayStore for RedbRelayStore {
    type Error = RelayStoreError;

    fn epoch(&self) -> RelayEpoch {
        self.epoch
    }

    fn revoked_at(&self, name: &str) -> Result<Option<u64>, RelayStoreError> {
        self.handle().revoked_at(name)
    }

    fn bind_replica(&mut self, name: &str, id: ReplicaId) -> Result<Binding, RelayStoreError> {
        let txn = self.db.begin_write()?;
        let binding = access::bind(&txn, name, id)?;
        txn.commit()?;
        Ok(binding)
    }

    fn bind_actors(
        &mut self,
        name: &str,
        actors: &[automerge::ActorId],
    ) -> Result<Option<automerge::ActorId>, RelayStoreError> {
        let txn = self.db.begin_write()?;
        let taken = access::bind_actors(&txn, name, actors)?;
        if taken.is_none() {
            txn.commit()?;
        }
        Ok(taken)
    }

    fn read_feed(
        &self,
        company: &Company,
        after: Seq,
        max_bytes: usize,
    ) -> Result<Vec<FeedEntry>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let feed = txn.open_table(FEED)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let c = company.as_str();
        for item in feed.range((c, after.saturating_add(1))..=(c, u64::MAX))? {
            let (k, v) = item?;
            let rec: FeedRecord = decode(v.value(), "feed entry")?;
            // The first entry always goes out, however large, or the feed could never advance.
            if !out.is_empty() && bytes + rec.changes.len() > max_bytes {
                break;
            }
            bytes += rec.changes.len();
            out.push(FeedEntry {
                seq: k.value().1,
                doc: DocId(rec.doc),
                changes: rec.changes,
            });
        }
        Ok(out)
    }

    fn doc_company(&self, doc: &DocId) -> Result<Option<Company>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let rec = Self::doc_record(&txn.open_table(DOCS)?, doc)?;
        rec.map(|r| Company::new(&r.company).map_err(|e| RelayStoreError::Corrupt(e.to_string())))
            .transpose()
    }

    fn ingest(
        &mut self,
        origin: ReplicaId,
        docs: Vec<IngestDoc>,
    ) -> Result<Vec<NewEntry>, RelayStoreError> {
        let txn = self.db.begin_write()?;
        let mut out = Vec::new();
        {
            let mut feed = txn.open_table(FEED)?;
            let mut heads_t = txn.open_table(HEADS)?;
            let mut docs_t = txn.open_table(DOCS)?;
            let mut entries_t = txn.open_table(DOC_ENTRIES)?;
            let mut hashes_t = txn.open_table(HASHES)?;
            let mut company_t = txn.open_table(COMPANY_DOCS)?;
            let mut parked_t = txn.open_table(PARKED)?;
            let mut parked_count = txn.open_table(PARKED_COUNT)?;
            let mut meta = txn.open_table(META)?;
            let mut dirty = txn.open_table(DIRTY)?;
            let mut stored = 0u64;
            for IngestDoc {
                doc,
                company,
                applied,
                parked,
                unparked,
                uploader_holds,
            } in docs
            {
                let existing = Self::doc_record(&docs_t, &doc)?;
                let is_new = existing.is_none();
                let mut rec = match existing {
                    // The protocol checks this before ingesting; refusing here too keeps one
                    // document from ever spanning two company feeds.
                    Some(r) if r.company != company.as_str() => {
                        return Err(RelayStoreError::CompanyMismatch {
                            doc,
                            stored: r.company,
                            given: company.to_string(),
                        });
                    }
                    Some(r) => r,
                    None => {
                        company_t.insert((company.as_str(), doc.as_bytes()), ())?;
                        DocRecord {
                            company: company.as_str().to_string(),
                            heads: Vec::new(),
                        }
                    }
                };
                let c = company.as_str();
                let mut delta: i64 = 0;
                for hash in &unparked {
                    if parked_t.remove((doc.as_bytes(), &hash.0))?.is_some() {
                        delta -= 1;
                    }
                }
                for p in &parked {
                    if parked_t
                        .insert((doc.as_bytes(), &p.hash().0), p.raw_bytes())?
                        .is_none()
                    {
                        delta += 1;
                    }
                }
                if delta != 0 {
                    let now = parked_count.get(c)?.map_or(0, |v| v.value());
                    parked_count.insert(c, now.saturating_add_signed(delta))?;
                }
                let mut heads: Vec<ChangeHash> = rec.heads.iter().map(|h| ChangeHash(*h)).collect();
                let mut new: Vec<Change> = Vec::new();
                for ch in applied {
                    let hash = ch.hash();
                    if hashes_t.get((doc.as_bytes(), &hash.0))?.is_some() {
                        continue;
                    }
                    hashes_t.insert((doc.as_bytes(), &hash.0), ())?;
                    advance_heads(&mut heads, &ch);
                    new.push(ch);
                }
                stored += new.len() as u64;
                let payloads = ficha_core::change::pack(&mut new);
                if payloads.is_empty() {
                    // Like the model, a document named in an upload exists from then on.
                    if is_new {
                        docs_t.insert(doc.as_bytes(), encode(&rec).as_slice())?;
                    }
                    continue;
                }
                for changes in payloads {
                    let seq = heads_t.get(c)?.map_or(0, |v| v.value()) + 1;
                    heads_t.insert(c, seq)?;
                    let record = FeedRecord {
                        doc: doc.0,
                        origin: origin.0,
                        changes,
                    };
                    feed.insert((c, seq), encode(&record).as_slice())?;
                    entries_t.insert((doc.as_bytes(), seq), ())?;
                    out.push(NewEntry {
                        company: company.clone(),
                        entry: FeedEntry {
                            seq,
                            doc,
                            changes: record.changes,
                        },
                        uploader_holds,
                    });
                }
                dirty.insert(doc.as_bytes(), ())?;
                rec.heads = heads.iter().map(|h| h.0).collect();
                docs_t.insert(doc.as_bytes(), encode(&rec).as_slice())?;
            }
            let total = meta.get(CHANGES)?.map_or(0, |v| u64_of(v.value())) + stored;
            meta.insert(CHANGES, total.to_be_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(out)
    }

    fn parked_count(&self, company: &Company) -> Result<usize, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let n = txn
            .open_table(PARKED_COUNT)?
            .get(company.as_str())?
            .map_or(0, |v| v.value());
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn doc_digests(&self, company: &Company) -> Result<(Seq, DocDigests), RelayStoreError> {
        // One read transaction: the head and the digests describe the same instant.
        let txn = self.db.begin_read()?;
        let head = txn
            .open_table(HEADS)?
            .get(company.as_str())?
            .map_or(0, |v| v.value());
        let index = txn.open_table(COMPANY_DOCS)?;
        let docs = txn.open_table(DOCS)?;
        let c = company.as_str();
        let mut out = Vec::new();
        for item in index.range((c, &[0u8; 16])..=(c, &[0xffu8; 16]))? {
            let id = DocId(*item?.0.value().1);
            if let Some(rec) = Self::doc_record(&docs, &id)? {
                let heads: Vec<ChangeHash> = rec.heads.iter().map(|h| ChangeHash(*h)).collect();
                out.push((id, heads_digest(&heads)));
            }
        }
        Ok((head, out))
    }

    fn load_doc(&self, doc: &DocId) -> Result<Option<LoadedDoc>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let Some(rec) = Self::doc_record(&txn.open_table(DOCS)?, doc)? else {
            return Ok(None);
        };
        let entries = txn.open_table(DOC_ENTRIES)?;
        let feed = txn.open_table(FEED)?;
        let mut loaded = LoadedDoc::default();
        for item in entries.range((doc.as_bytes(), 0)..=(doc.as_bytes(), u64::MAX))? {
            let seq = item?.0.value().1;
            if let Some(v) = feed.get((rec.company.as_str(), seq))? {
                let fr: FeedRecord = decode(v.value(), "feed entry")?;
                loaded
                    .add_entry(&fr.changes)
                    .map_err(|e| RelayStoreError::Corrupt(format!("document {doc}: {e}")))?;
            }
        }
        for item in txn
            .open_table(PARKED)?
            .range((doc.as_bytes(), &[0u8; 32])..=(doc.as_bytes(), &[0xffu8; 32]))?
        {
            let (_, v) = item?;
            loaded
                .add_parked(v.value())
                .map_err(|e| RelayStoreError::Corrupt(format!("parked change of {doc}: {e}")))?;
        }
        Ok(Some(loaded.finish()))
    }

    fn doc_state(&self, doc: &DocId) -> Result<Option<(Vec<ChangeHash>, usize)>, RelayStoreError> {
        let txn = self.db.begin_read()?;
        let Some(rec) = Self::doc_record(&txn.open_table(DOCS)?, doc)? else {
            return Ok(None);
        };
        let parked = txn
            .open_table(PARKED)?
            .range((doc.as_bytes(), &[0u8; 32])..=(doc.as_bytes(), &[0xffu8; 32]))?
            .count();
        Ok(Some((
            rec.heads.into_iter().map(ChangeHash).collect(),
            parked,
        )))
    }

    fn set_heads(&mut self, doc: &DocId, heads: &[ChangeHash]) -> Result<(), RelayStoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut docs = txn.open_table(DOCS)?;
            if let Some(mut rec) = Self::doc_record(&docs, doc)? {
                let mut h: Vec<[u8; 32]> = heads.iter().map(|h| h.0).collect();
                h.sort();
                rec.heads = h;
                docs.insert(doc.as_bytes(), encode(&rec).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}
