//! Tests of the launchd job parser on the fixtures in
//! `agent/tests/fixtures/launchd/` (each says where its shape comes from).

use super::*;
use crate::parse::plist_guard::tests::{barray, bplist};
use proptest::prelude::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/launchd/",
            $name
        ))
    };
}

#[test]
fn zoom_like_hidden_helper() {
    let job = parse_launchd_plist(fixture!("zoom-like-hidden-helper.plist")).unwrap();
    assert_eq!(job.label.as_deref(), Some("us.zoom.ZoomOpener"));
    assert_eq!(job.program, None);
    assert_eq!(job.program_arguments.len(), 3);
    assert!(job.run_at_load);
    assert_eq!(job.keep_alive, KeepAlive::Always);
    assert_eq!(job.associated_bundle_identifiers, vec!["us.zoom.xos"]);
    let plist = Path::new("/Users/alice/Library/LaunchAgents/us.zoom.ZoomOpener.plist");
    assert_eq!(
        job.resolved_program(plist),
        Some(PathBuf::from(
            "/Users/alice/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener"
        ))
    );
    let item = job.to_persistence_item(PersistenceKind::LaunchAgent, plist, Some(501));
    assert!(item.keep_alive && item.run_at_load);
    assert_eq!(item.args[1..], ["--port", "19421"]);
    assert_eq!(item.owner_uid, Some(501));
    assert_eq!(item.path, plist);
}

#[test]
fn homebrew_postgresql_agent() {
    let job = parse_launchd_plist(fixture!("homebrew.mxcl.postgresql@14.plist")).unwrap();
    assert_eq!(job.label.as_deref(), Some("homebrew.mxcl.postgresql@14"));
    assert_eq!(
        job.program_arguments,
        [
            "/opt/homebrew/opt/postgresql@14/bin/postgres",
            "-D",
            "/opt/homebrew/var/postgresql@14"
        ]
    );
    assert!(job.run_at_load && job.keep_alive.keeps_alive() && !job.disabled);
    assert!(job.sockets.is_empty() && job.mach_services.is_empty());
    assert_eq!(
        job.resolved_program(Path::new("/x/y.plist")),
        Some(PathBuf::from(
            "/opt/homebrew/opt/postgresql@14/bin/postgres"
        ))
    );
}

#[test]
fn smappservice_daemon_resolves_bundle_program() {
    let job = parse_launchd_plist(fixture!("smappservice-daemon.plist")).unwrap();
    assert_eq!(
        job.bundle_program.as_deref(),
        Some("Contents/MacOS/keepresso-helper")
    );
    assert_eq!(
        job.keep_alive,
        KeepAlive::Conditions(vec!["SuccessfulExit=false".into()])
    );
    assert!(job.keep_alive.keeps_alive());
    assert_eq!(job.mach_services, ["sh.gyorgy.keepresso.helper.xpc"]);
    assert_eq!(job.associated_bundle_identifiers, ["sh.gyorgy.keepresso"]);
    assert_eq!(job.user_name.as_deref(), Some("root"));
    let plist = Path::new(
        "/Applications/Keepresso.app/Contents/Library/LaunchDaemons/sh.gyorgy.keepresso.helper.plist",
    );
    assert_eq!(
        job.resolved_program(plist),
        Some(PathBuf::from(
            "/Applications/Keepresso.app/Contents/MacOS/keepresso-helper"
        ))
    );
    // Not inside a bundle: nothing to resolve BundleProgram against.
    assert_eq!(
        job.resolved_program(Path::new("/Library/LaunchDaemons/x.plist")),
        None
    );
}

#[test]
fn bundle_program_resolves_against_the_innermost_registering_app() {
    let job = LaunchdJob {
        bundle_program: Some("Contents/MacOS/helper".into()),
        ..empty_job()
    };
    let plist = Path::new(
        "/Applications/Outer.app/Contents/Frameworks/Inner.app/Contents/Library/LaunchAgents/a.plist",
    );
    assert_eq!(
        job.resolved_program(plist),
        Some(PathBuf::from(
            "/Applications/Outer.app/Contents/Frameworks/Inner.app/Contents/MacOS/helper"
        ))
    );
}

#[test]
fn dot_dot_cannot_make_a_program_look_like_it_is_inside_the_bundle() {
    let job = LaunchdJob {
        bundle_program: Some("Contents/MacOS/../../../../tmp/evil".into()),
        ..empty_job()
    };
    let plist = Path::new("/Applications/A.app/Contents/Library/LaunchAgents/a.plist");
    assert_eq!(
        job.resolved_program(plist),
        Some(PathBuf::from("/tmp/evil"))
    );
    let job = LaunchdJob {
        program: Some("/Applications/A.app/../../../../tmp/./x".into()),
        ..empty_job()
    };
    assert_eq!(job.resolved_program(plist), Some(PathBuf::from("/tmp/x")));
    assert_eq!(
        normalize(Path::new("../../a/./b/..")),
        PathBuf::from("../../a")
    );
}

