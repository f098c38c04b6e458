//! The quarantine vault: `<StateDir>/quarantine/`, root-only (0700).
//!
//! [`Vault::quarantine`] moves a helper's files (its plist, bundle,
//! executable, hidden folder) into `<vault>/<id>/payload/<n>` and records
//! them in `<vault>/<id>/manifest.json` (format and invariants:
//! [`super::manifest`]); [`Vault::restore`] puts them back exactly — owner,
//! group, mode, mtime, bytes — and never overwrites what is there now;
//! [`Vault::recover`] finishes on start whatever a crash interrupted;
//! [`placeholder_block`] leaves a mode-000 root-owned file where a hidden
//! folder was, so the helper cannot recreate it (the community's fix for
//! `~/.zoomus`).
//!
//! Two-phase, so a crash is recoverable: the manifest says `moving` before
//! the first byte moves and `quarantined` after the last. Per item the
//! commit point is the appearance of `payload/<n>` (a `renameat`, either of
//! the item itself or of its verified copy): before it the original is
//! intact, after it the vault copy is complete. Recovery rolls a `moving`
//! record forward — it removes originals' leftovers that equal the vault
//! copy and moves items not yet moved — and finishes a `restoring` one.
//! A failure inside `quarantine` itself rolls back instead, so the caller's
//! error means "nothing changed".
//!
//! Every path is walked with [`SafeDir`]: a link a user planted at any
//! component is refused, and a link inside a moved tree is moved as a link.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;

use super::fsops::{self, EntryKind, FsError, Moved, SafeDir};
use super::manifest::{self, ItemRecord, ManifestError, QuarantineRecord, RecordState};

mod restore;

pub use restore::{RecoveryAction, RestoreReport};

const VAULT_DIR: &str = "quarantine";
const PAYLOAD_DIR: &str = "payload";

/// Why a quarantine, restore or vault check failed.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "refusing to use {} as the quarantine vault: {reason}; it must be a real directory \
         owned by the agent's user and writable by nobody else — fix or remove it",
        path.display()
    )]
    VaultInsecure { path: PathBuf, reason: String },
    #[error("nothing to quarantine: the item list is empty")]
    NoItems,
    #[error(
        "refusing to quarantine {}: {what} belongs to uid {owner}, outside the reach of \
         uid {actor} whose finding this is (lenscap only moves what the actor could move itself)",
        path.display()
    )]
    OutsideReach {
        path: PathBuf,
        what: String,
        owner: u32,
        actor: u32,
    },
    #[error(
        "{} is listed and so is {}, which contains it; list only the outer one",
        inner.display(), outer.display()
    )]
    Nested { outer: PathBuf, inner: PathBuf },
    #[error("no quarantine record {id:?} in {}; `lenscap quarantine list` shows the ids", vault.display())]
    UnknownId { id: String, vault: PathBuf },
    #[error("quarantine {id} is {state:?}; only a quarantined (or failed) record can be restored")]
    WrongState { id: String, state: RecordState },
    #[error(
        "cannot restore {}: its folder {} is gone; recreate it with its owner and mode, then retry",
        path.display(), parent.display()
    )]
    ParentMissing { path: PathBuf, parent: PathBuf },
    #[error(
        "cannot restore {}: something is there now and was not overwritten; \
         move it away (or delete it) and run the restore again",
        path.display()
    )]
    Occupied { path: PathBuf },
    #[error(
        "the vault copy {} is missing, so {} cannot be restored from it",
        payload.display(), path.display()
    )]
    PayloadMissing { path: PathBuf, payload: PathBuf },
    #[error(
        "{} was put back but differs from its record ({what} of {}); the files are in place — \
         compare them with the manifest",
        path.display(), entry.display()
    )]
    Mismatch {
        path: PathBuf,
        entry: PathBuf,
        what: &'static str,
    },
}

/// The root-only directory holding every quarantine record.
#[derive(Debug)]
pub struct Vault {
    dir: SafeDir,
}

/// An item's original location, opened for moving.
struct Target {
    parent: SafeDir,
    name: OsString,
}

/// A record after phase one (manifest `moving`, nothing moved).
struct Prepared {
    dir: SafeDir,
    payload: SafeDir,
    record: QuarantineRecord,
    targets: Vec<Target>,
}

