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
//!
//! `asuser <uid> /usr/bin/sudo -u <user> /usr/bin/osascript -e <script>`
//! — how the daemon shows a notification — is the notification stand-in:
//! it does what `sudo -u <user>` would (become that user: groups, gid,
//! uid), and only then appends one JSON line to `notifications.log`
//! beside the socket with its whole argv and the uid and euid it runs as,
//! so a test sees what would have been shown and that it never ran as
//! root. `asuser <uid> /usr/bin/sudo -u <user> <program> <args…>` with any
//! other absolute program (the daemon resetting a privacy grant with
//! `tccutil` in the user's session) becomes that user the same way and
//! then runs the program in place of this process, with this environment,
//! so its output and exit code are the command's. Any other shape of
//! `asuser` is refused (exit 1).

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
    if args.first().map(String::as_str) == Some("asuser") {
        as_user(&sock, &args)
    }
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

/// The notification stand-in (see the module doc).
fn as_user(sock: &Path, args: &[String]) -> ! {
    if let [_, _, sudo, dash_u, user, program, rest @ ..] = args
        && sudo == "/usr/bin/sudo"
        && dash_u == "-u"
        && program != "/usr/bin/osascript"
        && program.starts_with('/')
    {
        run_as(user, program, rest)
    }
    let shape = match args {
        [_, uid, sudo, dash_u, user, osascript, dash_e, script]
            if sudo == "/usr/bin/sudo"
                && dash_u == "-u"
                && osascript == "/usr/bin/osascript"
                && dash_e == "-e" =>
        {
            uid.parse::<u32>().ok().map(|uid| (uid, user, script))
        }
        _ => None,
    };
    let Some((asuser, user, script)) = shape else {
        fail(&format!("asuser: unexpected arguments {args:?}"));
    };
    // Opened while still root; written once the user's identity is taken.
    let log = sock.with_file_name(OsString::from("notifications.log"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", log.display())));
    become_user(user);
    // SAFETY: getuid/geteuid cannot fail.
    let (now_uid, now_euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    let line = serde_json::json!({
        "argv": args,
        "asuser": asuser,
        "user": user,
        "uid": now_uid,
        "euid": now_euid,
        "script": script,
    });
    if let Err(e) = file.write_all(format!("{line}\n").as_bytes()) {
        fail(&format!("{}: {e}", log.display()));
    }
    exit(0)
}

/// What `sudo -u <user>` does to this process: that user's uid, primary
/// group and no other groups, for good.
fn become_user(user: &str) {
    let Ok(name) = std::ffi::CString::new(user.as_bytes()) else {
        fail("asuser: a user name with a NUL byte");
    };
    // SAFETY: getpwnam with a valid C string; the fields read are copied
    // before any other call could reuse the static buffer.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            fail(&format!("sudo: unknown user {user}"));
        }
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    // SAFETY: plain system calls on integers; checked below.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
    };
    if !dropped {
        fail(&format!(
            "sudo -u {user}: {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// `sudo -u <user> <program> <args…>`: become the user, then be the program.
fn run_as(user: &str, program: &str, args: &[String]) -> ! {
    use std::os::unix::process::CommandExt;
    become_user(user);
    let e = std::process::Command::new(program).args(args).exec();
    fail(&format!("sudo: {program}: {e}"))
}

fn fail(message: &str) -> ! {
    eprintln!("launchctl (lenscap test stand-in): {message}");
    exit(1)
}
