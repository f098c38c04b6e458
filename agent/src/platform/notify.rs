//! Telling the logged-in user what was done and how to undo it.
//!
//! On macOS a root daemon cannot post a notification itself (that needs an
//! app bundle and the user's session): it runs
//! `launchctl asuser <uid> sudo -u <user> osascript -e 'display notification …'`
//! (macos-reference.md). This module builds that command line; the
//! platform runs it. Everything here is pure and tested on any OS.

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
