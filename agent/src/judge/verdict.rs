//! From facts to a verdict, a severity and the closing reasons. One
//! function, [`decide`], holds the whole precedence so it can be read in
//! one sitting (the module doc of `judge` states it in words):
//!
//! 1. an admin **deny** rule → remediate;
//! 2. an admin **allow** rule → allow (beats the catalog and heuristics);
//! 3. a **catalog** match → remediate (report for a dormant copy embedded
//!    in its installed parent app);
//! 4. persistence **inherits** the strongest verdict of what it starts;
//! 5. the **heuristics** of docs/design.md §2;
//! 6. the **never-list** caps anything at report, whatever decided above.
//!
//! A catalog **benign listener** (a validated Team ID and name) refines
//! step 5: it turns a report that only criteria 1 and 2 gave into allow.
//! (A **known-risky** match is not a fact here: it adds its write-up to
//! the reasons and an aggravating factor, and suppresses the benign list.)

use std::cmp::Reverse;

use super::catalog_match::CatalogHit;
use super::heuristics::Reach;
use super::rules::RuleHit;
use crate::model::RuleAction;
use crate::model::{Finding, FindingKind, Severity, Verdict};

/// Everything the verdict depends on, already turned into facts.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub reach: Reach,
    pub trusted: bool,
    pub helper: bool,
    pub undisclosed: bool,
    pub rule: Option<RuleHit>,
    pub catalog: Option<CatalogHit>,
    /// A well-known benign listener matched (its words).
    pub benign: Option<String>,
    /// It is serving HTTP now (a listener that answers, or a persistence
    /// item whose listener answers).
    pub serving: bool,
    /// Persistence: the strongest verdict among the listeners it starts.
    pub inherited: Option<(Verdict, String)>,
    /// Persistence that is not running: why it is reported anyway.
    pub dormant: Option<String>,
    /// Why lenscap must not act on it (never-list, nothing to act on).
    pub blocked: Vec<String>,
    /// What it names beyond the reach of whoever triggered it (the actor
    /// rule, `actor`): a user's plist naming root's program, a process of
    /// another user. Wanting to remediate such a thing is how lenscap
    /// would be turned against the Mac: reported, critical, never acted on.
    pub misuse: Vec<String>,
    pub aggravating: Vec<String>,
    /// Judging a persistence item rather than a listener (changes words only).
    pub persistence: bool,
    /// A persistence item that starts nothing (its program is missing):
    /// the words of its allow conclusion.
    pub idle: Option<String>,
}

