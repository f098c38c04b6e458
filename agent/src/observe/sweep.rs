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

/// Safety-net interval for a full persistence rescan, and for reading the
/// owners' identities again (an `exec` keeps the pid and changes the
/// program).
pub const FULL_RESCAN: Duration = Duration::from_secs(30);

/// How often every process's descriptors are read again although the set
/// of listening sockets did not change. In between, the [`FULL_RESCAN`]
/// refresh reads only the descriptors of processes that are new since the
/// last walk (a fork hands a socket on to a new pid) and of the known
/// owners (who may have closed theirs): an existing process can come to
/// hold an existing listening socket only by having it passed over a
/// Unix socket (`SCM_RIGHTS`) or taken with `pidfd_getfd`, which this
/// walk catches within its period. The full walk costs ~17 ms of CPU at
/// ~400 processes (docs/benchmarks.md, "Issue 11"); every 30 s it was
/// most of an idle daemon's cost.
pub const FULL_OWNER_WALK: Duration = Duration::from_secs(300);

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
    /// When owners were last refreshed (fully or among new processes).
    last_owner_walk: Option<Instant>,
    /// When every process's descriptors were last read.
    last_full_walk: Option<Instant>,
    /// The processes that existed before the last walk began: a process
    /// not among them has not had its descriptors read.
    walked_pids: Option<BTreeSet<u32>>,
    /// Path facts and the agent's own executable for the processes and
    /// persistence above; cleared when either changes.
    facts: Option<CachedFacts>,
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

/// What [`SweepState::observations`] computes once per change of the
/// processes or persistence: an `lstat` of every referenced path, the
/// users' home directories.
#[derive(Debug)]
struct CachedFacts {
    existing: BTreeSet<std::path::PathBuf>,
    owners: BTreeMap<std::path::PathBuf, u32>,
    homes: Vec<std::path::PathBuf>,
    agent_exe: Option<std::path::PathBuf>,
}

/// The result of a sweep without the observations: [`SweepState::look`].
#[derive(Debug)]
pub struct Looked {
    pub errors: Vec<ScanError>,
    /// Did anything change since the previous sweep (new or gone sockets,
    /// a persistence rescan, a probe result)? When not, judging again
    /// would say the same.
    pub changed: bool,
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
    /// What to probe, rebuilt when sockets or owners change.
    targets: Option<Vec<Target>>,
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

    /// One sweep with its observations. `probe` is false when probing is
    /// off.
    pub fn sweep(
        &mut self,
        platform: &dyn Platform,
        config: &Config,
        cache: &SignatureCache,
        now: Instant,
    ) -> Swept {
        let looked = self.look(platform, config, cache, now);
        Swept {
            observations: self.observations(),
            errors: looked.errors,
            changed: looked.changed,
        }
    }

