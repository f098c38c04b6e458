//! Scenario tests: the benign listeners a naive agent would wrongly kill
//! (catalog-facts.md, "Benign listeners…"), each built from realistic
//! observations and required to stay allow or report.

use super::testkit::*;
use crate::model::{Cors, Finding, HttpProbe, PersistenceItem, Severity, Verdict};

fn assert_not_remediated(findings: &[Finding], what: &str) {
    for f in findings {
        assert_ne!(f.verdict, Verdict::Remediate, "{what}: {}", said(f));
    }
}

/// `/bin/zsh` in Terminal: the shell a person types into.
fn zsh(pid: u32) -> crate::model::ProcessIdentity {
    interactive(apple(process(pid, 480, "/bin/zsh", "zsh"), "com.apple.zsh"))
}

#[test]
fn airplay_receiver_in_control_center_is_allowed() {
    let cc = apple(
        process(
            420,
            1,
            "/System/Library/CoreServices/ControlCenter.app/Contents/MacOS/ControlCenter",
            "ControlCenter",
        ),
        "com.apple.controlcenter",
    );
    let airtunes = HttpProbe {
        status: Some(403),
        ..http("AirTunes/860.7.1")
    };
    let mut scene = Scene::new().process(cc);
    for port in [5000, 7000] {
        scene = scene
            .listen(wildcard(port, &[420]), Some(airtunes.clone()))
            .listen(wildcard6(port, &[420]), Some(airtunes.clone()));
    }
    let findings = scene.judge(&policy());
    assert_eq!(findings.len(), 4);
    for f in &findings {
        assert_eq!(f.verdict, Verdict::Allow, "{}", said(f));
        assert_eq!(f.severity, Severity::Info);
        assert!(said(f).contains("Apple platform binary"));
    }
}

#[test]
fn rapportd_is_allowed() {
    let rapportd = apple(
        process(380, 1, "/usr/libexec/rapportd", "rapportd"),
        "com.apple.rapportd",
    );
    for probe in [not_http(), http("")] {
        let findings = Scene::new()
            .process(rapportd.clone())
            .listen(wildcard6(49152, &[380]), Some(probe))
            .judge(&policy());
        assert_eq!(
            findings[0].verdict,
            Verdict::Allow,
            "{}",
            said(&findings[0])
        );
    }
}

fn dropbox() -> crate::model::ProcessIdentity {
    signed(
        process(
            750,
            1,
            "/Applications/Dropbox.app/Contents/MacOS/Dropbox",
            "Dropbox",
        ),
        "G7HH3F8CAK",
        "com.getdropbox.dropbox",
    )
}

#[test]
fn dropbox_lan_sync_is_allowed_as_a_well_known_listener() {
    let login = login_item(
        "Dropbox",
        "/Applications/Dropbox.app",
        "/Applications/Dropbox.app/Contents/MacOS/Dropbox",
    );
    for (probe, with_login, want) in [
        (not_http(), false, Verdict::Allow),
        (not_http(), true, Verdict::Allow),
        // Serving HTTP, it would be a report (criteria 1 and 2 only); the
        // catalog's benign list knows it by Team ID and name.
        (http(""), false, Verdict::Allow),
        (http(""), true, Verdict::Allow),
    ] {
        let mut scene = Scene::new()
            .process(dropbox())
            .listen(wildcard(17500, &[750]), Some(probe))
            .installed("com.getdropbox.dropbox")
            .exists("/Applications/Dropbox.app")
            .exists("/Applications/Dropbox.app/Contents/MacOS/Dropbox");
        if with_login {
            scene = scene.item(login.clone());
        }
        let findings = scene.judge(&policy());
        assert_eq!(
            on_port(&findings, 17500).verdict,
            want,
            "{}",
            said(&findings[0])
        );
        assert_not_remediated(&findings, "Dropbox");
    }
    let f = Scene::new()
        .process(dropbox())
        .listen(wildcard(17500, &[750]), Some(http("")))
        .judge(&policy());
    assert!(
        said(&f[0]).contains("benign:dropbox-lan-sync"),
        "{}",
        said(&f[0])
    );
}

