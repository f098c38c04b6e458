//! File-system watchers (FSEvents on macOS, inotify on Linux, through
//! `notify`): persistence directories, the parents of guarded paths, and
//! the configuration files. Events are *triggers* to rescan, never facts:
//! FSEvents coalesces and cannot pair renames, inotify drops on overflow
//! (crates-notes.md), so every decision is made from a fresh scan.
//!
//! Globs such as `/Users/*/Library/LaunchAgents` are expanded to the
//! directories that exist now, and their fixed prefix (`/Users`) is watched
//! too, so a new home is noticed; the daemon re-expands the globs after
//! each persistence rescan ([`Watches::refresh`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// What a watcher saw: which kind of path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    Persistence,
    Guard,
    Config,
}

/// The set of watched directories, kept in step with configuration.
pub struct Watches {
    watcher: RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
    /// Shared with the watcher's callback and replaced on every refresh,
    /// so guard dirs added after the start are classified as such.
    classify: Arc<RwLock<Classifier>>,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("watched", &self.watched)
            .finish_non_exhaustive()
    }
}

/// The paths to watch and what each one means.
#[derive(Debug, Clone, Default)]
pub struct WatchSet {
    pub persistence_globs: Vec<String>,
    pub guard_dirs: Vec<PathBuf>,
    pub config_files: Vec<PathBuf>,
}

impl Watches {
    /// Start a watcher that sends a [`Trigger`] for each event.
    pub fn start(
        set: &WatchSet,
        tx: mpsc::UnboundedSender<Trigger>,
    ) -> Result<Watches, notify::Error> {
        let classify = Arc::new(RwLock::new(Classifier::new(set)));
        let shared = Arc::clone(&classify);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else {
                // An error (e.g. inotify queue overflow) means events were
                // lost: rescan everything.
                let _ = tx.send(Trigger::Persistence);
                let _ = tx.send(Trigger::Guard);
                return;
            };
            // Reading a file is not a change (inotify reports opens).
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            let classify = shared.read().unwrap_or_else(PoisonError::into_inner);
            for t in classify.triggers(&event.paths) {
                let _ = tx.send(t);
            }
        })?;
        let mut w = Watches {
            watcher,
            watched: BTreeSet::new(),
            classify,
        };
        w.refresh(set);
        Ok(w)
    }

    /// Watch every directory `set` names that exists now (and stop
    /// watching ones it no longer names). A directory that cannot be
    /// watched is logged and left to the periodic rescan.
    pub fn refresh(&mut self, set: &WatchSet) {
        *self
            .classify
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Classifier::new(set);
        let wanted = dirs_to_watch(set);
        for gone in self
            .watched
            .difference(&wanted)
            .cloned()
            .collect::<Vec<_>>()
        {
            let _ = self.watcher.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for dir in wanted {
            if self.watched.contains(&dir) {
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "not watched"),
            }
        }
    }

    pub fn watched(&self) -> &BTreeSet<PathBuf> {
        &self.watched
    }
}

/// Existing directories for a watch set: each glob's expansions and its
/// fixed prefix, the guard dirs, and the config files' directories (a
/// file is replaced by rename, which only its directory sees).
fn dirs_to_watch(set: &WatchSet) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for pattern in &set.persistence_globs {
        dirs.insert(fixed_prefix(pattern));
        if let Ok(paths) = glob::glob(pattern) {
            dirs.extend(paths.flatten());
        }
    }
    dirs.extend(set.guard_dirs.iter().cloned());
    dirs.extend(
        set.config_files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf)),
    );
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// The longest leading part of a glob without glob characters.
fn fixed_prefix(pattern: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(pattern).components() {
        let s = c.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[']) {
            break;
        }
        out.push(c);
    }
    out
}

/// Maps an event's paths to triggers.
struct Classifier {
    config_files: Vec<PathBuf>,
    guard_dirs: Vec<PathBuf>,
    persistence_globs: Vec<glob::Pattern>,
    persistence_prefixes: Vec<PathBuf>,
}

impl Classifier {
    fn new(set: &WatchSet) -> Classifier {
        Classifier {
            config_files: set.config_files.clone(),
            guard_dirs: set.guard_dirs.clone(),
            // A pattern that does not compile expands to nothing in
            // `dirs_to_watch` either.
            persistence_globs: set
                .persistence_globs
                .iter()
                .filter_map(|g| glob::Pattern::new(g).ok())
                .collect(),
            persistence_prefixes: set
                .persistence_globs
                .iter()
                .map(|g| fixed_prefix(g))
                .collect(),
        }
    }

    /// A persistence directory (a glob's expansion) or a glob's fixed
    /// prefix (where new homes appear).
    fn persistence_dir(&self, dir: &Path) -> bool {
        self.persistence_prefixes.iter().any(|p| p == dir)
            || self.persistence_globs.iter().any(|g| g.matches_path(dir))
    }

    /// A directory watched only because a configuration file lives in it
    /// (e.g. /Library/Preferences, which every other daemon writes to).
    fn config_only_dir(&self, dir: &Path) -> bool {
        self.config_files.iter().any(|f| f.parent() == Some(dir)) && !self.persistence_dir(dir)
    }

