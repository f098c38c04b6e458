//! Plain data shared by the stages. No OS types, no I/O: observe produces
//! these, judge reads them, the CLI serialises them. The serde shape of
//! these types *is* the `lenscap scan --json` contract (docs/scan-json.md),
//! so renaming a field is a breaking change.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What kind of address a listener is bound to. Every kind is reachable
/// from a web page on this machine: a page may name the machine's own
/// network address as easily as `127.0.0.1`. `Wildcard` and `Lan` are
/// reachable from the local network as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressScope {
    Loopback,
    Wildcard,
    /// One specific address of this machine that is not loopback (a LAN
    /// or link address). Earlier agents wrote `specific`; still read so.
    #[serde(alias = "specific")]
    Lan,
}

impl AddressScope {
    /// Classify an address. `::ffff:127.0.0.1` is loopback: `is_loopback`
    /// on the raw IPv6 form says false, so canonicalise first.
    pub fn of(addr: IpAddr) -> AddressScope {
        let addr = addr.to_canonical();
        if addr.is_loopback() {
            AddressScope::Loopback
        } else if addr.is_unspecified() {
            AddressScope::Wildcard
        } else {
            AddressScope::Lan
        }
    }

    /// Can a browser running on this machine open a connection to it?
    /// Always: a page reaches the machine's own LAN address as it reaches
    /// loopback. Spelled out per kind so a new kind must decide.
    pub fn browser_reachable(self) -> bool {
        match self {
            AddressScope::Loopback | AddressScope::Wildcard | AddressScope::Lan => true,
        }
    }

    /// Can other machines on the network reach it (firewalls aside)?
    pub fn network_reachable(self) -> bool {
        match self {
            AddressScope::Loopback => false,
            AddressScope::Wildcard | AddressScope::Lan => true,
        }
    }
}

/// One listening TCP socket and every process holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub address: IpAddr,
    pub port: u16,
    pub scope: AddressScope,
    /// For an IPv6 wildcard: whether it refuses IPv4 (`IPV6_V6ONLY`).
    /// `None` when the platform could not tell or the socket is IPv4.
    pub v6only: Option<bool>,
    /// Every PID that holds the socket, ascending. Empty when the owner is
    /// invisible to us (another namespace, or we lack privilege).
    pub pids: Vec<u32>,
    /// Platform socket identity (Linux inode, macOS socket address) used to
    /// notice new sockets between sweeps.
    pub socket_id: u64,
}

/// Process start time at the platform's finest resolution, as microseconds
/// since the Unix epoch. Linux measures in clock ticks (usually 10 ms), macOS
/// in microseconds; `resolution_us` says which, so PID-reuse checks know how
/// much to trust equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StartTime {
    pub unix_us: u64,
    pub resolution_us: u32,
}

/// What we know of an executable's code signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub status: SignatureStatus,
    /// Signing identifier (`Identifier=` from codesign).
    pub identifier: Option<String>,
    /// Team ID, only when validated against Apple's anchor with a designated
    /// requirement. A Team ID merely read from the binary is never put here.
    pub team_id: Option<String>,
    /// `Platform identifier=` present: an Apple platform binary.
    pub platform_binary: bool,
    /// Leaf-first signing authorities, for display.
    pub authorities: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureStatus {
    /// The platform has no code signatures (Linux). Said honestly rather
    /// than pretending "unsigned".
    NotSupported,
    /// Checking failed (codesign missing, timed out, file gone).
    Unknown,
    Unsigned,
    AdHoc,
    /// Signed and the signature validated.
    Valid,
    /// Signed but the signature did not validate.
    Invalid,
}

impl Signature {
    pub fn not_supported() -> Signature {
        Signature {
            status: SignatureStatus::NotSupported,
            identifier: None,
            team_id: None,
            platform_binary: false,
            authorities: Vec::new(),
        }
    }

    pub fn unknown() -> Signature {
        Signature {
            status: SignatureStatus::Unknown,
            ..Signature::not_supported()
        }
    }

    /// An Apple platform binary whose signature validated.
    pub fn is_apple_platform(&self) -> bool {
        self.platform_binary && self.status == SignatureStatus::Valid
    }
}

