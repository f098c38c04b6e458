//! Loading end to end: layers, origins, errors that name the file, and
//! the documented example.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn plist_xml(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>{body}</dict></plist>\n"
    )
}

#[test]
fn no_files_gives_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&Sources::layered(
        dir.path().join("m.plist"),
        dir.path().join("l.plist"),
    ))
    .unwrap();
    assert_eq!(loaded.config, Config::default());
    assert!(loaded.origins.values().all(|o| *o == Origin::Default));
    assert_eq!(loaded.origins.len(), KEYS.len());
    assert!(loaded.warnings.is_empty());
}

#[test]
fn managed_over_local_over_default_key_by_key() {
    let (managed, local) = (fixture("managed.plist"), fixture("local.plist"));
    let loaded = load(&Sources::layered(&managed, &local)).unwrap();
    let c = &loaded.config;
    // Set in both files: managed wins, whole key (Rules is not merged).
    assert_eq!(c.mode, Mode::Remediate);
    assert_eq!(c.sweep_millis, 5000);
    assert_eq!(c.rules.len(), 1);
    assert_eq!(c.rules[0].id, "zoom-opener");
    for key in ["Mode", "SweepSeconds", "Rules"] {
        assert_eq!(
            loaded.origins[key],
            Origin::Managed(managed.clone()),
            "{key}"
        );
    }
    // Only in local.
    assert_eq!(c.state_dir, PathBuf::from("/var/db/lenscap"));
    assert_eq!(c.probe_timeout_ms, 500);
    for key in ["StateDir", "ProbeTimeoutMillis"] {
        assert_eq!(loaded.origins[key], Origin::Local(local.clone()), "{key}");
    }
    // In neither.
    let defaults = Config::default();
    assert_eq!(c.persistence_dirs, defaults.persistence_dirs);
    assert_eq!(c.launchctl_path, defaults.launchctl_path);
    assert_eq!(loaded.origins["LaunchctlPath"], Origin::Default);
    assert_eq!(
        loaded
            .origins
            .values()
            .filter(|o| **o == Origin::Default)
            .count(),
        KEYS.len() - 5
    );
}

#[test]
fn local_alone_applies() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&Sources::layered(
        dir.path().join("absent.plist"),
        fixture("local.plist"),
    ))
    .unwrap();
    assert_eq!(loaded.config.mode, Mode::Monitor);
    assert_eq!(loaded.config.sweep_millis, 10_000);
    assert_eq!(
        loaded.config.rules[0].team_id.as_deref(),
        Some("EQHXZ8M8AV")
    );
}

#[test]
fn binary_and_xml_plists_give_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.plist");
    let xml = load(&Sources::layered(&absent, fixture("local.plist"))).unwrap();
    let binary = load(&Sources::layered(&absent, fixture("binary.plist"))).unwrap();
    assert_eq!(xml.config, binary.config);
}

#[test]
fn explicit_file_replaces_both_system_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.plist",
        &plist_xml("<key>SweepSeconds</key><integer>30</integer>"),
    );
    let mut sources = Sources::layered(fixture("managed.plist"), fixture("local.plist"));
    sources.explicit = Some(file.clone());
    let loaded = load(&sources).unwrap();
    assert_eq!(loaded.config.sweep_millis, 30_000);
    assert_eq!(loaded.origins["SweepSeconds"], Origin::File(file));
    // Managed says remediate, but it was not read.
    assert_eq!(loaded.config.mode, Mode::Monitor);
    assert_eq!(loaded.origins["Mode"], Origin::Default);
}

#[test]
fn camera_keys_load_apply_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.plist",
        &plist_xml(
            "<key>TCCDatabases</key><array><string>/t/Users/*/TCC.db</string></array>\
             <key>CameraWatch</key><false/>\
             <key>CameraDevices</key><array><string>/t/dev/video*</string>\
             <string>/t/dev/cam{0,1}</string></array>\
             <key>CameraCorrelationSeconds</key><integer>0</integer>\
             <key>LogPath</key><string>/t/bin/log</string>",
        ),
    );
    let loaded = load(&Sources::explicit(&file)).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(c.tcc_databases, ["/t/Users/*/TCC.db"]);
    assert!(!c.camera_watch);
    assert_eq!(c.camera_devices, ["/t/dev/video*", "/t/dev/cam{0,1}"]);
    assert_eq!(c.camera_correlation_seconds, 0);
    assert_eq!(c.log_path, PathBuf::from("/t/bin/log"));
    for key in [
        "TCCDatabases",
        "CameraWatch",
        "CameraDevices",
        "CameraCorrelationSeconds",
        "LogPath",
    ] {
        assert_eq!(loaded.origins[key], Origin::File(file.clone()), "{key}");
    }
    // Everything else stays at its default.
    let rest = Config {
        tcc_databases: Config::default().tcc_databases,
        camera_watch: true,
        camera_devices: Config::default().camera_devices,
        camera_correlation_seconds: 10,
        log_path: "/usr/bin/log".into(),
        ..c.clone()
    };
    assert_eq!(rest, Config::default());
    let json = to_json(&loaded);
    assert_eq!(
        json["keys"]["CameraWatch"]["value"],
        serde_json::json!(false)
    );
    assert_eq!(
        json["keys"]["CameraDevices"]["value"],
        serde_json::json!(["/t/dev/video*", "/t/dev/cam{0,1}"])
    );
    assert_eq!(
        json["keys"]["LogPath"]["value"],
        serde_json::json!("/t/bin/log")
    );
    let text = render_show(&loaded);
    assert!(text.contains("- /t/Users/*/TCC.db\n"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("CameraCorrelationSeconds "))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

#[test]
fn missing_explicit_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(&Sources::explicit(dir.path().join("nope.plist"))).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("nope.plist does not exist; check the path given to --config"),
        "{err}"
    );
}

