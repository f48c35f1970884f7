//! automerge-repo's network messages, as its WebSocket adapter sends them: one CBOR map per
//! binary frame, keyed by `type`.
//!
//! Decoding is lenient where stock JavaScript clients are loose (cbor-x writes maps with
//! non-minimal lengths, tags byte arrays as typed arrays, writes `undefined` for absent values
//! and floats for counts and timestamps); unknown keys are skipped and unknown message types
//! decode as [`RepoMessage::Other`], so a newer client never breaks a session. Encoding is
//! plain, definite-length CBOR.

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};
use thiserror::Error;

/// The protocol version spoken: the only one automerge-repo 2.x defines.
pub const PROTOCOL_VERSION: &str = "1";

/// A peer's `peerMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    /// The peer's storage id, if it keeps documents.
    pub storage_id: Option<String>,
    /// True when the peer will not come back with the same storage.
    pub is_ephemeral: bool,
}

/// One automerge-repo message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoMessage {
    /// A client's first message.
    Join {
        /// Its peer id.
        sender: String,
        /// The protocol versions it speaks.
        versions: Vec<String>,
        /// Its metadata.
        metadata: PeerMetadata,
    },
    /// The answer to a join.
    Peer {
        /// The answering peer.
        sender: String,
        /// The peer that joined.
        target: String,
        /// The version chosen.
        version: String,
        /// The answering peer's metadata.
        metadata: PeerMetadata,
    },
    /// A peer about to disconnect.
    Leave {
        /// Who leaves.
        sender: String,
    },
    /// The first sync message about a document, asking for it.
    Request(DocMessage),
    /// Any later sync message about a document.
    Sync(DocMessage),
    /// The sender does not have the document (or may not show it).
    DocUnavailable {
        /// Who says so.
        sender: String,
        /// To whom.
        target: String,
        /// The automerge-repo document id.
        document: String,
    },
    /// A message for the peers that have a document open, never stored.
    Ephemeral {
        /// Its sync part.
        doc: DocMessage,
        /// The sender's counter.
        count: u64,
        /// The sender's session.
        session: String,
    },
    /// A protocol error; the sender closes after it.
    Error {
        /// What went wrong.
        message: String,
    },
    /// A message this side does not act on (`remote-heads-changed`, `remote-subscription-change`
    /// or a type from a newer version).
    Other {
        /// Its `type`.
        kind: String,
    },
}

/// The part of `request`, `sync` and `ephemeral` messages about one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocMessage {
    /// Who sends.
    pub sender: String,
    /// To whom.
    pub target: String,
    /// The automerge-repo document id.
    pub document: String,
    /// An Automerge sync message (or the ephemeral payload).
    pub data: Vec<u8>,
}

/// A message that cannot be read.
#[derive(Debug, Error)]
pub enum RepoWireError {
    /// Not CBOR, or CBOR of an unexpected shape.
    #[error("not an automerge-repo message: {0}")]
    Cbor(#[from] minicbor::decode::Error),
    /// A CBOR value other than a map.
    #[error("an automerge-repo message is a CBOR map")]
    NotAMap,
    /// A map without `type`.
    #[error("the message has no type")]
    NoType,
    /// A field its type needs is missing.
    #[error("a {kind} message needs {field}")]
    Missing {
        /// The message type.
        kind: &'static str,
        /// The missing field.
        field: &'static str,
    },
}

/// The fields of a message as read, before its type is known.
#[derive(Default)]
struct Fields {
    kind: Option<String>,
    sender: Option<String>,
    target: Option<String>,
    document: Option<String>,
    data: Option<Vec<u8>>,
    message: Option<String>,
    session: Option<String>,
    version: Option<String>,
    versions: Option<Vec<String>>,
    count: Option<u64>,
    metadata: Option<PeerMetadata>,
}

impl RepoMessage {
    /// Reads one message.
    pub fn decode(bytes: &[u8]) -> Result<Self, RepoWireError> {
        let mut d = Decoder::new(bytes);
        skip_tags(&mut d)?;
        if !matches!(d.datatype()?, Type::Map | Type::MapIndef) {
            return Err(RepoWireError::NotAMap);
        }
        let mut f = Fields::default();
        each_entry(&mut d, |d, key| {
            match key {
                "type" => f.kind = opt_str(d)?,
                "senderId" => f.sender = opt_str(d)?,
                "targetId" => f.target = opt_str(d)?,
                "documentId" => f.document = opt_str(d)?,
                "message" => f.message = opt_str(d)?,
                "sessionId" => f.session = opt_str(d)?,
                "selectedProtocolVersion" => f.version = opt_str(d)?,
                "supportedProtocolVersions" => f.versions = opt_strings(d)?,
                "data" => f.data = opt_bytes(d)?,
                "count" => f.count = opt_number(d)?,
                "peerMetadata" | "metadata" => f.metadata = opt_metadata(d)?,
                _ => d.skip()?,
            }
            Ok(())
        })?;
        f.into_message()
    }

