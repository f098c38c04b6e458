//! Camera access: one finding per privacy grant (`camera_grant`) and one per
//! open camera session (`camera_use`), judged against the helpers this same
//! pass flagged. Pure, like the rest of the judge; it runs after the
//! listener and persistence findings exist because "flagged" means one of
//! them says remediate.
//!
//! The attack it watches for is Zoom's (CVE-2019-13450): a web page talks
//! to a helper on localhost and, moments later, a camera turns on. So a
//! session is tied to a flagged helper by process tree (the helper or its
//! descendant holds the camera), by program (another copy of the helper),
//! or by time (it began within `CameraCorrelationSeconds` after something
//! connected to the helper's port). lenscap never acts on a camera finding
//! by itself: a session in a helper's tree ends when the helper's tree is
//! terminated, and a TCC grant is reported, never revoked.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::helper;
use super::rules;
use super::subject::{Subject, strip_btm_type};
use super::{CameraSessionObservation, ConnectionSeen, GrantObservation, Observations, Policy};
use crate::clock::rfc3339;
use crate::config::RuleAction;
use crate::model::{
    CameraIncident, CameraRef, Finding, FindingKind, ListenerRef, PersistenceKind, ProcessIdentity,
    Severity, Verdict, enclosing_bundle,
};
use crate::parse::tcc::{TccAuth, TccClientType, TccGrant, TccReason, TccService};

#[cfg(test)]
mod tests;

/// How far up the parent chain a camera user is followed. Real trees are
/// a handful deep; the bound only protects against a corrupt table.
const MAX_ANCESTORS: usize = 64;

/// The camera findings of one pass: one per grant, then one per session.
/// `judged` are this pass's listener and persistence findings, already in
/// their final order (so which helper is named never depends on the order
/// observe produced).
pub(crate) fn judge_camera(
    policy: &Policy,
    obs: &Observations,
    judged: &[Finding],
) -> Vec<Finding> {
    let helpers = flagged_helpers(obs, judged);
    let mut findings: Vec<Finding> = obs
        .grants
        .iter()
        .map(|g| judge_grant(policy, &helpers, g))
        .collect();
    findings.extend(
        obs.camera_sessions
            .iter()
            .map(|s| judge_session(policy, obs, &helpers, s)),
    );
    findings
}

/// A listener or persistence finding of this pass that says remediate,
/// with what identifies it.
#[derive(Debug)]
struct Helper<'a> {
    finding: &'a Finding,
    /// Its processes (never pid 0 or 1: those are never remediated, and
    /// every process descends from launchd).
    pids: BTreeSet<u32>,
    /// Executables of its processes and the persistence item's program.
    programs: Vec<&'a Path>,
    /// Enclosing `*.app` bundles of those programs (and a login item's
    /// own bundle).
    bundles: Vec<PathBuf>,
    /// Signing identifiers of its processes, the persistence item's label
    /// and associated / parent bundle ids (BTM type prefix dropped), each
    /// with what it is, in words.
    identifiers: Vec<(String, &'static str)>,
}

fn flagged_helpers<'a>(obs: &'a Observations, judged: &'a [Finding]) -> Vec<Helper<'a>> {
    judged
        .iter()
        .filter(|f| {
            f.verdict == Verdict::Remediate
                && matches!(f.kind, FindingKind::Listener | FindingKind::Persistence)
        })
        .map(|f| helper_of(obs, f))
        .collect()
}

