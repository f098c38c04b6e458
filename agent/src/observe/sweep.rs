//! Incremental observation for the daemon's periodic sweeps.
//!
//! Listing sockets is cheap (a few ms); resolving their owners' identities,
//! signatures and HTTP behaviour is not. So a sweep lists sockets every
//! time and resolves only what is new: a socket seen in the previous sweep
//! (same socket id) keeps its owners' identities. A new socket always gets
//! fresh identities for its PIDs, so a PID reused by a new process is never
//! judged by its predecessor's identity; every [`FULL_RESCAN`] all owners
//! are read again (a fork hands a socket on, an `exec` changes the program).
//! Persistence is rescanned when a watcher fires or every
//! [`FULL_RESCAN`], because watchers coalesce and drop events.
//!
//! Probing never holds up a sweep: the sweep hands the probes due
//! ([`Schedule`]: new sockets, unsettled answers with backoff, owner
//! changes, a refresh every 10 minutes) to the [`Prober`] thread and judges
//! with the latest results it has. A new socket is held back from judging
//! until its first probe result arrives (at most [`HOLD_FIRST`]), so a
//! helper is not first reported as "unknown whether it speaks HTTP" only
//! to be flagged a moment later. The sweep that found it gives that first
//! result [`FIRST_WAIT`] (a local web server answers within milliseconds,
//! so a helper is judged and contained in the same sweep); after that the
//! daemon is woken as soon as a result changes something
//! ([`SweepState::probe_results`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backoff::random;
use crate::config::Config;
use crate::judge::Observations;
use crate::model::{Listener, PersistenceItem, ProcessIdentity, ScanError};
use crate::observe::inventory::{
    login_items, path_facts, read_processes, startup_items, translocation_mounts,
};
use crate::observe::probe::schedule::{Done, Owners, Schedule, Target, Timing};
use crate::observe::probe::worker::Prober;
use crate::observe::signing::SignatureCache;
use crate::platform::Platform;

/// Safety-net interval for a full persistence rescan.
pub const FULL_RESCAN: Duration = Duration::from_secs(30);

/// Probes in flight at once: enough to get through a thousand silent
/// listeners in ~20 s, few enough not to look like a port scan (each
/// probe is three connections).
const PROBE_CONCURRENCY: usize = 16;

/// How long a sweep that found new sockets waits for their first probe
/// results: a local web server answers within a few milliseconds, so a
/// helper is usually judged in the sweep that found it; a silent one is
/// judged when its result comes (the daemon is woken for it).
pub const FIRST_WAIT: Duration = Duration::from_millis(50);

/// The longest a new socket waits for its first probe result before it is
/// judged without one (then as "not probed yet"): the prober may be busy
/// with a flood of new listeners.
pub const HOLD_FIRST: Duration = Duration::from_secs(10);

/// What the daemon remembers between sweeps.
#[derive(Debug, Default)]
pub struct SweepState {
    socket_ids: BTreeSet<u64>,
    listeners: Vec<Listener>,
    last_owner_walk: Option<Instant>,
    processes: BTreeMap<u32, ProcessIdentity>,
    probing: Probing,
    persistence: Vec<PersistenceItem>,
    apps: BTreeSet<String>,
    last_rescan: Option<Instant>,
    persistence_dirty: bool,
    /// App Translocation bundles of the owners, checked on the platform.
    translocated: BTreeSet<std::path::PathBuf>,
    /// Pids holding a socket that is held back from judging.
    held_pids: BTreeSet<u32>,
}

/// The result of one sweep.
#[derive(Debug)]
pub struct Swept {
    pub observations: Observations,
    pub errors: Vec<ScanError>,
    /// Did anything change since the previous sweep (new or gone sockets,
    /// a persistence rescan)? When not, judging again would say the same.
    pub changed: bool,
}

/// Probing beside the sweeps.
#[derive(Debug, Default)]
struct Probing {
    schedule: Schedule,
    /// Started at the first probe; restarted if its thread ever died.
    prober: Option<Prober>,
    /// Notified when a result changed something.
    ready: Arc<tokio::sync::Notify>,
    /// New sockets not judged yet: waiting for their first result, since.
    held: HashMap<u64, Instant>,
}

