//! The stages import in one direction only (docs/design.md, README "Where
//! a change goes"): this test reads `agent/src` and fails when an import
//! runs back up.
//!
//! The rules, by top-level module:
//!
//! - the leaves (`clock`, `backoff`, `command`, `fsutil`) import nothing of
//!   the agent, and `model` only leaves: any stage may use them;
//! - `parse` imports nothing of the agent but `model` (pure parsers);
//! - `platform` never imports `observe`, `act`, `report` or `daemon`;
//! - `observe` never imports `report`, `act` or `daemon`;
//! - `judge` never imports `observe`, `act`, `report`, `daemon`, nor
//!   configuration loading (`config::{load, source, show, Sources,
//!   Loaded}`): it is given a policy, it never reads one;
//! - `config` imports only leaves (`model`, `parse` and the leaf modules);
//! - nothing imports `daemon` (only `main`, another crate, runs it).
//!
//! Test code (`#[cfg(test)]` modules and files) is exempt: a judge
//! scenario may check the plan its findings make.
//!
//! What counts as an import: every `crate::` path in code (not in
//! comments), grouped `use crate::{a, b}` forms and `super::` chains that
//! climb to the crate root included — a path written inline runs up just
//! as much as a `use` line.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Modules that import nothing of the agent.
const LEAVES: &[&str] = &["clock", "backoff", "command", "fsutil"];

/// Known violations, as (file under `agent/src`, imported top-level
/// module). Empty: the test fails on an entry that no longer occurs, so a
/// stale one cannot linger.
const ALLOWED: &[(&str, &str)] = &[];

/// Why importing `top` (`second`: the path's next segment) from the
/// top-level module `from` runs back up, if it does.
fn violation(from: &str, top: &str, second: Option<&str>) -> Option<&'static str> {
    if from == top {
        return None;
    }
    let leaf_like = |m: &str| LEAVES.contains(&m) || m == "model" || m == "parse";
    match (from, top) {
        (_, "daemon") => Some("nothing imports daemon: it is the loop, only main runs it"),
        (f, _) if LEAVES.contains(&f) => Some("a leaf module imports nothing of the agent"),
        ("model", t) if !LEAVES.contains(&t) => Some("model imports only leaf modules"),
        ("parse", t) if t != "model" => Some("parse imports nothing of the agent but model"),
        ("platform", "observe" | "act" | "report") => {
            Some("platform never imports observe, act or report")
        }
        ("observe", "report" | "act") => Some("observe never imports report or act"),
        ("judge", "observe" | "act" | "report") => {
            Some("judge never imports observe, act or report")
        }
        ("judge", "config")
            if matches!(
                second,
                Some("load" | "source" | "show" | "Sources" | "Loaded")
            ) =>
        {
            Some("judge never loads configuration")
        }
        ("config", t) if !leaf_like(t) => Some("config imports only leaf modules"),
        _ => None,
    }
}

/// One `crate::` path found in a file: its top-level module and the
/// segment after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    top: String,
    second: Option<String>,
}

/// The imports in `text`, a file of the module at `module` (its path from
/// the crate root: `["observe", "sweep"]`). Comments, the trailing
/// `#[cfg(test)] mod … { … }` and `#[cfg(test)]` items are skipped.
fn imports_in(text: &str, module: &[String]) -> Vec<Import> {
    let code = without_tests(&without_comments(text));
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        // A path starts at a word boundary.
        let at_boundary = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != ':';
        if at_boundary && starts_with(&bytes, i, "crate::") {
            i += "crate::".len();
            collect_path(&bytes, &mut i, &mut out);
            continue;
        }
        if at_boundary && starts_with(&bytes, i, "super::") {
            let mut ups = 0;
            while starts_with(&bytes, i, "super::") {
                ups += 1;
                i += "super::".len();
            }
            // Climbing to the crate root: what follows is a top-level
            // module. (`super` from a file's own items: its parent.)
            if ups >= module.len() {
                collect_path(&bytes, &mut i, &mut out);
            }
            continue;
        }
        i += 1;
    }
    out
}

