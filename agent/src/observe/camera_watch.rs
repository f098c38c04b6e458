//! The daemon's camera watch: privacy grants (TCC diffs), camera sessions
//! (Linux: descriptors on `CameraDevices`; macOS: a supervised `log
//! stream` child) and connections to flagged helpers, turned into the
//! judge's camera observations once per sweep.
//!
//! Connections are sampled on the sweep timer and, where the platform
//! reports closed connections (Linux), also taken from that report while a
//! listener is flagged ([`ShortConnections`]), so a one-shot request that
//! opens and closes between two sweeps still counts. On macOS such a
//! request is missed. The camera session itself is not (Linux sees the
//! open descriptor, macOS the log line, both with their own time).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError, channel};

use crate::config::Config;
use crate::judge::{CameraSessionObservation, ConnectionSeen, GrantObservation};
use crate::model::{ProcessIdentity, ScanError, TccClientType, TccGrant, TccService};
use crate::observe::camera::{
    CameraDevices, CameraFeed, CameraUseEvent, CameraWatcher, LogSessionEvent, LogStream,
    LogStreamOptions, SessionTracker, camera_holders,
};
use crate::observe::inventory::read_processes;
use crate::observe::short_conns::ShortConnections;
use crate::observe::signing::SignatureCache;
use crate::observe::tcc::{TccProblem, TccTracker};
use crate::parse::camera_log::CameraChange;
use crate::platform::{CameraSource, DeviceWatch, Platform};

/// `GrantObservation::database` of a grant learned from tccd's log rather
/// than read from a TCC.db.
pub const LOGGED_GRANTS: &str = "unified log (tccd)";

/// How long a connection stays on record after it was last seen: long
/// enough for any `CameraCorrelationSeconds` the config allows (≤ 300).
const CONNECTION_MEMORY_US: u64 = 310 * 1_000_000;

/// While camera sessions are open, how often the holders are walked
/// although no open or close was seen: a descriptor handed on by `fork`
/// makes no event, and a close fires only when the last descriptor of an
/// open file goes, so a session can change hands silently.
const SESSION_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// How often the TCC databases are looked at: a `stat` of each database
/// and its WAL, a glob of the users' homes, and the grants' programs'
/// `lstat`s. Every sweep, that was a fifth of an idle sweep's user-space
/// instructions (docs/benchmarks.md, "Issue 11"); a grant is still seen
/// within 2 s, as with the 2 s sweeps it was polled at before.
pub const TCC_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// A camera session starting or stopping, for the event stream.
#[derive(Debug, Clone)]
pub struct SessionChange {
    /// When the change was seen (how long its record has waited).
    pub seen: std::time::Instant,
    pub started: bool,
    pub pid: Option<u32>,
    pub bundle_id: Option<String>,
    pub device: Option<PathBuf>,
    pub duration_us: Option<u64>,
}

impl SessionChange {
    pub fn waited(&self) -> std::time::Duration {
        self.seen.elapsed()
    }
}

/// Something the health stream should say.
#[derive(Debug, Clone)]
pub enum CameraHealth {
    TccUnreadable(TccProblem),
    TccReadable(PathBuf),
    WatchDegraded(String),
    WatchRestored,
}

