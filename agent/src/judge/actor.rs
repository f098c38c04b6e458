//! The actor rule (docs/design.md §4): every action has an actor — whoever owns
//! what triggered the finding — and may touch only what that actor could
//! have touched itself.
//!
//! - A persistence item's actor is the owner of the plist (or the login
//!   item's user); a root-owned plist (`/Library/LaunchAgents`) acts as
//!   root, whoever its job runs as.
//! - A listener's actor is the owner of the persistence item that starts
//!   it (root wins when several do), else the uid of its process.
//!
//! A non-root actor's finding that names a program, script, bundle or
//! process owned by someone else is out of reach: a user's plist labelled
//! `ZoomOpener` whose `Program` is root's binary would otherwise get root's
//! binary quarantined and root's process killed. The judge sees owners as
//! observe read them (`Observations::path_owners`, lstat); `act` checks
//! again on descriptors right before each step, so a swap after the sweep
//! gains nothing.
//!
//! An interpreter is never a target (the script it runs is), so a user's
//! agent running `/usr/bin/python3 ~/.x/serve.py` stays within reach.

use std::path::Path;

use super::Observations;
use super::heuristics::{is_interpreter, script_arg};
use crate::model::{PersistenceItem, ProcessIdentity, enclosing_bundle};

/// The paths a plan would move for a program run with `args`: the script
/// when an interpreter runs one, else the program and its bundle. Inline
/// code (`python3 -c`) names no file but the plist.
pub(crate) fn targets<'a>(
    program: &'a Path,
    args: &'a [String],
) -> Vec<std::borrow::Cow<'a, Path>> {
    use std::borrow::Cow;
    if is_interpreter(program) {
        return script_arg(program, args)
            .map(|s| vec![Cow::Borrowed(s)])
            .unwrap_or_default();
    }
    let mut out = vec![Cow::Borrowed(program)];
    out.extend(enclosing_bundle(program).map(Cow::Owned));
    out
}

fn who(uid: u32) -> String {
    if uid == 0 {
        "root".to_string()
    } else {
        format!("uid {uid}")
    }
}

/// What `actor` names that it does not own. Empty for root (whose reach
/// is everything but the never-list) and when the actor is unknown (act
/// then refuses on its own).
fn outside(
    actor: Option<u32>,
    whose: &str,
    paths: &[&Path],
    processes: &[&ProcessIdentity],
    obs: &Observations,
) -> Vec<String> {
    let Some(actor) = actor.filter(|&a| a != 0) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for path in paths.iter().filter(|p| !crate::model::never_moved(p)) {
        if let Some(&owner) = obs.path_owners.get(*path)
            && owner != actor
        {
            out.push(format!(
                "{whose} belongs to {}, but it names {}, which belongs to {}",
                who(actor),
                path.display(),
                who(owner)
            ));
        }
    }
    for p in processes {
        if p.uid != actor {
            out.push(format!(
                "{whose} belongs to {}, but the process {} (pid {}) runs as {}",
                who(actor),
                p.name,
                p.pid,
                who(p.uid)
            ));
        }
    }
    out
}

/// A persistence item: its owner against its program (or script) and the
/// processes it runs.
pub(crate) fn item_outside_reach(
    item: &PersistenceItem,
    running: &[&ProcessIdentity],
    obs: &Observations,
) -> Vec<String> {
    let targets = item
        .program
        .as_deref()
        .map(|p| targets(p, &item.args))
        .unwrap_or_default();
    let paths: Vec<&Path> = targets.iter().map(AsRef::as_ref).collect();
    outside(item.owner_uid, "the plist", &paths, running, obs)
}

/// The actor of a listener: the owner of a persistence item that starts
/// it (root first), else its process's uid.
pub(crate) fn listener_actor(items: &[&PersistenceItem], primary: &ProcessIdentity) -> Option<u32> {
    let owners: Vec<Option<u32>> = items.iter().map(|i| i.owner_uid).collect();
    if owners.contains(&Some(0)) {
        return Some(0);
    }
    match owners.first() {
        Some(owner) => *owner,
        None => Some(primary.uid),
    }
}

/// A listener: its actor against its program (or script) and owners.
pub(crate) fn listener_outside_reach(
    items: &[&PersistenceItem],
    primary: &ProcessIdentity,
    owners: &[&ProcessIdentity],
    obs: &Observations,
) -> Vec<String> {
    let actor = listener_actor(items, primary);
    let targets = primary
        .path
        .as_deref()
        .map(|p| targets(p, &primary.args))
        .unwrap_or_default();
    let paths: Vec<&Path> = targets.iter().map(AsRef::as_ref).collect();
    // launchd (pid 1) co-holds a socket-activated job's socket; it is
    // never signalled (never-list), so it is not the actor's to reach.
    let procs: Vec<&ProcessIdentity> = owners.iter().copied().filter(|p| p.pid != 1).collect();
    let whose = if items.is_empty() {
        "the process"
    } else {
        "the plist that starts it"
    };
    outside(actor, whose, &paths, &procs, obs)
}

