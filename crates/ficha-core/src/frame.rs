//! The wire format: versioned, compact binary frames (a two-byte header, then postcard).
//!
//! Every frame is `[MAGIC, PROTOCOL_VERSION, postcard(Frame)]`. The header lets a peer refuse
//! garbage or a future protocol with a clear error before parsing anything.

use serde::{Deserialize, Serialize};

use crate::error::FrameError;
use crate::ids::{Company, DocId, RelayEpoch, ReplicaId, Seq};

/// First byte of every frame.
pub const MAGIC: u8 = 0xF1;
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Default largest frame a peer accepts (also the WebSocket message limit).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// Largest single change a replica makes or the relay accepts: a quarter of a frame, so an
/// upload of one change always fits.
pub const MAX_CHANGE_BYTES: usize = DEFAULT_MAX_FRAME / 4;
/// Largest feed entry the relay stores or produces (compaction included): half a frame, so a
/// page of one entry always fits, whatever its framing.
pub const MAX_ENTRY_BYTES: usize = DEFAULT_MAX_FRAME / 2;
/// Largest first frame of a connection (the hello: an id and a token) before the token is
/// checked, so a stranger cannot make the relay buffer a large message.
pub const MAX_HELLO_BYTES: usize = 16 * 1024;

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Replica → relay: first frame of a session.
    Hello(Hello),
    /// Relay → replica: the session is open.
    Welcome(Welcome),
    /// Either way: something went wrong; `fatal` frames are followed by a close.
    Error(ErrorFrame),
    /// Replica → relay: stream the company's feed after `after`, then keep pushing.
    Subscribe {
        /// Company whose feed to follow.
        company: Company,
        /// The replica's checkpoint: the last entry it has durably applied.
        after: Seq,
    },
    /// Relay → replica: consecutive feed entries `from < seq <= upto`.
    Feed(FeedPage),
    /// Replica → relay: the page ending at `upto` is durably applied (flow control).
    PageAck {
        /// Company of the page.
        company: Company,
        /// `upto` of the page applied.
        upto: Seq,
    },
    /// Relay → replica: the replica has everything up to `upto`; live pushes follow.
    CaughtUp {
        /// Company now live.
        company: Company,
        /// The feed head when catch-up finished.
        upto: Seq,
    },
    /// Replica → relay: local changes from the outbox.
    Upload(Upload),
    /// Relay → replica: everything in the upload ending at `upto` is durably stored.
    Ack {
        /// The outbox position acknowledged.
        upto: u64,
    },
    /// Replica → relay: repair, step 1: digests of 256 buckets of (document, heads).
    Reconcile {
        /// Company being repaired.
        company: Company,
        /// blake3 digest of each bucket (bucket = first byte of the document id).
        buckets: Vec<[u8; 32]>,
    },
    /// Relay → replica: repair, step 2: the relay's per-document digests in differing buckets.
    ReconcileDiff {
        /// Company being repaired.
        company: Company,
        /// The feed head the digests were taken at; the replica resumes the feed from here.
        head: Seq,
        /// Buckets whose digests differ.
        buckets: Vec<u8>,
        /// Every document the relay holds in those buckets, with its heads digest.
        docs: Vec<(DocId, [u8; 32])>,
    },
    /// Either way: one Automerge sync message for one document (repair, step 3).
    DocSync {
        /// Company of the document.
        company: Company,
        /// The document.
        doc: DocId,
        /// The encoded `automerge::sync::Message`, or `None` when this side has nothing to say.
        /// From the relay, `None` ends the document's repair on both sides.
        #[serde(with = "serde_bytes")]
        message: Option<Vec<u8>>,
    },
    /// Relay → replica: documents of the upload ending at `upto` that were not stored, for a
    /// reason that will not change by sending them again; sent before that upload's `Ack`,
    /// which covers the rest of it.
    Refused(Refusals),
}

/// Documents of one upload the relay refused, each for its own reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusals {
    /// The outbox position the upload ended at.
    pub upto: u64,
    /// The refused documents.
    pub docs: Vec<RefusedDoc>,
}

