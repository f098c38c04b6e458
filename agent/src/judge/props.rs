//! Property tests: whatever observe hands in — arbitrary processes,
//! sockets, probes, persistence, and rules that push as hard as they can
//! toward remediate — the judge gives one finding per listener and per
//! item, never an empty reason list, the same output for the same input,
//! and never a remediate verdict for PID 0/1, the agent, an Apple platform
//! binary or anything under `/System`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::correlate::starts_process;
use super::heuristics::{Code, code_of, process_code};
use super::locate::is_sealed_os;
use super::subject::Subject;
use super::testkit::{AGENT_EXE, AGENT_PID, HOME, rule};
use super::{Observations, Policy, judge, rules};
use crate::config::Config;
use crate::model::RuleAction;
use crate::model::{
    AddressScope, Cors, FindingKind, HttpProbe, LaunchdSocket, Listener, PersistenceItem,
    PersistenceKind, ProcessIdentity, Signature, SignatureStatus, StartTime, Verdict,
    enclosing_bundle,
};

const PIDS: &[u32] = &[0, 1, AGENT_PID, 100, 101, 102, 103, 104];

const PATHS: &[&str] = &[
    "/System/Library/CoreServices/ControlCenter.app/Contents/MacOS/ControlCenter",
    "/System/Library/Private/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener",
    "/Users/ann/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener",
    "/Applications/zoom.us.app/Contents/Frameworks/ZoomOpener.app/Contents/MacOS/ZoomOpener",
    "/Users/ann/Library/Application Support/Acme/helper",
    "/tmp/x/.hidden/helper",
    "/usr/libexec/rapportd",
    "/usr/bin/python3",
    "/opt/homebrew/opt/nginx/bin/nginx",
    "/Applications/Dropbox.app/Contents/MacOS/Dropbox",
    "/sbin/launchd",
    AGENT_EXE,
];

fn path() -> impl Strategy<Value = PathBuf> {
    prop_oneof![
        4 => proptest::sample::select(PATHS).prop_map(PathBuf::from),
        1 => "(/[A-Za-z.]{0,8}){0,5}".prop_map(PathBuf::from),
    ]
}

/// Arguments, some of them an interpreter's script (hidden, or part of
/// the OS) or an inline-code flag.
fn arg() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[-/A-Za-z.]{0,16}",
        1 => proptest::sample::select(
            &["/Users/ann/.x/s.py", "/usr/libexec/x.pl", "-c", "print(1)"][..]
        )
        .prop_map(String::from),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "ZoomOpener",
                "RingCentralOpen",
                "launchd",
                "python3",
                "nginx"
            ][..]
        )
        .prop_map(String::from),
        "[A-Za-z.]{0,20}",
    ]
}

fn signature() -> impl Strategy<Value = Signature> {
    let status = proptest::sample::select(
        &[
            SignatureStatus::NotSupported,
            SignatureStatus::Unknown,
            SignatureStatus::Unsigned,
            SignatureStatus::AdHoc,
            SignatureStatus::Valid,
            SignatureStatus::Invalid,
        ][..],
    );
    let id = proptest::option::of(prop_oneof![
        Just("us.zoom.ZoomOpener".to_string()),
        Just("com.apple.controlcenter".to_string()),
        "[a-z.]{0,12}",
    ]);
    let team = proptest::option::of(prop_oneof![Just("BJ4HAAB9B3".to_string()), "[A-Z0-9]{10}"]);
    (status, id, team, any::<bool>()).prop_map(|(status, identifier, team_id, platform_binary)| {
        Signature {
            status,
            identifier,
            team_id,
            platform_binary,
            authorities: Vec::new(),
        }
    })
}

fn process() -> impl Strategy<Value = ProcessIdentity> {
    (
        proptest::sample::select(PIDS),
        proptest::sample::select(PIDS),
        proptest::option::weighted(0.9, path()),
        proptest::collection::vec(arg(), 0..3),
        name(),
        any::<bool>(),
        signature(),
    )
        .prop_map(
            |(pid, ppid, path, args, name, interactive, signature)| ProcessIdentity {
                pid,
                ppid,
                start_time: StartTime {
                    unix_us: 1,
                    resolution_us: 1,
                },
                bundle: path.as_deref().and_then(enclosing_bundle),
                path,
                args,
                uid: 501,
                user: None,
                name,
                interactive,
                signature,
            },
        )
}