    /// Writes one message.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = self.write(&mut e);
        e.into_writer()
    }

    fn write(
        &self,
        e: &mut Encoder<Vec<u8>>,
    ) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
        match self {
            RepoMessage::Join {
                sender,
                versions,
                metadata,
            } => {
                e.map(4)?.str("type")?.str("join")?;
                e.str("senderId")?.str(sender)?;
                e.str("supportedProtocolVersions")?
                    .array(versions.len() as u64)?;
                for v in versions {
                    e.str(v)?;
                }
                e.str("peerMetadata")?;
                write_metadata(e, metadata)?;
            }
            RepoMessage::Peer {
                sender,
                target,
                version,
                metadata,
            } => {
                e.map(5)?.str("type")?.str("peer")?;
                e.str("senderId")?.str(sender)?;
                e.str("targetId")?.str(target)?;
                e.str("selectedProtocolVersion")?.str(version)?;
                e.str("peerMetadata")?;
                write_metadata(e, metadata)?;
            }
            RepoMessage::Leave { sender } => {
                e.map(2)?.str("type")?.str("leave")?;
                e.str("senderId")?.str(sender)?;
            }
            RepoMessage::Request(m) | RepoMessage::Sync(m) => {
                let kind = if matches!(self, RepoMessage::Request(_)) {
                    "request"
                } else {
                    "sync"
                };
                e.map(5)?.str("type")?.str(kind)?;
                write_doc(e, m)?;
            }
            RepoMessage::DocUnavailable {
                sender,
                target,
                document,
            } => {
                e.map(4)?.str("type")?.str("doc-unavailable")?;
                e.str("senderId")?.str(sender)?;
                e.str("targetId")?.str(target)?;
                e.str("documentId")?.str(document)?;
            }
            RepoMessage::Ephemeral {
                doc,
                count,
                session,
            } => {
                e.map(7)?.str("type")?.str("ephemeral")?;
                write_doc(e, doc)?;
                e.str("count")?.u64(*count)?;
                e.str("sessionId")?.str(session)?;
            }
            RepoMessage::Error { message } => {
                e.map(2)?.str("type")?.str("error")?;
                e.str("message")?.str(message)?;
            }
            RepoMessage::Other { kind } => {
                e.map(1)?.str("type")?.str(kind)?;
            }
        }
        Ok(())
    }
}

