//! Feed notifications between relay nodes on one PostgreSQL database: an ingest on one node is
//! heard by another once it commits, a rolled-back transaction is never heard of, and a
//! listening connection that the server cuts ends its stream (so the node knows to reconnect
//! and re-read every head).

mod common;

use std::time::Duration;

use ficha_core::relay::{IngestDoc, RelayStore};
use ficha_core::{Company, DocId, RelayEpoch, ReplicaId};
use ficha_relay::pg::{PgRelayStore, notify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_hears_of_committed_ingests_only_and_of_a_cut_listener() {
    let Some(url) = common::postgres() else {
        return;
    };
    let schema = format!("notify_{}", std::process::id());
    let (store, channel) = {
        let (url, schema) = (url.clone(), schema.clone());
        tokio::task::spawn_blocking(move || {
            let s = PgRelayStore::connect(&url, Some(&schema), RelayEpoch([1; 16])).expect("pg");
            let c = s.channel().to_string();
            (s, c)
        })
        .await
        .expect("store")
    };
    let (listener, mut heard) = notify::listen(&url, &channel).await.expect("listen");
    let acme = Company::new("acme").expect("company");

    // A transaction that notifies and rolls back is never heard of.
    let (other, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    other
        .batch_execute(&format!(
            "BEGIN; SELECT pg_notify('{channel}', 'beta'); ROLLBACK"
        ))
        .await
        .expect("rolled back");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), heard.recv())
            .await
            .is_err(),
        "nothing heard of a rolled-back transaction"
    );

    // An ingest on the store (another node) is heard once it commits.
    let mut doc =
        automerge::AutoCommit::new().with_actor(ficha_core::ids::actor_for(ReplicaId([1; 16]), 1));
    automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "k", 1).expect("put");
    doc.commit();
    let changes = doc.get_changes(&[]);
    let ingest = IngestDoc::applied(DocId([2; 16]), acme.clone(), changes);
    let store = tokio::task::spawn_blocking(move || {
        let mut store = store;
        store
            .ingest(ReplicaId([1; 16]), vec![ingest])
            .expect("ingest");
        store
    })
    .await
    .expect("ingest");
    let got = tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .expect("heard in time");
    assert_eq!(got, Some(acme));

    // The server cuts the listening connection: the stream ends.
    let pid: i32 = listener
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    other
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .expect("terminate");
    let end = tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .expect("ended in time");
    assert_eq!(end, None, "a cut listener ends its stream");
    drop(store);
    tokio::task::spawn_blocking(move || common::drop_schemas(&url, &schema))
        .await
        .expect("drop");
}
