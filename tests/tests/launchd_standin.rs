//! The launchd stand-in behaves like launchd where the daemon's remediation
//! order depends on it, with real processes: a KeepAlive job killed without
//! `bootout` comes back; booted out, it stays gone. Also the `launchctl`
//! shim's output and exit codes, RunAtLoad, KeepAlive conditions,
//! `bootstrap`, and that nothing outlives the stand-in.

// Test code: an unwrap that fails is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lenscap_e2e::{Standin, temp_tree, wait_for_file, write_launchd_plist};

const ROGUE: &str = env!("CARGO_BIN_EXE_rogue-helper");

fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// `/proc/<pid>/stat` fields after `(comm)`: state, ppid, pgrp, session, tty_nr, …
fn stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = text.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// Running (a zombie is not).
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s[0] != "Z")
}

fn children_of(pid: u32) -> Vec<u32> {
    let pids = std::fs::read_dir("/proc").unwrap().flatten();
    let pids = pids.filter_map(|e| e.file_name().to_str()?.parse().ok());
    pids.filter(|p| stat(*p).is_some_and(|s| s[1] == pid.to_string() && s[0] != "Z"))
        .collect()
}

/// Live processes whose command line mentions `marker` (a test's temp dir).
fn processes_mentioning(marker: &Path) -> Vec<u32> {
    let marker = marker.to_str().unwrap();
    let pids = std::fs::read_dir("/proc").unwrap().flatten();
    let pids = pids.filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    pids.filter(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&cmdline).contains(marker) && alive(*pid)
    })
    .collect()
}

/// Poll `f` every 10 ms until it returns Some, or panic after `timeout`.
fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The end of every test: the stand-in stopped, nothing of ours running.
fn assert_no_strays(standin: Standin, tree: &Path, others: &[u32]) {
    drop(standin);
    wait_for(Duration::from_secs(2), "stray processes gone", || {
        let strays = processes_mentioning(tree);
        let others_gone = others.iter().all(|p| !alive(*p));
        (strays.is_empty() && others_gone).then_some(())
    });
}

