//! Matching the catalog's known-bad entries against a [`Subject`]: on
//! identity only (hidden folder, bundle name, process name, bundle id,
//! login item name), with a port as a supporting signal that never matches
//! by itself.
//!
//! Names are compared ASCII-case-insensitively: macOS volumes are
//! case-insensitive by default, so `~/.ZoomUS` is the same folder.

use std::path::{Component, Path};

use super::catalog::{BenignEntry, Catalog, CatalogEntry};
use super::subject::{Subject, Vouched};

/// A catalog entry matched a subject on identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CatalogHit {
    pub id: String,
    pub name: String,
    /// Plain-words reasons: which signals matched, and the CVEs.
    pub reasons: Vec<String>,
    /// The matched program is the copy embedded inside another app bundle
    /// that is still installed (e.g. inside `zoom.us.app`): part of an
    /// installed app rather than a left-behind helper.
    pub embedded_in: Option<std::path::PathBuf>,
    /// Only claims matched — a label, a login-item or process name, a
    /// bundle id, a signing identifier without a valid signature — and
    /// nothing that shows where the catalog's helper lives or who signed
    /// it. Anyone can write a plist labelled `ZoomOpener`: such a match is
    /// a reason to report an impersonation, never to act.
    pub claims_only: bool,
}

impl Catalog {
    /// The first entry (in file order) whose identity signals match.
    pub(crate) fn find(
        &self,
        subject: &Subject<'_>,
        installed_app: &dyn Fn(&Path, &CatalogEntry) -> bool,
    ) -> Option<CatalogHit> {
        let seen = Seen::of(subject);
        self.entries
            .iter()
            .find_map(|entry| match_entry(entry, subject, &seen, installed_app, "known-bad"))
    }

    /// The first known-risky entry whose identity signals match.
    pub(crate) fn find_risky(
        &self,
        subject: &Subject<'_>,
        installed_app: &dyn Fn(&Path, &CatalogEntry) -> bool,
    ) -> Option<CatalogHit> {
        let seen = Seen::of(subject);
        self.risky
            .iter()
            .find_map(|entry| match_entry(entry, subject, &seen, installed_app, "known-risky"))
    }

    /// A well-known benign listener: its validated signature carries the
    /// entry's Team ID *and* its name or signing identifier is the
    /// entry's. The words, for the finding's reasons.
    pub(crate) fn benign(&self, s: &Subject<'_>) -> Option<String> {
        if s.vouched != Vouched::Yes || !s.signature_valid {
            return None;
        }
        let team = s.team_id?;
        self.benign.iter().find_map(|e| benign_match(e, team, s))
    }

    /// When nothing matched on identity but a port is one a catalog entry
    /// used, say so — an admin seeing 19421 will wonder.
    pub(crate) fn port_only_note(&self, ports: &[u16]) -> Option<String> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.ports.iter().any(|p| ports.contains(p)))?;
        let port = entry.ports.iter().find(|p| ports.contains(p))?;
        Some(format!(
            "port {port} is a port {} was known to use, but nothing else about it matches {} \
             (a port alone is never a catalog match)",
            entry.name, entry.id
        ))
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// One path of a subject taken apart once for every entry it is matched
/// against: its normal components as text, and how many of them come
/// before the last component (the directories).
struct SeenPath<'a> {
    path: &'a Path,
    /// `Component::Normal` parts that are UTF-8, in order; `None` for the
    /// others (kept so the directory cut below counts every component).
    parts: Vec<Option<&'a str>>,
}

impl<'a> SeenPath<'a> {
    fn of(path: &'a Path) -> SeenPath<'a> {
        let parts = path
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        SeenPath { path, parts }
    }

    /// Directory components (everything but the last), as text.
    fn dirs(&self) -> impl Iterator<Item = &'a str> + '_ {
        let n = self.parts.len().saturating_sub(1);
        self.parts[..n].iter().filter_map(|p| *p)
    }

    /// Every normal component, as text.
    fn all(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.parts.iter().filter_map(|p| *p)
    }
}

/// What a subject shows the catalog, computed once per subject rather than
/// once per entry (a scan matches every listener against every entry).
struct Seen<'s> {
    paths: Vec<SeenPath<'s>>,
    names: Vec<&'s str>,
    identifiers: Vec<&'s str>,
}

