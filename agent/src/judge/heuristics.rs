//! Criteria 1 and 2 of docs/design.md §2 as separate, individually tested
//! questions — web-reachable? trusted? — plus the aggravating factors and
//! the interpreter/script distinction both rely on. (A helper and the
//! never-list are `helper`; undisclosed is `locate` and `items`.) Each
//! answer comes with the plain-words reasons that go into the finding.

use std::path::{Path, PathBuf};

use super::{Policy, locate};
use crate::model::{
    AddressScope, Cors, HttpProbe, Listener, PersistenceItem, PersistenceKind, ProcessIdentity,
    SignatureStatus,
};

/// Criterion 1's answer. `Unknown` when no probe ran or it could not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    Yes,
    No,
    Unknown,
}

pub(crate) use crate::model::{Code, is_interpreter, script_arg};

/// What `exe` runs with `args`, judged: an interpreter installed where
/// interpreters are (`locate::interpreter_installed`) runs its script or
/// inline code; anything else — including a copy of `node` hidden in a
/// dot-folder — runs its own code, whatever its name. The second value
/// says so when a name was not believed.
pub(crate) fn code_of<'a>(
    exe: &Path,
    args: &'a [String],
    policy: &Policy,
    homes: &[PathBuf],
) -> (Code<'a>, Option<String>) {
    match Code::of(exe, args) {
        Code::Own => (Code::Own, None),
        _ if !locate::interpreter_installed(exe, policy, homes) => (
            Code::Own,
            Some(format!(
                "{} is named like an interpreter but is not installed where interpreters are \
                 (the OS, a package manager, a toolchain, an installed app), so it is judged as \
                 its own program",
                exe.display()
            )),
        ),
        code => (code, None),
    }
}

/// What a running process runs (`code_of` on its executable and argv).
pub(crate) fn process_code<'a>(
    p: &'a ProcessIdentity,
    policy: &Policy,
    homes: &[PathBuf],
) -> (Code<'a>, Option<String>) {
    match p.path.as_deref() {
        Some(exe) => code_of(exe, &p.args, policy, homes),
        None => (Code::Own, None),
    }
}

/// The file judged as the program (`Finding::judged_path`): the
/// executable, the script, or the plist holding inline code; never an
/// interpreter.
pub(crate) fn judged_path(
    exe: Option<&Path>,
    code: Code<'_>,
    plist: Option<&Path>,
) -> Option<PathBuf> {
    match code {
        Code::Own => exe.map(Path::to_path_buf),
        Code::Script(script) => Some(script.to_path_buf()),
        Code::Inline => plist.map(Path::to_path_buf),
    }
}

/// Criterion 1: can a page in a browser on this machine talk HTTP to it?
/// Loopback, every address and one LAN address alike: a page may name the
/// machine's own network address as easily as `127.0.0.1`.
pub(crate) fn web_reach(l: &Listener, probe: Option<&HttpProbe>) -> (Reach, Vec<String>) {
    let endpoint = match l.address {
        std::net::IpAddr::V6(a) => format!("[{a}]:{}", l.port),
        std::net::IpAddr::V4(a) => format!("{a}:{}", l.port),
    };
    let mut reasons = vec![match l.scope {
        AddressScope::Loopback => format!(
            "it listens on {endpoint} (loopback), which any web page open in a browser on this \
             machine can reach"
        ),
        AddressScope::Wildcard => format!(
            "it listens on {endpoint} (all addresses), which any web page open in a browser on \
             this machine can reach, and so can other machines on the network"
        ),
        AddressScope::Lan => format!(
            "it listens on {endpoint}, this machine's own network address rather than loopback: \
             any web page open in a browser on this machine can reach it there, and so can \
             other machines on the network"
        ),
    }];
    let Some(probe) = probe else {
        reasons.push("it was not probed, so whether it speaks HTTP is unknown".into());
        return (Reach::Unknown, reasons);
    };
    if probe.http || probe.websocket {
        let mut what = Vec::new();
        if probe.http {
            what.push(match probe.status {
                Some(s) => format!("answers HTTP (GET / gave {s})"),
                None => "answers HTTP".to_string(),
            });
        }
        if probe.websocket {
            what.push("accepts WebSocket connections".to_string());
        }
        reasons.push(format!("it {}", what.join(" and ")));
        return (Reach::Yes, reasons);
    }
    match &probe.error {
        Some(e) => {
            reasons.push(format!(
                "the probe could not finish ({e}), so whether it speaks HTTP is unknown"
            ));
            (Reach::Unknown, reasons)
        }
        None => {
            reasons.push("it does not answer HTTP or WebSocket".into());
            (Reach::No, reasons)
        }
    }
}

/// What an interpreter runs, in words: `running /x/s.py`.
pub(crate) fn code_words(code: Code<'_>) -> Option<String> {
    match code {
        Code::Own => None,
        Code::Script(s) => Some(format!("running the script {}", s.display())),
        Code::Inline => Some("running code handed to it on its command line".into()),
    }
}

