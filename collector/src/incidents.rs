//! Incidents: what happened on one Mac about one helper, told as one story
//! rather than as the six or seven events it took.
//!
//! An incident gathers a host's findings about one program — its
//! listener, its persistence items, camera sessions tied to it — and the
//! plan steps taken against it with their outcomes, reinstall attempts
//! and a restore if one happens. It is **derived** from stored events and
//! nothing else: the store walks events in the order they were stored
//! (`store/incidents.rs`) and feeds each to [`facts`] and
//! [`IncidentRow::apply`] here, so emptying the incident tables and walking
//! again gives the same incidents (that is how a database from before
//! incidents is filled, and what `incidents rebuild` does).
//!
//! **How events find their incident.** Every event yields *keys*; an
//! event joins the incident that already owns one of its keys on that
//! host, and its keys are then owned by that incident:
//!
//! - a finding: `f:<finding uid>`, `s:<subject>` (the bundle, else the
//!   executable, else the persistence item's program or path), the paths
//!   and launchd label it names (`p:…`), and its listener (`l:addr:port`);
//! - a plan step: `c:<command uid>` (every step of one plan shares it) and
//!   the path or launchd label it acted on (`p:…`) — the agent's steps name
//!   what they touched, which is what the finding named;
//! - a camera session the agent tied to a flagged helper
//!   (`camera.incident.helper`): that helper's listener `l:addr:port`.
//!
//! A new finding (Create, not `allow`) about a subject whose incident has
//! already closed (all its findings closed) starts a new incident. Events
//! that match nothing and would not start one (health, allowed findings)
//! belong to no incident.
//!
//! **State**, from what the incident holds: `restored` once a restore step
//! succeeded; else `failed` if a step failed; else `contained` if steps
//! succeeded; else `would_do` if steps were only recorded as what monitor
//! mode would do; else `open` while a finding is open, `closed` after.
//! Whether an event of the incident sits on a chain break is not part of
//! this walk (a break may be found after the event was grouped); readers
//! ask the store, which reports it as the incident's `integrity`.

use serde_json::Value;

/// What one stored event contributes to incidents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Keys this event is known by (see the module doc), most specific
    /// first.
    pub keys: Vec<String>,
    /// Whether this event may start an incident when no key matches.
    pub starts: bool,
    /// A finding event: its uid and whether it opens (Create/Update) or
    /// closes it.
    pub finding: Option<(String, bool)>,
    /// The subject's name for titles ("AcmeOpener").
    pub name: Option<String>,
    /// What it is ("a hidden web server on 127.0.0.1:19500").
    pub what: Option<String>,
    pub severity: Option<String>,
    pub rule: Option<String>,
    pub step: Option<Step>,
}

/// A plan step's contribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub outcome: StepOutcome,
    /// A step that undoes (restore_file, enable_job, remove_guard).
    pub undo: bool,
    /// A quarantine_file step (for "and quarantined" in titles).
    pub quarantine: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    Done,
    Failed,
    WouldDo,
}

/// Severity as a number, for "worst of".
pub fn severity_rank(s: &str) -> i64 {
    match s {
        "critical" => 5,
        "high" => 4,
        "medium" => 3,
        "low" => 2,
        _ => 1,
    }
}

/// Work out an event's facts from its stored body (canonical JSON,
/// checked at ingest). An unreadable body has no facts.
pub fn facts(kind: &str, body: &str) -> Facts {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return Facts::default();
    };
    let p = &v["payload"];
    let mut f = match kind {
        "detection_finding" => finding_facts(p),
        "process_remediation" | "file_remediation" => step_facts(p),
        _ => Facts::default(),
    };
    // Each key once, first place kept: the store writes them in one
    // statement.
    let mut seen = std::collections::HashSet::new();
    f.keys.retain(|k| seen.insert(k.clone()));
    f
}

fn s(v: &Value) -> Option<String> {
    v.as_str().filter(|t| !t.is_empty()).map(str::to_string)
}

/// The last path component without `.app`, for a person to read.
fn short_name(path: &str) -> String {
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path);
    last.strip_suffix(".app").unwrap_or(last).to_string()
}

/// The `.app` bundle a path lies in, if any.
fn bundle_of(path: &str) -> Option<String> {
    let i = path
        .find(".app/")
        .map(|i| i + 4)
        .or_else(|| path.ends_with(".app").then_some(path.len()))?;
    Some(path[..i].to_string())
}

