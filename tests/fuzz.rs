//! Fuzz entry points: each takes arbitrary bytes and must neither panic nor store what it should
//! refuse. The coverage-guided cargo-fuzz targets in `fuzz/` call them (docs/RELIABILITY.md);
//! the stable smoke test `tests/tests/fuzz_smoke.rs` runs them in CI over seeded mutations of
//! valid inputs, and replays every file under `fuzz/regressions/<target>/`.

use std::cell::RefCell;
use std::sync::Arc;

use ficha_core::frame::{ByteBuf, DEFAULT_MAX_FRAME, DocChanges, Frame, Hello, Upload};
use ficha_core::mem::MemRelayStore;
use ficha_core::relay::{Relay, RelayConfig};
use ficha_core::token::{Claims, sign};
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId};

const SECRET: [u8; 32] = [9; 32];

fn token(companies: &[&str]) -> String {
    sign(
        &SECRET,
        &Claims {
            replica: "fuzz".into(),
            companies: companies
                .iter()
                .map(|c| Company::new(c).expect("valid company"))
                .collect(),
            write: true,
            issued_at: 0,
            expires_at: u64::MAX,
            code: String::new(),
        },
    )
}

/// Frame decoding: whatever decodes re-encodes to bytes that decode to the same frame.
pub fn frame_decode(data: &[u8]) {
    if let Ok(frame) = Frame::decode(data, DEFAULT_MAX_FRAME) {
        let again =
            Frame::decode(&frame.encode(), DEFAULT_MAX_FRAME).expect("an encoded frame decodes");
        assert_eq!(again, frame, "decode ∘ encode is the identity");
    }
}

/// Change ingestion on the relay: `data` arrives both as a whole frame and as the bytes of one
/// uploaded change. The relay stores only changes that parse, under their own hash.
pub fn relay_ingest(data: &[u8]) {
    let mut relay = Relay::new(
        MemRelayStore::new(RelayEpoch([1; 16])),
        RelayConfig::new(SECRET),
    );
    relay.connect(1);
    let hello = Frame::Hello(Hello {
        replica: ReplicaId([1; 16]),
        token: token(&["acme"]),
    });
    let _ = relay.receive(1, &hello.encode(), 10);
    let _ = relay.receive(1, data, 10);
    let doc = DocId([7; 16]);
    let upload = Frame::Upload(Upload {
        upto: 1,
        docs: vec![DocChanges {
            doc,
            company: Company::new("acme").expect("valid company"),
            changes: vec![ByteBuf::from(data.to_vec())],
        }],
    });
    let _ = relay.receive(1, &upload.encode(), 10);
    for stored in relay.store().hashes(&doc) {
        let ok = automerge::Change::try_from(data)
            .map(|c| c.hash() == stored)
            .unwrap_or(false);
        assert!(
            ok,
            "the relay stored {stored} from bytes that are not that change"
        );
    }
}

thread_local! {
    static REPLICA: RefCell<Option<(tempfile::TempDir, Arc<ficha_app::app::Replica>)>> =
        const { RefCell::new(None) };
}

/// A throwaway replica for the CSV and API targets (one per thread, reused across inputs).
fn with_replica<R>(f: impl FnOnce(&Arc<ficha_app::app::Replica>) -> R) -> R {
    REPLICA.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (_, replica) = slot.get_or_insert_with(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            ficha_app::app::Replica::init(
                dir.path(),
                "fuzz",
                "ws://127.0.0.1:1/sync",
                &token(&["acme"]),
            )
            .expect("init");
            let replica = ficha_app::app::Replica::open(dir.path()).expect("open");
            (dir, Arc::new(replica))
        });
        f(replica)
    })
}

/// CSV import: any bytes give a report (bad rows listed by line) or a clear input error; a
/// storage error would be a bug.
pub fn csv_import(data: &[u8]) {
    with_replica(|replica| {
        for dry_run in [true, false] {
            let opts = ficha_app::import::Options {
                company: Some("acme".into()),
                mapping: Default::default(),
                dry_run,
                stop_on_error: false,
            };
            match ficha_app::import::import(replica, data, &opts, &mut |_| {}) {
                Ok(report) => assert!(
                    report.errors.len() <= report.rows,
                    "more row errors than rows"
                ),
                Err(e) => assert!(e.is_row_error(), "not an input error: {e}"),
            }
        }
    });
}

/// The local HTTP API's JSON bodies: any body on any write endpoint is answered, never with a
/// server error.
pub fn api_body(data: &[u8]) {
    use tower::ServiceExt;
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
    }
    let paths = [
        "/api/clients",
        "/api/clients/bulk",
        "/api/duplicates/merge",
        "/api/duplicates/dismiss",
        "/api/trash/purge",
        "/api/clients/00000000-0000-0000-0000-000000000001/fields",
        "/api/clients/00000000-0000-0000-0000-000000000001/notes",
        "/api/clients/00000000-0000-0000-0000-000000000001/items/allergies",
        "/api/records",
        "/api/employees",
        "/api/session",
    ];
    with_replica(|replica| {
        RT.with(|rt| {
            for path in paths {
                let state = ficha_app::http::ApiState {
                    replica: replica.clone(),
                    sync: Arc::new(ficha_app::sync::SyncStatus::default()),
                    listen: None,
                    auth: Arc::new(ficha_app::http::Auth::new("fuzz-key".into())),
                    time_zone: None,
                };
                let request = axum::http::Request::post(path)
                    .header("host", "127.0.0.1")
                    .header("authorization", "Bearer fuzz-key")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(data.to_vec()))
                    .expect("request");
                let response = rt
                    .block_on(ficha_app::http::router(state).oneshot(request))
                    .expect("infallible");
                assert!(
                    !response.status().is_server_error(),
                    "{path} answered {} to {:?}",
                    response.status(),
                    String::from_utf8_lossy(&data[..data.len().min(200)])
                );
            }
        })
    });
}
