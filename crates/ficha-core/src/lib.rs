//! The sans-IO core of Ficha's sync protocol.
//!
//! Nothing here touches a socket, a disk, a clock or an OS random source: time comes in as an
//! argument, storage sits behind the [`replica::ReplicaStore`] and [`relay::RelayStore`]
//! traits, and frames go in and out as bytes. Drivers (tokio + WebSockets + redb) carry the
//! effects out; the deterministic simulation in `tests/` drives the same code in memory.
//!
//! A session: the replica says [`frame::Hello`] with its token; the relay answers
//! [`frame::Welcome`] with its epoch and the companies granted. Per company the replica then
//! either subscribes to the relay's change feed after its checkpoint (the common case: a
//! reconnect costs only what changed) or, when the relay's epoch changed, reconciles bucket
//! digests over (document, heads) and runs Automerge's sync protocol only on the documents
//! that differ. Local changes go up from a durable outbox and leave it only when the relay
//! acknowledges them as durably stored.

pub mod admit;
pub mod blob;
pub mod change;
pub mod digest;
pub mod error;
pub mod frame;
pub mod guard;
pub mod ids;
pub mod index;
pub mod mem;
pub mod relay;
pub mod replica;
pub mod repo_wire;
pub mod token;

pub use error::{ChangeError, FrameError, IdError, TokenError};
pub use frame::Frame;
pub use ids::{Company, DocId, RelayEpoch, ReplicaId, Seq};