impl SweepState {
    /// A sweep state whose probes retry and refresh on `timing` (tests
    /// shorten it; [`SweepState::default`] uses [`Timing::default`]).
    pub fn with_probe_timing(timing: Timing) -> SweepState {
        SweepState {
            probing: Probing {
                schedule: Schedule::new(timing),
                ..Probing::default()
            },
            ..SweepState::default()
        }
    }

    /// Notified whenever a probe result arrived that changes what is
    /// known: the daemon then sweeps and judges again at once.
    pub fn probe_results(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.probing.ready)
    }

    /// The pids holding a new socket that is held back from judging,
    /// waiting for its first probe result: a verdict about them (or their
    /// children) reached meanwhile may still change.
    pub fn held_pids(&self) -> &BTreeSet<u32> {
        &self.held_pids
    }

    /// Make the next sweep rescan persistence (a watcher fired).
    pub fn mark_persistence_dirty(&mut self) {
        self.persistence_dirty = true;
    }

    /// One sweep. `probe` is false when probing is off.
    pub fn sweep(
        &mut self,
        platform: &dyn Platform,
        config: &Config,
        cache: &SignatureCache,
        now: Instant,
    ) -> Swept {
        let mut errors = Vec::new();
        // Results that arrived since the last sweep.
        let mut probes_changed = self.probing.collect(now);
        // Idle machines are the common case: when the set of listening
        // sockets is the one we know, reuse its owners instead of walking
        // every process's descriptors again. Owners can change without the
        // socket changing (a fork inherits it), so they are refreshed every
        // FULL_RESCAN regardless.
        let owners_due = self
            .last_owner_walk
            .is_none_or(|t| now.duration_since(t) >= FULL_RESCAN);
        let unchanged = !owners_due
            && platform
                .listening_socket_ids()
                .is_ok_and(|ids| ids == self.socket_ids);
        let listed = if unchanged {
            Ok(self.listeners.clone())
        } else {
            platform.listeners()
        };
        let listeners: Vec<Listener> = match listed {
            Ok(l) => {
                if !unchanged {
                    self.last_owner_walk = Some(now);
                }
                l
            }
            Err(e) => {
                errors.push(ScanError {
                    source: "listeners".into(),
                    path: None,
                    message: e.to_string(),
                });
                // Keep judging what we knew rather than declaring every
                // listener gone because one listing failed.
                return Swept {
                    observations: self.observations(Vec::new()),
                    errors,
                    changed: probes_changed,
                };
            }
        };
        let ids: BTreeSet<u64> = listeners.iter().map(|l| l.socket_id).collect();
        let new: Vec<&Listener> = listeners
            .iter()
            .filter(|l| !self.socket_ids.contains(&l.socket_id))
            .collect();
        let sockets_changed = !new.is_empty()
            || ids != self.socket_ids
            || (!unchanged && listeners != self.listeners);

        // Fresh identities for the owners of new sockets, and for every
        // owner when owners are due (an exec keeps the pid and changes the
        // program); forget owners of nothing.
        let fresh: BTreeSet<u32> = new.iter().flat_map(|l| l.pids.iter().copied()).collect();
        let owners: BTreeSet<u32> = listeners
            .iter()
            .flat_map(|l| l.pids.iter().copied())
            .collect();
        self.processes
            .retain(|pid, _| owners.contains(pid) && !fresh.contains(pid) && !owners_due);
        let missing: BTreeSet<u32> = owners
            .iter()
            .copied()
            .filter(|p| !self.processes.contains_key(p))
            .collect();
        self.processes
            .extend(read_processes(platform, cache, &missing, &mut errors));
        let parents: BTreeSet<u32> = self
            .processes
            .values()
            .map(|p| p.ppid)
            .filter(|pp| *pp != 0 && !self.processes.contains_key(pp))
            .collect();
        self.processes
            .extend(read_processes(platform, cache, &parents, &mut errors));
        self.translocated = translocation_mounts(platform, &self.processes);

        if config.probe {
            let targets: Vec<Target> = listeners
                .iter()
                .filter(|l| l.scope.browser_reachable())
                .map(|l| Target {
                    socket_id: l.socket_id,
                    address: (l.address, l.port),
                    owners: owners_of(l, &self.processes),
                })
                .collect();
            let new_reachable: Vec<u64> = new
                .iter()
                .filter(|l| l.scope.browser_reachable())
                .map(|l| l.socket_id)
                .collect();
            for id in &new_reachable {
                self.probing.held.insert(*id, now);
            }
            let timeout = Duration::from_millis(config.probe_timeout_ms);
            match self.probing.dispatch(&targets, now, timeout) {
                Ok(()) => probes_changed |= self.probing.await_first(&new_reachable, now),
                Err(e) => errors.push(ScanError {
                    source: "probe".into(),
                    path: None,
                    message: format!("cannot start the prober thread: {e}"),
                }),
            }
            probes_changed |= self.probing.release_overdue(now);
        } else {
            self.probing.stop();
        }
        self.socket_ids = ids;
        self.listeners = listeners.clone();

        let rescan = self.persistence_dirty
            || self
                .last_rescan
                .is_none_or(|t| now.duration_since(t) >= FULL_RESCAN);
        if rescan {
            let (mut items, apps, errs) = startup_items(config);
            errors.extend(errs);
            errors.extend(login_items(platform, config, &mut items));
            let persistence_changed = items != self.persistence || apps != self.apps;
            self.persistence = items;
            self.apps = apps;
            self.last_rescan = Some(now);
            self.persistence_dirty = false;
            return Swept {
                observations: self.observations(listeners),
                errors,
                changed: sockets_changed || persistence_changed || probes_changed,
            };
        }
        Swept {
            observations: self.observations(listeners),
            errors,
            changed: sockets_changed || probes_changed,
        }
    }

    fn observations(&mut self, mut listeners: Vec<Listener>) -> Observations {
        self.held_pids = listeners
            .iter()
            .filter(|l| self.probing.held.contains_key(&l.socket_id))
            .flat_map(|l| l.pids.iter().copied())
            .collect();
        listeners.retain(|l| !self.probing.held.contains_key(&l.socket_id));
        let probes = listeners
            .iter()
            .filter_map(|l| {
                self.probing
                    .schedule
                    .known(l.socket_id)
                    .map(|k| ((l.address, l.port), k.probe.clone()))
            })
            .collect();
        let facts = path_facts(&self.processes, &self.persistence);
        Observations {
            listeners,
            processes: self.processes.clone(),
            persistence: self.persistence.clone(),
            probes,
            installed_bundle_ids: self.apps.clone(),
            existing_paths: facts.existing,
            path_owners: facts.owners,
            home_dirs: facts.homes,
            translocated: self.translocated.clone(),
            agent_pid: std::process::id(),
            agent_exe: std::env::current_exe().ok(),
            grants: Vec::new(),
            camera_sessions: Vec::new(),
            connections: Vec::new(),
        }
    }
}

