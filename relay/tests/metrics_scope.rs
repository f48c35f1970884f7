//! `/metrics` and `/admin/*` count and change every company's data, so they answer only to
//! the keys derived from the signing secret, whatever address the request comes from: behind
//! a reverse proxy on the same host, every request comes from loopback.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use ficha_relay::Limits;
use ficha_relay::secret::{admin_key, metrics_key};
use ficha_relay::server::{Shared, router};
use ficha_relay::store::RedbRelayStore;

const SECRET: [u8; 32] = [5; 32];

async fn call(method: &str, path: &str, peer: SocketAddr, bearer: Option<&str>) -> StatusCode {
    let dir = tempfile::tempdir().expect("tmp");
    let store = RedbRelayStore::open(dir.path()).expect("store");
    let app =
        router(Shared::on_redb(store, SECRET, Limits::default())).layer(MockConnectInfo(peer));
    let mut req = Request::builder().method(method).uri(path);
    if let Some(key) = bearer {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    app.oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible")
        .status()
}

#[tokio::test]
async fn metrics_need_their_key_even_from_loopback() {
    let loopback: SocketAddr = ([127, 0, 0, 1], 4000).into();
    let remote: SocketAddr = ([10, 0, 0, 7], 4000).into();
    let key = metrics_key(&SECRET);
    assert_eq!(
        call("GET", "/metrics", loopback, None).await,
        StatusCode::UNAUTHORIZED,
        "a proxy on the same host makes every caller loopback"
    );
    assert_eq!(
        call("GET", "/metrics", loopback, Some("wrong")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call("GET", "/metrics", remote, Some(&key)).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_calls_need_the_admin_key_not_the_metrics_key() {
    let loopback: SocketAddr = ([127, 0, 0, 1], 4000).into();
    let path = "/admin/revoke?replica=laptop";
    assert_eq!(
        call("POST", path, loopback, None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call("POST", path, loopback, Some(&metrics_key(&SECRET))).await,
        StatusCode::UNAUTHORIZED,
        "a scraper's key cannot revoke"
    );
    assert_eq!(
        call("POST", path, loopback, Some(&admin_key(&SECRET))).await,
        StatusCode::OK
    );
}