fn helper_of<'a>(obs: &'a Observations, f: &'a Finding) -> Helper<'a> {
    let procs: Vec<&ProcessIdentity> = f.process.iter().chain(f.processes.iter()).collect();
    let pids: BTreeSet<u32> = procs.iter().map(|p| p.pid).filter(|&p| p > 1).collect();
    let mut programs: Vec<&Path> = Vec::new();
    let mut bundles: Vec<PathBuf> = Vec::new();
    let mut identifiers: Vec<(String, &'static str)> = Vec::new();
    for p in &procs {
        programs.extend(p.path.as_deref());
        bundles.extend(p.bundle.clone());
        identifiers.extend(
            p.signature
                .identifier
                .clone()
                .map(|id| (id, "the signing identifier")),
        );
    }
    if let Some(r) = &f.persistence {
        programs.extend(r.program.as_deref());
        bundles.extend(r.program.as_deref().and_then(enclosing_bundle));
        if r.kind == PersistenceKind::LoginItem && r.path.extension().is_some_and(|e| e == "app") {
            bundles.push(r.path.clone());
        }
        identifiers.extend(
            r.label
                .iter()
                .map(|l| (strip_btm_type(l).to_string(), "the persistence label")),
        );
        // The ref carries no bundle ids; the item it was made from does.
        let same = |i: &&crate::model::PersistenceItem| {
            i.kind == r.kind && i.path == r.path && i.label == r.label
        };
        if let Some(item) = obs.persistence.iter().find(same) {
            identifiers.extend(
                Subject::default()
                    .with_item(item)
                    .bundle_ids
                    .into_iter()
                    .map(|id| (id, "the associated bundle id")),
            );
        }
    }
    programs.sort();
    programs.dedup();
    bundles.sort();
    bundles.dedup();
    identifiers.sort();
    identifiers.dedup_by(|a, b| a.0 == b.0);
    Helper {
        finding: f,
        pids,
        programs,
        bundles,
        identifiers,
    }
}

impl Helper<'_> {
    fn pid(&self) -> Option<u32> {
        self.finding.process.as_ref().map(|p| p.pid)
    }

    /// `the flagged helper ZoomOpener (pid 601, /Users/ann/.zoomus/…/ZoomOpener,
    /// listening on 127.0.0.1:19421)`.
    fn describe(&self) -> String {
        self.describe_with(true)
    }

    /// [`Helper::describe`], leaving out where it listens when the sentence
    /// names the endpoint itself.
    fn describe_with(&self, listener: bool) -> String {
        let f = self.finding;
        let name = f
            .process
            .as_ref()
            .map(|p| p.name.clone())
            .or_else(|| f.persistence.as_ref().and_then(|r| r.label.clone()))
            .or_else(|| {
                self.programs
                    .first()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "helper".into());
        let mut parts: Vec<String> = Vec::new();
        if let Some(pid) = self.pid() {
            parts.push(format!("pid {pid}"));
        }
        let program = f
            .process
            .as_ref()
            .and_then(|p| p.path.as_deref())
            .or(self.programs.first().copied());
        if let Some(program) = program {
            parts.push(program.display().to_string());
        }
        if let Some(l) = f.listener.as_ref().filter(|_| listener) {
            parts.push(format!("listening on {}", endpoint(l.address, l.port)));
        }
        if parts.is_empty() {
            format!("the flagged helper {name}")
        } else {
            format!("the flagged helper {name} ({})", parts.join(", "))
        }
    }

    /// `which lenscap remediates (catalog:zoomopener)`.
    fn flagged_by(&self) -> String {
        match &self.finding.rule {
            Some(rule) => format!("which lenscap remediates ({rule})"),
            None => "which lenscap remediates (the heuristics)".into(),
        }
    }

    /// Does a TCC client name this helper?
    fn owns_client(&self, g: &TccGrant) -> Option<String> {
        match g.client_type {
            TccClientType::Path => {
                let client = Path::new(&g.client);
                if let Some(p) = self.programs.iter().find(|p| **p == client) {
                    return Some(format!("the program {}", p.display()));
                }
                self.bundles
                    .iter()
                    .find(|b| client.starts_with(b))
                    .map(|b| format!("inside the bundle {}", b.display()))
            }
            TccClientType::BundleId => self
                .identifiers
                .iter()
                .find(|(id, _)| id.eq_ignore_ascii_case(&g.client))
                .map(|(id, what)| format!("{what} {id}")),
            TccClientType::Other(_) => None,
        }
    }

    /// Does a connection to `at:port` reach this helper's listener?
    fn listens_at(&self, at: IpAddr, port: u16) -> Option<&ListenerRef> {
        let l = self.finding.listener.as_ref()?;
        (l.port == port && same_listener(l.address, at)).then_some(l)
    }
}

/// A connection seen on `seen` reached a socket bound to `bound`: the same
/// address (`::ffff:127.0.0.1` is `127.0.0.1`), or `bound` is a wildcard
/// that accepts it (`0.0.0.0` takes IPv4, `::` takes both), or the sampler
/// could only name the wildcard.
fn same_listener(bound: IpAddr, seen: IpAddr) -> bool {
    let (b, s) = (bound.to_canonical(), seen.to_canonical());
    b == s
        || s.is_unspecified()
        || match b {
            IpAddr::V4(v4) => v4.is_unspecified() && s.is_ipv4(),
            IpAddr::V6(v6) => v6.is_unspecified(),
        }
}

fn endpoint(address: IpAddr, port: u16) -> String {
    SocketAddr::new(address, port).to_string()
}

fn rfc3339_us(unix_us: u64) -> String {
    rfc3339(i64::try_from(unix_us / 1_000_000).unwrap_or(i64::MAX))
}

// ----- grants -----

fn service_name(s: TccService) -> &'static str {
    match s {
        TccService::Camera => "camera",
        TccService::Microphone => "microphone",
        TccService::ScreenCapture => "screen_capture",
        TccService::AllFiles => "all_files",
    }
}

