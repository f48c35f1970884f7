//! Identifiers shared by every layer: documents, replicas, companies, relay epochs and actors.

use std::fmt;
use std::str::FromStr;

use automerge::ActorId;
use serde::{Deserialize, Serialize};

use crate::error::IdError;

/// Position in a company's change feed on the relay; 0 means "before the first entry".
pub type Seq = u64;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// Wraps raw UUID bytes.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }
            /// The raw UUID bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
            /// The id as a `uuid::Uuid`.
            pub fn uuid(&self) -> uuid::Uuid {
                uuid::Uuid::from_bytes(self.0)
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(u: uuid::Uuid) -> Self {
                Self(*u.as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.uuid(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.uuid())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                uuid::Uuid::parse_str(s.trim())
                    .map(Self::from)
                    .map_err(|_| IdError::BadUuid(s.to_string()))
            }
        }
    };
}

uuid_id!(
    /// One Automerge document (one client file).
    DocId
);
impl DocId {
    /// Its automerge-repo document id: the 16 bytes, base58check encoded (as automerge-repo's
    /// `bs58check` does), so an automerge-repo app opens the same record by it.
    pub fn automerge_id(&self) -> String {
        bs58::encode(self.0).with_check().into_string()
    }

    /// Its `automerge:` URL, as automerge-repo apps share documents.
    pub fn automerge_url(&self) -> String {
        format!("automerge:{}", self.automerge_id())
    }

    /// Reads an automerge-repo document id, bare or as an `automerge:` URL (a `#heads` suffix
    /// is ignored).
    pub fn from_automerge(s: &str) -> Result<Self, IdError> {
        let bad = || IdError::BadAutomergeId(s.to_string());
        let id = s.trim().strip_prefix("automerge:").unwrap_or(s.trim());
        let id = id.split('#').next().unwrap_or(id);
        let bytes = bs58::decode(id)
            .with_check(None)
            .into_vec()
            .map_err(|_| bad())?;
        let bytes: [u8; 16] = bytes.try_into().map_err(|_| bad())?;
        Ok(Self(bytes))
    }
}

uuid_id!(
    /// One replica (a branch server or a laptop), chosen at `init`.
    ReplicaId
);
uuid_id!(
    /// The identity of one relay database; a new epoch means checkpoints are void.
    RelayEpoch
);

/// A company of the group: the unit of authorisation and of the change feed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Company(String);

impl Company {
    /// Longest company code accepted.
    pub const MAX_LEN: usize = 64;

    /// Validates a company code: 1 to 64 characters of letters, digits, `-`, `_` or `.`.
    pub fn new(code: &str) -> Result<Self, IdError> {
        let ok = !code.is_empty()
            && code.len() <= Self::MAX_LEN
            && code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(Self(code.to_string()))
        } else {
            Err(IdError::BadCompany(code.to_string()))
        }
    }

    /// The company code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Company {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Company::new(&s)
    }
}

impl From<Company> for String {
    fn from(c: Company) -> String {
        c.0
    }
}

impl fmt::Display for Company {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Company {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Company({})", self.0)
    }
}

impl FromStr for Company {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Company::new(s)
    }
}

/// The Automerge actor a replica writes with in one incarnation (one opening of its store).
///
/// The first 16 bytes are the replica id, so the relay can refuse changes forged under
/// another replica's name. The last 4 bytes are chosen at random each time the store opens:
/// a replica restored from an old backup must never reuse an (actor, seq) pair it already
/// sent, and a fresh incarnation makes that impossible without any coordination.
pub fn actor_for(replica: ReplicaId, incarnation: u32) -> ActorId {
    let mut bytes = [0u8; 20];
    bytes[..16].copy_from_slice(&replica.0);
    bytes[16..].copy_from_slice(&incarnation.to_be_bytes());
    ActorId::from(&bytes[..])
}

/// The actor of a document's genesis change: derived from the document id alone, so two
/// replicas that create the same derived document offline write byte-identical first changes
/// and Automerge sees one document (see `docs/PROTOCOL.md`, "Genesis changes"). Its last four
/// bytes are all ones, an incarnation [`actor_for`] gives with odds of one in four billion,
/// and its first sixteen are a hash, never a replica's id.
pub fn genesis_actor(doc: DocId) -> ActorId {
    let mut hasher = blake3::Hasher::new_derive_key("ficha 2026 genesis actor");
    hasher.update(&doc.0);
    let mut bytes = [0xffu8; 20];
    bytes[..16].copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    ActorId::from(&bytes[..])
}

/// The replica that wrote with `actor`, if the actor follows Ficha's layout.
pub fn replica_of_actor(actor: &ActorId) -> Option<ReplicaId> {
    let bytes = actor.to_bytes();
    if bytes.len() != 20 {
        return None;
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[..16]);
    Some(ReplicaId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_codes_are_validated() {
        assert!(Company::new("clinic-1").is_ok());
        assert!(Company::new("").is_err());
        assert!(Company::new("a b").is_err());
        assert!(Company::new(&"x".repeat(65)).is_err());
    }

    #[test]
    fn actor_names_its_replica() {
        let r = ReplicaId([7; 16]);
        let a = actor_for(r, 42);
        assert_eq!(replica_of_actor(&a), Some(r));
        assert_ne!(actor_for(r, 1), actor_for(r, 2));
    }

    #[test]
    fn automerge_ids_are_what_automerge_repo_makes() {
        // Vectors from npm's bs58check 4 (what automerge-repo encodes document ids with).
        let d: DocId = "6f1e7c0a-2b3d-4e5f-6071-8293a4b5c6d7"
            .parse()
            .expect("uuid");
        assert_eq!(d.automerge_url(), "automerge:2Ynj7oxxh9Dz3je7bXdhqU4SKJib");
        assert_eq!(DocId([0; 16]).automerge_id(), "11111111111111114Ki9Gx");
        assert_eq!(DocId::from_automerge(&d.automerge_url()), Ok(d));
        assert_eq!(
            DocId::from_automerge("2Ynj7oxxh9Dz3je7bXdhqU4SKJib#abc"),
            Ok(d)
        );
        // A changed character fails the checksum; a valid id of other than 16 bytes is refused.
        assert!(DocId::from_automerge("automerge:2Ynj7oxxh9Dz3je7bXdhqU4SKJic").is_err());
        let short = bs58::encode([1u8; 8]).with_check().into_string();
        assert!(DocId::from_automerge(&short).is_err());
        assert!(DocId::from_automerge("automerge:").is_err());
    }

    #[test]
    fn ids_round_trip_through_text() {
        let d = DocId([3; 16]);
        let s = d.to_string();
        assert_eq!(s.parse::<DocId>().ok(), Some(d));
        assert!("not-a-uuid".parse::<DocId>().is_err());
    }
}
