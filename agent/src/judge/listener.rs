//! Judging one listener: gather the facts about its owning process, the
//! persistence that starts it and its probe, in the order docs/design.md §2
//! lists the criteria, then let [`verdict::decide`] conclude.

use std::path::Path;

use super::correlate::{self, Links};
use super::helper;
use super::heuristics::{self, Code, Reach};
use super::items::ItemFacts;
use super::locate::{self, Context, Place};
use super::subject::Subject;
use super::verdict::{self, Facts};
use super::{Observations, Policy, rules};
use crate::model::{
    Finding, FindingKind, ListenerRef, PersistenceKind, PersistenceRef, ProcessIdentity,
};

/// A judged listener, with the facts persistence items inherit from it.
#[derive(Debug, Clone)]
pub(crate) struct Judged {
    pub finding: Finding,
    pub reach: Reach,
    /// The verdict before the never-list (see `verdict::Outcome::wanted`).
    pub wanted: crate::model::Verdict,
}

/// Is `outer` (an app that embeds a catalog helper) installed?
pub(crate) fn installed_app(
    policy: &Policy,
    obs: &Observations,
) -> impl Fn(&Path, &super::catalog::CatalogEntry) -> bool {
    move |outer, entry| {
        let in_app_dir = policy.application_dirs.containing(outer).is_some();
        let exists = obs.existing_paths.contains(outer);
        let parent_installed = entry.parent_bundle_ids.iter().any(|id| {
            obs.installed_bundle_ids
                .iter()
                .any(|i| i.eq_ignore_ascii_case(id))
        });
        in_app_dir && (exists || parent_installed)
    }
}