fn service_words(s: TccService) -> &'static str {
    match s {
        TccService::Camera => "the camera",
        TccService::Microphone => "the microphone",
        TccService::ScreenCapture => "screen capture",
        TccService::AllFiles => "all files (Full Disk Access)",
    }
}

fn auth_name(a: TccAuth) -> String {
    match a {
        TccAuth::Allowed => "allowed".into(),
        TccAuth::Denied => "denied".into(),
        TccAuth::Limited => "limited".into(),
        TccAuth::Unknown => "unknown".into(),
        TccAuth::Other(n) => format!("other:{n}"),
    }
}

fn client_type_name(t: TccClientType) -> String {
    match t {
        TccClientType::BundleId => "bundle_id".into(),
        TccClientType::Path => "path".into(),
        TccClientType::Other(n) => format!("other:{n}"),
    }
}

fn reason_name(r: TccReason) -> String {
    match r {
        TccReason::UserConsent => "user_consent".into(),
        TccReason::UserSet => "user_set".into(),
        TccReason::SystemSet => "system_set".into(),
        TccReason::MdmPolicy => "mdm_policy".into(),
        TccReason::Entitled => "entitled".into(),
        TccReason::Other(n) => format!("other:{n}"),
    }
}

fn reason_words(r: TccReason) -> String {
    match r {
        TccReason::UserConsent => "user consent".into(),
        TccReason::UserSet => "set by the user in System Settings".into(),
        TccReason::SystemSet => "set by the system".into(),
        TccReason::MdmPolicy => "an MDM profile".into(),
        TccReason::Entitled => "an entitlement".into(),
        TccReason::Other(n) => format!("reason {n}"),
    }
}

/// `us.zoom.xos may use the camera (user consent, since 2019-07-10T…)`.
fn describe_grant(g: &TccGrant) -> String {
    let what = service_words(g.service);
    let client = &g.client;
    let mut head = match g.auth {
        TccAuth::Allowed => format!("{client} may use {what}"),
        TccAuth::Limited => format!("{client} may use {what}, limited"),
        TccAuth::Denied => format!("{client} is denied {what}"),
        TccAuth::Unknown => format!("{client} has no decision for {what} (unknown)"),
        TccAuth::Other(n) => format!("{client} has an unrecognised decision ({n}) for {what}"),
    };
    let mut detail: Vec<String> = Vec::new();
    detail.extend(g.reason.map(reason_words));
    if let Some(t) = g.last_modified {
        detail.push(format!("since {}", rfc3339(t)));
    }
    if !detail.is_empty() {
        head.push_str(&format!(" ({})", detail.join(", ")));
    }
    head
}

/// Camera, microphone and screen capture are how a page spies on a person;
/// Full Disk Access is grave, but not the attack this issue is about.
fn spies(s: TccService) -> bool {
    matches!(
        s,
        TccService::Camera | TccService::Microphone | TccService::ScreenCapture
    )
}

