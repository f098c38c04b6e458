//! From `remediate` findings to ordered plans.
//!
//! One plan per helper: a listener finding and the finding of the plist
//! that starts it describe the same helper, so they are grouped by the
//! helper's program path. The order of steps is the point (issue 3):
//!
//! 1. **bootout** the launchd job first, or KeepAlive respawns what we kill;
//! 2. **terminate** the process tree, identity re-verified before each signal;
//! 3. **quarantine** the plist and the helper's files;
//! 4. **guard** the original paths (and, with `PlaceholderBlock`, put a
//!    mode-000 file where a dedicated hidden folder was);
//! 5. **notify** the logged-in user.
//!
//! Planning reads the file system only to decide *what* to move (is a
//! hidden folder dedicated to the helper?); it changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{
    Finding, FindingKind, GrantReset, PersistenceItem, PersistenceKind, ProcessIdentity, Severity,
    TccService, Verdict, enclosing_bundle,
};

/// One step of a plan. Serialized into the journal, so each variant holds
/// everything needed to run it after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Step {
    /// `launchctl bootout` of the job the plist defines.
    Bootout {
        item: PersistenceItem,
        /// uid of the running helper, for agents whose plist root owns.
        process_uid: Option<u32>,
    },
    /// SIGTERM, grace, SIGKILL of each process tree.
    Terminate { processes: Vec<ProcessIdentity> },
    /// Move these paths into the vault, in one record.
    Quarantine { paths: Vec<PathBuf> },
    /// Keep these paths empty; `placeholder` gets a mode-000 file.
    Guard {
        paths: Vec<PathBuf>,
        placeholder: Option<PathBuf>,
    },
    /// Reset the privacy grants the helper holds — camera, microphone,
    /// screen recording — so a helper restored later (or a copy of it)
    /// must be granted again: `tccutil reset <Service> <bundle id>` in the
    /// session of the user whose TCC.db holds each (as root for the system
    /// database), within the actor's reach (`act::grants`). `kept` says,
    /// one line each, which grants of the helper are not reset and why (a
    /// client TCC knows only by path, another user's database, a name the
    /// helper merely claims). Journals from before this step never hold it.
    ResetGrants {
        grants: Vec<GrantReset>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<String>,
    },
    /// Tell the user who owns the helper what was done (`message`, with
    /// `act::tell::ID_SLOT` for the quarantine id). In monitor mode the
    /// step is only journaled and the person is told `would` instead
    /// (telling is not acting). Journals from before `would` read it empty.
    Notify {
        uid: Option<u32>,
        message: String,
        #[serde(default)]
        would: String,
    },
    /// Something stands again at a guarded path (a reinstall attempt):
    /// move it into the vault again, and put the placeholder back where
    /// one stood. Never part of a judged plan: the guard makes a plan of
    /// this one step (`act::reinstall`).
    Reinstall {
        path: PathBuf,
        /// The plan key the guard protects against.
        guarded_for: String,
        placeholder: bool,
    },
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::Bootout { .. } => "bootout",
            Step::Terminate { .. } => "terminate",
            Step::Quarantine { .. } => "quarantine",
            Step::Guard { .. } => "guard",
            Step::ResetGrants { .. } => "reset_grants",
            Step::Notify { .. } => "notify",
            Step::Reinstall { .. } => "reinstall",
        }
    }

    /// What the step does, in words, for monitor mode's "would do" and
    /// for the journal.
    pub fn describe(&self) -> String {
        match self {
            Step::Bootout { item, .. } => format!(
                "unload launchd job {} ({})",
                item.label.as_deref().unwrap_or("(no label)"),
                item.path.display()
            ),
            Step::Terminate { processes } => format!(
                "terminate {}",
                processes
                    .iter()
                    .map(|p| format!(
                        "pid {} {}",
                        p.pid,
                        p.path
                            .as_deref()
                            .map(|x| x.display().to_string())
                            .unwrap_or_else(|| p.name.clone())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::Quarantine { paths } => format!("quarantine {}", join_paths(paths)),
            Step::Guard { paths, placeholder } => match placeholder {
                Some(p) => format!(
                    "guard {} and block {} with a mode-000 placeholder",
                    join_paths(paths),
                    p.display()
                ),
                None => format!("guard {}", join_paths(paths)),
            },
            Step::ResetGrants { grants, kept } => {
                let mut parts: Vec<String> = grants
                    .iter()
                    .map(|g| {
                        format!(
                            "reset the {} grant of {} for uid {} (tccutil reset {} {})",
                            g.service.json_name(),
                            g.client,
                            g.uid,
                            g.service.tccutil_name().unwrap_or("?"),
                            g.client
                        )
                    })
                    .collect();
                parts.extend(kept.iter().map(|k| format!("not reset: {k}")));
                parts.join("; ")
            }
            Step::Notify { uid, .. } => match uid {
                Some(u) => format!("notify user {u}"),
                None => "log a notice".to_string(),
            },
            Step::Reinstall {
                path, placeholder, ..
            } => {
                let mut s = format!("move re-created {} into quarantine again", path.display());
                if *placeholder {
                    s.push_str(" and put its mode-000 placeholder back");
                }
                s
            }
        }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An ordered remediation of one helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// What identifies the helper across sweeps: its program path (or the
    /// plist path when no program is known). A plan is not made twice for
    /// the same key while the first is in the journal.
    pub key: String,
    /// One line for people: what the helper is.
    pub subject: String,
    pub rule: Option<String>,
    pub severity: Severity,
    pub reasons: Vec<String>,
    pub steps: Vec<Step>,
    /// The uid whose reach bounds every step (0 is root): the owner of the
    /// persistence item that starts the helper (root when root owns one),
    /// else the uid its processes run as. `None` when that cannot be told
    /// (items of two users, or processes of two users, and no root item):
    /// then no step but the notice runs. Journals written before actors
    /// existed read as `None`, so a half-done old plan is never finished
    /// beyond anyone's reach.
    #[serde(default)]
    pub actor: Option<u32>,
    /// It stops something that runs or could run — a process, or a program
    /// that exists — and so counts against the remediation budget
    /// (`budget`). Moving a plist whose program is gone costs nothing.
    #[serde(default)]
    pub costs: bool,
}

/// Options that shape plans, from configuration.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `PlaceholderBlock`: leave a mode-000 file where a dedicated hidden
    /// folder was, so the helper's installer cannot re-create it.
    pub placeholder_block: bool,
    /// Never touch these (the agent's own executable and state dir).
    pub protected: Vec<PathBuf>,
}

/// Plans for every `remediate` finding, one per helper.
pub fn plans(findings: &[Finding], opts: &PlanOptions) -> Vec<Plan> {
    let mut groups: BTreeMap<String, Vec<&Finding>> = BTreeMap::new();
    // Camera findings never plan on their own: a camera session is
    // remediated by containing the flagged helper whose tree it belongs
    // to, and that helper's listener or persistence finding carries the
    // plan (terminating the tree takes the camera user with it).
    for f in findings.iter().filter(|f| {
        f.verdict == Verdict::Remediate
            && matches!(f.kind, FindingKind::Listener | FindingKind::Persistence)
    }) {
        if let Some(key) = key_of(f) {
            groups.entry(key).or_default().push(f);
        }
    }
    // Grants the judge tied to a helper ride on that helper's plan; they
    // never make one.
    let grants: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::CameraGrant && f.grant_holder.is_some())
        .collect();
    groups
        .into_iter()
        .filter_map(|(key, group)| {
            let held: Vec<&Finding> = grants
                .iter()
                .copied()
                .filter(|g| g.grant_holder.as_ref().is_some_and(|h| h.helper == key))
                .collect();
            plan_group(key, &group, &held, opts)
        })
        .collect()
}

/// The helper a finding is about ([`Finding::helper_key`]).
fn key_of(f: &Finding) -> Option<String> {
    f.helper_key()
}

fn plan_group(
    key: String,
    group: &[&Finding],
    grants: &[&Finding],
    opts: &PlanOptions,
) -> Option<Plan> {
    let mut processes: Vec<ProcessIdentity> = Vec::new();
    let mut items: Vec<PersistenceItem> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut severity = Severity::Info;
    let mut rule = None;
    let mut ports: Vec<u16> = Vec::new();
    for f in group {
        severity = severity.max(f.severity);
        rule = rule.or_else(|| f.rule.clone());
        for r in &f.reasons {
            if !reasons.contains(r) {
                reasons.push(r.clone());
            }
        }
        for p in f.processes.iter().chain(f.process.iter()) {
            if !processes.iter().any(|q| q.pid == p.pid) {
                processes.push(p.clone());
            }
        }
        if let Some(l) = &f.listener
            && !ports.contains(&l.port)
        {
            ports.push(l.port);
        }
        if f.kind == FindingKind::Persistence
            && let Some(p) = &f.persistence
        {
            items.push(persistence_item(p));
        }
    }
    // lenscap's own plist (and anything else protected) is never booted
    // out or moved, whatever found it.
    items.retain(|i| movable(&i.path, opts));
    // What to move is the judged program, never the key's process (an
    // interpreter running inline code has nothing on disk to move).
    let program: Option<PathBuf> = group.iter().find_map(|f| f.judged_path.clone());
    let process_uid = processes.first().map(|p| p.uid);
    let actor = actor_of(&items, &processes);
    let costs = !processes.is_empty()
        || program
            .as_deref()
            .is_some_and(|p| p.symlink_metadata().is_ok());

    let mut steps = Vec::new();
    for item in &items {
        if item.kind != PersistenceKind::LoginItem && item.label.is_some() {
            steps.push(Step::Bootout {
                item: item.clone(),
                process_uid,
            });
        }
    }
    if !processes.is_empty() {
        steps.push(Step::Terminate {
            processes: processes.clone(),
        });
    }

    // What to move: each launchd plist, and the helper's own files.
    let mut paths: Vec<PathBuf> = items
        .iter()
        .filter(|i| i.kind != PersistenceKind::LoginItem)
        .map(|i| i.path.clone())
        .collect();
    let mut placeholder = None;
    if let Some(program) = program.as_deref().filter(|p| p.is_absolute()) {
        let (files, hidden_folder) = helper_files(program);
        if opts.placeholder_block {
            placeholder = hidden_folder;
        }
        if !paths.contains(&files) {
            paths.push(files);
        }
    }
    paths.retain(|p| movable(p, opts));
    if !paths.is_empty() {
        steps.push(Step::Quarantine {
            paths: paths.clone(),
        });
        steps.push(Step::Guard { paths, placeholder });
    }
    if steps.is_empty() {
        return None;
    }
    let (resets, kept) = grant_resets(grants, actor);
    if !resets.is_empty() || !kept.is_empty() {
        steps.push(Step::ResetGrants {
            grants: resets,
            kept,
        });
    }

    let name = program
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| key.clone());
    let on = match ports.as_slice() {
        [] => String::new(),
        [p] => format!(" on port {p}"),
        ps => format!(
            " on ports {}",
            ps.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    let subject = format!("{name}{on} ({key})");
    // The person is told of the app in words they know.
    let app = program
        .as_deref()
        .map_or_else(|| name.clone(), super::tell::app_name);
    steps.push(Step::Notify {
        uid: process_uid
            .or_else(|| items.iter().find_map(|i| i.owner_uid))
            .filter(|u| *u != 0),
        message: super::tell::removed(&app, !ports.is_empty()),
        would: super::tell::would_remove(&app, !ports.is_empty()),
    });
    Some(Plan {
        key,
        subject,
        rule,
        severity,
        reasons,
        steps,
        actor,
        costs,
    })
}

/// Which of the grants the judge tied to this helper are reset, and why
/// each other one is not.
///
/// A grant is reset in the session of the owner of the TCC.db it was read
/// from (lstat, no link followed: a user's database is theirs, the system
/// one root's), and only when that owner is within the actor's reach — the
/// actor itself, or any user when root triggered the finding. So a user's
/// helper never makes lenscap reset another user's grants or the system's,
/// and the reset names the row's own bundle id, never a whole service.
/// Clients TCC knows only by path are reported, not reset: `tccutil`
/// resets by bundle id.
fn grant_resets(grants: &[&Finding], actor: Option<u32>) -> (Vec<GrantReset>, Vec<String>) {
    use std::os::unix::fs::MetadataExt;
    let mut resets: Vec<GrantReset> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    for f in grants {
        let (Some(c), Some(holder)) = (&f.camera, &f.grant_holder) else {
            continue;
        };
        let Some(service) = TccService::from_json_name(&c.service) else {
            continue;
        };
        let db = c.database.as_deref();
        let what = format!(
            "the {} grant of {}{}",
            c.service,
            c.client,
            db.map(|d| format!(" in {}", d.display()))
                .unwrap_or_default()
        );
        let why: Option<String> = if service.tccutil_name().is_none() {
            Some("lenscap resets only camera, microphone and screen recording grants".into())
        } else if let Some(keep) = &holder.keep {
            Some(keep.clone())
        } else if c.client_type.as_deref() != Some("bundle_id") {
            Some(
                "TCC knows this client only by its path, and tccutil resets grants by bundle id                  only: remove it in System Settings › Privacy & Security"
                    .into(),
            )
        } else {
            None
        };
        if let Some(why) = why {
            kept.push(format!("{what}: {why}"));
            continue;
        }
        let Some(db) = db else {
            kept.push(format!(
                "{what}: the database it was read from is not known"
            ));
            continue;
        };
        let owner = match std::fs::symlink_metadata(db) {
            Ok(m) if m.file_type().is_file() => m.uid(),
            Ok(_) => {
                kept.push(format!(
                    "{what}: the database is not a regular file, so whose it is cannot be told"
                ));
                continue;
            }
            Err(e) => {
                kept.push(format!("{what}: the database cannot be read ({e})"));
                continue;
            }
        };
        match actor {
            Some(a) if a == 0 || a == owner => {}
            Some(a) => {
                kept.push(format!(
                    "{what}: it is in uid {owner}'s database, outside the reach of uid {a} \
                     whose finding this is"
                ));
                continue;
            }
            // The executor refuses every step of a plan without an actor.
            None => {}
        }
        let reset = GrantReset {
            service,
            client: c.client.clone(),
            uid: owner,
            database: db.to_path_buf(),
        };
        if !resets.contains(&reset) {
            resets.push(reset);
        }
    }
    (resets, kept)
}

/// Who triggered the helper's findings (see [`Plan::actor`]). A root-owned
/// item (`/Library/LaunchAgents`, `/Library/LaunchDaemons`) acts as root
/// whoever its job runs as; a user's item acts as that user.
fn actor_of(items: &[PersistenceItem], processes: &[ProcessIdentity]) -> Option<u32> {
    fn one(uids: &[u32]) -> Option<u32> {
        let first = *uids.first()?;
        uids.iter().all(|&u| u == first).then_some(first)
    }
    // An item whose plist is gone since the sweep names no one: its steps
    // will find nothing to do, and the processes still tell who runs it.
    let owners: Vec<u32> = items.iter().filter_map(|i| i.owner_uid).collect();
    if owners.contains(&0) {
        return Some(0);
    }
    if !owners.is_empty() {
        return one(&owners);
    }
    let uids: Vec<u32> = processes.iter().map(|p| p.uid).collect();
    one(&uids)
}

/// A persistence finding carries a [`crate::model::PersistenceRef`]; the
/// bootout step needs the item's kind, label and owner. The owner is read
/// back from the plist file (lstat, no link followed).
fn persistence_item(p: &crate::model::PersistenceRef) -> PersistenceItem {
    use std::os::unix::fs::MetadataExt;
    let owner_uid = std::fs::symlink_metadata(&p.path).ok().map(|m| m.uid());
    PersistenceItem {
        kind: p.kind,
        path: p.path.clone(),
        label: p.label.clone(),
        program: p.program.clone(),
        args: Vec::new(),
        run_at_load: false,
        keep_alive: false,
        sockets: Vec::new(),
        associated_bundle_ids: Vec::new(),
        owner_uid,
        parent_identifier: None,
        developer: None,
        disposition: None,
    }
}

/// The files that make up a helper, and the hidden folder dedicated to it
/// if there is one.
///
/// The helper's unit is its enclosing app bundle, else its executable.
/// Going up from there, a hidden folder (`~/.zoomus`) whose only entry is
/// what we came from is dedicated to the helper: moving it is the
/// community's `rm -rf ~/.zoomus`, and a placeholder can stand in its
/// place. A hidden folder holding anything else (`~/.local`) is shared and
/// is never moved whole.
pub fn helper_files(program: &Path) -> (PathBuf, Option<PathBuf>) {
    let mut unit = enclosing_bundle(program).unwrap_or_else(|| program.to_path_buf());
    let mut hidden = None;
    while let Some(parent) = unit.parent() {
        let is_hidden = parent
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') && n.len() > 1);
        if !is_hidden || !only_entry_is(parent, &unit) {
            break;
        }
        unit = parent.to_path_buf();
        hidden = Some(unit.clone());
    }
    (unit, hidden)
}

/// Is `child` the one and only entry of `dir`? (lstat-free: read_dir does
/// not follow links, and a link here simply makes the answer "no".)
fn only_entry_is(dir: &Path, child: &Path) -> bool {
    let Ok(meta) = dir.symlink_metadata() else {
        return false;
    };
    if !meta.is_dir() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let names: Vec<_> = entries.flatten().map(|e| e.file_name()).take(2).collect();
    names.len() == 1 && Some(names[0].as_os_str()) == child.file_name()
}

fn movable(path: &Path, opts: &PlanOptions) -> bool {
    if !path.is_absolute() || path.parent().is_none() {
        return false;
    }
    if crate::model::never_moved(path) {
        return false;
    }
    !opts
        .protected
        .iter()
        .any(|p| path.starts_with(p) || p.starts_with(path))
}

#[cfg(test)]
mod tests;
