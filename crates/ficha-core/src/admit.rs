//! Admission: whether changes may join a document's history, decided by applying them.
//!
//! A change can parse and still be one Automerge cannot apply: its sequence number skips
//! ahead, it reuses an (actor, sequence number), or its operations name an element of the
//! wrong object. Automerge 0.12 panics on several of these, so a relay that stored one would
//! break every replica that syncs it. The relay therefore keeps the document it is adding to
//! (a [`WarmDoc`]) and admits a change only after checking its header against the document
//! (cheap, with errors a person can read) and applying it, under [`contain`].
//!
//! A change whose dependencies the document lacks is not refused: it is *parked* (stored
//! aside, never served) and applied as soon as they arrive. That happens after a relay is
//! restored from a backup: a replica re-uploads its own changes, some of which build on
//! changes only their authors can upload again.

use std::collections::{HashMap, HashSet};

use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};

use crate::error::ChangeError;
use crate::guard::contain;

/// An actor's last change in a document (applied or parked).
#[derive(Debug, Clone, Copy, Default)]
struct Tip {
    seq: u64,
    max_op: u64,
}

/// A document held in memory to admit changes into.
pub struct WarmDoc {
    doc: Automerge,
    tips: HashMap<ActorId, Tip>,
    parked: Vec<Change>,
    bytes: usize,
    poisoned: bool,
}

/// What admitting a run of changes did.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Applied, in order (parked changes they released included): store and serve these.
    pub applied: Vec<Change>,
    /// Newly parked: store them aside.
    pub parked: Vec<Change>,
    /// Parked before and applied now: take them out of the parked store.
    pub released: Vec<ChangeHash>,
    /// Parked before and refused once their dependencies arrived: drop them.
    pub dropped: Vec<ChangeHash>,
}

impl Admitted {
    /// True when nothing new was applied or parked.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty()
            && self.parked.is_empty()
            && self.released.is_empty()
            && self.dropped.is_empty()
    }
}

impl WarmDoc {
    /// Wraps a document loaded from storage, with its parked changes; `bytes` is what loading
    /// it read (the cache's measure of its size).
    pub fn new(doc: Automerge, parked: Vec<Change>, bytes: usize) -> Result<Self, ChangeError> {
        let mut tips: HashMap<ActorId, Tip> = HashMap::new();
        let metas = contain(|| {
            doc.get_changes_meta(&[])
                .into_iter()
                .map(|m| (m.actor.into_owned(), m.seq, m.max_op))
                .collect::<Vec<_>>()
        })
        .map_err(ChangeError::DoesNotApply)?;
        for (actor, seq, max_op) in metas {
            raise(&mut tips, actor, seq, max_op);
        }
        for c in &parked {
            raise(&mut tips, c.actor_id().clone(), c.seq(), c.max_op());
        }
        Ok(Self {
            doc,
            tips,
            parked,
            bytes,
            poisoned: false,
        })
    }

    /// An empty document.
    pub fn empty() -> Self {
        Self {
            doc: Automerge::new(),
            tips: HashMap::new(),
            parked: Vec::new(),
            bytes: 0,
            poisoned: false,
        }
    }

    /// The document as admitted so far.
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// The document, for calls that need it mutable but add no change (sync in read-only mode).
    pub fn doc_mut(&mut self) -> &mut Automerge {
        &mut self.doc
    }

    /// Approximate bytes this document stands for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True once a failed call may have left the document half-updated: reload it.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Marks the document as not to be trusted (a call on it failed).
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Changes waiting for their history.
    pub fn parked_len(&self) -> usize {
        self.parked.len()
    }

    /// True when the document holds this change (applied, not parked).
    pub fn has(&self, hash: &ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
    }

    fn max_op_of(&self, hash: &ChangeHash) -> Option<u64> {
        self.doc
            .get_change_meta_by_hash(hash)
            .map(|m| m.max_op)
            .or_else(|| {
                self.parked
                    .iter()
                    .find(|p| p.hash() == *hash)
                    .map(Change::max_op)
            })
    }

    fn is_parked(&self, hash: &ChangeHash) -> bool {
        self.parked.iter().any(|p| p.hash() == *hash)
    }