/// The benign list vouches only through a signature that validated, with
/// the entry's Team ID *and* its name: a claim of either is nothing.
#[test]
fn a_benign_name_without_the_vendors_valid_signature_is_not_benign() {
    let exe = "/Applications/Dropbox.app/Contents/MacOS/Dropbox";
    let cases = [
        ("ad-hoc", ad_hoc(process(750, 1, exe, "Dropbox"))),
        ("a Team ID whose signature did not validate", {
            let mut p = signed(
                process(750, 1, exe, "Dropbox"),
                "G7HH3F8CAK",
                "com.getdropbox.dropbox",
            );
            p.signature.status = crate::model::SignatureStatus::Invalid;
            p
        }),
        (
            "another team",
            signed(
                process(750, 1, exe, "Dropbox"),
                "ABCDE12345",
                "com.getdropbox.dropbox",
            ),
        ),
        (
            "Dropbox's team, another program",
            signed(
                process(
                    750,
                    1,
                    "/Applications/Dropbox.app/Contents/MacOS/Sync",
                    "Sync",
                ),
                "G7HH3F8CAK",
                "com.getdropbox.sync",
            ),
        ),
    ];
    for (what, p) in cases {
        let findings = Scene::new()
            .process(p)
            .listen(wildcard(17500, &[750]), Some(http("")))
            .judge(&policy());
        let f = on_port(&findings, 17500);
        assert_eq!(f.verdict, Verdict::Report, "{what}: {}", said(f));
        assert!(!said(f).contains("benign:"), "{what}: {}", said(f));
    }
}

/// A vendor's signature does not excuse where a copy was put: Dropbox's
/// own binary, copied into a hidden folder and started by a LaunchAgent,
/// is an undisclosed helper web server like any other.
#[test]
fn a_benign_listener_in_a_hidden_folder_is_still_remediated() {
    let exe = home(".cache/.db/Dropbox");
    let agent = launch_agent(
        &home("Library/LaunchAgents/com.example.sync.plist"),
        "com.example.sync",
        &exe,
    );
    let findings = Scene::new()
        .process(signed(
            process(750, 1, &exe, "Dropbox"),
            "G7HH3F8CAK",
            "com.getdropbox.dropbox",
        ))
        .listen(loopback(17600, &[750]), Some(http("")))
        .item(agent)
        .exists(&exe)
        .judge(&policy());
    let f = on_port(&findings, 17600);
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
}

#[test]
fn docker_published_ports_are_allowed_not_remediated() {
    let desktop = signed(
        process(
            500,
            1,
            "/Applications/Docker.app/Contents/MacOS/Docker Desktop.app/Contents/MacOS/Docker Desktop",
            "Docker Desktop",
        ),
        "9BNSXJN65R",
        "com.electron.dockerdesktop",
    );
    let backend = signed(
        process(
            501,
            500,
            "/Applications/Docker.app/Contents/MacOS/com.docker.backend",
            "com.docker.backend",
        ),
        "9BNSXJN65R",
        "com.docker.backend",
    );
    let mut vmnetd = launch_agent(
        "/Library/LaunchDaemons/com.docker.vmnetd.plist",
        "com.docker.vmnetd",
        "/Library/PrivilegedHelperTools/com.docker.vmnetd",
    );
    vmnetd.kind = crate::model::PersistenceKind::LaunchDaemon;
    vmnetd.keep_alive = true;
    vmnetd.associated_bundle_ids = vec!["com.docker.docker".into()];
    // A container publishing 8080 with a permissive CORS policy of its own.
    let container = HttpProbe {
        cors: Cors::Wildcard,
        ..http("nginx/1.25.3")
    };
    let findings = Scene::new()
        .process(desktop)
        .process(backend)
        .listen(wildcard6(8080, &[501]), Some(container))
        .listen(loopback(5432, &[501]), Some(not_http()))
        .item(vmnetd)
        .installed("com.docker.docker")
        .exists("/Library/PrivilegedHelperTools/com.docker.vmnetd")
        .judge(&policy());
    assert_not_remediated(&findings, "Docker");
    let f = on_port(&findings, 8080);
    // Without the benign list this is a report (high: CORS * and all
    // addresses); com.docker.backend signed by Docker's Team ID is known.
    assert_eq!(f.verdict, Verdict::Allow, "{}", said(f));
    assert_eq!(f.severity, Severity::Info);
    assert!(said(f).contains("benign:docker-desktop"), "{}", said(f));
    assert!(said(f).contains("note: any web page may read its answers"));
    assert!(said(f).contains("the app /Applications/Docker.app (pid 500) started it"));
    assert_eq!(on_port(&findings, 5432).verdict, Verdict::Allow);
    let helper = of_item(&findings, "com.docker.vmnetd");
    assert_eq!(helper.verdict, Verdict::Allow, "{}", said(helper));
    assert!(said(helper).contains("installed app com.docker.docker"));
}

