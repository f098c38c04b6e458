//! Reinstall undo on temporary trees (as root, like the daemon): journaled
//! before anything moves, finished by recovery after a crash at either
//! point, and never taking our own placeholder for a reinstall.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::act::kill::ProcessControl;
use crate::model::{ProcessIdentity, SignalOutcome};
use crate::platform::PlatformError;

const ANN: u32 = 1234;

/// No process is ever touched by a reinstall step.
struct NoProcesses;

impl ProcessControl for NoProcesses {
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
        Err(PlatformError::NoSuchProcess { pid })
    }
    fn signal_verified(
        &self,
        _expected: &ProcessIdentity,
        _signal: i32,
    ) -> Result<SignalOutcome, PlatformError> {
        Ok(SignalOutcome::Gone)
    }
    fn child_pids(&self, _pid: u32) -> Result<Vec<u32>, PlatformError> {
        Ok(Vec::new())
    }
}

struct Silent;

impl execute::Notifier for Silent {
    fn notify(&self, _uid: Option<u32>, _title: &str, _message: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Ann's home with a LaunchAgents folder, a state dir, and the vault,
/// journal and guard in it.
struct World {
    _t: tempfile::TempDir,
    agents: PathBuf,
    vault: Vault,
    journal: Journal,
    guard: Guard,
}

fn world() -> World {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("Users/ann");
    let agents = home.join("Library/LaunchAgents");
    fs::create_dir_all(&agents).unwrap();
    for d in [&agents, &home.join("Library"), &home] {
        chown(d, Some(ANN), Some(20)).unwrap();
    }
    let state = t.path().join("state");
    fs::create_dir_all(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    World {
        vault: Vault::open(&state).unwrap(),
        journal: Journal::open(&state).unwrap(),
        guard: Guard::open(&state).unwrap(),
        agents,
        _t: t,
    }
}

impl World {
    fn guarded(&mut self, path: &Path, placeholder: bool) -> Guarded {
        let g = Guarded {
            path: path.to_path_buf(),
            plan_key: "/Users/ann/.acme/acme-connect".into(),
            quarantine_id: Some("q-first".into()),
            placeholder,
            actor: Some(ANN),
        };
        self.guard.add(vec![g.clone()]).unwrap();
        g
    }

    /// Run `f` with a context over this world's vault and guard.
    fn with_ctx<T>(&mut self, f: impl FnOnce(&mut Context<'_>, &Journal) -> T) -> T {
        let mut ctx = Context {
            launchctl: PathBuf::from("/bin/false"),
            tccutil: PathBuf::from("/bin/false"),
            command_timeout: Duration::from_secs(1),
            grace: Duration::from_millis(10),
            ctl: &NoProcesses,
            vault: &self.vault,
            guard: &mut self.guard,
            notifier: &Silent,
            sessions: &NoLogins,
        };
        f(&mut ctx, &self.journal)
    }
}

/// Nobody logged in (a reinstall step never asks).
struct NoLogins;

impl crate::act::execute::Sessions for NoLogins {
    fn console_users(&self) -> Result<Vec<u32>, String> {
        Ok(Vec::new())
    }
    fn user_name(&self, _uid: u32) -> Option<String> {
        None
    }
}

/// Ann writes a file (as the helper's installer would, running as her).
fn put_as_ann(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
    chown(path, Some(ANN), Some(20)).unwrap();
}

#[test]
fn an_undone_reinstall_leaves_a_finished_journal_entry_and_a_vault_record() {
    let mut w = world();
    let plist = w.agents.join("com.acme.connect.plist");
    let g = w.guarded(&plist, false);
    let mut r = Reinstalls::default();
    assert!(r.attempts(&w.guard).is_empty(), "nothing stands there yet");

    put_as_ann(&plist, b"<plist/>");
    let attempts = r.attempts(&w.guard);
    assert_eq!(attempts.len(), 1);
    let undone = w
        .with_ctx(|ctx, journal| r.undo(&attempts[0], Mode::Remediate, ctx, journal))
        .unwrap();

    assert!(plist.symlink_metadata().is_err(), "moved away again");
    let (entries, errors) = w.journal.entries();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let e = &entries[0];
    assert_eq!(e, &undone.entry);
    assert!(e.finished);
    assert_eq!(e.mode, Mode::Remediate);
    assert_eq!(e.plan, plan_for(&g));
    assert_eq!(e.steps[0].status, StepStatus::Done);
    assert_eq!(e.steps[0].attempts, 1);
    let qid = e.steps[0].quarantine_id.clone().unwrap();
    assert_eq!(undone.events.len(), 1);
    assert_eq!(
        undone.events[0].quarantine_id.as_deref(),
        Some(qid.as_str())
    );

    // `lenscap quarantine list` shows it as before: its own record, named
    // after the plan the guard protects against.
    let records = w.vault.list();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, qid);
    assert_eq!(
        records[0].finding,
        "reinstall attempt of /Users/ann/.acme/acme-connect"
    );
    assert!(r.attempts(&w.guard).is_empty(), "the path is empty again");
}

#[test]
fn a_crash_after_journaling_is_finished_by_running_the_entry_again() {
    let mut w = world();
    let plist = w.agents.join("com.acme.connect.plist");
    let g = w.guarded(&plist, false);
    put_as_ann(&plist, b"<plist/>");
    // What a crash between "started" and the move leaves: the entry, the
    // file still in place.
    let mut entry = Entry::new(plan_for(&g), Mode::Remediate, SystemTime::now());
    entry.steps[0].status = StepStatus::Started;
    entry.steps[0].attempts = 1;
    w.journal.write(&entry).unwrap();

    // What the daemon's start does with every unfinished entry.
    let (mut unfinished, _) = w.journal.unfinished();
    assert_eq!(unfinished.len(), 1);
    let events = w
        .with_ctx(|ctx, journal| execute::run_entry(ctx, journal, &mut unfinished[0]))
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(plist.symlink_metadata().is_err());
    let (after, _) = w.journal.entries();
    assert!(after[0].finished);
    assert_eq!(after[0].steps[0].status, StepStatus::Done);
    assert_eq!(after[0].steps[0].attempts, 2);
    assert_eq!(w.vault.list().len(), 1);
    assert!(w.journal.unfinished().0.is_empty());
}

#[test]
fn a_crash_after_the_placeholder_went_back_does_not_move_the_placeholder() {
    let mut w = world();
    let folder = w.agents.join(".acme");
    let g = w.guarded(&folder, true);
    // The installer put the folder back where the placeholder stood.
    fs::create_dir(&folder).unwrap();
    chown(&folder, Some(ANN), Some(20)).unwrap();
    put_as_ann(&folder.join("acme-connect"), b"#!/bin/sh\n");
    let mut entry = Entry::new(plan_for(&g), Mode::Remediate, SystemTime::now());
    w.journal.write(&entry).unwrap();
    let mut again = entry.clone();
    w.with_ctx(|ctx, journal| execute::run_entry(ctx, journal, &mut entry))
        .unwrap();
    let placeholder = folder.symlink_metadata().unwrap();
    assert!(crate::act::guard::is_placeholder(&placeholder));
    assert_eq!(w.vault.list().len(), 1);

    // Killed after the placeholder went back, before "done" was written:
    // the next start runs the step again and finds our placeholder.
    again.steps[0].status = StepStatus::Started;
    again.steps[0].attempts = 1;
    w.journal.write(&again).unwrap();
    let events = w
        .with_ctx(|ctx, journal| execute::run_entry(ctx, journal, &mut again))
        .unwrap();
    assert_eq!(events[0].status, StepStatus::Done, "{events:?}");
    assert_eq!(
        w.vault.list().len(),
        1,
        "the placeholder was not quarantined"
    );
    assert!(crate::act::guard::is_placeholder(
        &folder.symlink_metadata().unwrap()
    ));
}

#[test]
fn monitor_mode_journals_would_do_and_reports_the_same_file_once() {
    let mut w = world();
    let plist = w.agents.join("com.acme.connect.plist");
    w.guarded(&plist, false);
    put_as_ann(&plist, b"<plist/>");
    let mut r = Reinstalls::default();
    let attempts = r.attempts(&w.guard);
    let undone = w
        .with_ctx(|ctx, journal| r.undo(&attempts[0], Mode::Monitor, ctx, journal))
        .unwrap();
    assert!(undone.events.is_empty());
    assert!(plist.exists(), "left in place");
    let (entries, _) = w.journal.entries();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].finished);
    assert_eq!(entries[0].steps[0].status, StepStatus::WouldDo);
    assert!(w.vault.list().is_empty());

    assert!(r.attempts(&w.guard).is_empty(), "the same file is not news");
    // Replaced (a new inode): news again.
    let staged = w.agents.join("staged");
    put_as_ann(&staged, b"<plist>again</plist>");
    fs::rename(&staged, &plist).unwrap();
    assert_eq!(r.attempts(&w.guard).len(), 1);
}

#[test]
fn what_the_actor_could_not_have_put_there_stays_and_is_a_failed_step() {
    let mut w = world();
    let plist = w.agents.join("com.acme.connect.plist");
    w.guarded(&plist, false);
    // Root's file in ann's guarded spot: not within her reach.
    fs::write(&plist, b"<plist/>").unwrap();
    let mut r = Reinstalls::default();
    let attempts = r.attempts(&w.guard);
    let undone = w
        .with_ctx(|ctx, journal| r.undo(&attempts[0], Mode::Remediate, ctx, journal))
        .unwrap();
    assert!(plist.exists());
    assert_eq!(undone.entry.steps[0].status, StepStatus::Failed);
    assert!(undone.entry.finished);
    assert!(
        r.attempts(&w.guard).is_empty(),
        "reported once, not every sweep"
    );
}
