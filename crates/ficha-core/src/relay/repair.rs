//! Repair after an epoch change: bucket digests find the documents that differ, then
//! Automerge's sync protocol brings each replica what the relay has. The relay serves it
//! read-only: it never applies a change from a sync message. A replica re-uploads its own
//! changes the relay lacks through the outbox, where they are admitted like any upload.

use automerge::sync::{self, SyncDoc};

use crate::admit::WarmDoc;
use crate::digest::{BUCKETS, bucket_digests, bucket_of};
use crate::frame::{ErrorCode, Frame};
use crate::guard::contain;
use crate::ids::{Company, DocId};

use super::{ConnId, Output, Refusal, Relay, RelayStore, encode, internal};

impl<S: RelayStore> Relay<S> {
    pub(super) fn on_reconcile(
        &mut self,
        conn: ConnId,
        company: Company,
        theirs: Vec<[u8; 32]>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        self.check_read(conn, &company)?;
        if theirs.len() != BUCKETS {
            return Err(Refusal::new(
                ErrorCode::Protocol,
                "reconcile needs 256 buckets",
            ));
        }
        let (head, docs) = self.store.doc_digests(&company).map_err(internal)?;
        let mine = bucket_digests(docs.iter().map(|(d, h)| (d, h)));
        let buckets: Vec<u8> = (0..=255u8)
            .filter(|b| mine[usize::from(*b)] != theirs[usize::from(*b)])
            .collect();
        let docs = docs
            .into_iter()
            .filter(|(d, _)| buckets.contains(&bucket_of(d)))
            .collect();
        let diff = Frame::ReconcileDiff {
            company,
            head,
            buckets,
            docs,
        };
        out.push(Output::Send(conn, encode(&diff)));
        Ok(())
    }

    pub(super) fn on_doc_sync(
        &mut self,
        conn: ConnId,
        company: Company,
        doc_id: DocId,
        message: Option<Vec<u8>>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        self.check_read(conn, &company)?;
        let Some(bytes) = message else {
            // The replica is done with this document.
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.repairs.remove(&doc_id);
            }
            return Ok(());
        };
        let session = self.session(conn)?;
        if !session.repairs.contains_key(&doc_id) && session.repairs.len() >= self.cfg.max_repairs {
            return Err(Refusal::new(
                ErrorCode::Limit,
                "too many documents in repair at once",
            ));
        }
        let msg = contain(|| sync::Message::decode(&bytes))
            .map_err(|e| Refusal::new(ErrorCode::BadChange, e))?
            .map_err(|e| Refusal::new(ErrorCode::BadChange, e.to_string()))?;
        // A document of another company is answered exactly as one the relay does not have.
        let owned = self.store.doc_company(&doc_id).map_err(internal)? == Some(company.clone());
        let mut warm = if owned {
            match self.take_warm(&doc_id)? {
                Some(w) => w,
                None => self.load_warm(&doc_id)?.unwrap_or_else(|e| {
                    tracing::error!(doc = %doc_id, error = %e, "a stored document does not load");
                    let mut w = WarmDoc::empty();
                    w.poison();
                    w
                }),
            }
        } else {
            WarmDoc::empty()
        };
        let reply = if warm.is_poisoned() {
            None
        } else {
            let Some(session) = self.sessions.get_mut(&conn) else {
                return Err(Refusal::new(ErrorCode::Protocol, "no session"));
            };
            let state = session
                .repairs
                .entry(doc_id)
                .or_insert_with(sync::State::new_read_only);
            let doc = warm.doc_mut();
            match contain(|| {
                doc.receive_sync_message(state, msg)
                    .map(|()| doc.generate_sync_message(state).map(|m| m.encode()))
            }) {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => {
                    tracing::warn!(conn, doc = %doc_id, error = %e, "ending the repair of a document");
                    None
                }
                Err(e) => {
                    tracing::warn!(conn, doc = %doc_id, error = %e, "ending the repair of a document");
                    warm.poison();
                    None
                }
            }
        };
        if reply.is_none() {
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.repairs.remove(&doc_id);
            }
            if owned && !warm.is_poisoned() {
                // The document was loaded whole, so its heads are exact: repair the index too.
                let heads = warm.doc().get_heads();
                self.store.set_heads(&doc_id, &heads).map_err(internal)?;
            }
        }
        if owned {
            self.cache.put(doc_id, warm);
        }
        out.push(Output::Send(
            conn,
            encode(&Frame::DocSync {
                company,
                doc: doc_id,
                message: reply,
            }),
        ));
        Ok(())
    }
}
