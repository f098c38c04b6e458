//! The built-in catalog: known-bad helpers and disclosed locations, as data.
//!
//! The data lives in `catalog.json` beside this file (embedded at build time)
//! so that adding a helper is a data change reviewed on its own. Two parts:
//!
//! - `known_bad`: helpers remediated on sight (today the Zoom `ZoomOpener`
//!   family, catalog-facts.md). An entry matches on *identity*: its hidden
//!   folder, its `.app` name, its process name, its bundle id, its login
//!   item name. A port is only ever a supporting signal — many unrelated
//!   programs can listen on 19421, so a port alone never matches.
//! - `disclosed_locations`: places a person or the OS chose (package-manager
//!   prefixes, toolchain folders in a home). A program living there is not
//!   "undisclosed" because of where it lives.
//!
//! - `known_risky`: programs of known vendors whose local server had a
//!   published flaw a web page could use (Logitech Options' WebSocket,
//!   Spotify's web helper). Same schema and matching as `known_bad`, but a
//!   match never decides an action: it keeps a serving listener at least
//!   `report`, with the write-up in its reasons, so someone checks the
//!   version.
//! - `benign_listeners`: listeners well-known to be part of an app a person
//!   installed (Dropbox LAN sync, Docker's published ports), matched on a
//!   *validated* Team ID together with the program's name or signing
//!   identifier. A match turns a `report` that only criteria 1 and 2 gave
//!   into `allow`; it never lowers a `remediate` (a vendor's signature does
//!   not excuse a hidden folder) and never beats `known_bad`, `known_risky`
//!   or an admin deny rule.
//!
//! Matching lives in `catalog_match.rs`; this file is the schema, loading
//! and validation.

use serde::{Deserialize, Serialize};

use super::JudgeError;

/// The catalog file as shipped.
const BUILTIN: &str = include_str!("catalog.json");

/// The JSON document: `{schema_version, comment, known_bad, disclosed_locations}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    pub schema_version: u32,
    #[serde(default)]
    pub comment: Option<String>,
    pub known_bad: Vec<CatalogEntry>,
    /// Absent in catalogs written before it existed.
    #[serde(default)]
    pub known_risky: Vec<CatalogEntry>,
    #[serde(default)]
    pub benign_listeners: Vec<BenignEntry>,
    pub disclosed_locations: DisclosedLocations,
}

/// A listener that is part of an app a person installed, known by the
/// Team ID that signs it. Identity is the Team ID *and* a name or signing
/// identifier: a vendor ships many programs, and one of them being benign
/// says nothing of the others (Zoom signed ZoomOpener).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenignEntry {
    /// `benign:<lowercase-name>`; shown in findings.
    pub id: String,
    /// What it is, e.g. `Dropbox LAN sync`.
    pub name: String,
    pub vendor: String,
    /// The Apple Team ID that must have signed it (validated signatures only).
    pub team_id: String,
    /// Executable / process names (`comm`).
    #[serde(default)]
    pub process_names: Vec<String>,
    /// Signing identifiers.
    #[serde(default)]
    pub bundle_ids: Vec<String>,
    /// Ports it is known to use: shown, never matched on.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Why it stays, in words a person understands.
    pub why: String,
    /// Public sources (https URLs) for the Team ID, the names and the ports.
    pub sources: Vec<String>,
}

/// One known-bad helper. Every list is optional, but an entry must carry
/// at least one identity signal (anything but `ports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// `catalog:<lowercase-name>`; shown in findings.
    pub id: String,
    /// Human name, e.g. `ZoomOpener`.
    pub name: String,
    pub vendor: String,
    /// What it does and why it is bad, in one paragraph.
    pub summary: String,
    /// Hidden folders it installs into (a directory named exactly this).
    #[serde(default)]
    pub hidden_dirs: Vec<String>,
    /// Its own bundle folder names, e.g. `ZoomOpener.app`.
    #[serde(default)]
    pub bundle_names: Vec<String>,
    /// Executable / process names.
    #[serde(default)]
    pub process_names: Vec<String>,
    /// Bundle or signing identifiers.
    #[serde(default)]
    pub bundle_ids: Vec<String>,
    /// Names it uses as a login item or launchd label.
    #[serde(default)]
    pub login_item_names: Vec<String>,
    /// Ports it was seen on: a supporting signal only.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Bundle ids of the app that legitimately ships it embedded.
    #[serde(default)]
    pub parent_bundle_ids: Vec<String>,
    #[serde(default)]
    pub cves: Vec<String>,
    /// Public sources for every fact above (https URLs).
    pub sources: Vec<String>,
    /// What is confirmed and what is not.
    #[serde(default)]
    pub notes: Option<String>,
}