impl<'s> Seen<'s> {
    fn of(s: &'s Subject<'_>) -> Seen<'s> {
        Seen {
            paths: s.all_paths().into_iter().map(SeenPath::of).collect(),
            names: s.names(),
            identifiers: s.identifiers(),
        }
    }
}

/// `comm` is the executable name cut to 15 (Linux) or 16 (macOS)
/// characters, so `RingCentralOpener` shows as `RingCentralOpen`.
fn name_matches(observed: &str, wanted: &str) -> bool {
    eq(observed, wanted)
        || (observed.len() >= 15
            && wanted.len() > observed.len()
            && wanted.is_char_boundary(observed.len())
            && eq(&wanted[..observed.len()], observed))
}

fn benign_match(e: &BenignEntry, team: &str, s: &Subject<'_>) -> Option<String> {
    if team != e.team_id {
        return None;
    }
    let on = if let Some(id) = s
        .signing_id
        .filter(|id| e.bundle_ids.iter().any(|b| eq(id, b)))
    {
        format!("its signing identifier {id}")
    } else {
        let n = s
            .process_names
            .iter()
            .find(|n| e.process_names.iter().any(|w| name_matches(n, w)))?;
        format!("its name {n}")
    };
    let ports = if e.ports.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = e.ports.iter().map(u16::to_string).collect();
        format!(", known to listen on {}", list.join(", "))
    };
    Some(format!(
        "a well-known listener: {} ({}{ports}), matched on its valid signature by Team ID {} \
         and {on} ({}) — {}",
        e.name, e.vendor, e.team_id, e.id, e.why
    ))
}

fn match_entry(
    entry: &CatalogEntry,
    s: &Subject<'_>,
    seen: &Seen<'_>,
    installed_app: &dyn Fn(&Path, &CatalogEntry) -> bool,
    class: &str,
) -> Option<CatalogHit> {
    // Each signal once, however many paths show it.
    let mut signals: Vec<String> = Vec::new();
    let mut add = |signal: String| {
        if !signals.contains(&signal) {
            signals.push(signal);
        }
    };
    let mut matched_path: Option<&Path> = None;
    // Evidence of identity: where it lives (the catalog's hidden folder or
    // bundle) or a signature that validated. Everything else is a claim.
    let mut evidence = false;
    for seen_path in &seen.paths {
        let path = seen_path.path;
        if let Some(dir) = seen_path
            .dirs()
            .find(|c| entry.hidden_dirs.iter().any(|h| eq(c, h)))
        {
            add(format!("its hidden folder {dir}"));
            matched_path.get_or_insert(path);
            evidence = true;
        }
        let bundle = seen_path
            .all()
            .find(|x| entry.bundle_names.iter().any(|b| eq(x, b)));
        if let Some(b) = bundle {
            add(format!("its bundle {b}"));
            matched_path.get_or_insert(path);
            evidence = true;
        }
    }
    if let Some(n) = seen
        .names
        .iter()
        .find(|n| entry.process_names.iter().any(|w| name_matches(n, w)))
    {
        add(format!("its name {n}"));
    }
    let known_id = |id: &str| entry.bundle_ids.iter().any(|b| eq(id, b));
    if let Some(id) = s.signing_id.filter(|id| s.signature_valid && known_id(id)) {
        add(format!("its valid signature's identifier {id}"));
        evidence = true;
    } else if let Some(id) = seen.identifiers.iter().find(|id| known_id(id)) {
        add(format!("its identifier {id}"));
    }
    if let Some(l) = s
        .labels
        .iter()
        .find(|l| entry.login_item_names.iter().any(|w| eq(l, w)))
    {
        add(format!("its login item or label {l:?}"));
    }
    if signals.is_empty() {
        return None;
    }
    let mut first = format!(
        "matches the {class} catalog entry {} ({}, {}) on {}",
        entry.id,
        entry.name,
        entry.vendor,
        signals.join(", ")
    );
    // Supporting signal only: reached after identity already matched.
    if let Some(p) = s.ports.iter().find(|p| entry.ports.contains(p)) {
        first.push_str(&format!("; port {p}, which it is known to use, agrees"));
    }
    if !evidence {
        first.push_str(
            " — names only, which anyone can give a plist or a program: nothing shows where \
             the catalog's helper lives or who signed it",
        );
    }
    let mut reasons = vec![first, entry.summary.clone()];
    if !entry.cves.is_empty() {
        reasons.push(format!("known vulnerabilities: {}", entry.cves.join(", ")));
    }
    let embedded_in = matched_path
        .or(s.program)
        .and_then(|p| embedded_parent(p, entry))
        .filter(|outer| installed_app(outer, entry));
    Some(CatalogHit {
        id: entry.id.clone(),
        name: entry.name.clone(),
        reasons,
        embedded_in,
        claims_only: !evidence,
    })
}

