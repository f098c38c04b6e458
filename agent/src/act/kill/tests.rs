//! Tests of `terminate_tree`: the rules against an in-memory process table
//! (every race can be staged), then the real thing on Linux with real
//! processes and real signals through `platform::Native`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::*;
use crate::model::{Signature, StartTime};

fn ident(pid: u32, ppid: u32) -> ProcessIdentity {
    ProcessIdentity {
        pid,
        ppid,
        start_time: StartTime {
            unix_us: 1_000_000 * u64::from(pid),
            resolution_us: 10_000,
        },
        path: Some(format!("/opt/helper/bin{pid}").into()),
        args: vec!["helper".into()],
        uid: 501,
        user: None,
        name: format!("helper{pid}"),
        interactive: false,
        bundle: None,
        signature: Signature::not_supported(),
    }
}

/// How a fake process answers SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OnTerm {
    Exit,
    Ignore,
    /// Ignore it and fork a new child with this PID.
    IgnoreAndFork(u32),
}

#[derive(Debug, Clone)]
struct Proc {
    id: ProcessIdentity,
    on_term: OnTerm,
    unkillable: bool,
}

/// An in-memory process table that obeys signals.
#[derive(Default)]
struct Fake {
    procs: RefCell<BTreeMap<u32, Proc>>,
    /// Every signal actually delivered, in order.
    delivered: RefCell<Vec<(u32, i32)>>,
    /// `child_pids` answers from this list when present (strangers, cycles).
    listed: HashMap<u32, Vec<u32>>,
    /// `process` fails with an I/O error for these.
    unreadable: HashSet<u32>,
    /// Just before the first signal to one of these, the process exits and
    /// a stranger takes its PID.
    reused_before_signal: RefCell<HashSet<u32>>,
    /// Just before the first signal to one of these, it execs another
    /// program: same PID and start time, another executable.
    exec_before_signal: RefCell<HashSet<u32>>,
}

impl Fake {
    fn add(&self, pid: u32, ppid: u32, on_term: OnTerm) {
        self.procs.borrow_mut().insert(
            pid,
            Proc {
                id: ident(pid, ppid),
                on_term,
                unkillable: false,
            },
        );
    }
    fn alive(&self, pid: u32) -> bool {
        self.procs.borrow().contains_key(&pid)
    }
    fn delivered(&self) -> Vec<(u32, i32)> {
        self.delivered.borrow().clone()
    }
    fn stranger(pid: u32) -> ProcessIdentity {
        let mut s = ident(pid, 1);
        s.start_time.unix_us += 777;
        s.path = Some("/usr/bin/stranger".into());
        s
    }
    fn exit(&self, pid: u32) {
        let mut procs = self.procs.borrow_mut();
        procs.remove(&pid);
        // The kernel hands orphans to PID 1.
        for p in procs.values_mut().filter(|p| p.id.ppid == pid) {
            p.id.ppid = 1;
        }
    }
}

