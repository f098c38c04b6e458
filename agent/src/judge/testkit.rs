//! Test-only constructors for realistic observations: the processes,
//! sockets, probes and persistence items of the machines in
//! catalog-facts.md (Zoom's helper, AirPlay, Homebrew services, dev
//! servers…), with paths, names and signatures as macOS reports them.

use std::net::IpAddr;
use std::path::PathBuf;

use super::{CameraSessionObservation, ConnectionSeen, GrantObservation, Observations, Policy};
use crate::config::Config;
use crate::model::{
    AddressScope, Cors, HttpProbe, Listener, PersistenceItem, PersistenceKind, ProcessIdentity,
    Signature, SignatureStatus, StartTime, enclosing_bundle,
};
use crate::model::{Rule, RuleAction};

pub(crate) const HOME: &str = "/Users/ann";
pub(crate) const AGENT_PID: u32 = 77;
pub(crate) const AGENT_EXE: &str = "/usr/local/libexec/lenscap";
/// Zoom Video Communications' Team ID.
pub(crate) const ZOOM_TEAM: &str = "BJ4HAAB9B3";

pub(crate) fn home(rel: &str) -> String {
    format!("{HOME}/{rel}")
}

pub(crate) fn policy() -> Policy {
    Policy::new(&Config::default()).expect("default policy")
}

pub(crate) fn policy_with(rules: Vec<Rule>) -> Policy {
    Policy::new(&Config {
        rules,
        ..Config::default()
    })
    .expect("policy with rules")
}

pub(crate) fn rule(id: &str, action: RuleAction) -> Rule {
    Rule {
        id: id.into(),
        action,
        team_id: None,
        signing_id: None,
        bundle_id: None,
        label: None,
        path: None,
        port: None,
        comment: None,
    }
}

/// A Mac with one user, Safari installed, and the agent running.
pub(crate) fn observations() -> Observations {
    Observations {
        installed_bundle_ids: ["com.apple.Safari".to_string()].into_iter().collect(),
        home_dirs: vec![PathBuf::from(HOME)],
        agent_pid: AGENT_PID,
        agent_exe: Some(PathBuf::from(AGENT_EXE)),
        ..Observations::default()
    }
}

/// A non-interactive process with an unsigned executable.
pub(crate) fn process(pid: u32, ppid: u32, path: &str, name: &str) -> ProcessIdentity {
    let path = PathBuf::from(path);
    ProcessIdentity {
        pid,
        ppid,
        start_time: StartTime {
            unix_us: 1_700_000_000_000_000 + u64::from(pid),
            resolution_us: 1,
        },
        bundle: enclosing_bundle(&path),
        path: Some(path),
        args: vec![name.to_string()],
        uid: 501,
        user: Some("ann".into()),
        name: name.into(),
        interactive: false,
        signature: Signature {
            status: SignatureStatus::Unsigned,
            ..Signature::not_supported()
        },
    }
}

pub(crate) fn signed(mut p: ProcessIdentity, team: &str, id: &str) -> ProcessIdentity {
    p.signature = Signature {
        status: SignatureStatus::Valid,
        identifier: Some(id.into()),
        team_id: Some(team.into()),
        platform_binary: false,
        authorities: vec![
            format!("Developer ID Application: Vendor ({team})"),
            "Developer ID Certification Authority".into(),
            "Apple Root CA".into(),
        ],
    };
    p
}

pub(crate) fn apple(mut p: ProcessIdentity, id: &str) -> ProcessIdentity {
    p.signature = Signature {
        status: SignatureStatus::Valid,
        identifier: Some(id.into()),
        team_id: None,
        platform_binary: true,
        authorities: vec![
            "Software Signing".into(),
            "Apple Code Signing Certification Authority".into(),
            "Apple Root CA".into(),
        ],
    };
    p
}

pub(crate) fn ad_hoc(mut p: ProcessIdentity) -> ProcessIdentity {
    p.signature.status = SignatureStatus::AdHoc;
    p
}