impl Probing {
    /// Take in the results that arrived. True when what is known about a
    /// socket changed or a held socket got its first result.
    fn collect(&mut self, now: Instant) -> bool {
        let Some(prober) = &self.prober else {
            return false;
        };
        // The wake-ups for what is taken in here are spent: without this,
        // each would cost the daemon a cycle that finds nothing new. First
        // the permit, then the results, so a result arriving in between
        // is taken in now and still wakes the daemon (for nothing, once).
        spend_wakeup(&self.ready);
        let arrived = prober.results();
        self.take(arrived, now)
    }

    /// Give the first probes of `new` sockets up to [`FIRST_WAIT`] to come
    /// back, so a helper that answers at once is judged in the sweep that
    /// found it rather than one cycle later. A silent one costs the sweep
    /// that wait, once.
    fn await_first(&mut self, new: &[u64], now: Instant) -> bool {
        let deadline = Instant::now() + FIRST_WAIT;
        let mut changed = false;
        while new.iter().any(|id| self.held.contains_key(id)) && Instant::now() < deadline {
            let Some(prober) = &self.prober else {
                break;
            };
            spend_wakeup(&self.ready);
            let arrived = prober.results_by(deadline);
            changed |= self.take(arrived, now);
        }
        changed
    }

    fn take(&mut self, arrived: Vec<Done>, now: Instant) -> bool {
        let mut changed = false;
        for done in arrived {
            let id = done.socket_id;
            tracing::debug!(
                socket = id,
                settled = done.known.settled,
                http = done.known.probe.http,
                error = done.known.probe.error.as_deref().unwrap_or(""),
                "probe result"
            );
            changed |= self.schedule.record(done, now, random());
            if self.schedule.known(id).is_some() && self.held.remove(&id).is_some() {
                changed = true;
            }
        }
        changed
    }

