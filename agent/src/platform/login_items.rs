//! Login items from Background Task Management: run `sfltool dumpbtm`
//! (macOS 13+) and read its report with [`crate::parse::btm`].
//!
//! `sfltool dumpbtm` needs root, and the BTM database
//! (`/private/var/db/com.apple.backgroundtaskmanagement/`) needs Full Disk
//! Access. Without them it fails ("authorization failed", exit 1) or prints
//! nothing. Either is an error here, never an empty list: "no login items"
//! read from a refusal would hide exactly what the agent looks for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::{self, CommandError};
use crate::model::PersistenceItem;
use crate::parse::btm::{login_items, parse_dumpbtm};

/// The most of `sfltool`'s output kept. Real dumps are tens to hundreds of
/// KiB; more than this is not a dump.
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LoginItemsError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(
        "`{program} dumpbtm` failed ({status}): {stderr} — it needs root, and the agent \
         needs Full Disk Access (MDM: com.apple.TCC.configuration-profile-policy, \
         SystemPolicyAllFiles)"
    )]
    Failed {
        program: PathBuf,
        status: String,
        stderr: String,
    },
    #[error(
        "`{program} dumpbtm` printed no `Records for UID` section (stdout began {start:?}); \
         without root and Full Disk Access it reports nothing"
    )]
    Unrecognised { program: PathBuf, start: String },
    #[error(
        "`{program} dumpbtm` printed more than {max} bytes; refused rather than read a partial dump"
    )]
    TooLarge { program: PathBuf, max: usize },
}

/// Run `<sfltool> dumpbtm` with a deadline and return its login items.
pub fn from_sfltool(
    sfltool: &Path,
    timeout: Duration,
) -> Result<Vec<PersistenceItem>, LoginItemsError> {
    let out = command::run(sfltool, &["dumpbtm"], timeout, MAX_OUTPUT)?;
    let program = sfltool.to_path_buf();
    if !out.success() {
        let status = match out.code {
            Some(code) => format!("exit {code}"),
            None => "killed by a signal".to_string(),
        };
        return Err(LoginItemsError::Failed {
            program,
            status,
            stderr: excerpt(&out.stderr_lossy()),
        });
    }
    if out.truncated {
        return Err(LoginItemsError::TooLarge {
            program,
            max: MAX_OUTPUT,
        });
    }
    let text = out.stdout_lossy();
    // Every real dump, even of an empty database, has at least the
    // per-user section headers.
    if !text.contains("Records for UID") {
        return Err(LoginItemsError::Unrecognised {
            program,
            start: excerpt(&text),
        });
    }
    Ok(login_items(&parse_dumpbtm(&text)))
}

/// The first line or so of a tool's output, for an error message.
fn excerpt(s: &str) -> String {
    let s = s.trim();
    let cut: String = s.chars().take(200).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::model::PersistenceKind;
    use std::os::unix::fs::PermissionsExt;

    const SAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/btm/dumpbtm-sample.txt"
    );

    /// A stand-in `sfltool`: a shell script that checks it was asked for
    /// `dumpbtm` and then runs `body`.
    fn shim(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("sfltool");
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = dumpbtm ] || {{ echo \"usage: sfltool dumpbtm\" >&2; exit 64; }}\n{body}\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn reads_login_items_from_the_dump() {
        let tmp = tempfile::tempdir().unwrap();
        let sfltool = shim(tmp.path(), &format!("cat '{SAMPLE}'"));
        let items = from_sfltool(&sfltool, Duration::from_secs(10)).unwrap();
        assert_eq!(items.len(), 6);
        assert!(items.iter().all(|i| i.kind == PersistenceKind::LoginItem));
        assert_eq!(items[0].label.as_deref(), Some("com.docker.helper"));
        assert_eq!(
            items[4].path,
            PathBuf::from("/Users/alice/.zoomus/ZoomOpener.app")
        );
    }

    #[test]
    fn refusal_says_root_and_full_disk_access() {
        let tmp = tempfile::tempdir().unwrap();
        let sfltool = shim(
            tmp.path(),
            "echo 'sfltool[915:7291] authorization failed' >&2; exit 1",
        );
        let err = from_sfltool(&sfltool, Duration::from_secs(10)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LoginItemsError::Failed { .. }), "{msg}");
        assert!(msg.contains("exit 1"), "{msg}");
        assert!(msg.contains("authorization failed"), "{msg}");
        assert!(
            msg.contains("root") && msg.contains("Full Disk Access"),
            "{msg}"
        );
    }

    #[test]
    fn empty_output_is_an_error_not_an_empty_list() {
        let tmp = tempfile::tempdir().unwrap();
        let sfltool = shim(tmp.path(), "exit 0");
        let err = from_sfltool(&sfltool, Duration::from_secs(10)).unwrap_err();
        assert!(matches!(err, LoginItemsError::Unrecognised { .. }), "{err}");
    }

    #[test]
    fn dump_with_no_login_items_is_an_empty_list() {
        let tmp = tempfile::tempdir().unwrap();
        let sfltool = shim(
            tmp.path(),
            "printf '========================\\n Records for UID 501 : X\\n========================\\n\\n Items:\\n'",
        );
        assert!(
            from_sfltool(&sfltool, Duration::from_secs(10))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn hang_and_missing_tool_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let sfltool = shim(tmp.path(), "sleep 30");
        let err = from_sfltool(&sfltool, Duration::from_millis(300)).unwrap_err();
        assert!(
            matches!(err, LoginItemsError::Command(CommandError::Timeout { .. })),
            "{err}"
        );
        let err = from_sfltool(&tmp.path().join("nope"), Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