/// What admin rules match a TCC client against: a bundle id is tested by
/// `BundleID` and `SigningID` rules, a path by `Path` globs. Nothing else
/// (Team ID, label, port) can be known from a TCC row, so such rules never
/// match a grant.
fn grant_subject(g: &TccGrant) -> Subject<'_> {
    match g.client_type {
        // TCC binds a bundle-id grant to the client's code requirement
        // (`csreq`) and checks it at every access: the identity is vouched
        // for by the signature TCC checked, not merely claimed.
        TccClientType::BundleId => Subject {
            signing_id: Some(g.client.as_str()),
            bundle_ids: vec![g.client.clone()],
            vouched: super::subject::Vouched::Yes,
            ..Subject::default()
        },
        TccClientType::Path => Subject {
            program: Some(Path::new(&g.client)),
            ..Subject::default()
        },
        TccClientType::Other(_) => Subject::default(),
    }
}

fn judge_grant(policy: &Policy, helpers: &[Helper<'_>], o: &GrantObservation) -> Finding {
    let g = &o.grant;
    let what = service_words(g.service);
    let mut reasons = vec![describe_grant(g)];
    let grants = g.auth.grants_access();
    let owner = helpers
        .iter()
        .find_map(|h| h.owns_client(g).map(|how| (h, how)));
    let hit = rules::decide(&policy.rules, &grant_subject(g));
    // Said whenever it gives access, whatever decides below.
    if grants && o.new {
        reasons.push(format!(
            "new since lenscap last read {}",
            o.database.display()
        ));
    }

    let (verdict, severity, rule) = match (grants, owner, hit) {
        (true, Some((h, how)), _) => {
            reasons.push(format!(
                "the client is {how} of {}, {}",
                h.describe(),
                h.flagged_by()
            ));
            let (severity, word) = if spies(g.service) {
                (Severity::Critical, "critical")
            } else {
                (Severity::High, "high")
            };
            reasons.push(format!(
                "a helper lenscap remediates holds access to {what}: reported, {word} (lenscap \
                 does not revoke privacy grants; remediating the helper ends its use of this one)"
            ));
            (Verdict::Report, severity, h.finding.rule.clone())
        }
        (true, None, Some(hit)) if hit.action == RuleAction::Deny => {
            reasons.extend(hit.reasons);
            reasons.push(format!(
                "an admin deny rule matches a client that holds access to {what}: reported \
                 (lenscap does not revoke privacy grants)"
            ));
            (Verdict::Report, Severity::High, Some(hit.id))
        }
        (true, None, hit) if o.new => match hit {
            Some(hit) => {
                reasons.extend(hit.reasons);
                reasons.push(
                    "an admin allow rule covers this client, so a new grant is expected: \
                         allowed"
                        .into(),
                );
                (Verdict::Allow, Severity::Info, Some(hit.id))
            }
            None => {
                reasons.push(format!(
                    "a new grant of {what} is worth a look: reported (nothing ties it to a \
                         flagged helper)"
                ));
                (Verdict::Report, Severity::Medium, None)
            }
        },
        _ => (Verdict::Allow, Severity::Info, None),
    };

    Finding {
        kind: FindingKind::CameraGrant,
        verdict,
        severity,
        reasons,
        rule,
        process: None,
        processes: Vec::new(),
        listener: None,
        persistence: None,
        http: None,
        judged_path: None,
        camera: Some(CameraRef {
            service: service_name(g.service).into(),
            client: g.client.clone(),
            auth: auth_name(g.auth),
            since: g.last_modified.map(rfc3339),
            client_type: Some(client_type_name(g.client_type)),
            reason: g.reason.map(reason_name),
            database: Some(o.database.clone()),
            pid: None,
            device: None,
            duration_seconds: None,
            incident: None,
        }),
    }
}

// ----- sessions -----

/// The session's process and its ancestors, nearest first. Stops at a
/// process we cannot see, at a loop, and after [`MAX_ANCESTORS`].
fn lineage(obs: &Observations, pid: u32) -> Vec<&ProcessIdentity> {
    let mut chain: Vec<&ProcessIdentity> = Vec::new();
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    let mut next = Some(pid);
    while let Some(pid) = next {
        if chain.len() > MAX_ANCESTORS || !seen.insert(pid) {
            break;
        }
        let Some(p) = obs.processes.get(&pid) else {
            break;
        };
        chain.push(p);
        next = (p.ppid != p.pid).then_some(p.ppid);
    }
    chain
}

/// How the session is tied to a flagged helper, in words.
fn tie<'h, 'a>(
    helpers: &'h [Helper<'a>],
    session: &CameraSessionObservation,
    chain: &[&ProcessIdentity],
) -> Option<(&'h Helper<'a>, String)> {
    if let Some(pid) = session.pid {
        if let Some(h) = helpers.iter().find(|h| h.pids.contains(&pid)) {
            return Some((h, format!("it is {} itself", h.describe())));
        }
        for ancestor in chain.iter().skip(1) {
            if let Some(h) = helpers.iter().find(|h| h.pids.contains(&ancestor.pid)) {
                return Some((
                    h,
                    format!(
                        "it descends from {}: its ancestor {} (pid {}) is that helper",
                        h.describe(),
                        ancestor.name,
                        ancestor.pid
                    ),
                ));
            }
        }
        if let Some(exe) = chain.first().and_then(|p| p.path.as_deref())
            && let Some(h) = helpers.iter().find(|h| h.programs.contains(&exe))
        {
            return Some((
                h,
                format!("it runs {}, the program of {}", exe.display(), h.describe()),
            ));
        }
    }
    let bundle_id = session.bundle_id.as_deref()?;
    helpers
        .iter()
        .find(|h| {
            h.finding
                .process
                .iter()
                .chain(h.finding.processes.iter())
                .filter_map(|p| p.signature.identifier.as_deref())
                .any(|id| id.eq_ignore_ascii_case(bundle_id))
        })
        .map(|h| {
            (
                h,
                format!(
                    "its bundle id {bundle_id} is the signing identifier of {}",
                    h.describe()
                ),
            )
        })
}