    /// Hand the probes due to the prober (started if need be).
    fn dispatch(
        &mut self,
        targets: &[Target],
        now: Instant,
        timeout: Duration,
    ) -> std::io::Result<()> {
        let live: std::collections::HashSet<u64> = targets.iter().map(|t| t.socket_id).collect();
        self.held.retain(|id, _| live.contains(id));
        if let Some(p) = &self.prober {
            p.cancel(|id| live.contains(&id));
        }
        let jobs = self.schedule.due(targets, now, timeout);
        if jobs.is_empty() {
            return Ok(());
        }
        if !self.prober.as_ref().is_some_and(Prober::alive) {
            // The jobs a dead thread held are issued again when the
            // schedule takes them for lost.
            self.prober = Some(Prober::start(PROBE_CONCURRENCY, Arc::clone(&self.ready))?);
        }
        if let Some(p) = &self.prober {
            p.submit(jobs);
        }
        Ok(())
    }

    /// Judge held sockets without a probe once they waited [`HOLD_FIRST`].
    fn release_overdue(&mut self, now: Instant) -> bool {
        let before = self.held.len();
        self.held
            .retain(|_, since| now.saturating_duration_since(*since) < HOLD_FIRST);
        self.held.len() != before
    }

    /// Probing was turned off: forget everything, end the thread.
    fn stop(&mut self) {
        self.prober = None;
        self.schedule.clear();
        self.held.clear();
    }
}

/// Use up a stored wake-up of `ready`, if there is one. (A `notified()`
/// future polled once takes a stored permit and completes; without one it
/// only registers, and dropping it unregisters.)
fn spend_wakeup(ready: &tokio::sync::Notify) {
    use std::future::Future as _;
    let mut woken = std::pin::pin!(ready.notified());
    let _ = woken
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
}

