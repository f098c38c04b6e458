//! `lenscap scan` end to end on Linux: real helper processes listening on
//! loopback, real launchd plists in a temporary tree, the real binary.
//! Every location the agent reads is configured into the temporary tree.

// Helpers here run only inside tests; a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lenscap_e2e::{
    Proc, lenscap_bin, start_on_terminal, temp_tree, wait_for_file, write_config,
    write_launchd_plist,
};
use serde_json::Value;

const ROGUE: &str = env!("CARGO_BIN_EXE_rogue-helper");

/// Copy the rogue helper to `dest` (so its executable path is the one the
/// scenario needs) and make it executable.
fn install_helper(dest: &Path) -> PathBuf {
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(ROGUE, dest).unwrap();
    dest.to_path_buf()
}

/// Start a helper the way launchd would: its own session, no controlling
/// terminal (a test run from a terminal would otherwise hand its terminal
/// down, and a process with a terminal counts as started by a person).
fn start_detached(exe: &Path, args: &[&str], port_file: &Path) -> (Proc, u16) {
    let mut cmd = Command::new(exe);
    cmd.args(args).arg("--port-file").arg(port_file);
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let proc = Proc::spawn(&mut cmd);
    let port = wait_for_file(port_file, Duration::from_secs(10))
        .parse()
        .expect("port file holds a port");
    (proc, port)
}

/// Run `lenscap scan --json` and return (exit code, parsed report).
fn scan(config: &Path, extra: &[&str]) -> (i32, Value) {
    let out = Command::new(lenscap_bin())
        .args(["scan", "--json", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .expect("run lenscap scan");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "scan printed no JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn listener_findings(report: &Value, port: u16) -> Vec<&Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "listener" && f["listener"]["port"] == port)
        .collect()
}

fn the_listener(report: &Value, port: u16) -> &Value {
    let found = listener_findings(report, port);
    assert_eq!(found.len(), 1, "one finding for port {port}: {report:#}");
    found[0]
}

fn persistence_finding<'a>(report: &'a Value, label: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "persistence" && f["persistence"]["label"] == label)
        .unwrap_or_else(|| panic!("no persistence finding for {label}: {report:#}"))
}

