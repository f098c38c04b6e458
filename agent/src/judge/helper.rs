//! Criterion 3 of docs/design.md §2 — was it started by persistence or by
//! another application, rather than by a person? — and the never-list of
//! things lenscap never acts on, whatever a rule or the catalog says.

use std::path::Path;

use super::Observations;
use super::correlate::Link;
use super::heuristics::Code;
use super::locate;
use crate::model::{ProcessIdentity, enclosing_bundle};

/// The main program of a top-level app (`X.app/Contents/MacOS/X`), not a
/// helper nested inside one.
fn is_app_main(exe: &Path) -> bool {
    enclosing_bundle(exe).is_some_and(|b| exe.parent() == Some(&b.join("Contents/MacOS")))
}

/// Criterion 3: was it started by persistence or by another application,
/// rather than by a person?
///
/// A persistence item starting it settles the question before any
/// terminal is looked at: a plist can run its program under a pty
/// (`script -qc`), and a terminal does not make what persistence starts
/// a person's doing. Only without a link does a terminal (its own or its
/// parent's) mean a person started it.
pub(crate) fn helper(
    p: &ProcessIdentity,
    links: &[Link],
    obs: &Observations,
) -> (bool, Vec<String>) {
    let parent = obs.processes.get(&p.ppid).filter(|q| q.pid != p.pid);
    let tty_parent = parent.filter(|q| q.interactive);
    if !links.is_empty() {
        let mut why: Vec<String> = links
            .iter()
            .map(|l| format!("it is a helper: {}", l.how))
            .collect();
        let tty = if p.interactive {
            Some("it runs with a controlling terminal".to_string())
        } else {
            tty_parent.map(|q| format!("its parent {} (pid {}) runs in a terminal", q.name, q.pid))
        };
        if let Some(tty) = tty {
            why.push(format!(
                "{tty}, but a persistence item starts it, so the terminal does not make it a \
                 person's doing"
            ));
        }
        return (true, why);
    }
    if p.interactive {
        return (
            false,
            vec![
                "it runs with a controlling terminal and no persistence item starts it: a \
                 person started it from a shell, so it is not a helper"
                    .into(),
            ],
        );
    }
    if let Some(q) = tty_parent {
        return (
            false,
            vec![format!(
                "its parent {} (pid {}) runs in a terminal and no persistence item starts it: \
                 a person started it, so it is not a helper",
                q.name, q.pid
            )],
        );
    }
    if let Some(q) = parent.filter(|q| q.pid != 1)
        && let Some(bundle) = &q.bundle
    {
        return (
            true,
            vec![format!(
                "it is a helper: the app {} (pid {}) started it",
                bundle.display(),
                q.pid
            )],
        );
    }
    if p.ppid == 1 {
        if p.path.as_deref().is_some_and(is_app_main) {
            return (
                false,
                vec![
                    "it is an app's main program whose parent is launchd, as for every app a \
                     person opens from Finder or the Dock; no persistence item or other app \
                     starts it, so it is not counted as a helper"
                        .into(),
                ],
            );
        }
        return (
            true,
            vec![
                "it is a helper: its parent is launchd (pid 1) and no terminal is involved, so \
                 it was started on someone's behalf"
                    .into(),
            ],
        );
    }
    let parent_name = parent.map_or_else(String::new, |q| format!(" {}", q.name));
    (
        false,
        vec![format!(
            "no persistence item starts it and its parent{parent_name} (pid {}) is neither \
             launchd nor an app, so it is not counted as a helper",
            p.ppid
        )],
    )
}

/// The never-list: things lenscap never acts on, whatever a rule says.
pub(crate) fn protected(p: &ProcessIdentity, obs: &Observations) -> Option<String> {
    protected_running(p, obs, Code::Own, false)
}

