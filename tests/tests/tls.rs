//! `wss://` relays: two replicas sync and exchange an attachment through a TLS front (the
//! reverse proxy of a deployment), trusting its CA through SSL_CERT_FILE; a replica that does
//! not trust it is refused with a message that says why.

use anyhow::Result;
use ficha_e2e::tls::TlsFront;
use ficha_e2e::{Relay, Replica};

#[test]
fn replicas_sync_through_wss_and_refuse_an_untrusted_certificate() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let front = TlsFront::start(&tmp.path().join("tls"), relay.port)?;
    let trust = vec![(
        "SSL_CERT_FILE".to_string(),
        front.ca_pem.display().to_string(),
    )];
    let replica = |name: &str, env: Vec<(String, String)>| {
        Replica::init_with_env(
            &tmp.path().join(name),
            name,
            &front.url(),
            &relay.token(name, &["acme"], false)?,
            env,
        )
    };
    let a = replica("a", trust.clone())?;
    let b = replica("b", trust)?;
    let id = a.ok(&["client", "add", "--company", "acme", "--name", "Lucía Mora"])?;
    let file = tmp.path().join("consent.pdf");
    std::fs::write(&file, b"%PDF-1.4 signed consent")?;
    let item = a.ok(&["file", "add", &id, file.to_str().unwrap_or_default()])?;
    a.sync()?;
    b.sync()?;
    assert_eq!(b.show(&id)?["name"], "Lucía Mora");
    let out = tmp.path().join("fetched.pdf");
    b.ok(&[
        "file",
        "get",
        &id,
        &item,
        "--out",
        out.to_str().unwrap_or_default(),
    ])?;
    assert_eq!(std::fs::read(&out)?, b"%PDF-1.4 signed consent");

    // Without the CA the certificate is not trusted: a clear refusal, nothing synced.
    let untrusting = replica("c", Vec::new())?;
    let out = untrusting.run(&["sync"])?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("certificate"), "says why: {err}");
    assert!(untrusting.ok(&["client", "list", "--json"])? == "[]");
    Ok(())
}
