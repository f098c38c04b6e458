//! `lenscap scan --json`: a process holding the camera is a `camera_use`
//! finding, each TCC grant a `camera_grant` finding, and a TCC.db that
//! cannot be read is an entry in `errors` while the scan goes on.

use std::path::Path;
use std::process::Command;

use lenscap_e2e::{lenscap_bin, temp_tree, write_config};
use serde_json::Value;

use super::{camera_keys, hold_open, make_video_device, write_corrupt_db, write_tcc_db};

/// Where `camera_keys`' TCCDatabases glob finds a user's TCC.db.
fn tcc_path(root: &Path, user: &str) -> std::path::PathBuf {
    root.join(format!(
        "Users/{user}/Library/Application Support/com.apple.TCC/TCC.db"
    ))
}

fn scan(config: &Path) -> (i32, Value, String) {
    let out = Command::new(lenscap_bin())
        .args(["scan", "--json", "--no-probe", "--config"])
        .arg(config)
        .output()
        .expect("run lenscap scan");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scan printed no JSON ({e}); stderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn findings<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

#[test]
fn scan_lists_camera_use_and_grants_and_reports_a_corrupt_tcc_db() {
    let tree = temp_tree();
    let r = tree.path();
    let video = make_video_device(r);
    // A device node nobody holds matches the glob too: it gives nothing.
    std::fs::write(r.join("dev/video1"), b"").unwrap();
    let good = tcc_path(r, "ann");
    write_tcc_db(
        &good,
        &[
            // (service, client, client_type, auth_value, auth_reason, last_modified)
            ("kTCCServiceCamera", "us.zoom.xos", 0, 2, 2, 1_717_000_000),
            (
                "kTCCServiceCamera",
                "com.example.Declined",
                0,
                0,
                2,
                1_717_000_100,
            ),
            (
                "kTCCServiceCamera",
                "/usr/local/bin/ffmpeg",
                1,
                2,
                3,
                1_717_000_200,
            ),
        ],
    );
    let corrupt = tcc_path(r, "bob");
    write_corrupt_db(&corrupt);
    for d in ["Applications", "private/tmp", "Library/LaunchAgents"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    let config = write_config(r, &camera_keys(r));
    let holder = hold_open(&video);

    let (code, report, stderr) = scan(&config);
    // 0, or 3 when another test's helper elsewhere on this machine is to
    // be remediated: either way the scan ran to the end.
    assert!(
        code == 0 || code == 3,
        "scan exited {code}; stderr:\n{stderr}"
    );

    // The camera session: this holder, on this device, nothing else of ours.
    let ours: Vec<&Value> = findings(&report, "camera_use")
        .into_iter()
        .filter(|f| {
            f["camera"]["device"]
                .as_str()
                .is_some_and(|d| d.starts_with(r.to_str().unwrap()))
                || f["process"]["pid"].as_u64() == Some(u64::from(holder.pid()))
        })
        .collect();
    assert_eq!(ours.len(), 1, "one session on our device: {report:#}");
    let u = ours[0];
    assert_eq!(
        u["process"]["pid"].as_u64(),
        Some(u64::from(holder.pid())),
        "{u:#}"
    );
    assert_eq!(u["camera"]["service"], "camera", "{u:#}");
    assert_eq!(u["camera"]["auth"], "in_use", "{u:#}");
    assert_eq!(u["camera"]["device"], video.to_str().unwrap(), "{u:#}");
    assert_eq!(u["verdict"], "allow", "a plain process: {u:#}");
    assert_eq!(u["severity"], "info", "{u:#}");
    assert!(
        u["camera"]["incident"].is_null(),
        "scan sees no connections: {u:#}"
    );
    assert!(!u["reasons"].as_array().unwrap().is_empty(), "{u:#}");

    // The grants of the readable database, each as it is stored.
    let grants = findings(&report, "camera_grant");
    let grant = |client: &str| {
        grants
            .iter()
            .find(|g| g["camera"]["client"] == client)
            .unwrap_or_else(|| panic!("no camera_grant for {client}: {report:#}"))
    };
    let zoom = grant("us.zoom.xos");
    assert_eq!(zoom["camera"]["service"], "camera", "{zoom:#}");
    assert_eq!(zoom["camera"]["auth"], "allowed", "{zoom:#}");
    assert_eq!(zoom["camera"]["client_type"], "bundle_id", "{zoom:#}");
    assert_eq!(zoom["camera"]["reason"], "user_consent", "{zoom:#}");
    assert_eq!(
        zoom["camera"]["database"],
        good.to_str().unwrap(),
        "{zoom:#}"
    );
    assert!(
        zoom["camera"]["since"]
            .as_str()
            .is_some_and(|s| s.starts_with("2024-05-29T16:26:40")),
        "last_modified 1717000000 as RFC 3339: {zoom:#}"
    );
    assert!(!zoom["reasons"].as_array().unwrap().is_empty(), "{zoom:#}");
    let declined = grant("com.example.Declined");
    assert_eq!(declined["camera"]["auth"], "denied", "{declined:#}");
    let ffmpeg = grant("/usr/local/bin/ffmpeg");
    assert_eq!(ffmpeg["camera"]["client_type"], "path", "{ffmpeg:#}");
    assert_eq!(ffmpeg["camera"]["auth"], "allowed", "{ffmpeg:#}");
    assert!(
        grants
            .iter()
            .all(|g| g["camera"]["database"] != corrupt.to_str().unwrap()),
        "grants from the corrupt database: {report:#}"
    );

    // The corrupt database: named in errors; the scan went on.
    let errors = report["errors"].as_array().unwrap();
    let corrupt_s = corrupt.to_str().unwrap();
    assert!(
        errors.iter().any(|e| e["path"] == corrupt_s
            || e["message"].as_str().is_some_and(|m| m.contains(corrupt_s))),
        "no error naming {corrupt_s}: {errors:#?}"
    );
    assert!(
        errors.iter().all(|e| e["path"] != good.to_str().unwrap()),
        "the good database reported as an error: {errors:#?}"
    );
}

/// Grants judged on their own, nothing running: the catalog's bundle id
/// and a program in a hidden folder are reported; an ordinary app's grant
/// stays allowed.
#[test]
fn scan_judges_grants_by_their_client_with_nothing_running() {
    let tree = temp_tree();
    let r = tree.path();
    let hidden = r.join("Users/ann/.acmeopener/AcmeOpener");
    std::fs::create_dir_all(hidden.parent().unwrap()).unwrap();
    std::fs::write(&hidden, b"#!/bin/sh\n").unwrap();
    let gone = r.join("Users/ann/Applications/Gone.app/Contents/MacOS/Gone");
    let (hidden_s, gone_s) = (hidden.to_str().unwrap(), gone.to_str().unwrap());
    write_tcc_db(
        &tcc_path(r, "ann"),
        &[
            (
                "kTCCServiceCamera",
                "us.zoom.ZoomOpener",
                0,
                2,
                2,
                1_717_000_000,
            ),
            ("kTCCServiceCamera", hidden_s, 1, 2, 2, 1_717_000_100),
            ("kTCCServiceMicrophone", gone_s, 1, 2, 2, 1_717_000_200),
            (
                "kTCCServiceCamera",
                "com.example.Meetings",
                0,
                2,
                2,
                1_717_000_300,
            ),
        ],
    );
    for d in ["Applications", "private/tmp", "Library/LaunchAgents"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    let config = write_config(r, &camera_keys(r));
    let (code, report, stderr) = scan(&config);
    assert!(
        code == 0 || code == 3,
        "scan exited {code}; stderr:\n{stderr}"
    );
    let grants = findings(&report, "camera_grant");
    let grant = |client: &str| {
        *grants
            .iter()
            .find(|g| g["camera"]["client"] == client)
            .unwrap_or_else(|| panic!("no camera_grant for {client}: {report:#}"))
    };
    let opener = grant("us.zoom.ZoomOpener");
    assert_eq!(opener["verdict"], "report", "{opener:#}");
    assert_eq!(opener["severity"], "critical", "{opener:#}");
    assert_eq!(opener["rule"], "catalog:zoomopener", "{opener:#}");
    let acme = grant(hidden_s);
    assert_eq!(acme["verdict"], "report", "{acme:#}");
    assert_eq!(acme["severity"], "high", "{acme:#}");
    let said = acme["reasons"].to_string();
    assert!(said.contains("hidden folder .acmeopener"), "{acme:#}");
    let gone_f = grant(gone_s);
    assert_eq!(gone_f["verdict"], "report", "{gone_f:#}");
    assert_eq!(gone_f["severity"], "high", "{gone_f:#}");
    assert!(
        gone_f["reasons"].to_string().contains("is gone"),
        "{gone_f:#}"
    );
    let ordinary = grant("com.example.Meetings");
    assert_eq!(ordinary["verdict"], "allow", "{ordinary:#}");
    assert_eq!(ordinary["severity"], "info", "{ordinary:#}");
}
