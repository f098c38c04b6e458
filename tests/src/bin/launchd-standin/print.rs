//! `launchctl print <service-target>` for a job of `launchd-standin` (a
//! test fixture), in the real command's tab-indented shape.

use std::fmt::Write as _;

use crate::job::{Exit, Job};

impl Job {
    /// `launchctl print <target>`, in the real tab-indented shape (a subset
    /// of its keys). The nested blocks repeat keys such as `state`, as the
    /// real output does, so a reader must take only one-tab lines.
    pub fn describe(&self, target: &str) -> String {
        let running = self.pid.is_some();
        let state = match (running, self.restart_at) {
            (true, _) => "running",
            (false, Some(_)) => "spawn scheduled",
            (false, None) => "not running",
        };
        let domain = target.strip_suffix(&format!("/{}", self.spec.label));
        let kind = if target.starts_with("system/") {
            "LaunchDaemon"
        } else {
            "LaunchAgent"
        };
        let mut s = String::new();
        let _ = writeln!(s, "{target} = {{");
        let _ = writeln!(s, "\tactive count = {}", u8::from(running));
        let _ = writeln!(s, "\tpath = {}", self.spec.plist.display());
        let _ = writeln!(s, "\ttype = {kind}\n\tstate = {state}\n");
        let _ = writeln!(
            s,
            "\tprogram = {}\n\targuments = {{",
            self.spec.program.display()
        );
        for arg in &self.spec.args {
            let _ = writeln!(s, "\t\t{arg}");
        }
        let _ = writeln!(s, "\t}}\n\n\tdomain = {}", domain.unwrap_or(target));
        let coalition = if running { "active" } else { "inactive" };
        let _ = writeln!(s, "\tresource coalition = {{\n\t\ttype = resource");
        let _ = writeln!(s, "\t\tstate = {coalition}\n\t\tname = {target}\n\t}}\n");
        let _ = writeln!(s, "\truns = {}", self.runs);
        if let Some(pid) = self.pid {
            let _ = writeln!(s, "\tpid = {pid}");
        }
        let _ = match self.last_exit {
            None => writeln!(s, "\tlast exit code = (never exited)"),
            Some(Exit::Code(c)) => writeln!(s, "\tlast exit code = {c}{}", sysexit_name(c)),
            Some(Exit::Signal(n)) => {
                writeln!(s, "\tlast terminating signal = {}: {n}", signal_name(n))
            }
        };
        s.push_str("}\n");
        s
    }
}

/// launchctl writes sysexits(3) codes by name: `78: EX_CONFIG`.
fn sysexit_name(code: i32) -> String {
    const NAMES: [&str; 15] = [
        "EX_USAGE",
        "EX_DATAERR",
        "EX_NOINPUT",
        "EX_NOUSER",
        "EX_NOHOST",
        "EX_UNAVAILABLE",
        "EX_SOFTWARE",
        "EX_OSERR",
        "EX_OSFILE",
        "EX_CANTCREAT",
        "EX_IOERR",
        "EX_TEMPFAIL",
        "EX_PROTOCOL",
        "EX_NOPERM",
        "EX_CONFIG",
    ];
    let name = usize::try_from(code - 64).ok().and_then(|i| NAMES.get(i));
    name.map(|n| format!(": {n}")).unwrap_or_default()
}

/// macOS's strsignal(3) wording, which launchctl prints.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "Hangup",
        libc::SIGINT => "Interrupt",
        libc::SIGQUIT => "Quit",
        libc::SIGABRT => "Abort trap",
        libc::SIGKILL => "Killed",
        libc::SIGSEGV => "Segmentation fault",
        libc::SIGPIPE => "Broken pipe",
        libc::SIGTERM => "Terminated",
        _ => "Signal",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;
    use std::time::Duration;

    use crate::job::{Exit, Job, Spec};

    /// A LaunchAgent as the project's macOS reference describes one (its
    /// `launchctl print` example is the shape `describe` follows).
    fn job() -> Job {
        let xml = r#"<plist version="1.0"><dict>
            <key>Label</key><string>us.zoom.ZoomOpener</string>
            <key>ProgramArguments</key><array>
                <string>/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener</string>
            </array>
            <key>KeepAlive</key><true/>
        </dict></plist>"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.plist");
        std::fs::write(&path, xml).unwrap();
        let mut job = Job::new(Spec::from_plist(&path, Duration::ZERO).unwrap());
        job.spec.plist = Path::new("/Users/a/Library/LaunchAgents/us.zoom.ZoomOpener.plist").into();
        job
    }

    #[test]
    fn print_has_one_tab_keys_and_nested_repeats() {
        let mut job = job();
        job.restart_at = None; // as once started
        job.pid = Some(4242);
        job.runs = 1;
        let expected = "gui/501/us.zoom.ZoomOpener = {
\tactive count = 1
\tpath = /Users/a/Library/LaunchAgents/us.zoom.ZoomOpener.plist
\ttype = LaunchAgent
\tstate = running

\tprogram = /Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener
\targuments = {
\t\t/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener
\t}

\tdomain = gui/501
\tresource coalition = {
\t\ttype = resource
\t\tstate = active
\t\tname = gui/501/us.zoom.ZoomOpener
\t}

\truns = 1
\tpid = 4242
\tlast exit code = (never exited)
}
";
        assert_eq!(job.describe("gui/501/us.zoom.ZoomOpener"), expected);

        let line = |job: &Job, key: &str| {
            let text = job.describe("system/us.zoom.ZoomOpener");
            let prefix = format!("\t{key} = ");
            let found = text.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
            found.map(str::to_string)
        };
        job.exited(Exit::Code(78), false);
        assert_eq!(line(&job, "state").as_deref(), Some("not running"));
        assert_eq!(line(&job, "pid"), None);
        assert_eq!(line(&job, "type").as_deref(), Some("LaunchDaemon"));
        assert_eq!(
            line(&job, "last exit code").as_deref(),
            Some("78: EX_CONFIG")
        );
        job.exited(Exit::Code(1), true);
        assert_eq!(line(&job, "state").as_deref(), Some("spawn scheduled"));
        assert_eq!(line(&job, "last exit code").as_deref(), Some("1"));
        job.exited(Exit::Signal(15), false);
        let signal = line(&job, "last terminating signal");
        assert_eq!(signal.as_deref(), Some("Terminated: 15"));
    }
}
