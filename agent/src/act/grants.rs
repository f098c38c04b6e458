//! Plan step `reset_grants`: take back the camera, microphone and screen
//! recording grants a remediated helper holds, so that a helper restored
//! from quarantine (or reinstalled) has to ask the person again.
//!
//! macOS offers one way for a program to change a grant: `tccutil reset
//! <Service> <bundle id>` (macos-reference.md: "tccutil still offers only
//! reset"). It acts on the TCC database of the user it runs as, so a
//! user's grant is reset in that user's session — the same route lenscap's
//! notifications take:
//!
//! ```text
//! launchctl asuser <uid> /usr/bin/sudo -u <user> <TccutilPath> reset Camera us.zoom.ZoomOpener
//! ```
//!
//! and a grant in the system database (owned by root) is reset by running
//! `<TccutilPath> reset <Service> <bundle id>` as root. The command always
//! names the bundle id the TCC row names: lenscap never runs `tccutil reset
//! Camera` without a client, which would take the camera from every app.
//!
//! What is reset is decided in `plan::grant_resets` (whose database, within
//! whose reach); [`reset`] checks again right before it runs that the
//! database still belongs to the user the plan names and that the bundle
//! id cannot be read as anything but one argument.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command;
use crate::model::GrantReset;

/// `sudo` on every Mac; the daemon's PATH is launchd's minimal one.
pub const SUDO: &str = "/usr/bin/sudo";
/// Longest bundle id accepted (CFBundleIdentifier has no documented
/// limit; TCC rows seen in the wild are far shorter).
const MAX_BUNDLE_ID: usize = 255;
const MAX_OUTPUT: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error(
        "{client:?} is not a bundle id lenscap puts on a command line (letters, digits, '.', '-' and '_', not starting with '-', at most 255)"
    )]
    BadClient { client: String },
    #[error(
        "{} now belongs to uid {now:?}, not uid {planned} as planned; not reset",
        database.display()
    )]
    OwnerChanged {
        database: PathBuf,
        planned: u32,
        now: Option<u32>,
    },
    #[error("uid {uid} is outside the reach of uid {actor} whose finding this is")]
    OutsideReach { uid: u32, actor: u32 },
    #[error("uid {uid} has no user name, so no session to reset the grant in")]
    NoUser { uid: u32 },
    #[error("lenscap resets only camera, microphone and screen recording grants")]
    Service,
    #[error("running {program}: {detail}")]
    Command { program: PathBuf, detail: String },
    #[error("`{command}` exited {code:?}: {stderr}")]
    Failed {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
}

/// Is `client` safe to pass as one `tccutil` argument? Bundle ids are
/// reverse-DNS strings (`us.zoom.ZoomOpener`); anything else — a leading
/// `-` that would read as an option, spaces, control characters — comes
/// from a row lenscap did not expect and is refused.
pub fn check_client(client: &str) -> Result<(), GrantError> {
    let ok = !client.is_empty()
        && client.len() <= MAX_BUNDLE_ID
        && !client.starts_with('-')
        && client
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(GrantError::BadClient {
            client: client.chars().take(MAX_BUNDLE_ID).collect(),
        })
    }
}

/// The program and arguments that reset `grant`: `tccutil` itself for
/// root, else through `launchctl asuser` and `sudo -u <user>`.
pub fn command_line(
    launchctl: &Path,
    tccutil: &Path,
    grant: &GrantReset,
    user: Option<&str>,
) -> Result<(PathBuf, Vec<String>), GrantError> {
    check_client(&grant.client)?;
    let service = grant.service.tccutil_name().ok_or(GrantError::Service)?;
    let reset = vec![
        tccutil.display().to_string(),
        "reset".into(),
        service.into(),
        grant.client.clone(),
    ];
    if grant.uid == 0 {
        return Ok((tccutil.to_path_buf(), reset[1..].to_vec()));
    }
    let user = user.ok_or(GrantError::NoUser { uid: grant.uid })?;
    let mut args = vec![
        "asuser".to_string(),
        grant.uid.to_string(),
        SUDO.into(),
        "-u".into(),
        user.into(),
    ];
    args.extend(reset);
    Ok((launchctl.to_path_buf(), args))
}

/// Reset one grant for `actor`'s plan: check the database still belongs to
/// the planned user (lstat, no link followed) and that user is within the
/// actor's reach, then run [`command_line`]. `user` is the name of
/// `grant.uid`.
pub fn reset(
    launchctl: &Path,
    tccutil: &Path,
    grant: &GrantReset,
    user: Option<&str>,
    actor: u32,
    timeout: Duration,
) -> Result<(), GrantError> {
    use std::os::unix::fs::MetadataExt;
    if actor != 0 && actor != grant.uid {
        return Err(GrantError::OutsideReach {
            uid: grant.uid,
            actor,
        });
    }
    let now = std::fs::symlink_metadata(&grant.database)
        .ok()
        .filter(|m| m.file_type().is_file())
        .map(|m| m.uid());
    if now != Some(grant.uid) {
        return Err(GrantError::OwnerChanged {
            database: grant.database.clone(),
            planned: grant.uid,
            now,
        });
    }
    let (program, args) = command_line(launchctl, tccutil, grant, user)?;
    let out =
        command::run(&program, &args, timeout, MAX_OUTPUT).map_err(|e| GrantError::Command {
            program: program.clone(),
            detail: e.to_string(),
        })?;
    if out.success() {
        Ok(())
    } else {
        Err(GrantError::Failed {
            command: format!("{} {}", program.display(), args.join(" ")),
            code: out.code,
            stderr: out.stderr_lossy().trim().chars().take(1000).collect(),
        })
    }
}

/// What the person is told when files come back: the grants lenscap took,
/// to be given again if they trust the app. Empty when none were reset.
pub fn grant_again(grants: &[GrantReset]) -> Vec<String> {
    grants
        .iter()
        .map(|g| {
            format!(
                "lenscap reset the {} access of {} (uid {}); if you trust it, grant it again in \
                 System Settings › Privacy & Security › {}",
                g.service.json_name().replace('_', " "),
                g.client,
                g.uid,
                match g.service.tccutil_name() {
                    Some("ScreenCapture") => "Screen Recording",
                    Some(s) => s,
                    None => "Full Disk Access",
                }
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
#[path = "grants/tests.rs"]
mod tests;