impl ProcessControl for Fake {
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
        if self.unreadable.contains(&pid) {
            return Err(PlatformError::io(
                format!("/proc/{pid}/status"),
                std::io::Error::from_raw_os_error(libc::EACCES),
            ));
        }
        self.procs
            .borrow()
            .get(&pid)
            .map(|p| p.id.clone())
            .ok_or(PlatformError::NoSuchProcess { pid })
    }

    fn signal_verified(
        &self,
        expected: &ProcessIdentity,
        signal: i32,
    ) -> Result<SignalOutcome, PlatformError> {
        let pid = expected.pid;
        if self.reused_before_signal.borrow_mut().remove(&pid) {
            let mut procs = self.procs.borrow_mut();
            procs.insert(
                pid,
                Proc {
                    id: Fake::stranger(pid),
                    on_term: OnTerm::Exit,
                    unkillable: false,
                },
            );
        }
        if self.exec_before_signal.borrow_mut().remove(&pid)
            && let Some(p) = self.procs.borrow_mut().get_mut(&pid)
        {
            p.id.path = Some("/opt/helper/exec-ed".into());
            p.id.name = "exec-ed".into();
        }
        let Some(p) = self.procs.borrow().get(&pid).cloned() else {
            return Ok(SignalOutcome::Gone);
        };
        if p.id.start_time != expected.start_time || p.id.path != expected.path {
            return Ok(SignalOutcome::IdentityChanged);
        }
        self.delivered.borrow_mut().push((pid, signal));
        match (signal, p.on_term) {
            (libc::SIGKILL, _) if !p.unkillable => self.exit(pid),
            (libc::SIGTERM, OnTerm::Exit) => self.exit(pid),
            (libc::SIGTERM, OnTerm::IgnoreAndFork(child)) => {
                self.add(child, pid, OnTerm::Ignore);
                self.procs.borrow_mut().get_mut(&pid).unwrap().on_term = OnTerm::Ignore;
            }
            _ => {}
        }
        Ok(SignalOutcome::Sent)
    }

    fn child_pids(&self, pid: u32) -> Result<Vec<u32>, PlatformError> {
        if let Some(list) = self.listed.get(&pid) {
            return Ok(list.clone());
        }
        let procs = self.procs.borrow();
        if !procs.contains_key(&pid) {
            return Err(PlatformError::NoSuchProcess { pid });
        }
        Ok(procs
            .values()
            .filter(|p| p.id.ppid == pid)
            .map(|p| p.id.pid)
            .collect())
    }
}

const TERM: i32 = libc::SIGTERM;
const KILL: i32 = libc::SIGKILL;
const SHORT: Duration = Duration::from_millis(50);

/// root 100 → children 101, 102; 101 → grandchild 103.
fn family(on_term: OnTerm) -> Fake {
    let f = Fake::default();
    f.add(100, 1, on_term);
    f.add(101, 100, on_term);
    f.add(102, 100, on_term);
    f.add(103, 101, on_term);
    f
}

#[test]
fn root_first_then_parents_before_children() {
    let f = family(OnTerm::Exit);
    let report = terminate_tree(&f, &ident(100, 1), SHORT);
    assert_eq!(
        f.delivered(),
        vec![(100, TERM), (101, TERM), (102, TERM), (103, TERM)]
    );
    assert!(report.all_gone(), "{report:?}");
    let pids: Vec<u32> = report.processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids, vec![100, 101, 102, 103]);
    assert!(
        report
            .processes
            .iter()
            .all(|p| p.outcome == KillOutcome::Terminated)
    );
    assert_eq!(report.processes[0].name.as_deref(), Some("helper100"));
    assert_eq!(
        report.processes[0].path.as_deref(),
        Some(Path::new("/opt/helper/bin100"))
    );
}

#[test]
fn survivors_are_killed_after_the_grace_period() {
    let f = family(OnTerm::Ignore);
    let grace = Duration::from_millis(150);
    let started = Instant::now();
    let report = terminate_tree(&f, &ident(100, 1), grace);
    assert!(started.elapsed() >= grace, "the grace period was honoured");
    let kills: Vec<_> = f.delivered().into_iter().filter(|s| s.1 == KILL).collect();
    assert_eq!(
        kills,
        vec![(100, KILL), (101, KILL), (102, KILL), (103, KILL)]
    );
    assert!(
        report
            .processes
            .iter()
            .all(|p| p.outcome == KillOutcome::Killed)
    );
    assert!(report.all_gone());
}

#[test]
fn a_child_forked_during_the_grace_is_killed_too() {
    let f = Fake::default();
    f.add(100, 1, OnTerm::IgnoreAndFork(200));
    let report = terminate_tree(&f, &ident(100, 1), SHORT);
    assert!(!f.alive(100) && !f.alive(200), "{report:?}");
    assert_eq!(report.outcome_of(200), Some(&KillOutcome::Killed));
    assert!(report.all_gone());
}