impl Vault {
    /// Open (creating if needed, 0700) `<state_dir>/quarantine`. Refuses a
    /// vault or state directory that is a link, not owned by our effective
    /// uid, or writable by group or others: whoever can write there could
    /// swap what we restore. A vault readable by others is tightened to 0700.
    pub fn open(state_dir: &Path) -> Result<Vault, QuarantineError> {
        let euid = nix::unistd::geteuid().as_raw();
        let (parent, name) = SafeDir::open_parent(state_dir)?;
        let state = parent
            .ensure_dir(&name, 0o700)
            .map_err(|e| insecure_link(e, state_dir))?;
        check_private(&state, euid)?;
        let vault_name = OsStr::new(VAULT_DIR);
        let vault_path = state.child_path(vault_name);
        if let Some(m) = state.lstat(vault_name)?
            && m.kind != EntryKind::Dir
        {
            return Err(QuarantineError::VaultInsecure {
                path: vault_path,
                reason: format!("it is a {}", m.kind_name()),
            });
        }
        let dir = state
            .ensure_dir(vault_name, 0o700)
            .map_err(|e| insecure_link(e, &vault_path))?;
        let m = check_private(&dir, euid)?;
        if m.mode & 0o077 != 0 {
            dir.chmod(0o700)?;
        }
        Ok(Vault { dir })
    }

    /// The vault directory (for messages).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Move `items` (absolute paths) into a new record. Everything is
    /// checked first — each path reachable without a link, each item a
    /// file, directory or link inside a tree, none inside another — so a
    /// refusal changes nothing. A failure while moving puts back what
    /// was moved; the record then says `aborted`.
    pub fn quarantine(
        &self,
        items: &[PathBuf],
        finding_summary: &str,
        rule: Option<String>,
        now: SystemTime,
    ) -> Result<QuarantineRecord, QuarantineError> {
        self.quarantine_as(items, finding_summary, rule, now, 0)
    }

    /// [`Vault::quarantine`] on behalf of `actor` (a uid; 0 is root):
    /// refused, with nothing moved, unless the actor could have moved every
    /// item itself — each entry of each tree owned by the actor, and its
    /// folder the actor's (or a sticky world-writable one like `/tmp`).
    /// Checked on the descriptors the move then uses, with no link
    /// followed at any component.
    pub fn quarantine_as(
        &self,
        items: &[PathBuf],
        finding_summary: &str,
        rule: Option<String>,
        now: SystemTime,
        actor: u32,
    ) -> Result<QuarantineRecord, QuarantineError> {
        let Prepared {
            dir,
            payload,
            mut record,
            targets,
        } = self.prepare(items, finding_summary, rule, now, actor)?;
        for (n, t) in targets.iter().enumerate() {
            let name = record.items[n].payload_name().to_os_string();
            match fsops::move_entry(&t.parent, &t.name, &payload, &name, &partial_name(&name)) {
                Ok(moved) => note_leftovers(&mut record.notes, moved),
                Err(err) => {
                    abort(&dir, &payload, &mut record, &targets[..=n]);
                    return Err(err.into());
                }
            }
        }
        refresh_from_payload(&payload, &mut record);
        record.state = RecordState::Quarantined;
        manifest::write(&dir, &record)?;
        Ok(record)
    }

    /// Phase one: check everything, create the record directory and write
    /// the manifest with state `moving`. Nothing has moved yet.
    fn prepare(
        &self,
        items: &[PathBuf],
        finding_summary: &str,
        rule: Option<String>,
        now: SystemTime,
        actor: u32,
    ) -> Result<Prepared, QuarantineError> {
        if items.is_empty() {
            return Err(QuarantineError::NoItems);
        }
        check_not_nested(items)?;
        let mut targets = Vec::with_capacity(items.len());
        let mut records = Vec::with_capacity(items.len());
        for (n, path) in items.iter().enumerate() {
            let (target, tree) = preflight(path)?;
            if actor != 0 {
                within_reach(path, &target, &tree, actor)?;
            }
            targets.push(target);
            records.push(ItemRecord::from_tree(
                path.clone(),
                format!("{PAYLOAD_DIR}/{n}"),
                tree,
            ));
        }
        let (id, dir) = self.new_record_dir(now)?;
        let payload = dir.create_dir(OsStr::new(PAYLOAD_DIR), 0o700)?;
        let record = QuarantineRecord {
            id,
            time: manifest::rfc3339(now),
            time_unix: manifest::unix_secs(now),
            finding: finding_summary.to_owned(),
            rule,
            state: RecordState::Moving,
            items: records,
            notes: Vec::new(),
            grants_reset: Vec::new(),
        };
        manifest::write(&dir, &record)?;
        Ok(Prepared {
            dir,
            payload,
            record,
            targets,
        })
    }