/// Who a process is. Enough to judge it and to re-verify it right before
/// signalling (pid + start time + executable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub ppid: u32,
    pub start_time: StartTime,
    /// Executable path; `None` when unreadable (kernel thread, privilege).
    pub path: Option<PathBuf>,
    pub args: Vec<String>,
    pub uid: u32,
    pub user: Option<String>,
    /// Short process name (comm).
    pub name: String,
    /// Runs with a controlling terminal: a person started it from a shell.
    pub interactive: bool,
    /// The enclosing `*.app` when the executable is inside `*.app/Contents/`.
    pub bundle: Option<PathBuf>,
    pub signature: Signature,
}

/// Where a persistence item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistenceKind {
    LaunchAgent,
    LaunchDaemon,
    /// A login item from Background Task Management (`sfltool dumpbtm`).
    LoginItem,
}

/// A launchd `Sockets` entry: launchd itself listens and hands the socket
/// to the job on demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchdSocket {
    pub name: String,
    pub service: Option<String>,
    pub node: Option<String>,
}

/// One thing that starts a program by itself: a launchd plist or a login
/// item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistenceItem {
    pub kind: PersistenceKind,
    /// The plist (launchd) or the item's URL/path (login item).
    pub path: PathBuf,
    pub label: Option<String>,
    /// Resolved program: `Program`, else `ProgramArguments[0]`, else
    /// `BundleProgram` joined to the enclosing bundle.
    pub program: Option<PathBuf>,
    pub args: Vec<String>,
    pub run_at_load: bool,
    pub keep_alive: bool,
    pub sockets: Vec<LaunchdSocket>,
    pub associated_bundle_ids: Vec<String>,
    /// uid owning the plist file (0 for system, the user for a home agent).
    pub owner_uid: Option<u32>,
    /// Login items: the BTM parent identifier / developer name, when shown.
    pub parent_identifier: Option<String>,
    pub developer: Option<String>,
    /// Login items: BTM disposition flags (enabled 0x1, allowed 0x2,
    /// visible 0x4, notified 0x8).
    pub disposition: Option<u32>,
}

/// How a listener answers a cross-origin request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cors {
    /// No `Access-Control-Allow-Origin`: a page may send but not read.
    None,
    /// `Access-Control-Allow-Origin: *`.
    Wildcard,
    /// Echoes the foreign `Origin` we sent.
    Reflected,
    /// Allows some other, fixed origin.
    Specific,
}

/// What the safe HTTP probe learned about a listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpProbe {
    /// Answered with a parseable HTTP response.
    pub http: bool,
    /// Accepted a WebSocket upgrade (101) or advertised one.
    pub websocket: bool,
    /// Status of `GET /`.
    pub status: Option<u16>,
    pub server: Option<String>,
    pub content_type: Option<String>,
    pub cors: Cors,
    /// Answers with an image: the Zoom trick of encoding status in the
    /// image's dimensions to get round CORS.
    pub image: bool,
    /// The reason the probe could not finish, if it could not.
    pub error: Option<String>,
}

/// The judge's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Report,
    Remediate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Listener,
    Persistence,
    /// A privacy grant (camera, microphone, screen capture, Full Disk
    /// Access) from a TCC database.
    CameraGrant,
    /// A process using a camera right now.
    CameraUse,
}

/// The listener part of a finding, as the JSON contract names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerRef {
    pub address: IpAddr,
    pub port: u16,
    pub scope: AddressScope,
}

/// The persistence part of a finding, as the JSON contract names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistenceRef {
    pub kind: PersistenceKind,
    pub path: PathBuf,
    pub label: Option<String>,
    pub program: Option<PathBuf>,
}