/// What one sweep of the camera watch found.
#[derive(Debug, Default)]
pub struct CameraPass {
    pub grants: Vec<GrantObservation>,
    pub sessions: Vec<CameraSessionObservation>,
    /// Identities of the session processes and their ancestors.
    pub processes: BTreeMap<u32, ProcessIdentity>,
    pub connections: Vec<ConnectionSeen>,
    pub changes: Vec<SessionChange>,
    pub health: Vec<CameraHealth>,
    pub errors: Vec<ScanError>,
    /// Grants or sessions changed: judge again.
    pub changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ConnKey {
    socket_id: u64,
    port: u16,
}

/// The camera watch's state between sweeps.
pub struct CameraWatch {
    tcc: TccTracker,
    devices: Option<CameraDevices>,
    devices_for: Vec<String>,
    holders: CameraWatcher,
    /// Opens and closes of the devices, where the platform can watch them
    /// (Linux inotify); the walk runs only after one.
    device_watch: Option<Box<dyn DeviceWatch>>,
    /// The holders must be walked at the next sweep (start, new patterns).
    walk_pending: bool,
    last_walk: Option<std::time::Instant>,
    stream: Option<(LogStream, Receiver<CameraFeed>)>,
    tracker: SessionTracker,
    /// Connections to flagged ports: first and last seen.
    connections: BTreeMap<ConnKey, (IpAddr, u64, u64)>,
    /// Connections to flagged ports that closed between two sweeps.
    short: ShortConnections,
    /// Grant changes tccd logged, latest per (service, client, type): the
    /// grants lenscap knows while the per-user TCC.db is out of reach.
    logged_grants: BTreeMap<(TccService, String, TccClientType), TccGrant>,
    /// How often the TCC databases are polled ([`TCC_EVERY`]).
    tcc_every: std::time::Duration,
    /// The last poll of the TCC databases, reused until the next is due.
    tcc_last: Option<TccLast>,
}

/// What the last TCC poll found, and when and for which patterns.
#[derive(Debug)]
struct TccLast {
    at: std::time::Instant,
    patterns: Vec<String>,
    grants: Vec<GrantObservation>,
    out_of_reach: bool,
}

impl std::fmt::Debug for CameraWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraWatch")
            .field("devices_for", &self.devices_for)
            .field("streaming", &self.stream.is_some())
            .field("device_watch", &self.device_watch.is_some())
            .field("connections", &self.connections.len())
            .field("short", &self.short)
            .finish_non_exhaustive()
    }
}

impl Default for CameraWatch {
    fn default() -> CameraWatch {
        CameraWatch::new()
    }
}

impl CameraWatch {
    pub fn new() -> CameraWatch {
        CameraWatch {
            tcc: TccTracker::default(),
            devices: None,
            devices_for: Vec::new(),
            holders: CameraWatcher::new(),
            device_watch: None,
            walk_pending: true,
            last_walk: None,
            stream: None,
            tracker: SessionTracker::default(),
            connections: BTreeMap::new(),
            short: ShortConnections::default(),
            logged_grants: BTreeMap::new(),
            tcc_every: TCC_EVERY,
            tcc_last: None,
        }
    }

    /// Poll the TCC databases at most every `every` (default
    /// [`TCC_EVERY`]); tests shorten it.
    pub fn with_tcc_every(mut self, every: std::time::Duration) -> CameraWatch {
        self.tcc_every = every;
        self
    }

    /// The judgement changed which listeners are flagged: follow them with
    /// the closed-connection report (subscribed only while any is).
    pub fn flagged_changed(&mut self, platform: &dyn Platform, flagged: &BTreeSet<(IpAddr, u16)>) {
        let ports: BTreeSet<u16> = flagged.iter().map(|(_, p)| *p).collect();
        self.short.watch(platform, &ports);
    }

    /// One sweep. `flagged` are the (address, port) of listeners the last
    /// judgement flagged for remediation.
    pub fn sweep(
        &mut self,
        platform: &dyn Platform,
        config: &Config,
        cache: &SignatureCache,
        flagged: &BTreeSet<(IpAddr, u16)>,
        now_unix_us: u64,
    ) -> CameraPass {
        let mut pass = CameraPass::default();
        self.grants(config, &mut pass);
        if config.camera_watch {
            match platform.camera_source() {
                CameraSource::ProcFds { proc_root } => {
                    self.holders_sweep(platform, &proc_root, config, now_unix_us, &mut pass)
                }
                CameraSource::UnifiedLog => {
                    self.log_sweep(platform, config, now_unix_us, &mut pass)
                }
            }
        } else {
            self.stop_stream();
        }
        self.connections_sweep(platform, flagged, now_unix_us, &mut pass);
        let pids: BTreeSet<u32> = pass.sessions.iter().filter_map(|s| s.pid).collect();
        if !pids.is_empty() {
            let mut processes = read_processes(platform, cache, &pids, &mut pass.errors);
            // Ancestors too: "in the helper's process tree" is a question
            // about them.
            let mut frontier: BTreeSet<u32> = processes.values().map(|p| p.ppid).collect();
            for _ in 0..16 {
                frontier.retain(|p| *p > 1 && !processes.contains_key(p));
                if frontier.is_empty() {
                    break;
                }
                let found = read_processes(platform, cache, &frontier, &mut pass.errors);
                frontier = found.values().map(|p| p.ppid).collect();
                processes.extend(found);
            }
            pass.processes = processes;
        }
        pass
    }

