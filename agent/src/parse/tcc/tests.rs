//! Tests for the TCC reader. Databases are built in temp dirs from the real
//! CREATE TABLE statements in `tests/fixtures/tcc/*.sql` (sources cited
//! there). Lock contention is created by a *separate process* (this test
//! binary re-run as a child; see `contention`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rusqlite::Connection;

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tcc");

fn build(dir: &Path, fixture: &str) -> PathBuf {
    let sql = std::fs::read_to_string(Path::new(FIXTURES).join(fixture)).unwrap();
    let path = dir.join("TCC.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&sql).unwrap();
    path
}

fn grant(
    service: TccService,
    client: &str,
    client_type: TccClientType,
    auth: TccAuth,
    reason: Option<TccReason>,
    last_modified: Option<i64>,
) -> TccGrant {
    TccGrant {
        service,
        client: client.to_string(),
        client_type,
        auth,
        reason,
        last_modified,
    }
}

use TccAuth::*;
use TccClientType::{BundleId, Path as ClientPath};
use TccService::*;

#[test]
fn high_sierra_generation() {
    let dir = tempfile::tempdir().unwrap();
    let snap = read_grants(&build(dir.path(), "high_sierra.sql"), &Default::default()).unwrap();
    assert_eq!(snap.schema, TccSchema::HighSierra);
    assert!(!snap.via_copy);
    assert_eq!(snap.skipped_rows, 0);
    assert_eq!(
        snap.grants,
        vec![
            grant(
                Camera,
                "/usr/local/bin/ffmpeg",
                ClientPath,
                Allowed,
                None,
                None
            ),
            grant(Camera, "com.example.Declined", BundleId, Denied, None, None),
            grant(Camera, "us.zoom.xos", BundleId, Allowed, None, None),
            grant(Microphone, "us.zoom.xos", BundleId, Allowed, None, None),
        ]
    );
}

#[test]
fn mojave_generation() {
    let dir = tempfile::tempdir().unwrap();
    let snap = read_grants(&build(dir.path(), "mojave.sql"), &Default::default()).unwrap();
    assert_eq!(snap.schema, TccSchema::Mojave);
    assert_eq!(
        snap.grants,
        vec![
            grant(
                Camera,
                "us.zoom.xos",
                BundleId,
                Allowed,
                None,
                Some(1562093118)
            ),
            grant(
                Microphone,
                "us.zoom.xos",
                BundleId,
                Allowed,
                None,
                Some(1562093120)
            ),
            grant(
                ScreenCapture,
                "us.zoom.xos",
                BundleId,
                Denied,
                None,
                Some(1570000000)
            ),
            grant(
                AllFiles,
                "com.example.Backup",
                BundleId,
                Allowed,
                None,
                Some(1565000000)
            ),
        ]
    );
}

#[test]
fn big_sur_generation() {
    let dir = tempfile::tempdir().unwrap();
    let snap = read_grants(&build(dir.path(), "big_sur.sql"), &Default::default()).unwrap();
    assert_eq!(snap.schema, TccSchema::BigSur);
    let r = |n| Some(TccReason::from_auth_reason(n));
    assert_eq!(
        snap.grants,
        vec![
            grant(
                Camera,
                "us.zoom.xos",
                BundleId,
                Allowed,
                r(2),
                Some(1650000000)
            ),
            grant(
                Microphone,
                "us.zoom.xos",
                BundleId,
                Denied,
                r(3),
                Some(1650000100)
            ),
            grant(
                ScreenCapture,
                "com.example.Recorder",
                BundleId,
                Allowed,
                r(3),
                Some(1650000200)
            ),
            grant(
                AllFiles,
                "/usr/local/bin/lenscap",
                ClientPath,
                Allowed,
                r(6),
                Some(1650000300)
            ),
        ]
    );
}

#[test]
fn sonoma_generation() {
    let dir = tempfile::tempdir().unwrap();
    let snap = read_grants(&build(dir.path(), "sonoma.sql"), &Default::default()).unwrap();
    assert_eq!(snap.schema, TccSchema::Sonoma);
    let r = |n| Some(TccReason::from_auth_reason(n));
    assert_eq!(
        snap.grants,
        vec![
            grant(
                Camera,
                "com.apple.PhotoBooth",
                BundleId,
                Allowed,
                r(11),
                Some(1717000010)
            ),
            grant(
                Camera,
                "us.zoom.xos",
                BundleId,
                Allowed,
                r(2),
                Some(1717000000)
            ),
            grant(
                Microphone,
                "com.example.Dictation",
                BundleId,
                Unknown,
                r(5),
                Some(1717000020)
            ),
            grant(
                ScreenCapture,
                "com.example.Recorder",
                BundleId,
                Limited,
                r(4),
                Some(1717000030)
            ),
            grant(
                AllFiles,
                "/usr/local/bin/lenscap",
                ClientPath,
                Allowed,
                r(6),
                Some(1717000040)
            ),
        ]
    );
    assert_eq!(snap.grants[0].reason, Some(TccReason::Entitled));
    assert_eq!(snap.grants[2].reason, Some(TccReason::Other(5)));
    assert_eq!(snap.grants[4].reason, Some(TccReason::MdmPolicy));
}

#[test]
fn prebuilt_sqlite_file_reads_like_the_sql() {
    // `sonoma.db` was written by SQLite itself (see the fixtures README).
    let dir = tempfile::tempdir().unwrap();
    let from_sql = read_grants(&build(dir.path(), "sonoma.sql"), &Default::default()).unwrap();
    let prebuilt = read_grants(&Path::new(FIXTURES).join("sonoma.db"), &Default::default());
    assert_eq!(prebuilt.unwrap(), from_sql);
}

#[test]
fn schema_detection_by_column_names() {
    let cols = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    let base = "service,client,client_type";
    assert_eq!(
        TccSchema::detect(&cols(&format!("{base},allowed,prompt_count"))),
        Some(TccSchema::HighSierra)
    );
    assert_eq!(
        TccSchema::detect(&cols(&format!("{base},allowed,flags,last_modified"))),
        Some(TccSchema::Mojave)
    );
    assert_eq!(
        TccSchema::detect(&cols(&format!("{base},auth_value,auth_reason"))),
        Some(TccSchema::BigSur)
    );
    assert_eq!(
        TccSchema::detect(&cols(&format!("{base},auth_value,pid,boot_uuid"))),
        Some(TccSchema::Sonoma)
    );
    assert_eq!(TccSchema::detect(&cols(base)), None);
    assert_eq!(
        TccSchema::detect(&cols("client,client_type,auth_value")),
        None
    );
}

#[test]
fn value_mappings() {
    assert_eq!(TccAuth::from_auth_value(0), Denied);
    assert_eq!(TccAuth::from_auth_value(1), Unknown);
    assert_eq!(TccAuth::from_auth_value(3), Limited);
    assert_eq!(TccAuth::from_auth_value(9), TccAuth::Other(9));
    assert_eq!(TccAuth::from_legacy_allowed(0), Denied);
    assert_eq!(TccAuth::from_legacy_allowed(1), Allowed);
    assert!(Limited.grants_access() && !Unknown.grants_access());
    assert_eq!(TccReason::from_auth_reason(4), TccReason::SystemSet);
    assert_eq!(TccReason::from_auth_reason(3), TccReason::UserSet);
    assert_eq!(TccClientType::from_column(7), TccClientType::Other(7));
    for s in TccService::ALL {
        assert_eq!(TccService::from_tcc_name(s.tcc_name()), Some(s));
    }
    assert_eq!(TccService::from_tcc_name("kTCCServiceAccessibility"), None);
}

#[test]
fn garbage_file_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("TCC.db");
    std::fs::write(&path, b"bplist00 this is not sqlite at all").unwrap();
    let err = read_grants(&path, &Default::default()).unwrap_err();
    assert!(matches!(err, TccError::NotADatabase { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn damaged_pages_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "sonoma.sql");
    let mut bytes = std::fs::read(&path).unwrap();
    // Keep the 100-byte header, overwrite every page after the first.
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    for b in &mut bytes[page..] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = read_grants(&path, &Default::default()).unwrap_err();
    assert!(
        matches!(
            err,
            TccError::Corrupt { .. } | TccError::NotADatabase { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("TCC.db"), "{err}");
}

#[test]
fn missing_table_and_unknown_schema() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let err = read_grants(&empty, &Default::default()).unwrap_err();
    assert!(matches!(err, TccError::NoAccessTable { .. }), "{err:?}");

    let odd = dir.path().join("odd.db");
    Connection::open(&odd)
        .unwrap()
        .execute_batch("CREATE TABLE access (service TEXT, client TEXT, client_type INTEGER, verdict INTEGER);")
        .unwrap();
    match read_grants(&odd, &Default::default()).unwrap_err() {
        TccError::UnknownSchema { columns, .. } => assert!(columns.contains(&"verdict".into())),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_file_and_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("TCC.db");
    assert!(matches!(
        read_grants(&missing, &Default::default()),
        Err(TccError::NotFound { .. })
    ));
    let real = build(dir.path(), "sonoma.sql");
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(matches!(
        read_grants(&link, &Default::default()),
        Err(TccError::Symlink { .. })
    ));
}

#[test]
fn path_with_uri_characters_and_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("Application Support?x=1#frag%20");
    std::fs::create_dir(&sub).unwrap();
    let snap = read_grants(&build(&sub, "big_sur.sql"), &Default::default()).unwrap();
    assert_eq!(snap.grants.len(), 4);
}

#[test]
fn rows_with_wrong_types_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "big_sur.sql");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO access VALUES('kTCCServiceCamera',X'00FF',0,2,2,1,NULL,NULL,NULL,'a',NULL,0,1);
         INSERT INTO access VALUES('kTCCServiceCamera','com.example.TextAuth',0,'two',2,1,NULL,NULL,NULL,'b',NULL,0,1);
         INSERT INTO access VALUES('kTCCServiceCamera','com.example.TextTime',0,2,2,1,NULL,NULL,NULL,'c',NULL,0,'2024-01-01');",
    )
    .unwrap();
    drop(conn);
    let snap = read_grants(&path, &Default::default()).unwrap();
    assert_eq!(snap.skipped_rows, 2);
    let text_time = snap
        .grants
        .iter()
        .find(|g| g.client == "com.example.TextTime")
        .unwrap();
    assert_eq!(text_time.last_modified, None);
}

