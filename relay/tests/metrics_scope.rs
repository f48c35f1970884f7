//! `/metrics` counts every company's documents and sessions, so it is served to loopback only.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use ficha_relay::Limits;
use ficha_relay::server::{Shared, router};
use ficha_relay::store::RedbRelayStore;

async fn metrics_from(peer: SocketAddr) -> StatusCode {
    let dir = tempfile::tempdir().expect("tmp");
    let store = RedbRelayStore::open(dir.path()).expect("store");
    let app = router(Shared::new(store, [5; 32], Limits::default())).layer(MockConnectInfo(peer));
    app.oneshot(
        Request::get("/metrics")
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .expect("infallible")
    .status()
}

#[tokio::test]
async fn metrics_are_served_to_loopback_only() {
    assert_eq!(
        metrics_from(([127, 0, 0, 1], 4000).into()).await,
        StatusCode::OK
    );
    assert_eq!(
        metrics_from("[::1]:4000".parse().expect("addr")).await,
        StatusCode::OK
    );
    assert_eq!(
        metrics_from(([10, 0, 0, 7], 4000).into()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        metrics_from("[::ffff:192.0.2.1]:4000".parse().expect("addr")).await,
        StatusCode::FORBIDDEN
    );
}
