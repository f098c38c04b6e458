//! One observation pass: ask the platform and the file system everything
//! the judge needs, and hand back plain [`Observations`]. Failures of one
//! item (an unreadable plist, a process that exited mid-scan) become
//! [`ScanError`]s and the pass goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::model::{CameraSessionObservation, GrantObservation, Observations};
use crate::model::{
    ProcessIdentity, ScanError, enclosing_bundle, script_arg, translocation_bundle,
};
use crate::observe::signing::SignatureCache;
use crate::observe::{apps, camera, persistence, probe, tcc};
use crate::platform::{CameraSource, Platform, PlatformError};

/// How many probes run at once: enough to hide the latency of silent
/// listeners, few enough not to look like a port scan.
const PROBE_CONCURRENCY: usize = 16;

/// Before `lenscap scan` asks again what settled nothing: long enough for
/// a listener that just reset a connection to be back in `accept`.
const SCAN_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Options that come from the command line rather than configuration.
#[derive(Debug, Clone, Copy)]
pub struct GatherOptions {
    pub probe: bool,
}

/// Everything observed, plus what went wrong on the way.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub observations: Observations,
    pub errors: Vec<ScanError>,
}

/// Run observe once. `cache` keeps code-signature checks between passes
/// (the daemon keeps one for its lifetime).
pub fn gather(
    platform: &dyn Platform,
    config: &Config,
    cache: &SignatureCache,
    opts: GatherOptions,
) -> Gathered {
    let mut errors = Vec::new();
    // Where camera holders are processes' descriptors (Linux), the walk
    // that finds the listeners' owners reads every descriptor anyway: it
    // matches the devices in the same pass, instead of a second walk of
    // `/proc/*/fd` on the privacy thread (that second walk was as costly
    // as the first). An invalid glob is left to `camera::current_sessions`
    // to report, as before.
    let devices = match platform.camera_source() {
        CameraSource::ProcFds { proc_root }
            if config.camera_watch && proc_root == Path::new("/proc") =>
        {
            // An invalid glob leaves the camera to
            // `camera::current_sessions`, which reports it.
            camera::CameraDevices::new(&config.camera_devices).ok()
        }
        _ => None,
    };

    // Persistence and installed apps are independent of sockets: read them
    // on a second thread while this one walks sockets and processes. Privacy
    // grants and camera sessions go on a third: `log show` may take seconds.
    let (listeners, mut processes, mut items, installed_bundle_ids, privacy_and_camera) =
        std::thread::scope(|scope| {
            let files = scope.spawn(|| startup_items(config));
            let with_camera = devices.is_none();
            let privacy = scope.spawn(move || privacy(platform, config, with_camera));

            let combined = devices.as_ref().and_then(|devices| {
                platform.listeners_and_held_paths(&|path: &Path| devices.matches(path))
            });
            let (listeners, camera_sessions) = match combined {
                Some(Ok(found)) => (Ok(found.listeners), Some(sessions_of(found.held))),
                // No combined walk, or it failed: the two separate
                // questions, each with its own errors.
                _ => (platform.listeners(), None),
            };
            let listeners = match listeners {
                Ok(l) => l,
                Err(e) => {
                    errors.push(err("listeners", None, &e));
                    Vec::new()
                }
            };
            // Owners of every listener, and their parents: "started by another
            // application" is a question about the parent.
            let owners: BTreeSet<u32> = listeners
                .iter()
                .flat_map(|l| l.pids.iter().copied())
                .collect();
            let mut processes = read_processes(platform, cache, &owners, &mut errors);
            let parents: BTreeSet<u32> = processes
                .values()
                .map(|p: &ProcessIdentity| p.ppid)
                .filter(|ppid| *ppid != 0 && !processes.contains_key(ppid))
                .collect();
            processes.extend(read_processes(platform, cache, &parents, &mut errors));

            let (items, apps, file_errors) = match files.join() {
                Ok(r) => r,
                // A panic in the scanner is a bug; report it and go on without
                // persistence rather than losing the listener inventory.
                Err(_) => (
                    Vec::new(),
                    BTreeSet::new(),
                    vec![ScanError {
                        source: "persistence".into(),
                        path: None,
                        message: "the persistence scan failed unexpectedly".into(),
                    }],
                ),
            };
            errors.extend(file_errors);
            let privacy = privacy.join().unwrap_or_else(|_| Privacy {
                errors: vec![ScanError {
                    source: tcc::SOURCE.into(),
                    path: None,
                    message: "the privacy (TCC and camera) scan failed unexpectedly".into(),
                }],
                ..Privacy::default()
            });
            (
                listeners,
                processes,
                items,
                apps,
                (privacy, camera_sessions),
            )
        });
    let (mut privacy, camera_sessions) = privacy_and_camera;
    if devices.is_some() {
        // Errors in the order the privacy thread gives them: grants, then
        // camera.
        privacy.camera_sessions = camera_sessions
            .unwrap_or_else(|| camera::current_sessions(platform, config, &mut privacy.errors));
    }
    errors.extend(privacy.errors);
    // Who has the camera, and what started them, up to launchd.
    let session_pids: BTreeSet<u32> = privacy
        .camera_sessions
        .iter()
        .filter_map(|s| s.pid)
        .collect();
    add_ancestry(platform, cache, session_pids, &mut processes, &mut errors);

    errors.extend(login_items(platform, config, &mut items));

    let probes = if opts.probe && config.probe {
        let targets: Vec<(IpAddr, u16)> = listeners
            .iter()
            .filter(|l| l.scope.browser_reachable())
            .map(|l| (l.address, l.port))
            .collect();
        // One-shot: what settled nothing is asked once more, right away
        // (at most one more timeout); the daemon asks again on a schedule.
        let timeout = Duration::from_millis(config.probe_timeout_ms);
        probe::probe_all_retrying(&targets, timeout, PROBE_CONCURRENCY, Some(SCAN_RETRY_PAUSE))
    } else {
        BTreeMap::new()
    };

    let facts = path_facts(&processes, &items);
    let translocated = translocation_mounts(platform, &processes);

    Gathered {
        observations: Observations {
            listeners,
            processes,
            persistence: items,
            probes,
            installed_bundle_ids,
            existing_paths: facts.existing,
            path_owners: facts.owners,
            home_dirs: facts.homes,
            translocated,
            agent_pid: std::process::id(),
            agent_exe: std::env::current_exe().ok(),
            grants: privacy.grants,
            camera_sessions: privacy.camera_sessions,
            connections: Vec::new(),
        },
        errors,
    }
}

