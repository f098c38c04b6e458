//! Each key's validation: accepted values become settings, rejected ones
//! name the file, the key, the value and what was expected.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use plist::{Dictionary, Integer};
use proptest::prelude::*;

use std::path::PathBuf;

use super::*;
use crate::config::{Mode, Secret};

const FILE: &str = "/prefs/io.lenscap.agent.plist";

fn one(key: &str, value: Value) -> Result<Vec<Setting>, ConfigError> {
    let mut dict = Dictionary::new();
    dict.insert(key.to_string(), value);
    parse_file(Path::new(FILE), &Value::Dictionary(dict), &mut Vec::new())
}

fn err(key: &str, value: Value) -> String {
    match one(key, value) {
        Ok(settings) => panic!("{key} accepted: {settings:?}"),
        Err(err) => err.to_string(),
    }
}

fn int(n: i64) -> Value {
    Value::Integer(Integer::from(n))
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

#[test]
fn keys_are_unique_and_all_recognised() {
    let mut sorted = KEYS.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), KEYS.len());
    let ctx = Ctx {
        path: Path::new(FILE),
    };
    for key in KEYS {
        // Data is the wrong type for every key, so each must answer Err.
        let result = parse_key(&ctx, key, &Value::Data(vec![1]));
        assert!(
            matches!(result, Some(Err(ConfigError::Invalid { .. }))),
            "{key}: {result:?}"
        );
    }
    assert!(parse_key(&ctx, "Nope", &int(1)).is_none());
}

#[test]
fn valid_values_become_settings() {
    assert_eq!(
        one("Mode", s("remediate")).unwrap(),
        vec![Setting::Mode(Mode::Remediate)]
    );
    assert_eq!(
        one("Mode", s("Monitor")).unwrap(),
        vec![Setting::Mode(Mode::Monitor)]
    );
    assert_eq!(
        one("SweepSeconds", int(3600)).unwrap(),
        vec![Setting::SweepSeconds(3_600_000)]
    );
    // Fractions of a second, to the millisecond.
    assert_eq!(
        one("SweepSeconds", Value::Real(0.5)).unwrap(),
        vec![Setting::SweepSeconds(500)]
    );
    assert_eq!(
        one("SweepSeconds", Value::Real(0.1)).unwrap(),
        vec![Setting::SweepSeconds(100)]
    );
    assert_eq!(
        one("SweepSeconds", Value::Real(2.25)).unwrap(),
        vec![Setting::SweepSeconds(2250)]
    );
    assert_eq!(
        one("Probe", Value::Boolean(false)).unwrap(),
        vec![Setting::Probe(false)]
    );
    assert_eq!(
        one("StateDir", s("/var/db/lenscap")).unwrap(),
        vec![Setting::StateDir(PathBuf::from("/var/db/lenscap"))]
    );
    assert_eq!(
        one(
            "TempDirs",
            Value::Array(vec![s("/tmp"), s("/Users/*/Library/Caches")])
        )
        .unwrap(),
        vec![Setting::TempDirs(vec![
            "/tmp".into(),
            "/Users/*/Library/Caches".into()
        ])]
    );
    assert_eq!(
        one("PersistenceDirs", Value::Array(vec![])).unwrap(),
        vec![Setting::PersistenceDirs(vec![])]
    );
}

#[test]
fn wrong_mode_names_file_key_value_and_choices() {
    assert_eq!(
        err("Mode", s("fix")),
        "/prefs/io.lenscap.agent.plist: Mode is \"fix\", expected one of monitor, remediate; \
         fix the value, or remove the key to use the default"
    );
    assert!(
        err("Mode", Value::Boolean(true))
            .contains("Mode is true, expected one of monitor, remediate")
    );
}