/// The outer app bundle when the helper is nested inside another app
/// (`zoom.us.app/Contents/Frameworks/ZoomOpener.app`), else `None`.
fn embedded_parent(path: &Path, entry: &CatalogEntry) -> Option<std::path::PathBuf> {
    let outer = crate::model::enclosing_bundle(path)?;
    let outer_name = outer.file_name()?.to_str()?;
    if entry.bundle_names.iter().any(|b| eq(b, outer_name)) {
        None
    } else {
        Some(outer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::builtin().unwrap()
    }

    fn nothing_installed(_: &Path, _: &CatalogEntry) -> bool {
        false
    }

    fn everything_installed(_: &Path, _: &CatalogEntry) -> bool {
        true
    }

    #[test]
    fn each_identity_signal_matches_on_its_own() {
        let table: Vec<(&str, Subject<'static>)> = vec![
            (
                "hidden folder, any case",
                Subject {
                    program: Some(Path::new("/Users/a/.ZoomUS/bin/x")),
                    ..Subject::default()
                },
            ),
            (
                "bundle name",
                Subject {
                    program: Some(Path::new("/tmp/ZoomOpener.app/Contents/MacOS/x")),
                    ..Subject::default()
                },
            ),
            (
                "process name",
                Subject {
                    process_names: vec!["zoomopener"],
                    ..Subject::default()
                },
            ),
            (
                "signing id",
                Subject {
                    signing_id: Some("us.zoom.ZoomOpener"),
                    ..Subject::default()
                },
            ),
            (
                "BTM identifier as label",
                Subject {
                    labels: vec!["2.us.zoom.ZoomOpener"],
                    ..Subject::default()
                },
            ),
            (
                "login item name",
                Subject {
                    labels: vec!["ZoomOpener"],
                    ..Subject::default()
                },
            ),
        ];
        for (what, s) in table {
            let hit = catalog().find(&s, &nothing_installed);
            assert_eq!(
                hit.map(|h| h.id),
                Some("catalog:zoomopener".to_string()),
                "{what}"
            );
        }
    }

    #[test]
    fn names_are_claims_and_location_or_a_valid_signature_is_evidence() {
        let claims: Vec<(&str, Subject<'static>)> = vec![
            (
                "label",
                Subject {
                    program: Some(Path::new("/usr/local/libexec/rootd")),
                    labels: vec!["ZoomOpener"],
                    ..Subject::default()
                },
            ),
            (
                "process name",
                Subject {
                    process_names: vec!["ZoomOpener"],
                    ..Subject::default()
                },
            ),
            (
                "ad-hoc signing id",
                Subject {
                    signing_id: Some("us.zoom.ZoomOpener"),
                    signature_valid: false,
                    ..Subject::default()
                },
            ),
            (
                "associated bundle id",
                Subject {
                    bundle_ids: vec!["us.zoom.ZoomOpener".into()],
                    ..Subject::default()
                },
            ),
        ];
        for (what, s) in claims {
            let hit = catalog().find(&s, &nothing_installed);
            assert!(
                hit.as_ref().is_some_and(|h| h.claims_only),
                "{what}: {hit:?}"
            );
            let first = &hit.map(|h| h.reasons[0].clone()).unwrap_or_default();
            assert!(first.contains("names only"), "{what}: {first}");
        }
        let evidence: Vec<(&str, Subject<'static>)> = vec![
            (
                "hidden folder",
                Subject {
                    program: Some(Path::new("/Users/a/.zoomus/x")),
                    labels: vec!["ZoomOpener"],
                    ..Subject::default()
                },
            ),
            (
                "bundle",
                Subject {
                    program: Some(Path::new("/tmp/ZoomOpener.app/Contents/MacOS/x")),
                    ..Subject::default()
                },
            ),
            (
                "valid signature",
                Subject {
                    signing_id: Some("us.zoom.ZoomOpener"),
                    signature_valid: true,
                    ..Subject::default()
                },
            ),
        ];
        for (what, s) in evidence {
            let hit = catalog().find(&s, &nothing_installed);
            assert!(
                hit.as_ref().is_some_and(|h| !h.claims_only),
                "{what}: {hit:?}"
            );
        }
    }

    #[test]
    fn near_misses_do_not_match() {
        let table: Vec<(&str, Subject<'static>)> = vec![
            (
                "port only",
                Subject {
                    program: Some(Path::new("/usr/local/bin/node")),
                    process_names: vec!["node"],
                    ports: vec![19421, 19424, 19433],
                    ..Subject::default()
                },
            ),
            (
                "the Zoom app itself",
                Subject {
                    program: Some(Path::new(
                        "/Applications/zoom.us.app/Contents/MacOS/zoom.us",
                    )),
                    process_names: vec!["zoom.us"],
                    signing_id: Some("us.zoom.xos"),
                    ..Subject::default()
                },
            ),
            (
                "folder named like it but not hidden",
                Subject {
                    program: Some(Path::new("/Users/a/zoomus/helper")),
                    ..Subject::default()
                },
            ),
            (
                "hidden folder as the file name",
                Subject {
                    program: Some(Path::new("/Users/a/.zoomus")),
                    ..Subject::default()
                },
            ),
            (
                "prefix of a name",
                Subject {
                    process_names: vec!["Zoom"],
                    ..Subject::default()
                },
            ),
        ];
        for (what, s) in table {
            assert_eq!(catalog().find(&s, &everything_installed), None, "{what}");
        }
        let note = catalog().port_only_note(&[19421]).unwrap_or_default();
        assert!(note.contains("catalog:zoomopener"), "{note}");
        assert_eq!(catalog().port_only_note(&[8080]), None);
    }

    #[test]
    fn embedded_copy_is_recognised_only_inside_an_installed_parent() {
        let nested = Subject {
            program: Some(Path::new(
                "/Applications/zoom.us.app/Contents/Frameworks/ZoomOpener.app/Contents/MacOS/ZoomOpener",
            )),
            ..Subject::default()
        };
        let hit = catalog().find(&nested, &everything_installed).unwrap();
        assert_eq!(
            hit.embedded_in.as_deref(),
            Some(Path::new("/Applications/zoom.us.app"))
        );
        let hit = catalog().find(&nested, &nothing_installed).unwrap();
        assert_eq!(hit.embedded_in, None, "parent gone: a leftover");
        let own = Subject {
            program: Some(Path::new(
                "/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener",
            )),
            ..Subject::default()
        };
        let hit = catalog().find(&own, &everything_installed).unwrap();
        assert_eq!(hit.embedded_in, None, "its own bundle is not a parent");
        assert!(
            hit.reasons[0].contains("hidden folder .zoomus"),
            "{:?}",
            hit.reasons
        );
    }

    #[test]
    fn comm_truncation_still_matches() {
        assert!(name_matches("RingCentralOpen", "RingCentralOpener"));
        assert!(name_matches("ringcentralopener", "RingCentralOpener"));
        assert!(
            !name_matches("Ring", "RingCentralOpener"),
            "short names must be exact"
        );
        assert!(!name_matches("ZoomOpenerX", "ZoomOpener"));
    }
}