#[test]
fn jetbrains_builtin_server_is_reported_not_remediated() {
    let toolbox = signed(
        process(
            300,
            1,
            "/Applications/JetBrains Toolbox.app/Contents/MacOS/jetbrains-toolbox",
            "jetbrains-toolbox",
        ),
        "2ZEFAR8TH3",
        "com.jetbrains.toolbox",
    );
    let installed = "/Applications/IntelliJ IDEA.app/Contents/MacOS/idea";
    let via_toolbox = home(
        "Library/Application Support/JetBrains/Toolbox/apps/IDEA-U/ch-0/241.14494.240/IntelliJ IDEA.app/Contents/MacOS/idea",
    );
    for (exe, ppid) in [(installed.to_string(), 1), (via_toolbox, 300)] {
        let idea = signed(
            process(301, ppid, &exe, "idea"),
            "2ZEFAR8TH3",
            "com.jetbrains.intellij",
        );
        let findings = Scene::new()
            .process(toolbox.clone())
            .process(idea)
            .listen(loopback(63342, &[301]), Some(http("")))
            .listen(loopback(63343, &[301]), Some(not_http()))
            .judge(&policy());
        assert_not_remediated(&findings, &exe);
        assert_eq!(on_port(&findings, 63342).verdict, Verdict::Report, "{exe}");
    }
}

#[test]
fn discord_rpc_is_reported_not_remediated() {
    let discord = signed(
        process(
            640,
            1,
            "/Applications/Discord.app/Contents/MacOS/Discord",
            "Discord",
        ),
        "53Q6R32WPB",
        "com.hnc.Discord",
    );
    let open_at_login = login_item(
        "Discord",
        "/Applications/Discord.app",
        "/Applications/Discord.app/Contents/MacOS/Discord",
    );
    for item in [None, Some(open_at_login)] {
        let mut scene = Scene::new()
            .process(discord.clone())
            .installed("com.hnc.Discord")
            .exists("/Applications/Discord.app/Contents/MacOS/Discord");
        for port in 6463..=6472 {
            let probe = (port == 6463).then(websocket);
            scene = scene.listen(loopback(port, &[640]), probe);
        }
        scene = scene.item_opt(item);
        let findings = scene.judge(&policy());
        assert_not_remediated(&findings, "Discord");
        assert_eq!(on_port(&findings, 6463).verdict, Verdict::Report);
        // Not probed: unknown HTTP, but disclosed, so nothing to report.
        assert_eq!(on_port(&findings, 6470).verdict, Verdict::Allow);
    }
}

