//! Facts read from a path's shape alone: what a program runs (its own
//! code, a script, inline code), its enclosing app bundle, an App
//! Translocation mount's bundle, and the system trees no plan moves.

use std::path::{Path, PathBuf};

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
}
