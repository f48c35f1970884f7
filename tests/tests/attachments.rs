//! Images and files through the real binaries: attached in one branch, stored once by hash,
//! uploaded beside the document, fetched lazily in another branch, kept there, refused above
//! the size limit, and invisible to a token of another company.

use anyhow::Result;
use ficha_e2e::Relay;
use rand::{Rng, SeedableRng};

fn blob_status(relay: &Relay, hash: &str, token: &str) -> Result<(u16, Vec<u8>)> {
    let r = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/blobs/{hash}", relay.port))
        .bearer_auth(token)
        .send()?;
    Ok((r.status().as_u16(), r.bytes()?.to_vec()))
}

fn metric(relay: &Relay, name: &str) -> Result<u64> {
    relay.metric(name)
}

#[test]
fn files_are_stored_once_synced_beside_documents_and_fetched_lazily() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "madrid", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "sevilla", &["acme"])?;
    let mut photo = vec![0u8; 300_000];
    rand::rngs::SmallRng::seed_from_u64(3).fill(&mut photo[..]);
    let file = tmp.path().join("prueba-cutanea.jpg");
    std::fs::write(&file, &photo)?;
    let path = file.to_str().unwrap_or_default();

    let ana = a.ok(&["client", "add", "--company", "acme", "--name", "Ana Ruiz"])?;
    let luis = a.ok(&["client", "add", "--company", "acme", "--name", "Luis Ruiz"])?;
    let item = a.ok(&[
        "file",
        "add",
        &ana,
        path,
        "--kind",
        "image",
        "--mime",
        "image/jpeg",
    ])?;
    a.ok(&["file", "add", &luis, path, "--name", "same photo"])?;
    let shown = a.show(&ana)?;
    let entry = &shown["files"][0];
    assert_eq!(entry["id"], item.as_str());
    assert_eq!(entry["name"], "prueba-cutanea.jpg");
    assert_eq!(entry["size"], "300000");
    let hash = entry["hash"].as_str().unwrap_or_default().to_string();
    assert_eq!(hash, blake3::hash(&photo).to_hex().as_str());

    // Too big: a clear error, and nothing changes.
    let big = tmp.path().join("big.bin");
    std::fs::write(&big, vec![1u8; 9 << 20])?;
    let refused = a.run(&["file", "add", &ana, big.to_str().unwrap_or_default()])?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("at most"));
    assert_eq!(a.show(&ana)?["files"].as_array().map(Vec::len), Some(1));

    a.sync()?;
    assert_eq!(
        metric(&relay, "ficha_blobs")?,
        1,
        "the same bytes are stored once"
    );
    b.sync()?;
    // Branch B has the document but not the bytes until someone opens the file.
    let shown_b = b.show(&ana)?;
    assert_eq!(shown_b["files"][0]["hash"], hash.as_str());
    let out = tmp.path().join("fetched.jpg");
    let out_s = out.to_str().unwrap_or_default();
    b.ok(&["file", "get", &ana, &item, "--out", out_s])?;
    assert_eq!(std::fs::read(&out)?, photo);

    // Authorisation: another company's token sees no such blob; a read-only token cannot
    // upload; bytes that do not match their name are refused.
    let other = relay.token("intruso", &["beta"], false)?;
    let own = relay.token("madrid-2", &["acme"], false)?;
    assert_eq!(blob_status(&relay, &hash, &other)?.0, 404);
    assert_eq!(blob_status(&relay, &hash, "ft1.forged.token")?.0, 401);
    assert_eq!(blob_status(&relay, &hash, &own)?, (200, photo.clone()));
    let put = |token: &str, company: &str, body: &[u8], name: &str| -> Result<u16> {
        Ok(reqwest::blocking::Client::new()
            .put(format!(
                "http://127.0.0.1:{}/blobs/{name}?company={company}",
                relay.port
            ))
            .bearer_auth(token)
            .body(body.to_vec())
            .send()?
            .status()
            .as_u16())
    };
    let reader = relay.token("lector", &["acme"], true)?;
    let small = b"consent form";
    let small_hash = blake3::hash(small).to_hex().to_string();
    assert_eq!(put(&reader, "acme", small, &small_hash)?, 403);
    assert_eq!(
        put(&own, "beta", small, &small_hash)?,
        403,
        "not its company"
    );
    assert_eq!(put(&own, "acme", b"tampered", &small_hash)?, 400);
    assert_eq!(
        metric(&relay, "ficha_blobs")?,
        1,
        "nothing refused was stored"
    );

    // Fetched once, kept: with the relay gone the file still opens in branch B.
    relay.kill();
    std::fs::remove_file(&out)?;
    b.ok(&["file", "get", &ana, &item, "--out", out_s])?;
    assert_eq!(std::fs::read(&out)?, photo);
    Ok(())
}