impl Facts {
    pub(crate) fn new(reach: Reach) -> Facts {
        Facts {
            reach,
            trusted: false,
            helper: false,
            undisclosed: false,
            rule: None,
            catalog: None,
            benign: None,
            serving: false,
            inherited: None,
            dormant: None,
            blocked: Vec::new(),
            misuse: Vec::new(),
            aggravating: Vec::new(),
            persistence: false,
            idle: None,
        }
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub verdict: Verdict,
    /// The verdict before the never-list capped it. A persistence item
    /// inherits this one and then applies the never-list to itself: launchd
    /// co-owning a socket-activated job's socket protects launchd, not the
    /// job's plist.
    pub wanted: Verdict,
    pub severity: Severity,
    pub rule: Option<String>,
    /// The closing reasons, to append after the fact-finding ones.
    pub reasons: Vec<String>,
}

/// What it is on its own merits: the strongest verdict of what it starts
/// (persistence), else the heuristics.
fn own_merits(f: &Facts) -> (Verdict, String) {
    match &f.inherited {
        Some((v, why)) if *v > Verdict::Allow => (*v, why.clone()),
        _ => heuristic(f),
    }
}

fn heuristic(f: &Facts) -> (Verdict, String) {
    let web = f.reach == Reach::Yes;
    if web && !f.trusted && f.helper && f.undisclosed {
        return (
            Verdict::Remediate,
            "all four hold — reachable from web pages, not trusted, a helper, undisclosed — \
             so it is an undisclosed helper web server: remediate"
                .into(),
        );
    }
    if web && !f.trusted {
        let missing = match (f.helper, f.undisclosed) {
            (false, false) => "it is neither a helper nor undisclosed",
            (false, true) => "it is not a helper",
            _ => "nothing about it is undisclosed",
        };
        if f.benign.is_some() {
            return (
                Verdict::Allow,
                format!(
                    "it is reachable from web pages and {missing}, and it is a well-known \
                     listener of an app a person installed: allowed"
                ),
            );
        }
        return (
            Verdict::Report,
            format!("it is reachable from web pages and not trusted, but {missing}: reported"),
        );
    }
    if f.reach == Reach::Unknown && !f.trusted && f.helper && f.undisclosed {
        return (
            Verdict::Report,
            "it is an untrusted, undisclosed helper, but whether it speaks HTTP is unknown: \
             reported, not remediated"
                .into(),
        );
    }
    if let Some(why) = &f.dormant {
        return (Verdict::Report, why.clone());
    }
    if let Some(idle) = &f.idle {
        return (
            Verdict::Allow,
            format!("{idle}, so it starts nothing: allowed"),
        );
    }
    let why = if f.persistence {
        "nothing it starts was seen serving web pages, and nothing else marks it: allowed"
    } else if f.trusted {
        "it is trusted: allowed"
    } else if f.reach == Reach::No {
        "it is not a web server a page can reach: allowed"
    } else {
        "nothing marks it as an undisclosed helper web server: allowed"
    };
    (Verdict::Allow, why.into())
}

/// Apply the precedence to the facts. The conclusion is always the last
/// reason (the CLI shows only that line for allowed findings); details of
/// the deciding rule or catalog entry and the aggravating factors come
/// before it.
pub(crate) fn decide(f: &Facts) -> Outcome {
    let mut reasons = Vec::new();
    let mut rule = None;
    let mut impersonation = false;
    let (mut verdict, mut conclusion) = match (&f.rule, &f.catalog) {
        (Some(hit), catalog) => {
            reasons.extend(hit.reasons.iter().cloned());
            rule = Some(hit.id.clone());
            match hit.action {
                RuleAction::Deny => (
                    Verdict::Remediate,
                    "an admin deny rule remediates what it matches: remediate".to_string(),
                ),
                RuleAction::Allow => {
                    if let Some(c) = catalog {
                        reasons.push(format!(
                            "the catalog entry {} also matches, but an admin allow rule wins \
                             over the built-in catalog",
                            c.id
                        ));
                    }
                    (
                        Verdict::Allow,
                        "an admin allow rule wins over the catalog and the heuristics: allowed"
                            .to_string(),
                    )
                }
            }
        }
        (None, Some(hit)) if hit.claims_only => {
            // Names are claims: they decide nothing. The item is judged
            // on what it is, and is at least an impersonation to report.
            reasons.extend(hit.reasons.iter().cloned());
            rule = Some(hit.id.clone());
            match own_merits(f) {
                (Verdict::Remediate, why) => (Verdict::Remediate, why),
                _ => {
                    impersonation = true;
                    (
                        Verdict::Report,
                        format!(
                            "it impersonates a known-bad helper: it carries {}'s names, but \
                             names alone never make lenscap act: reported",
                            hit.name
                        ),
                    )
                }
            }
        }
        (None, Some(hit)) => {
            reasons.extend(hit.reasons.iter().cloned());
            rule = Some(hit.id.clone());
            match (&hit.embedded_in, f.serving) {
                (Some(outer), false) => (
                    Verdict::Report,
                    format!(
                        "it is the copy embedded in {}, which is installed, and it is not \
                         serving HTTP: reported, not remediated (updating or removing that app \
                         removes it)",
                        outer.display()
                    ),
                ),
                _ => (
                    Verdict::Remediate,
                    format!("{} is remediated on sight: remediate", hit.name),
                ),
            }
        }
        (None, None) => own_merits(f),
    };
    let wanted = verdict;
    let mut lowered = false;
    // The actor rule comes before the never-list: an item that names what
    // its owner does not own is a possible attack, and says so.
    let misuse = verdict == Verdict::Remediate && !f.misuse.is_empty();
    if misuse {
        reasons.push(conclusion);
        reasons.extend(f.misuse.iter().cloned());
        conclusion = "it names a program it does not own: a possible attempt to misuse \
                      lenscap, which acts only within the reach of whoever owns what \
                      triggered it — reported, never acted on"
            .to_string();
        verdict = Verdict::Report;
    } else if verdict == Verdict::Remediate && !f.blocked.is_empty() {
        reasons.push(conclusion);
        conclusion = format!(
            "lenscap never acts on it — {} — so remediate is lowered to report",
            f.blocked.join("; ")
        );
        verdict = Verdict::Report;
        lowered = true;
    }
    let embedded_report = verdict == Verdict::Report
        && f.rule.is_none()
        && f.catalog.as_ref().is_some_and(|c| c.embedded_in.is_some());
    let prefix = if verdict == Verdict::Allow {
        "note"
    } else {
        "aggravating"
    };
    reasons.extend(f.aggravating.iter().map(|a| format!("{prefix}: {a}")));
    reasons.push(conclusion);
    let severity = if misuse || impersonation {
        Severity::Critical
    } else {
        severity(verdict, f.aggravating.len(), lowered || embedded_report)
    };
    Outcome {
        verdict,
        wanted,
        severity,
        rule,
        reasons,
    }
}

/// Remediate is high, critical with any aggravating factor; report starts
/// low and rises one step per factor (and one if something wanted to
/// remediate), never above high; allow is informational.
fn severity(verdict: Verdict, aggravating: usize, wanted_more: bool) -> Severity {
    const LADDER: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::High,
    ];
    match verdict {
        Verdict::Allow => Severity::Info,
        Verdict::Report => {
            let step = aggravating + usize::from(wanted_more);
            LADDER[step.min(LADDER.len() - 1)]
        }
        Verdict::Remediate if aggravating > 0 => Severity::Critical,
        Verdict::Remediate => Severity::High,
    }
}