/// What the privacy thread of [`gather`] found.
#[derive(Debug, Default)]
struct Privacy {
    grants: Vec<GrantObservation>,
    camera_sessions: Vec<CameraSessionObservation>,
    errors: Vec<ScanError>,
}

/// Camera sessions from the (pid, device) pairs a descriptor walk found,
/// as [`camera::current_sessions`] makes them: the start of a session is
/// unknown from one snapshot, so it is *now*.
fn sessions_of(held: Vec<(u32, PathBuf)>) -> Vec<CameraSessionObservation> {
    let now = crate::clock::unix_now_us();
    held.into_iter()
        .map(|(pid, device)| CameraSessionObservation {
            pid: Some(pid),
            bundle_id: None,
            device: Some(device),
            since_unix_us: now,
        })
        .collect()
}

/// TCC grants (problems become errors) and, with `with_camera`, the camera
/// sessions open now.
fn privacy(platform: &dyn Platform, config: &Config, with_camera: bool) -> Privacy {
    let mut errors = Vec::new();
    // The scan's private copies of locked databases go to a 0700 directory
    // in the system temp dir: `lenscap scan` may not own `StateDir`.
    let read = tcc::read_all(config, None);
    errors.extend(read.problems.into_iter().map(|p| ScanError {
        source: tcc::SOURCE.into(),
        path: Some(p.database),
        message: p.detail,
    }));
    let camera_sessions = if with_camera {
        camera::current_sessions(platform, config, &mut errors)
    } else {
        Vec::new()
    };
    Privacy {
        grants: read.grants,
        camera_sessions,
        errors,
    }
}

