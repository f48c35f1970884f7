//! Several relay nodes on one store (a PostgreSQL cluster): what one node must do because the
//! others write the same feeds and documents.
//!
//! - A document held in memory may be behind the store: before each use its heads and parked
//!   count are compared with the store's, and a copy that differs is dropped and reloaded. A
//!   stale copy would park changes whose history another node stored, and never release them.
//! - Live sessions see only what this node ingests; [`Relay::feed_moved`] sends them what other
//!   nodes appended. The driver calls it on a hint (PostgreSQL `NOTIFY`) and on a timer, so a
//!   lost hint delays a push but never loses it: a live session's cursor only moves by pages
//!   read from the store, which the feed's numbering keeps gap-free.

use std::collections::BTreeMap;

use crate::admit::WarmDoc;
use crate::error::TokenError;
use crate::frame::{FeedPage, Frame};
use crate::ids::{Company, DocId, Seq};

use super::{ConnId, Output, Refusal, Relay, RelayStore, encode, internal};

impl<S: RelayStore> Relay<S> {
    /// Takes a document out of the cache if it is still what the store holds.
    pub(super) fn take_warm(&mut self, doc: &DocId) -> Result<Option<WarmDoc>, Refusal> {
        let Some(warm) = self.cache.take(doc) else {
            return Ok(None);
        };
        if !self.cfg.shared_store {
            return Ok(Some(warm));
        }
        let Some((mut stored, parked)) = self.store.doc_state(doc).map_err(internal)? else {
            return Ok(None);
        };
        let mut held = warm.doc().get_heads();
        stored.sort();
        held.sort();
        Ok((stored == held && parked == warm.parked_len()).then_some(warm))
    }

    /// Ends the sessions of `name` whose token was issued at or before `at`: another node
    /// revoked them (this node learns it from the store).
    pub fn revoked_before(&mut self, name: &str, at: u64) -> Vec<Output> {
        let mut out = self.end_sessions(
            |s| s.claims.replica == name && s.claims.issued_at <= at,
            TokenError::Revoked,
        );
        out.extend(self.end_peers(
            |p| p.claims.replica == name && p.claims.issued_at <= at,
            &TokenError::Revoked,
        ));
        out
    }

    /// The companies some session here follows live or has a record open in.
    pub fn followed_companies(&self) -> Vec<Company> {
        let mut companies: Vec<Company> = self
            .subscribers
            .iter()
            .filter(|(_, conns)| !conns.is_empty())
            .map(|(c, _)| c.clone())
            .collect();
        companies.extend(self.watchers.values().map(|w| w.company.clone()));
        companies.sort();
        companies.dedup();
        companies
    }

    /// Another node appended to `company`'s feed (or may have): sends each live session the
    /// pages past its cursor and brings automerge-repo peers of the company's open records up
    /// to date. Sessions at the same cursor share one read and one encoded page.
    pub fn feed_moved(&mut self, company: &Company) -> Vec<Output> {
        let mut out = Vec::new();
        if let Err(r) = self.send_behind(company, &mut out) {
            tracing::warn!(%company, error = %r.message, "cannot read a feed another node moved");
        }
        let open: Vec<DocId> = self
            .watchers
            .iter()
            .filter(|(_, w)| &w.company == company)
            .map(|(d, _)| *d)
            .collect();
        for doc in open {
            self.push_repo(doc, None, &mut out);
        }
        self.count_sent(&out);
        out
    }

    fn send_behind(&mut self, company: &Company, out: &mut Vec<Output>) -> Result<(), Refusal> {
        loop {
            let mut at: BTreeMap<Seq, Vec<ConnId>> = BTreeMap::new();
            let mut slow = Vec::new();
            for conn in self.subscribers.get(company).into_iter().flatten() {
                let Some(feed) = self.sessions.get(conn).and_then(|s| s.feeds.get(company)) else {
                    continue;
                };
                if !feed.live {
                    continue;
                }
                if feed.unacked >= self.cfg.max_unacked_live {
                    slow.push(*conn);
                } else {
                    at.entry(feed.cursor).or_default().push(*conn);
                }
            }
            self.drop_slow(slow, out);
            let mut moved = false;
            for (from, conns) in at {
                let entries = self
                    .store
                    .read_feed(company, from, self.cfg.page_bytes)
                    .map_err(internal)?;
                let Some(upto) = entries.last().map(|e| e.seq) else {
                    continue;
                };
                moved = true;
                let page = encode(&Frame::Feed(FeedPage {
                    company: company.clone(),
                    from,
                    upto,
                    entries,
                }));
                for conn in conns {
                    if let Some(feed) = self
                        .sessions
                        .get_mut(&conn)
                        .and_then(|s| s.feeds.get_mut(company))
                    {
                        feed.cursor = upto;
                        feed.unacked += 1;
                        out.push(Output::Send(conn, page.clone()));
                    }
                }
            }
            if !moved {
                return Ok(());
            }
        }
    }
}