/// One document whose changes in an upload were not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedDoc {
    /// The document.
    pub doc: DocId,
    /// Why, for machines.
    pub code: ErrorCode,
    /// Why, for people.
    pub message: String,
}

/// Opens a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Which replica speaks.
    pub replica: ReplicaId,
    /// The signed token the relay issued for this replica.
    pub token: String,
}

/// Accepts a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The relay database's identity; checkpoints from another epoch are void.
    pub epoch: RelayEpoch,
    /// The companies this session may see, and whether it may write each.
    pub grants: Vec<Grant>,
}

/// One company granted to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The company.
    pub company: Company,
    /// May upload changes.
    pub write: bool,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Token missing, forged, expired or revoked.
    Unauthorized,
    /// The company or document is not granted to this token, or not for writing.
    Forbidden,
    /// The peer sent something the protocol does not allow here.
    Protocol,
    /// A change failed validation.
    BadChange,
    /// The relay could not store or read.
    Internal,
    /// A limit was exceeded.
    Limit,
}

/// An error report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The sender closes the session after this frame.
    pub fatal: bool,
}

/// A run of consecutive feed entries of one company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPage {
    /// The company.
    pub company: Company,
    /// The entries follow this position; a replica whose checkpoint differs must not apply them.
    pub from: Seq,
    /// The position of the last entry.
    pub upto: Seq,
    /// The entries, in feed order.
    pub entries: Vec<FeedEntry>,
}

/// One stored chunk of changes to one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    /// Position in the company feed.
    pub seq: Seq,
    /// The document changed.
    pub doc: DocId,
    /// Automerge bytes for `load_incremental`: concatenated changes, or one saved document
    /// once the relay compacted the document's entries (empty when the receiver wrote them).
    #[serde(with = "serde_bytes")]
    pub changes: Vec<u8>,
}

/// A batch of outbox entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// The outbox position of the last entry in the batch.
    pub upto: u64,
    /// The changes, grouped by document.
    pub docs: Vec<DocChanges>,
}

/// Changes to one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocChanges {
    /// The document.
    pub doc: DocId,
    /// Its company.
    pub company: Company,
    /// Raw Automerge changes, one per element, in causal order.
    pub changes: Vec<ByteBuf>,
}

/// Owned bytes that serialise compactly.
pub type ByteBuf = serde_bytes::ByteBuf;

/// Postcard's variant index of `Frame::Upload` (the eighth variant), checked by a unit test.
const UPLOAD_TAG: u8 = 7;

impl Frame {
    /// Encodes the frame with its header.
    pub fn encode(&self) -> Vec<u8> {
        // (postcard writes the variant index as the first byte after the header; see UPLOAD_TAG)
        let out = vec![MAGIC, PROTOCOL_VERSION];
        // postcard cannot fail writing to a Vec for these types (no maps with non-string keys,
        // no unsupported serde features), so an error here is a programming error.
        match postcard::to_extend(self, out) {
            Ok(v) => v,
            Err(e) => unreachable!("invariant: frames always serialise: {e}"),
        }
    }

    /// True if `bytes` carry an `Upload` (the frame that costs the relay a durable write),
    /// read from the header alone so a driver can pace uploads before decoding them.
    pub fn is_upload(bytes: &[u8]) -> bool {
        bytes.len() > 2
            && bytes[0] == MAGIC
            && bytes[1] == PROTOCOL_VERSION
            && bytes[2] == UPLOAD_TAG
    }