/// The latest connection to a flagged helper's port at most `window`
/// seconds before the session began (never after it). Ties go to the first
/// helper in finding order, then the lowest address, so the choice never
/// depends on input order.
fn incident<'h, 'a>(
    window_s: u64,
    helpers: &'h [Helper<'a>],
    connections: &[ConnectionSeen],
    start_us: u64,
) -> Option<(&'h Helper<'a>, &'h ListenerRef, ConnectionSeen)> {
    if window_s == 0 {
        return None;
    }
    let window_us = window_s.saturating_mul(1_000_000);
    let mut best: Option<(u64, usize, IpAddr, u16, &ListenerRef)> = None;
    for c in connections {
        if c.first_seen_unix_us > start_us || start_us - c.first_seen_unix_us > window_us {
            continue;
        }
        let Some((hi, l)) = helpers
            .iter()
            .enumerate()
            .find_map(|(i, h)| h.listens_at(c.address, c.port).map(|l| (i, l)))
        else {
            continue;
        };
        let better = match &best {
            None => true,
            Some((at, bhi, addr, port, _)) => {
                (
                    c.first_seen_unix_us,
                    std::cmp::Reverse((hi, c.address, c.port)),
                ) > (*at, std::cmp::Reverse((*bhi, *addr, *port)))
            }
        };
        if better {
            best = Some((c.first_seen_unix_us, hi, c.address, c.port, l));
        }
    }
    best.map(|(at, hi, address, port, l)| {
        (
            &helpers[hi],
            l,
            ConnectionSeen {
                address,
                port,
                first_seen_unix_us: at,
            },
        )
    })
}

/// Why lenscap must not act on the session's process, whatever it is tied
/// to: the never-list shared with listeners and persistence, or a process
/// it cannot see (like a listener whose owner cannot be seen).
fn blocked(obs: &Observations, session: &CameraSessionObservation) -> Option<String> {
    let Some(pid) = session.pid else {
        return Some("no process was named for this session, so there is nothing to act on".into());
    };
    if let Some(p) = obs.processes.get(&pid) {
        return helper::protected(p, obs);
    }
    Some(match pid {
        0 => "the kernel (pid 0) holds the camera".into(),
        1 => "launchd (pid 1) holds the camera".into(),
        p if p == obs.agent_pid && p != 0 => "lenscap itself holds the camera".into(),
        p => format!("its process (pid {p}) could not be seen, so there is nothing to act on"),
    })
}

