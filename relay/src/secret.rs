//! The token signing secret: 32 random bytes in `<data>/relay.secret`, readable by owner only.

use std::io::{Read, Write};
use std::path::Path;

use rand::TryRngCore;

/// File name of the secret inside the data directory.
pub const SECRET_FILE: &str = "relay.secret";

/// Loads the secret, creating it (mode 0600) on first use.
pub fn load_or_create(dir: &Path) -> std::io::Result<[u8; 32]> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(SECRET_FILE);
    match std::fs::File::open(&path) {
        Ok(mut f) => {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            <[u8; 32]>::try_from(buf.as_slice()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a 32-byte secret", path.display()),
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            rand::rngs::OsRng
                .try_fill_bytes(&mut secret)
                .map_err(std::io::Error::other)?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(&path) {
                Ok(mut f) => {
                    f.write_all(&secret)?;
                    f.sync_all()?;
                    Ok(secret)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(dir),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// The credential for admin calls to a running relay: proves the caller can read the secret.
pub fn admin_key(secret: &[u8; 32]) -> String {
    blake3::keyed_hash(secret, b"ficha-relay admin")
        .to_hex()
        .to_string()
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
