//! Parsing and first checks of incoming Automerge changes (see [`crate::admit`] for whether a
//! change may join its document).

use automerge::Change;

use crate::error::ChangeError;
use crate::frame::{MAX_CHANGE_BYTES, MAX_ENTRY_BYTES};
use crate::guard::contain;
use crate::ids::{DocId, ReplicaId, genesis_actor, replica_of_actor};

/// Parses one raw change and checks the checksum its header claims.
///
/// Automerge 0.12 computes a change's hash from its contents but does not compare it with the
/// checksum in the header, so an altered change would parse and then fail to load elsewhere.
pub fn parse(bytes: &[u8]) -> Result<Change, ChangeError> {
    let change = contain(|| Change::try_from(bytes))
        .map_err(ChangeError::Unparseable)?
        .map_err(|e| ChangeError::Unparseable(e.to_string()))?;
    let claimed = |b: &[u8]| b.get(4..8).map(<[u8]>::to_vec);
    let hash = change.hash();
    let expected = Some(hash.0[..4].to_vec());
    if claimed(bytes) != expected || claimed(change.raw_bytes()) != expected {
        return Err(ChangeError::BadChecksum);
    }
    Ok(change)
}

/// Parses an uploaded change: at most [`MAX_CHANGE_BYTES`], written by `author` (uploads may
/// carry only the uploader's own changes).
pub fn parse_own(bytes: &[u8], author: ReplicaId) -> Result<Change, ChangeError> {
    if bytes.len() > MAX_CHANGE_BYTES {
        return Err(ChangeError::TooLarge {
            size: bytes.len(),
            limit: MAX_CHANGE_BYTES,
        });
    }
    let change = parse(bytes)?;
    if replica_of_actor(change.actor_id()) == Some(author) {
        Ok(change)
    } else {
        Err(ChangeError::ForeignActor)
    }
}

/// True when `change` is the genesis change of `doc`: the first change of the actor derived
/// from the document id, on nothing, at time zero. Any replica that may write the document may
/// upload it; two replicas deriving the same document upload the same bytes, and a different
/// change under that actor reuses (actor, 1) and is refused by admission.
pub fn is_genesis(change: &Change, doc: DocId) -> bool {
    *change.actor_id() == genesis_actor(doc)
        && change.seq() == 1
        && change.deps().is_empty()
        && change.timestamp() == 0
}

/// Parses a change uploaded for `doc`: [`parse_own`], or the document's genesis change.
pub fn parse_upload(bytes: &[u8], author: ReplicaId, doc: DocId) -> Result<Change, ChangeError> {
    match parse_own(bytes, author) {
        Err(ChangeError::ForeignActor) => {
            let change = parse(bytes)?;
            if is_genesis(&change, doc) {
                Ok(change)
            } else {
                Err(ChangeError::ForeignActor)
            }
        }
        other => other,
    }
}

/// Splits concatenated raw changes (a feed entry) into changes.
pub fn split(mut bytes: &[u8]) -> Result<Vec<Change>, ChangeError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = chunk_len(bytes).ok_or_else(|| {
            ChangeError::Unparseable("truncated change in a concatenated chunk".into())
        })?;
        out.push(parse(&bytes[..len])?);
        bytes = &bytes[len..];
    }
    Ok(out)
}

/// Every change in concatenated chunks, change chunks or whole saved documents alike: what an
/// Automerge sync message carries (a saved document when it shares most of one, followed by
/// any changes its sender holds waiting for their dependencies).
pub fn split_any(mut bytes: &[u8]) -> Result<Vec<Change>, ChangeError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = chunk_len(bytes)
            .ok_or_else(|| ChangeError::Unparseable("truncated chunk in a sync message".into()))?;
        let chunk = &bytes[..len];
        if chunk.get(8) == Some(&0) {
            let doc = contain(|| automerge::Automerge::load(chunk))
                .map_err(ChangeError::Unparseable)?
                .map_err(|e| ChangeError::Unparseable(e.to_string()))?;
            out.extend(contain(|| doc.get_changes(&[])).map_err(ChangeError::Unparseable)?);
        } else {
            out.push(parse(chunk)?);
        }
        bytes = &bytes[len..];
    }
    Ok(out)
}

/// Concatenates changes (Automerge's compressed form, which every loader accepts) into feed
/// entry payloads of at most [`MAX_ENTRY_BYTES`] each, in order; a change is never split.
pub fn pack(changes: &mut [Change]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in changes {
        let bytes = c.bytes();
        match out.last_mut() {
            Some(last) if last.len() + bytes.len() <= MAX_ENTRY_BYTES => {
                last.extend_from_slice(&bytes)
            }
            _ => out.push(bytes.to_vec()),
        }
    }
    out
}

/// True when `bytes` are exactly one saved Automerge document (not changes).
pub fn is_saved_document(bytes: &[u8]) -> bool {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    bytes.len() > 9 && bytes[..4] == MAGIC && bytes[8] == 0 && chunk_len(bytes) == Some(bytes.len())
}