impl Fields {
    fn into_message(self) -> Result<RepoMessage, RepoWireError> {
        let Fields {
            kind,
            sender,
            target,
            document,
            data,
            message,
            session,
            version,
            versions,
            count,
            metadata,
        } = self;
        let kind = kind.ok_or(RepoWireError::NoType)?;
        let need = |v: Option<String>, kind: &'static str, field: &'static str| {
            v.ok_or(RepoWireError::Missing { kind, field })
        };
        // Only one arm runs, so each takes the fields it needs.
        let doc = |kind: &'static str, sender, target, document, data: Option<Vec<u8>>| {
            Ok::<_, RepoWireError>(DocMessage {
                sender: need(sender, kind, "senderId")?,
                target: need(target, kind, "targetId")?,
                document: need(document, kind, "documentId")?,
                data: data.ok_or(RepoWireError::Missing {
                    kind,
                    field: "data",
                })?,
            })
        };
        Ok(match kind.as_str() {
            "join" => RepoMessage::Join {
                sender: need(sender, "join", "senderId")?,
                versions: versions.unwrap_or_default(),
                metadata: metadata.unwrap_or_default(),
            },
            "peer" => RepoMessage::Peer {
                sender: need(sender, "peer", "senderId")?,
                target: need(target, "peer", "targetId")?,
                version: version.unwrap_or_else(|| PROTOCOL_VERSION.into()),
                metadata: metadata.unwrap_or_default(),
            },
            "leave" => RepoMessage::Leave {
                sender: sender.unwrap_or_default(),
            },
            "request" => RepoMessage::Request(doc("request", sender, target, document, data)?),
            "sync" => RepoMessage::Sync(doc("sync", sender, target, document, data)?),
            "doc-unavailable" => RepoMessage::DocUnavailable {
                sender: need(sender, "doc-unavailable", "senderId")?,
                target: need(target, "doc-unavailable", "targetId")?,
                document: need(document, "doc-unavailable", "documentId")?,
            },
            "ephemeral" => RepoMessage::Ephemeral {
                doc: doc("ephemeral", sender, target, document, data)?,
                count: count.unwrap_or(0),
                session: session.unwrap_or_default(),
            },
            "error" => RepoMessage::Error {
                message: message.unwrap_or_default(),
            },
            _ => RepoMessage::Other { kind },
        })
    }
}

fn write_doc(
    e: &mut Encoder<Vec<u8>>,
    m: &DocMessage,
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    e.str("senderId")?.str(&m.sender)?;
    e.str("targetId")?.str(&m.target)?;
    e.str("documentId")?.str(&m.document)?;
    e.str("data")?.bytes(&m.data)?;
    Ok(())
}

fn write_metadata(
    e: &mut Encoder<Vec<u8>>,
    m: &PeerMetadata,
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    match &m.storage_id {
        Some(id) => {
            e.map(2)?.str("storageId")?.str(id)?;
        }
        None => {
            e.map(1)?;
        }
    }
    e.str("isEphemeral")?.bool(m.is_ephemeral)?;
    Ok(())
}

/// Skips tags (cbor-x tags a Uint8Array as a typed array).
fn skip_tags(d: &mut Decoder) -> Result<(), minicbor::decode::Error> {
    while d.datatype()? == Type::Tag {
        d.tag()?;
    }
    Ok(())
}

/// True (and consumed) when the next value is `undefined` or `null`.
fn absent(d: &mut Decoder) -> Result<bool, minicbor::decode::Error> {
    skip_tags(d)?;
    match d.datatype()? {
        Type::Undefined => d.undefined().map(|()| true),
        Type::Null => d.null().map(|()| true),
        _ => Ok(false),
    }
}

/// Whether a map or array of `len` items (None: indefinite) has another after `seen`; the break
/// that ends an indefinite one is consumed.
fn another(
    d: &mut Decoder,
    len: Option<u64>,
    seen: &mut u64,
) -> Result<bool, minicbor::decode::Error> {
    let more = match len {
        Some(n) => *seen < n,
        None if d.datatype()? == Type::Break => {
            d.skip()?;
            false
        }
        None => true,
    };
    *seen += 1;
    Ok(more)
}

/// Calls `entry` with each key of a map (definite or not) positioned at its value; keys that
/// are not strings are skipped with their values.
fn each_entry<'b>(
    d: &mut Decoder<'b>,
    mut entry: impl FnMut(&mut Decoder<'b>, &str) -> Result<(), minicbor::decode::Error>,
) -> Result<(), minicbor::decode::Error> {
    let len = d.map()?;
    let mut seen = 0u64;
    while another(d, len, &mut seen)? {
        skip_tags(d)?;
        if d.datatype()? == Type::String {
            let key = d.str()?;
            entry(d, key)?;
        } else {
            d.skip()?;
            d.skip()?;
        }
    }
    Ok(())
}

fn opt_str(d: &mut Decoder) -> Result<Option<String>, minicbor::decode::Error> {
    if absent(d)? {
        return Ok(None);
    }
    match d.datatype()? {
        Type::String => Ok(Some(d.str()?.to_string())),
        Type::StringIndef => {
            let mut s = String::new();
            for part in d.str_iter()? {
                s.push_str(part?);
            }
            Ok(Some(s))
        }
        // A document id sent as its raw bytes: written back the way ids travel as text.
        Type::Bytes => Ok(Some(bs58::encode(d.bytes()?).with_check().into_string())),
        _ => d.skip().map(|()| None),
    }
}

