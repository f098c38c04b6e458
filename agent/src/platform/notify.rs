//! Telling the logged-in user what was done and how to undo it.
//!
//! On macOS a root daemon cannot post a notification itself (that needs an
//! app bundle and the user's session): it runs
//! `launchctl asuser <uid> sudo -u <user> osascript -e 'display notification …'`
//! (macos-reference.md). This module builds that command line and runs
//! it ([`show`]); the platform decides whom to tell. On Linux the same
//! command goes to the configured `LaunchctlPath` when it exists (the
//! end-to-end tests' stand-in records it and the uid it ran as).
//!
//! Why this shape is safe for a root daemon: `launchctl asuser` only
//! joins the user's session; `sudo -u <user>` then runs `osascript` as
//! that user, never root (uid 0 is refused before anything runs); the
//! text a helper's author influences (an app name) is one AppleScript
//! string literal, escaped by [`applescript_string`], so nothing of it is
//! run; and every program is named by absolute path.

/// An AppleScript string literal: `"` and `\` escaped, control characters
/// (which could end the `-e` script or fake a new statement) replaced by
/// spaces, and capped so a notification stays readable.
pub fn applescript_string(s: &str) -> String {
    const MAX: usize = 400;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().take(MAX) {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Arguments for `launchctl` that show a notification to `user` (`uid`).
/// Absolute tool paths: the daemon's PATH is launchd's minimal one.
pub fn macos_notification_args(uid: u32, user: &str, title: &str, message: &str) -> Vec<String> {
    let script = format!(
        "display notification {} with title {}",
        applescript_string(message),
        applescript_string(title)
    );
    vec![
        "asuser".into(),
        uid.to_string(),
        "/usr/bin/sudo".into(),
        "-u".into(),
        user.into(),
        "/usr/bin/osascript".into(),
        "-e".into(),
        script,
    ]
}

/// How long a notification command may take before it is killed: the
/// daemon's loop waits for it.
pub const NOTIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Show a notification to `user` (`uid`, never 0) through `launchctl`.
pub fn show(
    launchctl: &std::path::Path,
    uid: u32,
    user: &str,
    title: &str,
    message: &str,
) -> Result<(), String> {
    if uid == 0 {
        return Err("notifications never run as root".into());
    }
    let args = macos_notification_args(uid, user, title, message);
    let out =
        crate::command::run(launchctl, &args, NOTIFY_TIMEOUT, 4096).map_err(|e| e.to_string())?;
    if out.success() {
        Ok(())
    } else {
        Err(format!(
            "launchctl asuser exited {:?}: {}",
            out.code,
            out.stderr_lossy().trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_escaped_and_controls_dropped() {
        assert_eq!(applescript_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(
            applescript_string("line\"\ndo shell script \"rm"),
            "\"line\\\" do shell script \\\"rm\""
        );
    }

    #[test]
    fn notification_command_has_the_documented_shape() {
        let args = macos_notification_args(501, "ann", "T", "M");
        assert_eq!(
            args,
            [
                "asuser",
                "501",
                "/usr/bin/sudo",
                "-u",
                "ann",
                "/usr/bin/osascript",
                "-e",
                "display notification \"M\" with title \"T\""
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_stays_one_string_literal(s in ".*") {
            let lit = applescript_string(&s);
            // Inside the outer quotes, every quote is escaped.
            let inner = &lit[1..lit.len() - 1];
            let mut chars = inner.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    let next = chars.next();
                    proptest::prop_assert!(matches!(next, Some('"') | Some('\\')));
                } else {
                    proptest::prop_assert!(c != '"' && !c.is_control());
                }
            }
        }
    }
}
