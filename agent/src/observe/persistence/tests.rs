//! Tests of the persistence scanner in temporary trees (never the real
//! /Library or /Users).

use super::*;
use std::os::unix::fs::symlink;
use std::sync::mpsc;
use std::time::Duration;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/launchd");
const MAX: u64 = 1024 * 1024;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).unwrap()
}

fn mkdirs(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).unwrap();
    p.to_path_buf()
}

fn pattern(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Run a scan on a helper thread so that a scan that blocks (on a FIFO,
/// say) fails the test instead of hanging it.
fn scan_with_deadline(dirs: Vec<String>, max: u64) -> (Vec<PersistenceItem>, Vec<ScanError>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(scan(&dirs, max));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("scan did not finish within 20 s")
}

fn only_error_for<'a>(errors: &'a [ScanError], path: &Path) -> &'a ScanError {
    let hits: Vec<&ScanError> = errors
        .iter()
        .filter(|e| e.path.as_deref() == Some(path))
        .collect();
    assert_eq!(hits.len(), 1, "{errors:#?}");
    hits[0]
}

#[test]
fn good_xml_and_binary_plists_in_agents_and_daemons() {
    let tmp = tempfile::tempdir().unwrap();
    let agents = mkdirs(&tmp.path().join("Library/LaunchAgents"));
    let daemons = mkdirs(&tmp.path().join("Library/LaunchDaemons"));
    std::fs::write(
        agents.join("b.plist"),
        fixture("zoom-like-hidden-helper.binary.plist"),
    )
    .unwrap();
    std::fs::write(
        agents.join("a.plist"),
        fixture("homebrew.mxcl.postgresql@14.plist"),
    )
    .unwrap();
    std::fs::write(agents.join("README.txt"), "not a plist").unwrap();
    std::fs::write(
        daemons.join("d.PLIST"),
        fixture("socket-activated-helper.plist"),
    )
    .unwrap();

    let (items, errors) = scan_with_deadline(vec![pattern(&tmp.path().join("Library/*"))], MAX);
    assert!(errors.is_empty(), "{errors:#?}");
    let got: Vec<(PathBuf, PersistenceKind, Option<&str>)> = items
        .iter()
        .map(|i| (i.path.clone(), i.kind, i.label.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                agents.join("a.plist"),
                PersistenceKind::LaunchAgent,
                Some("homebrew.mxcl.postgresql@14")
            ),
            (
                agents.join("b.plist"),
                PersistenceKind::LaunchAgent,
                Some("us.zoom.ZoomOpener")
            ),
            (
                daemons.join("d.PLIST"),
                PersistenceKind::LaunchDaemon,
                Some("com.example.webhelper")
            ),
        ]
    );
    let me = nix::unistd::geteuid().as_raw();
    assert!(items.iter().all(|i| i.owner_uid == Some(me)));
    assert_eq!(items[2].sockets.len(), 2);
}

#[test]
fn a_glob_over_two_user_homes_and_missing_dirs_are_silent() {
    let tmp = tempfile::tempdir().unwrap();
    for user in ["bob", "alice"] {
        let d = mkdirs(
            &tmp.path()
                .join(format!("Users/{user}/Library/LaunchAgents")),
        );
        std::fs::write(
            d.join(format!("com.{user}.agent.plist")),
            fixture("zoom-like-hidden-helper.plist"),
        )
        .unwrap();
    }
    mkdirs(&tmp.path().join("Users/carol/Library")); // no LaunchAgents
    let dirs = vec![
        pattern(&tmp.path().join("Users/*/Library/LaunchAgents")),
        pattern(&tmp.path().join("does/not/exist")),
        // The same directory twice is scanned once.
        pattern(&tmp.path().join("Users/alice/Library/LaunchAgents")),
    ];
    let (items, errors) = scan_with_deadline(dirs, MAX);
    assert!(errors.is_empty(), "{errors:#?}");
    let paths: Vec<PathBuf> = items.iter().map(|i| i.path.clone()).collect();
    assert_eq!(
        paths,
        [
            tmp.path()
                .join("Users/alice/Library/LaunchAgents/com.alice.agent.plist"),
            tmp.path()
                .join("Users/bob/Library/LaunchAgents/com.bob.agent.plist"),
        ]
    );
}