    /// The privacy grants: polled from the TCC databases when a poll is
    /// due (every [`TCC_EVERY`], or at once when `TCCDatabases` changed),
    /// else the last poll's.
    fn grants(&mut self, config: &Config, pass: &mut CameraPass) {
        let now = std::time::Instant::now();
        let due = self.tcc_last.as_ref().is_none_or(|last| {
            last.patterns != config.tcc_databases || now.duration_since(last.at) >= self.tcc_every
        });
        if due {
            let scratch = config.state_dir.join("tcc-scratch");
            let poll = self.tcc.poll(config, Some(&scratch));
            pass.changed |= poll.changed;
            pass.health.extend(
                poll.problems_new
                    .into_iter()
                    .map(CameraHealth::TccUnreadable),
            );
            pass.health.extend(
                poll.problems_cleared
                    .into_iter()
                    .map(CameraHealth::TccReadable),
            );
            self.tcc_last = Some(TccLast {
                at: now,
                patterns: config.tcc_databases.clone(),
                grants: poll.grants,
                out_of_reach: poll.out_of_reach,
            });
        }
        let Some(last) = &self.tcc_last else {
            return;
        };
        pass.grants = last.grants.clone();
        if last.out_of_reach {
            // What tccd logged since the stream started: every such grant
            // is a change made while lenscap watched, so it is new.
            pass.grants
                .extend(self.logged_grants.values().map(|g| GrantObservation {
                    grant: g.clone(),
                    database: PathBuf::from(LOGGED_GRANTS),
                    new: true,
                    client_exists: match g.client_type {
                        TccClientType::Path => {
                            Some(std::path::Path::new(&g.client).symlink_metadata().is_ok())
                        }
                        _ => None,
                    },
                }));
        }
    }

    fn holders_sweep(
        &mut self,
        platform: &dyn Platform,
        proc_root: &std::path::Path,
        config: &Config,
        now_unix_us: u64,
        pass: &mut CameraPass,
    ) {
        if self.devices.is_none() || self.devices_for != config.camera_devices {
            // Validated when the config loaded; a failure here only means
            // an older config slipped through, so say it and watch nothing.
            match CameraDevices::new(&config.camera_devices) {
                Ok(d) => self.devices = Some(d),
                Err(e) => {
                    pass.errors.push(ScanError {
                        source: "camera".into(),
                        path: None,
                        message: e.to_string(),
                    });
                    self.devices = None;
                }
            }
            self.devices_for = config.camera_devices.clone();
            self.device_watch = platform.watch_devices(&config.camera_devices);
            self.walk_pending = true;
        }
        let Some(devices) = &self.devices else {
            return;
        };
        // The walk reads every descriptor of every process (about 18 ms
        // of CPU with ~400 processes, docs/benchmarks.md). With a device
        // watch it runs only after a device was opened or closed (the
        // events are taken before the walk, so an open during the walk
        // brings the next sweep back), and now and then while sessions
        // are open. Without one, one directory listing decides: a machine
        // with no camera device has nothing to find; open sessions are
        // still walked so their stops are seen.
        let sessions_open = !self.holders.sessions().is_empty();
        let walk = match self.device_watch.as_mut() {
            Some(watch) => {
                let activity = watch.activity();
                activity
                    || std::mem::take(&mut self.walk_pending)
                    || (sessions_open
                        && self
                            .last_walk
                            .is_none_or(|t| t.elapsed() >= SESSION_REFRESH))
            }
            None => sessions_open || any_device_exists(&config.camera_devices),
        };
        if !walk {
            pass.sessions = sessions_of(&self.holders);
            return;
        }
        self.last_walk = Some(std::time::Instant::now());
        let holders = camera_holders(proc_root, devices);
        let holders = match holders {
            Ok(h) => h,
            Err(e) => {
                pass.errors.push(ScanError {
                    source: "camera".into(),
                    path: Some(proc_root.to_path_buf()),
                    message: e.to_string(),
                });
                // Keep the sessions we knew rather than stop them all.
                pass.sessions = sessions_of(&self.holders);
                return;
            }
        };
        let events = self.holders.update(&holders, now_unix_us);
        pass.changed |= !events.is_empty();
        pass.changes.extend(events.iter().map(change_of));
        pass.sessions = sessions_of(&self.holders);
    }