#[test]
fn homebrew_services_are_never_remediated() {
    let postgres = ad_hoc(process(
        910,
        1,
        "/opt/homebrew/Cellar/postgresql@16/16.1/bin/postgres",
        "postgres",
    ));
    let redis = ad_hoc(process(
        920,
        1,
        "/opt/homebrew/opt/redis/bin/redis-server",
        "redis-server",
    ));
    let mut redis_agent = launch_agent(
        &home("Library/LaunchAgents/homebrew.mxcl.redis.plist"),
        "homebrew.mxcl.redis",
        "/opt/homebrew/opt/redis/bin/redis-server",
    );
    redis_agent.keep_alive = true;
    for cors in [Cors::None, Cors::Wildcard] {
        let nginx_probe = HttpProbe {
            cors,
            ..http("nginx/1.25.3")
        };
        // Also when observe resolved the plist's `opt` symlink, so the
        // nginx process links to its plist.
        for nginx in [
            brew_nginx_process(900),
            process(900, 1, "/opt/homebrew/opt/nginx/bin/nginx", "nginx"),
        ] {
            let findings = Scene::new()
                .process(nginx)
                .process(postgres.clone())
                .process(redis.clone())
                .listen(wildcard(8080, &[900]), Some(nginx_probe.clone()))
                .listen(loopback(5432, &[910]), Some(not_http()))
                .listen(loopback(6379, &[920]), Some(not_http()))
                .item(brew_nginx_agent())
                .item(redis_agent.clone())
                .judge(&policy());
            assert_not_remediated(&findings, "brew services");
            let f = on_port(&findings, 8080);
            assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
            assert!(said(f).contains("package manager's prefix"), "{}", said(f));
            assert_eq!(on_port(&findings, 5432).verdict, Verdict::Allow);
            assert_eq!(on_port(&findings, 6379).verdict, Verdict::Allow);
            assert_eq!(
                of_item(&findings, "homebrew.mxcl.redis").verdict,
                Verdict::Allow
            );
            assert!(said(of_item(&findings, "homebrew.mxcl.redis")).contains("Homebrew service"));
        }
    }
    // Linuxbrew lives in a hidden folder and is still a package manager.
    let findings = Scene::new()
        .process(linux(process(
            930,
            1,
            "/home/linuxbrew/.linuxbrew/Cellar/nginx/1.25.3/bin/nginx",
            "nginx",
        )))
        .listen(wildcard(8080, &[930]), Some(http("nginx")))
        .judge(&policy());
    assert_eq!(
        findings[0].verdict,
        Verdict::Report,
        "{}",
        said(&findings[0])
    );
}

const BREW_PYTHON: &str = "/opt/homebrew/Cellar/python@3.12/3.12.1/Frameworks/Python.framework/Versions/3.12/Resources/Python.app/Contents/MacOS/Python";
const CLT_PYTHON: &str = "/Library/Developer/CommandLineTools/Library/Frameworks/Python3.framework/Versions/3.9/Resources/Python.app/Contents/MacOS/Python";

#[test]
fn dev_servers_from_a_terminal_are_never_remediated() {
    let flask = interactive(with_args(
        process(1001, 500, BREW_PYTHON, "Python"),
        &[BREW_PYTHON, "-m", "flask", "run"],
    ));
    let vite = interactive(with_args(
        process(
            1002,
            500,
            &home(".nvm/versions/node/v20.11.0/bin/node"),
            "node",
        ),
        &["node", &home("code/site/node_modules/.bin/vite")],
    ));
    let http_server_apple = interactive(with_args(
        apple(
            process(1003, 500, CLT_PYTHON, "Python"),
            "com.apple.python3",
        ),
        &[CLT_PYTHON, "-m", "http.server"],
    ));
    let http_server_brew = interactive(with_args(
        ad_hoc(process(1004, 500, BREW_PYTHON, "Python")),
        &[BREW_PYTHON, "-m", "http.server", "8001"],
    ));
    let vite_cors = HttpProbe {
        cors: Cors::Wildcard,
        ..http("")
    };
    let findings = Scene::new()
        .process(zsh(500))
        .process(flask)
        .process(vite)
        .process(http_server_apple)
        .process(http_server_brew)
        .listen(
            loopback(5000, &[1001]),
            Some(http("Werkzeug/3.0.1 Python/3.12.1")),
        )
        .listen(specific("::1", 5173, &[1002]), Some(vite_cors))
        .listen(
            wildcard(8000, &[1003]),
            Some(http("SimpleHTTP/0.6 Python/3.9.6")),
        )
        .listen(
            wildcard(8001, &[1004]),
            Some(http("SimpleHTTP/0.6 Python/3.12.1")),
        )
        .judge(&policy());
    assert_not_remediated(&findings, "dev servers");
    for port in [5000, 5173, 8001] {
        let f = on_port(&findings, port);
        assert_eq!(f.verdict, Verdict::Report, "{port}: {}", said(f));
        assert!(said(f).contains("controlling terminal"), "{port}");
    }
    // Apple's python running `-m http.server`: Apple's signature covers
    // the interpreter, not the module it was told to run, so it is judged
    // like the others — a person's server, reported, never remediated.
    let f = on_port(&findings, 8000);
    assert_eq!(f.verdict, Verdict::Report, "Apple's python: {}", said(f));
    assert!(said(f).contains("covers the interpreter, not what it runs"));
}

