use super::*;
use crate::judge::testkit::{self as kit, Scene};
use crate::model::Verdict;

fn zoom_scene() -> Scene {
    let home = kit::HOME;
    Scene::new()
        .process(kit::zoom_opener_process(4242, 1))
        .listen(kit::loopback(19421, &[4242]), Some(kit::zoom_image_probe()))
        .item(kit::zoom_login_item(home))
}

#[test]
fn zoom_login_item_plan_terminates_quarantines_guards_and_notifies() {
    let findings = zoom_scene().judge(&kit::policy());
    assert!(findings.iter().any(|f| f.verdict == Verdict::Remediate));
    let plans = plans(&findings, &PlanOptions::default());
    assert_eq!(
        plans.len(),
        1,
        "listener and login item are one helper: {plans:#?}"
    );
    let names: Vec<&str> = plans[0].steps.iter().map(Step::name).collect();
    // A login item has no launchd job to boot out.
    assert_eq!(names, ["terminate", "quarantine", "guard", "notify"]);
    assert!(
        plans[0]
            .rule
            .as_deref()
            .is_some_and(|r| r.starts_with("catalog:"))
    );
    assert!(plans[0].subject.contains("19421"), "{}", plans[0].subject);
}

#[test]
fn launch_agent_is_booted_out_before_anything_is_killed() {
    let exe = kit::home(".acme/acme-helper");
    let plist = kit::home("Library/LaunchAgents/com.acme.helper.plist");
    let scene = Scene::new()
        .process(kit::linux(kit::process(900, 1, &exe, "acme-helper")))
        .listen(kit::loopback(8123, &[900]), Some(kit::zoom_image_probe()))
        .item(kit::launch_agent(&plist, "com.acme.helper", &exe));
    let findings = scene.judge(&kit::policy());
    let plans = plans(&findings, &PlanOptions::default());
    assert_eq!(plans.len(), 1, "{findings:#?}");
    let names: Vec<&str> = plans[0].steps.iter().map(Step::name).collect();
    assert_eq!(
        names,
        ["bootout", "terminate", "quarantine", "guard", "notify"]
    );
    let Step::Quarantine { paths } = &plans[0].steps[2] else {
        panic!("third step quarantines")
    };
    assert!(paths.contains(&PathBuf::from(&plist)), "{paths:?}");
    assert!(paths.contains(&PathBuf::from(&exe)), "{paths:?}");
}

#[test]
fn allowed_and_reported_findings_make_no_plan() {
    let scene = Scene::new()
        .process(kit::brew_nginx_process(300))
        .listen(kit::loopback(8080, &[300]), Some(kit::http("nginx")))
        .item(kit::brew_nginx_agent());
    let findings = scene.judge(&kit::policy());
    assert!(findings.iter().all(|f| f.verdict != Verdict::Remediate));
    assert!(plans(&findings, &PlanOptions::default()).is_empty());
}

fn tree() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("plan").tempdir().unwrap()
}