    /// Checks `changes` in order and adds the good ones; refuses the whole run at the first
    /// change that must not join the document (the caller then discards this `WarmDoc`, which
    /// may hold the changes before it).
    pub fn admit(&mut self, changes: Vec<Change>) -> Result<Admitted, ChangeError> {
        let mut out = Admitted::default();
        let mut seen = HashSet::new();
        for change in changes {
            let hash = change.hash();
            if !seen.insert(hash) || self.has(&hash) || self.is_parked(&hash) {
                continue;
            }
            if let Err(e) = self.check_header(&change) {
                self.poisoned = true;
                return Err(e);
            }
            raise(
                &mut self.tips,
                change.actor_id().clone(),
                change.seq(),
                change.max_op(),
            );
            if change.deps().iter().all(|d| self.has(d)) {
                self.apply(&change)?;
                out.applied.push(change);
            } else {
                self.parked.push(change.clone());
                out.parked.push(change);
            }
        }
        if !out.applied.is_empty() {
            self.release(&mut out);
        }
        Ok(out)
    }

    /// Adds changes admitted before on this document's stored state (staged, not yet stored),
    /// after a reload: they apply as they did then.
    pub fn replay(&mut self, applied: &[Change], parked: &[Change]) -> Result<(), ChangeError> {
        for c in applied {
            if !self.has(&c.hash()) {
                raise(&mut self.tips, c.actor_id().clone(), c.seq(), c.max_op());
                self.apply(c)?;
                self.parked.retain(|p| p.hash() != c.hash());
            }
        }
        for c in parked {
            if !self.is_parked(&c.hash()) && !self.has(&c.hash()) {
                raise(&mut self.tips, c.actor_id().clone(), c.seq(), c.max_op());
                self.parked.push(c.clone());
            }
        }
        Ok(())
    }

    /// The checks Automerge needs and does not make itself (or makes by panicking).
    fn check_header(&self, change: &Change) -> Result<(), ChangeError> {
        let seq = change.seq();
        if change.author().is_some() && seq != 1 {
            return Err(ChangeError::LateAuthor);
        }
        let tip = self
            .tips
            .get(change.actor_id())
            .copied()
            .unwrap_or_default();
        if seq <= tip.seq {
            return Err(ChangeError::SeqReused { seq });
        }
        if seq > tip.seq + 1 {
            return Err(ChangeError::SeqGap {
                previous: tip.seq,
                found: seq,
            });
        }
        // Operation ids are (counter, actor): a change must count on from everything it
        // follows, its actor's previous change included, or two operations share an id.
        let start_op = change.start_op().get();
        let overlaps = start_op <= tip.max_op
            || change
                .deps()
                .iter()
                .filter_map(|d| self.max_op_of(d))
                .any(|max| start_op <= max);
        if overlaps {
            return Err(ChangeError::OpsOverlap { start_op });
        }
        Ok(())
    }

    fn apply(&mut self, change: &Change) -> Result<(), ChangeError> {
        let doc = &mut self.doc;
        let applied = contain(|| doc.apply_changes([change.clone()]));
        let failure = match applied {
            Err(panic) => Some(panic),
            Ok(Err(e)) => Some(e.to_string()),
            Ok(Ok(())) if !self.has(&change.hash()) => {
                Some("Automerge kept it waiting for dependencies it already has".into())
            }
            // Automerge keeps operations, not changes: a change it cannot rebuild from them
            // would be saved as a document that no longer loads.
            Ok(Ok(())) => match contain(|| self.doc.get_change_by_hash(&change.hash())) {
                Ok(Some(rebuilt)) if rebuilt.hash() == change.hash() => None,
                Ok(_) => Some("its operations do not survive a save of the document".into()),
                Err(panic) => Some(panic),
            },
        };
        match failure {
            Some(reason) => {
                self.poisoned = true;
                Err(ChangeError::DoesNotApply(reason))
            }
            None => {
                self.bytes += change.raw_bytes().len();
                Ok(())
            }
        }
    }

    /// Applies every parked change whose dependencies are now all in the document.
    fn release(&mut self, out: &mut Admitted) {
        loop {
            let Some(i) = self
                .parked
                .iter()
                .position(|p| p.deps().iter().all(|d| self.has(d)))
            else {
                return;
            };
            let change = self.parked.remove(i);
            let start_op = change.start_op().get();
            let overlaps = change
                .deps()
                .iter()
                .filter_map(|d| self.max_op_of(d))
                .any(|max| start_op <= max);
            if overlaps {
                tracing::warn!(change = %change.hash(), "dropping a parked change whose operation ids overlap its dependencies");
                out.dropped.push(change.hash());
                continue;
            }
            match self.apply(&change) {
                Ok(()) => {
                    out.released.push(change.hash());
                    out.applied.push(change);
                }
                Err(e) => {
                    tracing::warn!(change = %change.hash(), error = %e, "dropping a parked change that does not apply");
                    out.dropped.push(change.hash());
                    // The document may be half-updated: what was applied before stays valid,
                    // the caller reloads the rest.
                    return;
                }
            }
        }
    }
}

