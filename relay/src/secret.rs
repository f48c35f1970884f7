//! The token signing secret: 32 random bytes in `<data>/relay.secret`, readable by owner only.
//!
//! Whoever reads this file can mint tokens and call the admin endpoints, so it is created with
//! mode 0600 and never logged.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::TryRngCore;

/// File name of the secret inside the data directory.
pub const SECRET_FILE: &str = "relay.secret";

fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(std::io::Error::other)?;
    Ok(bytes)
}

fn read(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mode = f.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "the signing secret is readable by other users; run `chmod 600` on it"
        );
    }
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    <[u8; 32]>::try_from(buf.as_slice()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a 32-byte secret", path.display()),
        )
    })
}

/// Loads the secret, creating it (mode 0600) on first use.
pub fn load_or_create(dir: &Path) -> std::io::Result<[u8; 32]> {
    let path = dir.join(SECRET_FILE);
    match read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    std::fs::create_dir_all(dir)?;
    let secret = random::<32>()?;
    // Written whole under a private name, then linked into place: a crash or a concurrent
    // creator never leaves a short secret behind, and the first link wins.
    let tmp = dir.join(format!(
        ".{SECRET_FILE}.{}.tmp",
        u32::from_le_bytes(random::<4>()?)
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = f.write_all(&secret).and_then(|()| f.sync_all());
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, &path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            std::fs::File::open(dir)?.sync_all()?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(e),
    }
}

/// The credential for admin calls to a running relay: proves the caller can read the secret.
pub fn admin_key(secret: &[u8; 32]) -> String {
    blake3::keyed_hash(secret, b"ficha-relay admin")
        .to_hex()
        .to_string()
}

/// The credential for `/metrics`: lets a scraper read counts, and nothing else.
pub fn metrics_key(secret: &[u8; 32]) -> String {
    blake3::keyed_hash(secret, b"ficha-relay metrics")
        .to_hex()
        .to_string()
}

/// Names the secret without revealing it: the nodes of a cluster compare theirs by it.
pub fn fingerprint(secret: &[u8; 32]) -> [u8; 32] {
    *blake3::keyed_hash(secret, b"ficha-relay fingerprint").as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_private_and_stable() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = load_or_create(dir.path()).expect("create");
        let b = load_or_create(dir.path()).expect("load");
        assert_eq!(a, b);
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn concurrent_creators_agree_on_one_secret() {
        let dir = tempfile::tempdir().expect("tmp");
        let secrets: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(dir.path()).expect("secret")))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(secrets.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn a_truncated_secret_is_an_error_not_a_new_secret() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(SECRET_FILE), b"short").expect("write");
        let err = load_or_create(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("32-byte"), "{err}");
    }
}
