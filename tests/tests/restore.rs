//! Disasters with backups: the relay restored from an older backup (or emptied) and a replica
//! restored from an old copy. Nothing that any replica holds is lost; nothing is resurrected.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Result, ensure};
use ficha_e2e::{Relay, bin, note_texts};

fn relay_cmd(args: &[&str], data: &Path) -> Result<()> {
    let out = Command::new(bin("ficha-relay"))
        .arg(args[0])
        .arg("--data")
        .arg(data)
        .args(&args[1..])
        .output()?;
    ensure!(
        out.status.success(),
        "ficha-relay {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}

#[test]
fn a_relay_restored_from_an_old_backup_is_repaired_by_the_replicas() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay_dir = tmp.path().join("relay");
    let relay = Relay::start(&relay_dir, 0)?;
    let port = relay.port;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "b", &["acme"])?;
    let id = a.ok(&["client", "add", "--company", "acme", "--name", "Backed Up"])?;
    a.ok(&["note", "add", &id, "--text", "before backup"])?;
    a.sync()?;
    // A consistent copy while serving.
    let backup = tmp.path().join("relay-backup.redb");
    relay_cmd(
        &["backup", "--out", backup.to_str().unwrap_or_default()],
        &relay_dir,
    )?;
    // Work the backup will not have: a note from A, a whole new client from B.
    a.ok(&["note", "add", &id, "--text", "after backup"])?;
    a.sync()?;
    b.sync()?;
    let id2 = b.ok(&[
        "client",
        "add",
        "--company",
        "acme",
        "--name",
        "Only After Backup",
    ])?;
    b.sync()?;
    relay.kill();

    relay_cmd(
        &["restore", "--from", backup.to_str().unwrap_or_default()],
        &relay_dir,
    )?;
    let relay = Relay::start(&relay_dir, port)?;
    // The replicas notice the new epoch, reconcile, and re-upload what the relay lost.
    a.sync()?;
    b.sync()?;
    let c = relay.replica(&tmp.path().join("c"), "c", &["acme"])?;
    c.sync()?;
    assert_eq!(
        note_texts(&c.show(&id)?),
        BTreeSet::from(["before backup".to_string(), "after backup".to_string()])
    );
    assert_eq!(c.show(&id2)?["name"], "Only After Backup");
    assert_eq!(a.show(&id)?, c.show(&id)?);
    Ok(())
}

#[test]
fn a_replica_restored_from_an_old_copy_catches_up_and_resurrects_nothing() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"), 0)?;
    let a = relay.replica(&tmp.path().join("a"), "a", &["acme"])?;
    let b = relay.replica(&tmp.path().join("b"), "b", &["acme"])?;
    let id = a.ok(&["client", "add", "--company", "acme", "--name", "Old Name"])?;
    a.sync()?;
    let old_copy = tmp.path().join("a-old");
    copy_dir(&a.data, &old_copy)?;

    // After the copy: A renames and annotates; B adds its own note.
    a.ok(&["client", "set", &id, "name", "New Name"])?;
    a.ok(&["note", "add", &id, "--text", "written after the copy"])?;
    a.sync()?;
    b.sync()?;
    b.ok(&["note", "add", &id, "--text", "from b"])?;
    b.sync()?;

    // A's disk dies; it comes back from the old copy and edits before syncing.
    std::fs::remove_dir_all(&a.data)?;
    copy_dir(&old_copy, &a.data)?;
    assert_eq!(a.show(&id)?["name"], "Old Name");
    a.ok(&["note", "add", &id, "--text", "written on the restored copy"])?;
    a.sync()?;
    b.sync()?;
    a.sync()?;
    let (va, vb) = (a.show(&id)?, b.show(&id)?);
    assert_eq!(va, vb);
    assert_eq!(va["name"], "New Name", "the old name is not resurrected");
    assert_eq!(
        note_texts(&va),
        BTreeSet::from([
            "written after the copy".into(),
            "from b".into(),
            "written on the restored copy".into()
        ])
    );
    Ok(())
}
