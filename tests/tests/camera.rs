//! Camera access end to end on Linux (issue 5): the real `lenscap` binary
//! against real processes holding a stand-in camera device open, real
//! SQLite TCC databases, and the real daemon with a rogue helper under the
//! launchd stand-in. Every location lenscap reads or writes is configured
//! into the test's temporary tree; a regular file `<tree>/dev/video0`
//! stands in for the camera (`CameraDevices = ["<tree>/dev/video*"]`): on
//! Linux a camera is "in use" while a process holds a descriptor on it.
//!
//! - `camera/fixture.rs`: `rogue-helper --camera` holds the file open.
//! - `camera/scan.rs`: `lenscap scan --json` lists camera sessions and TCC
//!   grants, and a corrupt TCC.db is an error entry, not a failed scan.
//! - `camera/helper.rs`: a flagged helper using the camera is a critical
//!   `camera_use` to remediate; monitor mode leaves it running, remediate
//!   mode contains it and the session's close is recorded.
//! - `camera/correlation.rs`: a camera turned on shortly after a connection
//!   to a flagged helper is one critical incident naming the helper's port;
//!   one with no such connection is allowed, and both are recorded.
//! - `camera/short_connection.rs`: the same with a one-shot request that
//!   opens and closes between two sweeps (Linux closed-connection reports).
//! - `camera/tcc.rs`: the daemon keeps sweeping past a corrupt TCC.db and
//!   says so in a health event.

// Test code: a failed setup step is a failed test, and the message says why.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "camera/correlation.rs"]
mod correlation;
#[path = "camera/fixture.rs"]
mod fixture;
#[path = "camera/helper.rs"]
mod helper;
#[path = "camera/scan.rs"]
mod scan;
#[path = "camera/short_connection.rs"]
mod short_connection;
#[path = "camera/tcc.rs"]
mod tcc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use lenscap_e2e::{
    Daemon, Proc, STANDIN_SOCK_ENV, Standin, lenscap_bin, temp_tree, wait_for_file, wait_until,
    write_config, write_launchd_plist,
};
use serde_json::Value;

pub const ROGUE: &str = env!("CARGO_BIN_EXE_rogue-helper");

/// The user owning the helper's home and plist (the stand-in loads a plist
/// into its owner's gui domain; the daemon boots it out of the same one).
pub const USER_UID: u32 = 1000;
/// The helper's launchd label. Not a catalog entry's (ZoomOpener's would
/// do): a catalog match is flagged on sight wherever it runs, so a
/// remediate-mode daemon of one test would stop the helpers of the tests
/// running beside it. This helper is flagged by the heuristics, which
/// need its plist in the daemon's own `PersistenceDirs`.
pub const LABEL: &str = "com.acme.camhelper";

/// The macOS 14 (Sonoma) TCC.db tables lenscap reads, copied from
/// `agent/tests/fixtures/tcc/sonoma.sql` (sources cited there): the
/// `access` table as `sqlite3 TCC.db .schema` prints it, and `admin`.
const SONOMA_SCHEMA: &str = "\
CREATE TABLE admin (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
INSERT INTO admin VALUES('version',30);
CREATE TABLE access (service TEXT NOT NULL, client TEXT NOT NULL, client_type INTEGER NOT NULL, auth_value INTEGER NOT NULL, auth_reason INTEGER NOT NULL, auth_version INTEGER NOT NULL, csreq BLOB, policy_id INTEGER, indirect_object_identifier_type INTEGER, indirect_object_identifier TEXT NOT NULL DEFAULT 'UNUSED', indirect_object_code_identity BLOB, flags INTEGER, last_modified INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)), pid INTEGER, pid_version INTEGER, boot_uuid TEXT NOT NULL DEFAULT 'UNUSED', last_reminded INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)), PRIMARY KEY (service, client, client_type, indirect_object_identifier));
";

/// One `access` row: (service, client, client_type, auth_value,
/// auth_reason, last_modified).
pub type TccRow<'a> = (&'a str, &'a str, i64, i64, i64, i64);

/// Write a real SQLite TCC.db with the Sonoma schema holding `rows`.
pub fn write_tcc_db(path: &Path, rows: &[TccRow]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(SONOMA_SCHEMA).unwrap();
    for (service, client, client_type, auth, reason, modified) in rows {
        conn.execute(
            "INSERT INTO access (service, client, client_type, auth_value, auth_reason, \
             auth_version, flags, last_modified, last_reminded) \
             VALUES (?1, ?2, ?3, ?4, ?5, 1, 0, ?6, ?6)",
            rusqlite::params![service, client, client_type, auth, reason, modified],
        )
        .unwrap();
    }
    conn.close().unwrap();
}

/// Write a file named like a TCC.db that SQLite cannot read: no SQLite
/// header, just bytes.
pub fn write_corrupt_db(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(path, garbage).unwrap();
}

/// `<root>/dev/video0`: a regular file standing in for the camera.
pub fn make_video_device(root: &Path) -> PathBuf {
    let dev = root.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    let video = dev.join("video0");
    std::fs::write(&video, b"").unwrap();
    video
}