pub(crate) fn linux(mut p: ProcessIdentity) -> ProcessIdentity {
    p.signature = Signature::not_supported();
    p.bundle = None;
    p
}

pub(crate) fn interactive(mut p: ProcessIdentity) -> ProcessIdentity {
    p.interactive = true;
    p
}

pub(crate) fn with_args(mut p: ProcessIdentity, args: &[&str]) -> ProcessIdentity {
    p.args = args.iter().map(|s| s.to_string()).collect();
    p
}

fn listener(addr: &str, port: u16, pids: &[u32]) -> Listener {
    let address: IpAddr = addr.parse().expect("test address");
    Listener {
        address,
        port,
        scope: AddressScope::of(address),
        v6only: None,
        pids: pids.to_vec(),
        socket_id: u64::from(port) * 1000 + pids.first().copied().map_or(0, u64::from),
    }
}

pub(crate) fn loopback(port: u16, pids: &[u32]) -> Listener {
    listener("127.0.0.1", port, pids)
}

pub(crate) fn wildcard(port: u16, pids: &[u32]) -> Listener {
    listener("0.0.0.0", port, pids)
}

pub(crate) fn wildcard6(port: u16, pids: &[u32]) -> Listener {
    listener("::", port, pids)
}

pub(crate) fn specific(addr: &str, port: u16, pids: &[u32]) -> Listener {
    listener(addr, port, pids)
}

/// `GET /` answered 200, no CORS header.
pub(crate) fn http(server: &str) -> HttpProbe {
    HttpProbe {
        http: true,
        websocket: false,
        status: Some(200),
        server: Some(server.into()),
        content_type: Some("text/html".into()),
        cors: Cors::None,
        image: false,
        error: None,
    }
}

pub(crate) fn not_http() -> HttpProbe {
    HttpProbe {
        http: false,
        websocket: false,
        status: None,
        server: None,
        content_type: None,
        cors: Cors::None,
        image: false,
        error: None,
    }
}

pub(crate) fn websocket() -> HttpProbe {
    HttpProbe {
        http: true,
        websocket: true,
        status: Some(404),
        ..http("")
    }
}

/// ZoomOpener's answer: a GIF whose dimensions encode the status.
pub(crate) fn zoom_image_probe() -> HttpProbe {
    HttpProbe {
        content_type: Some("image/gif".into()),
        server: None,
        image: true,
        ..http("")
    }
}

pub(crate) fn launch_agent(plist: &str, label: &str, program: &str) -> PersistenceItem {
    PersistenceItem {
        kind: PersistenceKind::LaunchAgent,
        path: PathBuf::from(plist),
        label: Some(label.into()),
        program: Some(PathBuf::from(program)),
        args: vec![program.to_string()],
        run_at_load: true,
        keep_alive: false,
        sockets: Vec::new(),
        associated_bundle_ids: Vec::new(),
        owner_uid: Some(501),
        parent_identifier: None,
        developer: None,
        disposition: None,
    }
}

pub(crate) fn login_item(name: &str, bundle: &str, program: &str) -> PersistenceItem {
    PersistenceItem {
        kind: PersistenceKind::LoginItem,
        path: PathBuf::from(bundle),
        label: Some(name.into()),
        program: Some(PathBuf::from(program)),
        args: Vec::new(),
        run_at_load: false,
        keep_alive: false,
        sockets: Vec::new(),
        associated_bundle_ids: Vec::new(),
        owner_uid: Some(501),
        parent_identifier: None,
        developer: None,
        disposition: Some(0x3),
    }
}

pub(crate) fn zoom_opener_exe(home_dir: &str) -> String {
    format!("{home_dir}/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener")
}

/// `~/.zoomus/ZoomOpener.app`, signed by Zoom, started at login.
pub(crate) fn zoom_opener_process(pid: u32, ppid: u32) -> ProcessIdentity {
    signed(
        process(pid, ppid, &zoom_opener_exe(HOME), "ZoomOpener"),
        ZOOM_TEAM,
        "us.zoom.ZoomOpener",
    )
}

