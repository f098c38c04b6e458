use std::cell::RefCell;

use super::*;

/// Records what it was asked to show.
#[derive(Default)]
struct Recorder {
    shown: RefCell<Vec<(Option<u32>, String, String)>>,
}

impl Notifier for Recorder {
    fn notify(&self, uid: Option<u32>, title: &str, message: &str) -> Result<(), String> {
        self.shown
            .borrow_mut()
            .push((uid, title.to_string(), message.to_string()));
        Ok(())
    }
}

fn longest_name() -> String {
    "W".repeat(NAME_MAX)
}

#[test]
fn every_text_fits_a_notification_even_with_the_longest_name() {
    let app = longest_name();
    let id = "20261207T171500Z-0123456789abcdef";
    let bodies = [
        would_remove(&app, true),
        would_remove(&app, false),
        with_quarantine_id(&removed(&app, true), Some(id)),
        with_quarantine_id(&removed(&app, false), None),
        reinstalled(&app, Some(id), true),
        reinstalled(&app, None, false),
        camera(&app),
        found(&app),
    ];
    for b in &bodies {
        assert!(b.chars().count() <= BODY_MAX, "{} chars: {b}", b.len());
    }
    for t in [
        TITLE_WOULD,
        TITLE_REMOVED,
        TITLE_REINSTALL,
        TITLE_CAMERA,
        TITLE_FOUND,
    ] {
        assert!(t.chars().count() <= TITLE_MAX, "{t}");
    }
}

#[test]
fn monitor_wording_says_what_would_be_done_and_how_to_let_it() {
    assert_eq!(
        would_remove("AcmeOpener", true),
        "AcmeOpener runs a hidden web server any web page can reach; lenscap would stop it \
         and move it to quarantine. To let lenscap do that: sudo lenscap mode remediate"
    );
}

#[test]
fn remediate_wording_names_the_record_to_restore() {
    let m = with_quarantine_id(&removed("AcmeOpener", true), Some("q-1"));
    assert_eq!(
        m,
        "AcmeOpener ran a hidden web server any web page could reach; lenscap stopped it and \
         moved it to quarantine. To undo: sudo lenscap quarantine restore q-1 --allow"
    );
    let none = with_quarantine_id(&removed("AcmeOpener", true), None);
    assert!(
        none.ends_with("restore <ID> --allow (IDs: sudo lenscap quarantine list)"),
        "{none}"
    );
}

#[test]
fn names_cannot_carry_instructions_or_fake_slots() {
    assert_eq!(
        clean_name("Zoom\n\"do shell script\" <ID>"),
        "Zoom do shell script ID"
    );
    assert_eq!(
        clean_name("https://evil.example/run?x=1"),
        "https evil.example run x 1"
    );
    assert_eq!(clean_name(&"a".repeat(500)).chars().count(), NAME_MAX);
    // The slot is filled after the name, never inside it.
    let m = with_quarantine_id(&removed(&clean_name("<ID>"), true), Some("q-9"));
    assert!(m.starts_with("ID ran"), "{m}");
    assert!(m.ends_with("restore q-9 --allow"), "{m}");
}

#[test]
fn app_name_prefers_the_bundle_display_name() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("Acme.app");
    let exe = app.join("Contents/MacOS/acme-helper");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::write(&exe, b"x").unwrap();
    // No Info.plist: the file name.
    assert_eq!(app_name(&exe), "acme-helper");
    let mut info = plist::Dictionary::new();
    info.insert("CFBundleName".into(), "Acme".into());
    plist::Value::Dictionary(info.clone())
        .to_file_xml(app.join("Contents/Info.plist"))
        .unwrap();
    assert_eq!(app_name(&exe), "Acme");
    info.insert("CFBundleDisplayName".into(), "Acme Opener".into());
    plist::Value::Dictionary(info)
        .to_file_xml(app.join("Contents/Info.plist"))
        .unwrap();
    assert_eq!(app_name(&exe), "Acme Opener");
}

#[test]
fn an_info_plist_link_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("Evil.app");
    let exe = app.join("Contents/MacOS/evil");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let mut info = plist::Dictionary::new();
    info.insert("CFBundleName".into(), "Secret".into());
    let elsewhere = dir.path().join("root-only.plist");
    plist::Value::Dictionary(info)
        .to_file_xml(&elsewhere)
        .unwrap();
    std::os::unix::fs::symlink(&elsewhere, app.join("Contents/Info.plist")).unwrap();
    assert_eq!(app_name(&exe), "evil");
}