pub(crate) fn judge_listener(
    policy: &Policy,
    obs: &Observations,
    links: &Links,
    items: &[ItemFacts],
    li: usize,
) -> Judged {
    let l = &obs.listeners[li];
    let owners: Vec<&ProcessIdentity> = l
        .pids
        .iter()
        .filter_map(|pid| obs.processes.get(pid))
        .collect();
    // launchd (pid 1) holds a socket-activated job's socket next to the
    // job: the job is the one to judge.
    let primary = owners
        .iter()
        .find(|p| p.pid != 1)
        .or(owners.first())
        .copied();
    let probe = obs.probes.get(&(l.address, l.port));
    let my_links = &links.listener_items[li];

    // 1. Web-reachable?
    let (reach, mut reasons) = heuristics::web_reach(l, probe);
    if owners.is_empty() {
        reasons.push(format!(
            "the process holding it could not be seen (pids {:?}): another namespace, or \
             lenscap lacks the privilege",
            l.pids
        ));
    }
    // 2. Trusted? (Admin rules come in the verdict.) An interpreter is
    // judged by what it runs.
    let exe = primary.and_then(|p| p.path.as_deref());
    let code_of = |p| heuristics::process_code(p, policy, &obs.home_dirs);
    let (code, named) = primary.map_or((Code::Own, None), code_of);
    reasons.extend(named);
    let (trusted, why) = heuristics::trust(primary, code);
    reasons.push(why);
    // 3. A helper?
    let (helper, why) = match primary {
        Some(p) => helper::helper(p, my_links, obs),
        None => (false, vec!["who started it is unknown".to_string()]),
    };
    reasons.extend(why);
    // 4. Undisclosed? Judged on the program that runs: the executable, the
    // script an interpreter runs, or the plist that hands it inline code.
    let persistent = !my_links.is_empty();
    let ctx = Context {
        homes: &obs.home_dirs,
        translocated: &obs.translocated,
        persistent,
    };
    let claimed = my_links.iter().any(|k| items[k.item].claimed_by_app);
    // Inline code is the plist's only when the plist starts the
    // interpreter itself: an interpreter that merely shares a socket with
    // what a plist started runs code the plist never wrote.
    let starts_itself = |p: &ProcessIdentity| {
        my_links.iter().any(|k| {
            let item = &obs.persistence[k.item];
            item.kind != PersistenceKind::LoginItem && correlate::starts_directly(item, p, l.port)
        })
    };
    // The plist that holds the inline code an interpreter runs (only
    // inline code is judged by its plist).
    let plist = primary
        .filter(|_| code == Code::Inline)
        .and_then(|p| {
            my_links.iter().map(|k| &obs.persistence[k.item]).find(|i| {
                i.kind != PersistenceKind::LoginItem && correlate::starts_directly(i, p, l.port)
            })
        })
        .map(|i| i.path.as_path());
    let judged: Option<(String, Place)> = match (exe, code) {
        (Some(exe), Code::Own) => Some((String::new(), locate::program_place(exe, policy, &ctx))),
        (Some(exe), Code::Script(script)) => {
            reasons.push(format!(
                "{} is an interpreter: the script {} is what runs, so the script is judged, not \
                 the interpreter",
                exe.display(),
                script.display()
            ));
            Some((
                format!("the script {} it runs: ", script.display()),
                locate::script_place(script, policy, &ctx),
            ))
        }
        (Some(exe), Code::Inline) => match plist {
            Some(plist) => {
                reasons.push(format!(
                    "{} runs code handed to it on its command line by {}: what runs is written \
                     in that plist, so the plist is judged, not the interpreter",
                    exe.display(),
                    plist.display()
                ));
                Some((
                    format!("its plist {}: ", plist.display()),
                    locate::program_place(plist, policy, &ctx),
                ))
            }
            // Nothing on disk holds the code: the interpreter's location
            // is all there is to judge (it is never moved).
            None => Some((String::new(), locate::program_place(exe, policy, &ctx))),
        },
        (None, _) => None,
    };
    let mut traits: Vec<String> = Vec::new();
    match &judged {
        Some((prefix, place)) => {
            reasons.extend(place.notes.iter().cloned());
            traits.extend(
                place
                    .traits(claimed)
                    .into_iter()
                    .map(|t| format!("{prefix}{t}")),
            );
            if let (Some(why), true) = (&place.disclosed, traits.is_empty()) {
                reasons.push(format!("{prefix}{why}"));
            }
        }
        None if primary.is_some() => {
            reasons.push("its executable's path could not be read".into());
        }
        None => {}
    }
    for link in my_links {
        for t in &items[link.item].association_traits {
            if !traits.contains(t) {
                traits.push(t.clone());
            }
        }
    }
    if traits.is_empty() && primary.is_some() {
        reasons.push("nothing about where it lives or what installed it is undisclosed".into());
    }
    reasons.extend(traits.iter().cloned());
    // What remediation would move: never an interpreter.
    let judged_path = heuristics::judged_path(exe, code, plist);

    // Identity for rules and the catalog: the program that runs, never an
    // interpreter's path or signature.
    let mut subject = Subject {
        ports: vec![l.port],
        ..Subject::default()
    };
    if code == Code::Inline {
        subject.program = plist;
    }
    if let Some(p) = primary {
        subject = subject.with_process(p, code);
    }
    for link in my_links {
        let item = &obs.persistence[link.item];
        subject.labels.extend(item.label.as_deref());
        if item.kind == PersistenceKind::LoginItem {
            subject.other_paths.push(&item.path);
        }
    }
    reasons.extend(rules::unvouched(&policy.rules, &subject));
    let rule = rules::decide(&policy.rules, &subject);
    let installed = installed_app(policy, obs);
    let catalog = policy.catalog.find(&subject, &installed);
    if catalog.is_none() {
        reasons.extend(policy.catalog.port_only_note(&[l.port]));
    }
    // Names alone prove nothing of a known-risky program either: only a
    // match with evidence (where it lives, a valid signature) counts.
    let risky = policy
        .catalog
        .find_risky(&subject, &installed)
        .filter(|h| !h.claims_only);
    // Benign only when nothing in the catalog speaks against it.
    let benign = match (&catalog, &risky) {
        (None, None) => policy.catalog.benign(&subject),
        _ => None,
    };
    reasons.extend(benign.iter().cloned());
    if let Some(hit) = &risky {
        reasons.extend(hit.reasons.iter().cloned());
    }

    // The never-list, and "nothing to act on".
    let primary_pid = primary.map(|p| p.pid);
    let mut blocked: Vec<String> = owners
        .iter()
        .filter_map(|p| {
            let code = code_of(p).0;
            // Inline code vouches for a process only when a plist handed
            // it that code, i.e. started that very process.
            let handed = persistent && (code != Code::Inline || starts_itself(p));
            let why = helper::protected_running(p, obs, code, handed)?;
            Some(if Some(p.pid) == primary_pid {
                why
            } else {
                format!("{} (pid {}) holds the socket too: {why}", p.name, p.pid)
            })
        })
        .collect();
    // By pid alone, even when the identity could not be read.
    for &pid in &l.pids {
        let why = match pid {
            0 => Some("the kernel (pid 0) holds it"),
            1 => Some("launchd (pid 1) holds it"),
            p if p == obs.agent_pid && p != 0 => Some("lenscap itself holds it"),
            _ => None,
        };
        if let Some(why) = why.filter(|_| !obs.processes.contains_key(&pid)) {
            blocked.push(why.to_string());
        }
    }
    // Inline code that a `/System` plist hands an interpreter is macOS's.
    if code == Code::Inline
        && let Some(plist) = judged_path.as_deref().filter(|p| locate::is_system(p))
    {
        blocked.push(format!(
            "the code it runs is written in {}, part of macOS (/System)",
            plist.display()
        ));
    }
    blocked.dedup();
    if owners.is_empty() {
        blocked.push("no owning process could be seen, so there is nothing to act on".into());
    }
    let mut aggravating = if reach == Reach::Yes {
        let mut a = heuristics::aggravating_probe(probe);
        a.extend(heuristics::aggravating_scope(l.scope));
        a
    } else {
        Vec::new()
    };
    if let (Some(hit), Reach::Yes) = (&risky, reach) {
        aggravating.push(format!(
            "it is {}, whose local server had a published flaw a web page could use",
            hit.name
        ));
    }
    for link in my_links {
        if let Some(a) = heuristics::aggravating_item(&obs.persistence[link.item])
            && !aggravating.contains(&a)
        {
            aggravating.push(a);
        }
    }
    // The actor rule: what it names must be its actor's to touch.
    let misuse = match primary {
        Some(p) => {
            let items: Vec<&crate::model::PersistenceItem> =
                my_links.iter().map(|k| &obs.persistence[k.item]).collect();
            super::actor::listener_outside_reach(&items, p, judged_path.as_deref(), &owners, obs)
        }
        None => Vec::new(),
    };
    let facts = Facts {
        misuse,
        trusted,
        helper,
        undisclosed: !traits.is_empty(),
        rule,
        catalog,
        benign,
        serving: reach == Reach::Yes,
        blocked,
        aggravating,
        ..Facts::new(reach)
    };
    let outcome = verdict::decide(&facts);
    let wanted = outcome.wanted;
    reasons.extend(outcome.reasons);

    let persistence = my_links.first().map(|k| {
        let item = &obs.persistence[k.item];
        PersistenceRef {
            kind: item.kind,
            path: item.path.clone(),
            label: item.label.clone(),
            program: item.program.clone(),
        }
    });
    Judged {
        finding: Finding {
            kind: FindingKind::Listener,
            verdict: outcome.verdict,
            severity: outcome.severity,
            reasons,
            rule: outcome.rule,
            process: primary.cloned(),
            processes: owners.into_iter().cloned().collect(),
            listener: Some(ListenerRef {
                address: l.address,
                port: l.port,
                scope: l.scope,
            }),
            persistence,
            http: probe.cloned(),
            camera: None,
            judged_path,
            grant_holder: None,
        },
        reach,
        wanted,
    }
}