/// Who holds `l`, as the schedule compares owners.
fn owners_of(l: &Listener, processes: &BTreeMap<u32, ProcessIdentity>) -> Owners {
    l.pids
        .iter()
        .filter_map(|pid| processes.get(pid))
        .map(|p| (p.pid, p.start_time, p.path.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Native;
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, TcpListener};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn config(dir: &std::path::Path) -> Config {
        Config {
            persistence_dirs: vec![dir.join("agents").display().to_string()],
            application_dirs: vec![],
            login_items: false,
            probe: false,
            ..Config::default()
        }
    }

    #[test]
    fn unchanged_machine_reports_no_change_and_new_socket_does() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let platform = Native::new(cfg.tools());
        let cache = SignatureCache::default();
        let mut state = SweepState::default();
        let t0 = Instant::now();
        let first = state.sweep(&platform, &cfg, &cache, t0);
        assert!(first.changed, "the first sweep sees everything as new");

        // Other tests in this process open sockets concurrently, so
        // "nothing changed" cannot be asserted on a shared machine; a new
        // socket of ours must be noticed and resolved to our own pid.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let second = state.sweep(&platform, &cfg, &cache, t0);
        assert!(second.changed);
        let ours = second
            .observations
            .listeners
            .iter()
            .find(|l| l.port == port)
            .expect("our listener");
        assert!(ours.pids.contains(&std::process::id()));
        assert!(
            second
                .observations
                .processes
                .contains_key(&std::process::id())
        );
    }

    #[test]
    fn persistence_rescans_when_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let platform = Native::new(cfg.tools());
        let cache = SignatureCache::default();
        let mut state = SweepState::default();
        let t0 = Instant::now();
        assert!(
            state
                .sweep(&platform, &cfg, &cache, t0)
                .observations
                .persistence
                .is_empty()
        );

        let agents = dir.path().join("agents");
        std::fs::create_dir_all(&agents).unwrap();
        let mut d = plist::Dictionary::new();
        d.insert("Label".into(), "com.example.x".into());
        d.insert("Program".into(), "/usr/bin/true".into());
        plist::Value::Dictionary(d)
            .to_file_xml(agents.join("com.example.x.plist"))
            .unwrap();
        // Not dirty and not due: the plist is not seen yet.
        assert!(
            state
                .sweep(&platform, &cfg, &cache, t0)
                .observations
                .persistence
                .is_empty()
        );
        state.mark_persistence_dirty();
        let swept = state.sweep(&platform, &cfg, &cache, t0);
        assert!(swept.changed);
        assert_eq!(swept.observations.persistence.len(), 1);
        // And the periodic rescan finds changes without a watcher.
        std::fs::remove_file(agents.join("com.example.x.plist")).unwrap();
        let later = t0 + FULL_RESCAN;
        assert!(
            state
                .sweep(&platform, &cfg, &cache, later)
                .observations
                .persistence
                .is_empty()
        );
    }

    fn probing_config(dir: &std::path::Path) -> Config {
        Config {
            probe: true,
            probe_timeout_ms: 300,
            ..config(dir)
        }
    }

    fn local(port: u16) -> (IpAddr, u16) {
        (IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    /// Answer one request on `stream` with a CORS-open 200.
    fn answer(mut stream: std::net::TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.read(&mut [0u8; 4096]);
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 2\r\n\r\nok",
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    /// A helper that says nothing to whoever connects in its first
    /// `quiet` (the connections are held open), and answers HTTP after.
    fn shy_server(quiet: Duration) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let born = Instant::now();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                if born.elapsed() < quiet {
                    held.push(stream);
                } else {
                    std::thread::spawn(move || answer(stream));
                }
            }
        });
        port
    }

    /// Timing short enough for a test; `reprobe` never comes in one.
    fn quick() -> Timing {
        Timing {
            first_retry: Duration::from_millis(800),
            max_retry: Duration::from_millis(1500),
            reprobe: Duration::from_secs(3600),
        }
    }

    #[test]
    fn silent_at_first_is_asked_again_and_then_seen() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = probing_config(dir.path());
        let cache = SignatureCache::default();
        let port = shy_server(Duration::from_secs(3));
        let platform = Only::port(port, &cfg);
        let mut state = SweepState::with_probe_timing(quick());

        // The sweep that finds the socket hands it to the prober and waits
        // no longer than FIRST_WAIT; the socket is held back from judging
        // meanwhile.
        let first = state.sweep(&platform, &cfg, &cache, Instant::now());
        assert!(!first.observations.listeners.iter().any(|l| l.port == port));
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut answers: Vec<(bool, Option<String>)> = Vec::new();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let swept = state.sweep(&platform, &cfg, &cache, Instant::now());
            let listed = swept.observations.listeners.iter().any(|l| l.port == port);
            let probe = swept.observations.probes.get(&local(port));
            // Listed exactly when a result is there to judge it by.
            assert_eq!(listed, probe.is_some());
            if let Some(p) = probe {
                let a = (p.http, p.error.clone());
                if answers.last() != Some(&a) {
                    // A new answer makes the sweep say "judge again".
                    assert!(swept.changed);
                    answers.push(a);
                }
                if p.http {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "never seen as HTTP: {answers:?}");
        }
        assert_eq!(
            answers,
            [
                (false, Some("no answer within 300 ms".to_string())),
                (true, None)
            ]
        );
        let p = &state.observations(state.listeners.clone()).probes[&local(port)];
        assert_eq!(p.cors, crate::model::Cors::Wildcard);
    }

    #[test]
    fn a_spent_wakeup_is_gone() {
        use std::future::Future as _;
        let ready = tokio::sync::Notify::new();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        ready.notify_one();
        spend_wakeup(&ready);
        let mut woken = std::pin::pin!(ready.notified());
        assert!(woken.as_mut().poll(&mut cx).is_pending());
        // Nothing stored: spending is a no-op, and a later wake-up counts.
        spend_wakeup(&ready);
        ready.notify_one();
        assert!(woken.as_mut().poll(&mut cx).is_ready());
    }

    /// Native, except that it lists only the test's own listener — so
    /// the test probes no other test's server — and says it is held by
    /// `owner` when set; every sweep walks the owners (the socket-id
    /// shortcut fails).
    struct Only {
        native: Native,
        port: u16,
        owner: Mutex<Option<u32>>,
    }

    impl Only {
        fn port(port: u16, cfg: &Config) -> Only {
            Only {
                native: Native::new(cfg.tools()),
                port,
                owner: Mutex::new(None),
            }
        }
    }

    impl Platform for Only {
        fn host_info(&self) -> crate::model::HostInfo {
            self.native.host_info()
        }
        fn listeners(&self) -> Result<Vec<Listener>, crate::platform::PlatformError> {
            let mut ours = self.native.listeners()?;
            ours.retain(|l| l.port == self.port);
            if let Some(pid) = *self.owner.lock().unwrap() {
                for l in &mut ours {
                    l.pids = vec![pid];
                }
            }
            Ok(ours)
        }
        fn listening_socket_ids(&self) -> Result<BTreeSet<u64>, crate::platform::PlatformError> {
            Err(crate::platform::PlatformError::io(
                "/proc/net/tcp",
                std::io::Error::other("test: always walk owners"),
            ))
        }
        fn process(&self, pid: u32) -> Result<ProcessIdentity, crate::platform::PlatformError> {
            self.native.process(pid)
        }
        fn check_signature(&self, path: &std::path::Path) -> crate::model::Signature {
            self.native.check_signature(path)
        }
        fn login_items(&self) -> Result<Vec<PersistenceItem>, crate::platform::PlatformError> {
            self.native.login_items()
        }
        fn camera_source(&self) -> crate::platform::CameraSource {
            self.native.camera_source()
        }
        fn established_to(
            &self,
            ports: &BTreeSet<u16>,
        ) -> Result<Vec<crate::platform::Established>, crate::platform::PlatformError> {
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
    }

    #[test]
    fn a_socket_changing_hands_is_probed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = probing_config(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || answer(stream));
            }
        });
        let mut heir = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let platform = Only::port(port, &cfg);
        let cache = SignatureCache::default();
        // Nothing is due again within the test but an owner change.
        let mut state = SweepState::with_probe_timing(Timing {
            first_retry: Duration::from_secs(3600),
            max_retry: Duration::from_secs(3600),
            reprobe: Duration::from_secs(3600),
        });
        let sweep_until = |state: &mut SweepState, what: &str, done: &dyn Fn(&Swept) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let swept = state.sweep(&platform, &cfg, &cache, Instant::now());
                if done(&swept) {
                    return;
                }
                assert!(Instant::now() < deadline, "{what}");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        sweep_until(&mut state, "first probe", &|s| {
            s.observations.probes.contains_key(&local(port))
        });
        // The result can be in before the accept loop has counted the last
        // of the three connections (a loaded machine): wait for the count.
        let deadline = Instant::now() + Duration::from_secs(5);
        while connections.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let once = connections.load(Ordering::SeqCst);
        assert_eq!(once, 3, "one probe is three requests");
        for _ in 0..10 {
            state.sweep(&platform, &cfg, &cache, Instant::now());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            once,
            "probed again unasked"
        );

        // The socket passes to another process (as a fork and exit would):
        // probed again at once.
        *platform.owner.lock().unwrap() = Some(heir.id());
        sweep_until(&mut state, "a probe after the owner changed", &|s| {
            connections.load(Ordering::SeqCst) >= once + 3
                && s.observations.processes.contains_key(&heir.id())
        });
        let _ = heir.kill();
        let _ = heir.wait();
    }
}
