//! What an operator sees of a running relay: its open sessions and the refusals it made
//! lately. Kept in memory only (a restart starts a fresh list), bounded, and free of tokens.

use std::collections::{BTreeMap, VecDeque};

use super::{ConnId, Relay, RelayStore};
use crate::frame::ErrorCode;
use crate::ids::{DocId, Seq};

/// Refusals kept for the admin page; older ones fall off.
pub const REFUSALS_KEPT: usize = 200;

/// One open session, as the admin page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The connection.
    pub conn: ConnId,
    /// The replica's name, from its token.
    pub replica: String,
    /// The replica's short code.
    pub code: String,
    /// The companies of its token.
    pub companies: Vec<String>,
    /// Its token may not upload.
    pub read_only: bool,
    /// When its hello was accepted (seconds since the Unix epoch).
    pub connected_at: u64,
    /// When it last sent a frame.
    pub last_seen: u64,
    /// Per subscribed company, the last feed sequence sent to it.
    pub cursors: BTreeMap<String, Seq>,
    /// Feed pages sent and not yet acknowledged, over its companies.
    pub unacked: usize,
}

/// A session ended or a document of an upload refused, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRecord {
    /// When (seconds since the Unix epoch).
    pub at: u64,
    /// The replica's name, when its hello had been accepted.
    pub replica: Option<String>,
    /// The document, for a refused document of an upload.
    pub doc: Option<DocId>,
    /// Why, for machines.
    pub code: ErrorCode,
    /// Why, for people.
    pub reason: String,
}

/// The most recent refusals, newest last.
#[derive(Debug, Default)]
pub(super) struct RefusalLog(VecDeque<RefusalRecord>);

impl RefusalLog {
    pub(super) fn push(&mut self, record: RefusalRecord) {
        if self.0.len() == REFUSALS_KEPT {
            self.0.pop_front();
        }
        self.0.push_back(record);
    }
}

impl<S: RelayStore> Relay<S> {
    /// Every open session, by connection (Ficha replicas, then automerge-repo peers).
    pub fn sessions_info(&self) -> Vec<SessionInfo> {
        self.sessions
            .iter()
            .map(|(conn, s)| SessionInfo {
                conn: *conn,
                replica: s.claims.replica.clone(),
                code: s.claims.code.clone(),
                companies: s.claims.companies.iter().map(|c| c.to_string()).collect(),
                read_only: !s.claims.write,
                connected_at: s.connected_at,
                last_seen: s.last_seen,
                cursors: s
                    .feeds
                    .iter()
                    .map(|(c, f)| (c.to_string(), f.cursor))
                    .collect(),
                unacked: s.feeds.values().map(|f| f.unacked).sum(),
            })
            .chain(self.peers.iter().map(|(conn, p)| SessionInfo {
                conn: *conn,
                replica: format!("{} (automerge-repo)", p.claims.replica),
                code: p.claims.code.clone(),
                companies: p.claims.companies.iter().map(|c| c.to_string()).collect(),
                read_only: !p.claims.write,
                connected_at: p.connected_at,
                last_seen: p.last_seen,
                cursors: BTreeMap::new(),
                unacked: 0,
            }))
            .collect()
    }

    /// The refusals kept, newest first.
    pub fn recent_refusals(&self) -> impl Iterator<Item = &RefusalRecord> {
        self.refusals.0.iter().rev()
    }

    /// Records a refusal of `conn` (its replica's name if it has a session).
    pub(super) fn log_refusal(
        &mut self,
        conn: ConnId,
        doc: Option<DocId>,
        code: ErrorCode,
        reason: &str,
    ) {
        let replica = self
            .sessions
            .get(&conn)
            .map(|s| &s.claims.replica)
            .or_else(|| self.peers.get(&conn).map(|p| &p.claims.replica))
            .cloned();
        self.refusals.push(RefusalRecord {
            at: self.now,
            replica,
            doc,
            code,
            reason: reason.to_string(),
        });
    }
}