/// A process tree deeper than this is not one worth following further.
const MAX_ANCESTRY: usize = 64;

/// Add `pids` and every ancestor up to PID 1 to `processes`, reading only
/// the ones not there yet.
pub(crate) fn add_ancestry(
    platform: &dyn Platform,
    cache: &SignatureCache,
    pids: BTreeSet<u32>,
    processes: &mut BTreeMap<u32, ProcessIdentity>,
    errors: &mut Vec<ScanError>,
) {
    let mut visited = BTreeSet::new();
    let mut frontier = pids;
    for _ in 0..MAX_ANCESTRY {
        let missing: BTreeSet<u32> = frontier
            .iter()
            .filter(|p| !processes.contains_key(p))
            .copied()
            .collect();
        processes.extend(read_processes(platform, cache, &missing, errors));
        visited.extend(frontier.iter().copied());
        frontier = frontier
            .iter()
            .filter_map(|p| processes.get(p))
            .map(|p| p.ppid)
            .filter(|ppid| *ppid != 0 && !visited.contains(ppid))
            .collect();
        if frontier.is_empty() {
            break;
        }
    }
}

/// launchd plists in `PersistenceDirs` and the bundle ids of the apps in
/// `ApplicationDirs` (plain file reads; no platform call).
pub(crate) fn startup_items(
    config: &Config,
) -> (
    Vec<crate::model::PersistenceItem>,
    BTreeSet<String>,
    Vec<ScanError>,
) {
    let (items, mut errors) = persistence::scan(&config.persistence_dirs, config.max_plist_bytes);
    let (apps, app_errors) = apps::installed_bundle_ids(&config.application_dirs);
    errors.extend(app_errors);
    (items, apps, errors)
}

/// Add the platform's login items to `items` when `LoginItems` is on;
/// returns what could not be read.
pub(crate) fn login_items(
    platform: &dyn Platform,
    config: &Config,
    items: &mut Vec<crate::model::PersistenceItem>,
) -> Option<ScanError> {
    if !config.login_items {
        return None;
    }
    match platform.login_items() {
        Ok(login) => {
            items.extend(login);
            None
        }
        Err(e) => Some(err("login_items", None, &e)),
    }
}

/// Identities of `pids`, read on up to two threads (the reads are
/// independent syscalls; the machine's second core halves the wait).
pub(crate) fn read_processes(
    platform: &dyn Platform,
    cache: &SignatureCache,
    pids: &BTreeSet<u32>,
    errors: &mut Vec<ScanError>,
) -> BTreeMap<u32, ProcessIdentity> {
    let pids: Vec<u32> = pids.iter().copied().collect();
    let read_chunk = |chunk: &[u32]| {
        let mut found = Vec::with_capacity(chunk.len());
        let mut errs = Vec::new();
        for &pid in chunk {
            match platform.process(pid) {
                Ok(mut identity) => {
                    if let Some(path) = identity.path.clone() {
                        identity.signature =
                            cache.get_or_check(&path, |p| platform.check_signature(p));
                    }
                    found.push((pid, identity));
                }
                // A process that exited between listing and reading is not
                // an error worth reporting: its socket went with it.
                Err(PlatformError::NoSuchProcess { .. }) => {}
                Err(e) => errs.push(err("process", None, &e)),
            }
        }
        (found, errs)
    };
    let (a, b) = pids.split_at(pids.len() / 2);
    let ((mut found, mut errs), (found_b, errs_b)) = if a.len() >= 8 {
        std::thread::scope(|scope| {
            let other = crate::platform::spawn_beside(scope, || read_chunk(a));
            let mine = read_chunk(b);
            (other.join().unwrap_or_default(), mine)
        })
    } else {
        (read_chunk(&pids), (Vec::new(), Vec::new()))
    };
    found.extend(found_b);
    errs.extend(errs_b);
    errors.extend(errs);
    found.into_iter().collect()
}