/// Criterion 2: is it trusted? (Admin allow rules are applied by the
/// verdict, after this.) `code` is what the process runs: an interpreter's
/// signature — Apple's or anyone's — covers the interpreter, never the
/// script or inline code it runs.
pub(crate) fn trust(p: Option<&ProcessIdentity>, code: Code<'_>) -> (bool, String) {
    let Some(p) = p else {
        return (
            false,
            "the process holding the socket could not be seen, so nothing vouches for it".into(),
        );
    };
    let what = p.path.as_deref().map_or_else(
        || format!("{} (pid {})", p.name, p.pid),
        |x| x.display().to_string(),
    );
    let sig = &p.signature;
    if let Some(runs) = code_words(code) {
        let whose = if sig.is_apple_platform() {
            "an Apple platform binary, but Apple's signature"
        } else {
            "an interpreter, and its signature"
        };
        return (
            false,
            format!(
                "{what} is {whose} covers the interpreter, not what it runs: it is {runs}, \
                 which nothing vouches for"
            ),
        );
    }
    if sig.is_apple_platform() {
        return (
            true,
            format!("{what} is an Apple platform binary (its signature validated)"),
        );
    }
    let detail = match sig.status {
        SignatureStatus::NotSupported => {
            "code signatures are not available on this platform, so nothing vouches for it"
                .to_string()
        }
        SignatureStatus::Valid => {
            let who = match (&sig.team_id, &sig.identifier) {
                (Some(t), Some(i)) => format!(" by team {t} as {i}"),
                (Some(t), None) => format!(" by team {t}"),
                (None, Some(i)) => format!(" as {i}"),
                (None, None) => String::new(),
            };
            format!(
                "it is validly signed{who}, but a valid signature alone does not make a local \
                 web server trusted"
            )
        }
        SignatureStatus::Unsigned => "it is not code-signed".into(),
        SignatureStatus::AdHoc => "it is only ad-hoc signed, with no developer identity".into(),
        SignatureStatus::Invalid => {
            "its code signature does not validate (changed after signing?)".into()
        }
        SignatureStatus::Unknown => "its code signature could not be checked".into(),
    };
    let claim = if sig.platform_binary {
        " (it claims to be a platform binary, but that signature did not validate)"
    } else {
        ""
    };
    (false, format!("{what}: {detail}{claim}"))
}

/// Aggravating factors of a probe result.
pub(crate) fn aggravating_probe(probe: Option<&HttpProbe>) -> Vec<String> {
    let Some(probe) = probe else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match probe.cors {
        Cors::Wildcard => out
            .push("any web page may read its answers (Access-Control-Allow-Origin: *)".to_string()),
        Cors::Reflected => out.push(
            "it echoes any page's Origin back as allowed, so every web page may read its answers"
                .to_string(),
        ),
        Cors::None | Cors::Specific => {}
    }
    if probe.image {
        out.push(
            "it answers with an image: the trick Zoom's helper used to tell any web page its \
             status around CORS (the image's size encodes the answer)"
                .to_string(),
        );
    }
    out
}

/// The aggravating factor of where a web server listens: not only pages
/// on this machine but the network can reach it.
pub(crate) fn aggravating_scope(scope: AddressScope) -> Option<String> {
    match scope {
        AddressScope::Loopback => None,
        AddressScope::Wildcard => {
            Some("reachable from the local network: it listens on all addresses".into())
        }
        AddressScope::Lan => {
            Some("reachable from the local network: it listens on a network address".into())
        }
    }
}