#[test]
fn sockets_in_both_shapes() {
    let job = parse_launchd_plist(fixture!("socket-activated-helper.plist")).unwrap();
    assert!(job.disabled);
    assert_eq!(job.keep_alive, KeepAlive::No);
    assert_eq!(
        job.sockets,
        vec![
            LaunchdSocket {
                name: "Listeners".into(),
                service: Some("19421".into()),
                node: Some("127.0.0.1".into()),
            },
            LaunchdSocket {
                name: "Alt".into(),
                service: Some("19424".into()),
                node: Some("::1".into()),
            },
        ]
    );
    // Program wins over ProgramArguments[0].
    assert_eq!(
        job.resolved_program(Path::new("/Library/LaunchDaemons/x.plist")),
        Some(PathBuf::from(
            "/Library/Application Support/Example/webhelper"
        ))
    );
}

#[test]
fn binary_twins_parse_like_their_xml() {
    for (xml, bin) in [
        (
            &fixture!("zoom-like-hidden-helper.plist")[..],
            &fixture!("zoom-like-hidden-helper.binary.plist")[..],
        ),
        (
            fixture!("smappservice-daemon.plist"),
            fixture!("smappservice-daemon.binary.plist"),
        ),
        (
            fixture!("socket-activated-helper.plist"),
            fixture!("socket-activated-helper.binary.plist"),
        ),
    ] {
        assert!(bin.starts_with(b"bplist00"));
        assert_eq!(
            parse_launchd_plist(xml).unwrap(),
            parse_launchd_plist(bin).unwrap()
        );
    }
}

