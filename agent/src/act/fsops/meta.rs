//! What we record about each file, directory and link: the data a
//! restore needs to put it back exactly, and the path type that survives
//! names which are not UTF-8.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use nix::sys::stat::FileStat;
use serde::{Deserialize, Serialize};

/// A path stored in a manifest. Serialised as a string when it is UTF-8 and
/// as `{"bytes_hex": …}` otherwise: names in a user's folder are arbitrary
/// bytes, and a name we cannot write down must not stop a quarantine.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawPath(pub PathBuf);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawPathRepr {
    Text(String),
    Bytes { bytes_hex: String },
}

impl Serialize for RawPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.to_str() {
            Some(text) => RawPathRepr::Text(text.to_owned()),
            None => RawPathRepr::Bytes {
                bytes_hex: hex(self.0.as_os_str().as_bytes()),
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawPathRepr::deserialize(d)? {
            RawPathRepr::Text(text) => Ok(RawPath(PathBuf::from(text))),
            RawPathRepr::Bytes { bytes_hex } => unhex(&bytes_hex)
                .map(|b| RawPath(PathBuf::from(OsString::from_vec(b))))
                .ok_or_else(|| serde::de::Error::custom("bytes_hex is not even-length hex")),
        }
    }
}

/// Lower-case hex. Written out rather than pulling a crate for six lines.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What an entry is. `Other` (FIFO, socket, device) is never moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// Modification time, to the nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mtime {
    pub sec: i64,
    pub nsec: i64,
}

/// Everything a restore needs to put an entry back exactly. Equality
/// ignores `dev`/`ino`: they are not stored, and a restored copy is the
/// same entry on another inode.
#[derive(Debug, Clone, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub kind: EntryKind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub size: u64,
    pub mtime: Mtime,
    /// Regular files only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symbolic links only: the link's text, never resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<RawPath>,
    /// Identity at scan time, to notice a swap between looking and acting.
    #[serde(skip)]
    pub dev: u64,
    #[serde(skip)]
    pub ino: u64,
}

impl PartialEq for Meta {
    fn eq(&self, o: &Meta) -> bool {
        (
            self.kind, self.uid, self.gid, self.mode, self.size, self.mtime,
        ) == (o.kind, o.uid, o.gid, o.mode, o.size, o.mtime)
            && self.sha256 == o.sha256
            && self.link_target == o.link_target
    }
}

impl Meta {
    // `stat` field types differ between Linux and macOS (`mode_t` is u32
    // on one and u16 on the other, `dev_t` u64 vs i32), so a conversion
    // that is needed on one platform is a no-op on the other.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    pub(super) fn from_stat(st: &FileStat) -> Meta {
        let fmt = st.st_mode & libc::S_IFMT;
        let kind = if fmt == libc::S_IFREG {
            EntryKind::File
        } else if fmt == libc::S_IFDIR {
            EntryKind::Dir
        } else if fmt == libc::S_IFLNK {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        };
        Meta {
            kind,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: u32::from(st.st_mode) & 0o7777,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: Mtime {
                sec: st.st_mtime as i64,
                nsec: st.st_mtime_nsec as i64,
            },
            sha256: None,
            link_target: None,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }

    /// Same inode as when it was scanned.
    pub fn same_object(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino && self.kind == other.kind
    }

    /// The mode-000, empty, root-owned regular file that
    /// `quarantine::placeholder_block` leaves. No user can create a
    /// root-owned file, so this cannot be forged.
    pub fn is_placeholder(&self) -> bool {
        self.kind == EntryKind::File && self.uid == 0 && self.mode == 0 && self.size == 0
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            EntryKind::File => "file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink => "symbolic link",
            EntryKind::Other => "special file (FIFO, socket or device)",
        }
    }
}
