//! What the admin page shows: open sessions with their times, and a bounded log of refusals.

mod common;

use common::{SECRET, write_token};
use ficha_core::frame::{Frame, Hello};
use ficha_core::mem::MemRelayStore;
use ficha_core::relay::{REFUSALS_KEPT, Relay, RelayConfig};
use ficha_core::{RelayEpoch, ReplicaId};

fn relay() -> Relay<MemRelayStore> {
    Relay::new(
        MemRelayStore::new(RelayEpoch([1; 16])),
        RelayConfig::new(SECRET),
    )
}

fn hello(replica: u8, token: String) -> Vec<u8> {
    Frame::Hello(Hello {
        replica: ReplicaId([replica; 16]),
        token,
    })
    .encode()
}

#[test]
fn a_session_lists_its_replica_companies_and_times() {
    let mut r = relay();
    r.connect(1);
    r.receive(1, &hello(1, write_token("recepcion")), 100);
    let subscribe = Frame::Subscribe {
        company: common::acme(),
        after: 0,
    };
    r.receive(1, &subscribe.encode(), 130);
    let info = r.sessions_info();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].replica, "recepcion");
    assert_eq!(info[0].companies, vec!["acme".to_string()]);
    assert!(!info[0].read_only);
    assert_eq!((info[0].connected_at, info[0].last_seen), (100, 130));
    assert_eq!(info[0].cursors.get("acme"), Some(&0));
    r.disconnect(1);
    assert!(r.sessions_info().is_empty());
}

#[test]
fn refusals_are_kept_newest_first_with_their_reason_and_bounded() {
    let mut r = relay();
    r.connect(1);
    r.receive(1, &hello(1, "not a token".into()), 50);
    let first: Vec<_> = r.recent_refusals().cloned().collect();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].at, 50);
    assert_eq!(first[0].replica, None, "no hello was accepted");
    assert!(!first[0].reason.is_empty());
    // A session that breaks the protocol after its hello is named in the log.
    r.connect(2);
    r.receive(2, &hello(2, write_token("portatil")), 60);
    r.receive(2, &[0xF1, 1, 0xFF, 0xFF], 61);
    let newest = r.recent_refusals().next().cloned().expect("a refusal");
    assert_eq!(
        (newest.at, newest.replica.as_deref()),
        (61, Some("portatil"))
    );
    for conn in 10..(10 + REFUSALS_KEPT as u64 + 5) {
        r.connect(conn);
        r.receive(conn, b"garbage", 70);
    }
    assert_eq!(r.recent_refusals().count(), REFUSALS_KEPT);
    assert!(
        r.recent_refusals().all(|x| x.at == 70),
        "the oldest fell off first"
    );
}