#[test]
fn an_unkillable_process_is_reported_as_survived() {
    let f = Fake::default();
    f.add(100, 1, OnTerm::Ignore);
    f.procs.borrow_mut().get_mut(&100).unwrap().unkillable = true;
    let report = terminate_tree(&f, &ident(100, 1), SHORT);
    assert_eq!(report.outcome_of(100), Some(&KillOutcome::Survived));
    assert!(!report.all_gone());
}

#[test]
fn protected_roots_are_never_signalled() {
    let me = std::process::id();
    for (pid, refusal) in [
        (0, Refusal::SystemProcess),
        (1, Refusal::SystemProcess),
        (me, Refusal::OwnProcess),
    ] {
        let f = Fake::default();
        f.add(pid, 0, OnTerm::Exit);
        f.add(4000, pid, OnTerm::Exit);
        let report = terminate_tree(&f, &ident(pid, 0), SHORT);
        assert!(f.delivered().is_empty(), "pid {pid}");
        assert_eq!(
            report.processes.len(),
            1,
            "no descendants walked: {report:?}"
        );
        assert_eq!(report.outcome_of(pid), Some(&KillOutcome::Refused(refusal)));
    }
    let f = Fake::default();
    f.add(100, 1, OnTerm::Exit);
    let mut no_exe = ident(100, 1);
    no_exe.path = None;
    let report = terminate_tree(&f, &no_exe, SHORT);
    assert_eq!(
        report.outcome_of(100),
        Some(&KillOutcome::Refused(Refusal::NoExecutable))
    );
    assert!(f.delivered().is_empty());
}

#[test]
fn a_recycled_root_pid_is_refused_and_its_children_untouched() {
    let f = Fake::default();
    f.procs.borrow_mut().insert(
        100,
        Proc {
            id: Fake::stranger(100),
            on_term: OnTerm::Exit,
            unkillable: false,
        },
    );
    f.add(101, 100, OnTerm::Exit);
    let report = terminate_tree(&f, &ident(100, 1), SHORT);
    assert_eq!(report.outcome_of(100), Some(&KillOutcome::IdentityChanged));
    assert_eq!(report.processes.len(), 1);
    assert!(f.delivered().is_empty());
    assert!(f.alive(100) && f.alive(101));

    let gone = Fake::default();
    let report = terminate_tree(&gone, &ident(100, 1), SHORT);
    assert_eq!(report.outcome_of(100), Some(&KillOutcome::AlreadyGone));
    assert!(report.all_gone());
}

#[test]
fn pid_reused_between_capture_and_signal_is_not_signalled() {
    let f = family(OnTerm::Exit);
    f.reused_before_signal.borrow_mut().insert(102);
    let report = terminate_tree(&f, &ident(100, 1), SHORT);
    assert_eq!(report.outcome_of(102), Some(&KillOutcome::IdentityChanged));
    assert!(f.alive(102), "the stranger lives");
    assert!(!f.delivered().iter().any(|(pid, _)| *pid == 102));
    assert!(
        report.all_gone(),
        "our 102 is gone; the stranger is not ours"
    );
}

#[test]
fn a_child_that_execs_after_capture_is_followed() {
    let f = family(OnTerm::Exit);
    f.exec_before_signal.borrow_mut().insert(101);
    let report = terminate_tree(&f, &ident(100, 1), SHORT);
    assert!(!f.alive(101));
    assert!(f.delivered().contains(&(101, TERM)));
    let p = report.processes.iter().find(|p| p.pid == 101).unwrap();
    assert_eq!(p.outcome, KillOutcome::Terminated);
    assert_eq!(
        p.name.as_deref(),
        Some("exec-ed"),
        "the new identity is reported"
    );
    assert!(report.all_gone());
}