fn finding_facts(p: &Value) -> Facts {
    let f = &p["finding"];
    let Some(uid) = s(&p["finding_info"]["uid"]) else {
        return Facts::default();
    };
    let verdict = f["verdict"].as_str().unwrap_or("report");
    let kind = f["kind"].as_str().unwrap_or("listener");
    let closes = p["activity_id"].as_i64() == Some(3);
    let mut keys = vec![format!("f:{uid}")];
    let mut paths: Vec<String> = Vec::new();
    let proc_ = &f["process"];
    let bundle = s(&proc_["bundle"]);
    let exe = s(&proc_["path"]);
    let pers = &f["persistence"];
    let program = s(&pers["program"]);
    let item = s(&pers["path"]);
    paths.extend(bundle.iter().cloned());
    paths.extend(exe.iter().cloned());
    paths.extend(program.iter().cloned());
    paths.extend(item.iter().cloned());
    if let Some(label) = s(&pers["label"]) {
        keys.push(format!("p:{label}"));
    }
    let listener = match (
        f["listener"]["address"].as_str(),
        f["listener"]["port"].as_i64(),
    ) {
        (Some(a), Some(port)) => Some(format!("{a}:{port}")),
        _ => None,
    };
    // The helper a camera session was tied to.
    let helper = {
        let h = &f["camera"]["incident"]["helper"];
        match (h["address"].as_str(), h["port"].as_i64()) {
            (Some(a), Some(port)) => Some(format!("{a}:{port}")),
            _ => None,
        }
    };
    let subject = match kind {
        "camera_grant" | "camera_use" if helper.is_none() => s(&f["camera"]["client"]),
        _ => bundle
            .clone()
            .or_else(|| program.as_deref().and_then(bundle_of))
            .or_else(|| exe.as_deref().and_then(bundle_of))
            .or_else(|| exe.clone())
            .or_else(|| program.clone())
            .or_else(|| item.clone())
            .or_else(|| s(&proc_["name"])),
    };
    if kind == "camera_use" || kind == "camera_grant" {
        // A session belongs to the helper that caused it, not to the
        // camera app's own program.
        if let Some(h) = &helper {
            keys.push(format!("l:{h}"));
        }
    } else {
        if let Some(subj) = &subject {
            keys.push(format!("s:{subj}"));
        }
        for path in &paths {
            keys.push(format!("p:{path}"));
        }
        if let Some(l) = &listener {
            keys.push(format!("l:{l}"));
        }
    }
    if (kind == "camera_use" || kind == "camera_grant")
        && helper.is_none()
        && let Some(subj) = &subject
    {
        keys.push(format!("s:{kind}:{subj}"));
    }
    let name = s(&proc_["name"])
        .or_else(|| subject.as_deref().map(short_name))
        .or_else(|| s(&pers["label"]));
    let hidden = f["reasons"].as_array().is_some_and(|r| {
        r.iter()
            .any(|x| x.as_str().is_some_and(|t| t.contains("hidden")))
    });
    let what = match kind {
        "listener" => listener.as_ref().map(|l| {
            let server = if f["http"]["http"].as_bool() == Some(true) {
                "web server"
            } else {
                "listener"
            };
            let hidden = if hidden { "hidden " } else { "" };
            format!("a {hidden}{server} on {l}")
        }),
        "persistence" => Some(match pers["kind"].as_str() {
            Some("launch_agent") => "a launch agent".to_string(),
            Some("launch_daemon") => "a launch daemon".to_string(),
            Some("login_item") => "a login item".to_string(),
            _ => "a persistence item".to_string(),
        }),
        "camera_use" => Some(match &helper {
            Some(h) => format!("the camera turned on through the helper on {h}"),
            None => "a camera session".to_string(),
        }),
        "camera_grant" => Some("a camera or privacy grant".to_string()),
        _ => None,
    };
    Facts {
        keys,
        starts: verdict != "allow" && !closes,
        finding: Some((uid, !closes)),
        name,
        what,
        severity: s(&f["severity"]),
        rule: s(&f["rule"]),
        step: None,
    }
}

