//! `launchctl` — a **test fixture**, never shipped: the `launchctl` the
//! Linux end-to-end tests give the daemon as its `LaunchctlPath`. It
//! forwards its arguments to `launchd-standin` (the socket named by
//! `LENSCAP_STANDIN_SOCK`) and prints what the stand-in answers, with its
//! exit code, so the daemon sees the output and exit codes of the real
//! `launchctl bootout | bootstrap | print`.
//!
//! Each call is first appended to `calls.log` beside the socket (the
//! arguments joined by spaces, one line per call), so a test can check
//! which commands the daemon ran, and in which order.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::exit;

use lenscap_e2e::{STANDIN_SOCK_ENV, standin_request};

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some(sock) = std::env::var_os(STANDIN_SOCK_ENV).map(PathBuf::from) else {
        fail(&format!(
            "{STANDIN_SOCK_ENV} is not set: run launchd-standin and point this at its control.sock"
        ));
    };
    log_call(&sock, &args);
    match standin_request(&sock, &args) {
        Ok(reply) => {
            print!("{}", reply.stdout);
            eprint!("{}", reply.stderr);
            let _ = std::io::stdout().flush();
            exit(reply.code)
        }
        Err(e) => fail(&format!("{}: {e}", sock.display())),
    }
}

/// Append the call to `<dir of the socket>/calls.log`. One `write` of a
/// short line to a file opened for appending lands whole even when several
/// calls run at once.
fn log_call(sock: &Path, args: &[String]) {
    let log = sock.with_file_name(OsString::from("calls.log"));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(format!("{}\n", args.join(" ")).as_bytes()));
    if let Err(e) = written {
        fail(&format!("{}: {e}", log.display()));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("launchctl (lenscap test stand-in): {message}");
    exit(1)
}