#[test]
fn symlinked_plist_is_refused_and_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let agents = mkdirs(&tmp.path().join("LaunchAgents"));
    let outside = mkdirs(&tmp.path().join("outside"));
    std::fs::write(
        outside.join("real.plist"),
        fixture("zoom-like-hidden-helper.plist"),
    )
    .unwrap();
    symlink("/etc/passwd", agents.join("passwd.plist")).unwrap();
    symlink(outside.join("real.plist"), agents.join("link.plist")).unwrap();
    symlink(&outside, agents.join("dir.plist")).unwrap();
    std::fs::write(
        agents.join("ok.plist"),
        fixture("homebrew.mxcl.postgresql@14.plist"),
    )
    .unwrap();

    let (items, errors) = scan_with_deadline(vec![pattern(&agents)], MAX);
    assert_eq!(items.len(), 1, "only the real file: {items:#?}");
    assert_eq!(items[0].path, agents.join("ok.plist"));
    let e = only_error_for(&errors, &agents.join("passwd.plist"));
    assert!(
        e.message.starts_with("symlink to /etc/passwd refused"),
        "{}",
        e.message
    );
    let e = only_error_for(&errors, &agents.join("link.plist"));
    assert!(e.message.contains("refused"), "{}", e.message);
    let e = only_error_for(&errors, &agents.join("dir.plist"));
    assert!(e.message.contains("symlink to"), "{}", e.message);
    assert_eq!(errors.len(), 3);
    assert!(errors.iter().all(|e| e.source == SOURCE));
}

#[test]
fn symlinked_directory_planted_by_a_user_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = mkdirs(&tmp.path().join("var/root/Library/LaunchDaemons"));
    std::fs::write(
        elsewhere.join("x.plist"),
        fixture("smappservice-daemon.plist"),
    )
    .unwrap();
    let library = mkdirs(&tmp.path().join("Users/mallory/Library"));
    let link = library.join("LaunchAgents");
    symlink(&elsewhere, &link).unwrap();
    if is_root() {
        // As root the link would be root's own; make it mallory's, as it
        // would be on a Mac.
        std::os::unix::fs::lchown(&link, Some(501), Some(20)).unwrap();
    }
    let (items, errors) = scan_with_deadline(
        vec![pattern(&tmp.path().join("Users/*/Library/LaunchAgents"))],
        MAX,
    );
    assert!(items.is_empty(), "{items:#?}");
    let e = only_error_for(&errors, &link);
    assert!(
        e.message
            .starts_with(&format!("symlink to {} refused", elsewhere.display())),
        "{}",
        e.message
    );
}

#[test]
fn root_made_link_in_a_root_only_directory_is_followed() {
    if !is_root() {
        // Only root can make a link that only root controls.
        return;
    }
    let tmp = tempfile::tempdir().unwrap(); // root-owned, 0700
    let real = mkdirs(&tmp.path().join("private/Library/LaunchDaemons"));
    std::fs::write(real.join("x.plist"), fixture("smappservice-daemon.plist")).unwrap();
    symlink(
        tmp.path().join("private/Library"),
        tmp.path().join("Library"),
    )
    .unwrap();
    let (items, errors) = scan_with_deadline(
        vec![pattern(&tmp.path().join("Library/LaunchDaemons"))],
        MAX,
    );
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, PersistenceKind::LaunchDaemon);
}