fn address() -> impl Strategy<Value = IpAddr> {
    proptest::sample::select(
        &[
            "127.0.0.1",
            "0.0.0.0",
            "::",
            "::1",
            "192.168.1.2",
            "::ffff:127.0.0.1",
        ][..],
    )
    .prop_map(|a| a.parse().unwrap_or(IpAddr::from([127, 0, 0, 1])))
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        proptest::sample::select(&[19421u16, 8080, 17500][..]),
        any::<u16>()
    ]
}

fn listener() -> impl Strategy<Value = Listener> {
    (
        address(),
        port(),
        proptest::collection::vec(proptest::sample::select(PIDS), 0..3),
    )
        .prop_map(|(address, port, pids)| Listener {
            address,
            port,
            scope: AddressScope::of(address),
            v6only: None,
            pids,
            socket_id: 0,
        })
}

fn probe() -> impl Strategy<Value = HttpProbe> {
    let cors = proptest::sample::select(
        &[Cors::None, Cors::Wildcard, Cors::Reflected, Cors::Specific][..],
    );
    (
        any::<bool>(),
        any::<bool>(),
        cors,
        any::<bool>(),
        proptest::option::of("[a-z ]{0,10}"),
    )
        .prop_map(|(http, websocket, cors, image, error)| HttpProbe {
            http,
            websocket,
            status: None,
            server: None,
            content_type: None,
            cors,
            image,
            error,
        })
}

fn item() -> impl Strategy<Value = PersistenceItem> {
    let kind = proptest::sample::select(
        &[
            PersistenceKind::LaunchAgent,
            PersistenceKind::LaunchDaemon,
            PersistenceKind::LoginItem,
        ][..],
    );
    (
        kind,
        path(),
        proptest::option::of(name()),
        proptest::option::weighted(0.9, path()),
        proptest::collection::vec(arg(), 0..3),
        (any::<bool>(), any::<bool>()),
        proptest::option::of(port()),
        proptest::collection::vec(
            prop_oneof![Just("us.zoom.xos".to_string()), "[a-z.]{0,10}"],
            0..2,
        ),
        proptest::option::of("[0-9]{0,2}\\.[a-z.]{0,10}"),
    )
        .prop_map(
            |(kind, path, label, program, args, (run_at_load, keep_alive), sock, ids, parent)| {
                PersistenceItem {
                    kind,
                    path,
                    label,
                    program,
                    args,
                    run_at_load,
                    keep_alive,
                    sockets: sock
                        .map(|p| LaunchdSocket {
                            name: "Listeners".into(),
                            service: Some(p.to_string()),
                            node: None,
                        })
                        .into_iter()
                        .collect(),
                    associated_bundle_ids: ids,
                    owner_uid: None,
                    parent_identifier: parent,
                    developer: None,
                    disposition: None,
                }
            },
        )
}

fn observations() -> impl Strategy<Value = Observations> {
    (
        proptest::collection::vec(process(), 0..6),
        proptest::collection::vec((listener(), proptest::option::of(probe())), 0..6),
        proptest::collection::vec(item(), 0..4),
        proptest::collection::vec(path(), 0..4),
        any::<bool>(),
    )
        .prop_map(
            |(procs, listeners, persistence, existing, zoom_installed)| {
                let mut obs = Observations {
                    persistence,
                    existing_paths: existing.into_iter().collect(),
                    home_dirs: vec![PathBuf::from(HOME)],
                    agent_pid: AGENT_PID,
                    agent_exe: Some(PathBuf::from(AGENT_EXE)),
                    ..Observations::default()
                };
                if zoom_installed {
                    obs.installed_bundle_ids.insert("us.zoom.xos".into());
                }
                for p in procs {
                    obs.processes.insert(p.pid, p);
                }
                for (l, probe) in listeners {
                    if let Some(probe) = probe {
                        obs.probes.insert((l.address, l.port), probe);
                    }
                    obs.listeners.push(l);
                }
                obs
            },
        )
}

/// Policies from none to "deny everything", plus allow rules to collide.
fn policy(which: u8, port: u16) -> Policy {
    let mut deny_all = rule("deny-all", RuleAction::Deny);
    deny_all.path = Some("/**".into());
    let mut deny_port = rule("deny-port", RuleAction::Deny);
    deny_port.port = Some(port);
    let mut deny_label = rule("deny-label", RuleAction::Deny);
    deny_label.label = Some("ZoomOpener".into());
    let mut allow_team = rule("allow-zoom", RuleAction::Allow);
    allow_team.team_id = Some("BJ4HAAB9B3".into());
    let rules = match which % 4 {
        0 => vec![],
        1 => vec![deny_all],
        2 => vec![allow_team, deny_port, deny_label],
        _ => vec![deny_all, deny_port],
    };
    Policy::new(&Config {
        rules,
        ..Config::default()
    })
    .unwrap_or_else(|e| panic!("test policy: {e}"))
}

