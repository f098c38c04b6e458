//! `tccutil` — a **test fixture**, never shipped: the `tccutil` the Linux
//! end-to-end tests give the daemon as its `TccutilPath`. Linux has no
//! TCC; what the tests need to see is which grant the daemon asked to
//! reset, and as whom.
//!
//! Each run appends one JSON line to the file named by
//! `LENSCAP_TCCUTIL_LOG` (`tccutil_log_env` in the test library): its
//! argv and the uid and euid it runs as — so a test sees that a user's
//! grant was reset in that user's context (`launchctl asuser` → `sudo -u`)
//! and the system database's as root. It then answers as the real one
//! does: `reset <Service> [<bundle id>]` prints `Successfully reset
//! <Service> approval status for <bundle id>` (or `Successfully reset
//! <Service>`) and exits 0; anything else is a usage error, exit 64.

use std::io::Write;
use std::process::exit;

/// The environment variable naming the log (kept in step with
/// `lenscap_e2e::TCCUTIL_LOG_ENV`).
const LOG_ENV: &str = "LENSCAP_TCCUTIL_LOG";

const SERVICES: &[&str] = &[
    "All",
    "Camera",
    "Microphone",
    "ScreenCapture",
    "SystemPolicyAllFiles",
    "Accessibility",
    "AppleEvents",
];

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // SAFETY: getuid/geteuid cannot fail.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    let Some(log) = std::env::var_os(LOG_ENV) else {
        eprintln!("tccutil (lenscap test stand-in): {LOG_ENV} is not set");
        exit(1)
    };
    let line = serde_json::json!({ "argv": args, "uid": uid, "euid": euid });
    let written = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "tccutil (lenscap test stand-in): {}: {e}",
            log.to_string_lossy()
        );
        exit(1)
    }
    match args.as_slice() {
        [verb, service] if verb == "reset" && SERVICES.contains(&service.as_str()) => {
            println!("Successfully reset {service}");
        }
        [verb, service, bundle] if verb == "reset" && SERVICES.contains(&service.as_str()) => {
            println!("Successfully reset {service} approval status for {bundle}");
        }
        _ => {
            eprintln!("Usage: tccutil reset SERVICE [BUNDLE_ID]");
            exit(64)
        }
    }
}
