//! Uploads: each document of an upload is admitted or refused on its own, the admitted ones
//! are stored together, and the uploader learns which were refused before its `Ack`.

use automerge::Change;

use crate::admit::{Admitted, WarmDoc};
use crate::change;
use crate::error::ChangeError;
use crate::frame::{DocChanges, ErrorCode, Frame, Refusals, RefusedDoc, Upload};
use crate::ids::{Company, DocId};

use super::{ConnId, IngestDoc, Output, Refusal, Relay, RelayStore, encode, internal};

/// Uploads admitted and waiting to be stored together (a replica's pipelined uploads).
#[derive(Default)]
pub(super) struct Staged {
    /// The position of the last upload staged.
    upto: Option<u64>,
    docs: Vec<IngestDoc>,
    refusals: Vec<Refusals>,
}

impl Staged {
    /// What this batch admitted to `doc` so far, not stored yet: applied, then parked.
    fn of(&self, doc: &DocId) -> (Vec<Change>, Vec<Change>) {
        let mut applied = Vec::new();
        let mut parked = Vec::new();
        for d in self.docs.iter().filter(|d| d.doc == *doc) {
            applied.extend(d.applied.iter().cloned());
            parked.extend(d.parked.iter().cloned());
        }
        (applied, parked)
    }

    fn parked_in(&self, company: &Company) -> usize {
        self.docs
            .iter()
            .filter(|d| &d.company == company)
            .map(|d| d.parked.len())
            .sum()
    }

    fn company_of(&self, doc: &DocId) -> Option<&Company> {
        self.docs.iter().find(|d| d.doc == *doc).map(|d| &d.company)
    }
}

/// What a person is told of a stored document that does not load (logged with its cause).
pub(super) fn unloadable(doc: &DocId, e: &ChangeError) -> String {
    tracing::error!(doc = %doc, error = %e, "a stored document does not load");
    format!("the relay cannot load document {doc}; its operator must repair it")
}

/// Why one document of an upload is not stored.
fn refused(doc: DocId, code: ErrorCode, message: impl Into<String>) -> RefusedDoc {
    RefusedDoc {
        doc,
        code,
        message: message.into(),
    }
}

impl<S: RelayStore> Relay<S> {
    /// Admits every document of an upload into `staged`, recording the refused ones. Fails
    /// (ending the session) only for what no honest replica sends.
    pub(super) fn stage(
        &mut self,
        conn: ConnId,
        upload: Upload,
        staged: &mut Staged,
    ) -> Result<(), Refusal> {
        let total: usize = upload.docs.iter().map(|d| d.changes.len()).sum();
        if total > self.cfg.max_upload_changes {
            return Err(Refusal::new(
                ErrorCode::Limit,
                format!(
                    "upload of {total} changes exceeds {}",
                    self.cfg.max_upload_changes
                ),
            ));
        }
        let mut refusals = Vec::new();
        for group in upload.docs {
            let doc = group.doc;
            match self.admit_group(conn, group, staged)? {
                Ok(ingest) => staged.docs.extend(ingest),
                Err(r) => {
                    tracing::warn!(conn, doc = %r.doc, code = ?r.code, reason = %r.message, "refusing a document of an upload");
                    self.stats.refused_docs += 1;
                    self.log_refusal(conn, Some(r.doc), r.code, &r.message);
                    // Whatever the refused group left in memory goes; what this batch staged
                    // for the document is replayed when it is next needed.
                    self.cache.evict(&doc);
                    refusals.push(r);
                }
            }
        }
        staged.upto = Some(upload.upto);
        if !refusals.is_empty() {
            staged.refusals.push(Refusals {
                upto: upload.upto,
                docs: refusals,
            });
        }
        Ok(())
    }

    /// Admits one document's changes; the inner error refuses that document only, the outer
    /// one ends the session (the relay could not read its own store).
    fn admit_group(
        &mut self,
        conn: ConnId,
        group: DocChanges,
        staged: &Staged,
    ) -> Result<Result<Vec<IngestDoc>, RefusedDoc>, Refusal> {
        let DocChanges {
            doc,
            company,
            changes,
        } = group;
        let session = self.session(conn)?;
        let replica = session.replica;
        // One message for every reason a token may not write a document, so a refusal never
        // confirms that another company holds this id.
        let forbidden = || {
            refused(
                doc,
                ErrorCode::Forbidden,
                format!("this token may not write document {doc} in company {company}"),
            )
        };
        if !session.claims.write || !session.claims.companies.contains(&company) {
            return Ok(Err(forbidden()));
        }
        let owner = match staged.company_of(&doc) {
            Some(c) => Some(c.clone()),
            None => self.store.doc_company(&doc).map_err(internal)?,
        };
        if owner.is_some_and(|c| c != company) {
            return Ok(Err(forbidden()));
        }
        let parsed: Result<Vec<Change>, ChangeError> = changes
            .iter()
            .map(|c| change::parse_upload(c, replica, doc))
            .collect();
        let parsed = match parsed {
            Ok(p) => p,
            Err(e @ ChangeError::TooLarge { .. }) => {
                return Ok(Err(refused(doc, ErrorCode::Limit, e.to_string())));
            }
            Err(e) => return Ok(Err(refused(doc, ErrorCode::BadChange, e.to_string()))),
        };
        let mut warm = match self.warm(&doc, staged)? {
            Ok(w) => w,
            Err(r) => return Ok(Err(r)),
        };
        let admitted = match warm.admit(parsed) {
            Ok(a) => a,
            Err(e) => return Ok(Err(refused(doc, ErrorCode::BadChange, e.to_string()))),
        };
        if let Some(why) =
            self.parked_over(&company, staged.parked_in(&company), admitted.parked.len())?
        {
            return Ok(Err(refused(doc, ErrorCode::Limit, why)));
        }
        self.cache.put(doc, warm);
        let Admitted {
            applied,
            parked,
            released,
            dropped,
        } = admitted;
        self.stats.parked += parked.len() as u64;
        // The uploader's own changes and the parked ones they released (others') go in
        // separate entries: it is sent the positions of the first, the bytes of the second.
        let (others, own): (Vec<Change>, Vec<Change>) = applied
            .into_iter()
            .partition(|c| released.contains(&c.hash()));
        let mut out = vec![IngestDoc {
            doc,
            company: company.clone(),
            applied: own,
            parked,
            unparked: released.into_iter().chain(dropped).collect(),
            uploader_holds: true,
        }];
        if !others.is_empty() {
            out.push(IngestDoc {
                doc,
                company,
                applied: others,
                parked: Vec::new(),
                unparked: Vec::new(),
                uploader_holds: false,
            });
        }
        Ok(Ok(out))
    }