#[test]
fn oversized_and_deeply_nested_plists_are_errors_and_the_scan_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let agents = mkdirs(&tmp.path().join("LaunchAgents"));
    std::fs::write(agents.join("big.plist"), vec![b' '; 5 * 1024 * 1024]).unwrap();
    let n = 50_000;
    let deep = format!(
        "<plist>{}{}</plist>",
        "<array>".repeat(n),
        "</array>".repeat(n)
    );
    std::fs::write(agents.join("deep.plist"), deep).unwrap();
    std::fs::write(agents.join("empty.plist"), b"").unwrap();
    std::fs::write(
        agents.join("ok.plist"),
        fixture("smappservice-daemon.binary.plist"),
    )
    .unwrap();

    let (items, errors) = scan_with_deadline(vec![pattern(&agents)], MAX);
    assert_eq!(items.len(), 1);
    let e = only_error_for(&errors, &agents.join("big.plist"));
    assert_eq!(
        e.message,
        "is 5242880 bytes, more than MaxPlistBytes (1048576); refused"
    );
    let e = only_error_for(&errors, &agents.join("deep.plist"));
    assert!(e.message.contains("nests deeper than 64"), "{}", e.message);
    let e = only_error_for(&errors, &agents.join("empty.plist"));
    assert!(e.message.contains("empty"), "{}", e.message);
    assert_eq!(errors.len(), 3);
}

#[test]
fn fifo_named_plist_does_not_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let agents = mkdirs(&tmp.path().join("LaunchAgents"));
    nix::unistd::mkfifo(&agents.join("x.plist"), Mode::from_bits_truncate(0o644)).unwrap();
    mkdirs(&agents.join("sub.plist"));
    let (items, errors) = scan_with_deadline(vec![pattern(&agents)], MAX);
    assert!(items.is_empty());
    let e = only_error_for(&errors, &agents.join("x.plist"));
    assert_eq!(e.message, "not a regular file (FIFO); refused");
    let e = only_error_for(&errors, &agents.join("sub.plist"));
    assert_eq!(e.message, "not a regular file (directory); refused");
}

#[test]
fn invalid_utf8_file_name_is_reported_without_a_path() {
    let tmp = tempfile::tempdir().unwrap();
    let agents = mkdirs(&tmp.path().join("LaunchAgents"));
    let name = OsStr::from_bytes(b"bad\xff.plist");
    std::fs::write(
        agents.join(name),
        fixture("homebrew.mxcl.postgresql@14.plist"),
    )
    .unwrap();
    let (items, errors) = scan_with_deadline(vec![pattern(&agents)], MAX);
    assert!(items.is_empty());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        errors[0].path, None,
        "a non-UTF-8 path would break the JSON report"
    );
    assert!(
        errors[0].message.contains("bad\u{fffd}.plist"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.contains("not valid UTF-8"),
        "{}",
        errors[0].message
    );
    // The report stays serialisable.
    serde_json::to_string(&errors).unwrap();
}

#[test]
fn bad_pattern_and_a_file_where_a_directory_should_be() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("LaunchAgents");
    std::fs::write(&file, "x").unwrap();
    let (items, errors) = scan_with_deadline(vec!["/tmp/[".into(), pattern(&file)], MAX);
    assert!(items.is_empty());
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].message.contains("not a valid glob"),
        "{}",
        errors[0].message
    );
    assert_eq!(errors[1].path.as_deref(), Some(file.as_path()));
    assert!(
        errors[1].message.contains("regular file"),
        "{}",
        errors[1].message
    );
}

#[test]
fn wrong_typed_plist_names_the_file_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let agents = mkdirs(&tmp.path().join("LaunchAgents"));
    std::fs::write(agents.join("w.plist"), fixture("wrong-type-label.plist")).unwrap();
    let (_, errors) = scan_with_deadline(vec![pattern(&agents)], MAX);
    let e = only_error_for(&errors, &agents.join("w.plist"));
    assert_eq!(e.message, "key Label: expected string, found integer");
}