/// A job plist with the keys these tests vary (binary when `binary`).
fn job_plist(
    path: &Path,
    label: &str,
    args: &[&str],
    extra: &[(&str, plist::Value)],
    binary: bool,
) {
    let mut dict = plist::Dictionary::new();
    dict.insert("Label".into(), label.into());
    let args = args.iter().map(|a| (*a).into()).collect();
    dict.insert("ProgramArguments".into(), plist::Value::Array(args));
    for (k, v) in extra {
        dict.insert((*k).into(), v.clone());
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let value = plist::Value::Dictionary(dict);
    if binary {
        value.to_file_binary(path).unwrap();
    } else {
        value.to_file_xml(path).unwrap();
    }
}

fn agents_dir(tree: &Path) -> PathBuf {
    let dir = tree.join("Library/LaunchAgents");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn keepalive_job_comes_back_after_a_kill_but_not_after_bootout() {
    let tree = temp_tree();
    let tree = tree.path();
    let agents = agents_dir(tree);
    let port_file = tree.join("port");
    let port = port_file.to_str().unwrap();
    let args = [ROGUE, "--port-file", port, "--share-with-child"];
    write_launchd_plist(
        &agents.join("com.example.rogue.plist"),
        "com.example.rogue",
        &args,
        true,
    );
    let standin = Standin::start(&[&agents], &tree.join("state"));
    let target = format!("gui/{}/com.example.rogue", uid());

    // Started at load, in a session of its own under the stand-in, with no
    // signal blocked (SIGTERM must work), serving.
    let first = standin
        .job_pid(&target)
        .expect("a RunAtLoad job runs at once");
    wait_for_file(&port_file, Duration::from_secs(5));
    let fields = stat(first).unwrap();
    assert_eq!(
        fields[1],
        standin.pid().to_string(),
        "parent is the stand-in"
    );
    assert_eq!(
        (fields[2].as_str(), fields[3].as_str()),
        (first.to_string().as_str(), first.to_string().as_str()),
        "own group and session"
    );
    assert_eq!(fields[4], "0", "no controlling terminal");
    let status = std::fs::read_to_string(format!("/proc/{first}/status")).unwrap();
    assert!(status.contains("SigBlk:\t0000000000000000"), "{status}");
    let print = standin.query(&["print", &target]);
    assert!(
        print.stdout.contains("\tstate = running\n"),
        "{}",
        print.stdout
    );
    assert!(
        print.stdout.contains(&format!("\tprogram = {ROGUE}\n")),
        "{}",
        print.stdout
    );
    let sharer = wait_for(Duration::from_secs(5), "sharing child", || {
        children_of(first).pop()
    });

    // Killed without bootout: KeepAlive brings it back within a second, and
    // the rest of its process group goes with the old one.
    // SAFETY: kill(2) on the job we just looked up.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    let killed_at = Instant::now();
    let second = wait_for(Duration::from_secs(1), "respawn", || {
        standin
            .job_pid(&target)
            .filter(|p| *p != first && alive(*p))
    });
    assert!(killed_at.elapsed() < Duration::from_secs(1));
    wait_for(Duration::from_secs(1), "old group gone", || {
        (!alive(sharer)).then_some(())
    });
    let print = standin.query(&["print", &target]).stdout;
    assert!(
        print.contains("\tlast terminating signal = Killed: 9\n"),
        "{print}"
    );
    assert!(print.contains("\truns = 2\n"), "{print}");
    let sharer = wait_for(Duration::from_secs(5), "new sharing child", || {
        children_of(second).pop()
    });

    // Booted out through the shim: gone when bootout returns, and stays gone.
    let out = standin.launchctl(&["bootout", &target]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    assert!(!alive(second), "bootout returns once the job is dead");
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(
            processes_mentioning(&port_file),
            Vec::<u32>::new(),
            "respawned after bootout"
        );
        assert!(!alive(sharer), "the group's other process outlived bootout");
        assert_eq!(children_of(standin.pid()), Vec::<u32>::new());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(standin.query(&["print", &target]).code, 113);
    assert_eq!(standin.calls(), [format!("bootout {target}")]);
    let spawns = standin
        .job_events()
        .iter()
        .filter(|l| l.starts_with("spawn "))
        .count();
    assert_eq!(spawns, 2, "{:?}", standin.job_events());
    assert_no_strays(standin, tree, &[first, second, sharer]);
}

#[test]
fn unknown_services_answer_like_launchctl() {
    let tree = temp_tree();
    let tree = tree.path();
    let agents = agents_dir(tree);
    let standin = Standin::start(&[&agents], &tree.join("state"));
    assert_eq!(
        Standin::launchctl_path(),
        Path::new(env!("CARGO_BIN_EXE_launchctl"))
    );
    let gui = format!("gui/{}/com.example.nope", uid());

    let out = standin.launchctl(&["bootout", &gui]);
    assert_eq!(out.code, 113);
    assert_eq!(
        out.stderr,
        "Boot-out failed: 113: Could not find specified service\n"
    );
    let out = standin.launchctl(&["print", &gui]);
    assert_eq!(out.code, 113);
    let expected = format!(
        "Could not find service \"com.example.nope\" in domain for user gui: {}\n",
        uid()
    );
    assert_eq!(out.stderr, expected);
    let out = standin.launchctl(&["print", "system/com.example.nope"]);
    assert_eq!(out.code, 113);
    assert_eq!(
        out.stderr,
        "Could not find service \"com.example.nope\" in domain for system\n"
    );
    let out = standin.launchctl(&["bootout", "com.example.nope"]);
    assert_eq!(out.code, 64);
    assert!(
        out.stderr.starts_with("Unrecognized target specifier.\n"),
        "{}",
        out.stderr
    );
    assert_eq!(standin.calls().len(), 4);
    assert_no_strays(standin, tree, &[]);

    // Newer macOS answers a bootout of a missing service with 3.
    let standin = Standin::start_with(&[&agents], &tree.join("state"), &["--bootout-missing", "3"]);
    let out = standin.launchctl(&["bootout", &gui]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (3, "Boot-out failed: 3: No such process\n")
    );
    assert_no_strays(standin, tree, &[]);
}

#[test]
fn domains_follow_the_plist_directory() {
    let tree = temp_tree();
    let tree = tree.path();
    let agents = agents_dir(tree);
    let daemons = tree.join("Library/LaunchDaemons");
    let port_file = tree.join("port");
    let args = [ROGUE, "--port-file", port_file.to_str().unwrap()];
    write_launchd_plist(
        &daemons.join("com.example.d.plist"),
        "com.example.d",
        &args,
        true,
    );
    let standin = Standin::start(&[&agents, &daemons], &tree.join("state"));

    let pid = standin
        .job_pid("system/com.example.d")
        .expect("a daemon runs at load");
    let print = standin.query(&["print", "system/com.example.d"]).stdout;
    assert!(
        print.starts_with("system/com.example.d = {\n\tactive count = 1\n"),
        "{print}"
    );
    assert!(print.contains("\ttype = LaunchDaemon\n"), "{print}");
    // The wrong domain does not find it, and does not stop it.
    let gui = format!("gui/{}/com.example.d", uid());
    assert_eq!(standin.launchctl(&["bootout", &gui]).code, 113);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(standin.job_pid("system/com.example.d"), Some(pid));
    assert!(alive(pid));
    assert_no_strays(standin, tree, &[pid]);
}

#[test]
fn without_run_at_load_a_job_is_loaded_but_not_started() {
    let tree = temp_tree();
    let tree = tree.path();
    let agents = agents_dir(tree);
    let port_file = tree.join("port");
    let args = [ROGUE, "--port-file", port_file.to_str().unwrap()];
    let off = [("RunAtLoad", false.into()), ("KeepAlive", false.into())];
    job_plist(
        &agents.join("com.example.idle.plist"),
        "com.example.idle",
        &args,
        &off,
        true,
    );
    let standin = Standin::start(&[&agents], &tree.join("state"));
    let target = format!("gui/{}/com.example.idle", uid());

    std::thread::sleep(Duration::from_millis(500));
    let print = standin.query(&["print", &target]);
    assert_eq!(
        print.code, 0,
        "loaded from a binary plist: {}",
        print.stderr
    );
    assert!(
        print.stdout.contains("\tstate = not running\n"),
        "{}",
        print.stdout
    );
    assert!(!print.stdout.contains("\tpid = "), "{}", print.stdout);
    assert!(print.stdout.contains("\tlast exit code = (never exited)\n"));
    assert!(!port_file.exists());
    assert_eq!(processes_mentioning(&port_file), Vec::<u32>::new());
    assert_no_strays(standin, tree, &[]);
}

#[test]
fn exited_jobs_restart_only_as_keepalive_says() {
    let tree = temp_tree();
    let tree = tree.path();
    let agents = agents_dir(tree);
    let (once, thrice) = (tree.join("once.runs"), tree.join("thrice.runs"));
    // Not KeepAlive: runs once and exits 3.
    let script = r#"echo run >> "$0"; exit 3"#;
    let args = ["/bin/sh", "-c", script, once.to_str().unwrap()];
    job_plist(
        &agents.join("once.plist"),
        "com.example.once",
        &args,
        &[("RunAtLoad", true.into())],
        false,
    );
    // KeepAlive {SuccessfulExit = false} (implies RunAtLoad): fails twice,
    // then exits 0 on its third run, which ends the restarts.
    let script = r#"echo run >> "$0"; [ "$(wc -l < "$0")" -ge 3 ] && exit 0; exit 1"#;
    let args = ["/bin/sh", "-c", script, thrice.to_str().unwrap()];
    let mut keep = plist::Dictionary::new();
    keep.insert("SuccessfulExit".into(), false.into());
    let extra = [("KeepAlive", plist::Value::Dictionary(keep))];
    job_plist(
        &agents.join("thrice.plist"),
        "com.example.thrice",
        &args,
        &extra,
        false,
    );
    let standin = Standin::start_with(&[&agents], &tree.join("state"), &["--throttle-ms", "50"]);
    let uid = uid();

    let print = |label: &str| {
        standin
            .query(&["print", &format!("gui/{uid}/{label}")])
            .stdout
    };
    wait_for(Duration::from_secs(5), "third run exits 0", || {
        print("com.example.thrice")
            .contains("\tlast exit code = 0\n")
            .then_some(())
    });
    wait_for(Duration::from_secs(5), "once exits", || {
        print("com.example.once")
            .contains("\tlast exit code = 3\n")
            .then_some(())
    });
    // Well past the throttle interval: nothing more runs.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read_to_string(&once).unwrap().lines().count(), 1);
    assert_eq!(std::fs::read_to_string(&thrice).unwrap().lines().count(), 3);
    let once_print = print("com.example.once");
    assert!(
        once_print.contains("\tstate = not running\n\n"),
        "{once_print}"
    );
    assert!(once_print.contains("\truns = 1\n"), "{once_print}");
    assert!(print("com.example.thrice").contains("\truns = 3\n"));
    assert_no_strays(standin, tree, &[]);
}

#[test]
fn bootstrap_loads_and_starts_a_new_plist() {
    let tree = temp_tree();
    let tree = tree.path();
    let agents = agents_dir(tree);
    let standin = Standin::start(&[&agents], &tree.join("state"));
    let port_file = tree.join("port");
    let args = [ROGUE, "--port-file", port_file.to_str().unwrap()];
    let plist = agents.join("com.example.late.plist");
    write_launchd_plist(&plist, "com.example.late", &args, false);
    let domain = format!("gui/{}", uid());
    let target = format!("{domain}/com.example.late");
    // launchd does not watch the directories.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(standin.query(&["print", &target]).code, 113);

    let path = plist.to_str().unwrap();
    let out = standin.launchctl(&["bootstrap", &domain, path]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    let pid = wait_for(Duration::from_secs(2), "bootstrapped job", || {
        standin.job_pid(&target)
    });
    wait_for_file(&port_file, Duration::from_secs(5));

    let again = standin.launchctl(&["bootstrap", &domain, path]);
    assert_eq!(
        (again.code, again.stderr.as_str()),
        (5, "Bootstrap failed: 5: Input/output error\n")
    );
    let missing = tree.join("missing.plist");
    let out = standin.launchctl(&["bootstrap", &domain, missing.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .ends_with("Bootstrap failed: 2: No such file or directory\n"),
        "{}",
        out.stderr
    );
    let junk = tree.join("junk.plist");
    std::fs::write(&junk, "not a plist").unwrap();
    assert_eq!(
        standin
            .launchctl(&["bootstrap", &domain, junk.to_str().unwrap()])
            .code,
        5
    );
    assert_eq!(standin.calls()[0], format!("bootstrap {domain} {path}"));
    assert_eq!(standin.job_pid(&target), Some(pid), "still the one process");
    assert_no_strays(standin, tree, &[pid]);
}

#[test]
fn stopping_the_standin_stops_every_job_process() {
    let tree = temp_tree();
    let tree = tree.path();
    let agents = agents_dir(tree);
    let port_file = tree.join("port");
    let args = [
        ROGUE,
        "--port-file",
        port_file.to_str().unwrap(),
        "--share-with-child",
    ];
    write_launchd_plist(
        &agents.join("com.example.rogue.plist"),
        "com.example.rogue",
        &args,
        true,
    );
    let standin = Standin::start(&[&agents], &tree.join("state"));
    let target = format!("gui/{}/com.example.rogue", uid());
    let pid = standin.job_pid(&target).unwrap();
    wait_for_file(&port_file, Duration::from_secs(5));
    let sharer = wait_for(Duration::from_secs(5), "sharing child", || {
        children_of(pid).pop()
    });
    let state = tree.join("state");
    assert_no_strays(standin, tree, &[pid, sharer]);
    assert!(!state.join("control.sock").exists() && !state.join("ready").exists());
}

#[test]
fn a_standin_killed_outright_takes_its_jobs_along() {
    let tree = temp_tree();
    let tree = tree.path();
    let agents = agents_dir(tree);
    let port_file = tree.join("port");
    let args = [ROGUE, "--port-file", port_file.to_str().unwrap()];
    write_launchd_plist(
        &agents.join("com.example.rogue.plist"),
        "com.example.rogue",
        &args,
        true,
    );
    let standin = Standin::start(&[&agents], &tree.join("state"));
    let pid = standin
        .job_pid(&format!("gui/{}/com.example.rogue", uid()))
        .unwrap();
    // No SIGTERM, no cleanup by the stand-in: the jobs' parent-death
    // signal must still end them (a test binary killed by a timeout).
    // SAFETY: kill(2) on the stand-in we started.
    unsafe { libc::kill(standin.pid() as i32, libc::SIGKILL) };
    wait_for(Duration::from_secs(2), "job dies with the stand-in", || {
        (!alive(pid)).then_some(())
    });
    assert_no_strays(standin, tree, &[pid]);
}
