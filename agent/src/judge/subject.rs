//! What admin rules and the catalog match against: one view over either a
//! listener's owning process or a persistence item, so both kinds of
//! finding go through the same matchers and cannot drift apart.

use std::path::Path;

use crate::model::{PersistenceItem, ProcessIdentity};

/// The identity of the thing being judged, as matchers see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subject<'a> {
    /// The executable (listener) or resolved program (persistence): what a
    /// rule's `path` glob is tested against.
    pub program: Option<&'a Path>,
    /// Other paths that identify it: a login item's bundle, the script an
    /// interpreter runs, the running executable of a persistence item.
    pub other_paths: Vec<&'a Path>,
    /// Short process names (`comm`), possibly truncated by the kernel.
    pub process_names: Vec<&'a str>,
    /// Team ID, only when the signature validated (see `Signature`).
    pub team_id: Option<&'a str>,
    pub signing_id: Option<&'a str>,
    /// The signature behind `signing_id` validated: only then is the
    /// identifier evidence of who made it rather than a claim.
    pub signature_valid: bool,
    /// Bundle ids a rule's `bundle_id` is tested against: a process's
    /// signing identifier; a persistence item's `AssociatedBundleIdentifiers`
    /// and BTM parent identifier.
    pub bundle_ids: Vec<String>,
    /// launchd labels / login item names.
    pub labels: Vec<&'a str>,
    /// Ports it listens on (a listener's port; a persistence item's
    /// socket-activation ports and the ports of listeners it starts).
    pub ports: Vec<u16>,
}

impl<'a> Subject<'a> {
    /// Fill the process part (identity and signature) from a running process.
    pub fn with_process(mut self, p: &'a ProcessIdentity) -> Subject<'a> {
        if let Some(path) = p.path.as_deref() {
            if self.program.is_none() {
                self.program = Some(path);
            } else {
                self.other_paths.push(path);
            }
        }
        if !p.name.is_empty() {
            self.process_names.push(&p.name);
        }
        self.team_id = self.team_id.or(p.signature.team_id.as_deref());
        if self.signing_id.is_none() {
            self.signing_id = p.signature.identifier.as_deref();
            self.signature_valid = p.signature.status == crate::model::SignatureStatus::Valid;
        }
        if let Some(id) = p.signature.identifier.as_deref() {
            self.bundle_ids.push(id.to_string());
        }
        self
    }

    /// Fill the persistence part from an item.
    pub fn with_item(mut self, item: &'a PersistenceItem) -> Subject<'a> {
        if let Some(label) = item.label.as_deref() {
            self.labels.push(label);
        }
        self.bundle_ids.extend(
            item.associated_bundle_ids
                .iter()
                .map(|id| strip_btm_type(id).to_string()),
        );
        if let Some(parent) = item.parent_identifier.as_deref() {
            self.bundle_ids.push(strip_btm_type(parent).to_string());
        }
        self
    }

    /// The program, then the other paths, each once.
    pub fn all_paths(&self) -> Vec<&'a Path> {
        let mut paths: Vec<&'a Path> = Vec::new();
        for p in self
            .program
            .into_iter()
            .chain(self.other_paths.iter().copied())
        {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        paths
    }

    /// Names to compare with a catalog entry's process names: `comm`
    /// names and the file names of the paths (an `.app` by its stem).
    pub fn names(&self) -> Vec<&'a str> {
        let mut names: Vec<&'a str> = self.process_names.clone();
        for path in self.all_paths() {
            let is_app = path.extension().is_some_and(|e| e == "app");
            let name = if is_app {
                path.file_stem()
            } else {
                path.file_name()
            };
            if let Some(n) = name.and_then(|n| n.to_str()) {
                names.push(n);
            }
        }
        names
    }

    /// Identifiers to compare with catalog bundle ids: signing id, bundle
    /// ids, and labels (a login item's BTM identifier is a bundle id).
    pub fn identifiers(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.bundle_ids.iter().map(String::as_str).collect();
        ids.extend(self.signing_id);
        ids.extend(self.labels.iter().map(|l| strip_btm_type(l)));
        ids
    }
}

/// BTM writes identifiers as `<type>.<bundle id>` (`2.us.zoom.xos`,
/// `16.sh.gyorgy.keepresso.helper`; macos-reference.md): drop the numeric
/// type so the rest compares with a bundle id.
pub(crate) fn strip_btm_type(id: &str) -> &str {
    match id.split_once('.') {
        Some((ty, rest))
            if !ty.is_empty() && ty.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty() =>
        {
            rest
        }
        _ => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btm_type_prefix_is_dropped() {
        assert_eq!(strip_btm_type("2.us.zoom.xos"), "us.zoom.xos");
        assert_eq!(
            strip_btm_type("16.sh.gyorgy.keepresso.helper"),
            "sh.gyorgy.keepresso.helper"
        );
        assert_eq!(strip_btm_type("us.zoom.xos"), "us.zoom.xos");
        assert_eq!(strip_btm_type("2."), "2.");
        assert_eq!(strip_btm_type(""), "");
        assert_eq!(strip_btm_type(".x"), ".x");
    }

    #[test]
    fn names_use_app_stems_and_file_names() {
        let s = Subject {
            program: Some(Path::new("/Users/a/.zoomus/ZoomOpener.app")),
            other_paths: vec![Path::new("/usr/bin/python3")],
            process_names: vec!["Zoom"],
            ..Subject::default()
        };
        assert_eq!(s.names(), vec!["Zoom", "ZoomOpener", "python3"]);
    }
}