fn reasons(f: &Value) -> String {
    f["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn hidden_keepalive_helper_with_open_cors_is_remediated() {
    let root = temp_tree();
    let r = root.path();
    let exe = install_helper(&r.join("Users/alice/.acmeconnect/acme-connect"));
    let port_file = r.join("port");
    write_launchd_plist(
        &r.join("Users/alice/Library/LaunchAgents/com.acme.connect.plist"),
        "com.acme.connect",
        &[exe.to_str().unwrap(), "--cors", "star", "--image"],
        true,
    );
    let config = write_config(r, &[]);
    let (_helper, port) = start_detached(&exe, &["--cors", "star", "--image"], &port_file);

    let (code, report) = scan(&config, &[]);
    let f = the_listener(&report, port);
    assert_eq!(f["verdict"], "remediate", "{f:#}");
    assert_eq!(code, 3, "exit 3 when something is to be remediated");
    assert_eq!(f["http"]["cors"], "wildcard", "{f:#}");
    assert_eq!(f["http"]["image"], true, "{f:#}");
    assert_eq!(
        f["process"]["path"].as_str().unwrap(),
        exe.to_str().unwrap()
    );
    assert!(!f["reasons"].as_array().unwrap().is_empty());
    // The plist that starts it is a finding too, linked to the same verdict.
    let p = persistence_finding(&report, "com.acme.connect");
    assert_eq!(p["verdict"], "remediate", "{p:#}");
    assert_eq!(
        p["persistence"]["program"].as_str().unwrap(),
        exe.to_str().unwrap()
    );
}

#[test]
fn visible_vendor_app_without_cors_is_at_most_reported() {
    let root = temp_tree();
    let r = root.path();
    let app = r.join("Applications/Vendor.app");
    let exe = install_helper(&app.join("Contents/MacOS/vendor-helper"));
    let mut info = plist::Dictionary::new();
    info.insert("CFBundleIdentifier".into(), "com.vendor.app".into());
    plist::Value::Dictionary(info)
        .to_file_xml(app.join("Contents/Info.plist"))
        .unwrap();
    write_launchd_plist(
        &r.join("Library/LaunchAgents/com.vendor.helper.plist"),
        "com.vendor.helper",
        &[exe.to_str().unwrap(), "--cors", "none"],
        true,
    );
    let config = write_config(r, &[]);
    let (_helper, port) = start_detached(&exe, &["--cors", "none"], &r.join("port"));

    let (_, report) = scan(&config, &[]);
    let f = the_listener(&report, port);
    assert_ne!(f["verdict"], "remediate", "{}", reasons(f));
    assert_eq!(f["http"]["cors"], "none");
}

#[test]
fn non_http_listener_with_plist_is_never_remediated() {
    let root = temp_tree();
    let r = root.path();
    let exe = install_helper(&r.join("Users/alice/.quietd/quietd"));
    write_launchd_plist(
        &r.join("Users/alice/Library/LaunchAgents/com.quiet.d.plist"),
        "com.quiet.d",
        &[exe.to_str().unwrap(), "--raw"],
        true,
    );
    let config = write_config(r, &[]);
    let (_helper, port) = start_detached(&exe, &["--raw"], &r.join("port"));

    let (_, report) = scan(&config, &[]);
    let f = the_listener(&report, port);
    assert_ne!(f["verdict"], "remediate", "{}", reasons(f));
    assert_eq!(f["http"]["http"], false, "{f:#}");
}

#[test]
fn server_started_from_a_terminal_is_never_remediated() {
    let root = temp_tree();
    let r = root.path();
    // Everything else about it looks like a rogue helper: hidden folder,
    // open CORS. A person started it, so it is theirs.
    let exe = install_helper(&r.join("Users/alice/.devtools/devserver"));
    let config = write_config(r, &[]);
    let (_helper, port, master) = start_on_terminal(&exe, &["--cors", "star"], &r.join("port"));

    let (_, report) = scan(&config, &[]);
    let f = the_listener(&report, port);
    assert_ne!(f["verdict"], "remediate", "{}", reasons(f));
    assert_eq!(f["process"]["pid"].as_u64(), Some(u64::from(_helper.pid())));
    // SAFETY: closing the pty master we opened.
    unsafe { libc::close(master) };
}

#[test]
fn ipv6_only_listener_is_seen() {
    let root = temp_tree();
    let r = root.path();
    let exe = install_helper(&r.join("bin/v6-helper"));
    let config = write_config(r, &[]);
    let (helper, port) = start_detached(&exe, &["--bind", "[::1]:0"], &r.join("port"));

    let (_, report) = scan(&config, &[]);
    let f = the_listener(&report, port);
    assert_eq!(f["listener"]["address"], "::1", "{f:#}");
    assert_eq!(f["listener"]["scope"], "loopback");
    assert_eq!(f["process"]["pid"].as_u64(), Some(u64::from(helper.pid())));
}

#[test]
fn shared_socket_lists_both_processes() {
    let root = temp_tree();
    let r = root.path();
    let exe = install_helper(&r.join("bin/shared-helper"));
    let config = write_config(r, &[]);
    let (helper, port) = start_detached(&exe, &["--share-with-child"], &r.join("port"));

    // The child inherits the socket after the port file is written; give
    // it a moment to exist, then look.
    let mut pids = Vec::new();
    for _ in 0..100 {
        let (_, report) = scan(&config, &["--no-probe"]);
        let f = the_listener(&report, port);
        pids = f["processes"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["pid"].as_u64()).collect())
            .unwrap_or_default();
        if pids.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pids.len(), 2, "both owners listed: {pids:?}");
    assert!(pids.contains(&u64::from(helper.pid())));
    // The child is ours to clean up: it is the other pid.
    for pid in pids {
        // SAFETY: signalling a process this test started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// The pids `scan --no-probe` lists as holders of the socket on `port`.
fn holders(config: &Path, port: u16) -> Vec<u64> {
    let (_, report) = scan(config, &["--no-probe"]);
    let f = the_listener(&report, port);
    let mut pids: Vec<u64> = f["processes"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["pid"].as_u64()).collect())
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// A forked child holding the listening socket is a holder with its
/// parent alive, and the only holder once the parent has exited: the scan
/// finds owners by reading every process's descriptors, not by following
/// who called `listen()`.
#[test]
fn a_forked_child_holding_the_socket_is_listed_after_its_parent_exits() {
    let root = temp_tree();
    let r = root.path();
    let exe = install_helper(&r.join("bin/forking-helper"));
    let config = write_config(r, &[]);
    let (mut parent, port) = start_detached(&exe, &["--share-with-child"], &r.join("port"));
    let parent_pid = u64::from(parent.pid());

    let mut pids = Vec::new();
    for _ in 0..100 {
        pids = holders(&config, port);
        if pids.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pids.len(), 2, "parent and child listed: {pids:?}");
    assert!(pids.contains(&parent_pid), "{pids:?}");
    let child_pid = pids.iter().copied().find(|p| *p != parent_pid).unwrap();

    // The parent exits; the child keeps the socket (and is reparented).
    parent.child.kill().unwrap();
    parent.child.wait().unwrap();
    for _ in 0..100 {
        pids = holders(&config, port);
        if !pids.contains(&parent_pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling the child this test's helper started.
    let cleanup = || unsafe { libc::kill(child_pid as libc::pid_t, libc::SIGKILL) };
    if pids != vec![child_pid] {
        cleanup();
    }
    assert_eq!(pids, vec![child_pid], "only the child holds it now");
    cleanup();
}

#[test]
fn catalog_helper_on_disk_is_found_while_not_running_and_scan_changes_nothing() {
    let root = temp_tree();
    let r = root.path();
    let opener = r.join("Users/bob/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener");
    std::fs::create_dir_all(opener.parent().unwrap()).unwrap();
    std::fs::write(&opener, b"#!/bin/sh\nexit 0\n").unwrap();
    write_launchd_plist(
        &r.join("Users/bob/Library/LaunchAgents/us.zoom.ZoomOpener.plist"),
        "us.zoom.ZoomOpener",
        &[opener.to_str().unwrap()],
        true,
    );
    let config = write_config(r, &[]);
    let before = snapshot(r);

    let (code, report) = scan(&config, &["--no-probe"]);
    let p = persistence_finding(&report, "us.zoom.ZoomOpener");
    assert_eq!(p["verdict"], "remediate", "{p:#}");
    assert!(
        p["rule"].as_str().unwrap_or("").starts_with("catalog:"),
        "{p:#}"
    );
    assert_eq!(code, 3);
    assert_eq!(before, snapshot(r), "scan must not change anything");
}

#[test]
fn json_contract_holds_for_every_finding() {
    let root = temp_tree();
    let r = root.path();
    let config = write_config(r, &[]);
    let (code, report) = scan(&config, &[]);
    assert!(report["host"]["hostname"].is_string());
    assert_eq!(report["host"]["signatures_supported"], false);
    let findings = report["findings"].as_array().unwrap();
    for f in findings {
        let kind = f["kind"].as_str().unwrap();
        assert!(kind == "listener" || kind == "persistence", "{f:#}");
        let verdict = f["verdict"].as_str().unwrap();
        assert!(["allow", "report", "remediate"].contains(&verdict), "{f:#}");
        assert!(f["severity"].is_string());
        assert!(!f["reasons"].as_array().unwrap().is_empty(), "{f:#}");
        assert!(f["rule"].is_null() || f["rule"].is_string());
        if kind == "listener" {
            assert!(f["listener"]["address"].is_string());
            assert!(f["listener"]["port"].is_u64());
        }
    }
    let remediate = findings.iter().any(|f| f["verdict"] == "remediate");
    assert_eq!(code, if remediate { 3 } else { 0 });
}

#[test]
fn hostile_plists_are_per_file_errors_and_the_scan_goes_on() {
    let root = temp_tree();
    let r = root.path();
    let agents = r.join("Library/LaunchAgents");
    std::fs::create_dir_all(&agents).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", agents.join("evil.plist")).unwrap();
    std::fs::write(agents.join("garbage.plist"), b"\xff\xfe not a plist").unwrap();
    let deep = format!("{}{}", "<array>".repeat(50_000), "</array>".repeat(50_000));
    std::fs::write(
        agents.join("deep.plist"),
        format!("<?xml version=\"1.0\"?><plist version=\"1.0\">{deep}</plist>"),
    )
    .unwrap();
    write_launchd_plist(
        &agents.join("good.plist"),
        "com.example.good",
        &["/usr/bin/true"],
        false,
    );
    let config = write_config(r, &[]);

    let (_, report) = scan(&config, &["--no-probe"]);
    persistence_finding(&report, "com.example.good");
    let errors = report["errors"].as_array().unwrap();
    for name in ["evil.plist", "garbage.plist", "deep.plist"] {
        assert!(
            errors
                .iter()
                .any(|e| e["path"].as_str().is_some_and(|p| p.ends_with(name))),
            "{name} should be reported as an error: {errors:#?}"
        );
    }
}

#[test]
fn bad_config_names_the_key_and_exits_78() {
    let root = temp_tree();
    let r = root.path();
    let config = write_config(r, &[("Mode", "destroy".into())]);
    let out = Command::new(lenscap_bin())
        .args(["scan", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "EX_CONFIG for a bad configuration"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Mode"), "{stderr}");
    assert!(stderr.contains("destroy"), "{stderr}");
}

#[test]
fn human_table_groups_by_verdict_without_colour_when_piped() {
    let root = temp_tree();
    let r = root.path();
    let config = write_config(r, &[]);
    let out = Command::new(lenscap_bin())
        .args(["scan", "--no-probe", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for heading in ["REMEDIATE (", "REPORT (", "ALLOW ("] {
        assert!(stdout.contains(heading), "{stdout}");
    }
    assert!(!stdout.contains('\x1b'), "no colour codes when piped");
}

/// Every path under `root` with its size and mode, to prove nothing changed.
fn snapshot(root: &Path) -> Vec<(PathBuf, u64, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.path().symlink_metadata().unwrap();
            out.push((entry.path(), meta.len(), meta.mode()));
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// `scan` judges by the fleet policy the daemon stored in the state
/// directory: its rules and its catalog additions, not only the
/// configured rules (issue 10).
#[test]
fn a_stored_fleet_policy_applies_its_rules_and_catalog_additions() {
    let root = temp_tree();
    let r = root.path();
    // A visible vendor app's helper: at most `report` on its own.
    let app = r.join("Applications/Vendor.app");
    let vendor = install_helper(&app.join("Contents/MacOS/vendor-helper"));
    write_launchd_plist(
        &r.join("Library/LaunchAgents/com.vendor.helper.plist"),
        "com.vendor.helper",
        &[vendor.to_str().unwrap(), "--cors", "none"],
        true,
    );
    // A tool the fleet's catalog names by its process name.
    let tool = install_helper(&r.join("opt/acme/acmed"));
    let config = write_config(r, &[]);
    let (_vendor, vendor_port) = start_detached(&vendor, &["--cors", "none"], &r.join("p1"));
    let (_tool, tool_port) = start_detached(&tool, &["--cors", "none"], &r.join("p2"));

    let (_, before) = scan(&config, &[]);
    let v = the_listener(&before, vendor_port);
    assert_ne!(v["verdict"], "remediate", "{}", reasons(v));
    let t = the_listener(&before, tool_port);
    assert_ne!(t["rule"], "catalog:acme-tool", "{t:#}");

    // What the daemon writes after a poll (policy::fleet::store).
    let state = r.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let stored = serde_json::json!({
        "etag": "\"fleet-1\"",
        "source": "https://collector.example/api/v1/policy",
        "policy": {
            "rules": [{"id": "deny-vendor-helper", "action": "deny",
                       "path": vendor.to_str().unwrap()}],
            "catalog": [{"id": "acme-tool", "name": "Acme tool", "severity": "high",
                         "process_names": ["acmed"]}]
        }
    });
    std::fs::write(
        state.join("fleet-policy.json"),
        serde_json::to_vec(&stored).unwrap(),
    )
    .unwrap();

    let (code, after) = scan(&config, &[]);
    let v = the_listener(&after, vendor_port);
    assert_eq!(v["verdict"], "remediate", "{}", reasons(v));
    assert_eq!(v["rule"], "rule:deny-vendor-helper", "{v:#}");
    // Matched by the fleet's entry; on its name alone the judge reports
    // rather than acts (as for a built-in entry).
    let t = the_listener(&after, tool_port);
    assert_eq!(t["rule"], "catalog:acme-tool", "{t:#}");
    assert!(
        reasons(t).contains(
            "matches the known-bad catalog entry catalog:acme-tool (Acme tool, fleet policy)"
        ),
        "{}",
        reasons(t)
    );
    assert_eq!(t["verdict"], "report", "{}", reasons(t));
    assert_eq!(code, 3, "exit 3: the fleet policy calls for remediation");

    // `config show` lists both with where they came from.
    let out = Command::new(lenscap_bin())
        .args(["config", "show", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "  - deny  deny-vendor-helper  Path={}  # fleet policy  (fleet policy \"fleet-1\" from https://collector.example/api/v1/policy)\n",
            vendor.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("  - catalog:acme-tool  Acme tool (fleet policy)  (fleet catalog \"fleet-1\" from https://collector.example/api/v1/policy)\n"),
        "{text}"
    );
}