/// The login item "ZoomOpener" (catalog-facts.md: a login item, not a
/// LaunchAgent).
pub(crate) fn zoom_login_item(home_dir: &str) -> PersistenceItem {
    let mut item = login_item(
        "ZoomOpener",
        &format!("{home_dir}/.zoomus/ZoomOpener.app"),
        &zoom_opener_exe(home_dir),
    );
    item.developer = Some("Zoom Video Communications, Inc.".into());
    item
}

/// nginx as Homebrew runs it: the resolved Cellar path, ad-hoc signed
/// (Homebrew's arm64 bottles), parent launchd.
pub(crate) fn brew_nginx_process(pid: u32) -> ProcessIdentity {
    with_args(
        ad_hoc(process(
            pid,
            1,
            "/opt/homebrew/Cellar/nginx/1.25.3/bin/nginx",
            "nginx",
        )),
        &["nginx: master process /opt/homebrew/opt/nginx/bin/nginx -g daemon off;"],
    )
}

/// `brew services start nginx`: the plist names the `opt` symlink.
pub(crate) fn brew_nginx_agent() -> PersistenceItem {
    let mut item = launch_agent(
        &home("Library/LaunchAgents/homebrew.mxcl.nginx.plist"),
        "homebrew.mxcl.nginx",
        "/opt/homebrew/opt/nginx/bin/nginx",
    );
    item.args = vec![
        "/opt/homebrew/opt/nginx/bin/nginx".into(),
        "-g".into(),
        "daemon off;".into(),
    ];
    item.keep_alive = true;
    item
}

/// A machine under construction: add processes, listeners with their
/// probe results, persistence items, installed apps and existing paths.
#[derive(Debug, Clone)]
pub(crate) struct Scene {
    pub obs: Observations,
}

impl Scene {
    pub(crate) fn new() -> Scene {
        Scene {
            obs: observations(),
        }
    }

    pub(crate) fn process(mut self, p: ProcessIdentity) -> Scene {
        self.obs.processes.insert(p.pid, p);
        self
    }

    pub(crate) fn listen(mut self, l: Listener, probe: Option<HttpProbe>) -> Scene {
        if let Some(probe) = probe {
            self.obs.probes.insert((l.address, l.port), probe);
        }
        self.obs.listeners.push(l);
        self
    }

    pub(crate) fn item(mut self, item: PersistenceItem) -> Scene {
        self.obs.persistence.push(item);
        self
    }

    pub(crate) fn installed(mut self, bundle_id: &str) -> Scene {
        self.obs.installed_bundle_ids.insert(bundle_id.into());
        self
    }

    pub(crate) fn exists(mut self, path: &str) -> Scene {
        self.obs.existing_paths.insert(PathBuf::from(path));
        self
    }

    pub(crate) fn grant(mut self, g: GrantObservation) -> Scene {
        self.obs.grants.push(g);
        self
    }

    pub(crate) fn camera(mut self, s: CameraSessionObservation) -> Scene {
        self.obs.camera_sessions.push(s);
        self
    }

    pub(crate) fn connection(mut self, c: ConnectionSeen) -> Scene {
        self.obs.connections.push(c);
        self
    }

    pub(crate) fn judge(&self, policy: &Policy) -> Vec<crate::model::Finding> {
        let findings = super::judge(policy, &self.obs);
        assert_eq!(
            findings.len(),
            self.obs.listeners.len()
                + self.obs.persistence.len()
                + self.obs.grants.len()
                + self.obs.camera_sessions.len(),
            "one finding per listener, persistence item, grant and camera session"
        );
        for f in &findings {
            assert!(!f.reasons.is_empty(), "reasons never empty: {f:?}");
        }
        findings
    }
}