/// The camera part of a finding (`camera_grant`, `camera_use`), as the
/// JSON contract names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraRef {
    /// `camera`, `microphone`, `screen_capture` or `all_files` (Full Disk
    /// Access). A camera session is always `camera`.
    pub service: String,
    /// Grant: the TCC client (a bundle id or an executable path). Session:
    /// the user's bundle id when known, else its executable path, else its
    /// process name.
    pub client: String,
    /// Grant: `allowed`, `denied`, `limited`, `unknown` (or `other:<n>`).
    /// Session: `in_use`.
    pub auth: String,
    /// RFC 3339. Grant: when TCC last modified it. Session: when it began
    /// (or when lenscap first saw it open).
    pub since: Option<String>,
    /// Grant: `bundle_id` or `path`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_type: Option<String>,
    /// Grant: why TCC holds it (`user_consent`, `mdm_policy`, …).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Grant: the TCC.db it was read from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub database: Option<PathBuf>,
    /// Session: the pid the session was observed with (also when the
    /// process could not be read, so `process` is absent).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<u32>,
    /// Session: the device node held open (Linux) when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device: Option<PathBuf>,
    /// Session, in a stop event: how long it was open, in seconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_seconds: Option<u64>,
    /// Session: it began shortly after a connection to a flagged helper.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub incident: Option<CameraIncident>,
}

/// The Zoom attack as lenscap sees it: something connected to a flagged
/// helper's port and, within `CameraCorrelationSeconds`, a camera turned on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraIncident {
    /// The flagged helper's listener.
    pub helper: ListenerRef,
    /// The helper's process, when known.
    pub helper_pid: Option<u32>,
    /// Rule or catalog entry that flagged the helper.
    pub helper_rule: Option<String>,
    /// When the connection to the helper was first seen (RFC 3339).
    pub connection_at: String,
    /// Seconds from the connection to the camera session's start.
    pub seconds_before: u64,
}

/// One judged observation. Every listener and every persistence item gives
/// exactly one finding, allowed ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub verdict: Verdict,
    pub severity: Severity,
    /// Plain-words reasons, in the order the judge reached them. Never empty.
    pub reasons: Vec<String>,
    /// Catalog entry id (`catalog:…`) or admin rule id (`rule:…`) that
    /// decided, if one did.
    pub rule: Option<String>,
    /// The primary process (first owner of a listener, or the running
    /// program of a persistence item).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessIdentity>,
    /// Every process holding the listener (a shared socket lists all).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub processes: Vec<ProcessIdentity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub camera: Option<CameraRef>,
    /// Listener and persistence findings: the file judged as the program —
    /// the executable; for an OS or package-manager interpreter, the
    /// script it runs; for code handed to one inline (`python3 -c`), the
    /// launchd plist that holds the code. What remediation moves and
    /// guards; never an interpreter. Absent when nothing on disk is the
    /// program (inline code with no plist, an unreadable executable).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub judged_path: Option<PathBuf>,
}

/// The machine a scan ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub os: String,
    pub os_version: Option<String>,
    pub agent_version: String,
    /// Whether this platform can check code signatures (false on Linux).
    pub signatures_supported: bool,
}

/// A per-item problem that did not stop the scan (unreadable plist,
/// refused directory, probe failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanError {
    pub source: String,
    pub path: Option<PathBuf>,
    pub message: String,
}

/// What a program runs when it is started with `args` (argv, `args[0]`
/// being its own name): its own code, a script file an interpreter was
/// given, or code an interpreter was handed without a file lenscap can
/// pin down (`-c`, `-e`, `-m`, standard input, a relative path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code<'a> {
    Own,
    Script(&'a Path),
    Inline,
}

impl<'a> Code<'a> {
    /// What `exe` runs with `args`.
    pub fn of(exe: &Path, args: &'a [String]) -> Code<'a> {
        if !is_interpreter(exe) {
            return Code::Own;
        }
        match script_arg(exe, args) {
            Some(script) => Code::Script(script),
            None => Code::Inline,
        }
    }
}

/// Executables that run a script given as an argument: their own
/// signature says nothing about the code they run.
pub fn is_interpreter(exe: &Path) -> bool {
    let Some(name) = exe.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let name = name.to_ascii_lowercase();
    name.starts_with("python")
        || name.starts_with("perl")
        || name.starts_with("ruby")
        || name.starts_with("php")
        || matches!(
            name.as_str(),
            "node"
                | "nodejs"
                | "deno"
                | "bun"
                | "osascript"
                | "sh"
                | "bash"
                | "zsh"
                | "dash"
                | "ksh"
                | "fish"
        )
}

/// The script file an interpreter was asked to run: the first argument
/// after the options, when it is an absolute path. `-m`, `-c`, `-e` run a
/// module or inline code — no script file.
pub fn script_arg<'a>(exe: &Path, args: &'a [String]) -> Option<&'a Path> {
    if !is_interpreter(exe) {
        return None;
    }
    for arg in args.iter().skip(1) {
        if matches!(
            arg.as_str(),
            "-m" | "-c" | "-e" | "--eval" | "-p" | "--print" | "-"
        ) {
            return None;
        }
        if arg.starts_with('-') {
            continue;
        }
        let path = Path::new(arg);
        return path.is_absolute().then_some(path);
    }
    None
}