/// Verdict (strongest first), then listeners by port and address, then
/// persistence by path, camera sessions by pid, client, device and start,
/// grants by service, client and database; the remaining fields break ties
/// so the order never depends on the order observe produced.
pub(crate) fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| key(a).cmp(&key(b)));
}

type Key<'a> = (
    Reverse<Verdict>,
    u8,
    Option<u16>,
    Option<std::net::IpAddr>,
    Option<&'a std::path::Path>,
    Option<&'a str>,
    Option<CameraKey<'a>>,
    Reverse<Severity>,
    &'a [String],
);

/// (session pid, service, client, grant database, session device, since):
/// a session has no database and its service is always `camera`, a grant
/// has no pid or device, so each kind sorts by its own fields.
type CameraKey<'a> = (
    Option<u32>,
    &'a str,
    &'a str,
    Option<&'a std::path::Path>,
    Option<&'a std::path::Path>,
    Option<&'a str>,
);

fn camera_key(f: &Finding) -> Option<CameraKey<'_>> {
    let c = f.camera.as_ref()?;
    let pid = match f.kind {
        FindingKind::CameraUse => f.process.as_ref().map(|p| p.pid),
        _ => None,
    };
    Some((
        pid,
        &c.service,
        &c.client,
        c.database.as_deref(),
        c.device.as_deref(),
        c.since.as_deref(),
    ))
}