/// The configuration keys that point camera watching into the tree.
pub fn camera_keys(root: &Path) -> Vec<(&'static str, plist::Value)> {
    vec![
        ("CameraWatch", true.into()),
        (
            "CameraDevices",
            plist::Value::Array(vec![root.join("dev/video*").display().to_string().into()]),
        ),
        (
            "TCCDatabases",
            plist::Value::Array(vec![
                root.join("Users/*/Library/Application Support/com.apple.TCC/TCC.db")
                    .display()
                    .to_string()
                    .into(),
            ]),
        ),
    ]
}

/// Every daemon probes every new loopback listener on the machine, the
/// other tests' helpers included, and a probe is a connection to that
/// helper. The correlation test needs a window with no connection to its
/// helper, so it runs alone ([`Slot::exclusive`]); the other daemon tests
/// share the machine with each other ([`Slot::shared`]).
static DAEMONS: RwLock<()> = RwLock::new(());

/// A test's hold on [`DAEMONS`], released when dropped (after its daemon:
/// keep it in a variable declared before the daemon's, or in [`Setup`]).
#[derive(Debug)]
pub enum Slot {
    Shared {
        _guard: RwLockReadGuard<'static, ()>,
    },
    Exclusive {
        _guard: RwLockWriteGuard<'static, ()>,
    },
}

