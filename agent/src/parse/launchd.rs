//! launchd job files (`LaunchAgents`/`LaunchDaemons` plists, XML or binary)
//! → [`LaunchdJob`].
//!
//! The bytes come from directories users can write to, so they are read
//! through [`parse_plist_value`] (depth- and expansion-guarded, see
//! `guard.rs`) and the keys are then read by hand from the `Value` rather
//! than through serde: that gives errors naming the key and the type found,
//! and accepts the shapes launchd itself accepts (`KeepAlive` bool *or*
//! dict, `AssociatedBundleIdentifiers` string *or* array, a `Sockets` entry
//! dict *or* array of dicts). Key meanings: launchd.plist(5) and
//! macos-reference.md.

use std::path::{Component, Path, PathBuf};

use plist::{Dictionary, Value};

pub use super::plist_guard::{MAX_DEPTH, PlistError, parse_plist_value};

use crate::model::{LaunchdSocket, PersistenceItem, PersistenceKind, enclosing_bundle};

/// Why a launchd plist could not be read as a job.
#[derive(Debug, thiserror::Error)]
pub enum LaunchdError {
    #[error(transparent)]
    Plist(#[from] PlistError),
    #[error("the top level is {found}, but a launchd job must be a dictionary")]
    NotADictionary { found: &'static str },
    #[error("key {key}: expected {expected}, found {found}")]
    WrongType {
        /// Dotted key path, e.g. `ProgramArguments[2]` or
        /// `Sockets.Listeners.SockServiceName`.
        key: String,
        expected: &'static str,
        found: &'static str,
    },
}

/// `KeepAlive`: launchd restarts the job always, never, or under
/// conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepAlive {
    /// Absent or `false`.
    No,
    /// `true`.
    Always,
    /// A dictionary of conditions, recorded as `Key=value` for scalars and
    /// `Key` for nested ones, in file order (e.g. `SuccessfulExit=false`,
    /// `PathState`).
    Conditions(Vec<String>),
}

impl KeepAlive {
    /// Whether launchd may relaunch the job by itself. A non-empty
    /// condition dictionary counts: `{SuccessfulExit=false}` is the usual
    /// way to keep a helper up, and an attacker would not pick the honest
    /// `true`. An empty dictionary imposes no condition and does nothing.
    pub fn keeps_alive(&self) -> bool {
        match self {
            KeepAlive::No => false,
            KeepAlive::Always => true,
            KeepAlive::Conditions(c) => !c.is_empty(),
        }
    }
}

/// The parts of a launchd job that matter for finding helpers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchdJob {
    /// `Label`. launchd refuses a job without one, but the file is still
    /// worth reporting, so it is optional here.
    pub label: Option<String>,
    pub program: Option<String>,
    pub program_arguments: Vec<String>,
    /// `BundleProgram`: relative to the app bundle that holds the plist
    /// (SMAppService).
    pub bundle_program: Option<String>,
    pub run_at_load: bool,
    pub keep_alive: KeepAlive,
    pub disabled: bool,
    pub sockets: Vec<LaunchdSocket>,
    /// Names under `MachServices`, in file order.
    pub mach_services: Vec<String>,
    pub associated_bundle_identifiers: Vec<String>,
    pub user_name: Option<String>,
}

/// Parse a launchd plist (XML or binary). Never panics; every refusal says
/// what was wrong.
pub fn parse_launchd_plist(bytes: &[u8]) -> Result<LaunchdJob, LaunchdError> {
    let value = parse_plist_value(bytes)?;
    let Value::Dictionary(dict) = value else {
        return Err(LaunchdError::NotADictionary {
            found: type_name(&value),
        });
    };
    Ok(LaunchdJob {
        label: opt_string(&dict, "Label")?,
        program: opt_string(&dict, "Program")?,
        program_arguments: string_array(&dict, "ProgramArguments")?,
        bundle_program: opt_string(&dict, "BundleProgram")?,
        run_at_load: opt_bool(&dict, "RunAtLoad")?.unwrap_or(false),
        keep_alive: keep_alive(&dict)?,
        disabled: opt_bool(&dict, "Disabled")?.unwrap_or(false),
        sockets: sockets(&dict)?,
        mach_services: mach_services(&dict)?,
        associated_bundle_identifiers: string_or_array(&dict, "AssociatedBundleIdentifiers")?,
        user_name: opt_string(&dict, "UserName")?,
    })
}

impl LaunchdJob {
    /// The program launchd would run: `Program`, else
    /// `ProgramArguments[0]`, else `BundleProgram` joined to the app bundle
    /// holding the plist. `.`/`..` are resolved lexically so that
    /// `/A.app/Contents/../../tmp/x` cannot pass for a path inside `A.app`.
    pub fn resolved_program(&self, plist_path: &Path) -> Option<PathBuf> {
        if let Some(p) = self.program.as_deref().filter(|p| !p.is_empty()) {
            return Some(normalize(Path::new(p)));
        }
        if let Some(p) = self.program_arguments.first().filter(|p| !p.is_empty()) {
            return Some(normalize(Path::new(p)));
        }
        let rel = self.bundle_program.as_deref().filter(|p| !p.is_empty())?;
        Some(normalize(&plist_bundle(plist_path)?.join(rel)))
    }

    /// The plain-data form the judge reads.
    pub fn to_persistence_item(
        &self,
        kind: PersistenceKind,
        plist_path: &Path,
        owner_uid: Option<u32>,
    ) -> PersistenceItem {
        PersistenceItem {
            kind,
            path: plist_path.to_path_buf(),
            label: self.label.clone(),
            program: self.resolved_program(plist_path),
            args: self.program_arguments.clone(),
            run_at_load: self.run_at_load,
            keep_alive: self.keep_alive.keeps_alive(),
            sockets: self.sockets.clone(),
            associated_bundle_ids: self.associated_bundle_identifiers.clone(),
            owner_uid,
            parent_identifier: None,
            developer: None,
            disposition: None,
        }
    }
}

