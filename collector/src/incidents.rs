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

use std::borrow::Cow;

use serde::Deserialize;

/// What one stored event contributes to incidents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Keys this event is known by (see the module doc), most specific
    /// first.
    pub keys: Vec<String>,
    /// Keys that find this event's incident but are not recorded as the
    /// incident's own (a camera event's program and identity keys);
    /// looked up after the first key, before the rest.
    pub find_only: Vec<String>,
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
    /// A finding's verdict (`remediate`, `report`, `allow`).
    pub verdict: Option<String>,
    /// A finding's kind (`listener`, `persistence`, `camera_grant`,
    /// `camera_use`).
    pub kind: Option<String>,
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

/// Verdict as a number, for "strongest of".
pub fn verdict_rank(s: &str) -> i64 {
    match s {
        "remediate" => 3,
        "report" => 2,
        _ => 1,
    }
}

// The parts of a stored body grouping reads. Stored bodies were checked
// against the full wire types at ingest; this reads only these fields,
// borrowing strings from the body and skipping the rest without building
// a tree (the grouper reads every queued event, beside ingest, so this is
// on the ingest budget).
type Text<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    payload: Payload<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Payload<'a> {
    activity_id: Option<i64>,
    #[serde(borrow)]
    finding_info: Option<InfoW<'a>>,
    #[serde(borrow)]
    finding: Option<FindingW<'a>>,
    // Plan steps.
    #[serde(borrow)]
    command_uid: Text<'a>,
    #[serde(borrow)]
    finding_uid: Text<'a>,
    #[serde(borrow)]
    action: Text<'a>,
    would_do: Option<bool>,
    #[serde(borrow)]
    outcome: Option<OutcomeW<'a>>,
    #[serde(borrow)]
    process: Option<ProcW<'a>>,
    #[serde(borrow)]
    file: Option<FileW<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InfoW<'a> {
    #[serde(borrow)]
    uid: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FindingW<'a> {
    #[serde(borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    verdict: Text<'a>,
    #[serde(borrow)]
    severity: Text<'a>,
    #[serde(borrow)]
    rule: Text<'a>,
    #[serde(borrow)]
    reasons: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    process: Option<ProcW<'a>>,
    #[serde(borrow)]
    listener: Option<ListenerW<'a>>,
    #[serde(borrow)]
    persistence: Option<PersistenceW<'a>>,
    http: Option<HttpW>,
    #[serde(borrow)]
    camera: Option<CameraW<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProcW<'a> {
    #[serde(borrow)]
    name: Text<'a>,
    #[serde(borrow)]
    path: Text<'a>,
    #[serde(borrow)]
    bundle: Text<'a>,
    #[serde(borrow)]
    launchd_label: Text<'a>,
    #[serde(borrow)]
    signature: Option<SignatureW<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignatureW<'a> {
    #[serde(borrow)]
    identifier: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListenerW<'a> {
    #[serde(borrow)]
    address: Text<'a>,
    port: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PersistenceW<'a> {
    #[serde(borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    path: Text<'a>,
    #[serde(borrow)]
    label: Text<'a>,
    #[serde(borrow)]
    program: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HttpW {
    http: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CameraW<'a> {
    #[serde(borrow)]
    client: Text<'a>,
    #[serde(borrow)]
    client_type: Text<'a>,
    #[serde(borrow)]
    incident: Option<CameraIncidentW<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CameraIncidentW<'a> {
    #[serde(borrow)]
    helper: Option<ListenerW<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OutcomeW<'a> {
    #[serde(borrow)]
    status: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FileW<'a> {
    #[serde(borrow)]
    path: Text<'a>,
}