#[test]
fn integers_out_of_range_or_of_wrong_type() {
    const SWEEP: &str = "expected a number of seconds from 0.1 to 3600, in steps of at least 0.001";
    assert!(err("SweepSeconds", int(0)).contains(&format!("SweepSeconds is 0, {SWEEP}")));
    assert!(err("SweepSeconds", int(3601)).contains(&format!("SweepSeconds is 3601, {SWEEP}")));
    assert!(err("SweepSeconds", int(-5)).contains(&format!("SweepSeconds is -5, {SWEEP}")));
    assert!(err("SweepSeconds", s("5")).contains(&format!("SweepSeconds is \"5\", {SWEEP}")));
    // Too short, too fine, not a number.
    for bad in [
        0.05,
        0.0,
        -0.5,
        0.0005,
        1.0001,
        3600.5,
        f64::NAN,
        f64::INFINITY,
    ] {
        assert!(
            err("SweepSeconds", Value::Real(bad)).contains(SWEEP),
            "{bad} accepted"
        );
    }
    assert!(err("SweepSeconds", Value::Integer(Integer::from(u64::MAX))).contains(SWEEP));
    assert!(
        err("ProbeTimeoutMillis", int(9))
            .contains("ProbeTimeoutMillis is 9, expected an integer 10..=10000")
    );
    assert!(err("ProbeTimeoutMillis", int(10_001)).contains("expected an integer 10..=10000"));
    assert!(
        err("MaxPlistBytes", int(1))
            .contains("MaxPlistBytes is 1, expected an integer 1024..=67108864")
    );
}

#[test]
fn booleans_must_be_booleans() {
    assert!(
        err("LoginItems", s("yes"))
            .contains("LoginItems is \"yes\", expected a boolean (<true/> or <false/>)")
    );
    assert!(err("Probe", int(1)).contains("Probe is 1, expected a boolean"));
}

#[test]
fn update_keys_are_checked_when_loaded() {
    let url = "http://127.0.0.1:8080/repos/o/r";
    assert_eq!(
        one("UpdateURL", s(url)).unwrap(),
        vec![Setting::UpdateUrl(url.into())]
    );
    let text = err("UpdateURL", s("http://example.com/repos/o/r"));
    assert!(
        text.contains("UpdateURL is \"http://example.com/repos/o/r\", expected")
            && text.contains("plain http only to a loopback host"),
        "{text}"
    );
    assert_eq!(
        one("UpdatePublicKey", s("")).unwrap(),
        vec![Setting::UpdatePublicKey(String::new())]
    );
    let text = err("UpdatePublicKey", s("AAAA"));
    assert!(text.contains("3 bytes, not 32"), "{text}");
    assert_eq!(
        one("AutoUpdate", Value::Boolean(true)).unwrap(),
        vec![Setting::AutoUpdate(true)]
    );
}

#[test]
fn delivery_keys_are_checked_when_loaded() {
    for url in ["https://collector.example.com", "http://127.0.0.1:8470", ""] {
        assert_eq!(
            one("CollectorURL", s(url)).unwrap(),
            vec![Setting::CollectorUrl(url.into())]
        );
    }
    let text = err("CollectorURL", s("http://collector.example.com"));
    assert!(
        text.contains("CollectorURL is \"http://collector.example.com\", expected")
            && text.contains("plain http only to a loopback host"),
        "{text}"
    );
    assert_eq!(
        one("EnrollmentSecret", s(" lc_enroll_abc ")).unwrap(),
        vec![Setting::EnrollmentSecret(Secret::new("lc_enroll_abc"))]
    );
    // A malformed secret is refused without being quoted.
    let text = err("EnrollmentSecret", s("lc_enroll abc\nsecret-part"));
    assert!(
        text.contains("EnrollmentSecret is \"(set)\", expected an enroll token")
            && !text.contains("secret-part"),
        "{text}"
    );
    assert_eq!(
        one("UploadIntervalSeconds", int(1)).unwrap(),
        vec![Setting::UploadIntervalSeconds(1)]
    );
    assert!(err("UploadIntervalSeconds", int(0)).contains("expected an integer 1..=3600"));
    assert_eq!(
        one("PolicyIntervalSeconds", int(86_400)).unwrap(),
        vec![Setting::PolicyIntervalSeconds(86_400)]
    );
    assert!(err("PolicyIntervalSeconds", int(86_401)).contains("expected an integer 1..=86400"));
}