/// The App Translocation bundles (`model::translocation_bundle`) of the
/// processes observed that the platform finds on a real translocation
/// mount: the judge counts App Translocation as "a person opened it" for
/// these only, never for a path that merely looks like one.
pub(crate) fn translocation_mounts(
    platform: &dyn Platform,
    processes: &BTreeMap<u32, ProcessIdentity>,
) -> BTreeSet<PathBuf> {
    let candidates: BTreeSet<PathBuf> = processes
        .values()
        .filter_map(|p| p.path.as_deref().and_then(translocation_bundle))
        .collect();
    candidates
        .into_iter()
        .filter(|bundle| platform.on_translocation_mount(bundle))
        .collect()
}

/// The file-system facts the judge needs about the processes and items
/// observed: which referenced paths (programs, bundles, scripts) exist,
/// who owns each (the actor rule: a user's plist may only get lenscap to
/// act on what that user owns), and the home directories of the users
/// involved.
pub(crate) struct PathFacts {
    pub existing: BTreeSet<PathBuf>,
    pub owners: BTreeMap<PathBuf, u32>,
    pub homes: Vec<PathBuf>,
}

pub(crate) fn path_facts(
    processes: &BTreeMap<u32, ProcessIdentity>,
    items: &[crate::model::PersistenceItem],
) -> PathFacts {
    use std::os::unix::fs::MetadataExt;
    // Collected into a Vec and deduplicated by bytes: a BTreeSet of paths
    // compares component by component on every insert, which was a tenth
    // of a one-shot scan's instructions. Two spellings of one path ("/a//b")
    // only cost a second lstat; the maps below are keyed by `Path` as before.
    let mut referenced: Vec<PathBuf> = Vec::new();
    for p in processes.values() {
        referenced.extend(p.path.iter().cloned());
        referenced.extend(p.bundle.iter().cloned());
        if let Some(exe) = &p.path {
            referenced.extend(script_arg(exe, &p.args).map(Path::to_path_buf));
        }
        // A script an interpreter runs is named by an absolute argument.
        referenced.extend(absolute_args(&p.args));
    }
    for item in items {
        if let Some(program) = &item.program {
            referenced.extend(enclosing_bundle(program));
            referenced.push(program.clone());
            referenced.extend(script_arg(program, &item.args).map(Path::to_path_buf));
        }
        referenced.push(item.path.clone());
        referenced.extend(absolute_args(&item.args));
    }
    referenced.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    referenced.dedup_by(|a, b| a.as_os_str() == b.as_os_str());
    let mut existing = BTreeSet::new();
    let mut owners = BTreeMap::new();
    for path in referenced {
        // lstat: the owner of a link is who planted it, not its target's.
        if let Ok(meta) = path.symlink_metadata() {
            owners.insert(path.clone(), meta.uid());
            existing.insert(path);
        }
    }
    let homes = home_dirs(
        processes
            .values()
            .map(|p| p.uid)
            .chain(items.iter().filter_map(|i| i.owner_uid)),
    );
    PathFacts {
        existing,
        owners,
        homes,
    }
}

/// Absolute paths among the arguments after the program (bounded: a
/// command line is not a file list worth a thousand lstats).
fn absolute_args(args: &[String]) -> impl Iterator<Item = PathBuf> + '_ {
    args.iter()
        .skip(1)
        .take(8)
        .filter(|a| a.starts_with('/'))
        .map(PathBuf::from)
}

/// Home directories of the given users, from the user database.
fn home_dirs(uids: impl Iterator<Item = u32>) -> Vec<PathBuf> {
    let uids: BTreeSet<u32> = uids.collect();
    let mut homes: BTreeSet<PathBuf> = BTreeSet::new();
    for uid in uids {
        if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            // Root's and daemons' homes ("/", "/var/root", "/var/empty")
            // are not user homes for the "hidden folder in a home" test.
            if user.dir != Path::new("/") {
                homes.insert(user.dir);
            }
        }
    }
    homes.into_iter().collect()
}