fn step_facts(p: &Value) -> Facts {
    let mut keys = Vec::new();
    if let Some(c) = s(&p["command_uid"]) {
        keys.push(format!("c:{c}"));
    }
    if let Some(f) = s(&p["finding_uid"]) {
        keys.push(format!("f:{f}"));
    }
    let proc_ = &p["process"];
    let file = &p["file"];
    for v in [&proc_["path"], &file["path"], &proc_["launchd_label"]] {
        if let Some(path) = s(v) {
            if let Some(b) = bundle_of(&path) {
                keys.push(format!("p:{b}"));
            }
            keys.push(format!("p:{path}"));
        }
    }
    let action = p["action"].as_str().unwrap_or("other");
    let outcome = if p["would_do"].as_bool() == Some(true) {
        StepOutcome::WouldDo
    } else {
        match p["outcome"]["status"].as_str() {
            Some("success") => StepOutcome::Done,
            Some("failure") => StepOutcome::Failed,
            _ => StepOutcome::WouldDo,
        }
    };
    let name = s(&proc_["name"])
        .or_else(|| s(&file["path"]).map(|p| short_name(&p)))
        .or_else(|| s(&proc_["launchd_label"]));
    Facts {
        keys,
        // A step whose finding this collector never saw (it was lost, or
        // sent before enrolment) still tells a story.
        starts: true,
        finding: None,
        name,
        what: None,
        severity: None,
        rule: None,
        step: Some(Step {
            outcome,
            undo: matches!(action, "restore_file" | "enable_job" | "remove_guard"),
            quarantine: action == "quarantine_file",
        }),
    }
}

/// An incident's stored aggregate: everything the list shows, kept up to
/// date as events join.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentRow {
    pub name: String,
    /// What it was, from its first finding that says ("a hidden web
    /// server on 127.0.0.1:19500").
    pub what: Option<String>,
    pub severity: String,
    pub rule: Option<String>,
    pub first_time: i64,
    pub last_time: i64,
    pub open_findings: i64,
    pub findings: i64,
    pub steps_done: i64,
    pub steps_failed: i64,
    pub steps_would: i64,
    pub restores: i64,
    pub quarantined: i64,
    pub events: i64,
}

impl IncidentRow {
    /// A new incident started by an event at `time`.
    pub fn start(f: &Facts, time: i64) -> IncidentRow {
        IncidentRow {
            name: f.name.clone().unwrap_or_else(|| "unknown program".into()),
            severity: "info".into(),
            first_time: time,
            last_time: time,
            ..IncidentRow::default()
        }
    }

    /// Take in one event. `finding_was_open`: whether this finding was
    /// counted open in the incident before (so Create, Update, Close of
    /// one finding count it once).
    pub fn apply(&mut self, f: &Facts, time: i64, finding_was_open: Option<bool>) {
        self.events += 1;
        self.first_time = self.first_time.min(time);
        self.last_time = self.last_time.max(time);
        if self.what.is_none() {
            self.what = f.what.clone();
        }
        if let Some(sev) = &f.severity
            && severity_rank(sev) > severity_rank(&self.severity)
        {
            self.severity = sev.clone();
        }
        if self.rule.is_none() {
            self.rule = f.rule.clone();
        }
        if let Some((_, open)) = &f.finding {
            // A finding's own name beats a step's file name.
            if let Some(n) = &f.name
                && self.findings == 0
            {
                self.name = n.clone();
            }
            match (finding_was_open, open) {
                (None, true) => {
                    self.findings += 1;
                    self.open_findings += 1;
                }
                (None, false) => self.findings += 1,
                (Some(false), true) => self.open_findings += 1,
                (Some(true), false) => self.open_findings -= 1,
                _ => {}
            }
        }
        if let Some(step) = f.step {
            match (step.outcome, step.undo) {
                (StepOutcome::Done, true) => self.restores += 1,
                (StepOutcome::Done, false) => {
                    self.steps_done += 1;
                    if step.quarantine {
                        self.quarantined += 1;
                    }
                }
                (StepOutcome::Failed, _) => self.steps_failed += 1,
                (StepOutcome::WouldDo, _) => self.steps_would += 1,
            }
        }
    }

    /// Whether a new finding about the same subject starts a new incident:
    /// every finding it had is closed.
    pub fn closed(&self) -> bool {
        self.findings > 0 && self.open_findings == 0
    }