/// The bundle a `BundleProgram` is relative to: the app whose
/// `Contents/Library/LaunchAgents|LaunchDaemons` holds the plist. That is
/// the *innermost* such app (a helper app nested in another registers its
/// own), so the exact shape is tried first; any other plist inside an app
/// falls back to the outermost bundle.
fn plist_bundle(plist_path: &Path) -> Option<PathBuf> {
    let launch_dir = plist_path.parent()?;
    let library = launch_dir.parent()?;
    let contents = library.parent()?;
    let app = contents.parent()?;
    let named = |p: &Path, n: &str| p.file_name().is_some_and(|f| f == n);
    let is_launch_dir = named(launch_dir, "LaunchAgents") || named(launch_dir, "LaunchDaemons");
    let is_app = app
        .file_name()
        .and_then(|f| f.to_str())
        .is_some_and(|f| f.len() > 4 && f.ends_with(".app"));
    if is_launch_dir && named(library, "Library") && named(contents, "Contents") && is_app {
        return Some(app.to_path_buf());
    }
    enclosing_bundle(plist_path)
}

/// Lexical `.`/`..` resolution (no file system access; `..` at the root
/// stays at the root, as the kernel does).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::Dictionary(_) => "dictionary",
        Value::Boolean(_) => "boolean",
        Value::Data(_) => "data",
        Value::Date(_) => "date",
        Value::Real(_) => "real",
        Value::Integer(_) => "integer",
        Value::String(_) => "string",
        Value::Uid(_) => "uid",
        _ => "unknown value",
    }
}

fn wrong(key: impl Into<String>, expected: &'static str, found: &Value) -> LaunchdError {
    LaunchdError::WrongType {
        key: key.into(),
        expected,
        found: type_name(found),
    }
}

fn opt_string(dict: &Dictionary, key: &str) -> Result<Option<String>, LaunchdError> {
    match dict.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong(key, "string", other)),
    }
}

fn opt_bool(dict: &Dictionary, key: &str) -> Result<Option<bool>, LaunchdError> {
    match dict.get(key) {
        None => Ok(None),
        Some(Value::Boolean(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong(key, "boolean", other)),
    }
}

fn string_array(dict: &Dictionary, key: &str) -> Result<Vec<String>, LaunchdError> {
    match dict.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => strings_of(key, items),
        Some(other) => Err(wrong(key, "array of strings", other)),
    }
}

fn string_or_array(dict: &Dictionary, key: &str) -> Result<Vec<String>, LaunchdError> {
    match dict.get(key) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => strings_of(key, items),
        Some(other) => Err(wrong(key, "string or array of strings", other)),
    }
}

fn strings_of(key: &str, items: &[Value]) -> Result<Vec<String>, LaunchdError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(wrong(format!("{key}[{i}]"), "string", other)),
        })
        .collect()
}

fn keep_alive(dict: &Dictionary) -> Result<KeepAlive, LaunchdError> {
    match dict.get("KeepAlive") {
        None | Some(Value::Boolean(false)) => Ok(KeepAlive::No),
        Some(Value::Boolean(true)) => Ok(KeepAlive::Always),
        Some(Value::Dictionary(conditions)) => Ok(KeepAlive::Conditions(
            conditions
                .iter()
                .map(|(k, v)| match v {
                    Value::Boolean(b) => format!("{k}={b}"),
                    Value::String(s) => format!("{k}={s}"),
                    Value::Integer(i) => format!("{k}={i}"),
                    _ => k.clone(),
                })
                .collect(),
        )),
        Some(other) => Err(wrong("KeepAlive", "boolean or dictionary", other)),
    }
}

fn sockets(dict: &Dictionary) -> Result<Vec<LaunchdSocket>, LaunchdError> {
    let entries = match dict.get("Sockets") {
        None => return Ok(Vec::new()),
        Some(Value::Dictionary(d)) => d,
        Some(other) => return Err(wrong("Sockets", "dictionary", other)),
    };
    let mut out = Vec::new();
    for (name, entry) in entries {
        let key = format!("Sockets.{name}");
        match entry {
            Value::Dictionary(d) => out.push(socket(&key, name, d)?),
            // launchd accepts an array of socket dictionaries under one name
            // (e.g. one per address family).
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Dictionary(d) => out.push(socket(&format!("{key}[{i}]"), name, d)?),
                        other => return Err(wrong(format!("{key}[{i}]"), "dictionary", other)),
                    }
                }
            }
            other => return Err(wrong(key, "dictionary or array of dictionaries", other)),
        }
    }
    Ok(out)
}

fn socket(key: &str, name: &str, d: &Dictionary) -> Result<LaunchdSocket, LaunchdError> {
    // SockServiceName is a service name ("http") or a port; ports appear
    // both as strings and as integers in the wild.
    let service = match d.get("SockServiceName") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Integer(i)) => Some(i.to_string()),
        Some(other) => {
            return Err(wrong(
                format!("{key}.SockServiceName"),
                "string or integer",
                other,
            ));
        }
    };
    let node = match d.get("SockNodeName") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(wrong(format!("{key}.SockNodeName"), "string", other)),
    };
    Ok(LaunchdSocket {
        name: name.to_string(),
        service,
        node,
    })
}

fn mach_services(dict: &Dictionary) -> Result<Vec<String>, LaunchdError> {
    match dict.get("MachServices") {
        None => Ok(Vec::new()),
        Some(Value::Dictionary(d)) => Ok(d.keys().cloned().collect()),
        Some(other) => Err(wrong("MachServices", "dictionary", other)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests;
