//! A TLS front for the relay, as the reverse proxy of a deployment would be: it terminates
//! `wss://` with a certificate from a throwaway CA and forwards plain bytes to the relay.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A running TLS front; stops when dropped.
pub struct TlsFront {
    /// The port it listens on (127.0.0.1, certificate for "localhost").
    pub port: u16,
    /// PEM of the CA that signed its certificate: what a client must trust.
    pub ca_pem: PathBuf,
    _runtime: tokio::runtime::Runtime,
}

impl TlsFront {
    /// Starts a front forwarding to `127.0.0.1:upstream`, writing its CA into `dir`.
    pub fn start(dir: &Path, upstream: u16) -> Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ficha test CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let leaf_key = KeyPair::generate()?;
        let leaf = CertificateParams::new(vec!["localhost".to_string()])?
            .signed_by(&leaf_key, &ca, &ca_key)?;
        std::fs::create_dir_all(dir)?;
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, ca.pem())?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .context("TLS server config")?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Ok(Self {
            port,
            ca_pem,
            _runtime: runtime,
        })
    }

    /// The relay's URL through this front.
    pub fn url(&self) -> String {
        format!("wss://localhost:{}/sync", self.port)
    }
}