    fn log_sweep(
        &mut self,
        platform: &dyn Platform,
        config: &Config,
        now_unix_us: u64,
        pass: &mut CameraPass,
    ) {
        if self.stream.is_none() {
            let (major, minor) = os_major_minor(platform.host_info().os_version.as_deref());
            let (tx, rx) = channel();
            match LogStream::start(LogStreamOptions::macos(&config.log_path, major, minor), tx) {
                Ok(stream) => self.stream = Some((stream, rx)),
                Err(e) => pass.health.push(CameraHealth::WatchDegraded(format!(
                    "cannot start the camera log stream supervisor: {e}"
                ))),
            }
        }
        let mut closed = false;
        if let Some((_, feed)) = &self.stream {
            loop {
                match feed.try_recv() {
                    Ok(CameraFeed::Event(e)) => {
                        let events = self.tracker.feed(&e, now_unix_us);
                        pass.changed |= !events.is_empty();
                        pass.changes.extend(events.iter().map(log_change_of));
                    }
                    Ok(CameraFeed::Trouble(why)) => {
                        pass.health.push(CameraHealth::WatchDegraded(why))
                    }
                    Ok(CameraFeed::Recovered) => pass.health.push(CameraHealth::WatchRestored),
                    Ok(CameraFeed::Grant(change)) => {
                        let g = change.grant;
                        let key = (g.service, g.client.clone(), g.client_type);
                        if self.logged_grants.get(&key) != Some(&g) {
                            self.logged_grants.insert(key, g);
                            pass.changed = true;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        if closed {
            // The supervisor thread ended by itself; start a fresh one on
            // the next sweep.
            self.stream = None;
        }
        pass.sessions = self
            .tracker
            .sessions()
            .iter()
            .map(|s| s.observation())
            .collect();
    }

    fn stop_stream(&mut self) {
        if let Some((stream, _)) = self.stream.take() {
            stream.stop();
        }
    }

    fn connections_sweep(
        &mut self,
        platform: &dyn Platform,
        flagged: &BTreeSet<(IpAddr, u16)>,
        now_unix_us: u64,
        pass: &mut CameraPass,
    ) {
        self.connections
            .retain(|_, (_, _, last)| now_unix_us.saturating_sub(*last) <= CONNECTION_MEMORY_US);
        let ports: BTreeSet<u16> = flagged.iter().map(|(_, p)| *p).collect();
        if !ports.is_empty() {
            match platform.established_to(&ports) {
                Ok(conns) => {
                    for c in conns {
                        let key = ConnKey {
                            socket_id: c.socket_id,
                            port: c.local.port(),
                        };
                        self.connections
                            .entry(key)
                            .and_modify(|e| e.2 = now_unix_us)
                            .or_insert((c.local.ip(), now_unix_us, now_unix_us));
                    }
                }
                Err(e) => pass.errors.push(ScanError {
                    source: "connections".into(),
                    path: None,
                    message: e.to_string(),
                }),
            }
        }
        pass.connections = self
            .connections
            .iter()
            .map(|(k, (address, first, _))| ConnectionSeen {
                address: *address,
                port: k.port,
                first_seen_unix_us: *first,
            })
            .chain(self.short.collect(now_unix_us, CONNECTION_MEMORY_US))
            .collect();
        pass.connections
            .sort_by_key(|c| (c.first_seen_unix_us, c.port));
    }
}

impl Drop for CameraWatch {
    fn drop(&mut self) {
        self.stop_stream();
    }
}

/// Does any path match one of the `CameraDevices` globs? Unreadable or
/// invalid patterns count as "maybe": the walk then decides.
fn any_device_exists(patterns: &[String]) -> bool {
    patterns.iter().any(|p| match glob::glob(p) {
        Ok(mut paths) => paths.next().is_some(),
        Err(_) => true,
    })
}

fn sessions_of(watcher: &CameraWatcher) -> Vec<CameraSessionObservation> {
    watcher
        .sessions()
        .into_iter()
        .map(|s| CameraSessionObservation {
            pid: Some(s.pid),
            bundle_id: None,
            device: Some(s.device),
            since_unix_us: s.since_unix_us,
        })
        .collect()
}

fn change_of(e: &CameraUseEvent) -> SessionChange {
    SessionChange {
        seen: std::time::Instant::now(),
        started: e.change == CameraChange::Start,
        pid: Some(e.session.pid),
        bundle_id: None,
        device: Some(e.session.device.clone()),
        duration_us: e.duration_us,
    }
}

fn log_change_of(e: &LogSessionEvent) -> SessionChange {
    let o = e.session.observation();
    SessionChange {
        seen: std::time::Instant::now(),
        started: e.change == CameraChange::Start,
        pid: o.pid,
        bundle_id: o.bundle_id,
        device: None,
        duration_us: e.duration_us,
    }
}

/// `"14.5"` → (14, 5). Unknown → the newest shapes (14, 0): a Mac too new
/// for us to know logs like the latest one we do.
fn os_major_minor(version: Option<&str>) -> (u32, u32) {
    let mut parts = version.unwrap_or("").split('.');
    let major = parts.next().and_then(|p| p.trim().parse().ok());
    let minor = parts
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0);
    match major {
        Some(m) => (m, minor),
        None => (14, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_presence_decides_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = format!("{}/video*", dir.path().display());
        assert!(!any_device_exists(std::slice::from_ref(&pattern)));
        std::fs::write(dir.path().join("video0"), b"").unwrap();
        assert!(any_device_exists(std::slice::from_ref(&pattern)));
        assert!(
            any_device_exists(&["[".to_string()]),
            "invalid: walk anyway"
        );
        assert!(!any_device_exists(&[]));
    }

    /// The real platform (its inotify device watch), except that the
    /// holders are read from a fake `/proc` the test fills: a holder can
    /// be put there without opening the device, so the test sees whether
    /// a walk ran.
    struct FakeProc {
        native: crate::platform::Native,
        proc_root: PathBuf,
    }

    impl Platform for FakeProc {
        fn console_users(&self) -> Result<Vec<u32>, crate::platform::PlatformError> {
            self.native.console_users()
        }
        fn user_name_of(&self, uid: u32) -> Option<String> {
            self.native.user_name_of(uid)
        }
        fn host_info(&self) -> crate::model::HostInfo {
            self.native.host_info()
        }
        fn listeners(&self) -> Result<Vec<crate::model::Listener>, crate::platform::PlatformError> {
            Ok(Vec::new())
        }
        fn process(&self, pid: u32) -> Result<ProcessIdentity, crate::platform::PlatformError> {
            self.native.process(pid)
        }
        fn check_signature(&self, path: &std::path::Path) -> crate::model::Signature {
            self.native.check_signature(path)
        }
        fn login_items(
            &self,
        ) -> Result<Vec<crate::model::PersistenceItem>, crate::platform::PlatformError> {
            Ok(Vec::new())
        }
        fn camera_source(&self) -> CameraSource {
            CameraSource::ProcFds {
                proc_root: self.proc_root.clone(),
            }
        }
        fn watch_devices(&self, patterns: &[String]) -> Option<Box<dyn DeviceWatch>> {
            self.native.watch_devices(patterns)
        }
        fn established_to(
            &self,
            _ports: &BTreeSet<u16>,
        ) -> Result<Vec<crate::platform::Established>, crate::platform::PlatformError> {
            Ok(Vec::new())
        }
        fn notify_user(
            &self,
            _uid: Option<u32>,
            _title: &str,
            _message: &str,
        ) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn holders_are_walked_after_an_open_or_close_and_not_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let devices = dir.path().join("dev");
        std::fs::create_dir(&devices).unwrap();
        let node = devices.join("video0");
        std::fs::write(&node, b"").unwrap();
        let proc_root = dir.path().join("proc");
        std::fs::create_dir_all(proc_root.join("4242/fd")).unwrap();
        let config = Config {
            camera_watch: true,
            camera_devices: vec![format!("{}/video*", devices.display())],
            tcc_databases: Vec::new(),
            state_dir: dir.path().join("state"),
            ..Config::default()
        };
        let platform = FakeProc {
            native: crate::platform::Native::new(config.tools()),
            proc_root: proc_root.clone(),
        };
        let cache = SignatureCache::default();
        let mut watch = CameraWatch::new();
        let mut sweep = |now: u64| watch.sweep(&platform, &config, &cache, &BTreeSet::new(), now);
        let pids = |pass: &CameraPass| {
            pass.sessions
                .iter()
                .filter_map(|s| s.pid)
                .collect::<Vec<_>>()
        };

        // The first sweep walks (nothing is known yet) and finds nobody.
        assert!(pids(&sweep(1)).is_empty());
        // A holder appears without opening the device (only the fake /proc
        // changes): no event, so no walk, so not seen.
        std::os::unix::fs::symlink(&node, proc_root.join("4242/fd/3")).unwrap();
        for t in 2..5 {
            let pass = sweep(t);
            assert!(pids(&pass).is_empty(), "walked without an open or close");
            assert!(!pass.changed);
        }
        // Someone opens and closes the device: the next sweep walks.
        drop(std::fs::File::open(&node).unwrap());
        let pass = sweep(5);
        assert_eq!(pids(&pass), vec![4242]);
        assert!(pass.changed);
        // The holder goes without an event: the session stays until one.
        std::fs::remove_file(proc_root.join("4242/fd/3")).unwrap();
        assert_eq!(pids(&sweep(6)), vec![4242]);
        // A write-mode close is an event too.
        drop(std::fs::OpenOptions::new().write(true).open(&node).unwrap());
        let pass = sweep(7);
        assert!(pids(&pass).is_empty());
        assert!(pass.changed, "the session's stop is a change");
    }

    /// A TCC.db from the Sonoma fixture at `path`.
    fn tcc_db(path: &std::path::Path) {
        let sql = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tcc/sonoma.sql"
        ))
        .unwrap();
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(&sql)
            .unwrap();
    }

    #[test]
    fn tcc_is_polled_every_tcc_every_and_a_new_grant_is_seen_at_the_next_poll() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("TCC.db");
        tcc_db(&db);
        let config = Config {
            camera_watch: false,
            tcc_databases: vec![db.display().to_string()],
            state_dir: dir.path().join("state"),
            ..Config::default()
        };
        let platform = crate::platform::Native::new(config.tools());
        let cache = SignatureCache::default();
        let every = std::time::Duration::from_millis(500);
        let mut watch = CameraWatch::new().with_tcc_every(every);
        let mut sweep =
            |config: &Config| watch.sweep(&platform, config, &cache, &BTreeSet::new(), 1);
        let new_grant = |pass: &CameraPass| {
            pass.grants
                .iter()
                .any(|g| g.grant.client == "com.example.New" && g.new)
        };

        let first = sweep(&config);
        assert!(first.changed, "the first poll finds the grants");
        let known = first.grants.len();
        assert!(known > 0);

        let written = std::time::Instant::now();
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute(
                "INSERT INTO access (service, client, client_type, auth_value, auth_reason, auth_version) \
                 VALUES ('kTCCServiceCamera', 'com.example.New', 0, 2, 2, 1)",
                [],
            )
            .unwrap();
        let soon = sweep(&config);
        if written.elapsed() < every {
            // Between polls: the last poll's grants, no new look.
            assert_eq!(soon.grants.len(), known);
            assert!(!soon.changed);
        }
        std::thread::sleep(every);
        let later = sweep(&config);
        assert!(later.changed, "the next poll sees the new grant");
        assert!(new_grant(&later));
        // Between polls the grants are still there, and not a change.
        let again = sweep(&config);
        assert!(new_grant(&again));

        // Other databases configured: polled at once, not at the next due poll.
        let other = dir.path().join("Other.db");
        tcc_db(&other);
        let moved = Config {
            tcc_databases: vec![other.display().to_string()],
            ..config.clone()
        };
        let switched = sweep(&moved);
        assert!(switched.changed);
        assert!(!new_grant(&switched), "the grants of the other database");
        assert_eq!(switched.grants.len(), known);
    }

    #[test]
    fn os_versions() {
        assert_eq!(os_major_minor(Some("14.5")), (14, 5));
        assert_eq!(os_major_minor(Some("13.3.1")), (13, 3));
        assert_eq!(os_major_minor(Some("12")), (12, 0));
        assert_eq!(os_major_minor(None), (14, 0));
        assert_eq!(os_major_minor(Some("garbage")), (14, 0));
    }
}
