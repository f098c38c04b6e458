//! `rogue-helper --camera PATH`: the helper holds `PATH` open for its
//! whole life, already when its port file appears.

use std::process::Command;
use std::time::Duration;

use lenscap_e2e::{Proc, temp_tree, wait_for_file};

use super::{ROGUE, holds_open, make_video_device};

#[test]
fn rogue_helper_holds_the_camera_open_once_its_port_is_announced() {
    let tree = temp_tree();
    let video = make_video_device(tree.path());
    let port_file = tree.path().join("port");
    let helper = Proc::spawn(
        Command::new(ROGUE)
            .arg("--camera")
            .arg(&video)
            .arg("--port-file")
            .arg(&port_file),
    );
    wait_for_file(&port_file, Duration::from_secs(10));
    // No waiting past the port file: it is written after the open.
    assert!(
        holds_open(helper.pid(), &video),
        "no descriptor on {} in /proc/{}/fd",
        video.display(),
        helper.pid()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(holds_open(helper.pid(), &video), "descriptor closed again");

    // Without the flag, no descriptor on it.
    let plain_port = tree.path().join("plain.port");
    let plain = Proc::spawn(Command::new(ROGUE).arg("--port-file").arg(&plain_port));
    wait_for_file(&plain_port, Duration::from_secs(10));
    assert!(!holds_open(plain.pid(), &video));

    // A camera it cannot open is a startup failure, not a silent helper.
    let out = Command::new(ROGUE)
        .arg("--camera")
        .arg(tree.path().join("dev/missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--camera"),
        "{out:?}"
    );
}
