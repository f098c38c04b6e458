//! Matching the catalog's known-bad entries against a [`Subject`]: on
//! identity only (hidden folder, bundle name, process name, bundle id,
//! login item name), with a port as a supporting signal that never matches
//! by itself.
//!
//! Names are compared ASCII-case-insensitively: macOS volumes are
//! case-insensitive by default, so `~/.ZoomUS` is the same folder.

use std::path::{Component, Path};

use super::catalog::{Catalog, CatalogEntry};
use super::subject::Subject;

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
}

impl Catalog {
    /// The first entry (in file order) whose identity signals match.
    pub(crate) fn find(
        &self,
        subject: &Subject<'_>,
        installed_app: &dyn Fn(&Path, &CatalogEntry) -> bool,
    ) -> Option<CatalogHit> {
        self.entries
            .iter()
            .find_map(|entry| match_entry(entry, subject, installed_app))
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

/// Directory components of a path (everything but the last), as text.
fn dir_components(path: &Path) -> impl Iterator<Item = &str> {
    let n = path.components().count();
    path.components()
        .take(n.saturating_sub(1))
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
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

fn match_entry(
    entry: &CatalogEntry,
    s: &Subject<'_>,
    installed_app: &dyn Fn(&Path, &CatalogEntry) -> bool,
) -> Option<CatalogHit> {
    // Each signal once, however many paths show it.
    let mut signals: Vec<String> = Vec::new();
    let mut add = |signal: String| {
        if !signals.contains(&signal) {
            signals.push(signal);
        }
    };
    let mut matched_path: Option<&Path> = None;
    for path in s.all_paths() {
        if let Some(dir) = dir_components(path).find(|c| entry.hidden_dirs.iter().any(|h| eq(c, h)))
        {
            add(format!("its hidden folder {dir}"));
            matched_path.get_or_insert(path);
        }
        let bundle = path.components().find_map(|c| match c {
            Component::Normal(x) => x
                .to_str()
                .filter(|x| entry.bundle_names.iter().any(|b| eq(x, b))),
            _ => None,
        });
        if let Some(b) = bundle {
            add(format!("its bundle {b}"));
            matched_path.get_or_insert(path);
        }
    }
    if let Some(n) = s
        .names()
        .into_iter()
        .find(|n| entry.process_names.iter().any(|w| name_matches(n, w)))
    {
        add(format!("its name {n}"));
    }
    if let Some(id) = s
        .identifiers()
        .into_iter()
        .find(|id| entry.bundle_ids.iter().any(|b| eq(id, b)))
    {
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
        "matches the known-bad catalog entry {} ({}, {}) on {}",
        entry.id,
        entry.name,
        entry.vendor,
        signals.join(", ")
    );
    // Supporting signal only: reached after identity already matched.
    if let Some(p) = s.ports.iter().find(|p| entry.ports.contains(p)) {
        first.push_str(&format!("; port {p}, which it is known to use, agrees"));
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