#[test]
fn relative_paths_are_errors() {
    for key in ["StateDir", "LaunchctlPath", "CodesignPath", "SfltoolPath"] {
        let text = err(key, s("bin/launchctl"));
        assert!(
            text.contains(&format!(
                "{key} is \"bin/launchctl\", expected an absolute path starting with /"
            )),
            "{text}"
        );
    }
    assert!(err("StateDir", s("")).contains("StateDir is \"\", expected an absolute path"));
    assert!(err("StateDir", s("/a\0b")).contains("expected an absolute path"));
}

#[test]
fn directory_lists_name_the_bad_item() {
    let text = err(
        "PersistenceDirs",
        Value::Array(vec![s("/Library/LaunchAgents"), s("LaunchAgents")]),
    );
    assert!(
        text.contains(
            "PersistenceDirs[1] is \"LaunchAgents\", expected an absolute path or glob starting with /; fix the value"
        ),
        "{text}"
    );
    let text = err("ApplicationDirs", Value::Array(vec![s("/Applications/[")]));
    assert!(
        text.contains("ApplicationDirs[0] is \"/Applications/[\", expected a valid glob"),
        "{text}"
    );
    let text = err("TempDirs", s("/tmp"));
    assert!(
        text.contains("TempDirs is \"/tmp\", expected an array of absolute paths or globs"),
        "{text}"
    );
}

#[test]
fn camera_keys_accept_valid_values() {
    let tcc = vec![
        s("/Library/Application Support/com.apple.TCC/TCC.db"),
        s("/Users/*/Library/Application Support/com.apple.TCC/TCC.db"),
    ];
    assert_eq!(
        one("TCCDatabases", Value::Array(tcc)).unwrap(),
        vec![Setting::TccDatabases(vec![
            "/Library/Application Support/com.apple.TCC/TCC.db".into(),
            "/Users/*/Library/Application Support/com.apple.TCC/TCC.db".into(),
        ])]
    );
    assert_eq!(
        one("CameraWatch", Value::Boolean(false)).unwrap(),
        vec![Setting::CameraWatch(false)]
    );
    // Alternation is rule-path glob syntax, which is how devices match.
    assert_eq!(
        one(
            "CameraDevices",
            Value::Array(vec![s("/dev/video*"), s("/dev/{media,v4l}/**")])
        )
        .unwrap(),
        vec![Setting::CameraDevices(vec![
            "/dev/video*".into(),
            "/dev/{media,v4l}/**".into()
        ])]
    );
    assert_eq!(
        one("CameraDevices", Value::Array(vec![])).unwrap(),
        vec![Setting::CameraDevices(vec![])]
    );
    for n in [0, 10, 300] {
        assert_eq!(
            one("CameraCorrelationSeconds", int(n)).unwrap(),
            vec![Setting::CameraCorrelationSeconds(n as u64)]
        );
    }
    assert_eq!(
        one("LogPath", s("/opt/test/log")).unwrap(),
        vec![Setting::LogPath(PathBuf::from("/opt/test/log"))]
    );
}

