//! The interpreter shield: eve's LaunchAgent runs a system interpreter —
//! root's file, shared by every script on the machine — on a hidden script
//! of hers, or on inline code, and the script serves HTTP to any page. The
//! process is eve's and is stopped; what is eve's (the script, the plist)
//! is quarantined; the interpreter is not moved, changed or guarded.

use std::path::{Path, PathBuf};

use super::{Attack, CONTAIN, Untouched, assert_remediated, can_attack, planned_targets, tail};

/// A one-connection-at-a-time HTTP server in core Perl: answers anything
/// with 200 and `Access-Control-Allow-Origin: *`. Its port goes to the file
/// named by its first argument.
const PERL_SERVER: &str = r#"use strict; use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16, ReuseAddr => 1) or die "listen: $!";
my $pf = $ARGV[0];
open(my $f, '>', "$pf.tmp") or die "$pf.tmp: $!"; print $f $s->sockport, "\n"; close $f; rename("$pf.tmp", $pf) or die "rename: $!";
while (my $c = $s->accept) {
  $c->timeout(2); local $/ = "\r\n\r\n"; my $req = <$c>;
  print $c "HTTP/1.1 200 OK\r\nServer: sync\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
  close $c;
}
"#;

/// The same in Python, for `python3 -c` (the port file is `sys.argv[1]`).
const PYTHON_SERVER: &str = r#"import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self): self.answer(200, b"ok\n")
    def do_OPTIONS(self): self.answer(204, b"")
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
pf = sys.argv[1]
with open(pf + ".tmp", "w") as f: f.write("%d\n" % s.server_address[1])
os.rename(pf + ".tmp", pf)
s.serve_forever()
"#;

/// The interpreter at `path` as the kernel runs it: Debian's
/// `/usr/bin/python3` is a link to `python3.11`, and a process's
/// executable is the link's target. (On a Mac `/usr/bin/python3` is a
/// file.) `None` when it is not installed.
fn interpreter(path: &str) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

fn assert_interpreter_untouched(a: &Attack, path: &Path, before: &Untouched, log: &str) {
    assert_eq!(
        &Untouched::of(path),
        before,
        "the interpreter {} changed; log:\n{}",
        path.display(),
        tail(log)
    );
    assert!(
        a.quarantined(path).is_none(),
        "the interpreter is in quarantine"
    );
    let (paths, _) = planned_targets(&a.journal());
    assert!(
        !paths.iter().any(|p| path.starts_with(p)),
        "a plan moves or guards the interpreter: {paths:?}"
    );
}

#[test]
fn a_plist_running_an_interpreter_on_a_hidden_script_loses_the_script_not_the_interpreter() {
    if !can_attack("interpreter: script") {
        return;
    }
    let Some(perl) = interpreter("/usr/bin/perl") else {
        eprintln!("interpreter: script: skipped — no /usr/bin/perl here");
        return;
    };
    let perl_before = Untouched::of(&perl);
    let mut a = Attack::setup();
    let script = a.write(".sync-agent/server.pl", PERL_SERVER);
    let port_file = a.port_file("perl");
    let label = "com.eve.perlsync";
    let plist = a.agent(
        label,
        &[
            perl.to_str().unwrap(),
            script.to_str().unwrap(),
            port_file.to_str().unwrap(),
        ],
    );
    a.start_launchd();
    let (pid, _) = a.wait_job(label, "perl");

    let d = a.start_daemon(&[]);
    assert_remediated(&a, &d, &[&script], CONTAIN);
    a.assert_contained(&d, label, pid, &script, &[&script, &plist]);
    assert!(!script.is_file(), "the script is still in place");
    assert_interpreter_untouched(&a, &perl, &perl_before, &d.log());
}

#[test]
fn a_plist_running_inline_interpreter_code_loses_the_plist_not_the_interpreter() {
    if !can_attack("interpreter: inline") {
        return;
    }
    let Some(python) = interpreter("/usr/bin/python3") else {
        eprintln!("interpreter: inline: skipped — no /usr/bin/python3 here");
        return;
    };
    let python_before = Untouched::of(&python);
    let mut a = Attack::setup();
    let port_file = a.port_file("inline");
    let label = "com.eve.inline";
    let plist = a.agent(
        label,
        &[
            python.to_str().unwrap(),
            "-c",
            PYTHON_SERVER,
            port_file.to_str().unwrap(),
        ],
    );
    a.start_launchd();
    let (pid, _) = a.wait_job(label, "inline");

    let d = a.start_daemon(&[]);
    assert_remediated(&a, &d, &[&plist], CONTAIN);
    // No file of eve's but the plist is this helper; its command line is
    // marked by the port file's path.
    a.assert_contained(&d, label, pid, &port_file, &[&plist]);
    assert!(!plist.exists(), "the plist is still in place");
    assert_interpreter_untouched(&a, &python, &python_before, &d.log());
}
