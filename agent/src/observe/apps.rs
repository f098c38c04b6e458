//! Which apps are installed: the bundle identifiers of the `*.app` bundles
//! in `ApplicationDirs`. The judge uses them to tell whether a helper's
//! parent app still exists (a helper that outlived its app is undisclosed).

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::model::ScanError;

/// An Info.plist is a few KiB; anything past this is not one we trust.
const MAX_INFO_PLIST: u64 = 1024 * 1024;

/// Bundle ids of every `*.app` directly in each directory (globs allowed)
/// and one folder deeper (`/Applications/Utilities/*.app`). Symlinked
/// bundles are skipped: a user-planted link must not steer a root daemon.
pub fn installed_bundle_ids(dirs: &[String]) -> (BTreeSet<String>, Vec<ScanError>) {
    let mut ids = BTreeSet::new();
    let mut errors = Vec::new();
    for pattern in dirs {
        let paths = match glob::glob(pattern) {
            Ok(p) => p,
            Err(e) => {
                errors.push(ScanError {
                    source: "applications".into(),
                    path: Some(pattern.into()),
                    message: format!("invalid glob: {e}"),
                });
                continue;
            }
        };
        for dir in paths.flatten() {
            collect(&dir, 1, &mut ids, &mut errors);
        }
    }
    (ids, errors)
}

fn collect(dir: &Path, depth: u8, ids: &mut BTreeSet<String>, errors: &mut Vec<ScanError>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() {
            continue;
        }
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "app") {
            match bundle_id(&path.join("Contents/Info.plist")) {
                Ok(Some(id)) => {
                    ids.insert(id);
                }
                Ok(None) => {}
                Err(message) => errors.push(ScanError {
                    source: "applications".into(),
                    path: Some(path),
                    message,
                }),
            }
        } else if depth > 0 {
            collect(&path, depth - 1, ids, errors);
        }
    }
}

/// `CFBundleIdentifier` of one Info.plist; `Ok(None)` when the bundle has
/// no Info.plist or no identifier.
fn bundle_id(info: &Path) -> Result<Option<String>, String> {
    Ok(info_plist(info)?
        .as_ref()
        .and_then(|d| d.get("CFBundleIdentifier"))
        .and_then(|v| v.as_string())
        .map(str::to_owned))
}

/// The top-level dictionary of a bundle's Info.plist, read without
/// following a link (a user-planted link must not make root read another
/// file) and refused past 1 MiB; `Ok(None)` when there is no Info.plist
/// or its top level is not a dictionary.
pub fn info_plist(info: &Path) -> Result<Option<plist::Dictionary>, String> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(info)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", info.display())),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", info.display()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INFO_PLIST + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading {}: {e}", info.display()))?;
    if bytes.len() as u64 > MAX_INFO_PLIST {
        return Err(format!("{} is larger than 1 MiB", info.display()));
    }
    let value = crate::parse::launchd::parse_plist_value(&bytes)
        .map_err(|e| format!("{}: {e}", info.display()))?;
    Ok(value.into_dictionary())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(root: &Path, rel: &str, id: Option<&str>) {
        let contents = root.join(rel).join("Contents");
        std::fs::create_dir_all(&contents).unwrap();
        if let Some(id) = id {
            let mut d = plist::Dictionary::new();
            d.insert("CFBundleIdentifier".into(), id.into());
            plist::Value::Dictionary(d)
                .to_file_xml(contents.join("Info.plist"))
                .unwrap();
        }
    }

    #[test]
    fn finds_top_level_and_utilities_apps() {
        let dir = tempfile::Builder::new().prefix("apps").tempdir().unwrap();
        let r = dir.path();
        app(r, "Applications/zoom.us.app", Some("us.zoom.xos"));
        app(
            r,
            "Applications/Utilities/Tool.app",
            Some("com.example.tool"),
        );
        app(r, "Applications/NoInfo.app", None);
        app(r, "Applications/A/B/TooDeep.app", Some("com.example.deep"));
        let pattern = r.join("Applications").display().to_string();
        let (ids, errors) = installed_bundle_ids(&[pattern]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            vec!["com.example.tool".to_string(), "us.zoom.xos".to_string()]
        );
    }

    #[test]
    fn symlinked_info_plist_and_garbage_are_errors_not_reads() {
        let dir = tempfile::Builder::new().prefix("apps").tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("Evil.app/Contents")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("Evil.app/Contents/Info.plist")).unwrap();
        std::fs::create_dir_all(r.join("Junk.app/Contents")).unwrap();
        std::fs::write(r.join("Junk.app/Contents/Info.plist"), b"\x00\xffjunk").unwrap();
        let (ids, errors) = installed_bundle_ids(&[r.display().to_string()]);
        assert!(ids.is_empty());
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
