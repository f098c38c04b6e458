//! Where preferences come from, and reading one preferences file safely.
//!
//! A preferences file is outside input: the managed one is written by
//! whatever MDM the fleet runs, the local one by an admin's `defaults write`
//! or by hand. Reading it is bounded before anything interprets it: at most
//! [`MAX_FILE_BYTES`] are read (a bigger file is an error, not a truncated
//! read), then [`crate::parse::plist_guard`] — the same hardened reader the
//! launchd scanner uses — refuses nesting deeper than [`MAX_DEPTH`] and
//! binary plists whose shared references expand far beyond their size,
//! before a `plist::Value` is built.

use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use super::ConfigError;
use crate::parse::plist_guard::{self, PlistError};

/// The preferences domain, as `defaults read io.lenscap.agent` names it.
pub const DOMAIN: &str = "io.lenscap.agent";
/// Where macOS puts device-wide managed preferences that an MDM profile
/// delivered for [`DOMAIN`].
pub const MANAGED_PATH: &str = "/Library/Managed Preferences/io.lenscap.agent.plist";
/// Where `sudo defaults write /Library/Preferences/io.lenscap.agent …` writes.
pub const LOCAL_PATH: &str = "/Library/Preferences/io.lenscap.agent.plist";
/// Largest preferences file read: a real one is a few KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Deepest nesting accepted (lenscap needs 3: root dict → `Rules` array →
/// rule dict): the hardened reader's limit, shared with launchd plists.
pub use crate::parse::plist_guard::MAX_DEPTH;

/// The files to read. Paths are fields so tests (and `--config`) can point
/// anywhere; [`Sources::system`] is what the daemon uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// MDM-managed preferences; win over everything else. Optional file.
    pub managed: Option<PathBuf>,
    /// Local admin preferences. Optional file.
    pub local: Option<PathBuf>,
    /// `--config FILE`: when set, `managed` and `local` are not read and
    /// the file must exist.
    pub explicit: Option<PathBuf>,
}

impl Sources {
    /// The macOS locations: [`MANAGED_PATH`] over [`LOCAL_PATH`].
    pub fn system() -> Sources {
        Sources {
            managed: Some(PathBuf::from(MANAGED_PATH)),
            local: Some(PathBuf::from(LOCAL_PATH)),
            explicit: None,
        }
    }

    /// `--config FILE`: only that file over the built-in defaults.
    pub fn explicit(path: impl Into<PathBuf>) -> Sources {
        Sources {
            managed: None,
            local: None,
            explicit: Some(path.into()),
        }
    }

    /// A managed and a local file at chosen paths (tests, staging trees).
    pub fn layered(managed: impl Into<PathBuf>, local: impl Into<PathBuf>) -> Sources {
        Sources {
            managed: Some(managed.into()),
            local: Some(local.into()),
            explicit: None,
        }
    }
}

/// Where a key's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built into lenscap ([`super::Config::default`]).
    Default,
    /// The MDM-managed preferences file.
    Managed(PathBuf),
    /// The local preferences file.
    Local(PathBuf),
    /// The file given with `--config`.
    File(PathBuf),
}

impl Origin {
    /// `default`, `managed`, `local` or `file` (for JSON and scripts).
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::Managed(_) => "managed",
            Origin::Local(_) => "local",
            Origin::File(_) => "file",
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            Origin::Default => None,
            Origin::Managed(path) | Origin::Local(path) | Origin::File(path) => Some(path),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            None => f.write_str(self.kind()),
            Some(path) => write!(f, "{}: {}", self.kind(), path.display()),
        }
    }
}

/// Reads and parses one preferences file. `Ok(None)` when the file does not
/// exist and `required` is false.
pub(crate) fn read_plist(path: &Path, required: bool) -> Result<Option<plist::Value>, ConfigError> {
    let Some(bytes) = read_capped(path)? else {
        return if required {
            Err(ConfigError::NotFound {
                path: path.to_path_buf(),
            })
        } else {
            Ok(None)
        };
    };
    parse_bytes(path, &bytes).map(Some)
}

/// Parses the bytes of `path` with the hardened reader.
fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<plist::Value, ConfigError> {
    plist_guard::parse_plist_value(bytes).map_err(|e| match e {
        PlistError::TooDeep { max } => ConfigError::TooDeep {
            path: path.to_path_buf(),
            limit: max,
        },
        PlistError::Expands { limit, .. } => ConfigError::TooManyValues {
            path: path.to_path_buf(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        },
        source => ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        },
    })
}

