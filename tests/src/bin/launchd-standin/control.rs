//! The control socket of `launchd-standin` (a test fixture): the commands
//! the `launchctl` shim forwards, answered with the real `launchctl`'s text
//! and exit codes.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use lenscap_e2e::{LaunchctlReply, encode_standin_reply};

use crate::{Shared, load, wake_main_loop};

const BOOTOUT_USAGE: &str = "Unrecognized target specifier.\nUsage: launchctl bootout <domain-target> [service-path1, service-path2, ...] | <service-target>\n<service-target> takes a form of <domain-target>/<service-id>.\nPlease refer to `man launchctl` for explanation of the <domain-target> specifiers.\n";
const PRINT_USAGE: &str =
    "Unrecognized target specifier.\nUsage: launchctl print <service-target> | <domain-target>\n";
const BOOTSTRAP_USAGE: &str =
    "Usage: launchctl bootstrap <domain-target> [service-path, service-path2, ...]\n";

pub fn reply(code: i32, stdout: &str, stderr: &str) -> LaunchctlReply {
    LaunchctlReply {
        code,
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

/// Answer control connections one at a time, as launchd serialises its
/// requests: a `bootout` holds the next command until its job is gone.
pub fn serve(listener: &UnixListener, shared: &Shared) {
    for conn in listener.incoming().flatten() {
        if let Err(e) = answer(conn, shared) {
            eprintln!("launchd-standin: control connection: {e}");
        }
    }
}

fn answer(mut conn: UnixStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new((&conn).take(64 * 1024)).read_line(&mut line)?;
    let args: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
    let answer = command(&args, shared);
    conn.write_all(encode_standin_reply(&answer).as_bytes())
}

fn command(args: &[&str], shared: &Shared) -> LaunchctlReply {
    match args {
        ["bootout", target] => match Target::parse_service(target) {
            Some(t) => bootout(shared, &t),
            None => reply(64, "", BOOTOUT_USAGE),
        },
        ["bootout", _, _, ..] => reply(
            64,
            "",
            "launchd-standin models only `bootout <service-target>`\n",
        ),
        ["bootstrap", domain, paths @ ..] if !paths.is_empty() => {
            let Some(domain) = Target::parse_domain(domain) else {
                return reply(64, "", BOOTSTRAP_USAGE);
            };
            let mut st = shared.lock();
            for path in paths {
                if let Err(failed) = load(shared, &mut st, &domain, Path::new(path)) {
                    return failed;
                }
            }
            wake_main_loop();
            reply(0, "", "")
        }
        ["print", target] => match Target::parse_service(target) {
            Some(t) => match shared.lock().jobs.get(&t.key()) {
                Some(job) => reply(0, &job.describe(&t.key()), ""),
                None => {
                    let text = format!(
                        "Could not find service \"{}\" in domain for {}\n",
                        t.label,
                        t.domain_desc()
                    );
                    reply(113, "", &text)
                }
            },
            None => reply(64, "", PRINT_USAGE),
        },
        ["bootout" | "print", ..] | ["bootstrap", ..] => {
            reply(64, "", "Usage: see `man launchctl`\n")
        }
        [other, ..] => reply(
            64,
            "",
            &format!("launchd-standin does not model `launchctl {other}`\n"),
        ),
        [] => reply(
            64,
            "",
            "Usage: launchctl <subcommand> ... | help [subcommand]\n",
        ),
    }
}

/// Unload a job: it will never be started again; SIGTERM its process and
/// wait until it and its process group are reaped (SIGKILL after its
/// `ExitTimeOut`).
fn bootout(shared: &Shared, t: &Target) -> LaunchctlReply {
    let mut st = shared.lock();
    let Some(job) = st.jobs.remove(&t.key()) else {
        return match shared.opts.bootout_missing {
            3 => reply(3, "", "Boot-out failed: 3: No such process\n"),
            _ => reply(
                113,
                "",
                "Boot-out failed: 113: Could not find specified service\n",
            ),
        };
    };
    shared.log(&format!("bootout {}", t.key()));
    let Some(pid) = job.pid else {
        return reply(0, "", "");
    };
    st.stopping.insert(pid, (t.key(), job.spec.abandon_group));
    // SAFETY: kill(2); the pid is unreaped (reaping needs this lock).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let mut deadline = Instant::now() + job.spec.exit_timeout;
    let mut killed = false;
    while st.stopping.contains_key(&pid) {
        let now = Instant::now();
        if now >= deadline {
            if killed {
                break; // unkillable (D state?): the reaper will finish it
            }
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
            deadline = now + Duration::from_secs(5);
        }
        st = shared
            .reaped
            .wait_timeout(st, deadline - now)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    // The reaper has SIGKILLed the rest of its process group; answer once
    // those are dead and reaped too, so the caller sees the whole job gone.
    // SAFETY: kill(2) with signal 0 only checks that the group exists.
    let group_left = || unsafe { libc::kill(-pid, 0) } == 0;
    let until = Instant::now() + Duration::from_secs(2);
    while !job.spec.abandon_group && group_left() && Instant::now() < until {
        st = shared
            .reaped
            .wait_timeout(st, Duration::from_millis(20))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    reply(0, "", "")
}

/// A `launchctl` service target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub domain: String,
    pub label: String,
}

impl Target {
    /// `system`, `gui/<uid>` or `user/<uid>` (the only domains
    /// modelled), normalised.
    pub fn parse_domain(s: &str) -> Option<String> {
        if s == "system" {
            return Some(s.into());
        }
        for kind in ["gui", "user"] {
            if let Some(rest) = s.strip_prefix(kind).and_then(|r| r.strip_prefix('/')) {
                let uid: u32 = rest.parse().ok()?;
                return Some(format!("{kind}/{uid}"));
            }
        }
        None
    }

    /// `system/<label>`, `gui/<uid>/<label>` or `user/<uid>/<label>`.
    pub fn parse_service(s: &str) -> Option<Target> {
        let (domain, label) = match s.strip_prefix("system/") {
            Some(label) => ("system".to_string(), label),
            None => {
                let (kind, rest) = s.split_once('/')?;
                let (uid, label) = rest.split_once('/')?;
                (Target::parse_domain(&format!("{kind}/{uid}"))?, label)
            }
        };
        let label = label.to_string();
        (!label.is_empty()).then_some(Target { domain, label })
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.domain, self.label)
    }

    /// The domain as `Could not find service "x" in domain for …` names it.
    pub fn domain_desc(&self) -> String {
        match self.domain.strip_prefix("gui/") {
            Some(uid) => format!("user gui: {uid}"),
            None => self.domain.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use super::*;
    use crate::job::domain_for;

    #[test]
    fn targets_parse_like_launchctl() {
        let t = Target::parse_service("gui/501/com.example.helper").unwrap();
        assert_eq!(
            (t.key().as_str(), t.domain_desc().as_str()),
            ("gui/501/com.example.helper", "user gui: 501")
        );
        let t = Target::parse_service("system/com.example.d").unwrap();
        assert_eq!(
            (t.label.as_str(), t.domain_desc().as_str()),
            ("com.example.d", "system")
        );
        for bad in [
            "com.example",
            "gui/501",
            "gui/x/l",
            "gui/501/",
            "system/",
            "user/x/l",
            "login/501/l",
            "",
        ] {
            assert_eq!(Target::parse_service(bad), None, "{bad}");
        }
        assert_eq!(Target::parse_domain("gui/0501").as_deref(), Some("gui/501"));
        assert_eq!(Target::parse_domain("system").as_deref(), Some("system"));
        assert_eq!(Target::parse_domain("gui/"), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            domain_for(Path::new("/L/LaunchDaemons"), Path::new("/nope")),
            "system"
        );
        let uid = std::fs::metadata(dir.path()).unwrap().uid();
        assert_eq!(
            domain_for(Path::new("/L/LaunchAgents"), dir.path()),
            format!("gui/{uid}")
        );
    }
}