impl Slot {
    /// Alongside other daemon tests.
    pub fn shared() -> Slot {
        // A test that panicked holding the lock poisons it; the lock only
        // orders tests, so its state is fine.
        Slot::Shared {
            _guard: DAEMONS.read().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// With no other daemon test running.
    pub fn exclusive() -> Slot {
        Slot::Exclusive {
            _guard: DAEMONS.write().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Does process `pid` hold a descriptor on `path`?
pub fn holds_open(pid: u32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
        })
        .unwrap_or(false)
}

/// A plain process (`sleep`, through `bash`'s `exec`, so one pid
/// throughout) holding `path` open read-only, returned once it does.
pub fn hold_open(path: &Path) -> Proc {
    let p = Proc::spawn(
        Command::new("bash")
            .arg("-c")
            .arg(r#"exec 3<"$0"; exec sleep 120"#)
            .arg(path),
    );
    let pid = p.pid();
    wait_until(
        Duration::from_secs(5),
        "the holder opening the device",
        || holds_open(pid, path).then_some(()),
    );
    p
}

/// `lenscap <args> --config <config>`, which must succeed; its stdout.
pub fn lenscap(config: &Path, args: &[&str]) -> String {
    let out = Command::new(lenscap_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run lenscap");
    assert!(
        out.status.success(),
        "lenscap {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `lenscap events --json` (the newest 1000), oldest first by `seq`.
pub fn events(config: &Path) -> Vec<Value> {
    let text = lenscap(config, &["events", "--json", "--limit", "1000"]);
    let mut all = serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    all.sort_by_key(|e| e["seq"].as_u64());
    all
}

/// The `activity_id` of a finding event: 1 create, 2 update, 3 close.
pub const CREATE: u64 = 1;
pub const CLOSE: u64 = 3;

/// `camera_use` finding events, oldest first.
pub fn camera_use_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| {
            e["kind"] == "detection_finding" && e["payload"]["finding"]["kind"] == "camera_use"
        })
        .collect()
}

/// `camera_use` events about process `pid`, oldest first.
pub fn camera_events_of(events: &[Value], pid: u32) -> Vec<&Value> {
    camera_use_events(events)
        .into_iter()
        .filter(|e| e["payload"]["finding"]["process"]["pid"].as_u64() == Some(u64::from(pid)))
        .collect()
}

pub fn activity(e: &Value) -> Option<u64> {
    e["payload"]["activity_id"].as_u64()
}

/// The first event of the finding (`finding_info.uid`) of `first` whose
/// activity is `activity`.
pub fn same_finding<'a>(events: &'a [Value], first: &Value, activity_id: u64) -> Option<&'a Value> {
    let uid = &first["payload"]["finding_info"]["uid"];
    events.iter().find(|e| {
        e["kind"] == "detection_finding"
            && &e["payload"]["finding_info"]["uid"] == uid
            && activity(e) == Some(activity_id)
    })
}

/// One line per camera and health event, for failure messages.
pub fn summary(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| {
            e["kind"] == "agent_health"
                || e["payload"]["finding"]["kind"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("camera"))
        })
        .map(|e| {
            let f = &e["payload"]["finding"];
            if e["kind"] == "agent_health" {
                format!("#{} health {}", e["seq"], e["payload"])
            } else {
                format!(
                    "#{} {} activity {} pid {} {} {} camera {}",
                    e["seq"],
                    f["kind"],
                    e["payload"]["activity_id"],
                    f["process"]["pid"],
                    f["verdict"],
                    f["severity"],
                    f["camera"]
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Poll `f` on the events every 200 ms until it returns `Some`; on timeout
/// panic naming `what`, with the camera and health events seen and the
/// daemon's log.
pub fn wait_event<T>(
    config: &Path,
    daemon: &Daemon,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut(&[Value]) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let all = events(config);
        if let Some(v) = f(&all) {
            return v;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: not within {timeout:?}\ncamera and health events:\n{}\ndaemon log:\n{}",
                summary(&all),
                daemon.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A ZoomOpener-style helper: the rogue helper copied to
/// `Users/ann/.camhelper/cam-helper` (a hidden
/// folder, no installed app), started by
/// the launchd stand-in from a KeepAlive RunAtLoad LaunchAgent labelled
/// [`LABEL`], and a daemon configuration pointing into the tree with camera
/// watching on `<tree>/dev/video*`.
#[derive(Debug)]
pub struct Setup {
    pub root: PathBuf,
    /// `Users/ann/.camhelper`: the helper's hidden folder.
    pub folder: PathBuf,
    pub exe: PathBuf,
    pub plist: PathBuf,
    pub video: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    /// The helper's first pid.
    pub pid: u32,
    pub standin: Standin,
    // Last: the tree outlives the stand-in and its jobs.
    _tree: tempfile::TempDir,
    _slot: Slot,
}

impl Setup {
    /// `mode` is the daemon's `Mode`; with `camera` the helper holds
    /// `<tree>/dev/video0` open (`--camera`); `helper_args` go to it before
    /// its `--port-file`; `extra` are more configuration keys.
    pub fn new(
        mode: &str,
        camera: bool,
        helper_args: &[&str],
        extra: &[(&str, plist::Value)],
    ) -> Setup {
        Setup::in_slot(Slot::shared(), mode, camera, helper_args, extra)
    }

    /// [`Setup::new`] holding `slot` until dropped.
    pub fn in_slot(
        slot: Slot,
        mode: &str,
        camera: bool,
        helper_args: &[&str],
        extra: &[(&str, plist::Value)],
    ) -> Setup {
        let tree = temp_tree();
        let root = tree.path().to_path_buf();
        let video = make_video_device(&root);
        let home = root.join("Users/ann");
        let folder = home.join(".camhelper");
        let exe = folder.join("cam-helper");
        let plist = home.join(format!("Library/LaunchAgents/{LABEL}.plist"));
        // The helper runs as ann (the stand-in runs a gui/<uid> job as that
        // user): it writes its port where ann may write.
        let port_file = root.join("run/port");
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();
        chown_tree(&root.join("run"), USER_UID);
        std::fs::copy(ROGUE, &exe).unwrap();
        let mut args = vec![exe.to_str().unwrap(), "--cors", "star", "--image"];
        if camera {
            args.extend(["--camera", video.to_str().unwrap()]);
        }
        args.extend_from_slice(helper_args);
        args.extend(["--port-file", port_file.to_str().unwrap()]);
        write_launchd_plist(&plist, LABEL, &args, true);
        chown_tree(&home, USER_UID);
        for d in ["Applications", "private/tmp"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let mut keys: Vec<(&str, plist::Value)> = vec![
            ("Mode", mode.into()),
            ("SweepSeconds", 1.into()),
            (
                "LaunchctlPath",
                Standin::launchctl_path().display().to_string().into(),
            ),
        ];
        keys.extend(camera_keys(&root));
        keys.extend(extra.iter().cloned());
        let config = write_config(&root, &keys);
        let standin = Standin::start(&[plist.parent().unwrap()], &root.join("launchd"));
        let port = wait_for_file(&port_file, Duration::from_secs(10))
            .parse()
            .expect("port file holds a port");
        let target = format!("gui/{USER_UID}/{LABEL}");
        let pid = wait_until(Duration::from_secs(5), "the helper's pid", || {
            standin.job_pid(&target)
        });
        Setup {
            root,
            folder,
            exe,
            plist,
            video,
            config,
            port,
            pid,
            standin,
            _tree: tree,
            _slot: slot,
        }
    }

    pub fn target(&self) -> String {
        format!("gui/{USER_UID}/{LABEL}")
    }

    /// Start the daemon and wait for its first sweep.
    pub fn start_daemon(&self) -> Daemon {
        let sock = self.standin.sock_path();
        Daemon::start(&self.config, &[(STANDIN_SOCK_ENV, sock.as_os_str())])
    }

    pub fn events(&self) -> Vec<Value> {
        events(&self.config)
    }

    /// `quarantine list --json`.
    pub fn quarantine_list(&self) -> Vec<Value> {
        let text = lenscap(&self.config, &["quarantine", "list", "--json"]);
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Processes running the helper (by its original path on the command
    /// line: a quarantined executable keeps its inode, not its path).
    pub fn helper_processes(&self) -> Vec<u32> {
        lenscap_e2e::processes_matching(self.exe.to_str().unwrap())
    }
}

/// `chown -R uid:uid` without following links.
pub fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.symlink_metadata().unwrap().is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}