fn read_capped(path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(read_error(err)),
    };
    // A directory or device at the path would otherwise give a confusing
    // parse error (or, for /dev/zero, read until the cap).
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(read_error(std::io::Error::other("not a regular file")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn missing_optional_file_is_none_and_required_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.plist");
        assert!(read_plist(&path, false).unwrap().is_none());
        let err = read_plist(&path, true).unwrap_err();
        assert!(matches!(err, ConfigError::NotFound { .. }));
        assert!(
            err.to_string().contains("absent.plist does not exist"),
            "{err}"
        );
    }

    #[test]
    fn too_large_file_is_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "big.plist",
            &vec![b' '; MAX_FILE_BYTES as usize + 1],
        );
        let err = read_plist(&path, false).unwrap_err();
        assert!(matches!(err, ConfigError::TooLarge { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("big.plist is larger than 1048576 bytes")
        );
    }

    #[test]
    fn directory_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_plist(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn deep_xml_nesting_is_an_error_not_an_abort() {
        // 65,000 levels: deep enough to abort a recursive parser on a
        // 2 MiB test-thread stack (crates-notes.md: 30,000 did), small
        // enough (15 bytes a level) to pass the 1 MiB cap and be walked.
        let levels = 65_000;
        let mut xml = String::from("<?xml version=\"1.0\"?><plist version=\"1.0\">");
        xml.push_str(&"<array>".repeat(levels));
        xml.push_str(&"</array>".repeat(levels));
        xml.push_str("</plist>");
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "deep.plist", xml.as_bytes());
        let err = read_plist(&path, false).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::TooDeep {
                    limit: MAX_DEPTH,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("deep.plist nests"), "{err}");
    }

    #[test]
    fn deep_binary_nesting_is_an_error() {
        let mut value = plist::Value::Boolean(true);
        for _ in 0..(MAX_DEPTH + 5) {
            value = plist::Value::Array(vec![value]);
        }
        let mut bytes = Vec::new();
        value.to_writer_binary(&mut bytes).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "deep.bin.plist", &bytes);
        let err = read_plist(&path, false).unwrap_err();
        assert!(matches!(err, ConfigError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn binary_reference_bomb_is_refused() {
        // Object k is an array holding object k-1 four times; the plist
        // crate expands shared references, so 12 levels (shallow enough to
        // pass the depth cap) would be 4^12 ≈ 16.7 million values.
        // Hand-built because no encoder writes shared references on purpose.
        let levels: u8 = 12;
        let mut bytes = b"bplist00".to_vec();
        let mut offsets = vec![bytes.len()];
        bytes.push(0x09); // object 0: true
        for k in 1..=levels {
            offsets.push(bytes.len());
            bytes.extend_from_slice(&[0xA4, k - 1, k - 1, k - 1, k - 1]); // array of 4 refs
        }
        let table = bytes.len();
        for off in &offsets {
            bytes.extend_from_slice(&u16::try_from(*off).unwrap().to_be_bytes());
        }
        let mut trailer = [0u8; 32];
        trailer[6] = 2; // offset int size
        trailer[7] = 1; // object ref size
        trailer[8..16].copy_from_slice(&(offsets.len() as u64).to_be_bytes());
        trailer[16..24].copy_from_slice(&u64::from(levels).to_be_bytes()); // root
        trailer[24..32].copy_from_slice(&(table as u64).to_be_bytes());
        bytes.extend_from_slice(&trailer);

        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "bomb.plist", &bytes);
        let err = read_plist(&path, false).unwrap_err();
        assert!(matches!(err, ConfigError::TooManyValues { .. }), "{err}");
        assert!(
            err.to_string().contains("bomb.plist holds more than"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_file_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "corrupt.plist",
            b"<?xml version=\"1.0\"?><plist><dict><key>Mode</key>",
        );
        let err = read_plist(&path, false).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("plutil -lint"), "{text}");
    }

    #[test]
    fn every_plist_type_passes_the_walk() {
        // The walk sees values through serde, where dates, data and UIDs
        // take unusual paths; none of them may be refused.
        let mut dict = plist::Dictionary::new();
        dict.insert(
            "date".into(),
            plist::Value::Date(std::time::SystemTime::UNIX_EPOCH.into()),
        );
        dict.insert("data".into(), plist::Value::Data(vec![0, 1, 2]));
        dict.insert("uid".into(), plist::Value::Uid(plist::Uid::new(7)));
        dict.insert("real".into(), plist::Value::Real(-1.5));
        dict.insert("big".into(), plist::Value::Integer(u64::MAX.into()));
        dict.insert("neg".into(), plist::Value::Integer(i64::MIN.into()));
        dict.insert(
            "list".into(),
            plist::Value::Array(vec![plist::Value::Boolean(false)]),
        );
        let value = plist::Value::Dictionary(dict);
        let mut binary = Vec::new();
        value.to_writer_binary(&mut binary).unwrap();
        assert_eq!(parse_bytes(Path::new("/b.plist"), &binary).unwrap(), value);
        // XML has no UID type.
        let mut without_uid = value.clone();
        if let Some(d) = without_uid.as_dictionary_mut() {
            d.remove("uid");
        }
        let mut xml = Vec::new();
        without_uid.to_writer_xml(&mut xml).unwrap();
        assert_eq!(
            parse_bytes(Path::new("/x.plist"), &xml).unwrap(),
            without_uid
        );
    }

    fn fixture_bytes(name: &str) -> Vec<u8> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
        std::fs::read(dir.join(name)).unwrap()
    }

    proptest::proptest! {
        // Mutated real XML and binary preferences: an error or a value,
        // never a panic or an abort.
        #[test]
        fn mutated_files_never_panic(
            binary in proptest::bool::ANY,
            edits in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 1..8),
        ) {
            let mut bytes = fixture_bytes(if binary { "binary.plist" } else { "managed.plist" });
            for (at, byte) in edits {
                let len = bytes.len();
                bytes[at % len] = byte;
            }
            let _ = parse_bytes(Path::new("/m.plist"), &bytes);
        }
    }

    #[test]
    fn origin_displays_kind_and_path() {
        assert_eq!(Origin::Default.to_string(), "default");
        assert_eq!(
            Origin::Managed(PathBuf::from(MANAGED_PATH)).to_string(),
            "managed: /Library/Managed Preferences/io.lenscap.agent.plist"
        );
    }
}