/// Locations a person or the OS chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosedLocations {
    /// Absolute prefixes owned by the operating system.
    pub system_prefixes: Vec<String>,
    /// Absolute prefixes of package managers (Homebrew, MacPorts, Nix).
    pub package_prefixes: Vec<String>,
    /// Paths relative to a home directory where toolchains install
    /// (`.nvm/versions`, `.cargo/bin`).
    pub home_toolchains: Vec<String>,
    /// Folder names that, anywhere in a path, hold a project's own
    /// toolchain (`.venv`, `node_modules`).
    pub project_toolchains: Vec<String>,
}

/// The validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub entries: Vec<CatalogEntry>,
    pub risky: Vec<CatalogEntry>,
    pub benign: Vec<BenignEntry>,
    pub disclosed: DisclosedLocations,
}

impl Catalog {
    /// The catalog shipped inside the binary.
    pub fn builtin() -> Result<Catalog, JudgeError> {
        Catalog::from_json(BUILTIN, "built-in catalog.json")
    }

    /// Parse and validate a catalog document. `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Catalog, JudgeError> {
        let file: CatalogFile =
            serde_json::from_str(text).map_err(|e| JudgeError::CatalogParse {
                origin: origin.to_string(),
                detail: e.to_string(),
            })?;
        if file.schema_version != 1 {
            return Err(JudgeError::CatalogParse {
                origin: origin.to_string(),
                detail: format!(
                    "schema_version {} is not supported (expected 1)",
                    file.schema_version
                ),
            });
        }
        for entry in &file.known_risky {
            validate_entry(entry)?;
        }
        for entry in &file.benign_listeners {
            validate_benign(entry)?;
        }
        let all_ids = file
            .known_bad
            .iter()
            .chain(&file.known_risky)
            .map(|e| e.id.as_str())
            .chain(file.benign_listeners.iter().map(|e| e.id.as_str()));
        let mut seen = std::collections::BTreeSet::new();
        for id in all_ids {
            if !seen.insert(id) {
                return Err(JudgeError::CatalogEntry {
                    id: id.to_string(),
                    problem: "an entry with this id already exists; ids must be unique".into(),
                });
            }
        }
        let catalog = Catalog {
            entries: Vec::new(),
            risky: file.known_risky,
            benign: file.benign_listeners,
            disclosed: file.disclosed_locations,
        };
        catalog.with_entries(file.known_bad)
    }

    /// Add entries (admin additions), validating each and refusing ids
    /// that already exist.
    pub fn with_entries(mut self, entries: Vec<CatalogEntry>) -> Result<Catalog, JudgeError> {
        for entry in entries {
            validate_entry(&entry)?;
            if self
                .entries
                .iter()
                .chain(&self.risky)
                .any(|e| e.id == entry.id)
            {
                return Err(JudgeError::CatalogEntry {
                    id: entry.id,
                    problem: "an entry with this id already exists; ids must be unique".into(),
                });
            }
            self.entries.push(entry);
        }
        Ok(self)
    }
}

