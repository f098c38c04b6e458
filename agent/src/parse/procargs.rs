//! The `sysctl({CTL_KERN, KERN_PROCARGS2, pid})` buffer: a process's
//! executable path and arguments, as the kernel copies them out of the
//! process's own stack.
//!
//! Layout (XNU `bsd/kern/kern_sysctl.c`, `sysctl_procargsx`; the same walk
//! `ps` and Activity Monitor do):
//!
//! ```text
//! int argc                      host byte order
//! exec_path "\0"                path the program was executed as
//! "\0"…                         padding to a word boundary
//! argv[0] "\0" … argv[argc-1] "\0"
//! envp[0] "\0" …                (not returned: environments hold secrets)
//! ```
//!
//! The bytes live in memory the process can write, so nothing here is
//! believed beyond its shape: `argc` only bounds how many strings are read,
//! never an index, and a buffer that ends early yields the arguments that
//! were there. An empty `argv[0]` is indistinguishable from padding; like
//! `ps`, we skip it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcArgsError {
    #[error(
        "KERN_PROCARGS2 buffer of {len} bytes is too short to hold argc; the process may have exited"
    )]
    TooShort { len: usize },
    #[error("KERN_PROCARGS2 argc is {argc}; the buffer is not a procargs2 layout")]
    NegativeArgc { argc: i32 },
    #[error("KERN_PROCARGS2 buffer has no executable path after argc")]
    NoExecPath,
}

/// What [`parse_procargs2`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcArgs {
    pub exec_path: PathBuf,
    /// `argv`, lossily decoded as UTF-8; at most `argc` entries.
    pub args: Vec<String>,
}

/// Parse a `KERN_PROCARGS2` buffer (only the bytes sysctl reported).
pub fn parse_procargs2(buf: &[u8]) -> Result<ProcArgs, ProcArgsError> {
    let Some((head, rest)) = buf.split_first_chunk::<4>() else {
        return Err(ProcArgsError::TooShort { len: buf.len() });
    };
    let argc = i32::from_ne_bytes(*head);
    let argc = usize::try_from(argc).map_err(|_| ProcArgsError::NegativeArgc { argc })?;

    let path_end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    if path_end == 0 {
        return Err(ProcArgsError::NoExecPath);
    }
    let exec_path = PathBuf::from(OsStr::from_bytes(&rest[..path_end]));

    let mut pos = path_end;
    while rest.get(pos) == Some(&0) {
        pos += 1;
    }
    let mut args = Vec::new();
    while args.len() < argc && pos < rest.len() {
        let tail = &rest[pos..];
        let len = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        args.push(String::from_utf8_lossy(&tail[..len]).into_owned());
        pos += len + 1;
    }
    Ok(ProcArgs { exec_path, args })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Build a buffer the way the kernel lays it out, with `pad` NULs after
    /// the exec path and an environment after argv.
    fn procargs(argc: i32, exec: &str, pad: usize, argv: &[&str], env: &[&str]) -> Vec<u8> {
        let mut b = argc.to_ne_bytes().to_vec();
        b.extend_from_slice(exec.as_bytes());
        b.push(0);
        b.extend(std::iter::repeat_n(0u8, pad));
        for s in argv.iter().chain(env) {
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        }
        b.push(0);
        b.extend_from_slice(b"ptr_munge=\0main_stack=\0");
        b
    }

    #[test]
    fn zoom_opener_style() {
        // Shape of `ps -E`-style data for a login-item helper.
        let buf = procargs(
            2,
            "/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener",
            5,
            &[
                "/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener",
                "-psn_0_12345",
            ],
            &["HOME=/Users/a", "TOKEN=secret"],
        );
        let got = parse_procargs2(&buf).unwrap();
        assert_eq!(
            got.exec_path,
            PathBuf::from("/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener")
        );
        assert_eq!(got.args.len(), 2);
        assert_eq!(got.args[1], "-psn_0_12345");
        assert!(!got.args.iter().any(|a| a.contains("secret")));
    }

    #[test]
    fn exec_path_may_differ_from_argv0() {
        let buf = procargs(
            3,
            "/usr/bin/python3",
            0,
            &["python3", "-m", "http.server"],
            &[],
        );
        let got = parse_procargs2(&buf).unwrap();
        assert_eq!(got.exec_path, PathBuf::from("/usr/bin/python3"));
        assert_eq!(got.args, vec!["python3", "-m", "http.server"]);
    }

    #[test]
    fn truncated_and_zero_argc() {
        let mut buf = procargs(4, "/bin/sleep", 2, &["sleep", "100"], &[]);
        buf.truncate(4 + "/bin/sleep".len() + 1 + 2 + "sleep\0".len() + 2);
        let got = parse_procargs2(&buf).unwrap();
        assert_eq!(got.args, vec!["sleep", "10"]);
        let none = parse_procargs2(&procargs(0, "/sbin/launchd", 3, &[], &["A=b"])).unwrap();
        assert!(none.args.is_empty());
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse_procargs2(&[1, 0]),
            Err(ProcArgsError::TooShort { len: 2 })
        );
        assert_eq!(
            parse_procargs2(&procargs(-1, "/x", 0, &[], &[])),
            Err(ProcArgsError::NegativeArgc { argc: -1 })
        );
        let mut empty_path = 1i32.to_ne_bytes().to_vec();
        empty_path.extend_from_slice(b"\0\0arg\0");
        assert_eq!(parse_procargs2(&empty_path), Err(ProcArgsError::NoExecPath));
        assert_eq!(
            parse_procargs2(&1i32.to_ne_bytes()),
            Err(ProcArgsError::NoExecPath)
        );
    }

    #[test]
    fn non_utf8_is_lossy_not_fatal() {
        let mut buf = 1i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/tmp/\xff\0\0a\xffb\0");
        let got = parse_procargs2(&buf).unwrap();
        assert_eq!(got.exec_path.as_os_str().as_bytes(), b"/tmp/\xff");
        assert_eq!(got.args, vec!["a\u{fffd}b"]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(p) = parse_procargs2(&buf) {
                let argc = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
                prop_assert!(p.args.len() <= usize::try_from(argc).unwrap_or(0));
            }
        }

        #[test]
        fn round_trip(
            exec in "/[a-zA-Z0-9/._-]{1,40}",
            pad in 0usize..8,
            argv in proptest::collection::vec("[a-zA-Z0-9=._-]{1,12}", 0..6),
        ) {
            let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
            let argc = i32::try_from(argv.len()).unwrap();
            let got = parse_procargs2(&procargs(argc, &exec, pad, &refs, &["X=1"])).unwrap();
            prop_assert_eq!(got.exec_path, PathBuf::from(&exec));
            prop_assert_eq!(got.args, argv);
        }
    }
}
