//! The LaunchDaemon plist, the three MDM profiles and the Distribution
//! file parse and hold what launchd, the MDMs and Installer need; names
//! that several files share agree.

use std::collections::BTreeSet;

use lenscap::config::show::effective_value;
use lenscap::config::{Config, KEYS, Origin, Sources, load};
use plist::{Dictionary, Value};

use super::{BINARY, LABEL, array, boolean, dict, integer, read_plist, read_text, string};

const DAEMON_PLIST: &str = "launchd/io.lenscap.agent.plist";
const MANAGED_PREFS: &str = "installer/profiles/io.lenscap.agent.managed-preferences.mobileconfig";
const PPPC: &str = "installer/profiles/io.lenscap.agent.pppc.mobileconfig";
const LOGIN_ITEMS: &str = "installer/profiles/io.lenscap.agent.login-items.mobileconfig";
const PROFILES: [&str; 3] = [MANAGED_PREFS, PPPC, LOGIN_ITEMS];
/// The Team ID placeholder an admin replaces (docs/deploy-mdm.md says how).
const TEAM_PLACEHOLDER: &str = "REPLACEME0";

#[test]
fn launchd_plist_keeps_lenscap_run_alive_as_a_daemon() {
    let d = read_plist(DAEMON_PLIST);
    assert_eq!(string(&d, "Label"), LABEL);
    let args: Vec<&str> = array(&d, "ProgramArguments")
        .iter()
        .map(|v| v.as_string().expect("ProgramArguments holds strings"))
        .collect();
    assert_eq!(args, [BINARY, "run"]);
    assert!(
        d.get("Program").is_none(),
        "Program would override ProgramArguments[0]"
    );
    assert!(boolean(&d, "RunAtLoad"));
    // Plain true: a dict such as {SuccessfulExit = false} would leave the
    // daemon dead after the clean exit that follows a self-update.
    assert_eq!(d.get("KeepAlive"), Some(&Value::Boolean(true)));
    let process_type = string(&d, "ProcessType");
    assert!(
        ["Standard", "Interactive"].contains(&process_type),
        "ProcessType {process_type}: Background/Adaptive throttle the sweep"
    );
    let throttle = integer(&d, "ThrottleInterval");
    assert!((5..=60).contains(&throttle), "ThrottleInterval {throttle}");
    let exit_timeout = integer(&d, "ExitTimeOut");
    assert!(
        (10..=120).contains(&exit_timeout),
        "ExitTimeOut {exit_timeout}"
    );
    for key in ["StandardOutPath", "StandardErrorPath"] {
        let path = string(&d, key);
        assert!(path.starts_with("/Library/Logs/lenscap/"), "{key} = {path}");
    }
    // The file name is what `launchctl bootstrap` and the scripts use.
    let name = DAEMON_PLIST.rsplit('/').next().unwrap();
    assert_eq!(name, format!("{LABEL}.plist"));
}

/// The one inner payload of a profile, after checking the envelope that
/// every profile shares.
fn payload(rel: &str, payload_type: &str) -> (Dictionary, Dictionary) {
    let top = read_plist(rel);
    assert_eq!(string(&top, "PayloadType"), "Configuration", "{rel}");
    assert_eq!(string(&top, "PayloadScope"), "System", "{rel}");
    assert_eq!(integer(&top, "PayloadVersion"), 1, "{rel}");
    for key in ["PayloadIdentifier", "PayloadUUID", "PayloadDisplayName"] {
        assert!(!string(&top, key).is_empty(), "{rel}: {key} is empty");
    }
    let content = array(&top, "PayloadContent");
    assert_eq!(content.len(), 1, "{rel}: one payload per profile");
    let inner = content[0]
        .as_dictionary()
        .expect("payload is a dict")
        .clone();
    assert_eq!(string(&inner, "PayloadType"), payload_type, "{rel}");
    assert_eq!(integer(&inner, "PayloadVersion"), 1, "{rel}");
    for key in ["PayloadIdentifier", "PayloadUUID", "PayloadDisplayName"] {
        assert!(
            !string(&inner, key).is_empty(),
            "{rel}: inner {key} is empty"
        );
    }
    // MDMs replace a profile by its top-level identifier; nesting the
    // inner one under it keeps the names unambiguous in their consoles.
    let outer_id = string(&top, "PayloadIdentifier");
    assert!(outer_id.starts_with(LABEL), "{rel}: {outer_id}");
    assert!(
        string(&inner, "PayloadIdentifier").starts_with(&format!("{outer_id}.")),
        "{rel}: inner identifier not under {outer_id}"
    );
    (top, inner)
}