    /// Every record, oldest first. A record whose manifest cannot be read
    /// is skipped with a warning (`recover` reports it too).
    pub fn list(&self) -> Vec<QuarantineRecord> {
        let names = match self.dir.list() {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the quarantine vault");
                return Vec::new();
            }
        };
        names
            .iter()
            .filter(|n| n.to_str().is_some_and(manifest::valid_id))
            .filter_map(|n| {
                let read = self
                    .dir
                    .open_dir(n)
                    .map_err(ManifestError::from)
                    .and_then(|d| manifest::read(&d));
                match read {
                    Ok(record) => record,
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping an unreadable quarantine record");
                        None
                    }
                }
            })
            .collect()
    }

    /// Add `grants` (each once) to record `id`'s list of privacy grants
    /// its plan reset; the manifest is rewritten atomically. Running it
    /// again after a crash adds nothing twice.
    pub fn note_grants_reset(
        &self,
        id: &str,
        grants: &[crate::model::GrantReset],
    ) -> Result<(), QuarantineError> {
        let (dir, mut record) = self.open_record(id)?;
        let before = record.grants_reset.len();
        for g in grants {
            if !record.grants_reset.contains(g) {
                record.grants_reset.push(g.clone());
            }
        }
        if record.grants_reset.len() != before {
            manifest::write(&dir, &record)?;
        }
        Ok(())
    }

    /// One record by id.
    pub fn get(&self, id: &str) -> Result<QuarantineRecord, QuarantineError> {
        self.open_record(id).map(|(_, record)| record)
    }

    fn open_record(&self, id: &str) -> Result<(SafeDir, QuarantineRecord), QuarantineError> {
        let unknown = || QuarantineError::UnknownId {
            id: id.to_owned(),
            vault: self.path().to_path_buf(),
        };
        if !manifest::valid_id(id) || self.dir.lstat(OsStr::new(id))?.is_none() {
            return Err(unknown());
        }
        let dir = self.dir.open_dir(OsStr::new(id))?;
        let record = manifest::read(&dir)?.ok_or_else(unknown)?;
        Ok((dir, record))
    }

    /// A fresh record directory; `mkdirat` refuses an existing name, so a
    /// colliding id is simply drawn again.
    fn new_record_dir(&self, now: SystemTime) -> Result<(String, SafeDir), QuarantineError> {
        let mut last = None;
        for _ in 0..16 {
            let id = manifest::new_id(now);
            match self.dir.create_dir(OsStr::new(&id), 0o700) {
                Ok(dir) => return Ok((id, dir)),
                Err(e) if e.errno() == Some(Errno::EEXIST) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .unwrap_or_else(|| FsError::Exists {
                path: self.path().to_path_buf(),
            })
            .into())
    }
}

/// Leave a regular, empty, mode-000, root-owned file at `dir` — where a
/// helper's hidden folder was — so the helper cannot recreate the folder.
/// [`Vault::restore`] removes it before putting the folder back. An
/// existing placeholder is fine; anything else there is refused.
pub fn placeholder_block(dir: &Path) -> Result<(), QuarantineError> {
    let (parent, name) = SafeDir::open_parent(dir)?;
    match parent.lstat(&name)? {
        Some(m) if m.is_placeholder() => return Ok(()),
        Some(_) => return Err(QuarantineError::Occupied { path: dir.into() }),
        None => {}
    }
    let file = parent.create_file(&name, 0)?;
    fsops::set_owner_mode(&file, 0, 0, 0, dir)?;
    file.sync_all().map_err(|source| FsError::Io {
        op: "fsync",
        path: dir.into(),
        source,
    })?;
    parent.sync()?;
    Ok(())
}

/// A vault (or state) directory whose final component is a link is named
/// as insecure rather than as a generic refusal.
fn insecure_link(e: FsError, path: &Path) -> QuarantineError {
    match e {
        FsError::Symlink { .. } => QuarantineError::VaultInsecure {
            path: path.into(),
            reason: "it is a symbolic link".into(),
        },
        other => other.into(),
    }
}