    /// The document to admit into: kept in memory, or loaded and brought up to what this batch
    /// staged for it.
    fn warm(
        &mut self,
        doc: &DocId,
        staged: &Staged,
    ) -> Result<Result<WarmDoc, RefusedDoc>, Refusal> {
        if let Some(w) = self.take_warm(doc)? {
            return Ok(Ok(w));
        }
        let broken = |e: ChangeError| refused(*doc, ErrorCode::Internal, unloadable(doc, &e));
        let mut warm = match self.load_warm(doc)? {
            Ok(w) => w,
            Err(e) => return Ok(Err(broken(e))),
        };
        let (applied, parked) = staged.of(doc);
        if let Err(e) = warm.replay(&applied, &parked) {
            return Ok(Err(broken(e)));
        }
        Ok(Ok(warm))
    }

    /// A document as stored, to admit into or sync from (empty when the relay does not have
    /// it); the inner error says that what is stored does not load.
    pub(super) fn load_warm(&self, doc: &DocId) -> Result<Result<WarmDoc, ChangeError>, Refusal> {
        Ok(match self.store.load_doc(doc).map_err(internal)? {
            None => Ok(WarmDoc::empty()),
            Some(l) => WarmDoc::new(l.doc, l.parked, l.bytes),
        })
    }

    /// Why adding `adding` parked changes to `company` (beside `staged` not stored yet) would
    /// take it past its limit, if it would; nothing is read when none are added.
    pub(super) fn parked_over(
        &self,
        company: &Company,
        staged: usize,
        adding: usize,
    ) -> Result<Option<String>, Refusal> {
        if adding == 0 {
            return Ok(None);
        }
        let parked = self.store.parked_count(company).map_err(internal)? + staged + adding;
        Ok((parked > self.cfg.max_parked).then(|| {
            format!(
                "company {company} already holds {} changes waiting for their history",
                self.cfg.max_parked
            )
        }))
    }

    /// Stores what `staged` admitted in one transaction, pushes it live, then tells the
    /// uploader which documents were refused and acknowledges the rest.
    pub(super) fn flush(&mut self, conn: ConnId, staged: &mut Staged, out: &mut Vec<Output>) {
        let Some(upto) = staged.upto.take() else {
            return;
        };
        let docs = std::mem::take(&mut staged.docs);
        let refusals = std::mem::take(&mut staged.refusals);
        if let Err(refusal) = self.store_admitted(conn, docs, out) {
            self.refuse(conn, refusal, out);
            return;
        }
        for r in refusals {
            out.push(Output::Send(conn, encode(&Frame::Refused(r))));
        }
        tracing::debug!(conn, upto, "uploads stored");
        out.push(Output::Send(conn, encode(&Frame::Ack { upto })));
    }

    fn store_admitted(
        &mut self,
        conn: ConnId,
        docs: Vec<IngestDoc>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        if docs.is_empty() {
            return Ok(());
        }
        let replica = self.session(conn)?.replica;
        let ids: Vec<DocId> = docs.iter().map(|d| d.doc).collect();
        let count: usize = docs.iter().map(|d| d.applied.len()).sum();
        let entries = match self.store.ingest(replica, docs) {
            Ok(e) => e,
            Err(e) => {
                // Memory is ahead of storage for these documents now.
                for id in &ids {
                    self.cache.evict(id);
                }
                return Err(internal(e));
            }
        };
        self.stats.changes_stored += count as u64;
        let mut by_company: std::collections::BTreeMap<Company, Vec<_>> = Default::default();
        for e in entries {
            by_company
                .entry(e.company)
                .or_default()
                .push((e.entry, e.uploader_holds));
        }
        for (company, entries) in by_company {
            self.push_live(conn, company, entries, out);
        }
        let mut ids = ids;
        ids.sort();
        ids.dedup();
        for id in ids {
            self.push_repo(id, None, out);
        }
        Ok(())
    }
}