/// Work out an event's facts from its stored body (canonical JSON,
/// checked at ingest). An unreadable body has no facts.
pub fn facts(kind: &str, body: &str) -> Facts {
    let parse = || serde_json::from_str::<Wire<'_>>(body).ok();
    let mut f = match kind {
        "detection_finding" => parse().map(|w| finding_facts(&w.payload)),
        "process_remediation" | "file_remediation" => parse().map(|w| step_facts(&w.payload)),
        _ => None,
    }
    .unwrap_or_default();
    // Each key once, first place kept: the store writes them in one
    // statement.
    let mut seen = std::collections::HashSet::new();
    f.keys.retain(|k| seen.insert(k.clone()));
    f.find_only.retain(|k| seen.insert(k.clone()));
    f
}

impl Facts {
    /// The keys in the order they decide which incident an event joins:
    /// the first (a finding's uid, a plan's command) first.
    pub fn lookup_order(&self) -> impl Iterator<Item = &String> {
        self.keys
            .iter()
            .take(1)
            .chain(self.find_only.iter())
            .chain(self.keys.iter().skip(1))
    }
}

fn s(v: &Text<'_>) -> Option<String> {
    v.as_deref().filter(|t| !t.is_empty()).map(str::to_string)
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

fn endpoint(l: Option<&ListenerW<'_>>) -> Option<String> {
    let l = l?;
    Some(format!("{}:{}", l.address.as_deref()?, l.port?))
}

/// The key of a signing identifier or bundle id (`id:…`), compared without
/// case as TCC and the agent's judge compare them.
fn id_key(id: &str) -> String {
    format!("id:{}", id.to_ascii_lowercase())
}

fn finding_facts(p: &Payload<'_>) -> Facts {
    let empty = FindingW::default();
    let f = p.finding.as_ref().unwrap_or(&empty);
    let Some(uid) = p.finding_info.as_ref().and_then(|i| s(&i.uid)) else {
        return Facts::default();
    };
    let verdict = f.verdict.as_deref().unwrap_or("report");
    let kind = f.kind.as_deref().unwrap_or("listener");
    let closes = p.activity_id == Some(3);
    let mut keys = vec![format!("f:{uid}")];
    let mut paths: Vec<String> = Vec::new();
    let no_proc = ProcW::default();
    let proc_ = f.process.as_ref().unwrap_or(&no_proc);
    let bundle = s(&proc_.bundle);
    let exe = s(&proc_.path);
    let identifier = proc_.signature.as_ref().and_then(|g| s(&g.identifier));
    let no_pers = PersistenceW::default();
    let pers = f.persistence.as_ref().unwrap_or(&no_pers);
    let program = s(&pers.program);
    let item = s(&pers.path);
    paths.extend(bundle.iter().cloned());
    paths.extend(exe.iter().cloned());
    paths.extend(program.iter().cloned());
    paths.extend(item.iter().cloned());
    let label = s(&pers.label);
    if let Some(label) = &label {
        keys.push(format!("p:{label}"));
    }
    let listener = endpoint(f.listener.as_ref());
    let camera = f.camera.as_ref();
    // The helper a camera session was tied to by time.
    let helper = endpoint(
        camera
            .and_then(|c| c.incident.as_ref())
            .and_then(|i| i.helper.as_ref()),
    );
    let is_camera = kind == "camera_use" || kind == "camera_grant";
    let mut find_only: Vec<String> = Vec::new();
    let client = camera.and_then(|c| s(&c.client));
    let subject = if is_camera {
        client.clone()
    } else {
        bundle
            .clone()
            .or_else(|| program.as_deref().and_then(bundle_of))
            .or_else(|| exe.as_deref().and_then(bundle_of))
            .or_else(|| exe.clone())
            .or_else(|| program.clone())
            .or_else(|| item.clone())
            .or_else(|| s(&proc_.name))
    };
    if is_camera {
        // A session or a grant belongs to the helper it is tied to, not
        // to an incident of its own: by the helper's listener (a session
        // that began right after a connection to it), by program (the
        // session's process, or a grant's client path, is the helper's
        // executable or lies in its bundle), or by identity (a grant's
        // bundle id is the helper's signing identifier or its launchd
        // label). The program and identity keys only find an incident
        // (`find_only`): the helper's incident does not take over the
        // camera app's paths, so a later finding about the camera app
        // itself is not pulled into it. A camera event that matches none
        // starts an incident of its own (its last key).
        if let Some(h) = &helper {
            keys.push(format!("l:{h}"));
        }
        let mut own_paths: Vec<String> = Vec::new();
        if kind == "camera_use" {
            own_paths.extend(bundle.iter().cloned());
            own_paths.extend(exe.iter().cloned());
        }
        match (kind, camera.and_then(|c| c.client_type.as_deref()), &client) {
            ("camera_grant", Some("path"), Some(c)) => {
                own_paths.extend(bundle_of(c));
                own_paths.push(c.clone());
            }
            ("camera_grant", Some("bundle_id"), Some(c)) => find_only.push(id_key(c)),
            _ => {}
        }
        for path in own_paths {
            find_only.push(format!("p:{path}"));
        }
        if let Some(subj) = &subject {
            keys.push(format!("s:{kind}:{subj}"));
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
        // A grant names its client by bundle id: the helper's signing
        // identifier and its launchd label are what such a grant can name.
        if let Some(id) = &identifier {
            keys.push(id_key(id));
        }
        if let Some(label) = &label {
            keys.push(id_key(label));
        }
    }
    let name = s(&proc_.name)
        .or_else(|| subject.as_deref().map(short_name))
        .or_else(|| label.clone());
    let hidden = f.reasons.iter().any(|r| r.contains("hidden"));
    let what = match kind {
        "listener" => listener.as_ref().map(|l| {
            let server = if f.http.as_ref().and_then(|h| h.http) == Some(true) {
                "web server"
            } else {
                "listener"
            };
            let hidden = if hidden { "hidden " } else { "" };
            format!("a {hidden}{server} on {l}")
        }),
        "persistence" => Some(match pers.kind.as_deref() {
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
        find_only,
        starts: verdict != "allow" && !closes,
        finding: Some((uid, !closes)),
        name,
        what,
        severity: s(&f.severity),
        rule: s(&f.rule),
        verdict: Some(verdict.to_string()),
        kind: Some(kind.to_string()),
        step: None,
    }
}

fn step_facts(p: &Payload<'_>) -> Facts {
    let mut keys = Vec::new();
    if let Some(c) = s(&p.command_uid) {
        keys.push(format!("c:{c}"));
    }
    if let Some(f) = s(&p.finding_uid) {
        keys.push(format!("f:{f}"));
    }
    let no_proc = ProcW::default();
    let proc_ = p.process.as_ref().unwrap_or(&no_proc);
    let file_path = p.file.as_ref().and_then(|f| s(&f.path));
    for path in [s(&proc_.path), file_path.clone(), s(&proc_.launchd_label)]
        .into_iter()
        .flatten()
    {
        if let Some(b) = bundle_of(&path) {
            keys.push(format!("p:{b}"));
        }
        keys.push(format!("p:{path}"));
    }
    let action = p.action.as_deref().unwrap_or("other");
    let outcome = if p.would_do == Some(true) {
        StepOutcome::WouldDo
    } else {
        match p.outcome.as_ref().and_then(|o| o.status.as_deref()) {
            Some("success") => StepOutcome::Done,
            Some("failure") => StepOutcome::Failed,
            _ => StepOutcome::WouldDo,
        }
    };
    let name = s(&proc_.name)
        .or_else(|| file_path.as_deref().map(short_name))
        .or_else(|| s(&proc_.launchd_label));
    Facts {
        keys,
        find_only: Vec::new(),
        // A step whose finding this collector never saw (it was lost, or
        // sent before enrolment) still tells a story.
        starts: true,
        finding: None,
        name,
        what: None,
        severity: None,
        rule: None,
        verdict: None,
        kind: None,
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
    /// The strongest verdict of its findings.
    pub verdict: Option<String>,
    /// The kinds of its findings, sorted, comma-separated.
    pub kinds: String,
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
        // A helper's incident is about its server: the first listener
        // finding's description replaces a persistence item's, whichever
        // the agent happened to report first. (`kinds` is stored, so this
        // holds across grouping turns.)
        let first_listener = f.kind.as_deref() == Some("listener")
            && !self.kinds.split(',').any(|k| k == "listener");
        if f.what.is_some() && (self.what.is_none() || first_listener) {
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
        if let Some(v) = &f.verdict
            && self
                .verdict
                .as_deref()
                .is_none_or(|mine| verdict_rank(v) > verdict_rank(mine))
        {
            self.verdict = Some(v.clone());
        }
        if let Some(k) = &f.kind
            && !self.kinds.split(',').any(|x| x == k)
        {
            let mut all: Vec<&str> = self.kinds.split(',').filter(|x| !x.is_empty()).collect();
            all.push(k);
            all.sort_unstable();
            self.kinds = all.join(",");
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
    use proptest::prelude::*;

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

    #[test]
    fn camera_events_find_the_helper_by_program_and_identity() {
        let helper = facts_of(&chain()[1]);
        assert!(helper.keys.contains(&"id:us.zoom.zoomopener".to_string()));
        assert!(helper.find_only.is_empty());
        assert_eq!(helper.verdict.as_deref(), Some("remediate"));
        assert_eq!(helper.kind.as_deref(), Some("listener"));

        let h = chain()[1].host.clone();
        let ev = |body| samples::event(&h, 9, 1, lenscap_events::Mode::Remediate, body);
        let mut grant = samples::camera_grant();
        grant.finding.camera.as_mut().unwrap().client = "US.Zoom.ZoomOpener".into();
        let g = facts_of(&ev(lenscap_events::Body::DetectionFinding(Box::new(grant))));
        assert_eq!(g.find_only, vec!["id:us.zoom.zoomopener".to_string()]);
        // Its own keys: its uid, and its client for an incident of its own.
        assert!(
            g.keys
                .iter()
                .all(|k| k.starts_with("f:") || k.starts_with("s:camera_grant:"))
        );
        // Looked up right after its uid, before its own subject.
        let order: Vec<&String> = g.lookup_order().collect();
        assert!(order[0].starts_with("f:") && order[1] == "id:us.zoom.zoomopener");

        let mut by_path = samples::camera_grant();
        let cam = by_path.finding.camera.as_mut().unwrap();
        cam.client = "/Users/jdoe/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener".into();
        cam.client_type = Some("path".into());
        let p = facts_of(&ev(lenscap_events::Body::DetectionFinding(Box::new(
            by_path,
        ))));
        assert!(
            p.find_only
                .contains(&"p:/Users/jdoe/.zoomus/ZoomOpener.app".to_string())
        );
        assert!(p.find_only.iter().all(|k| helper.keys.contains(k)));

        // A session tied by time keeps the helper's listener as its own
        // key; the camera app's program only finds.
        let s = facts_of(&ev(lenscap_events::Body::DetectionFinding(Box::new(
            samples::camera_incident(),
        ))));
        assert!(s.keys.contains(&"l:127.0.0.1:19421".to_string()));
        assert!(
            s.find_only
                .contains(&"p:/Applications/zoom.us.app".to_string())
        );
        assert!(!s.keys.iter().any(|k| k.contains("zoom.us.app")));
    }

    #[test]
    fn incidents_keep_their_strongest_verdict_and_kinds() {
        let f = |verdict: &str, kind: &str| Facts {
            verdict: Some(verdict.into()),
            kind: Some(kind.into()),
            finding: Some((format!("{verdict}{kind}"), true)),
            ..Facts::default()
        };
        let mut row = IncidentRow::start(&f("report", "listener"), 1);
        row.apply(&f("report", "listener"), 1, None);
        row.apply(&f("remediate", "persistence"), 2, None);
        row.apply(&f("report", "camera_use"), 3, None);
        row.apply(&f("allow", "listener"), 4, None);
        assert_eq!(row.verdict.as_deref(), Some("remediate"));
        assert_eq!(row.kinds, "camera_use,listener,persistence");
    }

    #[test]
    fn unreadable_bodies_have_no_facts() {
        for body in [
            "",
            "{",
            "[]",
            "{\"payload\": 3}",
            "{\"payload\": {\"finding\": 1}}",
        ] {
            assert_eq!(facts("detection_finding", body), Facts::default(), "{body}");
        }
    }

    /// Whichever finding the agent reports first, a helper's incident is
    /// titled by its listener ("a hidden web server on …"), not by its
    /// launch agent: the daemon e2e test saw both orders.
    #[test]
    fn the_listener_describes_the_incident_whichever_finding_came_first() {
        let listener = facts_of(&chain()[1]);
        let persistence = Facts {
            keys: vec!["s:/Users/jdoe/.zoomus/ZoomOpener.app".into()],
            starts: true,
            finding: Some(("f-agent".into(), true)),
            name: Some("ZoomOpener".into()),
            what: Some("a launch agent".into()),
            severity: Some("high".into()),
            verdict: Some("remediate".into()),
            kind: Some("persistence".into()),
            ..Facts::default()
        };
        let want = listener.what.clone();
        assert!(
            want.as_deref()
                .is_some_and(|w| w.contains("127.0.0.1:19421"))
        );
        for order in [[&persistence, &listener], [&listener, &persistence]] {
            let mut row = IncidentRow::start(order[0], 1);
            row.apply(order[0], 1, None);
            row.apply(order[1], 2, None);
            assert_eq!(row.what, want, "{:?} first", order[0].kind);
            // A second listener finding does not take it over again.
            let mut other = listener.clone();
            other.what = Some("a listener on 127.0.0.1:1".into());
            row.apply(&other, 3, None);
            assert_eq!(row.what, want);
        }
    }

    proptest! {
        /// Whatever a stored body holds, reading its facts never panics,
        /// and a body that is not an object of the expected shape has
        /// none.
        #[test]
        fn facts_never_panic(body in ".{0,300}", kind in "(detection_finding|process_remediation|file_remediation|agent_health)") {
            let _ = facts(&kind, &body);
        }

        /// A real event with one of its fields replaced by any JSON value:
        /// no panic, and keys stay unique.
        #[test]
        fn facts_of_mangled_events(field in 0usize..8, value in prop_oneof![
            Just(serde_json::Value::Null),
            proptest::num::i64::ANY.prop_map(serde_json::Value::from),
            ".{0,40}".prop_map(serde_json::Value::from),
            proptest::bool::ANY.prop_map(serde_json::Value::from),
        ]) {
            let e = &chain()[1];
            let mut v = serde_json::to_value(e).unwrap();
            let paths: [&[&str]; 8] = [
                &["payload", "finding", "kind"],
                &["payload", "finding", "listener", "port"],
                &["payload", "finding", "process", "path"],
                &["payload", "finding", "persistence"],
                &["payload", "finding_info", "uid"],
                &["payload", "activity_id"],
                &["payload", "finding", "reasons"],
                &["payload", "finding", "camera"],
            ];
            let mut at = &mut v;
            let path = paths[field];
            for k in &path[..path.len() - 1] {
                at = &mut at[*k];
            }
            at[path[path.len() - 1]] = value;
            let f = facts("detection_finding", &v.to_string());
            let mut all: Vec<&String> = f.lookup_order().collect();
            let n = all.len();
            all.sort();
            all.dedup();
            prop_assert_eq!(all.len(), n);
        }
    }
}