#[test]
fn dev_servers_without_a_terminal_stay_reported() {
    // Started by an IDE (VS Code's helper app) or left behind with nohup
    // (reparented to launchd): helpers, but in places a person chose.
    let code_helper = signed(
        process(
            1100,
            1,
            "/Applications/Visual Studio Code.app/Contents/Frameworks/Code Helper (Plugin).app/Contents/MacOS/Code Helper (Plugin)",
            "Code Helper (Plugin)",
        ),
        "UBF8T346G9",
        "com.microsoft.VSCode.helper.Plugin",
    );
    let node = home(".nvm/versions/node/v20.11.0/bin/node");
    let vite = with_args(
        process(1101, 1100, &node, "node"),
        &["node", &home("code/site/node_modules/.bin/vite")],
    );
    let orphan = with_args(
        process(1102, 1, &node, "node"),
        &["node", &home("code/api/server.js")],
    );
    let venv_flask = with_args(
        process(1103, 1, &home("code/api/.venv/bin/python3"), "python3"),
        &["python3", &home("code/api/.venv/bin/flask"), "run"],
    );
    let findings = Scene::new()
        .process(code_helper)
        .process(vite)
        .process(orphan)
        .process(venv_flask)
        .listen(loopback(5173, &[1101]), Some(http("")))
        .listen(loopback(3000, &[1102]), Some(http("")))
        .listen(loopback(5001, &[1103]), Some(http("Werkzeug/3.0.1")))
        .judge(&policy());
    assert_not_remediated(&findings, "IDE and orphaned dev servers");
    for f in &findings {
        assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
        assert!(said(f).contains("it is a helper"), "{}", said(f));
    }
}

#[test]
fn an_interactive_undisclosed_server_is_reported_not_remediated() {
    // A person ran a tool from a hidden folder: not a helper, whatever its
    // location. Neither is its child, whose parent has the terminal.
    let tool = interactive(process(1200, 500, &home(".tools/bin/srv"), "srv"));
    let child = process(1201, 1200, &home(".tools/bin/worker"), "worker");
    let findings = Scene::new()
        .process(zsh(500))
        .process(tool)
        .process(child)
        .listen(loopback(9000, &[1200]), Some(http("")))
        .listen(loopback(9001, &[1201]), Some(http("")))
        .judge(&policy());
    assert_not_remediated(&findings, "interactive");
    assert!(
        said(on_port(&findings, 9001)).contains("its parent srv (pid 1200) runs in a terminal")
    );
}

#[test]
fn an_app_a_person_opened_outside_applications_is_reported_not_remediated() {
    // Opened from ~/Downloads, or translocated by Gatekeeper: launchd is the
    // parent of every app opened from Finder, so that alone is no helper.
    for exe in [
        home("Downloads/Tool.app/Contents/MacOS/Tool"),
        "/private/var/folders/x1/T/AppTranslocation/0A1B/d/Tool.app/Contents/MacOS/Tool".into(),
    ] {
        let tool = signed(process(1500, 1, &exe, "Tool"), "TOOLTEAM01", "com.tool.app");
        let findings = Scene::new()
            .process(tool)
            .listen(loopback(4567, &[1500]), Some(http("")))
            .judge(&policy());
        let f = on_port(&findings, 4567);
        assert_eq!(f.verdict, Verdict::Report, "{exe}: {}", said(f));
    }
}

impl Scene {
    fn item_opt(self, item: Option<PersistenceItem>) -> Scene {
        match item {
            Some(i) => self.item(i),
            None => self,
        }
    }
}