/// Read `a::b`, `a::{…}` or `{a::b, c}` at `i` into `out`.
fn collect_path(s: &[char], i: &mut usize, out: &mut Vec<Import>) {
    skip_ws(s, i);
    if s.get(*i) == Some(&'{') {
        *i += 1;
        loop {
            skip_ws(s, i);
            match s.get(*i) {
                None => return,
                Some('}') => {
                    *i += 1;
                    return;
                }
                Some(',') => *i += 1,
                Some(_) => {
                    collect_path(s, i, out);
                    // Skip the rest of this element (`::{…}`, `as x`).
                    let mut depth = 0;
                    while let Some(&c) = s.get(*i) {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => break,
                            '}' => depth -= 1,
                            ',' if depth == 0 => break,
                            _ => {}
                        }
                        *i += 1;
                    }
                }
            }
        }
    }
    let top = ident(s, i);
    if top.is_empty() || top == "self" {
        return;
    }
    let second = if starts_with(s, *i, "::") {
        let mut j = *i + 2;
        let id = ident(s, &mut j);
        (!id.is_empty()).then_some(id)
    } else {
        None
    };
    out.push(Import { top, second });
}

fn ident(s: &[char], i: &mut usize) -> String {
    let start = *i;
    while s.get(*i).is_some_and(|&c| is_ident(c)) {
        *i += 1;
    }
    s[start..*i].iter().collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn skip_ws(s: &[char], i: &mut usize) {
    while s.get(*i).is_some_and(|c| c.is_whitespace()) {
        *i += 1;
    }
}

fn starts_with(s: &[char], i: usize, pat: &str) -> bool {
    pat.chars()
        .enumerate()
        .all(|(k, c)| s.get(i + k) == Some(&c))
}

/// Line comments removed (`//` outside a string literal on its line).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut in_str = false;
            let mut prev = '\0';
            for (k, c) in line.char_indices() {
                if c == '"' && prev != '\\' {
                    in_str = !in_str;
                }
                if !in_str && c == '/' && prev == '/' {
                    return &line[..k - 1];
                }
                prev = c;
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Test code removed: from an inline `#[cfg(test)] mod name {` to the end
/// of the file (clippy's `items_after_test_module` keeps it last), and
/// each `#[cfg(test)]` item up to its `;` or its closing brace.
fn without_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < lines.len() {
        if lines[k].trim() != "#[cfg(test)]" {
            out.push(lines[k]);
            k += 1;
            continue;
        }
        // Skip further attributes to the item itself.
        let mut j = k + 1;
        while j < lines.len() && lines[j].trim_start().starts_with("#[") {
            j += 1;
        }
        let item = lines.get(j).map_or("", |l| l.trim());
        let is_mod = item.starts_with("mod ") || item.starts_with("pub(crate) mod ");
        if is_mod && item.ends_with('{') {
            break;
        }
        // One item: up to the line that ends it.
        let mut depth: i32 = 0;
        k = j;
        while k < lines.len() {
            let l = lines[k];
            depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            k += 1;
            if depth <= 0 && (l.trim_end().ends_with(';') || l.trim_end().ends_with('}')) {
                break;
            }
        }
    }
    out.join("\n")
}

/// Every file of the library reachable from `lib.rs`, with its module
/// path, skipping files declared under `#[cfg(test)]`.
fn library_files(src: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    walk(src, &src.join("lib.rs"), Vec::new(), &mut out);
    out
}

fn walk(src: &Path, file: &Path, module: Vec<String>, out: &mut Vec<(PathBuf, Vec<String>)>) {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let code = without_comments(&text);
    let lines: Vec<&str> = code.lines().collect();
    // Where a child's file is found: beside `lib.rs`/`mod.rs`, else in the
    // folder named after this file. A `#[path]` is relative to this
    // file's folder.
    let dir = file.parent().unwrap_or(src).to_path_buf();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let child_dir = if stem == "lib" || stem == "mod" || module.is_empty() {
        dir.clone()
    } else {
        dir.join(stem)
    };
    for (k, line) in lines.iter().enumerate() {
        let t = line.trim();
        let decl = t
            .strip_prefix("pub mod ")
            .or_else(|| t.strip_prefix("pub(crate) mod "))
            .or_else(|| t.strip_prefix("mod "));
        let Some(name) = decl.and_then(|d| d.strip_suffix(';')) else {
            continue;
        };
        let mut attrs = Vec::new();
        let mut a = k;
        while a > 0 && lines[a - 1].trim_start().starts_with("#[") {
            a -= 1;
            attrs.push(lines[a].trim());
        }
        if attrs.contains(&"#[cfg(test)]") {
            continue;
        }
        let path = attrs
            .iter()
            .find_map(|l| l.strip_prefix("#[path = \"")?.strip_suffix("\"]"))
            .map(|p| dir.join(p))
            .unwrap_or_else(|| {
                let flat = child_dir.join(format!("{name}.rs"));
                if flat.exists() {
                    flat
                } else {
                    child_dir.join(name).join("mod.rs")
                }
            });
        let mut m = module.clone();
        m.push(name.to_string());
        walk(src, &path, m, out);
    }
    out.push((file.to_path_buf(), module));
}

/// Every import that runs back up: (file, imported module, rule).
fn violations(src: &Path) -> BTreeMap<(String, String), &'static str> {
    let mut found = BTreeMap::new();
    for (file, module) in library_files(src) {
        let Some(from) = module.first() else {
            continue; // lib.rs declares the modules; it imports none
        };
        let text = fs::read_to_string(&file).unwrap_or_default();
        let rel = file
            .strip_prefix(src)
            .unwrap_or(&file)
            .to_string_lossy()
            .into_owned();
        for imp in imports_in(&text, &module) {
            if let Some(rule) = violation(from, &imp.top, imp.second.as_deref()) {
                found.insert((rel.clone(), imp.top.clone()), rule);
            }
        }
    }
    found
}