#[test]
fn one_notification_per_incident_an_hour() {
    let t = Telling::new(NotifyUser::Remediations);
    let now = Instant::now();
    assert!(t.admit(Kind::Remediation, "did:a", Some(501), now).is_ok());
    assert!(
        t.admit(
            Kind::Remediation,
            "did:a",
            Some(501),
            now + Duration::from_secs(60)
        )
        .is_err()
    );
    // Another incident of the same helper is its own.
    assert!(
        t.admit(Kind::Remediation, "reinstall:a", Some(501), now)
            .is_ok()
    );
    assert!(
        t.admit(Kind::Remediation, "did:a", Some(501), now + REPEAT)
            .is_ok()
    );
}

#[test]
fn notify_user_none_tells_nothing_and_remediations_no_reports() {
    let none = Telling::new(NotifyUser::None);
    let now = Instant::now();
    for kind in [Kind::Remediation, Kind::Camera, Kind::Report] {
        assert_eq!(none.admit(kind, "k", None, now), Err("NotifyUser is none"));
    }
    let rem = Telling::new(NotifyUser::Remediations);
    assert!(rem.admit(Kind::Report, "r", None, now).is_err());
    assert!(rem.admit(Kind::Camera, "c", None, now).is_ok());
    let all = Telling::new(NotifyUser::All);
    assert!(all.admit(Kind::Report, "r", None, now).is_ok());
}

#[test]
fn a_flood_of_incidents_is_capped_per_user() {
    let t = Telling::new(NotifyUser::All);
    let now = Instant::now();
    for i in 0..PER_USER_PER_HOUR {
        assert!(
            t.admit(Kind::Remediation, &format!("did:{i}"), Some(501), now)
                .is_ok()
        );
    }
    assert!(
        t.admit(Kind::Remediation, "did:one-more", Some(501), now)
            .is_err()
    );
    // Another user is not silenced by this one's flood.
    assert!(t.admit(Kind::Remediation, "did:x", Some(502), now).is_ok());
}

#[test]
fn the_gate_tells_once_through_the_notifier() {
    let rec = Recorder::default();
    let telling = Telling::new(NotifyUser::Remediations);
    let gate = Gate {
        telling: &telling,
        inner: &rec,
    };
    assert_eq!(
        gate.notify_incident("did:k", Some(501), "T", "M"),
        Ok(Told::Shown)
    );
    assert!(matches!(
        gate.notify_incident("did:k", Some(501), "T", "M"),
        Ok(Told::Held(_))
    ));
    assert_eq!(
        *rec.shown.borrow(),
        [(Some(501), "T".to_string(), "M".to_string())]
    );
}

fn finding(v: serde_json::Value) -> Finding {
    serde_json::from_value(v).unwrap()
}

fn camera_use(severity: &str, verdict: &str, pid: u32) -> Finding {
    finding(serde_json::json!({
        "kind": "camera_use",
        "verdict": verdict,
        "severity": severity,
        "reasons": ["r"],
        "rule": null,
        "camera": {
            "service": "camera",
            "client": "/Users/ann/.acmeconnect/acme-connect",
            "auth": "in_use",
            "since": null,
            "pid": pid,
        },
    }))
}

fn reported_listener(path: &str, verdict: &str) -> Finding {
    finding(serde_json::json!({
        "kind": "listener",
        "verdict": verdict,
        "severity": "medium",
        "reasons": ["r"],
        "rule": null,
        "judged_path": path,
    }))
}

#[test]
fn a_critical_camera_incident_is_told_once_and_an_allowed_finding_never() {
    let rec = Recorder::default();
    let t = Telling::new(NotifyUser::Remediations);
    let findings = [
        camera_use("critical", "remediate", 42),
        // Not critical: an ordinary app using the camera.
        camera_use("info", "allow", 43),
        reported_listener("/Users/ann/.dev/server", "report"),
        reported_listener("/Applications/Ok.app/Contents/MacOS/ok", "allow"),
    ];
    t.findings(&rec, &findings);
    t.findings(&rec, &findings);
    let shown = rec.shown.borrow();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].1, TITLE_CAMERA);
    assert!(
        shown[0].2.starts_with("acme-connect turned the camera on"),
        "{shown:?}"
    );
}

#[test]
fn notify_user_all_also_tells_of_reported_findings_once() {
    let rec = Recorder::default();
    let t = Telling::new(NotifyUser::All);
    let findings = [
        reported_listener("/Users/ann/.dev/server", "report"),
        reported_listener("/Applications/Ok.app/Contents/MacOS/ok", "allow"),
    ];
    for _ in 0..3 {
        t.findings(&rec, &findings);
    }
    let shown = rec.shown.borrow();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].1, TITLE_FOUND);
    assert!(shown[0].2.contains("server"), "{shown:?}");
}

#[test]
fn notify_user_none_tells_not_even_of_the_camera() {
    let rec = Recorder::default();
    let t = Telling::new(NotifyUser::None);
    t.findings(&rec, &[camera_use("critical", "remediate", 42)]);
    assert!(rec.shown.borrow().is_empty());
}
