//! `camera_grant`: one finding per privacy grant read from a TCC database,
//! judged by who holds it — a flagged helper, a client an admin rule names,
//! a grant new since the last read — and said in plain words.

use std::path::Path;

use super::Helper;
use crate::clock::rfc3339;
use crate::judge::listener::installed_app;
use crate::judge::locate::{self, Context};
use crate::judge::rules;
use crate::judge::subject::Subject;
use crate::judge::{GrantObservation, Observations, Policy};
use crate::model::RuleAction;
use crate::model::{CameraRef, Finding, FindingKind, GrantHolder, Severity, Verdict};
use crate::model::{TccAuth, TccClientType, TccGrant, TccReason, TccService};

pub(super) fn service_name(s: TccService) -> &'static str {
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
            vouched: crate::judge::subject::Vouched::Yes,
            ..Subject::default()
        },
        TccClientType::Path => Subject {
            program: Some(Path::new(&g.client)),
            ..Subject::default()
        },
        TccClientType::Other(_) => Subject::default(),
    }
}

/// What a grant's client tells by itself, with no helper running: the
/// known-bad catalog names it, or (a path client) its program lives where
/// no installed app put it, or is gone. Judged by the same evidence as a
/// helper: the catalog on the client's identity (a bundle id TCC vouches
/// for, a path), the place on the path as `locate` reads it.
struct ClientConcern {
    /// `(catalog entry id, reasons)` when the catalog names the client.
    catalog: Option<(String, Vec<String>)>,
    /// Why the path client's place is undisclosed, or that it is gone.
    place: Vec<String>,
}

fn client_concern(policy: &Policy, obs: &Observations, o: &GrantObservation) -> ClientConcern {
    let g = &o.grant;
    let subject = grant_subject(g);
    let installed = installed_app(policy, obs);
    let catalog = policy
        .catalog
        .find(&subject, &installed)
        // A copy embedded in its installed parent app is that app's own.
        .filter(|hit| hit.embedded_in.is_none())
        .map(|hit| {
            let mut reasons = hit.reasons;
            if hit.claims_only {
                reasons.push(
                    "only its name matches, which anyone can claim; a grant to it is reported \
                     all the same"
                        .into(),
                );
            }
            (hit.id, reasons)
        });
    let mut place = Vec::new();
    if g.client_type == TccClientType::Path {
        let path = Path::new(&g.client);
        if o.client_exists == Some(false) {
            place.push(format!(
                "the program it was granted to, {}, is gone: the grant outlived its app",
                path.display()
            ));
        } else {
            // A grant is not a person starting a program, but a program a
            // person keeps in a toolchain folder may well hold one: judged
            // as a person's choice, as for a process started from a shell.
            let ctx = Context {
                homes: &obs.home_dirs,
                translocated: &obs.translocated,
                persistent: false,
            };
            let at = locate::program_place(path, policy, &ctx);
            place.extend(at.traits(false));
        }
    }
    ClientConcern { catalog, place }
}

/// A bundle-id grant tied to the helper only by a name it gives itself
/// (a launchd label, an associated bundle id, an identifier no valid
/// signature vouches for), when an installed app carries that bundle id:
/// the grant may well be that app's, and a name is a claim, so it is
/// reported and never reset (docs/design.md §4). `None` when a reset is
/// fine.
fn claimed_by_another_app(
    obs: &Observations,
    g: &TccGrant,
    vouched: bool,
    how: &str,
) -> Option<String> {
    let installed = obs
        .installed_bundle_ids
        .iter()
        .any(|b| b.eq_ignore_ascii_case(&g.client));
    (g.client_type == TccClientType::BundleId && !vouched && installed).then(|| {
        format!(
            "the helper only claims the name {} ({how}; no valid signature vouches for it) and \
             an installed app carries that bundle id: lenscap does not reset another app's \
             grant on a name anyone can claim",
            g.client
        )
    })
}

pub(super) fn judge_grant(
    policy: &Policy,
    obs: &Observations,
    helpers: &[Helper<'_>],
    o: &GrantObservation,
) -> Finding {
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
    let concern = if grants && owner.is_none() {
        client_concern(policy, obs, o)
    } else {
        ClientConcern {
            catalog: None,
            place: Vec::new(),
        }
    };
    let (spy_severity, spy_word) = if spies(g.service) {
        (Severity::Critical, "critical")
    } else {
        (Severity::High, "high")
    };

    let mut grant_holder = None;
    let (verdict, severity, rule) = match (grants, owner, hit) {
        (true, Some((h, (how, vouched))), _) => {
            reasons.push(format!(
                "the client is {how} of {}, {}",
                h.describe(),
                h.flagged_by()
            ));
            let keep = claimed_by_another_app(obs, g, vouched, &how);
            let reset = if !spies(g.service) {
                "lenscap resets only camera, microphone and screen recording grants"
            } else if keep.is_some() {
                "lenscap does not reset it: see above"
            } else {
                "remediating the helper resets it where the helper's actor may"
            };
            if let Some(why) = &keep {
                reasons.push(why.clone());
            }
            reasons.push(format!(
                "a helper lenscap remediates holds access to {what}: reported, {spy_word} \
                 ({reset})"
            ));
            grant_holder = h
                .finding
                .helper_key()
                .map(|helper| GrantHolder { helper, keep });
            (Verdict::Report, spy_severity, h.finding.rule.clone())
        }
        (true, None, Some(hit)) if hit.action == RuleAction::Deny => {
            reasons.extend(hit.reasons);
            reasons.push(format!(
                "an admin deny rule matches a client that holds access to {what}: reported \
                 (lenscap does not revoke privacy grants)"
            ));
            (Verdict::Report, Severity::High, Some(hit.id))
        }
        (true, None, Some(hit))
            if o.new || concern.catalog.is_some() || !concern.place.is_empty() =>
        {
            reasons.extend(concern.catalog.into_iter().flat_map(|(_, r)| r));
            reasons.extend(concern.place);
            reasons.extend(hit.reasons);
            reasons.push(
                "an admin allow rule covers this client, so the grant is expected: allowed".into(),
            );
            (Verdict::Allow, Severity::Info, Some(hit.id))
        }
        (true, None, None) if concern.catalog.is_some() => {
            let (id, why) = concern.catalog.unwrap_or_default();
            reasons.extend(why);
            reasons.push(format!(
                "a known-bad helper holds access to {what}, running or not: reported, {spy_word} \
                 (lenscap does not revoke privacy grants)"
            ));
            (Verdict::Report, spy_severity, Some(id))
        }
        (true, None, None) if !concern.place.is_empty() => {
            reasons.extend(concern.place);
            reasons.push(format!(
                "a program no installed app accounts for holds access to {what}: reported, high"
            ));
            (Verdict::Report, Severity::High, None)
        }
        (true, None, None) if o.new => {
            reasons.push(format!(
                "a new grant of {what} is worth a look: reported (nothing ties it to a flagged \
                 helper)"
            ));
            (Verdict::Report, Severity::Medium, None)
        }
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
        grant_holder,
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

#[cfg(test)]
mod tests;
