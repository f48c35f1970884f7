//! Images and files of a client: the bytes are a blob named by their blake3 hash, stored once
//! in the replica and uploaded to the relay beside (not inside) the document; the document's
//! `files` section refers to them. A replica that synced the document fetches the bytes only
//! when someone opens the file.

use uuid::Uuid;

use ficha_core::blob::{BlobHash, check_size};
use ficha_core::{Company, DocId};
use ficha_store::{Store, StoreError};

use crate::app::{AppError, Replica, describe, now_ms};

/// Why a blob transfer with the relay failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The relay could not be reached or answered badly.
    #[error("blob transfer with the relay failed: {0}")]
    Transfer(String),
    /// The relay does not have it (not uploaded yet, or not visible to this token).
    #[error("the relay has no file {0} for this replica (not uploaded yet by its branch?)")]
    Missing(BlobHash),
    /// The relay's bytes do not hash to the name asked for.
    #[error("the relay sent bytes that do not match file {0}")]
    Mismatch(BlobHash),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The relay's blob URL for `hash`, from its WebSocket URL (ws://h/sync → http://h/blobs/…).
fn blob_url(relay_url: &str, hash: &BlobHash) -> Result<String, BlobError> {
    let base = relay_url
        .strip_prefix("ws://")
        .map(|r| format!("http://{r}"))
        .or_else(|| {
            relay_url
                .strip_prefix("wss://")
                .map(|r| format!("https://{r}"))
        })
        .ok_or_else(|| BlobError::Transfer(format!("relay URL {relay_url:?} is not ws(s)://")))?;
    let root = base.strip_suffix("/sync").unwrap_or(&base);
    Ok(format!("{}/blobs/{hash}", root.trim_end_matches('/')))
}

/// Uploads every blob waiting in the store; returns how many the relay now holds. A blob
/// leaves the queue only once the relay has answered that it stored it.
pub async fn upload_pending(store: &Store) -> Result<usize, BlobError> {
    let pending = store.pending_blobs()?;
    if pending.is_empty() {
        return Ok(0);
    }
    let identity = store.identity().clone();
    let client = reqwest::Client::new();
    let mut done = 0;
    for (hash, company) in pending {
        let Some(bytes) = store.blob(&hash)? else {
            store.blob_uploaded(&hash)?;
            continue;
        };
        let reply = client
            .put(blob_url(&identity.relay_url, &hash)?)
            .query(&[("company", company.as_str())])
            .bearer_auth(&identity.token)
            .body(bytes)
            .send()
            .await
            .map_err(|e| BlobError::Transfer(e.to_string()))?;
        if !reply.status().is_success() {
            let status = reply.status();
            let text = reply.text().await.unwrap_or_default();
            return Err(BlobError::Transfer(format!(
                "upload of {hash}: {status} {text}"
            )));
        }
        store.blob_uploaded(&hash)?;
        done += 1;
    }
    tracing::debug!(blobs = done, "uploaded attachments");
    Ok(done)
}

/// One file entry of a client, as `client show` lists it.
#[derive(Debug, Clone)]
pub struct FileRef {
    /// The file's name.
    pub name: String,
    /// The blob holding its bytes.
    pub hash: BlobHash,
}

impl Replica {
    /// Attaches a file to a client: its bytes (stored once, however many clients share them)
    /// and the `files` item that names them become durable in one transaction.
    pub fn attach(
        &self,
        id: DocId,
        name: &str,
        bytes: &[u8],
        kind: Option<&str>,
        mime: Option<&str>,
    ) -> Result<Uuid, AppError> {
        check_size(bytes.len()).map_err(AppError::BadInput)?;
        if name.trim().is_empty() {
            return Err(AppError::BadInput("a file needs a name".into()));
        }
        let meta = self
            .store()
            .doc_meta(&id)?
            .ok_or(StoreError::UnknownDoc(id))?;
        let company = Company::new(&meta.company)?;
        self.check_granted(&company)?;
        let hash = BlobHash::of(bytes);
        let item = Uuid::new_v4();
        let mut values = vec![
            ("hash".to_string(), hash.to_string()),
            ("name".to_string(), name.to_string()),
            ("size".to_string(), bytes.len().to_string()),
        ];
        values.extend(kind.map(|k| ("kind".to_string(), k.to_string())));
        values.extend(mime.map(|m| ("mime".to_string(), m.to_string())));
        let who = self.who();
        let batch = self.batch()?;
        batch.add_blob(&hash, bytes, &company)?;
        batch.edit_doc(id, |d| {
            ficha_domain::add_item(d, "files", item, &values, now_ms())?;
            ficha_domain::log_event(
                d,
                Uuid::new_v4(),
                &who,
                "files_added",
                &describe(&values),
                now_ms(),
            )?;
            Ok::<(), AppError>(())
        })?;
        self.commit(batch)?;
        Ok(item)
    }

    /// The file `item` of a client, as its document names it.
    pub fn file_ref(&self, id: DocId, item: &str) -> Result<FileRef, AppError> {
        let view = serde_json::to_value(self.client_file(id)?)?;
        let entry = view["files"]
            .as_array()
            .and_then(|files| files.iter().find(|f| f["id"] == item))
            .ok_or_else(|| AppError::NotFound(format!("client {id} has no file {item}")))?;
        let hash = entry["hash"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e: ficha_core::blob::BadBlobHash| AppError::BadInput(e.to_string()))?;
        Ok(FileRef {
            name: entry["name"].as_str().unwrap_or("file").to_string(),
            hash,
        })
    }

    /// A file's bytes: from this replica if it holds them, otherwise fetched from the relay,
    /// checked against the hash and kept, so it is fetched once.
    pub async fn file_bytes(&self, id: DocId, item: &str) -> Result<(FileRef, Vec<u8>), AppError> {
        let file = self.file_ref(id, item)?;
        if let Some(bytes) = self.store().blob(&file.hash)? {
            return Ok((file, bytes));
        }
        let bytes = fetch(self.store(), &file.hash).await?;
        Ok((file, bytes))
    }
}

/// Fetches a blob from the relay, verifies it and caches it.
async fn fetch(store: &Store, hash: &BlobHash) -> Result<Vec<u8>, BlobError> {
    let identity = store.identity();
    let reply = reqwest::Client::new()
        .get(blob_url(&identity.relay_url, hash)?)
        .bearer_auth(&identity.token)
        .send()
        .await
        .map_err(|e| BlobError::Transfer(e.to_string()))?;
    match reply.status() {
        s if s.is_success() => {}
        reqwest::StatusCode::NOT_FOUND => return Err(BlobError::Missing(*hash)),
        s => {
            let text = reply.text().await.unwrap_or_default();
            return Err(BlobError::Transfer(format!("{s} {text}")));
        }
    }
    let bytes = reply
        .bytes()
        .await
        .map_err(|e| BlobError::Transfer(e.to_string()))?;
    if !hash.matches(&bytes) {
        return Err(BlobError::Mismatch(*hash));
    }
    store.cache_blob(hash, &bytes)?;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_urls_follow_the_relay_url() {
        let h = BlobHash::of(b"x");
        assert_eq!(
            blob_url("ws://127.0.0.1:9/sync", &h).expect("url"),
            format!("http://127.0.0.1:9/blobs/{h}")
        );
        assert_eq!(
            blob_url("wss://relay.example/ficha/sync", &h).expect("url"),
            format!("https://relay.example/ficha/blobs/{h}")
        );
        assert!(blob_url("http://x/sync", &h).is_err());
    }
}