#[test]
fn camera_keys_reject_wrong_types_and_ranges() {
    assert!(
        err("CameraWatch", s("true"))
            .contains("CameraWatch is \"true\", expected a boolean (<true/> or <false/>)")
    );
    assert!(
        err("CameraCorrelationSeconds", int(301))
            .contains("CameraCorrelationSeconds is 301, expected an integer 0..=300")
    );
    assert!(
        err("CameraCorrelationSeconds", int(-1))
            .contains("CameraCorrelationSeconds is -1, expected an integer 0..=300")
    );
    assert!(
        err("CameraCorrelationSeconds", s("10"))
            .contains("CameraCorrelationSeconds is \"10\", expected an integer 0..=300")
    );
    let text = err(
        "TCCDatabases",
        s("/Library/Application Support/com.apple.TCC/TCC.db"),
    );
    assert!(
        text.contains("TCCDatabases is \"/Library/Application Support/com.apple.TCC/TCC.db\", expected an array of absolute paths or globs"),
        "{text}"
    );
    let text = err("CameraDevices", s("/dev/video*"));
    assert!(
        text.contains(
            "CameraDevices is \"/dev/video*\", expected an array of absolute paths or globs"
        ),
        "{text}"
    );
    let text = err("CameraDevices", Value::Array(vec![int(0)]));
    assert!(
        text.contains("CameraDevices[0] is 0, expected an absolute path or glob starting with /"),
        "{text}"
    );
    let text = err("LogPath", Value::Boolean(true));
    assert!(
        text.contains("LogPath is true, expected an absolute path starting with /"),
        "{text}"
    );
}

#[test]
fn camera_paths_must_be_absolute() {
    let text = err("LogPath", s("usr/bin/log"));
    assert!(
        text.contains("LogPath is \"usr/bin/log\", expected an absolute path starting with /; fix the value, or remove the key"),
        "{text}"
    );
    let text = err(
        "CameraDevices",
        Value::Array(vec![s("/dev/video*"), s("dev/video0")]),
    );
    assert!(
        text.contains("CameraDevices[1] is \"dev/video0\", expected an absolute path or glob starting with /; fix the value"),
        "{text}"
    );
    let text = err(
        "TCCDatabases",
        Value::Array(vec![s(
            "~/Library/Application Support/com.apple.TCC/TCC.db",
        )]),
    );
    assert!(
        text.contains("TCCDatabases[0] is \"~/Library/Application Support/com.apple.TCC/TCC.db\", expected an absolute path or glob starting with /"),
        "{text}"
    );
}

#[test]
fn camera_globs_must_compile() {
    let text = err("CameraDevices", Value::Array(vec![s("/dev/video[")]));
    assert!(
        text.contains("CameraDevices[0] is \"/dev/video[\", expected a valid glob ("),
        "{text}"
    );
    // `glob::Pattern` takes an unclosed `{` literally; the matcher
    // CameraDevices is used with does not, so that is what must judge it.
    assert!(glob::Pattern::new("/dev/video{0,1").is_ok());
    let text = err("CameraDevices", Value::Array(vec![s("/dev/video{0,1")]));
    assert!(
        text.contains("CameraDevices[0] is \"/dev/video{0,1\", expected a valid glob ("),
        "{text}"
    );
    let text = err(
        "TCCDatabases",
        Value::Array(vec![s(
            "/Users/[/Library/Application Support/com.apple.TCC/TCC.db",
        )]),
    );
    assert!(
        text.contains("TCCDatabases[0] is \"/Users/[/Library/Application Support/com.apple.TCC/TCC.db\", expected a valid glob ("),
        "{text}"
    );
}

#[test]
fn top_level_must_be_a_dictionary() {
    let result = parse_file(Path::new(FILE), &Value::Array(vec![]), &mut Vec::new());
    let text = result.unwrap_err().to_string();
    assert!(
        text.contains("the top level is an array of 0 items, expected a dictionary"),
        "{text}"
    );
}

#[test]
fn unknown_key_warns_with_a_suggestion() {
    let mut warnings = Vec::new();
    let mut dict = Dictionary::new();
    dict.insert("SweepSecond".into(), int(5));
    dict.insert("probeTimeoutMS".into(), int(5));
    dict.insert("Colour".into(), s("blue"));
    dict.insert("PayloadUUID".into(), s("5B0E…"));
    let settings = parse_file(Path::new(FILE), &Value::Dictionary(dict), &mut warnings).unwrap();
    assert!(settings.is_empty());
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings.contains(&format!(
        "{FILE}: unknown key \"SweepSecond\" is ignored; did you mean \"SweepSeconds\"?"
    )));
    assert!(warnings.iter().any(|w| {
        w.contains("\"probeTimeoutMS\" is ignored; did you mean \"ProbeTimeoutMillis\"")
    }));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("\"Colour\" is ignored; docs/configuration.md"))
    );
}

