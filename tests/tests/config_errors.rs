//! A bad configuration, end to end, through the real `lenscap` binary:
//! `lenscap run` exits 78 (`EX_CONFIG`, what launchd shows an admin)
//! exactly like `scan` and `config show`, with a message that names the
//! key; a key that is a lenscap key but for its case (`mode`) is such an
//! error, not a warning the agent runs past with the default; and a running
//! daemon that re-reads a configuration with that error keeps the one it
//! had.

// Test code: a failed setup step is a failed test, and the message says why.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lenscap_e2e::{Daemon, lenscap_bin, temp_tree, wait_until, write_config};

/// `lenscap <args…> --config <config>`, killed if it is still running
/// after 20 s: a daemon that accepted the configuration would never exit
/// by itself, and the test must fail rather than hang.
fn lenscap(args: &[&str], config: &Path) -> Output {
    let mut child = Command::new(lenscap_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("LENSCAP_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lenscap");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap lenscap");
            panic!(
                "lenscap {args:?} was still running after 20 s (it accepted the configuration); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect lenscap's output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_with_a_bad_value_exits_78_naming_the_key() {
    let root = temp_tree();
    let config = write_config(root.path(), &[("SweepSeconds", 0.into())]);
    let out = lenscap(&["run"], &config);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG; stderr:\n{err}");
    assert!(
        err.contains(&format!(
            "{}: SweepSeconds is 0, expected a number of seconds from 0.1 to 3600",
            config.display()
        )),
        "{err}"
    );
    // It stopped before doing anything: not even its state directory.
    assert!(!root.path().join("state").exists());
}

#[test]
fn run_with_bad_rules_exits_78_too() {
    let root = temp_tree();
    let mut rule = plist::Dictionary::new();
    rule.insert("Id".into(), "no-matcher".into());
    rule.insert("Action".into(), "allow".into());
    let config = write_config(
        root.path(),
        &[(
            "Rules",
            plist::Value::Array(vec![plist::Value::Dictionary(rule)]),
        )],
    );
    let out = lenscap(&["run"], &config);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("Rules[0] (Id \"no-matcher\") has no matcher"),
        "{err}"
    );
}

/// `mode` instead of `Mode`: every command refuses it the same way,
/// naming the key it should be, instead of running in monitor mode while
/// the admin believes remediate is on.
#[test]
fn a_key_in_the_wrong_case_exits_78_naming_the_right_key() {
    let root = temp_tree();
    let config = write_config(root.path(), &[("mode", "remediate".into())]);
    let expected = format!(
        "{}: `mode` is not a key; did you mean `Mode`? keys are case-sensitive",
        config.display()
    );
    for args in [&["run"][..], &["scan", "--no-probe"], &["config", "show"]] {
        let out = lenscap(args, &config);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {err}");
        assert!(err.contains(&expected), "{args:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(!root.path().join("state").exists());

    // A key that matches nothing stays a warning: the daemon's sibling
    // `scan` runs and exits as usual.
    let other = temp_tree();
    let config = write_config(other.path(), &[("Colour", "blue".into())]);
    let out = lenscap(&["scan", "--no-probe"], &config);
    let err = stderr(&out);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{err}");
    assert!(err.contains("unknown key \"Colour\" is ignored"), "{err}");
}

/// Replace the configuration file in one rename (how `defaults` and MDM
/// write it) with `base` plus `extra`.
fn rewrite(root: &Path, base: &plist::Dictionary, extra: &[(&str, plist::Value)]) {
    let mut dict = base.clone();
    for (k, v) in extra {
        dict.insert((*k).into(), v.clone());
    }
    let staged = root.join("lenscap.plist.new");
    plist::Value::Dictionary(dict).to_file_xml(&staged).unwrap();
    std::fs::rename(&staged, root.join("lenscap.plist")).unwrap();
}

#[test]
fn a_running_daemon_rejects_a_reload_with_a_key_in_the_wrong_case() {
    let root = temp_tree();
    let config = write_config(root.path(), &[("SweepSeconds", 1.into())]);
    let base = plist::Value::from_file(&config)
        .unwrap()
        .into_dictionary()
        .unwrap();
    let mut d = Daemon::start(&config, &[]);
    let mode = |d: &Daemon| d.status().map(|s| s["mode"].clone());
    assert_eq!(mode(&d), Some("monitor".into()), "{}", d.log());

    rewrite(root.path(), &base, &[("mode", "remediate".into())]);
    wait_until(Duration::from_secs(20), "the reload to be rejected", || {
        d.log().contains("new configuration rejected").then_some(())
    });
    let log = d.log();
    assert!(
        log.contains("`mode` is not a key; did you mean `Mode`?"),
        "{log}"
    );
    // Still running, still on the old configuration.
    d.wait_sweeps(2);
    assert_eq!(mode(&d), Some("monitor".into()));

    // The control: the same change spelt right is applied, so the
    // rejection above was the key's case and not a reload that never ran.
    rewrite(root.path(), &base, &[("Mode", "remediate".into())]);
    wait_until(Duration::from_secs(20), "Mode to become remediate", || {
        (mode(&d) == Some("remediate".into())).then_some(())
    });
}

/// The other side of a reload: a new `SweepSeconds` restarts the sweep
/// timer (on Linux a timerfd the loop waits on), so sweeps come at the new
/// pace without a restart.
#[test]
fn a_reload_to_a_shorter_sweep_interval_takes_effect() {
    let root = temp_tree();
    let config = write_config(root.path(), &[("SweepSeconds", 3600.into())]);
    let base = plist::Value::from_file(&config)
        .unwrap()
        .into_dictionary()
        .unwrap();
    let d = Daemon::start(&config, &[]);
    let sweeps = |d: &Daemon| {
        d.status()
            .and_then(|s| s["sweeps"].as_u64())
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(20), "the first sweep", || {
        (sweeps(&d) >= 1).then_some(())
    });
    let before = sweeps(&d);

    rewrite(root.path(), &base, &[("SweepSeconds", 0.2.into())]);
    // At an hour a sweep, only the reload's own would come; at 0.2 s,
    // five more within seconds (status.json shows them every 2 s).
    wait_until(Duration::from_secs(20), "sweeps every 0.2 s", || {
        (sweeps(&d) >= before + 5).then_some(())
    });
}