#[test]
fn dedicated_hidden_folder_is_the_unit_and_gets_the_placeholder() {
    let dir = tree();
    let exe = dir
        .path()
        .join(".zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::write(&exe, b"x").unwrap();
    let (unit, hidden) = helper_files(&exe);
    assert_eq!(unit, dir.path().join(".zoomus"));
    assert_eq!(hidden, Some(dir.path().join(".zoomus")));
}

#[test]
fn shared_hidden_folder_is_never_moved_whole() {
    let dir = tree();
    let exe = dir.path().join(".local/bin/helper");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::write(&exe, b"x").unwrap();
    std::fs::write(dir.path().join(".local/bin/other-tool"), b"y").unwrap();
    let (unit, hidden) = helper_files(&exe);
    assert_eq!(unit, exe, "only the helper itself moves");
    assert_eq!(hidden, None);
}

#[test]
fn placeholder_only_with_the_option() {
    let dir = tree();
    let exe = dir.path().join(".acme/acme-helper");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::write(&exe, b"x").unwrap();
    let exe_s = exe.display().to_string();
    let scene = Scene::new()
        .process(kit::linux(kit::process(901, 1, &exe_s, "acme-helper")))
        .listen(kit::loopback(8124, &[901]), Some(kit::zoom_image_probe()))
        .item(kit::launch_agent(
            &kit::home("Library/LaunchAgents/com.acme.plist"),
            "com.acme",
            &exe_s,
        ));
    let findings = scene.judge(&kit::policy());
    let guard = |opts: &PlanOptions| {
        plans(&findings, opts)[0]
            .steps
            .iter()
            .find_map(|s| match s {
                Step::Guard { placeholder, .. } => Some(placeholder.clone()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(guard(&PlanOptions::default()), None);
    let with = PlanOptions {
        placeholder_block: true,
        ..PlanOptions::default()
    };
    assert_eq!(guard(&with), Some(dir.path().join(".acme")));
}

#[test]
fn protected_paths_are_never_moved() {
    let opts = PlanOptions {
        placeholder_block: false,
        protected: vec![PathBuf::from("/var/lenscap")],
    };
    assert!(!movable(Path::new("/System/Library/x"), &opts));
    assert!(!movable(Path::new("/usr/bin/python3"), &opts));
    assert!(!movable(Path::new("/var/lenscap/quarantine"), &opts));
    assert!(
        !movable(Path::new("/var"), &opts),
        "a parent of a protected path"
    );
    assert!(!movable(Path::new("relative/path"), &opts));
    assert!(!movable(Path::new("/"), &opts));
    assert!(movable(Path::new("/Users/ann/.zoomus"), &opts));
}

fn item(owner: Option<u32>) -> PersistenceItem {
    let mut i = kit::launch_agent("/Users/ann/Library/LaunchAgents/a.plist", "a", "/x");
    i.owner_uid = owner;
    i
}

#[test]
fn the_actor_is_who_owns_the_trigger() {
    let user = kit::process(900, 1, "/Users/ann/.x/h", "h");
    let mut root = user.clone();
    root.uid = 0;
    // A user's plist: that user, whoever the process claims to be.
    assert_eq!(
        actor_of(&[item(Some(501))], std::slice::from_ref(&user)),
        Some(501)
    );
    assert_eq!(actor_of(&[item(Some(501))], &[root.clone()]), Some(501));
    // A root-owned plist acts as root.
    assert_eq!(
        actor_of(
            &[item(Some(0)), item(Some(501))],
            std::slice::from_ref(&user)
        ),
        Some(0)
    );
    // Two users' plists: nobody's reach covers both.
    assert_eq!(actor_of(&[item(Some(501)), item(Some(502))], &[]), None);
    // No item (or its plist is gone): the processes, when they agree.
    assert_eq!(
        actor_of(&[item(None)], std::slice::from_ref(&user)),
        Some(501)
    );
    assert_eq!(actor_of(&[], &[user.clone(), root]), None);
    assert_eq!(actor_of(&[], &[]), None);
}

#[test]
fn lenscaps_own_plist_is_never_booted_out_or_moved() {
    let own = "/Library/LaunchDaemons/io.lenscap.agent.plist";
    let exe = "/usr/local/libexec/rogue";
    let mut daemon = kit::launch_agent(own, "io.lenscap.agent", exe);
    daemon.kind = crate::model::PersistenceKind::LaunchDaemon;
    daemon.owner_uid = Some(0);
    let mut deny = kit::rule("deny-all-of-it", crate::config::RuleAction::Deny);
    deny.label = Some("io.lenscap.agent".into());
    let findings = Scene::new()
        .item(daemon)
        .exists(exe)
        .judge(&kit::policy_with(vec![deny]));
    let opts = PlanOptions {
        protected: vec![PathBuf::from(own)],
        ..PlanOptions::default()
    };
    for p in plans(&findings, &opts) {
        for step in &p.steps {
            match step {
                Step::Bootout { item, .. } => panic!("booted out {}", item.path.display()),
                Step::Quarantine { paths } | Step::Guard { paths, .. } => {
                    assert!(!paths.contains(&PathBuf::from(own)), "{paths:?}")
                }
                _ => {}
            }
        }
    }
}

// ----- resetting the grants a remediated helper holds -----

/// The acme helper of `launch_agent_is_booted_out_before_anything_is_killed`
/// (uid 501, label `com.acme.helper`), with `grants` read from the TCC
/// databases they name.
fn acme_with_grants(grants: Vec<crate::model::GrantObservation>, installed: &[&str]) -> Vec<Plan> {
    let exe = kit::home(".acme/acme-helper");
    let plist = kit::home("Library/LaunchAgents/com.acme.helper.plist");
    let mut scene = Scene::new()
        .process(kit::linux(kit::process(900, 1, &exe, "acme-helper")))
        .listen(kit::loopback(8123, &[900]), Some(kit::zoom_image_probe()))
        .item(kit::launch_agent(&plist, "com.acme.helper", &exe));
    for g in grants {
        scene = scene.grant(g);
    }
    for b in installed {
        scene = scene.installed(b);
    }
    plans(&scene.judge(&kit::policy()), &PlanOptions::default())
}

/// A file standing for a TCC.db, owned by `uid`.
fn db_of(dir: &Path, name: &str, uid: u32) -> PathBuf {
    let db = dir.join(name);
    std::fs::write(&db, b"SQLite format 3\0").unwrap();
    std::os::unix::fs::chown(&db, Some(uid), None).unwrap();
    db
}

fn grant_in(
    db: &Path,
    service: crate::model::TccService,
    client: &str,
    client_type: crate::model::TccClientType,
) -> crate::model::GrantObservation {
    crate::model::GrantObservation {
        database: db.to_path_buf(),
        ..kit::grant_seen(
            kit::tcc_grant(service, client, client_type, crate::model::TccAuth::Allowed),
            false,
        )
    }
}

fn reset_step(plan: &Plan) -> Option<(&Vec<GrantReset>, &Vec<String>)> {
    plan.steps.iter().find_map(|s| match s {
        Step::ResetGrants { grants, kept } => Some((grants, kept)),
        _ => None,
    })
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn the_helpers_camera_mic_and_screen_grants_are_reset_as_the_databases_owner() {
    use crate::model::{TccClientType::BundleId, TccService as S};
    if !root() {
        eprintln!("skipped: needs root to give a database to uid 501");
        return;
    }
    let dir = tree();
    let ann = db_of(dir.path(), "ann.db", 501);
    let plans = acme_with_grants(
        vec![
            grant_in(&ann, S::Camera, "com.acme.helper", BundleId),
            grant_in(&ann, S::Microphone, "com.acme.helper", BundleId),
            grant_in(&ann, S::ScreenCapture, "com.acme.helper", BundleId),
            // Another app's grant in the same database is not the helper's.
            grant_in(&ann, S::Camera, "us.zoom.xos", BundleId),
        ],
        &[],
    );
    assert_eq!(plans.len(), 1, "{plans:#?}");
    let names: Vec<&str> = plans[0].steps.iter().map(Step::name).collect();
    assert_eq!(
        names,
        [
            "bootout",
            "terminate",
            "quarantine",
            "guard",
            "reset_grants",
            "notify"
        ]
    );
    let (grants, kept) = reset_step(&plans[0]).unwrap();
    assert!(kept.is_empty(), "{kept:?}");
    let got: Vec<(S, &str, u32)> = grants
        .iter()
        .map(|g| (g.service, g.client.as_str(), g.uid))
        .collect();
    assert_eq!(
        got,
        [
            (S::Camera, "com.acme.helper", 501),
            (S::Microphone, "com.acme.helper", 501),
            (S::ScreenCapture, "com.acme.helper", 501)
        ]
    );
    assert!(grants.iter().all(|g| g.database == ann));
    // Said in the journal's words.
    assert!(
        plans[0].steps[4]
            .describe()
            .contains("tccutil reset Camera com.acme.helper"),
        "{}",
        plans[0].steps[4].describe()
    );
}

#[test]
fn grants_beyond_the_actors_reach_or_known_by_path_are_kept_and_said() {
    use crate::model::{TccClientType, TccService as S};
    if !root() {
        eprintln!("skipped: needs root to give databases to other uids");
        return;
    }
    let dir = tree();
    let bob = db_of(dir.path(), "bob.db", 502);
    let system = db_of(dir.path(), "system.db", 0);
    let ann = db_of(dir.path(), "ann.db", 501);
    let exe = kit::home(".acme/acme-helper");
    let plans = acme_with_grants(
        vec![
            // uid 501's helper: bob's database and the system's are not hers.
            grant_in(&bob, S::Camera, "com.acme.helper", TccClientType::BundleId),
            grant_in(
                &system,
                S::Camera,
                "com.acme.helper",
                TccClientType::BundleId,
            ),
            // A client TCC knows by path: tccutil cannot reset it.
            grant_in(&ann, S::Camera, &exe, TccClientType::Path),
            // Full Disk Access is never reset.
            grant_in(
                &ann,
                S::AllFiles,
                "com.acme.helper",
                TccClientType::BundleId,
            ),
        ],
        &[],
    );
    let (grants, kept) = reset_step(&plans[0]).unwrap();
    assert!(grants.is_empty(), "{grants:#?}");
    assert_eq!(kept.len(), 4, "{kept:#?}");
    let all = kept.join("\n");
    assert!(
        all.contains("uid 502's database, outside the reach of uid 501"),
        "{all}"
    );
    assert!(
        all.contains("uid 0's database, outside the reach of uid 501"),
        "{all}"
    );
    assert!(all.contains("only by its path"), "{all}");
    assert!(
        all.contains("only camera, microphone and screen recording"),
        "{all}"
    );
}

#[test]
fn a_name_the_helper_only_claims_never_resets_an_installed_apps_grant() {
    use crate::model::{TccClientType::BundleId, TccService as S};
    // The helper's launchd label is `com.acme.helper`: a name it gives
    // itself. With an installed app carrying that bundle id, the grant may
    // be the app's: reported, kept.
    let dir = tree();
    let me = nix::unistd::geteuid().as_raw();
    let db = db_of(dir.path(), "mine.db", me);
    let plans = acme_with_grants(
        vec![grant_in(&db, S::Camera, "com.acme.helper", BundleId)],
        &["com.acme.helper"],
    );
    let (grants, kept) = reset_step(&plans[0]).unwrap();
    assert!(grants.is_empty(), "{grants:#?}");
    assert!(
        kept[0].contains("only claims the name com.acme.helper"),
        "{kept:?}"
    );
}

#[test]
fn grants_of_no_remediated_helper_make_no_plan_and_no_step() {
    use crate::model::{TccClientType::BundleId, TccService as S};
    let dir = tree();
    let db = db_of(dir.path(), "x.db", nix::unistd::geteuid().as_raw());
    // nginx is allowed: its grant rides on no plan.
    let scene = Scene::new()
        .process(kit::brew_nginx_process(300))
        .listen(kit::loopback(8080, &[300]), Some(kit::http("nginx")))
        .item(kit::brew_nginx_agent())
        .grant(grant_in(&db, S::Camera, "homebrew.mxcl.nginx", BundleId));
    assert!(plans(&scene.judge(&kit::policy()), &PlanOptions::default()).is_empty());
    // The acme helper without grants: no reset step.
    let plans = acme_with_grants(Vec::new(), &[]);
    assert!(reset_step(&plans[0]).is_none(), "{:#?}", plans[0].steps);
}

#[test]
fn a_reset_step_reads_back_from_the_journal_and_old_plans_have_none() {
    let step = Step::ResetGrants {
        grants: vec![GrantReset {
            service: TccService::Camera,
            client: "com.acme.helper".into(),
            uid: 501,
            database: PathBuf::from("/Users/ann/Library/Application Support/com.apple.TCC/TCC.db"),
        }],
        kept: vec!["the camera grant of /x: known by path".into()],
    };
    let json = serde_json::to_value(&step).unwrap();
    assert_eq!(json["step"], "reset_grants");
    assert_eq!(json["grants"][0]["service"], "camera");
    assert_eq!(serde_json::from_value::<Step>(json).unwrap(), step);
    // Written with nothing kept: the field is left out and reads back empty.
    let bare = serde_json::json!({"step": "reset_grants", "grants": []});
    assert_eq!(
        serde_json::from_value::<Step>(bare).unwrap(),
        Step::ResetGrants {
            grants: vec![],
            kept: vec![]
        }
    );
}
