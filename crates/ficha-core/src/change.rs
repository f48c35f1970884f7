//! Validation of incoming Automerge changes.

use automerge::Change;

use crate::error::ChangeError;
use crate::ids::{ReplicaId, replica_of_actor};

/// Parses one raw change; Automerge verifies its checksum and so its content hash.
pub fn parse(bytes: &[u8]) -> Result<Change, ChangeError> {
    Change::try_from(bytes).map_err(|e| ChangeError::Unparseable(e.to_string()))
}

/// Parses a change and checks that `author` wrote it (uploads may carry only own changes).
pub fn parse_own(bytes: &[u8], author: ReplicaId) -> Result<Change, ChangeError> {
    let change = parse(bytes)?;
    if replica_of_actor(change.actor_id()) == Some(author) {
        Ok(change)
    } else {
        Err(ChangeError::ForeignActor)
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
