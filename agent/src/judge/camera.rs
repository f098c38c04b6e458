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

use super::subject::{Subject, strip_btm_type};
use super::{Observations, Policy};
use crate::clock::rfc3339;
use crate::model::{
    Finding, FindingKind, ListenerRef, PersistenceKind, ProcessIdentity, Verdict, enclosing_bundle,
};
use crate::model::{TccClientType, TccGrant};

mod grant;
mod session;
#[cfg(test)]
mod tests;

use grant::judge_grant;
use session::judge_session;

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
        .map(|g| judge_grant(policy, obs, &helpers, g))
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
    /// with what it is, in words, and whether a signature that validated
    /// vouches for it (every other identifier is a claim).
    identifiers: Vec<(String, &'static str, bool)>,
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
    let mut identifiers: Vec<(String, &'static str, bool)> = Vec::new();
    for p in &procs {
        programs.extend(p.path.as_deref());
        bundles.extend(p.bundle.clone());
        let vouched = p.signature.status == crate::model::SignatureStatus::Valid;
        identifiers.extend(
            p.signature
                .identifier
                .clone()
                .map(|id| (id, "the signing identifier", vouched)),
        );
    }
    if let Some(r) = &f.persistence {
        programs.extend(r.program.as_deref());
        bundles.extend(r.program.as_deref().and_then(enclosing_bundle));
        if r.kind == PersistenceKind::LoginItem && r.path.extension().is_some_and(|e| e == "app") {
            bundles.push(r.path.clone());
        }
        identifiers.extend(r.label.iter().map(|l| {
            (
                strip_btm_type(l).to_string(),
                "the persistence label",
                false,
            )
        }));
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
                    .map(|id| (id, "the associated bundle id", false)),
            );
        }
    }
    programs.sort();
    programs.dedup();
    bundles.sort();
    bundles.dedup();
    identifiers.sort();
    // One entry per identifier, vouched for if any source of it is.
    identifiers.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.2 |= later.2;
        }
        same
    });
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

    /// Does a TCC client name this helper? How, in words, and whether the
    /// tie is evidence rather than a claim: a path is where the helper's
    /// program is; a bundle id is vouched for only by a signature that
    /// validated with it as its identifier (a label or an associated
    /// bundle id is a name the helper gives itself).
    fn owns_client(&self, g: &TccGrant) -> Option<(String, bool)> {
        match g.client_type {
            TccClientType::Path => {
                let client = Path::new(&g.client);
                if let Some(p) = self.programs.iter().find(|p| **p == client) {
                    return Some((format!("the program {}", p.display()), true));
                }
                self.bundles
                    .iter()
                    .find(|b| client.starts_with(b))
                    .map(|b| (format!("inside the bundle {}", b.display()), true))
            }
            TccClientType::BundleId => self
                .identifiers
                .iter()
                .find(|(id, _, _)| id.eq_ignore_ascii_case(&g.client))
                .map(|(id, what, vouched)| (format!("{what} {id}"), *vouched)),
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
