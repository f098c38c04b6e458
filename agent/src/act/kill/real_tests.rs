//! `terminate_tree` on Linux with real processes and real signals, through
//! `platform::Native` (pidfd-verified signals, `/proc` child scan).

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};

use super::*;
use crate::platform::{Native, Platform, Tools};

/// The Linux `Native` as a [`ProcessControl`]. (The daemon's own impl is
/// the lead's; this one exists so these tests drive the real platform.)
struct Linux(Native);

impl ProcessControl for Linux {
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
        Platform::process(&self.0, pid)
    }
    fn signal_verified(
        &self,
        expected: &ProcessIdentity,
        signal: i32,
    ) -> Result<SignalOutcome, PlatformError> {
        self.0.signal_verified(expected, signal)
    }
    fn child_pids(&self, pid: u32) -> Result<Vec<u32>, PlatformError> {
        self.0.child_pids(pid)
    }
}

fn linux() -> Linux {
    Linux(Native::new(Tools {
        codesign: "/usr/bin/codesign".into(),
        sfltool: "/usr/bin/sfltool".into(),
        launchctl: "/bin/launchctl".into(),
        utmpx: "/var/run/utmpx".into(),
    }))
}

/// A child that is killed and reaped however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(script: &str) -> Reaped {
    Reaped(
        Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not reached in 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `sleep` children of `pid` once both have exec'd (an identity taken
/// between fork and exec names `sh`, and would rightly be refused later).
fn two_sleeps(ctl: &Linux, pid: u32) -> Vec<ProcessIdentity> {
    eventually(|| {
        let kids: Vec<ProcessIdentity> = ctl
            .child_pids(pid)
            .ok()?
            .into_iter()
            .filter_map(|k| ctl.process(k).ok())
            .filter(|id| id.name == "sleep")
            .collect();
        (kids.len() == 2).then_some(kids)
    })
}

/// Gone: no such PID, or a zombie (exited, waiting for its parent), or the
/// PID now belongs to someone else.
fn gone(ctl: &Linux, id: &ProcessIdentity) -> bool {
    !matches!(ctl.process(id.pid), Ok(now) if same_process(&now, id))
}

#[test]
fn a_tree_of_sh_and_two_sleeps_is_gone() {
    let ctl = linux();
    let mut root = sh("sleep 30 & sleep 30 & wait");
    let root_id = ctl.process(root.0.id()).unwrap();
    let kids = two_sleeps(&ctl, root_id.pid);

    let started = Instant::now();
    let report = terminate_tree(&ctl, &root_id, Duration::from_secs(5));
    assert!(report.all_gone(), "{report:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "SIGTERM was enough; no wait for the grace period"
    );
    assert_eq!(report.processes.len(), 3, "{report:#?}");
    assert_eq!(report.processes[0].pid, root_id.pid, "root first");
    for p in &report.processes {
        assert_eq!(p.outcome, KillOutcome::Terminated, "{p:?}");
    }
    for kid in &kids {
        assert!(gone(&ctl, kid), "{kid:?}");
    }
    let status = root.0.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn a_process_ignoring_sigterm_is_killed_after_the_grace() {
    let ctl = linux();
    let mut root = sh("trap '' TERM; sleep 30; sleep 30");
    let root_id = ctl.process(root.0.id()).unwrap();
    // The sleep inherits the ignored SIGTERM (SIG_IGN survives exec).
    let kid = eventually(|| {
        let k = ctl.child_pids(root_id.pid).ok()?.into_iter().next()?;
        ctl.process(k).ok().filter(|id| id.name == "sleep")
    });

    let grace = Duration::from_millis(300);
    let started = Instant::now();
    let report = terminate_tree(&ctl, &root_id, grace);
    assert!(started.elapsed() >= grace);
    assert!(report.all_gone(), "{report:#?}");
    assert_eq!(report.outcome_of(root_id.pid), Some(&KillOutcome::Killed));
    assert_eq!(report.outcome_of(kid.pid), Some(&KillOutcome::Killed));
    assert!(gone(&ctl, &kid));
    assert_eq!(root.0.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn a_pid_whose_start_time_does_not_match_is_refused_and_survives() {
    let ctl = linux();
    let mut victim = sh("sleep 30 & wait");
    let real = ctl.process(victim.0.id()).unwrap();
    let kid = one_sleep(&ctl, real.pid);
    // What the agent would hold if the helper had exited and this process
    // had been given its PID: same PID, another start time.
    let mut remembered = real.clone();
    remembered.start_time.unix_us -= 5_000_000;

    let report = terminate_tree(&ctl, &remembered, Duration::from_millis(100));
    assert_eq!(
        report.outcome_of(real.pid),
        Some(&KillOutcome::IdentityChanged)
    );
    assert_eq!(
        report.processes.len(),
        1,
        "the stranger's children are not walked"
    );
    assert!(victim.0.try_wait().unwrap().is_none(), "untouched");
    assert!(!gone(&ctl, &kid), "its child untouched too");
    assert!(!gone(&ctl, &real));
    // Clean up the child sleep by its verified identity.
    let _ = ctl.signal_verified(&kid, libc::SIGKILL);
}

fn one_sleep(ctl: &Linux, pid: u32) -> ProcessIdentity {
    eventually(|| {
        let k = ctl.child_pids(pid).ok()?.into_iter().next()?;
        ctl.process(k).ok().filter(|id| id.name == "sleep")
    })
}

#[test]
fn an_exited_unreaped_root_is_already_gone() {
    let ctl = linux();
    let mut child = Reaped(
        Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let id = eventually(|| {
        ctl.process(child.0.id())
            .ok()
            .filter(|id| id.name == "sleep")
    });
    assert_eq!(
        ctl.signal_verified(&id, libc::SIGKILL).unwrap(),
        SignalOutcome::Sent
    );
    // Not reaped yet: a zombie with our child's PID and start time.
    eventually(|| ctl.process(id.pid).ok().filter(|now| now.path.is_none()));
    let report = terminate_tree(&ctl, &id, Duration::from_millis(100));
    assert_eq!(report.outcome_of(id.pid), Some(&KillOutcome::AlreadyGone));
    assert!(child.0.try_wait().unwrap().is_some());
}