fn validate_entry(e: &CatalogEntry) -> Result<(), JudgeError> {
    let bad = |problem: String| JudgeError::CatalogEntry {
        id: e.id.clone(),
        problem,
    };
    check_id(&e.id, "catalog:").map_err(bad)?;
    for (field, value) in [
        ("name", &e.name),
        ("vendor", &e.vendor),
        ("summary", &e.summary),
    ] {
        if value.trim().is_empty() {
            return Err(bad(format!("{field} is empty")));
        }
    }
    let lists = [
        ("hidden_dirs", &e.hidden_dirs),
        ("bundle_names", &e.bundle_names),
        ("process_names", &e.process_names),
        ("bundle_ids", &e.bundle_ids),
        ("login_item_names", &e.login_item_names),
        ("parent_bundle_ids", &e.parent_bundle_ids),
        ("cves", &e.cves),
        ("sources", &e.sources),
    ];
    for (field, list) in lists {
        let slash_ok = field == "sources";
        if list
            .iter()
            .any(|s| s.trim().is_empty() || (s.contains('/') && !slash_ok))
        {
            return Err(bad(format!("{field} has an empty value or one with '/'")));
        }
    }
    let identity = e.hidden_dirs.len()
        + e.bundle_names.len()
        + e.process_names.len()
        + e.bundle_ids.len()
        + e.login_item_names.len();
    if identity == 0 {
        return Err(bad(
            "no identity signal (hidden_dirs, bundle_names, process_names, bundle_ids, \
             login_item_names); a port alone must never match"
                .into(),
        ));
    }
    if let Some(d) = e
        .hidden_dirs
        .iter()
        .find(|d| !d.starts_with('.') || d.len() < 2)
    {
        return Err(bad(format!("hidden dir {d:?} must start with '.'")));
    }
    if let Some(b) = e
        .bundle_names
        .iter()
        .find(|b| !b.ends_with(".app") || b.len() <= 4)
    {
        return Err(bad(format!("bundle name {b:?} must end with .app")));
    }
    if e.ports.contains(&0) {
        return Err(bad("port 0 is not a port".into()));
    }
    if let Some(c) = e.cves.iter().find(|c| !is_cve(c)) {
        return Err(bad(format!("{c:?} is not a CVE id (CVE-YYYY-NNNN)")));
    }
    check_sources(&e.sources).map_err(bad)
}

fn validate_benign(e: &BenignEntry) -> Result<(), JudgeError> {
    let bad = |problem: String| JudgeError::CatalogEntry {
        id: e.id.clone(),
        problem,
    };
    check_id(&e.id, "benign:").map_err(bad)?;
    for (field, value) in [("name", &e.name), ("vendor", &e.vendor), ("why", &e.why)] {
        if value.trim().is_empty() {
            return Err(bad(format!("{field} is empty")));
        }
    }
    // Apple Team IDs are ten upper-case letters and digits.
    if e.team_id.len() != 10
        || !e
            .team_id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err(bad(format!(
            "team_id {:?} is not an Apple Team ID (ten upper-case letters and digits)",
            e.team_id
        )));
    }
    if e.process_names.is_empty() && e.bundle_ids.is_empty() {
        return Err(bad(
            "no process_names or bundle_ids: a Team ID alone would vouch for every program \
             its vendor signs"
                .into(),
        ));
    }
    if e.process_names
        .iter()
        .chain(&e.bundle_ids)
        .any(|s| s.trim().is_empty() || s.contains('/'))
    {
        return Err(bad(
            "process_names or bundle_ids has an empty value or one with '/'".into(),
        ));
    }
    if let Some(n) = e
        .process_names
        .iter()
        // `java` too: the JVM runs whatever class path it is given.
        .find(|n| crate::model::is_interpreter(std::path::Path::new(n)) || n.as_str() == "java")
    {
        return Err(bad(format!(
            "{n:?} is an interpreter: what it runs is not its vendor's, so its signature \
             vouches for nothing"
        )));
    }
    if e.ports.contains(&0) {
        return Err(bad("port 0 is not a port".into()));
    }
    check_sources(&e.sources).map_err(bad)
}

/// `<prefix><slug>`, the slug lowercase letters, digits and '-'.
fn check_id(id: &str, prefix: &str) -> Result<(), String> {
    let slug = id.strip_prefix(prefix).unwrap_or("");
    let ok = !slug.is_empty()
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "id must be `{prefix}` followed by lowercase letters, digits or '-'"
        ))
    }
}

/// At least one source, each an https URL.
fn check_sources(sources: &[String]) -> Result<(), String> {
    if sources.is_empty() {
        return Err("no sources: every fact needs a public source".into());
    }
    match sources.iter().find(|s| !s.starts_with("https://")) {
        Some(s) => Err(format!("source {s:?} is not an https URL")),
        None => Ok(()),
    }
}