#[test]
fn an_error_in_any_layer_fails_the_load() {
    // Even a key managed preferences override: a file is valid or not.
    let dir = tempfile::tempdir().unwrap();
    let local = write(
        dir.path(),
        "l.plist",
        &plist_xml("<key>SweepSeconds</key><integer>0</integer>"),
    );
    let err = load(&Sources::layered(fixture("managed.plist"), &local)).unwrap_err();
    assert_eq!(err.path(), local);
    assert!(
        err.to_string()
            .contains("SweepSeconds is 0, expected a number of seconds from 0.1 to 3600, in steps of at least 0.001"),
        "{err}"
    );
}

#[test]
fn corrupt_layer_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let managed = write(
        dir.path(),
        "managed.plist",
        "<?xml version=\"1.0\"?><plist><dict><key>Mode",
    );
    let err = load(&Sources::layered(&managed, fixture("local.plist"))).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{} is not a valid", managed.display())),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_warnings_from_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let managed = write(
        dir.path(),
        "m.plist",
        &plist_xml("<key>SweepSecond</key><integer>9</integer>"),
    );
    let local = write(
        dir.path(),
        "l.plist",
        &plist_xml("<key>Probes</key><false/>"),
    );
    let loaded = load(&Sources::layered(&managed, &local)).unwrap();
    assert_eq!(loaded.config, Config::default());
    assert_eq!(loaded.warnings.len(), 2);
    assert!(
        loaded.warnings[0].contains("\"SweepSecond\" is ignored; did you mean \"SweepSeconds\"?")
    );
    assert!(loaded.warnings[1].contains("\"Probes\" is ignored; did you mean \"Probe\"?"));
}

#[test]
fn a_miscased_key_is_an_error_in_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.plist",
        &plist_xml("<key>mode</key><string>remediate</string>"),
    );
    let absent = dir.path().join("absent.plist");
    for sources in [
        Sources::layered(&bad, &absent),
        Sources::layered(&absent, &bad),
        // Also under a valid managed file that sets Mode itself.
        Sources::layered(fixture("managed.plist"), &bad),
        Sources::explicit(&bad),
    ] {
        let err = load(&sources).unwrap_err();
        assert!(
            matches!(&err, ConfigError::KeyCase { key, known: "Mode", .. } if key == "mode"),
            "{sources:?}: {err:?}"
        );
        assert_eq!(err.path(), bad);
        assert!(
            err.to_string()
                .contains("`mode` is not a key; did you mean `Mode`? keys are case-sensitive"),
            "{err}"
        );
    }
}

#[test]
fn show_json_values_load_back_to_the_same_config() {
    let loaded = load(&Sources::layered(
        fixture("managed.plist"),
        fixture("local.plist"),
    ))
    .unwrap();
    let json = to_json(&loaded);
    let mut dict = plist::Dictionary::new();
    for key in KEYS {
        dict.insert(
            (*key).to_string(),
            plist::to_value(&json["keys"][*key]["value"]).unwrap(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roundtrip.plist");
    plist::Value::Dictionary(dict)
        .to_file_binary(&path)
        .unwrap();
    let again = load(&Sources::explicit(&path)).unwrap();
    assert_eq!(again.config, loaded.config);
    assert!(again.warnings.is_empty());
}

/// The example in docs/configuration.md is this fixture, and it loads.
#[test]
fn documented_example_is_the_fixture_and_is_valid() {
    let example = std::fs::read_to_string(fixture("example.plist")).unwrap();
    let docs_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let docs = std::fs::read_to_string(docs_path).unwrap();
    assert!(
        docs.contains(&example),
        "docs/configuration.md must contain example.plist verbatim"
    );
    let loaded = load(&Sources::explicit(fixture("example.plist"))).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.rules.len(), 3);
    let mut previous = 0;
    for key in KEYS {
        let section = docs.find(&format!("### `{key}`\n"));
        let Some(at) = section else {
            panic!("docs/configuration.md lacks a section for {key}");
        };
        assert!(
            at > previous,
            "docs/configuration.md: the {key} section is out of KEYS order"
        );
        previous = at;
        let row = format!("| [`{key}`](#{}) |", key.to_ascii_lowercase());
        assert!(
            docs.contains(&row),
            "docs/configuration.md lacks the table row {row}"
        );
    }
}