#[test]
fn diff_reports_added_changed_removed() {
    let zoom = grant(Camera, "us.zoom.xos", BundleId, Allowed, None, Some(1));
    let booth = grant(
        Camera,
        "com.apple.PhotoBooth",
        BundleId,
        Allowed,
        None,
        Some(1),
    );
    let mic = grant(Microphone, "us.zoom.xos", BundleId, Denied, None, Some(1));
    let mic_on = TccGrant {
        auth: Allowed,
        last_modified: Some(2),
        ..mic.clone()
    };
    let helper = grant(Camera, "/tmp/.h/helper", ClientPath, Allowed, None, Some(3));
    let old = vec![zoom.clone(), booth.clone(), mic.clone()];
    let new = vec![mic_on.clone(), zoom.clone(), helper.clone()];
    assert_eq!(
        diff(&old, &new),
        vec![
            GrantChange::Added { grant: helper },
            GrantChange::Removed { grant: booth },
            GrantChange::Changed {
                before: mic,
                after: mic_on
            },
        ]
    );
    assert!(diff(&new, &new).is_empty());
    assert_eq!(
        diff(&[], std::slice::from_ref(&zoom)),
        vec![GrantChange::Added { grant: zoom }]
    );
}

mod contention;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever values a damaged or hand-made database holds, reading never
    /// panics, and each row is either a grant or counted as skipped.
    #[test]
    fn arbitrary_row_values_never_panic(
        rows in proptest::collection::vec(
            (0usize..5, any::<i64>(), prop_oneof![any::<i64>().prop_map(Some), Just(None)], ".{0,12}", 0u8..4),
            0..12,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("TCC.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE access (service, client, client_type, auth_value, auth_reason, last_modified);",
        ).unwrap();
        let services = ["kTCCServiceCamera", "kTCCServiceMicrophone", "kTCCServiceScreenCapture",
                        "kTCCServiceSystemPolicyAllFiles", "kTCCServiceCamera"];
        for (i, (svc, auth, reason, client, client_kind)) in rows.iter().enumerate() {
            let client: rusqlite::types::Value = match client_kind {
                0 => client.clone().into(),
                1 => rusqlite::types::Value::Blob(client.as_bytes().to_vec()),
                2 => rusqlite::types::Value::Integer(i as i64),
                _ => rusqlite::types::Value::Null,
            };
            conn.execute(
                "INSERT INTO access VALUES (?1, ?2, 0, ?3, ?4, ?5)",
                rusqlite::params![services[*svc], client, auth, reason, *auth],
            ).unwrap();
        }
        drop(conn);
        let snap = read_grants(&path, &Default::default()).unwrap();
        prop_assert_eq!(snap.grants.len() + snap.skipped_rows, rows.len());
        for g in &snap.grants {
            prop_assert!(!g.client.is_empty());
        }
    }
}
