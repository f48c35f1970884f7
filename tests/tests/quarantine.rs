//! A replica never fails on what a relay sends: a document whose data does not apply is set
//! aside and reported, its checkpoint moves past it, every other document syncs, and
//! `ficha serve`'s sync goes on and says so.
//!
//! The real relay refuses such data (`relay/tests/hostile_uploads.rs`), so a small fake relay
//! in this test plays one that stored it anyway (older data, a bug, a compromise).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ExpandedChange, ROOT};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use ficha_core::frame::{FeedEntry, FeedPage, Frame, Grant, Welcome};
use ficha_core::ids::actor_for;
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId};
use ficha_e2e::{Replica, Served, eventually};
use serde_json::Value;

/// A client document made elsewhere, and a change to another document that Automerge parses
/// and then panics on (its sequence number skips ahead).
fn feed() -> (DocId, DocId, Vec<FeedEntry>) {
    let good = uuid::Uuid::new_v4();
    let mut client = AutoCommit::new().with_actor(actor_for(ReplicaId([3; 16]), 1));
    ficha_domain::new_client(&mut client, good, "acme", "Lucía", None, None, 0).expect("client");
    client.commit();
    let mut bad = AutoCommit::new().with_actor(actor_for(ReplicaId([4; 16]), 1));
    bad.put(ROOT, "n", 1).expect("put");
    bad.commit();
    let first = bad.get_last_local_change().expect("change");
    bad.put(ROOT, "n", 2).expect("put");
    bad.commit();
    let next = bad.get_last_local_change().expect("change");
    let mut json = serde_json::to_value(next.decode()).expect("json");
    json["seq"] = serde_json::json!(3);
    json.as_object_mut().map(|m| m.remove("hash"));
    let forged = Change::from(serde_json::from_value::<ExpandedChange>(json).expect("x"));
    let bad_id = DocId([0xBA; 16]);
    let mut bytes = first.raw_bytes().to_vec();
    bytes.extend_from_slice(forged.raw_bytes());
    let entries = vec![
        FeedEntry {
            seq: 1,
            doc: bad_id,
            changes: bytes,
        },
        FeedEntry {
            seq: 2,
            doc: DocId::from(good),
            changes: client.save(),
        },
    ];
    (bad_id, DocId::from(good), entries)
}

/// A relay that welcomes anyone and serves `entries` as company acme's feed; records the
/// checkpoint each subscription starts from.
async fn fake_relay(entries: Vec<FeedEntry>, seen: Arc<Mutex<Vec<u64>>>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acme = Company::new("acme")?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (entries, seen, acme) = (entries.clone(), seen.clone(), acme.clone());
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let send = |f: Frame| Message::Binary(f.encode().into());
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Binary(b) = msg else {
                        continue;
                    };
                    let Ok(frame) = Frame::decode(&b, usize::MAX) else {
                        return;
                    };
                    let reply = match frame {
                        Frame::Hello(_) => vec![Frame::Welcome(Welcome {
                            epoch: RelayEpoch([7; 16]),
                            grants: vec![Grant {
                                company: acme.clone(),
                                write: true,
                            }],
                        })],
                        Frame::Subscribe { after, .. } => {
                            seen.lock().expect("lock").push(after);
                            let head = entries.len() as u64;
                            let mut out = Vec::new();
                            if after < head {
                                out.push(Frame::Feed(FeedPage {
                                    company: acme.clone(),
                                    from: after,
                                    upto: head,
                                    entries: entries[after as usize..].to_vec(),
                                }));
                            }
                            out.push(Frame::CaughtUp {
                                company: acme.clone(),
                                upto: head,
                            });
                            out
                        }
                        // A retry of the quarantined document: this relay has nothing better.
                        Frame::DocSync {
                            company,
                            doc,
                            message: Some(_),
                        } => vec![Frame::DocSync {
                            company,
                            doc,
                            message: None,
                        }],
                        _ => Vec::new(),
                    };
                    for f in reply {
                        if ws.send(send(f)).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Ok(addr)
}

fn token() -> String {
    ficha_core::token::sign(
        &[1; 32],
        &ficha_core::token::Claims {
            replica: "branch".into(),
            companies: vec![Company::new("acme").expect("c")],
            write: true,
            issued_at: 0,
            expires_at: u64::MAX,
            code: String::new(),
        },
    )
}

#[test]
fn a_document_that_does_not_apply_is_quarantined_and_sync_goes_on() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let (bad, good, entries) = feed();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = rt.block_on(fake_relay(entries, seen.clone()))?;
    let tmp = tempfile::tempdir()?;
    let url = format!("ws://{addr}/sync");
    let r = Replica::init(&tmp.path().join("a"), "branch", &url, &token())?;
    let out = r.run(&["sync", "--timeout-secs", "20"])?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("quarantine"), "{err}");
    assert_eq!(
        r.show(&good.to_string())?["name"],
        "Lucía",
        "the other document synced"
    );
    let status: Value = serde_json::from_str(&r.ok(&["status", "--json"])?)?;
    assert_eq!(status["quarantined"][0]["doc"], bad.to_string(), "{status}");
    // The checkpoint moved past it: the next sync asks for what follows, not for it again.
    r.sync()?;
    assert_eq!(seen.lock().expect("lock").clone(), vec![0, 2]);

    // `ficha serve` stays connected, and says what it set aside.
    let fresh = Replica::init(&tmp.path().join("b"), "branch", &url, &token())?;
    let served = Served::start(&fresh)?;
    let status = eventually(std::time::Duration::from_secs(20), || {
        let s = served.get("/api/status").ok()?;
        (s["relay"] == "connected" && s["quarantined"][0]["doc"] == bad.to_string()).then_some(s)
    });
    assert!(
        status.is_some(),
        "serve keeps syncing and reports the quarantine"
    );
    Ok(())
}
