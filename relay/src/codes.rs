//! Replica codes: a short code per replica name, unique on this relay, given when its first
//! token is issued and the same for every later token of that name. Replicas number cases and
//! invoices `<code>-<sequence>` offline, so two replicas never give the same number.
//!
//! The registry is a text file beside the database (`replica-codes`, one `name code` line per
//! replica) rather than a table: `ficha-relay token` runs while the relay serves and holds the
//! database open. An exclusive file lock orders concurrent issuers.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use crate::error::Error;

/// The registry's file name in the data directory.
pub const CODES_FILE: &str = "replica-codes";

/// The code of replica `name`, given now if it has none.
pub fn code_for(dir: &Path, name: &str) -> Result<String, Error> {
    let path = dir.join(CODES_FILE);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io)?;
    let mut given = 0u64;
    for line in text.lines() {
        let Some((n, code)) = line.rsplit_once(' ') else {
            continue;
        };
        if n == name {
            return Ok(code.to_string());
        }
        given += 1;
    }
    let code = encode(given + 1);
    writeln!(file, "{name} {code}").map_err(io)?;
    file.sync_all().map_err(io)?;
    File::unlock(&file).map_err(io)?;
    Ok(code)
}

/// `n` in base 36 (digits, then capital letters), at least two characters: `01`, `0Z`, `10`.
/// Never a dash, which separates the code from the sequence.
pub fn encode(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    while out.len() < 2 {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_code_and_every_name_gets_its_own() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = code_for(dir.path(), "branch-a").expect("a");
        let b = code_for(dir.path(), "branch b").expect("b");
        assert_ne!(a, b);
        assert_eq!(code_for(dir.path(), "branch-a").expect("again"), a);
        let codes: std::collections::HashSet<String> = (0..2000u64).map(encode).collect();
        assert_eq!(codes.len(), 2000);
        assert!(codes.iter().all(|c| !c.contains('-') && c.len() >= 2));
    }

    #[test]
    fn concurrent_issuers_never_give_one_code_twice() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().to_path_buf();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| code_for(&path, &format!("r{t}-{i}")).expect("code"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = std::collections::HashSet::new();
        for h in handles {
            for c in h.join().expect("thread") {
                assert!(all.insert(c), "a code given twice");
            }
        }
        assert_eq!(all.len(), 200);
    }
}