    pub fn state(&self) -> &'static str {
        if self.restores > 0 {
            "restored"
        } else if self.steps_failed > 0 {
            "failed"
        } else if self.steps_done > 0 {
            "contained"
        } else if self.steps_would > 0 {
            "would_do"
        } else if self.open_findings > 0 || self.findings == 0 {
            "open"
        } else {
            "closed"
        }
    }

    /// A title a person understands: "AcmeOpener, a hidden web server on
    /// 127.0.0.1:19500, contained and quarantined".
    pub fn title(&self) -> String {
        let outcome = match self.state() {
            "restored" => "contained, then restored".to_string(),
            "failed" => "remediation failed".to_string(),
            "contained" if self.quarantined > 0 => "contained and quarantined".to_string(),
            "contained" => "contained".to_string(),
            "would_do" => "would be contained (monitor mode)".to_string(),
            "open" => "open".to_string(),
            _ => "closed".to_string(),
        };
        match &self.what {
            Some(w) => format!("{}, {w}, {outcome}", self.name),
            None => format!("{}, {outcome}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lenscap_events::samples;

    fn facts_of(e: &lenscap_events::Event) -> Facts {
        facts(e.body.kind().as_str(), &serde_json::to_string(e).unwrap())
    }

    /// health, finding, kill, quarantine: the docs' chain.
    fn chain() -> Vec<lenscap_events::Event> {
        samples::docs_chain()
    }

    #[test]
    fn a_finding_and_its_steps_share_keys() {
        let f = facts_of(&chain()[1]);
        assert!(f.starts);
        assert_eq!(f.name.as_deref(), Some("ZoomOpener"));
        assert_eq!(
            f.what.as_deref(),
            Some("a hidden web server on 127.0.0.1:19421")
        );
        assert!(
            f.keys
                .contains(&"s:/Users/jdoe/.zoomus/ZoomOpener.app".to_string())
        );
        for step in &chain()[2..] {
            let s = facts_of(step);
            assert!(
                s.keys.iter().any(|k| f.keys.contains(k)),
                "{:?} vs {:?}",
                s.keys,
                f.keys
            );
            assert!(s.step.is_some());
        }
    }

    #[test]
    fn health_events_belong_to_no_incident() {
        let f = facts_of(&chain()[0]);
        assert!(f.keys.is_empty() && !f.starts);
    }

    #[test]
    fn state_and_title_follow_the_steps() {
        let f = facts_of(&chain()[1]);
        let mut row = IncidentRow::start(&f, 10);
        row.apply(&f, 10, None);
        assert_eq!(row.state(), "open");
        assert_eq!(row.severity, "critical");
        let quarantine = Facts {
            step: Some(Step {
                outcome: StepOutcome::Done,
                undo: false,
                quarantine: true,
            }),
            ..Facts::default()
        };
        row.apply(&quarantine, 12, None);
        assert_eq!(row.state(), "contained");
        assert_eq!(
            row.title(),
            "ZoomOpener, a hidden web server on 127.0.0.1:19421, contained and quarantined"
        );
        let mut close = f.clone();
        close.finding = Some((String::from("x"), false));
        row.apply(&close, 13, Some(true));
        assert!(row.closed());
        assert_eq!(row.state(), "contained");
        let restore = Facts {
            step: Some(Step {
                outcome: StepOutcome::Done,
                undo: true,
                quarantine: false,
            }),
            ..Facts::default()
        };
        row.apply(&restore, 20, None);
        assert_eq!(row.state(), "restored");
        assert_eq!((row.first_time, row.last_time, row.events), (10, 20, 4));

        let mut monitor = IncidentRow::start(&f, 1);
        monitor.apply(&f, 1, None);
        monitor.apply(
            &Facts {
                step: Some(Step {
                    outcome: StepOutcome::WouldDo,
                    undo: false,
                    quarantine: false,
                }),
                ..Facts::default()
            },
            2,
            None,
        );
        assert_eq!(monitor.state(), "would_do");
        let failed = Facts {
            step: Some(Step {
                outcome: StepOutcome::Failed,
                undo: false,
                quarantine: false,
            }),
            ..Facts::default()
        };
        monitor.apply(&failed, 3, None);
        assert_eq!(monitor.state(), "failed");
    }
}