#[test]
fn a_key_that_differs_only_by_case_is_an_error_naming_the_key() {
    let text = err("mode", s("remediate"));
    assert_eq!(
        text,
        format!(
            "{FILE}: `mode` is not a key; did you mean `Mode`? keys are case-sensitive, \
             so rename it to `Mode`"
        )
    );
    // Whatever the value, and for every key, in any casing.
    for key in KEYS {
        for variant in [key.to_ascii_lowercase(), key.to_ascii_uppercase()] {
            if variant == *key {
                continue;
            }
            match one(&variant, Value::Boolean(true)) {
                Err(ConfigError::KeyCase { key: k, known, .. }) => {
                    assert_eq!((k.as_str(), known), (variant.as_str(), *key));
                }
                other => panic!("{variant}: {other:?}"),
            }
        }
    }
    // A correct key next to its miscased twin still fails the file:
    // which of the two the admin meant is not ours to guess.
    let mut dict = Dictionary::new();
    dict.insert("Mode".into(), s("monitor"));
    dict.insert("MODE".into(), s("remediate"));
    let result = parse_file(Path::new(FILE), &Value::Dictionary(dict), &mut Vec::new());
    assert!(
        matches!(result, Err(ConfigError::KeyCase { known: "Mode", .. })),
        "{result:?}"
    );
}

#[test]
fn case_twin_needs_the_same_letters() {
    assert_eq!(case_twin("tccdatabases"), Some("TCCDatabases"));
    assert_eq!(case_twin("updateUrl"), Some("UpdateURL"));
    assert_eq!(case_twin("Mode"), None, "the key itself");
    assert_eq!(case_twin("Mod"), None);
    assert_eq!(case_twin("mode "), None);
    // Non-ASCII look-alikes are not case variants (and stay warnings).
    assert_eq!(case_twin("M\u{f6}de"), None);
    assert_eq!(case_twin("\u{1d40}ode"), None);
    assert_eq!(case_twin(""), None);
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(|n| Value::Integer(n.into())),
        any::<u64>().prop_map(|n| Value::Integer(n.into())),
        any::<f64>().prop_map(Value::Real),
        ".{0,40}".prop_map(Value::String),
        "/[a-zA-Z*?\\[\\]{}!/.]{0,30}".prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Data),
        any::<u64>().prop_map(|n| Value::Uid(plist::Uid::new(n))),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(super::super::RULE_KEYS.to_vec())
                            .prop_map(String::from),
                        ".{0,12}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|entries| Value::Dictionary(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    // Any value under any key (rule-shaped dictionaries included) is
    // either a setting or an error whose text names the key; never a panic.
    #[test]
    fn arbitrary_values_never_panic(key in prop::sample::select(KEYS.to_vec()), value in arb_value()) {
        match one(key, value) {
            Ok(settings) => prop_assert_eq!(settings.len(), 1),
            Err(err) => {
                prop_assert_eq!(err.path(), Path::new(FILE));
                prop_assert!(err.to_string().contains(key) || err.to_string().contains("Rules["));
            }
        }
    }
}

proptest! {
    // Whole milliseconds in range are taken exactly; anything finer or
    // outside the range is refused, never rounded into range.
    #[test]
    fn sweep_seconds_fractions(ms in 0u64..4_000_000, extra in 0.0001f64..0.9) {
        let exact = one("SweepSeconds", Value::Real(ms as f64 / 1000.0));
        if (100..=3_600_000).contains(&ms) {
            prop_assert_eq!(exact.unwrap(), vec![Setting::SweepSeconds(ms)]);
        } else {
            prop_assert!(exact.is_err());
        }
        prop_assert!(one("SweepSeconds", Value::Real((ms as f64 + extra) / 1000.0)).is_err());
    }
}