#[test]
fn profile_uuids_and_identifiers_are_real_and_distinct() {
    let mut uuids = BTreeSet::new();
    let mut identifiers = BTreeSet::new();
    for rel in PROFILES {
        let top = read_plist(rel);
        let inner = array(&top, "PayloadContent")[0]
            .as_dictionary()
            .expect("payload is a dict")
            .clone();
        for d in [&top, &inner] {
            let text = string(d, "PayloadUUID");
            let uuid = uuid::Uuid::parse_str(text)
                .unwrap_or_else(|e| panic!("{rel}: PayloadUUID {text} is not a UUID: {e}"));
            // Random (v4) and written in the canonical hyphenated form
            // that profile tools emit.
            assert_eq!(uuid.get_version_num(), 4, "{rel}: {text} is not a v4 UUID");
            assert_eq!(text.len(), 36, "{rel}: {text} is not hyphenated");
            assert!(
                uuids.insert(uuid),
                "{rel}: PayloadUUID {text} is used twice"
            );
            let id = string(d, "PayloadIdentifier").to_owned();
            assert!(
                identifiers.insert(id.clone()),
                "{rel}: PayloadIdentifier {id} is used twice"
            );
        }
    }
    assert_eq!(uuids.len(), 6);
}

#[test]
fn managed_preferences_force_every_config_key_with_its_default() {
    let (_, inner) = payload(MANAGED_PREFS, "com.apple.ManagedClient.preferences");
    let domains = dict(&inner, "PayloadContent");
    assert_eq!(domains.keys().collect::<Vec<_>>(), [LABEL]);
    let forced = array(dict(domains, LABEL), "Forced");
    assert_eq!(forced.len(), 1);
    let settings = dict(
        forced[0].as_dictionary().expect("Forced[0] is a dict"),
        "mcx_preference_settings",
    );

    // Values the docs and scripts rely on.
    assert_eq!(
        string(settings, "Mode"),
        "monitor",
        "roll out in monitor mode first"
    );
    assert_eq!(
        string(settings, "StateDir"),
        "/Library/Application Support/lenscap"
    );

    // Exactly the keys lenscap reads: a key added to the agent must be
    // added here (with its default), and a typo here would be ignored by
    // the agent with only a warning.
    let missing: Vec<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| !settings.contains_key(k))
        .collect();
    let unknown: Vec<&str> = settings
        .keys()
        .map(String::as_str)
        .filter(|k| !KEYS.contains(k))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{MANAGED_PREFS} differs from lenscap::config::KEYS: missing {missing:?}, unknown {unknown:?}"
    );

    // Each with its default, compared in the plist shape `config show` uses.
    let defaults = Config::default();
    for key in KEYS {
        let in_profile = serde_json::to_value(&settings[*key]).expect("plist value as JSON");
        let default = effective_value(&defaults, key).expect("KEYS are known to effective_value");
        assert_eq!(
            in_profile, default,
            "{key}: profile value differs from Config::default()"
        );
    }

    // And the agent's own loader accepts the file the MDM writes
    // (/Library/Managed Preferences/io.lenscap.agent.plist): every key
    // comes from it, without a warning, and the result is the default.
    let dir = tempfile::tempdir().expect("tempdir");
    let managed = dir.path().join("io.lenscap.agent.plist");
    Value::Dictionary(settings.clone())
        .to_file_xml(&managed)
        .expect("write managed plist");
    let loaded = load(&Sources::layered(&managed, dir.path().join("absent.plist")))
        .unwrap_or_else(|e| panic!("the agent rejects the profile's settings: {e}"));
    assert_eq!(loaded.config, defaults);
    assert!(
        loaded.warnings.is_empty(),
        "warnings: {:?}",
        loaded.warnings
    );
    assert!(
        loaded
            .origins
            .values()
            .all(|o| *o == Origin::Managed(managed.clone())),
        "{:?}",
        loaded.origins
    );
}

#[test]
fn pppc_grants_full_disk_access_to_the_agent_by_code_requirement() {
    let (_, inner) = payload(PPPC, "com.apple.TCC.configuration-profile-policy");
    let services = dict(&inner, "Services");
    assert_eq!(
        services.keys().collect::<Vec<_>>(),
        ["SystemPolicyAllFiles"]
    );
    let entries = array(services, "SystemPolicyAllFiles");
    assert_eq!(entries.len(), 1);
    let e = entries[0].as_dictionary().expect("entry is a dict");
    assert_eq!(string(e, "Identifier"), BINARY);
    assert_eq!(string(e, "IdentifierType"), "path");
    assert_eq!(string(e, "Authorization"), "Allow");
    assert!(!boolean(e, "StaticCode"));
    let req = string(e, "CodeRequirement");
    // The Developer ID designated requirement, as `codesign -dr -` prints
    // it for a binary signed by build-pkg.sh (identifier io.lenscap.agent).
    for part in [
        &format!("identifier \"{LABEL}\"") as &str,
        "anchor apple generic",
        "certificate 1[field.1.2.840.113635.100.6.2.6] /* exists */",
        "certificate leaf[field.1.2.840.113635.100.6.1.13] /* exists */",
        &format!("certificate leaf[subject.OU] = {TEAM_PLACEHOLDER}"),
    ] {
        assert!(req.contains(part), "CodeRequirement lacks `{part}`: {req}");
    }
    // build-pkg.sh must sign with the identifier the requirement names.
    let build = read_text("installer/build-pkg.sh");
    assert!(
        build.contains("--identifier \"$LABEL\"") && build.contains(&format!("LABEL=\"{LABEL}\""))
    );
}

