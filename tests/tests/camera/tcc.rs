//! A TCC.db the daemon cannot read is said in a health event naming it,
//! and the daemon keeps sweeping; a new grant to the catalog's helper is
//! judged as `scan` judges it.

use std::time::Duration;

use lenscap_e2e::{Daemon, temp_tree, write_config};

use super::{
    Slot, camera_keys, make_video_device, summary, wait_event, write_corrupt_db, write_tcc_db,
};

#[test]
fn a_corrupt_tcc_db_is_a_health_event_and_the_daemon_keeps_sweeping() {
    let tree = temp_tree();
    let r = tree.path();
    make_video_device(r);
    let tcc = |user: &str| {
        r.join(format!(
            "Users/{user}/Library/Application Support/com.apple.TCC/TCC.db"
        ))
    };
    write_tcc_db(
        &tcc("ann"),
        &[("kTCCServiceCamera", "us.zoom.xos", 0, 2, 2, 1_717_000_000)],
    );
    let corrupt = tcc("bob");
    write_corrupt_db(&corrupt);
    for d in ["Applications", "private/tmp", "Library/LaunchAgents"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    let mut keys = vec![("Mode", "monitor".into()), ("SweepSeconds", 1.into())];
    keys.extend(camera_keys(r));
    let config = write_config(r, &keys);
    let _slot = Slot::shared();
    let mut d = Daemon::start(&config, &[]);

    let corrupt_s = corrupt.to_str().unwrap().to_string();
    let health = wait_event(
        &config,
        &d,
        Duration::from_secs(15),
        "a health event naming the corrupt TCC.db",
        |all| {
            all.iter()
                .find(|e| {
                    e["kind"] == "agent_health" && e["payload"].to_string().contains(&corrupt_s)
                })
                .cloned()
        },
    );
    let status = health["payload"]["status"].as_str().unwrap_or_default();
    assert!(
        !matches!(status, "started" | "stopped"),
        "the database is named in a health event about it: {health:#}"
    );
    // Only the corrupt one: the good database is read without complaint.
    let good_s = tcc("ann").to_str().unwrap().to_string();
    let all = super::events(&config);
    assert!(
        !all.iter()
            .any(|e| e["kind"] == "agent_health" && e["payload"].to_string().contains(&good_s)),
        "a health event about the readable database:\n{}",
        summary(&all)
    );

    // A new grant to the catalog's helper, which is not running: the
    // daemon judges it as scan does — reported, critical, by the catalog.
    // (Written beside it and renamed over it: a whole new database.)
    let next = tcc("ann").with_extension("next");
    let opener_row = (
        "kTCCServiceCamera",
        "us.zoom.ZoomOpener",
        0,
        2,
        2,
        1_717_000_500,
    );
    write_tcc_db(
        &next,
        &[
            ("kTCCServiceCamera", "us.zoom.xos", 0, 2, 2, 1_717_000_000),
            opener_row,
        ],
    );
    std::fs::rename(&next, tcc("ann")).unwrap();
    let opener = wait_event(
        &config,
        &d,
        Duration::from_secs(15),
        "a camera_grant finding for us.zoom.ZoomOpener",
        |all| {
            all.iter()
                .find(|e| e["payload"]["finding"]["camera"]["client"] == "us.zoom.ZoomOpener")
                .cloned()
        },
    );
    let f = &opener["payload"]["finding"];
    assert_eq!(f["kind"], "camera_grant", "{opener:#}");
    assert_eq!(f["verdict"], "report", "{opener:#}");
    assert_eq!(f["severity"], "critical", "{opener:#}");
    assert_eq!(f["rule"], "catalog:zoomopener", "{opener:#}");

    // Still sweeping, several times over, and still running.
    let before = d.sweeps();
    d.wait_sweeps(3);
    assert!(d.sweeps() >= before + 3);
    assert!(
        lenscap_e2e::pid_running(d.pid()),
        "daemon died; log:\n{}",
        d.log()
    );
    assert_eq!(d.stop().code(), Some(0), "clean stop; log:\n{}", d.log());
}
