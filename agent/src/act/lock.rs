//! The state lock.

use std::path::PathBuf;

/// `<StateDir>/act.lock`: held (flock) while the daemon moves files or
/// changes the guard, and by `lenscap quarantine restore`, so a restore
/// never races the guard that would take the files away again.
#[derive(Debug)]
pub struct StateLock {
    path: PathBuf,
}

impl StateLock {
    pub fn new(state_dir: &std::path::Path) -> StateLock {
        StateLock {
            path: state_dir.join("act.lock"),
        }
    }

    /// Block until the lock is ours; `None` when the lock file cannot be
    /// opened (then we go on unlocked rather than stop protecting).
    pub fn hold(&self) -> Option<nix::fcntl::Flock<std::fs::File>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.path)
            .map_err(|e| tracing::warn!(error = %e, path = %self.path.display(), "no state lock"))
            .ok()?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| tracing::warn!(error = %e, "cannot take the state lock"))
            .ok()
    }
}