    /// One sweep without building the observations: the daemon asks for
    /// them ([`SweepState::observations`]) only when it is going to judge,
    /// so a sweep that finds nothing new costs one socket dump and
    /// nothing else.
    pub fn look(
        &mut self,
        platform: &dyn Platform,
        config: &Config,
        cache: &SignatureCache,
        now: Instant,
    ) -> Looked {
        let mut errors = Vec::new();
        // Results that arrived since the last sweep.
        let mut probes_changed = self.probing.collect(now);
        let known = self.last_owner_walk.is_some();
        let owners_due = self
            .last_owner_walk
            .is_none_or(|t| now.duration_since(t) >= FULL_RESCAN);
        let full_due = self
            .last_full_walk
            .is_none_or(|t| now.duration_since(t) >= FULL_OWNER_WALK);
        // Idle machines are the common case: when the set of listening
        // sockets is the one we know, reuse its owners instead of walking
        // every process's descriptors again (a new socket always has a new
        // id). Owners can change without the socket changing (a fork
        // inherits it), so they are refreshed every FULL_RESCAN among the
        // processes that could have changed, and fully every
        // FULL_OWNER_WALK.
        let ids_now = if known {
            platform.listening_socket_ids().ok()
        } else {
            None
        };
        let same_sockets = ids_now.as_ref().is_some_and(|ids| *ids == self.socket_ids);
        // Sockets only went away: whoever holds the ones that remain held
        // them before, so nothing needs walking (a busy machine's test
        // servers come and go; only a new socket can have an owner we do
        // not know).
        let only_gone = !same_sockets
            && !owners_due
            && ids_now
                .as_ref()
                .is_some_and(|ids| ids.is_subset(&self.socket_ids));
        let listed = if only_gone {
            let ids = ids_now.unwrap_or_default();
            Ok(self
                .listeners
                .iter()
                .filter(|l| ids.contains(&l.socket_id))
                .cloned()
                .collect())
        } else if same_sockets && !owners_due {
            Ok(self.listeners.clone())
        } else if same_sockets && !full_due {
            self.refresh_owners(platform, now)
        } else {
            self.walk_all(platform, now)
        };
        let refreshed = (!same_sockets && !only_gone) || owners_due;
        let listeners: Vec<Listener> = match listed {
            Ok(l) => {
                if refreshed {
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
                return Looked {
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
        let sockets_changed =
            !new.is_empty() || ids != self.socket_ids || (refreshed && listeners != self.listeners);

        // Fresh identities for the owners of new sockets, and for every
        // owner when owners are due (an exec keeps the pid and changes the
        // program); forget owners of nothing. Nothing is read when nothing
        // is new.
        let mut processes_changed = false;
        if refreshed || !new.is_empty() {
            let fresh: BTreeSet<u32> = new.iter().flat_map(|l| l.pids.iter().copied()).collect();
            let owners: BTreeSet<u32> = listeners
                .iter()
                .flat_map(|l| l.pids.iter().copied())
                .collect();
            let before = self.processes.clone();
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
            processes_changed = self.processes != before;
        }

        if config.probe {
            let new_reachable: Vec<u64> = new
                .iter()
                .filter(|l| l.scope.browser_reachable())
                .map(|l| l.socket_id)
                .collect();
            for id in &new_reachable {
                self.probing.held.insert(*id, now);
            }
            let timeout = Duration::from_millis(config.probe_timeout_ms);
            // The schedule's targets change only with the sockets or their
            // owners; otherwise only retries and refreshes fall due.
            if sockets_changed || processes_changed || self.probing.targets.is_none() {
                let targets: Vec<Target> = listeners
                    .iter()
                    .filter(|l| l.scope.browser_reachable())
                    .map(|l| Target {
                        socket_id: l.socket_id,
                        address: (l.address, l.port),
                        owners: owners_of(l, &self.processes),
                    })
                    .collect();
                self.probing.targets = Some(targets);
            }
            match self.probing.dispatch(now, timeout) {
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
        if refreshed || sockets_changed {
            self.listeners = listeners;
        }
        if processes_changed {
            self.facts = None;
        }

        let rescan = self.persistence_dirty
            || self
                .last_rescan
                .is_none_or(|t| now.duration_since(t) >= FULL_RESCAN);
        let mut persistence_changed = false;
        if rescan {
            let (mut items, apps, errs) = startup_items(config);
            errors.extend(errs);
            errors.extend(login_items(platform, config, &mut items));
            persistence_changed = items != self.persistence || apps != self.apps;
            if persistence_changed {
                self.facts = None;
            }
            self.persistence = items;
            self.apps = apps;
            self.last_rescan = Some(now);
            self.persistence_dirty = false;
            // Files referenced may have come or gone without the lists
            // changing: look again at the periodic rescan.
            self.facts = None;
        }
        Looked {
            errors,
            changed: sockets_changed || persistence_changed || probes_changed || processes_changed,
        }
    }

    /// Walk every process's descriptors; remember which processes existed
    /// before the walk began.
    fn walk_all(
        &mut self,
        platform: &dyn Platform,
        now: Instant,
    ) -> Result<Vec<Listener>, crate::platform::PlatformError> {
        let before = platform.process_ids();
        let listed = platform.listeners()?;
        self.walked_pids = before;
        self.last_full_walk = Some(now);
        Ok(listed)
    }

    /// Refresh the owners of the sockets we know by reading only the
    /// descriptors of processes that are new since the last walk and of
    /// the known owners; every other process's descriptors were read
    /// before and cannot have gained a listening socket by a fork.
    /// Falls back to a full walk when the platform cannot list processes
    /// or the socket set moved meanwhile.
    fn refresh_owners(
        &mut self,
        platform: &dyn Platform,
        now: Instant,
    ) -> Result<Vec<Listener>, crate::platform::PlatformError> {
        let (Some(now_pids), Some(walked)) = (platform.process_ids(), self.walked_pids.as_ref())
        else {
            return self.walk_all(platform, now);
        };
        let mut candidates: BTreeSet<u32> = now_pids.difference(walked).copied().collect();
        candidates.extend(
            self.listeners
                .iter()
                .flat_map(|l| l.pids.iter().copied())
                .filter(|p| now_pids.contains(p)),
        );
        let listed = platform.listeners_among(&candidates)?;
        if listed
            .iter()
            .map(|l| l.socket_id)
            .collect::<BTreeSet<u64>>()
            != self.socket_ids
        {
            // A socket came or went between the two dumps: its owner may be
            // any process.
            return self.walk_all(platform, now);
        }
        self.walked_pids = Some(now_pids);
        Ok(listed)
    }

    /// What the sweeps have seen, for the judge. Path facts are read again
    /// only when the processes or persistence changed, or at the periodic
    /// rescan.
    pub fn observations(&mut self) -> Observations {
        let mut listeners = self.listeners.clone();
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
        let facts = self.facts.get_or_insert_with(|| {
            let f = path_facts(&self.processes, &self.persistence);
            CachedFacts {
                existing: f.existing,
                owners: f.owners,
                homes: f.homes,
                agent_exe: std::env::current_exe().ok(),
            }
        });
        Observations {
            listeners,
            processes: self.processes.clone(),
            persistence: self.persistence.clone(),
            probes,
            installed_bundle_ids: self.apps.clone(),
            existing_paths: facts.existing.clone(),
            path_owners: facts.owners.clone(),
            home_dirs: facts.homes.clone(),
            translocated: self.translocated.clone(),
            agent_pid: std::process::id(),
            agent_exe: facts.agent_exe.clone(),
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
    fn dispatch(&mut self, now: Instant, timeout: Duration) -> std::io::Result<()> {
        let targets: &[Target] = self.targets.as_deref().unwrap_or_default();
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
        self.targets = None;
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
        let p = &state.observations().probes[&local(port)];
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

    /// Native, narrowed to the test's own port (other tests open sockets
    /// concurrently), counting what each sweep asks of the platform.
    struct Counting {
        native: Native,
        port: u16,
        full_walks: AtomicUsize,
        partial_walks: AtomicUsize,
        identities: AtomicUsize,
        /// The pids the last partial walk was asked to read.
        among: Mutex<BTreeSet<u32>>,
    }

    impl Counting {
        fn port(port: u16) -> Counting {
            Counting {
                native: Native::new(Config::default().tools()),
                port,
                full_walks: AtomicUsize::new(0),
                partial_walks: AtomicUsize::new(0),
                identities: AtomicUsize::new(0),
                among: Mutex::new(BTreeSet::new()),
            }
        }
        fn counts(&self) -> (usize, usize, usize) {
            (
                self.full_walks.load(Ordering::SeqCst),
                self.partial_walks.load(Ordering::SeqCst),
                self.identities.load(Ordering::SeqCst),
            )
        }
        fn ours(&self, mut all: Vec<Listener>) -> Vec<Listener> {
            all.retain(|l| l.port == self.port);
            all
        }
    }

    impl Platform for Counting {
        fn console_users(&self) -> Result<Vec<u32>, crate::platform::PlatformError> {
            self.native.console_users()
        }
        fn user_name_of(&self, uid: u32) -> Option<String> {
            self.native.user_name_of(uid)
        }
        fn host_info(&self) -> crate::model::HostInfo {
            self.native.host_info()
        }
        fn listeners(&self) -> Result<Vec<Listener>, crate::platform::PlatformError> {
            self.full_walks.fetch_add(1, Ordering::SeqCst);
            Ok(self.ours(self.native.listeners()?))
        }
        fn listeners_among(
            &self,
            pids: &BTreeSet<u32>,
        ) -> Result<Vec<Listener>, crate::platform::PlatformError> {
            self.partial_walks.fetch_add(1, Ordering::SeqCst);
            *self.among.lock().unwrap() = pids.clone();
            Ok(self.ours(self.native.listeners_among(pids)?))
        }
        fn listening_socket_ids(&self) -> Result<BTreeSet<u64>, crate::platform::PlatformError> {
            Ok(self
                .ours(self.native.listeners_among(&BTreeSet::new())?)
                .iter()
                .map(|l| l.socket_id)
                .collect())
        }
        fn process_ids(&self) -> Option<BTreeSet<u32>> {
            self.native.process_ids()
        }
        fn process(&self, pid: u32) -> Result<ProcessIdentity, crate::platform::PlatformError> {
            self.identities.fetch_add(1, Ordering::SeqCst);
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
    }

    /// A listening socket whose descriptor a child inherits.
    fn inheritable_listener() -> TcpListener {
        use std::os::fd::AsRawFd;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY: F_SETFD on a descriptor we own; clears only FD_CLOEXEC.
        let rc = unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_SETFD, 0) };
        assert_eq!(rc, 0);
        listener
    }

    #[test]
    fn an_idle_sweep_reads_nothing_but_the_socket_ids() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let platform = Counting::port(listener.local_addr().unwrap().port());
        let cache = SignatureCache::default();
        let mut state = SweepState::default();
        let t0 = Instant::now();
        assert!(state.look(&platform, &cfg, &cache, t0).changed);
        let after_first = platform.counts();
        assert_eq!(after_first.0, 1, "the first sweep walks every process");
        assert!(after_first.2 >= 1, "and reads the owner's identity");
        for i in 1..20 {
            let looked = state.look(&platform, &cfg, &cache, t0 + Duration::from_millis(500 * i));
            assert!(!looked.changed);
        }
        assert_eq!(
            platform.counts(),
            after_first,
            "an idle sweep walks nothing and reads no identity"
        );
        // The observations are assembled from what the sweeps kept.
        let seen = state.observations();
        assert_eq!(seen.listeners.len(), 1);
        assert_eq!(seen.listeners[0].pids, vec![std::process::id()]);
        assert!(seen.processes.contains_key(&std::process::id()));
    }

    #[test]
    fn a_socket_that_goes_away_needs_no_walk() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let platform = Counting::port(listener.local_addr().unwrap().port());
        let cache = SignatureCache::default();
        let mut state = SweepState::default();
        let t0 = Instant::now();
        state.look(&platform, &cfg, &cache, t0);
        assert_eq!(state.observations().listeners.len(), 1);
        drop(listener);
        let looked = state.look(&platform, &cfg, &cache, t0 + Duration::from_secs(1));
        assert!(looked.changed, "a listener went: judge again");
        assert!(state.observations().listeners.is_empty());
        assert_eq!(
            platform.counts().0,
            1,
            "no walk for a socket that only went"
        );
        // A new socket still means a walk (its owner may be anyone).
        let again = TcpListener::bind(("127.0.0.1", platform.port)).unwrap();
        state.look(&platform, &cfg, &cache, t0 + Duration::from_secs(2));
        assert_eq!(platform.counts().0, 2);
        assert_eq!(
            state.observations().listeners[0].pids,
            vec![std::process::id()]
        );
        drop(again);
    }

    #[test]
    fn a_fork_heir_is_found_by_the_refresh_without_a_full_walk() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let listener = inheritable_listener();
        let platform = Counting::port(listener.local_addr().unwrap().port());
        let cache = SignatureCache::default();
        let mut state = SweepState::default();
        let t0 = Instant::now();
        state.look(&platform, &cfg, &cache, t0);
        // (Children other tests spawn meanwhile inherit the descriptor
        // too, so only our own pids are asserted.)
        assert!(
            state.observations().listeners[0]
                .pids
                .contains(&std::process::id())
        );

        // A child born after the walk inherits the socket (as a helper's
        // fork would): no socket changes, so no sweep notices until the
        // owners' refresh, which reads only new processes' descriptors.
        let mut heir = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let heir_pid = heir.id();
        assert!(
            !state
                .look(&platform, &cfg, &cache, t0 + Duration::from_secs(1))
                .changed
        );
        let looked = state.look(&platform, &cfg, &cache, t0 + FULL_RESCAN);
        assert!(looked.changed, "a new owner is a change");
        let seen = state.observations();
        assert!(
            seen.listeners[0].pids.contains(&heir_pid),
            "the heir holds it"
        );
        assert!(seen.listeners[0].pids.contains(&std::process::id()));
        assert!(
            seen.processes.contains_key(&heir_pid),
            "the heir's identity is read"
        );
        let (full, partial, _) = platform.counts();
        assert_eq!((full, partial), (1, 1), "the refresh was a partial walk");
        let among = platform.among.lock().unwrap().clone();
        assert!(among.contains(&heir_pid) && among.contains(&std::process::id()));
        assert!(
            among.len() < platform.process_ids().unwrap().len(),
            "old processes' descriptors were not read again: {among:?}"
        );

        // The heir exits: the next refresh drops it.
        heir.kill().unwrap();
        heir.wait().unwrap();
        state.look(&platform, &cfg, &cache, t0 + FULL_RESCAN * 2);
        let pids = state.observations().listeners[0].pids.clone();
        assert!(pids.contains(&std::process::id()) && !pids.contains(&heir_pid));
        // And every FULL_OWNER_WALK all descriptors are read again (what
        // catches a socket passed to an old process over a Unix socket).
        state.look(&platform, &cfg, &cache, t0 + FULL_OWNER_WALK);
        assert_eq!(platform.counts().0, 2);
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