fn judge_session(
    policy: &Policy,
    obs: &Observations,
    helpers: &[Helper<'_>],
    s: &CameraSessionObservation,
) -> Finding {
    let chain = s.pid.map(|pid| lineage(obs, pid)).unwrap_or_default();
    let process = chain.first().copied();
    let client = s
        .bundle_id
        .clone()
        .or_else(|| {
            process
                .and_then(|p| p.path.as_ref())
                .map(|p| p.display().to_string())
        })
        .or_else(|| process.map(|p| p.name.clone()).filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    let since = rfc3339_us(s.since_unix_us);
    let who = match s.pid {
        Some(pid) => format!("{client} (pid {pid})"),
        None => client.clone(),
    };
    let device = s
        .device
        .as_ref()
        .map_or_else(String::new, |d| format!(" on {}", d.display()));
    let in_use = format!("camera in use by {who}{device} since {since}");
    let mut reasons = Vec::new();

    let found = incident(
        policy.camera_correlation_seconds,
        helpers,
        &obs.connections,
        s.since_unix_us,
    );
    let incident_ref = found.as_ref().map(|(h, l, c)| {
        let secs = (s.since_unix_us - c.first_seen_unix_us) / 1_000_000;
        let gap = if s.since_unix_us - c.first_seen_unix_us < 1_000_000 {
            "less than a second".to_string()
        } else {
            format!("{secs} s")
        };
        let why = format!(
            "a camera turned on {gap} after something connected to {} on {}, within the {} s \
             CameraCorrelationSeconds window; lenscap remediates that helper ({})",
            h.describe_with(false),
            endpoint(c.address, c.port),
            policy.camera_correlation_seconds,
            h.finding.rule.as_deref().unwrap_or("the heuristics")
        );
        (
            why,
            CameraIncident {
                helper: (*l).clone(),
                helper_pid: h.pid(),
                helper_rule: h.finding.rule.clone(),
                connection_at: rfc3339_us(c.first_seen_unix_us),
                seconds_before: secs,
            },
        )
    });

    let (verdict, severity, rule) = if let Some((h, how)) = tie(helpers, s, &chain) {
        reasons.push(in_use);
        reasons.push(how);
        if let Some((why, _)) = &incident_ref {
            reasons.push(why.clone());
        }
        let wanted = format!(
            "a helper lenscap remediates ({}) is using the camera: remediate — the session \
             is contained with the helper (its process tree is terminated when the helper is)",
            h.finding.rule.as_deref().unwrap_or("the heuristics")
        );
        match blocked(obs, s) {
            None => {
                reasons.push(wanted);
                (
                    Verdict::Remediate,
                    Severity::Critical,
                    h.finding.rule.clone(),
                )
            }
            Some(why) => {
                reasons.push(wanted);
                reasons.push(format!(
                    "lenscap never acts on it — {why} — so remediate is lowered to report"
                ));
                (Verdict::Report, Severity::Critical, h.finding.rule.clone())
            }
        }
    } else if let Some((why, i)) = &incident_ref {
        reasons.push(in_use);
        reasons.push(why.clone());
        reasons.push(
            "a web page may have used the flagged helper to turn the camera on: reported as a \
             critical incident (the helper itself is remediated on its own finding)"
                .into(),
        );
        (Verdict::Report, Severity::Critical, i.helper_rule.clone())
    } else {
        // One line: the CLI shows only the last reason of an allowed finding.
        reasons.push(format!(
            "{in_use}; nothing ties it to a flagged helper: allowed"
        ));
        (Verdict::Allow, Severity::Info, None)
    };

    Finding {
        kind: FindingKind::CameraUse,
        verdict,
        severity,
        reasons,
        rule,
        process: process.cloned(),
        processes: Vec::new(),
        listener: None,
        persistence: None,
        http: None,
        judged_path: None,
        camera: Some(CameraRef {
            service: service_name(TccService::Camera).into(),
            client,
            auth: "in_use".into(),
            since: Some(since),
            client_type: None,
            reason: None,
            database: None,
            pid: s.pid,
            device: s.device.clone(),
            duration_seconds: None,
            incident: incident_ref.map(|(_, i)| i),
        }),
    }
}
