//! samod, the Rust automerge-repo, as a stock client of `/automerge`: it finds a record a Ficha
//! replica stored, writes to it, a second samod peer with the record open receives the write
//! live, and a Ficha replica's session gets it in its company feed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};
use futures_util::future::{BoxFuture, ready};
use futures_util::{SinkExt, StreamExt};
use samod::{BackoffConfig, DialError, Dialer, DocHandle, Repo, Transport, Url};
use tokio_tungstenite::tungstenite::{self, Message};

use ficha_core::frame::Frame;
use ficha_core::ids::{actor_for, genesis_actor};
use ficha_core::relay::{IngestDoc, RelayStore};
use ficha_core::{Company, DocId, ReplicaId};
use ficha_relay::issue_token;
use ficha_relay::store::RedbRelayStore;

/// samod's transport over a tokio-tungstenite socket: binary messages are the protocol.
struct WsDialer(Url);

impl Dialer for WsDialer {
    type Error = std::convert::Infallible;

    fn url(&self) -> Url {
        self.0.clone()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Transport, DialError<Self::Error>>> {
        let url = self.0.clone();
        Box::pin(async move {
            let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(DialError::transient)?;
            let (sink, stream) = ws.split();
            let stream = stream.filter_map(|m| {
                ready(match m {
                    Ok(Message::Binary(b)) => Some(Ok(b.to_vec())),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
            });
            let sink = sink
                .with(|b: Vec<u8>| ready(Ok::<_, tungstenite::Error>(Message::Binary(b.into()))));
            Ok(Transport::new(stream, sink))
        })
    }
}

fn name_of(handle: &DocHandle) -> Option<String> {
    handle.with_document(|d| match d.get(ROOT, "name").ok().flatten() {
        Some((automerge::Value::Object(ObjType::Text), id)) => d.text(&id).ok(),
        Some((automerge::Value::Scalar(s), _)) => s.as_str().map(str::to_string),
        _ => None,
    })
}

async fn peer(url: &str, doc: DocId) -> (Repo, DocHandle) {
    let repo = Repo::build_tokio().load().await;
    let link = repo
        .dial(
            BackoffConfig::default(),
            Arc::new(WsDialer(Url::parse(url).expect("url"))),
        )
        .expect("dial");
    link.established().await.expect("connected");
    let id = samod::DocumentId::try_from(doc.0.to_vec()).expect("document id");
    let handle = tokio::time::timeout(Duration::from_secs(10), repo.find(id))
        .await
        .expect("found in time")
        .expect("find")
        .expect("the relay has the record");
    (repo, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samod_reads_writes_and_watches_a_record_through_the_relay() {
    let dir = tempfile::tempdir().expect("tmp");
    let doc = DocId([5; 16]);
    let mut record = AutoCommit::new().with_actor(genesis_actor(doc));
    record.put(ROOT, "id", doc.to_string()).expect("put");
    record.commit_with(automerge::transaction::CommitOptions::default().with_time(0));
    record.set_actor(actor_for(ReplicaId([1; 16]), 1));
    record.put(ROOT, "company", "acme").expect("put");
    record.put(ROOT, "kind", "client").expect("put");
    record.put(ROOT, "name", "Ana").expect("put");
    record
        .put_object(ROOT, "notes", ObjType::Map)
        .expect("notes");
    record.commit();
    {
        let mut store = RedbRelayStore::open(dir.path()).expect("store");
        let changes = record.get_changes(&[]);
        let acme = Company::new("acme").expect("company");
        store
            .ingest(
                ReplicaId([1; 16]),
                vec![IngestDoc::applied(doc, acme, changes)],
            )
            .expect("ingest");
    }
    let relay = common::start(dir.path(), common::quick()).await;
    let token = issue_token(dir.path(), "tablet", &["acme".into()], false, 1).expect("token");
    let url = format!("ws://{}/automerge?token={token}", relay.addr);

    // A Ficha replica's session, live on acme's feed.
    let mut ficha = common::connect(&relay).await;
    let replica_token =
        issue_token(dir.path(), "recepcion", &["acme".into()], false, 1).expect("t");
    common::hello(&mut ficha, ReplicaId([1; 16]), replica_token).await;
    common::send(
        &mut ficha,
        Frame::Subscribe {
            company: Company::new("acme").expect("c"),
            after: 0,
        },
    )
    .await;

    let (a, handle_a) = peer(&url, doc).await;
    assert_eq!(name_of(&handle_a).as_deref(), Some("Ana"));
    let (b, handle_b) = peer(&url, doc).await;
    let mut b_changes = handle_b.changes();

    handle_a.with_document(|d| {
        let mut tx = d.transaction();
        tx.put(ROOT, "name", "Ana María").expect("put");
        tx.commit();
    });
    // The other samod peer receives it live.
    tokio::time::timeout(Duration::from_secs(10), async {
        while name_of(&handle_b).as_deref() != Some("Ana María") {
            b_changes.next().await.expect("changes");
        }
    })
    .await
    .expect("pushed to the other peer");
    // The Ficha replica's feed carries it.
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match common::next(&mut ficha).await {
                Some(Frame::Feed(page)) => {
                    let mut copy = record.clone();
                    for e in &page.entries {
                        // Changes, or a document compaction folded.
                        copy.load_incremental(&e.changes).expect("load");
                    }
                    if copy
                        .get(ROOT, "name")
                        .ok()
                        .flatten()
                        .is_some_and(|(v, _)| v.as_str() == Some("Ana María"))
                    {
                        return;
                    }
                    let upto = page.upto;
                    common::send(
                        &mut ficha,
                        Frame::PageAck {
                            company: page.company,
                            upto,
                        },
                    )
                    .await;
                }
                Some(_) => {}
                None => panic!("the replica's session ended"),
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "the Ficha replica received the samod write");
    a.stop().await;
    b.stop().await;
    relay.stop().await;
}