/// Length of the first Automerge chunk in `bytes`: magic (4), checksum (4), type (1),
/// then a LEB128 length of the body.
fn chunk_len(bytes: &[u8]) -> Option<usize> {
    let header = 9;
    let mut len: u64 = 0;
    let mut shift = 0;
    for (i, b) in bytes.get(header..)?.iter().enumerate().take(10) {
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            let total = header + i + 1 + usize::try_from(len).ok()?;
            return (total <= bytes.len()).then_some(total);
        }
        shift += 7;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::actor_for;
    use automerge::{AutoCommit, ROOT, transaction::Transactable};

    fn changes_by(replica: ReplicaId, n: usize) -> Vec<Change> {
        let mut doc = AutoCommit::new().with_actor(actor_for(replica, 1));
        let mut out = Vec::new();
        for i in 0..n {
            doc.put(ROOT, "k", i as i64).expect("put");
            doc.commit();
            out.push(doc.get_last_local_change().expect("change"));
        }
        out
    }

    /// A change by the genesis actor of `doc`, with value `v`, at time `t`, on `deps` or not.
    fn by_genesis(doc: DocId, v: i64, t: i64, second: bool) -> Change {
        let mut d = AutoCommit::new().with_actor(genesis_actor(doc));
        d.put(ROOT, "k", v).expect("put");
        d.commit_with(automerge::transaction::CommitOptions::default().with_time(t));
        if second {
            d.put(ROOT, "k", v + 1).expect("put");
            d.commit_with(automerge::transaction::CommitOptions::default().with_time(t));
        }
        d.get_last_local_change().expect("change")
    }

    #[test]
    fn any_replica_may_upload_a_documents_genesis_and_nothing_else_under_its_actor() {
        let doc = DocId([7; 16]);
        let me = ReplicaId([1; 16]);
        let g = by_genesis(doc, 1, 0, false);
        assert!(is_genesis(&g, doc));
        assert!(parse_upload(g.raw_bytes(), me, doc).is_ok());
        assert!(parse_upload(g.raw_bytes(), ReplicaId([2; 16]), doc).is_ok());
        // Written the same way twice: the same bytes.
        assert_eq!(by_genesis(doc, 1, 0, false).raw_bytes(), g.raw_bytes());
        let refused = |c: &Change, d: DocId| parse_upload(c.raw_bytes(), me, d).err();
        assert_eq!(
            refused(&g, DocId([8; 16])),
            Some(ChangeError::ForeignActor),
            "another document's"
        );
        assert_eq!(
            refused(&by_genesis(doc, 1, 5, false), doc),
            Some(ChangeError::ForeignActor),
            "a time"
        );
        assert_eq!(
            refused(&by_genesis(doc, 1, 0, true), doc),
            Some(ChangeError::ForeignActor),
            "a second change"
        );
        // Own changes still pass, others' still do not.
        let own = &changes_by(me, 1)[0];
        assert!(parse_upload(own.raw_bytes(), me, doc).is_ok());
        assert_eq!(
            refused(&changes_by(ReplicaId([3; 16]), 1)[0], doc),
            Some(ChangeError::ForeignActor)
        );
    }

    #[test]
    fn own_changes_pass_and_foreign_ones_do_not() {
        let me = ReplicaId([1; 16]);
        let c = &changes_by(me, 1)[0];
        assert!(parse_own(c.raw_bytes(), me).is_ok());
        assert_eq!(
            parse_own(c.raw_bytes(), ReplicaId([2; 16])).err(),
            Some(ChangeError::ForeignActor)
        );
    }

    #[test]
    fn corrupted_changes_are_refused() {
        let c = &changes_by(ReplicaId([1; 16]), 1)[0];
        let mut bytes = c.raw_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(parse(&bytes).is_err());
        assert!(parse(&bytes[..5]).is_err());
    }

    #[test]
    fn a_header_checksum_that_does_not_match_is_refused() {
        for c in changes_by(ReplicaId([1; 16]), 3) {
            let mut bytes = c.raw_bytes().to_vec();
            assert!(parse(&bytes).is_ok());
            bytes[5] ^= 0x01;
            assert_eq!(parse(&bytes).err(), Some(ChangeError::BadChecksum));
        }
    }

    #[test]
    fn uploads_larger_than_the_limit_are_refused_before_parsing() {
        let big = vec![0u8; MAX_CHANGE_BYTES + 1];
        assert!(matches!(
            parse_own(&big, ReplicaId([1; 16])),
            Err(ChangeError::TooLarge { .. })
        ));
    }

    #[test]
    fn saved_documents_are_told_from_changes() {
        let cs = changes_by(ReplicaId([1; 16]), 3);
        let mut doc = automerge::Automerge::new();
        doc.apply_changes(cs.clone()).expect("apply");
        assert!(is_saved_document(&doc.save()));
        assert!(!is_saved_document(cs[0].raw_bytes()));
        let mut two = doc.save();
        two.extend(doc.save());
        assert!(!is_saved_document(&two));
    }

    #[test]
    fn concatenated_changes_split_back() {
        let cs = changes_by(ReplicaId([1; 16]), 5);
        let joined: Vec<u8> = cs.iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
        let split = split(&joined).expect("split");
        assert_eq!(
            split.iter().map(|c| c.hash()).collect::<Vec<_>>(),
            cs.iter().map(|c| c.hash()).collect::<Vec<_>>()
        );
        assert!(super::split(&joined[..joined.len() - 3]).is_err());
    }
}
