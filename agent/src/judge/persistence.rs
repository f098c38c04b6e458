//! Judging one persistence item (LaunchAgent, LaunchDaemon, login item).
//!
//! A persistence item is judged by what it starts: when a listener it
//! starts was judged, the item takes the strongest of those verdicts
//! (removing the item is how a remediated helper stays gone). When nothing
//! it starts is running we cannot probe, so only identity and traits are
//! left: a catalog match is remediated; an undisclosed item that starts by
//! itself is reported, saying there is no HTTP evidence; otherwise allow.

use super::correlate::{Links, describe_item};
use super::helper;
use super::heuristics::{self, Reach};
use super::items::ItemFacts;
use super::listener::{Judged, installed_app};
use super::subject::Subject;
use super::verdict::{self, Facts};
use super::{Observations, Policy, locate, rules};
use crate::model::{
    Finding, FindingKind, PersistenceKind, PersistenceRef, ProcessIdentity, Verdict,
};

pub(crate) fn judge_item(
    policy: &Policy,
    obs: &Observations,
    links: &Links,
    facts: &ItemFacts,
    listeners: &[Judged],
    ii: usize,
) -> Finding {
    let item = &obs.persistence[ii];
    let running: Vec<&ProcessIdentity> = links.item_pids[ii]
        .iter()
        .filter_map(|pid| obs.processes.get(pid))
        .collect();
    let started = &links.item_listeners[ii];

    let mut reasons = vec![match &item.program {
        Some(p) => format!("{} runs {}", describe_item(item), p.display()),
        None => format!("{} names no program", describe_item(item)),
    }];
    reasons.extend(facts.notes.iter().cloned());
    reasons.extend(facts.disclosed.iter().cloned());
    let traits = facts.traits();
    reasons.extend(traits.iter().cloned());
    reasons.extend(facts.program_missing.iter().cloned());

    // What runs, judged: the running program (an interpreter by the
    // script or inline code it runs), else what the item names.
    let code_of = |p| heuristics::process_code(p, policy, &obs.home_dirs).0;
    let plist = Some(item.path.as_path()).filter(|_| item.kind != PersistenceKind::LoginItem);
    let judged_path = match running.first() {
        Some(p) if p.path.is_some() => {
            heuristics::judged_path(p.path.as_deref(), code_of(p), plist)
        }
        _ => facts.judged_path.clone(),
    };

    // Identity for rules and the catalog: the program judged and the
    // item, plus the running program's signature when one is running
    // (never an interpreter's).
    let mut subject = Subject {
        program: facts.judged_path.as_deref(),
        other_paths: vec![item.path.as_path()],
        ..Subject::default()
    }
    .with_item(item);
    if let Some(p) = running.first() {
        subject = subject.with_process(p, code_of(p));
    }
    subject.ports.extend(
        item.sockets
            .iter()
            .filter_map(|s| s.service.as_deref()?.parse::<u16>().ok()),
    );
    subject
        .ports
        .extend(started.iter().map(|&li| obs.listeners[li].port));
    reasons.extend(rules::unvouched(&policy.rules, &subject));
    let rule = rules::decide(&policy.rules, &subject);
    let installed = installed_app(policy, obs);
    let catalog = policy.catalog.find(&subject, &installed);

    // What it starts.
    let mut inherited: Option<(Verdict, String)> = None;
    let mut serving = false;
    let mut aggravating: Vec<String> = heuristics::aggravating_item(item).into_iter().collect();
    for &li in started {
        let judged = &listeners[li];
        let f = &judged.finding;
        serving |= judged.reach == Reach::Yes;
        let endpoint = f
            .listener
            .as_ref()
            .map_or_else(String::new, |l| format!("{}:{}", l.address, l.port));
        let why = if judged.wanted == f.verdict {
            format!(
                "it starts the listener on {endpoint}, judged {}",
                verdict_word(f.verdict)
            )
        } else {
            format!(
                "it starts the listener on {endpoint}, judged {} only because of that \
                 listener's never-list (it would be {}); this item is checked against the \
                 never-list on its own",
                verdict_word(f.verdict),
                verdict_word(judged.wanted)
            )
        };
        reasons.push(why);
        if inherited.as_ref().is_none_or(|(v, _)| judged.wanted > *v) {
            let conclusion = format!(
                "an item is as bad as what it starts: {}",
                verdict_word(judged.wanted)
            );
            inherited = Some((judged.wanted, conclusion));
        }
        if judged.reach == Reach::Yes {
            let scope = f.listener.as_ref().map(|l| l.scope);
            let probe = heuristics::aggravating_probe(f.http.as_ref());
            for a in probe
                .into_iter()
                .chain(scope.and_then(heuristics::aggravating_scope))
            {
                if !aggravating.contains(&a) {
                    aggravating.push(a);
                }
            }
        }
    }
    let dormant =
        if started.is_empty() {
            reasons.push(
                "no listening process from it was seen, so it could not be probed for HTTP".into(),
            );
            match (&facts.program_missing, traits.is_empty(), heuristics::aggravating_item(item)) {
            (None, false, Some(_)) => Some(
                "it is undisclosed and starts by itself, but with nothing listening there is no \
                 HTTP evidence: reported, not remediated"
                    .to_string(),
            ),
            _ => None,
        }
        } else {
            None
        };

    // The never-list: Apple's own jobs, the agent's own daemon.
    let mut blocked: Vec<String> = running
        .iter()
        .filter_map(|p| helper::protected_running(p, obs, code_of(p), true))
        .collect();
    // The program judged, not an interpreter that runs it: `/System`'s
    // Python running a user's hidden script is the user's script.
    if locate::is_system(&item.path) || facts.judged_path.as_deref().is_some_and(locate::is_system)
    {
        blocked.push("it is part of macOS (/System)".into());
    }
    if item.program.is_some() && item.program == obs.agent_exe {
        blocked.push("it starts lenscap itself".into());
    }
    blocked.dedup();
    let misuse = super::actor::item_outside_reach(item, judged_path.as_deref(), &running, obs);

    let outcome = verdict::decide(&Facts {
        undisclosed: !traits.is_empty(),
        rule,
        catalog,
        serving,
        inherited,
        dormant,
        blocked,
        misuse,
        aggravating,
        persistence: true,
        idle: facts.program_missing.clone(),
        ..Facts::new(Reach::No)
    });
    reasons.extend(outcome.reasons);

    let first = started.first().map(|&li| &listeners[li].finding);
    Finding {
        kind: FindingKind::Persistence,
        verdict: outcome.verdict,
        severity: outcome.severity,
        reasons,
        rule: outcome.rule,
        process: running.first().map(|p| (*p).clone()),
        processes: running.into_iter().cloned().collect(),
        listener: first.and_then(|f| f.listener.clone()),
        persistence: Some(PersistenceRef {
            kind: item.kind,
            path: item.path.clone(),
            label: item.label.clone(),
            program: item.program.clone(),
        }),
        http: first.and_then(|f| f.http.clone()),
        camera: None,
        judged_path,
        grant_holder: None,
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::Report => "report",
        Verdict::Remediate => "remediate",
    }
}