#[test]
fn wrong_types_name_the_key_and_the_type_found() {
    let err = parse_launchd_plist(fixture!("wrong-type-label.plist")).unwrap_err();
    assert_eq!(err.to_string(), "key Label: expected string, found integer");

    let cases: [(&str, &str); 7] = [
        (
            "<key>ProgramArguments</key><array><string>a</string><true/></array>",
            "key ProgramArguments[1]: expected string, found boolean",
        ),
        (
            "<key>ProgramArguments</key><string>/bin/sh</string>",
            "key ProgramArguments: expected array of strings, found string",
        ),
        (
            "<key>RunAtLoad</key><string>yes</string>",
            "key RunAtLoad: expected boolean, found string",
        ),
        (
            "<key>KeepAlive</key><integer>1</integer>",
            "key KeepAlive: expected boolean or dictionary, found integer",
        ),
        (
            "<key>Sockets</key><dict><key>L</key><dict><key>SockServiceName</key><true/></dict></dict>",
            "key Sockets.L.SockServiceName: expected string or integer, found boolean",
        ),
        (
            "<key>AssociatedBundleIdentifiers</key><dict/>",
            "key AssociatedBundleIdentifiers: expected string or array of strings, found dictionary",
        ),
        (
            "<key>MachServices</key><array/>",
            "key MachServices: expected dictionary, found array",
        ),
    ];
    for (body, want) in cases {
        let xml = format!("<plist version=\"1.0\"><dict>{body}</dict></plist>");
        let err = parse_launchd_plist(xml.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn not_a_dictionary_and_garbage_are_clear_errors() {
    let err = parse_launchd_plist(b"<plist version=\"1.0\"><array/></plist>").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the top level is array, but a launchd job must be a dictionary"
    );
    let err = parse_launchd_plist(b"\xff\xfe\x00garbage\x80").unwrap_err();
    assert!(matches!(err, LaunchdError::Plist(_)), "{err}");
    let err = parse_launchd_plist(
        b"<?xml version=\"1.0\"?><plist><dict><key>Label</key><string>\xc3\x28</string></dict></plist>",
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a property list"), "{err}");
}

#[test]
fn empty_keep_alive_dict_does_not_keep_alive() {
    let xml = b"<plist><dict><key>KeepAlive</key><dict/></dict></plist>";
    let job = parse_launchd_plist(xml).unwrap();
    assert_eq!(job.keep_alive, KeepAlive::Conditions(vec![]));
    assert!(!job.keep_alive.keeps_alive());
}

#[test]
fn deep_nesting_inside_a_job_is_refused() {
    let n = 100_000;
    let xml = format!(
        "<plist><dict><key>Label</key><string>x</string><key>Junk</key>{}{}</dict></plist>",
        "<array>".repeat(n),
        "</array>".repeat(n)
    );
    let err = parse_launchd_plist(xml.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("nests deeper than"), "{err}");

    let n: u64 = 100_000;
    let mut objects: Vec<Vec<u8>> = (0..n).map(|i| barray(&[i + 1], 4)).collect();
    objects.push(barray(&[], 4));
    let err = parse_launchd_plist(&bplist(&objects, 4)).unwrap_err();
    assert!(err.to_string().contains("nests deeper than"), "{err}");
}

fn empty_job() -> LaunchdJob {
    LaunchdJob {
        label: None,
        program: None,
        program_arguments: Vec::new(),
        bundle_program: None,
        run_at_load: false,
        keep_alive: KeepAlive::No,
        disabled: false,
        sockets: Vec::new(),
        mach_services: Vec::new(),
        associated_bundle_identifiers: Vec::new(),
        user_name: None,
    }
}

/// Write a job back out as a plist `Value`, the way launchd expects it.
fn job_to_value(job: &LaunchdJob) -> Value {
    let mut d = Dictionary::new();
    let s = |x: &str| Value::String(x.to_string());
    if let Some(l) = &job.label {
        d.insert("Label".into(), s(l));
    }
    if let Some(p) = &job.program {
        d.insert("Program".into(), s(p));
    }
    if !job.program_arguments.is_empty() {
        d.insert(
            "ProgramArguments".into(),
            Value::Array(job.program_arguments.iter().map(|a| s(a)).collect()),
        );
    }
    if let Some(b) = &job.bundle_program {
        d.insert("BundleProgram".into(), s(b));
    }
    d.insert("RunAtLoad".into(), Value::Boolean(job.run_at_load));
    d.insert("Disabled".into(), Value::Boolean(job.disabled));
    match &job.keep_alive {
        KeepAlive::No => {}
        KeepAlive::Always => {
            d.insert("KeepAlive".into(), Value::Boolean(true));
        }
        KeepAlive::Conditions(c) => {
            let mut kd = Dictionary::new();
            for cond in c {
                let (k, v) = cond.split_once('=').unwrap_or((cond, "false"));
                kd.insert(k.into(), Value::Boolean(v == "true"));
            }
            d.insert("KeepAlive".into(), Value::Dictionary(kd));
        }
    }
    if !job.sockets.is_empty() {
        let mut sd = Dictionary::new();
        for sock in &job.sockets {
            let mut one = Dictionary::new();
            if let Some(v) = &sock.service {
                one.insert("SockServiceName".into(), s(v));
            }
            if let Some(v) = &sock.node {
                one.insert("SockNodeName".into(), s(v));
            }
            sd.insert(sock.name.clone(), Value::Dictionary(one));
        }
        d.insert("Sockets".into(), Value::Dictionary(sd));
    }
    if !job.mach_services.is_empty() {
        let md = job
            .mach_services
            .iter()
            .map(|m| (m.clone(), Value::Boolean(true)))
            .collect();
        d.insert("MachServices".into(), Value::Dictionary(md));
    }
    if !job.associated_bundle_identifiers.is_empty() {
        d.insert(
            "AssociatedBundleIdentifiers".into(),
            Value::Array(
                job.associated_bundle_identifiers
                    .iter()
                    .map(|a| s(a))
                    .collect(),
            ),
        );
    }
    if let Some(u) = &job.user_name {
        d.insert("UserName".into(), s(u));
    }
    Value::Dictionary(d)
}

fn arb_job() -> impl Strategy<Value = LaunchdJob> {
    let text = "[a-zA-Z0-9 ./@_<>&é-]{0,24}";
    let name = "[a-zA-Z][a-zA-Z0-9.]{0,12}";
    let socket = (
        name,
        proptest::option::of("[0-9]{1,5}"),
        proptest::option::of(text),
    )
        .prop_map(|(name, service, node)| LaunchdSocket {
            name,
            service,
            node,
        });
    (
        (
            proptest::option::of(text),
            proptest::option::of(text),
            proptest::collection::vec(text, 0..4),
            proptest::option::of(text),
            any::<bool>(),
            prop_oneof![
                Just(KeepAlive::No),
                Just(KeepAlive::Always),
                proptest::collection::btree_set(name, 0..3).prop_map(|keys| {
                    KeepAlive::Conditions(keys.into_iter().map(|k| format!("{k}=false")).collect())
                }),
            ],
        ),
        (
            any::<bool>(),
            // Unique names: a dictionary keeps one entry per key.
            proptest::collection::btree_map(name, socket, 0..3),
            proptest::collection::btree_set(name, 0..3),
            proptest::collection::vec(text, 0..3),
            proptest::option::of(text),
        ),
    )
        .prop_map(
            |(
                (label, program, args, bundle, run_at_load, keep_alive),
                (disabled, socks, mach, assoc, user),
            )| {
                LaunchdJob {
                    label,
                    program,
                    program_arguments: args,
                    bundle_program: bundle,
                    run_at_load,
                    keep_alive,
                    disabled,
                    sockets: socks
                        .into_iter()
                        .map(|(n, s)| LaunchdSocket { name: n, ..s })
                        .collect(),
                    mach_services: mach.into_iter().collect(),
                    associated_bundle_identifiers: assoc,
                    user_name: user,
                }
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_launchd_plist(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_binary_magic_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = b"bplist00".to_vec();
        bytes.extend_from_slice(&tail);
        let _ = parse_launchd_plist(&bytes);
    }

    #[test]
    fn job_round_trips_through_xml_and_binary(job in arb_job()) {
        let value = job_to_value(&job);
        let mut xml = Vec::new();
        value.to_writer_xml(&mut xml).unwrap();
        prop_assert_eq!(&parse_launchd_plist(&xml).unwrap(), &job);
        let mut bin = Vec::new();
        value.to_writer_binary(&mut bin).unwrap();
        prop_assert_eq!(&parse_launchd_plist(&bin).unwrap(), &job);
    }
}
