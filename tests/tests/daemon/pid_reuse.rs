//! PID reuse: the helper the daemon judged exits, and another process gets
//! its PID before the kill. That process must not be signalled.
//!
//! Tested where the decision is made: `act::kill::terminate_tree` with the
//! real `platform::Native` (pidfd-verified signals), given the identity
//! captured while the helper ran — as the daemon's journaled plan holds
//! it. The impostor runs the *same* executable, so only the start time
//! tells them apart. The PID is forced as root through
//! `/proc/sys/kernel/ns_last_pid` (racy with other forks on the machine,
//! hence the retries, each checking the impostor got exactly the PID).

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lenscap::act::kill::{KillOutcome, ProcessControl, terminate_tree};
use lenscap::platform::{Native, Platform, SignalOutcome, Tools};
use lenscap_e2e::wait_until;

const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";
const SLEEP: &str = "/bin/sleep";

fn native() -> Native {
    Native::new(Tools {
        codesign: "/usr/bin/codesign".into(),
        sfltool: "/usr/bin/sfltool".into(),
        launchctl: "/bin/launchctl".into(),
        utmpx: "/var/run/utmpx".into(),
    })
}

/// A child killed and reaped however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleep_process() -> Reaped {
    Reaped(
        Command::new(SLEEP)
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep"),
    )
}

/// Spawn `sleep` with exactly `pid`, if the race allows.
fn spawn_with_pid(pid: u32) -> Option<Reaped> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(NS_LAST_PID)
        .ok()?;
    f.write_all((pid - 1).to_string().as_bytes()).ok()?;
    drop(f);
    let child = sleep_process();
    (child.0.id() == pid).then_some(child)
}

#[test]
fn a_pid_taken_by_another_process_before_the_kill_is_not_signalled() {
    if std::fs::OpenOptions::new()
        .write(true)
        .open(NS_LAST_PID)
        .is_err()
    {
        eprintln!(
            "SKIPPED a_pid_taken_by_another_process_before_the_kill_is_not_signalled: \
             {NS_LAST_PID} is not writable (needs root in the initial pid namespace's owner)"
        );
        return;
    }
    let n = native();
    let exe = std::fs::canonicalize(SLEEP).unwrap();
    for attempt in 1..=50 {
        let mut helper = sleep_process();
        let pid = helper.0.id();
        let judged = wait_until(Duration::from_secs(5), "the helper exec'd", || {
            Platform::process(&n, pid)
                .ok()
                .filter(|id| id.path.as_deref() == Some(exe.as_path()))
        });
        // Let the start-time clock tick (10 ms) so the two cannot share
        // one: then only the start time tells them apart.
        std::thread::sleep(Duration::from_millis(30));
        helper.0.kill().unwrap();
        helper.0.wait().unwrap();

        let Some(mut impostor) = spawn_with_pid(pid) else {
            continue;
        };
        let now = wait_until(Duration::from_secs(5), "the impostor exec'd", || {
            Platform::process(&n, pid)
                .ok()
                .filter(|id| id.path.as_deref() == Some(exe.as_path()))
        });
        assert_eq!((now.pid, &now.path), (judged.pid, &judged.path));
        assert_ne!(
            now.start_time, judged.start_time,
            "same pid, same exe, later start"
        );

        let report = terminate_tree(&n, &judged, Duration::from_millis(200));
        assert_eq!(
            report.outcome_of(pid),
            Some(&KillOutcome::IdentityChanged),
            "{report:#?}"
        );
        assert!(report.all_gone(), "our helper is gone: {report:#?}");
        // The verified signal itself refuses too, for the harshest signal.
        assert_eq!(
            ProcessControl::signal_verified(&n, &judged, libc::SIGKILL).unwrap(),
            SignalOutcome::IdentityChanged
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            impostor.0.try_wait().unwrap(),
            None,
            "the impostor was signalled (attempt {attempt})"
        );
        assert!(lenscap_e2e::pid_running(pid));
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        return;
    }
    panic!("could not get a pid reused in 50 attempts (other forks kept winning the race)");
}
