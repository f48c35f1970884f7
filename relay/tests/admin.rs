//! Admin commands against a serving relay: revocation takes effect at once, backups are
//! consistent while serving, and a restore always brings a new epoch.

mod common;

use ficha_core::frame::{ErrorCode, Frame};
use ficha_core::relay::RelayStore;
use ficha_core::{DocId, ReplicaId};
use ficha_relay::store::RedbRelayStore;
use ficha_relay::{admin, issue_token};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_ends_open_sessions_and_refuses_new_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let token = issue_token(dir.path(), "laptop-7", &["acme".into()], false, 1).expect("token");
    let other = issue_token(dir.path(), "b", &["acme".into()], false, 1).expect("token");
    let mut open = connect(&relay).await;
    assert!(matches!(
        hello(&mut open, ReplicaId([7; 16]), token.clone()).await,
        Frame::Welcome(_)
    ));
    let msg = admin::revoke(dir.path(), "laptop-7").await.expect("revoke");
    assert!(msg.contains("closed 1"), "{msg}");
    assert_eq!(
        error_code(next(&mut open).await),
        Some(ErrorCode::Unauthorized)
    );
    assert!(next(&mut open).await.is_none());

    let mut again = connect(&relay).await;
    match hello(&mut again, ReplicaId([7; 16]), token).await {
        Frame::Error(e) => assert!(e.message.contains("revoked"), "{}", e.message),
        f => panic!("expected a refusal, got {f:?}"),
    }
    let mut b = connect(&relay).await;
    assert!(matches!(
        hello(&mut b, ReplicaId([2; 16]), other).await,
        Frame::Welcome(_)
    ));
    relay.stop().await;

    // Revocation was stored: it survives a restart, and works with no relay running.
    admin::revoke(dir.path(), "b")
        .await
        .expect("revoke offline");
    let store = RedbRelayStore::open(dir.path()).expect("open");
    let handle = store.handle();
    assert!(
        handle.revoked_at("laptop-7").expect("r").is_some()
            && handle.revoked_at("b").expect("r").is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_need_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("http://{}/admin/revoke?replica=x", relay.addr);
    let anonymous = client.post(&url).send().await.expect("post");
    assert_eq!(anonymous.status(), 401);
    let wrong = client
        .post(&url)
        .header(ficha_relay::server::ADMIN_HEADER, "guess")
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), 401);
    let relative = admin::call(dir.path(), "/admin/backup", &[("out", "relative.redb")]).await;
    assert!(relative.is_err(), "a relative backup path is refused");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_with_a_new_epoch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("relay");
    let relay = start(&dir, quick()).await;
    let token = issue_token(&dir, "w", &["acme".into()], false, 1).expect("token");
    let me = ReplicaId([1; 16]);
    let mut ws = connect(&relay).await;
    let epoch = match hello(&mut ws, me, token.clone()).await {
        Frame::Welcome(w) => w.epoch,
        f => panic!("expected welcome, got {f:?}"),
    };
    let mut doc = Writer::new(me, DocId([1; 16]));
    send(&mut ws, upload(1, doc.doc, "acme", vec![doc.edit(1)])).await;
    assert_eq!(next(&mut ws).await, Some(Frame::Ack { upto: 1 }));

    let backup = tmp.path().join("backup.redb");
    admin::backup(&dir, &backup)
        .await
        .expect("backup while serving");
    let live = dir.join(ficha_relay::store::DB_FILE);
    assert!(
        admin::backup(&dir, &live).await.is_err(),
        "a backup never overwrites the live database"
    );
    // The session goes on after the backup; this change is not in it.
    send(&mut ws, upload(2, doc.doc, "acme", vec![doc.edit(2)])).await;
    assert_eq!(next(&mut ws).await, Some(Frame::Ack { upto: 2 }));

    assert!(
        RedbRelayStore::restore(&backup, &dir).is_err(),
        "no restore under a serving relay"
    );
    relay.stop().await;
    let restored = RedbRelayStore::restore(&backup, &dir).expect("restore");
    assert_ne!(restored, epoch);
    let store = RedbRelayStore::open(&dir).expect("open");
    assert_eq!(store.epoch(), restored);
    assert_eq!(store.counts().expect("counts").changes, 1);
    drop(store);

    let relay = start(&dir, quick()).await;
    let mut ws = connect(&relay).await;
    assert!(matches!(
        hello(&mut ws, me, token).await,
        Frame::Welcome(w) if w.epoch == restored
    ));
    relay.stop().await;
}