/// The finding of the listener on `port`.
pub(crate) fn on_port(findings: &[crate::model::Finding], port: u16) -> &crate::model::Finding {
    findings
        .iter()
        .find(|f| {
            f.kind == crate::model::FindingKind::Listener
                && f.listener.as_ref().is_some_and(|l| l.port == port)
        })
        .unwrap_or_else(|| panic!("no listener finding on port {port}"))
}

/// The finding of the persistence item labelled `label`.
pub(crate) fn of_item<'a>(
    findings: &'a [crate::model::Finding],
    label: &str,
) -> &'a crate::model::Finding {
    findings
        .iter()
        .find(|f| {
            f.kind == crate::model::FindingKind::Persistence
                && f.persistence
                    .as_ref()
                    .is_some_and(|p| p.label.as_deref() == Some(label))
        })
        .unwrap_or_else(|| panic!("no persistence finding labelled {label}"))
}

/// All reasons as one string, for `contains` checks.
pub(crate) fn said(f: &crate::model::Finding) -> String {
    f.reasons.join(" | ")
}

/// The per-user TCC database of [`HOME`].
pub(crate) fn user_tcc_db() -> PathBuf {
    PathBuf::from(home("Library/Application Support/com.apple.TCC/TCC.db"))
}

/// A macOS 14 row: user consent, last modified 2019-07-10.
pub(crate) fn tcc_grant(
    service: crate::model::TccService,
    client: &str,
    client_type: crate::model::TccClientType,
    auth: crate::model::TccAuth,
) -> crate::model::TccGrant {
    crate::model::TccGrant {
        service,
        client: client.into(),
        client_type,
        auth,
        reason: Some(crate::model::TccReason::UserConsent),
        last_modified: Some(1_562_716_800),
    }
}

/// A grant read from the user's TCC.db; `new` as the daemon's diff says.
pub(crate) fn grant_seen(grant: crate::model::TccGrant, new: bool) -> GrantObservation {
    GrantObservation {
        database: user_tcc_db(),
        new,
        // A path client's program is there unless a test says otherwise.
        client_exists: (grant.client_type == crate::model::TccClientType::Path).then_some(true),
        grant,
    }
}

/// An allowed camera grant for a bundle id.
pub(crate) fn camera_grant(bundle_id: &str, new: bool) -> GrantObservation {
    use crate::model::{TccAuth, TccClientType, TccService};
    grant_seen(
        tcc_grant(
            TccService::Camera,
            bundle_id,
            TccClientType::BundleId,
            TccAuth::Allowed,
        ),
        new,
    )
}

/// 2019-07-10T00:00:00Z, in microseconds: when the test cameras turn on.
pub(crate) const CAMERA_T0_US: u64 = 1_562_716_800_000_000;

/// A camera session of `pid` that began `offset_s` seconds after
/// [`CAMERA_T0_US`].
pub(crate) fn camera_session(pid: u32, offset_s: u64) -> CameraSessionObservation {
    CameraSessionObservation {
        pid: Some(pid),
        bundle_id: None,
        device: None,
        since_unix_us: CAMERA_T0_US + offset_s * 1_000_000,
    }
}

/// A connection to `addr:port` first seen at [`CAMERA_T0_US`] + `offset_s`.
pub(crate) fn connection_seen(addr: &str, port: u16, offset_s: u64) -> ConnectionSeen {
    ConnectionSeen {
        address: addr.parse().expect("test address"),
        port,
        first_seen_unix_us: CAMERA_T0_US + offset_s * 1_000_000,
    }
}

/// FaceTime as macOS ships it: an Apple platform binary in /System.
pub(crate) fn facetime_process(pid: u32) -> ProcessIdentity {
    apple(
        process(
            pid,
            1,
            "/System/Applications/FaceTime.app/Contents/MacOS/FaceTime",
            "FaceTime",
        ),
        "com.apple.FaceTime",
    )
}

/// All findings of one kind.
pub(crate) fn of_kind(
    findings: &[crate::model::Finding],
    kind: crate::model::FindingKind,
) -> Vec<&crate::model::Finding> {
    findings.iter().filter(|f| f.kind == kind).collect()
}