/// The aggravating factor of a persistence item: it comes back by itself.
pub(crate) fn aggravating_item(item: &PersistenceItem) -> Option<String> {
    let mut how = Vec::new();
    if item.keep_alive {
        how.push("launchd restarts it whenever it exits (KeepAlive)");
    }
    if item.run_at_load {
        how.push("it starts at every load (RunAtLoad)");
    }
    if item.kind == PersistenceKind::LoginItem {
        how.push("it starts at every login (login item)");
    }
    (!how.is_empty()).then(|| how.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::testkit::*;
    use crate::model::Signature;

    #[test]
    fn scripts_of_interpreters() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let py = Path::new("/usr/bin/python3");
        let table: &[(&Path, Vec<String>, Option<&str>)] = &[
            (
                py,
                args(&["python3", "/Users/a/.x/s.py"]),
                Some("/Users/a/.x/s.py"),
            ),
            (py, args(&["python3", "-u", "/srv/s.py"]), Some("/srv/s.py")),
            (py, args(&["python3", "-m", "http.server"]), None),
            (py, args(&["python3", "-c", "import os"]), None),
            (py, args(&["python3", "relative.py"]), None),
            (
                Path::new("/opt/homebrew/bin/node"),
                args(&["node", "--inspect", "/a/b.js"]),
                Some("/a/b.js"),
            ),
            (Path::new("/bin/bash"), args(&["bash", "-c", "/x/y"]), None),
            (
                Path::new("/usr/bin/perl5.34"),
                args(&["perl", "/x/y.pl"]),
                Some("/x/y.pl"),
            ),
            (
                Path::new("/usr/local/bin/helper"),
                args(&["helper", "/x/y"]),
                None,
            ),
        ];
        for (exe, argv, want) in table {
            assert_eq!(
                script_arg(exe, argv),
                want.map(Path::new),
                "{exe:?} {argv:?}"
            );
        }
        assert!(is_interpreter(Path::new(
            "/opt/homebrew/Cellar/python@3.12/3.12.1/Frameworks/Python.framework/Versions/3.12/Resources/Python.app/Contents/MacOS/Python"
        )));
        assert!(!is_interpreter(Path::new("/usr/sbin/nginx")));
    }

    #[test]
    fn reachability() {
        let table = [
            (
                specific("192.168.1.20", 80, &[1]),
                Some(http("")),
                Reach::Yes,
                "192.168.1.20:80, this machine's own network address",
            ),
            (
                specific("fe80::1", 80, &[1]),
                None,
                Reach::Unknown,
                "other machines on the network",
            ),
            (loopback(80, &[1]), None, Reach::Unknown, "not probed"),
            (
                wildcard(80, &[1]),
                Some(HttpProbe {
                    error: Some("connection reset".into()),
                    ..not_http()
                }),
                Reach::Unknown,
                "connection reset",
            ),
            (
                wildcard6(80, &[1]),
                Some(not_http()),
                Reach::No,
                "does not answer HTTP",
            ),
            (
                loopback(80, &[1]),
                Some(websocket()),
                Reach::Yes,
                "WebSocket",
            ),
            (
                specific("::ffff:127.0.0.1", 80, &[1]),
                Some(http("")),
                Reach::Yes,
                "loopback",
            ),
            (
                wildcard6(80, &[1]),
                Some(http("")),
                Reach::Yes,
                "[::]:80 (all addresses)",
            ),
        ];
        for (l, probe, want, words) in table {
            let (reach, reasons) = web_reach(&l, probe.as_ref());
            assert_eq!(reach, want, "{l:?}");
            assert!(reasons.join(" ").contains(words), "{words}: {reasons:?}");
        }
    }

    #[test]
    fn trust_wording_per_signature() {
        let base = process(10, 1, "/x/helper", "helper");
        let with = |status, platform| {
            let mut p = base.clone();
            p.signature = Signature {
                status,
                platform_binary: platform,
                ..Signature::not_supported()
            };
            p
        };
        let table = [
            (
                with(SignatureStatus::NotSupported, false),
                false,
                "not available on this platform",
            ),
            (
                with(SignatureStatus::Unknown, false),
                false,
                "could not be checked",
            ),
            (
                with(SignatureStatus::Unsigned, false),
                false,
                "not code-signed",
            ),
            (with(SignatureStatus::AdHoc, false), false, "ad-hoc"),
            (
                with(SignatureStatus::Invalid, true),
                false,
                "claims to be a platform binary",
            ),
            (
                signed(base.clone(), "ABCDE12345", "com.x"),
                false,
                "by team ABCDE12345",
            ),
            (
                apple(base.clone(), "com.apple.x"),
                true,
                "Apple platform binary",
            ),
        ];
        for (p, want, words) in table {
            let (trusted, why) = trust(Some(&p), Code::Own);
            assert_eq!(trusted, want, "{words}");
            assert!(why.contains(words), "{words}: {why}");
        }
        let python = apple(base.clone(), "com.apple.python3");
        let (trusted, why) = trust(Some(&python), Code::Script(Path::new("/Users/a/.x/s.py")));
        assert!(!trusted && why.contains("not what it runs"), "{why}");
        assert!(why.contains("/Users/a/.x/s.py"), "{why}");
        // Inline code (`python3 -c`) is no more Apple's than a script is.
        let (trusted, why) = trust(Some(&python), Code::Inline);
        assert!(!trusted && why.contains("on its command line"), "{why}");
        // Any interpreter's valid signature covers only itself.
        let (trusted, why) = trust(
            Some(&signed(base, "ABCDE12345", "org.python.python")),
            Code::Inline,
        );
        assert!(
            !trusted && why.contains("an interpreter, and its signature"),
            "{why}"
        );
        assert!(!trust(None, Code::Own).0);
    }

    #[test]
    fn aggravating_factors() {
        let probe = HttpProbe {
            cors: Cors::Reflected,
            image: true,
            ..http("")
        };
        assert_eq!(aggravating_probe(Some(&probe)).len(), 2);
        assert_eq!(aggravating_scope(AddressScope::Loopback), None);
        for scope in [AddressScope::Wildcard, AddressScope::Lan] {
            assert!(
                aggravating_scope(scope).is_some_and(|a| a.contains("local network")),
                "{scope:?}"
            );
        }
        assert!(aggravating_probe(Some(&http(""))).is_empty());
        assert!(aggravating_probe(None).is_empty());
        let mut agent = launch_agent("/p.plist", "l", "/x");
        agent.run_at_load = false;
        assert_eq!(aggravating_item(&agent), None);
        agent.keep_alive = true;
        assert!(aggravating_item(&agent).is_some_and(|a| a.contains("KeepAlive")));
        assert!(aggravating_item(&zoom_login_item(HOME)).is_some_and(|a| a.contains("login")));
    }
}
