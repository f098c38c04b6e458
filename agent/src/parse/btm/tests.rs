//! Tests of the `sfltool dumpbtm` parser on the fixture in
//! `agent/tests/fixtures/btm/` (its README lists the public sources).

use super::*;
use proptest::prelude::*;
use std::path::Path;

const SAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/btm/dumpbtm-sample.txt"
));

fn by_id<'a>(records: &'a [BtmRecord], id: &str) -> &'a BtmRecord {
    records
        .iter()
        .find(|r| r.identifier.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("no record {id}"))
}

#[test]
fn every_record_and_its_section_uid() {
    let records = parse_dumpbtm(SAMPLE);
    // Exactly one record per `#n:` header line; embedded `#n: id` lines
    // make none.
    let headers = SAMPLE
        .lines()
        .filter(|l| numbered(l.trim()) == Some(""))
        .count();
    assert_eq!(records.len(), headers);
    assert_eq!(records.len(), 14);
    let uids: Vec<Option<i64>> = records.iter().map(|r| r.uid).collect();
    assert_eq!(
        uids,
        [
            [Some(-2); 3].as_slice(),
            &[Some(0); 2],
            &[Some(501); 8],
            &[Some(502)]
        ]
        .concat()
    );
}

#[test]
fn fields_of_a_developer_record_with_embedded_items() {
    let records = parse_dumpbtm(SAMPLE);
    let dev = by_id(&records, "AutoCAD");
    assert_eq!(dev.type_name.as_deref(), Some("developer"));
    assert_eq!(dev.type_code, Some(0x20));
    assert_eq!(dev.flags, Some(0x4));
    assert_eq!(dev.url, None, "(null) is absent");
    assert_eq!(dev.generation, Some(0));
    assert_eq!(
        dev.embedded_item_identifiers,
        [
            "16.com.autodesk.adskaccessservicehost",
            "16.com.autodesk.other"
        ]
    );
    assert_eq!(
        dev.disposition_words,
        ["disabled", "allowed", "not notified"]
    );
    assert!(!dev.enabled() && dev.allowed());
}

#[test]
fn fields_of_a_legacy_daemon() {
    let records = parse_dumpbtm(SAMPLE);
    let d = by_id(&records, "16.com.autodesk.adskaccessservicehost");
    assert_eq!(
        d.uuid.as_deref(),
        Some("68353594-0105-463F-AAD0-AE5B903875A1")
    );
    assert_eq!(d.team_identifier.as_deref(), Some("XXKJ396S2Y"));
    assert_eq!(d.type_name.as_deref(), Some("legacy daemon"));
    assert_eq!(d.type_code, Some(0x10010));
    assert_eq!(d.disposition, Some(0x9));
    assert!(d.enabled() && !d.allowed(), "disallowed is not allowed");
    assert_eq!(d.associated_bundle_ids, ["com.autodesk.AutoCAD2022"]);
    assert_eq!(d.parent_identifier.as_deref(), Some("AutoCAD"));
    assert_eq!(
        d.executable_path.as_deref(),
        Some("/Library/Application Support/Autodesk/AdODIS/V1/Setup/AdskAccessServiceHost")
    );
    assert!(d.embedded_item_identifiers.is_empty());
}

#[test]
fn null_name_and_colon_in_a_name() {
    let records = parse_dumpbtm(SAMPLE);
    let unknown = by_id(&records, "Unknown Developer");
    assert_eq!(unknown.name, None);
    assert_eq!(unknown.developer_name, None);
    let other = by_id(&records, "2.com.example.other");
    assert_eq!(other.name.as_deref(), Some("Someone Else: Helper"));
}

#[test]
fn login_items_from_the_sample() {
    let items = login_items(&parse_dumpbtm(SAMPLE));
    let labels: Vec<&str> = items.iter().filter_map(|i| i.label.as_deref()).collect();
    assert_eq!(
        labels,
        [
            "com.docker.helper",
            "place.unicorns.udeck",
            "com.if.Amphetamine",
            "com.example.weather.menu",
            "us.zoom.ZoomOpener",
            "com.example.other",
        ],
        "login items and enabled apps; disabled containers and daemons are not login items"
    );
    assert!(items.iter().all(|i| i.kind == PersistenceKind::LoginItem));

    let docker = &items[0];
    assert_eq!(
        docker.path,
        Path::new("/Applications/Docker.app/Contents/Library/LoginItems/DockerHelper.app"),
        "a bundle-relative URL resolves against the parent app's record"
    );
    assert_eq!(
        docker.parent_identifier.as_deref(),
        Some("2.com.docker.docker")
    );
    assert_eq!(docker.developer.as_deref(), Some("Docker Inc"));
    assert_eq!(docker.disposition, Some(0xb));
    assert_eq!(docker.owner_uid, Some(501));
    assert!(docker.run_at_load);
    assert_eq!(docker.program, None);

    let weather = &items[3];
    assert_eq!(
        weather.path,
        Path::new("/Applications/Example Browser.app/Contents/Library/LoginItems/WeatherMenu.app"),
        "percent-escapes in the parent's file URL are decoded"
    );
    assert!(!weather.run_at_load, "enabled but disallowed does not run");

    let zoom = &items[4];
    assert_eq!(zoom.path, Path::new("/Users/alice/.zoomus/ZoomOpener.app"));
    assert_eq!(zoom.developer, None);
    assert_eq!(items[5].owner_uid, Some(502));
}

