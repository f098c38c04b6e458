//! The confused deputy: eve cannot kill root's processes or delete root's
//! files, but lenscap runs as root. So she writes LaunchAgents in her own
//! folder whose labels are catalog names (`us.zoom.ZoomOpener`,
//! `ZoomOpener`) and whose `Program` is a binary of root's — one serving
//! HTTP on loopback, one that only runs — while root runs them. A daemon
//! that trusts the label would stop root's service and quarantine root's
//! binaries on eve's say-so. It must instead leave them exactly as they
//! are and raise a critical finding about eve's plist.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{
    Attack, Untouched, can_attack, findings_naming, planned_targets, start_time, tail, uid_of,
    wait_for,
};
use lenscap_e2e::{Proc, pid_running, wait_for_file};
use serde_json::Value;

/// Start `cmd` as a root service would run: its own session, no terminal
/// (a process with a terminal is a person's, which the judge never counts
/// as a helper — that would make the attack fail for the wrong reason).
fn spawn_root_service(cmd: &mut Command) -> Proc {
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Proc::spawn(cmd.stdout(std::process::Stdio::null()))
}

#[test]
fn a_plist_naming_roots_program_under_a_catalog_label_touches_nothing_of_roots() {
    if !can_attack("deputy") {
        return;
    }
    let mut a = Attack::setup();
    // Root's service: a root-owned binary in a root-owned folder, running
    // as root, serving HTTP on loopback; and a root-owned copy of sleep.
    let opt = a.root.join("opt/acme");
    std::fs::create_dir_all(&opt).unwrap();
    let server = opt.join("acme-server");
    let sleeper = opt.join("acme-sleep");
    std::fs::copy(super::ROGUE, &server).unwrap();
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a sleep binary");
    std::fs::copy(sleep, &sleeper).unwrap();
    for f in [&server, &sleeper] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let root_port = a.root.join("root-server.port");
    let root_server = spawn_root_service(
        Command::new(&server)
            .args(["--cors", "star", "--image", "--port-file"])
            .arg(&root_port),
    );
    wait_for_file(&root_port, Duration::from_secs(10));
    let root_sleep = spawn_root_service(Command::new(&sleeper).arg("600"));
    let victims = [
        (root_server.pid(), start_time(root_server.pid()).unwrap()),
        (root_sleep.pid(), start_time(root_sleep.pid()).unwrap()),
    ];
    for (pid, _) in victims {
        assert_eq!(uid_of(pid), Some(0), "root's process {pid}");
    }
    let files = [
        (server.clone(), Untouched::of(&server)),
        (sleeper.clone(), Untouched::of(&sleeper)),
        (opt.clone(), Untouched::of(&opt)),
    ];

    // eve's plists: catalog labels, root's programs. Loaded by her launchd
    // but not started (eve running root's binary as herself is no attack).
    let on_server = a.plist(
        "us.zoom.ZoomOpener.plist",
        "us.zoom.ZoomOpener",
        &[("Program", server.to_str().unwrap().into())],
    );
    let on_sleeper = a.plist(
        "ZoomOpener.plist",
        "ZoomOpener",
        &[
            ("Program", sleeper.to_str().unwrap().into()),
            ("ProgramArguments", super::strings(&["ZoomOpener", "600"])),
        ],
    );
    a.start_launchd();
    let mut d = a.start_daemon(&[]);

    // The daemon has judged each plist (the findings about it).
    let about = |plist: &Path| -> Vec<Value> {
        let events = a.events();
        findings_naming(&events, plist)
            .into_iter()
            .filter(|e| e["payload"]["finding"]["persistence"]["path"] == plist.to_str().unwrap())
            .cloned()
            .collect()
    };
    for plist in [&on_server, &on_sleeper] {
        wait_for(
            &d,
            Duration::from_secs(15),
            &format!("a finding about {}", plist.display()),
            || Some(about(plist)).filter(|c| !c.is_empty()),
        );
    }
    // Give a misled daemon time to act.
    d.wait_sweeps(3);

    for (pid, started) in victims {
        assert!(
            pid_running(pid) && start_time(pid) == Some(started),
            "root's process {pid} was signalled; daemon log:\n{}",
            tail(&d.log())
        );
    }
    for (path, before) in &files {
        assert_eq!(
            &Untouched::of(path),
            before,
            "{} changed; daemon log:\n{}",
            path.display(),
            tail(&d.log())
        );
        assert!(
            a.quarantined(path).is_none(),
            "{} is in quarantine",
            path.display()
        );
    }
    let (paths, pids) = planned_targets(&a.journal());
    for (path, _) in &files {
        assert!(
            !paths.iter().any(|p| path.starts_with(p)),
            "a plan quarantines or guards {}: {paths:?}",
            path.display()
        );
    }
    for (pid, _) in victims {
        assert!(
            !pids.contains(&u64::from(pid)),
            "a plan terminates root's pid {pid}"
        );
    }
    // A critical finding about each plist says why: it names a program its
    // owner does not own, or claims to be a known-bad helper.
    for plist in [&on_server, &on_sleeper] {
        let found = about(plist);
        let says_why = found.iter().find(|f| {
            if f["payload"]["finding"]["severity"] != "critical" {
                return false;
            }
            let words = format!(
                "{} {}",
                f["payload"]["finding"]["reasons"], f["payload"]["message"]
            );
            let words = words.to_lowercase();
            words.contains("not own") || words.contains("impersonat")
        });
        if let Some(f) = says_why {
            eprintln!(
                "deputy: {} — {}",
                f["payload"]["message"], f["payload"]["finding"]["reasons"]
            );
        }
        assert!(
            says_why.is_some(),
            "no critical finding about {} says it names a program it does not own or \
             impersonates a known-bad helper; the last finding: {:#}",
            plist.display(),
            found.last().unwrap()
        );
    }
    assert_eq!(d.stop().code(), Some(0), "clean stop; log:\n{}", d.log());
    drop(root_server);
    drop(root_sleep);
}