#[test]
fn login_items_are_managed_by_label_and_team() {
    let (_, inner) = payload(LOGIN_ITEMS, "com.apple.servicemanagement");
    let rules: Vec<(&str, &str)> = array(&inner, "Rules")
        .iter()
        .map(|r| {
            let r = r.as_dictionary().expect("rule is a dict");
            (string(r, "RuleType"), string(r, "RuleValue"))
        })
        .collect();
    assert_eq!(
        rules,
        [("Label", LABEL), ("TeamIdentifier", TEAM_PLACEHOLDER)]
    );
}

#[test]
fn team_placeholder_is_documented_as_the_thing_to_replace() {
    // A Team ID is ten uppercase letters and digits; the placeholder has
    // that shape so a profile left unedited still installs (and grants
    // nothing) instead of being rejected by the MDM.
    assert_eq!(TEAM_PLACEHOLDER.len(), 10);
    assert!(
        TEAM_PLACEHOLDER
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    );
    let guide = read_text("docs/deploy-mdm.md");
    assert!(
        guide.contains(TEAM_PLACEHOLDER),
        "deploy-mdm.md must name {TEAM_PLACEHOLDER}"
    );
    assert!(guide.contains("codesign -dr - /usr/local/bin/lenscap"));
    for rel in [PPPC, LOGIN_ITEMS] {
        assert!(read_text(rel).contains(TEAM_PLACEHOLDER), "{rel}");
    }
}

#[test]
fn distribution_requires_macos_13_and_installs_the_component() {
    let text = read_text("installer/Distribution.xml");
    let doc = roxmltree::Document::parse(&text).expect("Distribution.xml is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "installer-gui-script");
    let find = |name: &str| {
        root.descendants()
            .find(|n| n.has_tag_name(name))
            .unwrap_or_else(|| panic!("Distribution.xml has no <{name}>"))
    };
    assert_eq!(find("os-version").attribute("min"), Some("13.0"));
    assert_eq!(
        find("os-version").parent().map(|p| p.tag_name().name()),
        Some("allowed-os-versions")
    );
    let archs = find("options")
        .attribute("hostArchitectures")
        .unwrap_or_default();
    assert!(
        archs.contains("arm64") && archs.contains("x86_64"),
        "hostArchitectures {archs}"
    );
    let pkg_refs: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("pkg-ref"))
        .collect();
    assert_eq!(pkg_refs.len(), 1);
    assert_eq!(pkg_refs[0].attribute("id"), Some(LABEL));
    assert_eq!(pkg_refs[0].attribute("version"), Some("@VERSION@"));
    assert_eq!(pkg_refs[0].text(), Some("@COMPONENT@"));
    // build-pkg.sh fills in exactly these two placeholders.
    let build = read_text("installer/build-pkg.sh");
    assert!(build.contains("s/@VERSION@/") && build.contains("s/@COMPONENT@/"));
}

#[test]
fn every_file_names_the_same_binary_path() {
    let files = [
        DAEMON_PLIST,
        PPPC,
        "installer/build-pkg.sh",
        "installer/scripts/postinstall",
        "installer/uninstall.sh",
        "docs/install.md",
        "docs/deploy-mdm.md",
        ".github/workflows/macos.yml",
    ];
    let in_path = |c: char| c.is_ascii_alphanumeric() || "/_.-$".contains(c);
    for rel in files {
        let text = read_text(rel);
        let mut seen = 0;
        // Every path ending in bin/lenscap must be the installed one, maybe
        // under a root variable ($ROOT in the scripts, $root in the build,
        // $RUNNER_TEMP/... in CI): never /usr/bin, /opt/..., /usr/local/sbin.
        for (at, needle) in text.match_indices("bin/lenscap") {
            let end = at + needle.len();
            let start = text[..at].rfind(|c: char| !in_path(c)).map_or(0, |i| i + 1);
            let path = &text[start..end];
            let prefix = path
                .strip_suffix(BINARY)
                .unwrap_or_else(|| panic!("{rel} names `{path}`, expected {BINARY}"));
            // An expanded pkg (`pkgutil --expand-full`) holds it under Payload/.
            let rooted =
                prefix.is_empty() || prefix.starts_with('$') || prefix.ends_with("/Payload");
            assert!(rooted, "{rel} names `{path}`, expected {BINARY}");
            seen += 1;
        }
        assert!(seen > 0, "{rel} never names {BINARY}");
    }
    let install = read_text("docs/install.md");
    assert!(install.contains("sudo lenscap status"));
    assert!(install.contains("/usr/local/share/lenscap/uninstall.sh"));
}