/// The `<Name>.app` of a path shaped like an App Translocation mount:
/// `/private/var/folders/<2>/<random>/T/AppTranslocation/<UUID>/d/<Name>.app/…`
/// (Gatekeeper runs a quarantined app a person opened from there, on a
/// read-only nullfs mount). The shape alone proves nothing — anyone can
/// make such folders — so observe checks the mount (`translocated` in the
/// judge's observations).
pub fn translocation_bundle(path: &Path) -> Option<PathBuf> {
    let parts: Vec<&str> = path
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect::<Option<Vec<_>>>()?;
    let uuid = |s: &str| {
        let groups: Vec<&str> = s.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups
                .iter()
                .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    match parts.as_slice() {
        [
            "/",
            "private",
            "var",
            "folders",
            two,
            random,
            "T",
            "AppTranslocation",
            id,
            "d",
            app,
            _,
            ..,
        ] if two.len() == 2
            && !random.is_empty()
            && uuid(id)
            && app.len() > 4
            && app.ends_with(".app") =>
        {
            Some(parts[..11].iter().collect())
        }
        _ => None,
    }
}

/// The enclosing `*.app` bundle of a path inside `*.app/Contents/…`: the
/// outermost one, so a helper app nested in `Zoom.app/Contents/Frameworks/`
/// belongs to `Zoom.app`.
pub fn enclosing_bundle(path: &std::path::Path) -> Option<PathBuf> {
    let mut prefix = PathBuf::new();
    let mut components = path.components().peekable();
    while let Some(c) = components.next() {
        prefix.push(c);
        let is_app = c
            .as_os_str()
            .to_str()
            .is_some_and(|s| s.len() > 4 && s.ends_with(".app"));
        if is_app
            && components
                .peek()
                .is_some_and(|n| n.as_os_str() == "Contents")
        {
            return Some(prefix);
        }
    }
    None
}

/// Paths no plan ever moves, whatever a finding says: the operating
/// system's own trees. The judge never remediates under `/System`; this is
/// the second lock on the same door. The actor rule skips them too: naming
/// what is never moved gets nobody anything.
const NEVER_MOVED: &[&str] = &[
    "/System",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/libexec",
    "/bin",
    "/sbin",
    "/etc",
    "/private/etc",
    "/dev",
    "/proc",
    "/sys",
];

/// Is `path` in the operating system's own trees, which no plan moves?
pub fn never_moved(path: &std::path::Path) -> bool {
    NEVER_MOVED.iter().any(|p| path.starts_with(p))
}

/// What happened when the platform was asked to signal a process only if
/// it is still the one we identified (`platform::Native::signal_verified`).
/// The identity check exists so PID reuse can never make us signal a stranger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalOutcome {
    /// The process matched the expected identity and the signal was sent.
    Sent,
    /// No process has that PID any more (or it exited before the signal).
    Gone,
    /// The PID now belongs to a process with a different start time or
    /// executable; nothing was sent.
    IdentityChanged,
}

