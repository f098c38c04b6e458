//! Small file-system helpers shared by the state files in `StateDir`
//! (journal entries, guard registry, allow rules, status): writes that are
//! all-or-nothing, so a crash never leaves half a file. (Times as text
//! are `crate::clock`'s.)

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How much a write must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file and its directory: survives a power cut (journal,
    /// guard, allow rules — state that decides what the daemon does).
    Durable,
    /// Atomic but not fsync'd: a power cut may lose the latest version,
    /// never leave a torn one (status.json, rewritten every sweep).
    Atomic,
}

/// Replace `path` with `bytes` atomically: write `<path>.tmp` (created with
/// `mode`), optionally fsync, rename over `path`, optionally fsync the
/// directory.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> std::io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        // A link planted at the temporary name is refused, never written
        // through.
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)?;
    f.write_all(bytes)?;
    if durability == Durability::Durable {
        f.sync_all()?;
    }
    fs::rename(tmp, path)?;
    if durability == Durability::Durable
        && let Some(dir) = path.parent()
    {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Device, inode, mtime, ctime of a file: what changes when it is replaced.
pub type FileStamp = (u64, u64, i64, i64);

/// Identity of whatever stands at `path` (lstat: a link is not followed).
pub fn what_stands_at(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.ctime()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_with_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"first version, longer", 0o600, Durability::Durable).unwrap();
        write_atomic(&p, b"second", 0o600, Durability::Atomic).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!dir.path().join("state.json.tmp").exists());
    }
}