fn is_cve(s: &str) -> bool {
    let mut parts = s.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("CVE"), Some(y), Some(n), None)
            if y.len() == 4 && y.chars().all(|c| c.is_ascii_digit())
                && n.len() >= 4 && n.chars().all(|c| c.is_ascii_digit())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed() -> CatalogFile {
        serde_json::from_str(BUILTIN).expect("embedded catalog.json parses")
    }

    #[test]
    fn embedded_catalog_parses_and_every_entry_is_well_formed() {
        let file = parsed();
        assert_eq!(file.schema_version, 1);
        for entry in &file.known_bad {
            validate_entry(entry).unwrap_or_else(|e| panic!("{e}"));
        }
        let catalog = Catalog::builtin().expect("built-in catalog validates");
        assert_eq!(catalog.entries.len(), file.known_bad.len());
    }

    #[test]
    fn catalog_holds_the_fourteen_zoom_family_helpers() {
        let catalog = Catalog::builtin().unwrap();
        let dirs: Vec<&str> = catalog
            .entries
            .iter()
            .flat_map(|e| e.hidden_dirs.iter().map(String::as_str))
            .collect();
        // catalog-facts.md, "14 white-label servers".
        for want in [
            ".zoomus",
            ".ringcentralopener",
            ".telusmeetingsopener",
            ".btcloudphonemeetingsopener",
            ".officesuitehdmeetingopener",
            ".attvideomeetingsopener",
            ".bizconfopener",
            ".huihuiopener",
            ".umeetingopener",
            ".zhumuopener",
            ".zoomcnopener",
            ".accessionmeetingopener",
            ".videoconferenciatelmexopener",
            ".earthlinkmeetingroomopener",
        ] {
            assert!(dirs.contains(&want), "missing {want}");
        }
        assert_eq!(catalog.entries.len(), 14);
        let mut ids: Vec<&str> = catalog.entries.iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 14, "ids are unique");
        let zoom = &catalog.entries[0];
        assert_eq!(zoom.id, "catalog:zoomopener");
        assert_eq!(zoom.bundle_ids, ["us.zoom.ZoomOpener"]);
        assert!(zoom.ports.contains(&19421));
        assert!(zoom.cves.iter().any(|c| c == "CVE-2019-13450"));
    }

    #[test]
    fn malformed_entries_are_refused_with_their_id() {
        let good = Catalog::builtin().unwrap().entries[0].clone();
        type Mutation = Box<dyn Fn(&mut CatalogEntry)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "port only",
                Box::new(|e| {
                    e.hidden_dirs.clear();
                    e.bundle_names.clear();
                    e.process_names.clear();
                    e.bundle_ids.clear();
                    e.login_item_names.clear();
                }),
            ),
            ("bad id", Box::new(|e| e.id = "zoomopener".into())),
            ("upper id", Box::new(|e| e.id = "catalog:Zoom".into())),
            (
                "dir not hidden",
                Box::new(|e| e.hidden_dirs = vec!["zoomus".into()]),
            ),
            (
                "bundle name",
                Box::new(|e| e.bundle_names = vec!["ZoomOpener".into()]),
            ),
            ("no sources", Box::new(|e| e.sources.clear())),
            (
                "http source",
                Box::new(|e| e.sources = vec!["http://x".into()]),
            ),
            ("bad cve", Box::new(|e| e.cves = vec!["CVE-19-1".into()])),
            ("port zero", Box::new(|e| e.ports = vec![0])),
            (
                "empty name",
                Box::new(|e| e.process_names = vec![" ".into()]),
            ),
        ];
        for (what, mutate) in cases {
            let mut e = good.clone();
            e.id = "catalog:test-entry".into();
            mutate(&mut e);
            let err = validate_entry(&e).expect_err(what);
            assert!(err.to_string().contains(&e.id), "{what}: {err}");
        }
    }

    #[test]
    fn duplicate_ids_and_bad_documents_are_refused() {
        let catalog = Catalog::builtin().unwrap();
        let dup = catalog.entries[0].clone();
        let err = catalog.with_entries(vec![dup]).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = Catalog::from_json("{", "test.json").unwrap_err();
        assert!(err.to_string().contains("test.json"), "{err}");
        let text = BUILTIN.replace("\"schema_version\": 1", "\"schema_version\": 9");
        let err = Catalog::from_json(&text, "v9.json").unwrap_err();
        assert!(err.to_string().contains("schema_version 9"), "{err}");
        let text = BUILTIN.replace("\"hidden_dirs\"", "\"hiden_dirs\"");
        assert!(
            Catalog::from_json(&text, "typo.json").is_err(),
            "unknown fields refused"
        );
    }

    #[test]
    fn risky_and_benign_lists_are_well_formed_and_sourced() {
        let file = parsed();
        assert!(
            file.known_risky.len() >= 2,
            "Logitech Options, Spotify Web Helper"
        );
        assert!(file.benign_listeners.len() >= 10);
        for e in &file.known_risky {
            validate_entry(e).unwrap_or_else(|e| panic!("{e}"));
        }
        for e in &file.benign_listeners {
            validate_benign(e).unwrap_or_else(|e| panic!("{e}"));
        }
        let catalog = Catalog::builtin().unwrap();
        assert_eq!(catalog.risky.len(), file.known_risky.len());
        assert_eq!(catalog.benign.len(), file.benign_listeners.len());
        // No program is both: a risky name must never be vouched benign.
        for b in &catalog.benign {
            for r in &catalog.risky {
                for n in &b.process_names {
                    assert!(
                        !r.process_names.iter().any(|w| w.eq_ignore_ascii_case(n)),
                        "{n} is in {} and {}",
                        b.id,
                        r.id
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_benign_entries_are_refused_with_their_id() {
        let good = Catalog::builtin().unwrap().benign[0].clone();
        validate_benign(&good).unwrap();
        type Mutation = Box<dyn Fn(&mut BenignEntry)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("bad id", Box::new(|e| e.id = "dropbox".into())),
            ("short team", Box::new(|e| e.team_id = "G7HH3F8".into())),
            ("lower team", Box::new(|e| e.team_id = "g7hh3f8cak".into())),
            (
                "team alone",
                Box::new(|e| {
                    e.process_names.clear();
                    e.bundle_ids.clear();
                }),
            ),
            (
                "interpreter",
                Box::new(|e| e.process_names = vec!["python3".into()]),
            ),
            ("jvm", Box::new(|e| e.process_names = vec!["java".into()])),
            ("slash", Box::new(|e| e.bundle_ids = vec!["a/b".into()])),
            ("no why", Box::new(|e| e.why = " ".into())),
            ("no sources", Box::new(|e| e.sources.clear())),
            (
                "http source",
                Box::new(|e| e.sources = vec!["http://x".into()]),
            ),
            ("port zero", Box::new(|e| e.ports = vec![0])),
        ];
        for (what, mutate) in cases {
            let mut e = good.clone();
            mutate(&mut e);
            let err = validate_benign(&e).expect_err(what);
            assert!(err.to_string().contains(&e.id), "{what}: {err}");
        }
    }

    #[test]
    fn ids_are_unique_across_all_three_lists() {
        let mut file = parsed();
        file.known_risky[0].id = file.known_bad[0].id.clone();
        let text = serde_json::to_string(&file).unwrap();
        let err = Catalog::from_json(&text, "dup.json").unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        // A fleet addition may not take a risky entry's id either.
        let catalog = Catalog::builtin().unwrap();
        let mut dup = catalog.entries[0].clone();
        dup.id = catalog.risky[0].id.clone();
        assert!(catalog.with_entries(vec![dup]).is_err());
        // Catalogs written before the two lists existed still load.
        let mut old = parsed();
        old.known_risky.clear();
        old.benign_listeners.clear();
        let mut value = serde_json::to_value(&old).unwrap();
        let map = value.as_object_mut().unwrap();
        map.remove("known_risky");
        map.remove("benign_listeners");
        let loaded = Catalog::from_json(&value.to_string(), "old.json").unwrap();
        assert!(loaded.risky.is_empty() && loaded.benign.is_empty());
    }

    #[test]
    fn cve_ids() {
        assert!(is_cve("CVE-2019-13450"));
        assert!(!is_cve("CVE-2019-134"));
        assert!(!is_cve("cve-2019-13450"));
        assert!(!is_cve("CVE-2019-13450-1"));
    }
}