fn check_private(dir: &SafeDir, euid: u32) -> Result<fsops::Meta, QuarantineError> {
    let m = dir.stat_self()?;
    let reason = if m.uid != euid {
        Some(format!("it is owned by uid {}, not {euid}", m.uid))
    } else if m.mode & 0o022 != 0 {
        Some(format!(
            "it is writable by group or others (mode {:04o})",
            m.mode
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(QuarantineError::VaultInsecure {
            path: dir.path().into(),
            reason,
        }),
        None => Ok(m),
    }
}

fn check_not_nested(items: &[PathBuf]) -> Result<(), QuarantineError> {
    for (i, a) in items.iter().enumerate() {
        for b in &items[i + 1..] {
            let (outer, inner) = if b.starts_with(a) { (a, b) } else { (b, a) };
            if inner.starts_with(outer) {
                return Err(QuarantineError::Nested {
                    outer: outer.clone(),
                    inner: inner.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Open an item's parent safely and scan it. The item itself being a link
/// is refused too: the finding pointed at a file or folder, and a link
/// there now means the path changed under us — an admin should look.
fn preflight(path: &Path) -> Result<(Target, Vec<fsops::Entry>), QuarantineError> {
    let (parent, name) = SafeDir::open_parent(path)?;
    if parent
        .lstat(&name)?
        .is_some_and(|m| m.kind == EntryKind::Symlink)
    {
        return Err(FsError::Symlink {
            path: path.into(),
            component: path.into(),
        }
        .into());
    }
    let tree = fsops::scan(&parent, &name)?;
    Ok((Target { parent, name }, tree))
}

/// Could `actor` have moved `path` itself? Its folder must let the actor
/// rename in it (the actor's own, or sticky and world-writable, where the
/// sticky bit still limits the actor to its own entries), and every entry
/// of the tree must be the actor's: a root-owned file a user hard-linked
/// into their hidden folder is root's, not theirs.
fn within_reach(
    path: &Path,
    target: &Target,
    tree: &[fsops::Entry],
    actor: u32,
) -> Result<(), QuarantineError> {
    let refuse = |what: String, owner: u32| QuarantineError::OutsideReach {
        path: path.to_path_buf(),
        what,
        owner,
        actor,
    };
    let folder = target.parent.stat_self()?;
    let sticky_shared = folder.mode & 0o1002 == 0o1002;
    if folder.uid != actor && !sticky_shared {
        return Err(refuse(
            format!("its folder {}", target.parent.path().display()),
            folder.uid,
        ));
    }
    if let Some(e) = tree.iter().find(|e| e.meta.uid != actor) {
        let what = if e.path.0.as_os_str().is_empty() {
            "it".to_string()
        } else {
            format!("{} inside it", e.path.0.display())
        };
        return Err(refuse(what, e.meta.uid));
    }
    Ok(())
}

fn partial_name(payload_name: &OsStr) -> OsString {
    let mut p = payload_name.to_os_string();
    p.push(".partial");
    p
}

fn note_leftovers(notes: &mut Vec<String>, moved: Moved) {
    if let Moved::Copied { left_in_place } = moved {
        for p in left_in_place {
            notes.push(format!(
                "left in place (changed after it was copied): {}",
                p.display()
            ));
        }
    }
}

/// What is in the vault is the truth: record it (hashes included). A scan
/// that fails leaves the pre-move record and says so.
fn refresh_from_payload(payload: &SafeDir, record: &mut QuarantineRecord) {
    for item in &mut record.items {
        match fsops::scan(payload, item.payload_name()) {
            Ok(tree) => {
                *item = ItemRecord::from_tree(item.original.0.clone(), item.payload.clone(), tree)
            }
            Err(e) => record
                .notes
                .push(format!("could not re-read {}: {e}", item.payload)),
        }
    }
}

/// Undo a failed quarantine: every item in `tried` whose payload exists
/// (the failing one too — it may have failed after its commit) goes back,
/// then the record says `aborted`, or `failed` if something could not.
fn abort(dir: &SafeDir, payload: &SafeDir, record: &mut QuarantineRecord, tried: &[Target]) {
    let mut ok = true;
    for (n, t) in tried.iter().enumerate() {
        let name = record.items[n].payload_name().to_os_string();
        let partial = restore::restore_partial_name(&record.id, n);
        if let Err(e) = put_back(payload, &name, t, &partial) {
            ok = false;
            record.notes.push(format!(
                "rollback could not put back {}: {e}",
                record.items[n].original.0.display()
            ));
        }
    }
    record.state = if ok {
        RecordState::Aborted
    } else {
        RecordState::Failed
    };
    if let Err(e) = manifest::write(dir, record) {
        tracing::error!(id = %record.id, error = %e, "cannot record a rolled-back quarantine");
    }
}

/// Move `payload/name` back to `t` if it is in the vault. Source entries
/// still there (a cross-filesystem move stopped while removing them) are
/// removed first where they equal the vault copy; anything different
/// blocks the move back rather than being overwritten.
fn put_back(
    payload: &SafeDir,
    name: &OsStr,
    t: &Target,
    partial: &OsStr,
) -> Result<(), QuarantineError> {
    if payload.lstat(name)?.is_none() {
        return Ok(());
    }
    if t.parent.lstat(&t.name)?.is_some() {
        let left = fsops::remove_matching(&t.parent, &t.name, payload, name)?;
        if let Some(path) = left.into_iter().next() {
            return Err(QuarantineError::Occupied { path });
        }
    }
    fsops::move_entry(payload, name, &t.parent, &t.name, partial)?;
    Ok(())
}

#[cfg(test)]
mod tests;