/// The never-list for a process judged by what it runs (`code`, from
/// `heuristics::code_of`). An interpreter running a script, or inline
/// code a persistence item hands it (`persistent`), is that code's
/// process: Apple's signature on the interpreter does not protect it, so
/// it may be terminated (the interpreter's file is never touched: act
/// moves the script or the plist). A script that is part of the sealed
/// OS is still never acted on; so is a `/System` plist's inline code
/// (checked with the item).
pub(crate) fn protected_running(
    p: &ProcessIdentity,
    obs: &Observations,
    code: Code<'_>,
    persistent: bool,
) -> Option<String> {
    let path = p.path.as_deref();
    let judged_by_code = match code {
        Code::Own => false,
        Code::Script(_) => true,
        Code::Inline => persistent,
    };
    if p.pid == 0 {
        Some("it is the kernel (pid 0)".into())
    } else if p.pid == 1 {
        Some("it is launchd (pid 1)".into())
    } else if obs.agent_pid != 0 && p.pid == obs.agent_pid {
        Some("it is lenscap itself".into())
    } else if path.is_some() && path == obs.agent_exe.as_deref() {
        Some("it is lenscap's own executable".into())
    } else if let Code::Script(script) = code
        && locate::is_sealed_os(script)
    {
        Some(format!(
            "the script it runs, {}, is part of macOS",
            script.display()
        ))
    } else if judged_by_code {
        None
    } else if p.signature.is_apple_platform() {
        Some(format!("{} is an Apple platform binary", p.name))
    } else if path.is_some_and(locate::is_system) {
        Some("it lives under /System".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::testkit::*;

    #[test]
    fn helper_cases() {
        let link = Link {
            item: 0,
            how: "started by LaunchAgent x".into(),
        };
        let mut obs = observations();
        obs.processes.insert(
            300,
            process(300, 1, "/Applications/Acme.app/Contents/MacOS/Acme", "Acme"),
        );
        obs.processes
            .insert(400, interactive(process(400, 1, "/bin/zsh", "zsh")));
        obs.processes
            .insert(500, process(500, 1, "/usr/sbin/cron", "cron"));
        let table = [
            // A persistence item starting it settles it, terminal or not
            // (`script -qc` gives a plist's program a pty).
            (
                interactive(process(10, 1, "/x/h", "h")),
                vec![link.clone()],
                true,
                "a persistence item starts it, so the terminal does not make it",
            ),
            (
                process(19, 400, "/x/h", "h"),
                vec![link.clone()],
                true,
                "its parent zsh (pid 400) runs in a terminal, but a persistence item",
            ),
            (
                interactive(process(20, 1, "/x/h", "h")),
                vec![],
                false,
                "controlling terminal and no persistence item starts it",
            ),
            (
                process(11, 400, "/x/h", "h"),
                vec![],
                false,
                "runs in a terminal",
            ),
            (
                process(12, 500, "/x/h", "h"),
                vec![link],
                true,
                "LaunchAgent x",
            ),
            (
                process(13, 300, "/x/h", "h"),
                vec![],
                true,
                "the app /Applications/Acme.app",
            ),
            (process(14, 1, "/x/h", "h"), vec![], true, "launchd (pid 1)"),
            (
                process(15, 1, "/Applications/Foo.app/Contents/MacOS/Foo", "Foo"),
                vec![],
                false,
                "Finder or the Dock",
            ),
            (
                process(
                    16,
                    1,
                    "/Applications/Foo.app/Contents/Helpers/foo-web",
                    "foo-web",
                ),
                vec![],
                true,
                "launchd (pid 1)",
            ),
            (
                process(17, 500, "/x/h", "h"),
                vec![],
                false,
                "parent cron (pid 500)",
            ),
            (
                process(18, 999, "/x/h", "h"),
                vec![],
                false,
                "(pid 999) is neither",
            ),
        ];
        for (p, links, want, words) in table {
            let (is_helper, why) = helper(&p, &links, &obs);
            assert_eq!(is_helper, want, "pid {}", p.pid);
            assert!(why.join(" ").contains(words), "{words}: {why:?}");
        }
    }

    #[test]
    fn never_list() {
        let obs = observations();
        let table = [
            (process(0, 0, "/kernel", "kernel_task"), Some("kernel")),
            (process(1, 0, "/sbin/launchd", "launchd"), Some("launchd")),
            (
                process(AGENT_PID, 1, "/elsewhere", "lenscap"),
                Some("lenscap itself"),
            ),
            (process(5, 1, AGENT_EXE, "lenscap"), Some("own executable")),
            (
                apple(process(6, 1, "/usr/libexec/x", "x"), "com.apple.x"),
                Some("Apple platform"),
            ),
            (process(7, 1, "/System/Library/x", "x"), Some("/System")),
            (process(8, 1, "/SystemX/x", "x"), None),
            (
                process(9, 1, "/Users/ann/.zoomus/ZoomOpener", "ZoomOpener"),
                None,
            ),
        ];
        for (p, want) in table {
            let got = protected(&p, &obs);
            match want {
                Some(words) => assert!(got.as_deref().unwrap_or("").contains(words), "{p:?}"),
                None => assert_eq!(got, None, "{p:?}"),
            }
        }
    }
}