fn opt_bytes(d: &mut Decoder) -> Result<Option<Vec<u8>>, minicbor::decode::Error> {
    if absent(d)? {
        return Ok(None);
    }
    match d.datatype()? {
        Type::Bytes => Ok(Some(d.bytes()?.to_vec())),
        Type::BytesIndef => {
            let mut out = Vec::new();
            for part in d.bytes_iter()? {
                out.extend_from_slice(part?);
            }
            Ok(Some(out))
        }
        _ => d.skip().map(|()| None),
    }
}

fn opt_number(d: &mut Decoder) -> Result<Option<u64>, minicbor::decode::Error> {
    if absent(d)? {
        return Ok(None);
    }
    Ok(Some(match d.datatype()? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => d.u64()?,
        // JavaScript numbers: a float count is its integer part.
        Type::F32 => d.f32()? as u64,
        Type::F64 => d.f64()? as u64,
        _ => {
            d.skip()?;
            return Ok(None);
        }
    }))
}

fn opt_strings(d: &mut Decoder) -> Result<Option<Vec<String>>, minicbor::decode::Error> {
    if absent(d)? {
        return Ok(None);
    }
    if !matches!(d.datatype()?, Type::Array | Type::ArrayIndef) {
        d.skip()?;
        return Ok(None);
    }
    let len = d.array()?;
    let mut out = Vec::new();
    let mut seen = 0u64;
    while another(d, len, &mut seen)? {
        if let Some(s) = opt_str(d)? {
            out.push(s);
        }
    }
    Ok(Some(out))
}