/// The never-list as the module doc states it. A process is judged by
/// what it runs: an installed interpreter running a script, or inline code
/// a persistence item hands it, is that code's process (its file is never
/// moved) — unless the script is part of the sealed OS.
fn untouchable(p: &ProcessIdentity, policy: &Policy, obs: &Observations) -> bool {
    let path = p.path.as_deref();
    if p.pid <= 1 || p.pid == AGENT_PID || path == Some(Path::new(AGENT_EXE)) {
        return true;
    }
    let persistent = || {
        let parent = obs
            .processes
            .get(&p.ppid)
            .filter(|q| q.pid != 1 && q.pid != p.pid);
        // Started by an item directly, through its parent, or by launchd
        // socket activation of a port it holds (correlate's three links).
        let ports: Vec<String> = obs
            .listeners
            .iter()
            .filter(|l| l.pids.contains(&p.pid))
            .map(|l| l.port.to_string())
            .collect();
        obs.persistence.iter().any(|item| {
            starts_process(item, p).is_some()
                || parent.is_some_and(|q| starts_process(item, q).is_some())
                || item
                    .sockets
                    .iter()
                    .any(|s| s.service.as_ref().is_some_and(|svc| ports.contains(svc)))
        })
    };
    let os = p.signature.is_apple_platform() || path.is_some_and(|x| x.starts_with("/System"));
    match process_code(p, policy, &obs.home_dirs).0 {
        Code::Own => os,
        Code::Script(script) => is_sealed_os(script),
        Code::Inline => os && !persistent(),
    }
}

