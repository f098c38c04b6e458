//! Starting again after damage: a corrupt outbox is moved aside (kept for
//! a person to look at, never deleted) and a new one continues the
//! sequence above anything the old one may have used, with a health event
//! saying what happened. Also the sequence high-water mark that makes that
//! continuation possible when the damaged file cannot even say its last
//! seq.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use lenscap_events::{Body, Host, Mode};

use super::error::OutboxError;
use super::store::{self, sibling};
use super::{FILE_NAME, Outbox, SEQ_FILE};

/// What [`open_or_recover`] did about a damaged outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where the damaged file now is.
    pub moved_to: PathBuf,
    /// What was wrong with it.
    pub detail: String,
    /// The seq of the health event that starts the new chain.
    pub first_seq: u64,
}

/// Open the outbox; if it is damaged, move it (with its `-wal` and `-shm`)
/// to `outbox.sqlite.corrupt-<unix seconds>`, open a new one and append an
/// `outbox_full` health event recording the loss — the wire format has no
/// status of its own for this; the message says what happened. Any other
/// error is returned as it is.
pub fn open_or_recover(
    state_dir: &Path,
    host: Host,
    agent_version: &str,
    max_bytes: u64,
    mode: Mode,
) -> Result<(Outbox, Option<Recovery>), OutboxError> {
    let detail = match Outbox::open(state_dir, host.clone(), agent_version, max_bytes) {
        Ok(outbox) => return Ok((outbox, None)),
        Err(OutboxError::Corrupt { detail, .. }) => detail,
        Err(e) => return Err(e),
    };
    let path = state_dir.join(FILE_NAME);
    let seq_file = state_dir.join(SEQ_FILE);
    // The new chain must start above every seq the old file handed out.
    let reserved = read_reserved(&seq_file)?;
    let last = store::salvage_last_seq(&path).max(reserved);
    if last > reserved {
        write_reserved(&seq_file, last)?;
    }
    let moved_to = move_aside(&path)?;
    tracing::error!(
        path = %path.display(),
        moved_to = %moved_to.display(),
        %detail,
        "outbox was damaged; moved aside, starting a new chain"
    );
    let mut outbox = Outbox::open(state_dir, host, agent_version, max_bytes)?;
    let body = recovered_event(&moved_to, &detail, last, max_bytes);
    let event = outbox.append(mode, &body)?;
    Ok((
        outbox,
        Some(Recovery {
            moved_to,
            detail,
            first_seq: event.seq,
        }),
    ))
}

fn recovered_event(moved_to: &Path, detail: &str, last: u64, max_bytes: u64) -> Body {
    let mut body = crate::report::convert::outbox_full(0, 0, max_bytes, 0);
    if let Body::AgentHealth(h) = &mut body {
        h.message = format!(
            "Outbox was damaged ({detail}) and moved aside to {}; a new chain starts here. Events up to seq {last} that were not uploaded are lost and show as a gap",
            moved_to.display()
        );
    }
    body
}

/// Rename the database and its `-wal`/`-shm` to `<name>.corrupt-<secs>`
/// (`-<secs>-<n>` if that exists), then make the renames durable.
fn move_aside(path: &Path) -> Result<PathBuf, OutboxError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut target = sibling(path, &format!(".corrupt-{secs}"));
    let mut n = 1;
    while fs::symlink_metadata(&target).is_ok() {
        target = sibling(path, &format!(".corrupt-{secs}-{n}"));
        n += 1;
    }
    for suffix in ["-wal", "-shm"] {
        let from = sibling(path, suffix);
        if fs::symlink_metadata(&from).is_ok() {
            let to = sibling(&target, suffix);
            fs::rename(&from, &to).map_err(|e| OutboxError::io(&from, e))?;
        }
    }
    fs::rename(path, &target).map_err(|e| OutboxError::io(path, e))?;
    store::sync_dir(path)?;
    Ok(target)
}

/// The sequence high-water mark in `outbox.seq` (`reserved N`); 0 when
/// there is none. A file that does not read as one is an error: guessing
/// low could hand out a seq twice.
pub(crate) fn read_reserved(path: &Path) -> Result<u64, OutboxError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(OutboxError::io(path, e)),
    };
    text.trim()
        .strip_prefix("reserved ")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| OutboxError::SeqMark {
            path: path.to_path_buf(),
            found: text.chars().take(40).collect(),
        })
}

pub(crate) fn write_reserved(path: &Path, mark: u64) -> Result<(), OutboxError> {
    store::write_atomic(path, format!("reserved {mark}\n").as_bytes())
}
