//! `camera_use`: one finding per open camera session, tied to a flagged
//! helper by process tree, by program or by time (a connection to the
//! helper's port shortly before the camera turned on).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::grant::service_name;
use super::{Helper, MAX_ANCESTORS, endpoint, rfc3339_us};
use crate::judge::helper;
use crate::judge::{CameraSessionObservation, ConnectionSeen, Observations, Policy};
use crate::model::TccService;
use crate::model::{
    CameraIncident, CameraRef, Finding, FindingKind, ListenerRef, ProcessIdentity, Severity,
    Verdict,
};

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

pub(super) fn judge_session(
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
        grant_holder: None,
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