fn opt_metadata(d: &mut Decoder) -> Result<Option<PeerMetadata>, minicbor::decode::Error> {
    if absent(d)? {
        return Ok(None);
    }
    if !matches!(d.datatype()?, Type::Map | Type::MapIndef) {
        d.skip()?;
        return Ok(None);
    }
    let mut m = PeerMetadata::default();
    each_entry(d, |d, key| {
        match key {
            "storageId" => m.storage_id = opt_str(d)?,
            "isEphemeral" if !absent(d)? => {
                if d.datatype()? == Type::Bool {
                    m.is_ephemeral = d.bool()?;
                } else {
                    d.skip()?;
                }
            }
            "isEphemeral" => {}
            _ => d.skip()?,
        }
        Ok(())
    })?;
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    const DOC: &str = "2Ynj7oxxh9Dz3je7bXdhqU4SKJib";

    // The bytes below are what npm's cbor-x 1.x (automerge-repo's encoder) writes for these
    // messages: maps with two-byte lengths, Uint8Array tagged 64, undefined, float numbers.
    #[test]
    fn reads_what_stock_javascript_clients_write() {
        let join = hex(
            "b900046474797065646a6f696e6873656e646572496468706565722d6162636c706565724d65746164617461b900026973746f726167654964f76b6973457068656d6572616cf57819737570706f7274656450726f746f636f6c56657273696f6e73816131",
        );
        assert_eq!(
            RepoMessage::decode(&join).expect("join"),
            RepoMessage::Join {
                sender: "peer-abc".into(),
                versions: vec!["1".into()],
                metadata: PeerMetadata {
                    storage_id: None,
                    is_ephemeral: true
                },
            }
        );
        let request = hex(
            "b90005647479706567726571756573746873656e646572496468706565722d6162636874617267657449646572656c61796a646f63756d656e744964781c32596e6a376f78786839447a336a653762586468715534534b4a69626464617461d8404442010203",
        );
        assert_eq!(
            RepoMessage::decode(&request).expect("request"),
            RepoMessage::Request(DocMessage {
                sender: "peer-abc".into(),
                target: "relay".into(),
                document: DOC.into(),
                data: vec![0x42, 1, 2, 3],
            })
        );
        let ephemeral = hex(
            "b90007647479706569657068656d6572616c6873656e646572496468706565722d6162636874617267657449646572656c617965636f756e74fb3ff80000000000006973657373696f6e49646273316a646f63756d656e744964781c32596e6a376f78786839447a336a653762586468715534534b4a69626464617461d8404109",
        );
        let RepoMessage::Ephemeral {
            doc,
            count,
            session,
        } = RepoMessage::decode(&ephemeral).expect("ephemeral")
        else {
            panic!("not ephemeral");
        };
        assert_eq!((doc.data, count, session.as_str()), (vec![9], 1, "s1"));
        let heads = hex(
            "b9000564747970657472656d6f74652d68656164732d6368616e6765646873656e6465724964616168746172676574496461626a646f63756d656e7449646178686e65774865616473b900016173b90002656865616473816261616974696d657374616d70fb4279392b7b555800",
        );
        assert_eq!(
            RepoMessage::decode(&heads).expect("remote-heads-changed"),
            RepoMessage::Other {
                kind: "remote-heads-changed".into()
            }
        );
    }

    #[test]
    fn every_message_reads_back_as_written() {
        let doc = DocMessage {
            sender: "relay".into(),
            target: "peer".into(),
            document: DOC.into(),
            data: vec![0x42, 0, 255],
        };
        let meta = PeerMetadata {
            storage_id: Some("relay-storage".into()),
            is_ephemeral: false,
        };
        for m in [
            RepoMessage::Join {
                sender: "p".into(),
                versions: vec!["1".into()],
                metadata: PeerMetadata::default(),
            },
            RepoMessage::Peer {
                sender: "relay".into(),
                target: "p".into(),
                version: PROTOCOL_VERSION.into(),
                metadata: meta,
            },
            RepoMessage::Leave { sender: "p".into() },
            RepoMessage::Request(doc.clone()),
            RepoMessage::Sync(doc.clone()),
            RepoMessage::DocUnavailable {
                sender: "relay".into(),
                target: "p".into(),
                document: DOC.into(),
            },
            RepoMessage::Ephemeral {
                doc,
                count: 7,
                session: "s".into(),
            },
            RepoMessage::Error {
                message: "bad token".into(),
            },
            RepoMessage::Other {
                kind: "remote-subscription-change".into(),
            },
        ] {
            assert_eq!(RepoMessage::decode(&m.encode()).expect("decodes"), m);
        }
    }

    proptest::proptest! {
        // Hostile peers: any bytes, and valid messages with one byte changed, decode or fail
        // with an error; none panics or loops.
        #[test]
        fn no_input_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            at in 0usize..200,
            to in proptest::num::u8::ANY,
        ) {
            let _ = RepoMessage::decode(&bytes);
            let mut valid = RepoMessage::Ephemeral {
                doc: DocMessage { sender: "p".into(), target: "r".into(), document: DOC.into(), data: vec![7; 9] },
                count: 3,
                session: "s".into(),
            }
            .encode();
            let i = at % valid.len();
            valid[i] = to;
            let _ = RepoMessage::decode(&valid);
        }
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        assert!(matches!(
            RepoMessage::decode(&[0x01]),
            Err(RepoWireError::NotAMap)
        ));
        // {"senderId": "p"}: no type.
        let mut e = Encoder::new(Vec::new());
        let _ = e
            .map(1)
            .and_then(|e| e.str("senderId"))
            .and_then(|e| e.str("p"));
        assert!(matches!(
            RepoMessage::decode(&e.into_writer()),
            Err(RepoWireError::NoType)
        ));
        // A sync without data.
        let mut e = Encoder::new(Vec::new());
        let _ = e
            .map(4)
            .and_then(|e| e.str("type")?.str("sync")?.str("senderId")?.str("p"))
            .and_then(|e| e.str("targetId")?.str("r")?.str("documentId")?.str(DOC));
        assert!(matches!(
            RepoMessage::decode(&e.into_writer()),
            Err(RepoWireError::Missing { field: "data", .. })
        ));
        // Truncated input, at every length.
        let whole = RepoMessage::Request(DocMessage {
            sender: "p".into(),
            target: "r".into(),
            document: DOC.into(),
            data: vec![1; 40],
        })
        .encode();
        for n in 0..whole.len() {
            assert!(RepoMessage::decode(&whole[..n]).is_err(), "{n} bytes");
        }
    }
}