#[test]
fn strangers_and_protected_pids_in_a_child_list_are_left_alone() {
    let me = std::process::id();
    let mut f = family(OnTerm::Exit);
    // 100's listing names: its real child 101, PID 1, us, a process whose
    // parent is someone else (a PID reused since the listing), one we
    // cannot read, and itself (a cycle).
    f.add(300, 55, OnTerm::Exit);
    f.add(301, 100, OnTerm::Exit);
    f.unreadable.insert(301);
    f.listed.insert(100, vec![101, 1, me, 300, 301, 100]);
    let report = terminate_tree(&f, &ident(100, 1), SHORT);
    let signalled: HashSet<u32> = f.delivered().iter().map(|s| s.0).collect();
    assert_eq!(signalled, HashSet::from([100, 101, 103]));
    assert_eq!(
        report.outcome_of(1),
        Some(&KillOutcome::Refused(Refusal::SystemProcess))
    );
    assert_eq!(
        report.outcome_of(me),
        Some(&KillOutcome::Refused(Refusal::OwnProcess))
    );
    assert_eq!(report.outcome_of(300), None, "not part of the tree");
    assert!(matches!(
        report.outcome_of(301),
        Some(KillOutcome::Refused(Refusal::IdentityUnknown(e))) if e.contains("/proc/301/status")
    ));
    assert_eq!(report.processes.iter().filter(|p| p.pid == 100).count(), 1);
    assert!(f.alive(300) && f.alive(301));
}

#[test]
fn a_huge_tree_is_cut_at_the_limit() {
    let f = Fake::default();
    f.add(100, 1, OnTerm::Exit);
    for pid in 1000..1000 + MAX_TREE as u32 + 10 {
        f.add(pid, 100, OnTerm::Exit);
    }
    let report = terminate_tree(&f, &ident(100, 1), SHORT);
    assert!(report.truncated);
    assert_eq!(report.processes.len(), MAX_TREE);
    assert!(!report.all_gone(), "a cut walk never claims success");
}

#[test]
fn report_serialises_with_tagged_outcomes() {
    let report = TerminateReport {
        processes: vec![ProcessReport {
            pid: 7,
            name: Some("h".into()),
            path: None,
            outcome: KillOutcome::Refused(Refusal::OwnProcess),
        }],
        truncated: false,
    };
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["processes"][0]["outcome"]["outcome"], "refused");
    assert_eq!(json["processes"][0]["outcome"]["detail"], "own_process");
    let back: TerminateReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[path = "real_tests.rs"]
mod real;

#[test]
fn only_the_actors_processes_are_signalled() {
    // 100 (uid 501) → 101 (uid 501), 102 (setuid root) → 103 (root)
    let f = family(OnTerm::Exit);
    for pid in [102, 103] {
        if let Some(p) = f.procs.borrow_mut().get_mut(&pid) {
            p.id.uid = 0;
        }
    }
    let report = terminate_tree_as(&f, &ident(100, 1), SHORT, 501);
    assert_eq!(f.delivered(), vec![(100, TERM), (101, TERM)]);
    assert!(f.alive(102) && !f.alive(100) && !f.alive(101));
    assert_eq!(
        report.outcome_of(102),
        Some(&KillOutcome::Refused(Refusal::OutsideReach {
            uid: 0,
            actor: 501
        }))
    );
    assert!(
        !report.all_gone(),
        "an untouched member is reported: {report:?}"
    );
}

#[test]
fn a_root_process_is_never_signalled_for_a_user() {
    let f = family(OnTerm::Exit);
    if let Some(p) = f.procs.borrow_mut().get_mut(&100) {
        p.id.uid = 0;
    }
    let mut judged = ident(100, 1);
    // Judged as the user's at sweep time; root's by signal time.
    judged.uid = 501;
    let report = terminate_tree_as(&f, &judged, SHORT, 501);
    assert!(f.delivered().is_empty(), "{:?}", f.delivered());
    assert!(matches!(
        report.outcome_of(100),
        Some(KillOutcome::Refused(Refusal::OutsideReach { uid: 0, .. }))
    ));
    // Root (actor 0) reaches it.
    let report = terminate_tree_as(&f, &judged, SHORT, 0);
    assert!(report.all_gone(), "{report:?}");
}