#[test]
fn no_import_runs_back_up() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = library_files(&src);
    assert!(
        files.len() > 100,
        "the walk from lib.rs found only {} files",
        files.len()
    );
    let found = violations(&src);
    let allowed: BTreeSet<(String, String)> = ALLOWED
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    let new: Vec<String> = found
        .iter()
        .filter(|(k, _)| !allowed.contains(*k))
        .map(|((file, top), rule)| format!("agent/src/{file} imports {top}: {rule}"))
        .collect();
    assert!(
        new.is_empty(),
        "imports that run back up:\n{}",
        new.join("\n")
    );
    let stale: Vec<&(String, String)> =
        allowed.iter().filter(|k| !found.contains_key(*k)).collect();
    assert!(
        stale.is_empty(),
        "fixed — remove these from ALLOWED in agent/tests/imports.rs: {stale:?}"
    );
}

fn module(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| s.to_string()).collect()
}

fn back_up(from: &[&str], text: &str) -> Vec<String> {
    imports_in(text, &module(from))
        .into_iter()
        .filter(|i| violation(from[0], &i.top, i.second.as_deref()).is_some())
        .map(|i| i.top)
        .collect()
}

#[test]
fn the_check_sees_every_spelling_of_a_back_import() {
    let sweep = ["observe", "sweep"];
    assert_eq!(
        back_up(&sweep, "use crate::report::upload::backoff::random;"),
        ["report"]
    );
    assert_eq!(
        back_up(&sweep, "let x = crate::act::plan::plans(&f, &o);"),
        ["act"]
    );
    assert_eq!(
        back_up(
            &sweep,
            "use crate::{\n    model::Listener,\n    daemon::status::Status,\n};"
        ),
        ["daemon"]
    );
    assert_eq!(
        back_up(&sweep, "use super::super::act::guard::Guard;"),
        ["act"]
    );
    assert_eq!(
        back_up(
            &["parse", "libproc_abi"],
            "use crate::platform::Established;"
        ),
        ["platform"]
    );
    assert_eq!(
        back_up(
            &["platform", "macos"],
            "use crate::observe::{command, signing};"
        ),
        ["observe"]
    );
    assert_eq!(
        back_up(&["judge", "camera"], "use crate::config::{self, load};"),
        Vec::<String>::new()
    );
    assert_eq!(
        back_up(&["judge", "camera"], "let l = crate::config::load(&s);"),
        ["config"]
    );
    assert_eq!(back_up(&["clock"], "use crate::model::Finding;"), ["model"]);
}

#[test]
fn the_check_skips_comments_tests_and_allowed_imports() {
    let sweep = ["observe", "sweep"];
    let none = Vec::<String>::new();
    assert_eq!(
        back_up(&sweep, "/// See [`crate::report::outbox`].\nfn f() {}"),
        none
    );
    assert_eq!(
        back_up(&sweep, "let u = \"http://x\"; // crate::act::plan"),
        none
    );
    assert_eq!(
        back_up(
            &sweep,
            "use crate::model::X;\n\n#[cfg(test)]\nmod tests {\n    use crate::act::plan::Step;\n}\n"
        ),
        none
    );
    assert_eq!(
        back_up(
            &sweep,
            "#[cfg(test)]\nuse crate::report::x;\nuse crate::backoff::Backoff;\n"
        ),
        none
    );
    assert_eq!(
        back_up(
            &sweep,
            "use super::camera::CameraWatch;\nuse crate::judge::Observations;"
        ),
        none
    );
    assert_eq!(
        back_up(&["report", "reporter"], "use crate::act::journal::Entry;"),
        none
    );
}
