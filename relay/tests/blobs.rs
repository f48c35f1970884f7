//! A blob upload tells a company nothing about another company's blobs.

mod common;

use ficha_core::blob::BlobHash;
use ficha_relay::issue_token;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storing_bytes_another_company_stored_looks_like_storing_new_bytes() {
    let dir = tempfile::tempdir().expect("tmp");
    let relay = start(dir.path(), quick()).await;
    let bytes = b"the same scan, uploaded by two companies".to_vec();
    let hash = BlobHash::of(&bytes);
    let put = |company: &'static str| {
        let token = issue_token(dir.path(), company, &[company.into()], false, 1).expect("t");
        let url = format!("http://{}/blobs/{hash}?company={company}", relay.addr);
        let body = bytes.clone();
        async move {
            reqwest::Client::new()
                .put(url)
                .bearer_auth(token)
                .body(body)
                .send()
                .await
                .expect("put")
                .status()
                .as_u16()
        }
    };
    assert_eq!(put("acme").await, 201);
    assert_eq!(put("beta").await, 201, "beta cannot tell acme had it");
    assert_eq!(put("beta").await, 200, "beta's own copy is already stored");
    relay.stop().await;
}
