//! Hostile input never panics either state machine, and never stores anything.

mod common;

use common::{SECRET, write_token};
use ficha_core::frame::{DEFAULT_MAX_FRAME, Frame, Hello};
use ficha_core::mem::{MemRelayStore, MemReplicaStore};
use ficha_core::relay::{Output, Relay, RelayConfig};
use ficha_core::replica::{ReplicaConfig, ReplicaSession};
use ficha_core::{RelayEpoch, ReplicaId};
use proptest::prelude::*;

fn welcomed_relay() -> Relay<MemRelayStore> {
    let mut relay = Relay::new(
        MemRelayStore::new(RelayEpoch([1; 16])),
        RelayConfig::new(SECRET),
    );
    relay.connect(1);
    let hello = Frame::Hello(Hello {
        replica: ReplicaId([1; 16]),
        token: write_token("r"),
    })
    .encode();
    let out = relay.receive(1, &hello, 10);
    assert!(matches!(out.as_slice(), [Output::Send(1, _)]));
    relay
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_relay(bytes in prop::collection::vec(any::<u8>(), 0..2048), header in any::<bool>()) {
        let mut relay = welcomed_relay();
        let mut input = if header { vec![0xF1, 1] } else { Vec::new() };
        input.extend(bytes);
        let _ = relay.receive(1, &input, 10);
        prop_assert!(relay.store().doc_ids().is_empty());
    }

    #[test]
    fn arbitrary_bytes_before_hello_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut relay = Relay::new(MemRelayStore::new(RelayEpoch([1; 16])), RelayConfig::new(SECRET));
        relay.connect(7);
        let out = relay.receive(7, &bytes, 10);
        prop_assert!(out.iter().any(|o| matches!(o, Output::Close(7))));
        prop_assert_eq!(relay.session_count(), 0);
    }

    #[test]
    fn arbitrary_frames_never_panic_the_replica(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut store = MemReplicaStore::default();
        let mut session = ReplicaSession::new(ReplicaConfig::new(ReplicaId([1; 16]), write_token("r")));
        let _ = session.start();
        let mut input = vec![0xF1, 1];
        input.extend(bytes);
        if let Ok(frame) = Frame::decode(&input, DEFAULT_MAX_FRAME) {
            let _ = session.receive(&mut store, frame);
        }
        prop_assert!(store.doc_ids().is_empty());
    }
}

#[test]
fn a_replica_name_holds_a_bounded_number_of_sessions() {
    let mut relay = Relay::new(
        MemRelayStore::new(RelayEpoch([1; 16])),
        RelayConfig::new(SECRET),
    );
    let hello = Frame::Hello(Hello {
        replica: ReplicaId([1; 16]),
        token: write_token("r"),
    })
    .encode();
    for conn in 0..6 {
        relay.connect(conn);
        relay.receive(conn, &hello, 10);
    }
    assert_eq!(relay.session_count(), 4);
    let out = relay.revoked("r");
    assert_eq!(
        out.iter().filter(|o| matches!(o, Output::Close(_))).count(),
        4
    );
    assert_eq!(relay.session_count(), 0);
}