/// An allow rule that names only an identity.
fn identity_allow(id: &str, team: &str, which: u8) -> crate::model::Rule {
    let mut r = rule("allow-identity", RuleAction::Allow);
    match which % 4 {
        0 => r.signing_id = Some(id.into()),
        1 => r.bundle_id = Some(id.into()),
        2 => r.team_id = Some(team.into()),
        _ => r.label = Some(id.into()),
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_remediates_the_untouchable_and_always_explains(
        obs in observations(),
        which in any::<u8>(),
        port in port(),
    ) {
        let policy = policy(which, port);
        let findings = judge(&policy, &obs);
        prop_assert_eq!(findings.len(), obs.listeners.len() + obs.persistence.len());
        for f in &findings {
            prop_assert!(!f.reasons.is_empty(), "empty reasons: {:?}", f);
            prop_assert!(f.reasons.iter().all(|r| !r.trim().is_empty()));
            if f.verdict != Verdict::Remediate {
                continue;
            }
            prop_assert!(
                !f.processes.iter().any(|p| untouchable(p, &policy, &obs)),
                "remediate touches a protected process: {:?}",
                f
            );
            // What would be moved is never /System, and never the
            // interpreter a process or item runs as one (unless the
            // generated plist itself sits at that path).
            if let Some(judged) = f.judged_path.as_deref() {
                prop_assert!(!judged.starts_with("/System"), "{:?}", f);
                let plist = f.persistence.as_ref().map(|r| r.path.as_path());
                let item = obs.persistence.iter().find(|i| Some(i.path.as_path()) == plist);
                let runs_as_interpreter = f
                    .process
                    .as_ref()
                    .filter(|p| process_code(p, &policy, &obs.home_dirs).0 != Code::Own)
                    .and_then(|p| p.path.as_deref())
                    .or_else(|| {
                        let i = item?;
                        let program = i.program.as_deref()?;
                        (code_of(program, &i.args, &policy, &obs.home_dirs).0 != Code::Own)
                            .then_some(program)
                    });
                prop_assert!(
                    runs_as_interpreter.is_none_or(|x| x != judged || plist == Some(judged)),
                    "an interpreter is to be moved: {:?}",
                    f
                );
            }
            match f.kind {
                FindingKind::Listener => {
                    prop_assert!(!f.processes.is_empty(), "remediate with no process: {:?}", f);
                    // Two sockets may share an address and port
                    // (SO_REUSEPORT): the finding is one of the candidates
                    // with the same visible owners, and one of those must
                    // be free of pid 0/1 and the agent.
                    let l = f.listener.as_ref();
                    let owners: Vec<u32> = f.processes.iter().map(|p| p.pid).collect();
                    let free = obs.listeners.iter().any(|x| {
                        let same_socket = l.is_some_and(|l| l.address == x.address && l.port == x.port);
                        let seen: Vec<u32> = x
                            .pids
                            .iter()
                            .copied()
                            .filter(|p| obs.processes.contains_key(p))
                            .collect();
                        same_socket
                            && seen == owners
                            && !x.pids.iter().any(|&p| p <= 1 || p == AGENT_PID)
                    });
                    prop_assert!(free, "remediate on a socket pid 0/1 or the agent holds: {:?}", f);
                }
                FindingKind::Persistence => {
                    let item = f.persistence.as_ref();
                    let program = item.and_then(|i| i.program.as_deref());
                    prop_assert!(!item.is_some_and(|i| i.path.starts_with("/System")));
                    // A /System interpreter may run a user's script: the
                    // script is judged, the interpreter never touched.
                    let args = obs
                        .persistence
                        .iter()
                        .find(|i| Some(&i.path) == item.map(|r| &r.path))
                        .map_or(&[][..], |i| &i.args[..]);
                    let own = program.is_some_and(|p| {
                        code_of(p, args, &policy, &obs.home_dirs).0 == Code::Own
                    });
                    prop_assert!(!(own && program.is_some_and(|p| p.starts_with("/System"))));
                    prop_assert!(program != Some(Path::new(AGENT_EXE)));
                }
                // The generator makes no camera observations; judge/camera
                // has its own properties.
                FindingKind::CameraGrant | FindingKind::CameraUse => {
                    prop_assert!(false, "camera finding without camera input: {:?}", f);
                }
            }
        }
        prop_assert_eq!(judge(&policy, &obs), findings, "same input, same output");
    }

    /// An allow rule by identity (SigningID, BundleID, TeamID, Label) never
    /// matches a subject whose signature is not Valid, nor an interpreter
    /// running code; with a valid signature of its own it does.
    #[test]
    fn allow_by_identity_needs_a_valid_signature(
        p in process(),
        which in any::<u8>(),
        interpreter in any::<bool>(),
    ) {
        let mut p = p;
        let id = p.signature.identifier.clone().unwrap_or_else(|| "com.x".into());
        let team = p.signature.team_id.clone().unwrap_or_else(|| "ABCDE12345".into());
        p.signature.identifier = Some(id.clone());
        p.signature.team_id = Some(team.clone());
        if interpreter {
            p.path = Some("/usr/bin/python3".into());
            p.args = vec!["python3".into(), "/Users/ann/.x/s.py".into()];
        }
        let policy = Policy::new(&Config {
            rules: vec![identity_allow(&id, &team, which)],
            ..Config::default()
        })
        .unwrap_or_else(|e| panic!("test policy: {e}"));
        let code = process_code(&p, &policy, &[PathBuf::from(HOME)]).0;
        let mut subject = Subject::default().with_process(&p, code);
        subject.labels.push(&id);
        let hit = rules::decide(&policy.rules, &subject);
        let vouched = p.signature.status == SignatureStatus::Valid && code == Code::Own;
        prop_assert_eq!(hit.is_some(), vouched, "{:?} {:?}", p.signature, code);
        // A process's own identity that matched but is not vouched for is
        // said; an interpreter's identity is never the subject's at all.
        if code == Code::Own {
            prop_assert_eq!(rules::unvouched(&policy.rules, &subject).is_empty(), vouched);
        }
    }

    /// The same through the whole judge: an admin allow rule by identity
    /// decides a finding only for a process whose signature validated.
    #[test]
    fn identity_allow_rules_decide_only_for_valid_signatures(
        obs in observations(),
        which in any::<u8>(),
    ) {
        let policy = Policy::new(&Config {
            rules: vec![
                identity_allow("us.zoom.ZoomOpener", "BJ4HAAB9B3", which),
                identity_allow("com.apple.controlcenter", "BJ4HAAB9B3", which.wrapping_add(1)),
            ],
            ..Config::default()
        })
        .unwrap_or_else(|e| panic!("test policy: {e}"));
        for f in judge(&policy, &obs) {
            if f.rule.as_deref() != Some("rule:allow-identity") {
                continue;
            }
            let p = f.process.as_ref();
            prop_assert!(
                p.is_some_and(|p| p.signature.status == SignatureStatus::Valid),
                "allowed by identity without a valid signature: {:?}",
                f
            );
        }
    }
}