/// A user's plist cannot start a process that runs as someone else
/// (launchd runs a user's agent as that user). A link from one claims
/// what it cannot have done: correlate ignores it, so a user cannot make
/// root's or another user's server look like their helper.
pub(crate) fn could_start(item: &PersistenceItem, p: &ProcessIdentity) -> bool {
    match item.owner_uid {
        Some(owner) if owner != 0 => p.uid == owner,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::testkit::*;

    fn owned(obs: &mut Observations, path: &str, uid: u32) {
        obs.path_owners.insert(path.into(), uid);
    }

    #[test]
    fn a_users_plist_naming_roots_program_is_out_of_reach() {
        let mut obs = observations();
        let item = launch_agent(
            "/Users/ann/Library/LaunchAgents/ZoomOpener.plist",
            "ZoomOpener",
            "/usr/local/libexec/rootd",
        );
        owned(&mut obs, "/usr/local/libexec/rootd", 0);
        let out = item_outside_reach(&item, &[], &obs);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].contains("belongs to root"), "{out:?}");
        // Root's process, run by nobody's plist: also out of reach.
        let mut root = process(700, 1, "/usr/local/libexec/rootd", "rootd");
        root.uid = 0;
        let out = item_outside_reach(&item, &[&root], &obs);
        assert_eq!(out.len(), 2, "{out:?}");
    }

    #[test]
    fn the_users_own_program_and_process_are_in_reach() {
        let mut obs = observations();
        let exe = "/Users/ann/.acme/helper";
        let item = launch_agent("/Users/ann/Library/LaunchAgents/a.plist", "a", exe);
        owned(&mut obs, exe, 501);
        let p = process(700, 1, exe, "helper");
        assert!(item_outside_reach(&item, &[&p], &obs).is_empty());
        // Unknown owner: not the judge's call (act checks on descriptors).
        let item = launch_agent("/Users/ann/Library/LaunchAgents/b.plist", "b", "/nowhere");
        assert!(item_outside_reach(&item, &[], &obs).is_empty());
    }

    #[test]
    fn an_interpreter_is_never_a_target_its_script_is() {
        let mut obs = observations();
        let mut item = launch_agent(
            "/Users/ann/Library/LaunchAgents/py.plist",
            "py",
            "/usr/bin/python3",
        );
        item.args = vec!["/usr/bin/python3".into(), "/Users/ann/.x/serve.py".into()];
        owned(&mut obs, "/usr/bin/python3", 0);
        owned(&mut obs, "/Users/ann/.x/serve.py", 501);
        assert!(item_outside_reach(&item, &[], &obs).is_empty());
        // Root's script run through a user's plist is not the user's.
        owned(&mut obs, "/Users/ann/.x/serve.py", 0);
        assert_eq!(item_outside_reach(&item, &[], &obs).len(), 1);
    }

    #[test]
    fn a_root_plist_acts_as_root() {
        let mut obs = observations();
        let mut item = launch_agent("/Library/LaunchAgents/v.plist", "v", "/opt/v/.h/helper");
        item.owner_uid = Some(0);
        owned(&mut obs, "/opt/v/.h/helper", 0);
        let p = process(700, 1, "/opt/v/.h/helper", "helper");
        assert!(item_outside_reach(&item, &[&p], &obs).is_empty());
        assert_eq!(listener_actor(&[&item], &p), Some(0));
        assert!(listener_outside_reach(&[&item], &p, &[&p], &obs).is_empty());
    }

    #[test]
    fn a_users_plist_cannot_claim_another_users_process() {
        let item = launch_agent("/Users/ann/Library/LaunchAgents/a.plist", "a", "/x");
        let mut p = process(700, 1, "/x", "x");
        assert!(could_start(&item, &p));
        p.uid = 0;
        assert!(!could_start(&item, &p));
        p.uid = 502;
        assert!(!could_start(&item, &p));
        let mut system = item.clone();
        system.owner_uid = Some(0);
        assert!(could_start(&system, &p));
    }

    #[test]
    fn a_listener_without_persistence_is_its_process_owners() {
        let mut obs = observations();
        let p = process(700, 1, "/Users/ann/.h/helper", "helper");
        owned(&mut obs, "/Users/ann/.h/helper", 501);
        assert_eq!(listener_actor(&[], &p), Some(501));
        assert!(listener_outside_reach(&[], &p, &[&p], &obs).is_empty());
        owned(&mut obs, "/Users/ann/.h/helper", 0);
        assert_eq!(listener_outside_reach(&[], &p, &[&p], &obs).len(), 1);
    }
}