fn raise(tips: &mut HashMap<ActorId, Tip>, actor: ActorId, seq: u64, max_op: u64) {
    let tip = tips.entry(actor).or_default();
    tip.seq = tip.seq.max(seq);
    tip.max_op = tip.max_op.max(max_op);
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    fn actor(n: u8) -> ActorId {
        ActorId::from(&[n; 20][..])
    }

    /// Changes by one actor, each on the previous.
    fn history(n: usize) -> (AutoCommit, Vec<Change>) {
        let mut d = AutoCommit::new().with_actor(actor(1));
        let mut out = Vec::new();
        for i in 0..n {
            d.put(ROOT, "k", i as i64).expect("put");
            d.commit();
            out.push(d.get_last_local_change().expect("change"));
        }
        (d, out)
    }

    #[test]
    fn changes_in_order_are_applied_and_duplicates_skipped() {
        let (_, cs) = history(3);
        let mut warm = WarmDoc::empty();
        let a = warm.admit(cs.clone()).expect("admitted");
        assert_eq!(a.applied.len(), 3);
        let again = warm.admit(cs).expect("admitted");
        assert!(again.is_empty());
    }

    #[test]
    fn the_same_genesis_twice_is_one_and_a_different_one_is_refused() {
        let doc = crate::DocId([4; 16]);
        let genesis = |v: i64| {
            let mut d = AutoCommit::new().with_actor(crate::ids::genesis_actor(doc));
            d.put(ROOT, "k", v).expect("put");
            d.commit_with(automerge::transaction::CommitOptions::default().with_time(0));
            d.get_last_local_change().expect("change")
        };
        let mut warm = WarmDoc::empty();
        assert_eq!(
            warm.admit(vec![genesis(1)]).expect("first").applied.len(),
            1
        );
        assert!(
            warm.admit(vec![genesis(1)]).expect("again").is_empty(),
            "one document"
        );
        assert_eq!(
            warm.admit(vec![genesis(2)]).err(),
            Some(ChangeError::SeqReused { seq: 1 }),
            "a different first change under the genesis actor"
        );
    }

    #[test]
    fn a_skipped_sequence_number_is_refused() {
        let (_, cs) = history(3);
        let mut warm = WarmDoc::empty();
        warm.admit(vec![cs[0].clone()]).expect("first");
        assert_eq!(
            warm.admit(vec![cs[2].clone()]).err(),
            Some(ChangeError::SeqGap {
                previous: 1,
                found: 3
            })
        );
    }

    #[test]
    fn a_change_on_a_missing_dependency_is_parked_then_released_in_order() {
        let (mut base, cs) = history(2);
        // Actor 2 writes on top of actor 1's second change.
        let mut other = AutoCommit::load(&base.document().save())
            .expect("load")
            .with_actor(actor(2));
        other.put(ROOT, "j", 1).expect("put");
        other.commit();
        let on_top = other.get_last_local_change().expect("change");
        let mut warm = WarmDoc::empty();
        warm.admit(vec![cs[0].clone()]).expect("first");
        let parked = warm.admit(vec![on_top.clone()]).expect("parked");
        assert_eq!(parked.parked.len(), 1);
        assert!(parked.applied.is_empty());
        assert!(!warm.has(&on_top.hash()));
        let released = warm.admit(vec![cs[1].clone()]).expect("released");
        assert_eq!(
            released
                .applied
                .iter()
                .map(Change::hash)
                .collect::<Vec<_>>(),
            vec![cs[1].hash(), on_top.hash()]
        );
        assert_eq!(released.released, vec![on_top.hash()]);
        assert!(warm.has(&on_top.hash()));
    }

    #[test]
    fn a_forged_sequence_number_is_refused_with_its_reason() {
        let (_, cs) = history(2);
        let mut warm = WarmDoc::empty();
        warm.admit(vec![cs[0].clone()]).expect("first");
        // The same actor and sequence number as the first change, other content.
        let mut other = AutoCommit::new().with_actor(actor(1));
        other.put(ROOT, "k", "forged").expect("put");
        other.commit();
        let forged = other.get_last_local_change().expect("change");
        assert_eq!(forged.seq(), 1);
        let mut warm2 = WarmDoc::new(warm.doc().clone(), Vec::new(), 0).expect("warm");
        assert_eq!(
            warm2.admit(vec![forged]).err(),
            Some(ChangeError::SeqReused { seq: 1 })
        );
        assert!(warm2.is_poisoned());
    }
}