    fn triggers(&self, paths: &[PathBuf]) -> BTreeSet<Trigger> {
        let mut out = BTreeSet::new();
        for p in paths {
            if self.config_files.iter().any(|f| f == p) {
                out.insert(Trigger::Config);
                continue;
            }
            let Some(parent) = p.parent() else {
                out.insert(Trigger::Persistence);
                continue;
            };
            let guard = self.guard_dirs.iter().any(|g| g == parent);
            if guard {
                out.insert(Trigger::Guard);
            }
            // A guarded plist's folder is a persistence folder too: a plist
            // written there (a restore, a new agent) needs the rescan.
            if self.persistence_dir(parent) || !(guard || self.config_only_dir(parent)) {
                // (Anything else — the watched folder itself going away —
                // rescans too, to be safe.) Another file beside the
                // configuration is not ours to rescan for: a config
                // replaced by rename names the config path, caught above.
                out.insert(Trigger::Persistence);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fixed_prefix_stops_at_the_first_glob() {
        assert_eq!(
            fixed_prefix("/Users/*/Library/LaunchAgents"),
            PathBuf::from("/Users")
        );
        assert_eq!(
            fixed_prefix("/Library/LaunchAgents"),
            PathBuf::from("/Library/LaunchAgents")
        );
    }

    #[test]
    fn files_beside_the_config_are_not_persistence_triggers() {
        let set = WatchSet {
            persistence_globs: vec![
                "/r/Users/*/Library/LaunchAgents".into(),
                "/r/Library/LaunchAgents".into(),
            ],
            guard_dirs: vec!["/r/Users/ann".into()],
            config_files: vec![
                "/r/lenscap.plist".into(),
                "/r/Library/LaunchAgents/odd.plist".into(),
            ],
        };
        let c = Classifier::new(&set);
        let t = |paths: &[&str]| {
            c.triggers(&paths.iter().map(PathBuf::from).collect::<Vec<_>>())
                .into_iter()
                .collect::<Vec<_>>()
        };
        // Logs, port files, other programs' preferences beside the config.
        assert_eq!(t(&["/r/daemon.log"]), []);
        assert_eq!(t(&["/r/lenscap.plist.tmp"]), []);
        // A config replaced by rename names the config itself.
        assert_eq!(
            t(&["/r/lenscap.plist.tmp", "/r/lenscap.plist"]),
            [Trigger::Config]
        );
        // Persistence dirs and the glob's prefix still count, also where a
        // config file lives in one.
        assert_eq!(t(&["/r/Users/bob"]), [Trigger::Persistence]);
        assert_eq!(
            t(&["/r/Users/bob/Library/LaunchAgents/x.plist"]),
            [Trigger::Persistence]
        );
        assert_eq!(
            t(&["/r/Library/LaunchAgents/x.plist"]),
            [Trigger::Persistence]
        );
        assert_eq!(t(&["/r/Users/ann/.zoomus"]), [Trigger::Guard]);
    }

    #[test]
    fn a_guarded_persistence_dir_triggers_both() {
        let set = WatchSet {
            persistence_globs: vec!["/r/Users/*/Library/LaunchAgents".into()],
            guard_dirs: vec!["/r/Users/ann/Library/LaunchAgents".into()],
            config_files: vec![],
        };
        let c = Classifier::new(&set);
        let t = c.triggers(&[PathBuf::from("/r/Users/ann/Library/LaunchAgents/x.plist")]);
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            [Trigger::Persistence, Trigger::Guard]
        );
    }

    #[tokio::test]
    async fn guard_dirs_added_by_a_refresh_are_classified_as_guard() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut set = WatchSet::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut w = Watches::start(&set, tx).unwrap();
        set.guard_dirs = vec![home.clone()];
        w.refresh(&set);
        std::fs::create_dir(home.join(".zoomus")).unwrap();
        let t = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert_eq!(t, Some(Trigger::Guard));
    }

    #[tokio::test]
    async fn a_new_plist_and_a_config_rewrite_trigger() {
        let dir = tempfile::tempdir().unwrap();
        let agents = dir.path().join("home/ann/Library/LaunchAgents");
        std::fs::create_dir_all(&agents).unwrap();
        let config = dir.path().join("lenscap.plist");
        std::fs::write(&config, b"x").unwrap();
        let set = WatchSet {
            persistence_globs: vec![format!(
                "{}/home/*/Library/LaunchAgents",
                dir.path().display()
            )],
            guard_dirs: vec![],
            config_files: vec![config.clone()],
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let w = Watches::start(&set, tx).unwrap();
        assert!(w.watched().contains(&agents));
        assert!(
            w.watched().contains(&dir.path().join("home")),
            "the glob's prefix"
        );

        std::fs::write(agents.join("com.x.plist"), b"<plist/>").unwrap();
        let t = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert_eq!(t, Some(Trigger::Persistence));
        while rx.try_recv().is_ok() {}

        std::fs::write(dir.path().join("lenscap.plist.tmp"), b"y").unwrap();
        std::fs::rename(dir.path().join("lenscap.plist.tmp"), &config).unwrap();
        let mut seen = BTreeSet::new();
        while let Ok(Some(t)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            seen.insert(t);
        }
        assert!(seen.contains(&Trigger::Config), "{seen:?}");
    }
}