/// The macOS platform's answers, built from `proc_bsdinfo` bytes through
/// the same decoding `platform/macos.rs` uses: a helper that exits on
/// SIGTERM but is never reaped by its parent stays a zombie, which
/// `proc_pidinfo(PROC_PIDTBSDINFO, FIND_ZOMBIES)` reports with
/// `pbi_status` 5.
struct BsdInfoTable {
    /// pid → the bytes the kernel would write now.
    bytes: RefCell<BTreeMap<u32, Vec<u8>>>,
    path: std::path::PathBuf,
    signals: RefCell<Vec<(u32, i32)>>,
}

impl ProcessControl for BsdInfoTable {
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
        use crate::parse::proc_bsdinfo::{decode_bsdinfo, identity};
        let bytes = self.bytes.borrow();
        let Some(b) = bytes.get(&pid) else {
            return Err(PlatformError::NoSuchProcess { pid });
        };
        let info = decode_bsdinfo(b).unwrap();
        Ok(identity(
            &info,
            Some(self.path.clone()),
            vec!["helper".into()],
            None,
        ))
    }

    fn signal_verified(
        &self,
        expected: &ProcessIdentity,
        signal: i32,
    ) -> Result<SignalOutcome, PlatformError> {
        use crate::parse::proc_bsdinfo::{
            Observed, SZOMB, decode_bsdinfo, fixture_bsdinfo, pre_signal_check,
        };
        let observed = self.bytes.borrow().get(&expected.pid).map(|b| {
            let info = decode_bsdinfo(b).unwrap();
            Observed {
                start_time: info.start_time,
                path: (!info.is_zombie()).then(|| self.path.clone()),
                status: info.status,
            }
        });
        if let Some(outcome) = pre_signal_check(expected, observed.as_ref()) {
            return Ok(outcome);
        }
        self.signals.borrow_mut().push((expected.pid, signal));
        // The helper exits at once; its parent never waits for it.
        self.bytes.borrow_mut().insert(
            expected.pid,
            fixture_bsdinfo(expected.pid, 4000, SZOMB, "helper", 1_700_000_000),
        );
        Ok(SignalOutcome::Sent)
    }

    fn child_pids(&self, _pid: u32) -> Result<Vec<u32>, PlatformError> {
        Ok(Vec::new())
    }
}

#[test]
fn an_unreaped_zombie_counts_as_terminated_on_macos() {
    use crate::parse::proc_bsdinfo::fixture_bsdinfo;
    let table = BsdInfoTable {
        bytes: RefCell::new(BTreeMap::from([(
            4242,
            fixture_bsdinfo(4242, 4000, 2, "helper", 1_700_000_000),
        )])),
        path: "/Users/a/.x/helper".into(),
        signals: RefCell::new(Vec::new()),
    };
    let root = table.process(4242).unwrap();
    assert!(root.path.is_some());
    let started = std::time::Instant::now();
    let report = terminate_tree(&table, &root, Duration::from_secs(5));
    assert_eq!(report.outcome_of(4242), Some(&KillOutcome::Terminated));
    assert!(report.all_gone());
    // Only SIGTERM: the zombie was seen as gone, no SIGKILL, no wait for
    // the whole grace.
    assert_eq!(*table.signals.borrow(), vec![(4242, libc::SIGTERM)]);
    assert!(started.elapsed() < Duration::from_secs(4));
    // Asked again, a zombie root is already gone, not an error.
    let again = terminate_tree(&table, &root, Duration::from_secs(5));
    assert_eq!(again.outcome_of(4242), Some(&KillOutcome::AlreadyGone));
}