    /// The [`Frame::kind`] that `bytes` claim to carry, read from the header alone so a driver
    /// can pace every kind of frame before decoding it; None for what is not a frame.
    pub fn kind_of(bytes: &[u8]) -> Option<&'static str> {
        const KINDS: [&str; 13] = [
            "hello",
            "welcome",
            "error",
            "subscribe",
            "feed",
            "page_ack",
            "caught_up",
            "upload",
            "ack",
            "reconcile",
            "reconcile_diff",
            "doc_sync",
            "refused",
        ];
        match bytes {
            [MAGIC, PROTOCOL_VERSION, tag, ..] => KINDS.get(usize::from(*tag)).copied(),
            _ => None,
        }
    }

    /// Decodes one frame, refusing anything larger than `max_len`.
    pub fn decode(bytes: &[u8], max_len: usize) -> Result<Frame, FrameError> {
        if bytes.len() > max_len {
            return Err(FrameError::TooLarge {
                size: bytes.len(),
                limit: max_len,
            });
        }
        match bytes {
            [MAGIC, PROTOCOL_VERSION, body @ ..] => {
                let (frame, rest) = postcard::take_from_bytes::<Frame>(body)
                    .map_err(|e| FrameError::Malformed(e.to_string()))?;
                if rest.is_empty() {
                    Ok(frame)
                } else {
                    Err(FrameError::Malformed(format!(
                        "{} trailing bytes",
                        rest.len()
                    )))
                }
            }
            [MAGIC, v, ..] => Err(FrameError::UnsupportedVersion(*v)),
            _ => Err(FrameError::BadMagic),
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "hello",
            Frame::Welcome(_) => "welcome",
            Frame::Error(_) => "error",
            Frame::Subscribe { .. } => "subscribe",
            Frame::Feed(_) => "feed",
            Frame::PageAck { .. } => "page_ack",
            Frame::CaughtUp { .. } => "caught_up",
            Frame::Upload(_) => "upload",
            Frame::Ack { .. } => "ack",
            Frame::Reconcile { .. } => "reconcile",
            Frame::ReconcileDiff { .. } => "reconcile_diff",
            Frame::DocSync { .. } => "doc_sync",
            Frame::Refused(_) => "refused",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company() -> Company {
        Company::new("c1").expect("valid")
    }

    #[test]
    fn uploads_are_recognised_from_their_header_alone() {
        let upload = Frame::Upload(Upload {
            upto: 1,
            docs: Vec::new(),
        })
        .encode();
        assert!(Frame::is_upload(&upload));
        let others = [
            Frame::Ack { upto: 1 }.encode(),
            Frame::Subscribe {
                company: company(),
                after: 7,
            }
            .encode(),
        ];
        assert!(others.iter().all(|f| !Frame::is_upload(f)));
        assert!(!Frame::is_upload(&[MAGIC, PROTOCOL_VERSION]));
    }

    #[test]
    fn a_frame_kind_is_read_from_its_header() {
        let frames = [
            Frame::Ack { upto: 1 },
            Frame::Subscribe {
                company: company(),
                after: 0,
            },
            Frame::Reconcile {
                company: company(),
                buckets: Vec::new(),
            },
            Frame::DocSync {
                company: company(),
                doc: DocId([1; 16]),
                message: None,
            },
            Frame::Refused(Refusals {
                upto: 1,
                docs: Vec::new(),
            }),
        ];
        for f in frames {
            assert_eq!(Frame::kind_of(&f.encode()), Some(f.kind()));
        }
        assert_eq!(Frame::kind_of(&[0, 1, 2]), None);
    }

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            Frame::Hello(Hello {
                replica: ReplicaId([1; 16]),
                token: "ft1.x.y".into(),
            }),
            Frame::Feed(FeedPage {
                company: company(),
                from: 3,
                upto: 4,
                entries: vec![FeedEntry {
                    seq: 4,
                    doc: DocId([2; 16]),
                    changes: vec![1, 2, 3],
                }],
            }),
            Frame::DocSync {
                company: company(),
                doc: DocId([9; 16]),
                message: None,
            },
        ];
        for f in frames {
            let bytes = f.encode();
            assert_eq!(Frame::decode(&bytes, DEFAULT_MAX_FRAME), Ok(f));
        }
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        let good = Frame::Ack { upto: 7 }.encode();
        assert!(matches!(
            Frame::decode(&good, 2),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(Frame::decode(&[0, 1, 2], 100), Err(FrameError::BadMagic));
        assert_eq!(
            Frame::decode(&[MAGIC, 99, 0], 100),
            Err(FrameError::UnsupportedVersion(99))
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            Frame::decode(&trailing, 100),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            Frame::decode(&good[..good.len() - 1], 100),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn idle_frames_are_small() {
        let ack = Frame::CaughtUp {
            company: company(),
            upto: 1_000_000,
        };
        assert!(ack.encode().len() < 16);
    }
}
