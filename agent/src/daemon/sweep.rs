//! Incremental observation for the daemon's periodic sweeps.
//!
//! Listing sockets is cheap (a few ms); resolving their owners' identities,
//! signatures and HTTP behaviour is not. So a sweep lists sockets every
//! time and resolves only what is new: a socket seen in the previous sweep
//! (same socket id) keeps its owners' identities and its probe result. A
//! new socket always gets fresh identities for its PIDs, so a PID reused by
//! a new process is never judged by its predecessor's identity.
//! Persistence is rescanned when a watcher fires or every
//! [`FULL_RESCAN`], because watchers coalesce and drop events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::judge::Observations;
use crate::model::{HttpProbe, Listener, PersistenceItem, ProcessIdentity, ScanError};
use crate::observe::inventory::{login_items, path_facts, read_processes, startup_items};
use crate::observe::probe;
use crate::observe::signing::SignatureCache;
use crate::platform::Platform;

/// Safety-net interval for a full persistence rescan.
pub const FULL_RESCAN: Duration = Duration::from_secs(30);

const PROBE_CONCURRENCY: usize = 16;

/// What the daemon remembers between sweeps.
#[derive(Debug, Default)]
pub struct SweepState {
    socket_ids: BTreeSet<u64>,
    listeners: Vec<Listener>,
    last_owner_walk: Option<Instant>,
    processes: BTreeMap<u32, ProcessIdentity>,
    probes: HashMap<u64, HttpProbe>,
    persistence: Vec<PersistenceItem>,
    apps: BTreeSet<String>,
    last_rescan: Option<Instant>,
    persistence_dirty: bool,
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

impl SweepState {
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
                    changed: false,
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

        // Fresh identities for the owners of new sockets; forget owners of
        // nothing.
        let fresh: BTreeSet<u32> = new.iter().flat_map(|l| l.pids.iter().copied()).collect();
        let owners: BTreeSet<u32> = listeners
            .iter()
            .flat_map(|l| l.pids.iter().copied())
            .collect();
        self.processes
            .retain(|pid, _| owners.contains(pid) && !fresh.contains(pid));
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

        // Probe new browser-reachable sockets only.
        self.probes.retain(|id, _| ids.contains(id));
        if config.probe {
            let targets: Vec<(std::net::IpAddr, u16)> = new
                .iter()
                .filter(|l| l.scope.browser_reachable())
                .map(|l| (l.address, l.port))
                .collect();
            if !targets.is_empty() {
                let results = probe::probe_all(
                    &targets,
                    Duration::from_millis(config.probe_timeout_ms),
                    PROBE_CONCURRENCY,
                );
                for l in &new {
                    if let Some(p) = results.get(&(l.address, l.port)) {
                        self.probes.insert(l.socket_id, p.clone());
                    }
                }
            }
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
                changed: sockets_changed || persistence_changed,
            };
        }
        Swept {
            observations: self.observations(listeners),
            errors,
            changed: sockets_changed,
        }
    }

    fn observations(&self, listeners: Vec<Listener>) -> Observations {
        let probes = listeners
            .iter()
            .filter_map(|l| {
                self.probes
                    .get(&l.socket_id)
                    .map(|p| ((l.address, l.port), p.clone()))
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
            agent_pid: std::process::id(),
            agent_exe: std::env::current_exe().ok(),
            grants: Vec::new(),
            camera_sessions: Vec::new(),
            connections: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Native;

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
}
