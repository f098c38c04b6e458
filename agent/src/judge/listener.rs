//! Judging one listener: gather the facts about its owning process, the
//! persistence that starts it and its probe, in the order DESIGN.md §2
//! lists the criteria, then let [`verdict::decide`] conclude.

use std::path::Path;

use super::correlate::Links;
use super::helper;
use super::heuristics::{self, Reach};
use super::items::ItemFacts;
use super::locate;
use super::subject::Subject;
use super::verdict::{self, Facts};
use super::{Observations, Policy, rules};
use crate::model::{Finding, FindingKind, ListenerRef, PersistenceRef, ProcessIdentity};

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
    // 2. Trusted? (Admin rules come in the verdict.)
    let exe = primary.and_then(|p| p.path.as_deref());
    let script = primary.and_then(|p| {
        p.path
            .as_deref()
            .and_then(|exe| heuristics::script_arg(exe, &p.args))
    });
    let (trusted, why) = heuristics::trust(primary, script);
    reasons.push(why);
    // 3. A helper?
    let (helper, why) = match primary {
        Some(p) => helper::helper(p, my_links, obs),
        None => (false, vec!["who started it is unknown".to_string()]),
    };
    reasons.extend(why);
    // 4. Undisclosed?
    let claimed = my_links.iter().any(|k| items[k.item].claimed_by_app);
    let mut traits: Vec<String> = Vec::new();
    match exe {
        Some(exe) => {
            let place = locate::program_place(exe, policy, &obs.home_dirs);
            traits.extend(place.traits(claimed));
            if let (Some(why), true) = (&place.disclosed, traits.is_empty()) {
                reasons.push(why.clone());
            }
        }
        None if primary.is_some() => {
            reasons.push("its executable's path could not be read".into());
        }
        None => {}
    }
    if let Some(s) = script {
        traits.extend(locate::script_traits(s, policy, &obs.home_dirs));
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

    // Identity for rules and the catalog.
    let mut subject = Subject {
        ports: vec![l.port],
        ..Subject::default()
    };
    if let Some(p) = primary {
        subject = subject.with_process(p);
    }
    subject.other_paths.extend(script);
    for link in my_links {
        let item = &obs.persistence[link.item];
        subject.labels.extend(item.label.as_deref());
        if item.kind == crate::model::PersistenceKind::LoginItem {
            subject.other_paths.push(&item.path);
        }
    }
    let rule = rules::decide(&policy.rules, &subject);
    let installed = installed_app(policy, obs);
    let catalog = policy.catalog.find(&subject, &installed);
    if catalog.is_none() {
        reasons.extend(policy.catalog.port_only_note(&[l.port]));
    }

    // The never-list, and "nothing to act on".
    let primary_pid = primary.map(|p| p.pid);
    let mut blocked: Vec<String> = owners
        .iter()
        .filter_map(|p| {
            let why = helper::protected(p, obs)?;
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
    blocked.dedup();
    if owners.is_empty() {
        blocked.push("no owning process could be seen, so there is nothing to act on".into());
    }
    let mut aggravating = if reach == Reach::Yes {
        heuristics::aggravating_probe(probe)
    } else {
        Vec::new()
    };
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
            super::actor::listener_outside_reach(&items, p, &owners, obs)
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
        },
        reach,
        wanted,
    }
}