#[test]
fn relative_paths_without_a_known_parent_stay_relative() {
    let text = " Records for UID 501 : X\n #1:\n Type: login item (0x4)\n Disposition: [enabled, allowed] (0x3)\n Identifier: 4.a.b\n URL: Contents/Library/LoginItems/B.app\n Executable Path: Contents/MacOS/B\n Parent Identifier: 2.gone\n";
    let items = login_items(&parse_dumpbtm(text));
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].path,
        Path::new("Contents/Library/LoginItems/B.app")
    );
    assert_eq!(
        items[0].program.as_deref(),
        Some(Path::new("Contents/MacOS/B"))
    );
    assert_eq!(items[0].label.as_deref(), Some("a.b"));
}

#[test]
fn executable_path_resolves_against_the_parent_bundle() {
    let text = "Records for UID 501 : X\n#1:\nType: app (0x2)\nDisposition: [disabled] (0x0)\nIdentifier: 2.p\nURL: file://localhost/Applications/P.app/\n#2:\nType: login item (0x4)\nIdentifier: 4.c\nExecutable Path: Contents/MacOS/c\nParent Identifier: 2.p\n";
    let items = login_items(&parse_dumpbtm(text));
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].path,
        Path::new("/Applications/P.app/Contents/MacOS/c")
    );
    assert_eq!(
        items[0].program,
        Some(PathBuf::from("/Applications/P.app/Contents/MacOS/c"))
    );
    assert_eq!(items[0].disposition, None);
    assert!(!items[0].run_at_load);
}

#[test]
fn dispositions_without_a_number_use_exact_words() {
    let text = "#1:\nType: login item\nDisposition: [disabled, disallowed, not notified]\n";
    let r = &parse_dumpbtm(text)[0];
    assert_eq!(r.uid, None, "no section header seen");
    assert_eq!(
        r.disposition,
        Some(0),
        "disabled ≠ enabled, not notified ≠ notified"
    );
    assert!(r.is_login_item());
    let r = &parse_dumpbtm("#1:\nDisposition: [enabled, allowed] (pending authorization)\n")[0];
    assert_eq!(r.disposition, Some(0x3));
}

#[test]
fn junk_and_partial_input() {
    assert!(parse_dumpbtm("").is_empty());
    assert!(parse_dumpbtm("sfltool: authorization failed\n").is_empty());
    assert!(parse_dumpbtm("Name: orphan without a record header\n").is_empty());
    // Truncated mid-record: what was read is kept.
    let cut = &SAMPLE[..SAMPLE
        .find("Bundle Identifier: com.docker.helper")
        .unwrap_or(0)];
    let records = parse_dumpbtm(cut);
    assert_eq!(
        records.last().and_then(|r| r.identifier.as_deref()),
        Some("4.com.docker.helper")
    );
    // A newer macOS printing an unknown key still yields the record.
    let newer = SAMPLE.replace(
        "           Generation: 1\n    Bundle Identifier: com.docker.helper",
        "           Generation: 1\n        Something New: whatever\n    Bundle Identifier: com.docker.helper",
    );
    assert_eq!(parse_dumpbtm(&newer), parse_dumpbtm(SAMPLE));
    // CRLF line ends.
    assert_eq!(
        parse_dumpbtm(&SAMPLE.replace('\n', "\r\n")),
        parse_dumpbtm(SAMPLE)
    );
}

#[test]
fn label_strips_only_a_numeric_prefix() {
    let r = |id: &str| BtmRecord {
        identifier: Some(id.into()),
        ..BtmRecord::default()
    };
    assert_eq!(r("16.com.x.y").label(), Some("com.x.y"));
    assert_eq!(r("com.if.Amphetamine").label(), Some("com.if.Amphetamine"));
    assert_eq!(r("Unknown Developer").label(), Some("Unknown Developer"));
    assert_eq!(r("4.").label(), Some("4."));
}

fn line_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(" #1:".to_string()),
        Just("    #2: 16.com.x".to_string()),
        Just(" Records for UID -2 : FFFF".to_string()),
        Just("  Embedded Item Identifiers:".to_string()),
        Just("Type: login item (0x4)".to_string()),
        Just("Type: app (0x".to_string()),
        Just("Disposition: [enabled, allowed (0xzz)".to_string()),
        Just("URL: file:///A%2".to_string()),
        Just("URL: file:///%ff%fe/x.app".to_string()),
        Just("Parent Identifier: 2.p".to_string()),
        Just("Identifier: 2.p".to_string()),
        "[ -~]{0,40}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let records = parse_dumpbtm(&text);
        let _ = login_items(&records);
    }

    #[test]
    fn shuffled_dump_lines_never_panic(lines in proptest::collection::vec(line_strategy(), 0..60)) {
        let text = lines.join("\n");
        let records = parse_dumpbtm(&text);
        let items = login_items(&records);
        prop_assert!(items.len() <= records.len());
    }

    #[test]
    fn sample_with_a_line_removed_never_panics(skip in 0usize..201) {
        let text: Vec<&str> = SAMPLE.lines().enumerate().filter(|(i, _)| *i != skip).map(|(_, l)| l).collect();
        let records = parse_dumpbtm(&text.join("\n"));
        let _ = login_items(&records);
        prop_assert!(records.len() >= 13);
    }
}