fn err(source: &str, path: Option<PathBuf>, e: &dyn std::fmt::Display) -> ScanError {
    ScanError {
        source: source.to_string(),
        path,
        message: e.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use super::*;
    use crate::platform::Native;

    #[test]
    fn gather_reports_grants_problems_and_camera_holders_with_their_ancestry() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let db = d.join("Users/alice/Library/Application Support/com.apple.TCC/TCC.db");
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        let sql = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tcc/sonoma.sql"
        ))
        .unwrap();
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(&sql)
            .unwrap();
        let broken = d.join("Users/bob/Library/Application Support/com.apple.TCC/TCC.db");
        std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
        std::fs::write(&broken, b"not a database").unwrap();
        std::fs::create_dir(d.join("dev")).unwrap();
        let video = d.join("dev/video0");
        std::fs::write(&video, b"").unwrap();

        let config = Config {
            persistence_dirs: vec![],
            application_dirs: vec![],
            login_items: false,
            probe: false,
            tcc_databases: vec![format!(
                "{}/Users/*/Library/Application Support/com.apple.TCC/TCC.db",
                d.display()
            )],
            camera_devices: vec![format!("{}/dev/video*", d.display())],
            ..Config::default()
        };
        let mut holder = Command::new("bash")
            .args(["-c", "exec 3<\"$1\"; exec sleep 30", "bash"])
            .arg(&video)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = holder.id();
        let platform = Native::new(config.tools());
        let cache = SignatureCache::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let gathered = loop {
            let g = gather(&platform, &config, &cache, GatherOptions { probe: false });
            let found = g
                .observations
                .camera_sessions
                .iter()
                .any(|s| s.pid == Some(pid));
            if found || Instant::now() > deadline {
                break g;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = holder.kill();
        let _ = holder.wait();

        let obs = &gathered.observations;
        assert_eq!(obs.grants.len(), 5);
        assert!(obs.grants.iter().all(|g| g.database == db && !g.new));
        let tcc_errors: Vec<_> = gathered
            .errors
            .iter()
            .filter(|e| e.source == tcc::SOURCE)
            .collect();
        assert_eq!(tcc_errors.len(), 1, "{:?}", gathered.errors);
        assert_eq!(tcc_errors[0].path.as_deref(), Some(broken.as_path()));

        let session = obs
            .camera_sessions
            .iter()
            .find(|s| s.pid == Some(pid))
            .unwrap_or_else(|| panic!("{:?}", obs.camera_sessions));
        assert_eq!(session.device.as_deref(), Some(video.as_path()));
        // The holder and every ancestor up to PID 1 are identified.
        let mut at = pid;
        let mut chain = vec![pid];
        while at != 1 {
            let p = obs
                .processes
                .get(&at)
                .unwrap_or_else(|| panic!("pid {at} of chain {chain:?} not read"));
            if p.ppid == 0 {
                break;
            }
            at = p.ppid;
            chain.push(at);
        }
        assert!(chain.contains(&std::process::id()), "{chain:?}");
        assert_eq!(obs.processes[&pid].name, "sleep");
    }

    /// The native platform, except that one bundle is on a translocation
    /// mount (there are none on Linux).
    #[derive(Debug)]
    struct OneMount {
        native: Native,
        mounted: PathBuf,
    }

    impl Platform for OneMount {
        fn host_info(&self) -> crate::model::HostInfo {
            self.native.host_info()
        }
        fn listeners(&self) -> Result<Vec<crate::model::Listener>, PlatformError> {
            self.native.listeners()
        }
        fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
            self.native.process(pid)
        }
        fn check_signature(&self, path: &Path) -> crate::model::Signature {
            self.native.check_signature(path)
        }
        fn login_items(&self) -> Result<Vec<crate::model::PersistenceItem>, PlatformError> {
            self.native.login_items()
        }
        fn camera_source(&self) -> crate::platform::CameraSource {
            self.native.camera_source()
        }
        fn established_to(
            &self,
            ports: &BTreeSet<u16>,
        ) -> Result<Vec<crate::platform::Established>, PlatformError> {
            self.native.established_to(ports)
        }
        fn notify_user(&self, uid: Option<u32>, title: &str, message: &str) -> Result<(), String> {
            self.native.notify_user(uid, title, message)
        }
        fn console_users(&self) -> Result<Vec<u32>, crate::platform::PlatformError> {
            self.native.console_users()
        }
        fn user_name_of(&self, uid: u32) -> Option<String> {
            self.native.user_name_of(uid)
        }
        fn on_translocation_mount(&self, bundle: &Path) -> bool {
            bundle == self.mounted
        }
    }

    fn identity(pid: u32, path: &str, args: &[&str]) -> ProcessIdentity {
        let mut p = Native::new(Config::default().tools())
            .process(std::process::id())
            .unwrap();
        p.pid = pid;
        p.path = Some(PathBuf::from(path));
        p.args = args.iter().map(|a| a.to_string()).collect();
        p
    }

    #[test]
    fn only_bundles_on_a_translocation_mount_are_translocated() {
        let base = "/private/var/folders/x1/abc/T/AppTranslocation";
        let real = format!("{base}/2A2D6B24-0C1B-4F5E-9A8D-1234567890AB/d/Foo.app");
        let other = format!("{base}/2A2D6B24-0C1B-4F5E-9A8D-FFFFFFFFFFFF/d/Bar.app");
        let processes: BTreeMap<u32, ProcessIdentity> = [
            identity(10, &format!("{real}/Contents/MacOS/Foo"), &["Foo"]),
            identity(
                11,
                &format!("{real}/Contents/Helpers/foo-web"),
                &["foo-web"],
            ),
            identity(12, &format!("{other}/Contents/MacOS/Bar"), &["Bar"]),
            identity(
                13,
                "/Users/ann/AppTranslocation/d/Baz.app/Contents/MacOS/Baz",
                &["Baz"],
            ),
        ]
        .into_iter()
        .map(|p| (p.pid, p))
        .collect();
        let platform = OneMount {
            native: Native::new(Config::default().tools()),
            mounted: PathBuf::from(&real),
        };
        let found = translocation_mounts(&platform, &processes);
        assert_eq!(found, [PathBuf::from(&real)].into_iter().collect());
        // Linux has no App Translocation: the real platform finds none.
        assert!(translocation_mounts(&platform.native, &processes).is_empty());
    }

    #[test]
    fn the_scripts_interpreters_run_are_checked_for_existence() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("server.py");
        std::fs::write(&script, b"print(1)").unwrap();
        let gone = dir.path().join("gone.py");
        let s = script.to_str().unwrap();
        let processes: BTreeMap<u32, ProcessIdentity> =
            [identity(10, "/usr/bin/python3", &["python3", s])]
                .into_iter()
                .map(|p| (p.pid, p))
                .collect();
        let item = crate::model::PersistenceItem {
            kind: crate::model::PersistenceKind::LaunchAgent,
            path: dir.path().join("x.plist"),
            label: Some("x".into()),
            program: Some("/usr/bin/python3".into()),
            args: vec!["/usr/bin/python3".into(), gone.to_str().unwrap().into()],
            run_at_load: true,
            keep_alive: false,
            sockets: Vec::new(),
            associated_bundle_ids: Vec::new(),
            owner_uid: None,
            parent_identifier: None,
            developer: None,
            disposition: None,
        };
        let facts = path_facts(&processes, &[item]);
        let existing = &facts.existing;
        assert!(existing.contains(&script), "{existing:?}");
        assert!(!existing.contains(&gone), "{existing:?}");
        // Owners are read by lstat for the actor rule.
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(facts.owners.get(&script), Some(&me));
    }
}