fn key(f: &Finding) -> Key<'_> {
    (
        Reverse(f.verdict),
        match f.kind {
            FindingKind::Listener => 0,
            FindingKind::Persistence => 1,
            FindingKind::CameraUse => 2,
            FindingKind::CameraGrant => 3,
        },
        f.listener
            .as_ref()
            .map(|l| l.port)
            .filter(|_| f.kind == FindingKind::Listener),
        f.listener
            .as_ref()
            .map(|l| l.address)
            .filter(|_| f.kind == FindingKind::Listener),
        f.persistence.as_ref().map(|p| p.path.as_path()),
        f.persistence.as_ref().and_then(|p| p.label.as_deref()),
        camera_key(f),
        Reverse(f.severity),
        &f.reasons,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(action: RuleAction) -> RuleHit {
        RuleHit {
            id: "rule:x".into(),
            action,
            reasons: vec!["admin rule rule:x matches (port 1)".into()],
        }
    }

    fn catalog_hit(embedded: bool) -> CatalogHit {
        CatalogHit {
            id: "catalog:zoomopener".into(),
            name: "ZoomOpener".into(),
            reasons: vec!["matches the known-bad catalog entry catalog:zoomopener".into()],
            embedded_in: embedded.then(|| "/Applications/zoom.us.app".into()),
            claims_only: false,
        }
    }

    #[test]
    fn a_catalog_match_on_names_only_is_an_impersonation_never_an_action() {
        let mut hit = catalog_hit(false);
        hit.claims_only = true;
        // Nothing else about it is bad: reported as an impersonation.
        let out = decide(&Facts {
            catalog: Some(hit.clone()),
            ..Facts::new(Reach::Unknown)
        });
        assert_eq!(out.verdict, Verdict::Report);
        assert_eq!(out.severity, Severity::Critical);
        assert!(
            out.reasons
                .last()
                .is_some_and(|r| r.contains("impersonates")),
            "{:?}",
            out.reasons
        );
        // The four criteria hold on their own: remediated on those grounds.
        let out = decide(&Facts {
            catalog: Some(hit),
            trusted: false,
            helper: true,
            undisclosed: true,
            ..Facts::new(Reach::Yes)
        });
        assert_eq!(out.verdict, Verdict::Remediate);
    }

    #[test]
    fn misuse_lowers_remediate_to_a_critical_report() {
        let out = decide(&Facts {
            catalog: Some(catalog_hit(false)),
            misuse: vec!["it names /usr/local/bin/x, which belongs to root".into()],
            ..Facts::new(Reach::Yes)
        });
        assert_eq!(out.verdict, Verdict::Report);
        assert_eq!(out.wanted, Verdict::Remediate);
        assert_eq!(out.severity, Severity::Critical);
        assert!(
            out.reasons
                .last()
                .is_some_and(|r| r.contains("names a program it does not own")),
            "{:?}",
            out.reasons
        );
        // Misuse matters only where lenscap would act.
        let out = decide(&Facts {
            misuse: vec!["x".into()],
            ..Facts::new(Reach::No)
        });
        assert_eq!(out.verdict, Verdict::Allow);
        assert_eq!(out.severity, Severity::Info);
    }

    #[test]
    fn heuristic_table() {
        // (reach, trusted, helper, undisclosed) → verdict
        use Reach::*;
        use Verdict::*;
        let table = [
            (Yes, false, true, true, Remediate),
            (Yes, false, true, false, Report),
            (Yes, false, false, true, Report),
            (Yes, false, false, false, Report),
            (Yes, true, true, true, Allow),
            (No, false, true, true, Allow),
            (Unknown, false, true, true, Report),
            (Unknown, false, false, true, Allow),
            (Unknown, true, true, true, Allow),
        ];
        for (reach, trusted, helper, undisclosed, want) in table {
            let f = Facts {
                trusted,
                helper,
                undisclosed,
                ..Facts::new(reach)
            };
            let out = decide(&f);
            assert_eq!(
                out.verdict, want,
                "{reach:?} {trusted} {helper} {undisclosed}"
            );
            assert!(!out.reasons.is_empty());
            assert_eq!(out.rule, None);
        }
    }

    #[test]
    fn precedence_deny_allow_catalog_never_list() {
        let base = Facts::new(Reach::Yes);
        let deny = decide(&Facts {
            rule: Some(hit(RuleAction::Deny)),
            ..base.clone()
        });
        assert_eq!(
            (deny.verdict, deny.rule.as_deref()),
            (Verdict::Remediate, Some("rule:x"))
        );

        let allow_beats_catalog = decide(&Facts {
            rule: Some(hit(RuleAction::Allow)),
            catalog: Some(catalog_hit(false)),
            ..base.clone()
        });
        assert_eq!(allow_beats_catalog.verdict, Verdict::Allow);
        assert!(
            allow_beats_catalog
                .reasons
                .iter()
                .any(|r| r.contains("catalog:zoomopener"))
        );

        let catalog = decide(&Facts {
            catalog: Some(catalog_hit(false)),
            trusted: true,
            ..base.clone()
        });
        assert_eq!(catalog.verdict, Verdict::Remediate);

        let embedded_idle = decide(&Facts {
            catalog: Some(catalog_hit(true)),
            ..Facts::new(Reach::No)
        });
        assert_eq!(embedded_idle.verdict, Verdict::Report);
        assert_eq!(embedded_idle.severity, Severity::Medium);

        let embedded_serving = decide(&Facts {
            catalog: Some(catalog_hit(true)),
            serving: true,
            ..base.clone()
        });
        assert_eq!(embedded_serving.verdict, Verdict::Remediate);

        let blocked = decide(&Facts {
            rule: Some(hit(RuleAction::Deny)),
            blocked: vec!["it is launchd (pid 1)".into()],
            ..base
        });
        assert_eq!(blocked.verdict, Verdict::Report);
        assert!(
            blocked
                .reasons
                .iter()
                .any(|r| r.contains("launchd (pid 1)"))
        );
    }

    #[test]
    fn the_conclusion_is_the_last_reason() {
        let f = Facts {
            trusted: true,
            aggravating: vec!["launchd restarts it whenever it exits (KeepAlive)".into()],
            ..Facts::new(Reach::Yes)
        };
        let out = decide(&f);
        assert_eq!(out.verdict, Verdict::Allow);
        assert_eq!(
            out.reasons.last().map(String::as_str),
            Some("it is trusted: allowed")
        );
        assert!(out.reasons[0].starts_with("note: "));
        let f = Facts {
            rule: Some(hit(RuleAction::Deny)),
            blocked: vec!["it is launchd (pid 1)".into()],
            aggravating: vec!["x".into()],
            ..Facts::new(Reach::Yes)
        };
        let out = decide(&f);
        assert!(
            out.reasons
                .last()
                .is_some_and(|r| r.contains("lowered to report"))
        );
        assert!(
            out.reasons
                .iter()
                .any(|r| r.contains("deny rule remediates"))
        );
    }

    #[test]
    fn severities() {
        assert_eq!(severity(Verdict::Allow, 3, true), Severity::Info);
        assert_eq!(severity(Verdict::Report, 0, false), Severity::Low);
        assert_eq!(severity(Verdict::Report, 1, false), Severity::Medium);
        assert_eq!(severity(Verdict::Report, 5, true), Severity::High);
        assert_eq!(severity(Verdict::Remediate, 0, false), Severity::High);
        assert_eq!(severity(Verdict::Remediate, 1, false), Severity::Critical);
    }

    #[test]
    fn inherited_verdicts_apply_only_without_rules_or_catalog() {
        let f = Facts {
            inherited: Some((Verdict::Remediate, "it starts X".into())),
            ..Facts::new(Reach::No)
        };
        assert_eq!(decide(&f).verdict, Verdict::Remediate);
        let f = Facts {
            rule: Some(hit(RuleAction::Allow)),
            ..f
        };
        assert_eq!(decide(&f).verdict, Verdict::Allow);
    }
}
