//! Admin commands (`backup`, `revoke`) that work whether or not a relay is serving.
//!
//! redb locks the database file for the serving process, so while `serve` runs these go
//! through its loopback admin endpoints (authenticated with a key only the secret's readers
//! can derive); when no relay answers, they open the database directly.

use std::path::Path;
use std::time::Duration;

use crate::error::Error;
use crate::server::ADMIN_HEADER;
use crate::store::RedbRelayStore;
use crate::{ADDR_FILE, secret};

/// Asks the relay serving from `dir` to run an admin call; `None` if no relay answers.
pub async fn call(dir: &Path, path: &str, query: &[(&str, &str)]) -> Result<Option<String>, Error> {
    let addr_file = dir.join(ADDR_FILE);
    let addr = match std::fs::read_to_string(&addr_file) {
        Ok(a) => a.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: addr_file,
                source,
            });
        }
    };
    let admin = |message: String| Error::Admin {
        addr: addr.clone(),
        message,
    };
    let secret = secret::load_or_create(dir).map_err(|source| Error::Secret {
        dir: dir.to_path_buf(),
        source,
    })?;
    // A proxy from the environment must never see this loopback call or its key.
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| admin(e.to_string()))?;
    let response = client
        .post(format!("http://{addr}{path}"))
        .query(query)
        .header(ADMIN_HEADER, secret::admin_key(&secret))
        .send()
        .await;
    match response {
        // The address file outlived its relay (killed, not stopped).
        Err(e) if e.is_connect() => Ok(None),
        Err(e) => Err(admin(e.to_string())),
        // Something else took the port since: no relay of ours is there.
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => Ok(None),
        Ok(r) if r.status().is_success() => Ok(Some(r.text().await.unwrap_or_default())),
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            Err(admin(format!("{status}: {body}")))
        }
    }
}

/// Writes a consistent backup of the relay database in `dir` to `out`, through the serving
/// relay if there is one; returns a message for the operator.
pub async fn backup(dir: &Path, out: &Path) -> Result<String, Error> {
    let out = std::path::absolute(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let out_str = out
        .to_str()
        .ok_or_else(|| Error::Invalid(format!("{} is not a UTF-8 path", out.display())))?;
    if let Some(msg) = call(dir, "/admin/backup", &[("out", out_str)]).await? {
        return Ok(msg);
    }
    let dir = dir.to_path_buf();
    let dest = out.clone();
    run_blocking(move || RedbRelayStore::open(&dir)?.backup(&dest)).await?;
    Ok(format!("backup written to {}", out.display()))
}

/// Revokes every token of `replica` in the relay in `dir`; a serving relay also ends the
/// replica's open sessions. Returns a message for the operator.
pub async fn revoke(dir: &Path, replica: &str) -> Result<String, Error> {
    if replica.trim().is_empty() {
        return Err(Error::Invalid("the replica name must not be empty".into()));
    }
    if let Some(msg) = call(dir, "/admin/revoke", &[("replica", replica)]).await? {
        return Ok(msg);
    }
    let dir = dir.to_path_buf();
    let name = replica.to_string();
    let now = crate::now_secs();
    run_blocking(move || RedbRelayStore::open(&dir)?.revoke(&name, now)).await?;
    Ok(format!("revoked {replica}"))
}

async fn run_blocking(
    f: impl FnOnce() -> Result<(), crate::store::RelayStoreError> + Send + 'static,
) -> Result<(), Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Error::from),
        Err(e) => Err(Error::Invalid(format!("storage task failed: {e}"))),
    }
}