/// An established TCP connection to a local listening port, seen from the
/// listening side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Established {
    /// The listener's side (local address and port).
    pub local: std::net::SocketAddr,
    /// The connecting side.
    pub remote: std::net::SocketAddr,
    /// Platform socket identity, so one connection seen in two sweeps is
    /// counted once.
    pub socket_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_of_nested_helper_is_outer_app() {
        let p = std::path::Path::new(
            "/Applications/zoom.us.app/Contents/Frameworks/ZoomOpener.app/Contents/MacOS/ZoomOpener",
        );
        assert_eq!(
            enclosing_bundle(p),
            Some(PathBuf::from("/Applications/zoom.us.app"))
        );
        let p = std::path::Path::new("/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener");
        assert_eq!(
            enclosing_bundle(p),
            Some(PathBuf::from("/Users/a/.zoomus/ZoomOpener.app"))
        );
        assert_eq!(
            enclosing_bundle(std::path::Path::new("/usr/bin/python3")),
            None
        );
        assert_eq!(
            enclosing_bundle(std::path::Path::new("/x/.app/Contents/y")),
            None
        );
        assert_eq!(
            enclosing_bundle(std::path::Path::new("/x/A.app/README")),
            None
        );
    }

    #[test]
    fn translocation_shape_is_exact() {
        let id = "2A2D6B24-0C1B-4F5E-9A8D-1234567890AB";
        let base = format!("/private/var/folders/x1/r4nd0m/T/AppTranslocation/{id}/d");
        let got = translocation_bundle(Path::new(&format!("{base}/Foo.app/Contents/MacOS/Foo")));
        assert_eq!(got, Some(PathBuf::from(format!("{base}/Foo.app"))));
        for not in [
            // Not under /private/var/folders (the kernel's spelling).
            format!("/var/folders/x1/r4nd0m/T/AppTranslocation/{id}/d/Foo.app/Contents/MacOS/Foo"),
            format!("/Users/ann/AppTranslocation/{id}/d/Foo.app/Contents/MacOS/Foo"),
            // Not a UUID, not two characters, no `d`, no `.app`, the bundle itself.
            "/private/var/folders/x1/r/T/AppTranslocation/1234/d/Foo.app/Contents/MacOS/Foo".into(),
            format!(
                "/private/var/folders/x12/r/T/AppTranslocation/{id}/d/Foo.app/Contents/MacOS/Foo"
            ),
            format!(
                "/private/var/folders/x1/r/T/AppTranslocation/{id}/e/Foo.app/Contents/MacOS/Foo"
            ),
            format!("/private/var/folders/x1/r/T/AppTranslocation/{id}/d/Foo/Contents/MacOS/Foo"),
            format!("/private/var/folders/x1/r/T/AppTranslocation/{id}/d/Foo.app"),
        ] {
            assert_eq!(translocation_bundle(Path::new(&not)), None, "{not}");
        }
    }

    #[test]
    fn what_a_program_runs() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let py = Path::new("/usr/bin/python3");
        let script = args(&["python3", "/Users/a/.x/s.py"]);
        assert_eq!(
            Code::of(py, &script),
            Code::Script(Path::new("/Users/a/.x/s.py"))
        );
        for inline in [
            args(&["python3", "-c", "print(1)"]),
            args(&["python3", "-m", "http.server"]),
            args(&["python3"]),
            args(&["python3", "relative.py"]),
            args(&["osascript", "-e", "display dialog 1"]),
        ] {
            assert_eq!(Code::of(py, &inline), Code::Inline, "{inline:?}");
        }
        assert_eq!(Code::of(Path::new("/usr/sbin/nginx"), &script), Code::Own);
    }

    #[test]
    fn mapped_loopback_is_loopback() {
        let a: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(!a.is_loopback(), "std says false on the raw form");
        assert_eq!(AddressScope::of(a), AddressScope::Loopback);
        assert_eq!(
            AddressScope::of("::".parse().unwrap()),
            AddressScope::Wildcard
        );
        assert_eq!(
            AddressScope::of("0.0.0.0".parse().unwrap()),
            AddressScope::Wildcard
        );
        assert_eq!(
            AddressScope::of("::ffff:0.0.0.0".parse().unwrap()),
            AddressScope::Wildcard
        );
        assert_eq!(
            AddressScope::of("192.168.1.4".parse().unwrap()),
            AddressScope::Lan
        );
        assert!(AddressScope::Lan.browser_reachable());
        assert!(AddressScope::Lan.network_reachable());
        assert!(!AddressScope::Loopback.network_reachable());
    }

    #[test]
    fn scope_is_lan_in_json_and_specific_is_still_read() {
        assert_eq!(
            serde_json::to_string(&AddressScope::Lan).unwrap(),
            "\"lan\""
        );
        let old: AddressScope = serde_json::from_str("\"specific\"").unwrap();
        assert_eq!(old, AddressScope::Lan);
    }
}
