//! Where a program lives, judged in plain words: a location a person or the
//! OS chose (disclosed), or traits that make it undisclosed (DESIGN.md §2,
//! criterion 4).
//!
//! Order matters and is deliberate: the OS and package-manager prefixes
//! and toolchain folders are checked first, because Homebrew's Python
//! lives in `…/Cellar/…/Python.app` and nvm's node in `~/.nvm` — a naive
//! "hidden folder" or "app not in /Applications" test would flag every
//! developer's machine.

use std::path::{Component, Path, PathBuf};

use super::Policy;
use crate::model::enclosing_bundle;

/// The verdict on one path's location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Place {
    /// Why the location is one a person or the OS chose.
    pub disclosed: Option<String>,
    /// "Outside every installed app": kept apart because an item that
    /// declares an installed app (`AssociatedBundleIdentifiers`, a BTM
    /// parent) is shown under that app by macOS, which discloses it even
    /// from `/Library/PrivilegedHelperTools`.
    pub outside_apps: Option<String>,
    /// Other traits that make it undisclosed (hidden, temp, Application
    /// Support), each a reason.
    pub undisclosed: Vec<String>,
}

impl Place {
    /// Every undisclosed trait; `outside_apps` only when no installed app
    /// claims the program.
    pub(crate) fn traits(&self, claimed_by_app: bool) -> Vec<String> {
        let outside = self.outside_apps.iter().filter(|_| !claimed_by_app);
        outside.chain(self.undisclosed.iter()).cloned().collect()
    }
}

/// `path` is `prefix` or below it, compared component by component
/// (`/Systemx` is not under `/System`).
pub(crate) fn under(path: &Path, prefix: &str) -> bool {
    path.starts_with(prefix)
}

/// Under `/System`: sealed macOS, never acted on.
pub(crate) fn is_system(path: &Path) -> bool {
    under(path, "/System")
}

/// The home directory `path` is in: the longest observed home that is a
/// prefix, else the conventional `/Users/<name>`, `/home/<name>` or root's.
pub(crate) fn home_of(path: &Path, homes: &[PathBuf]) -> Option<PathBuf> {
    if let Some(h) = homes
        .iter()
        .filter(|h| h.components().count() > 1 && path.starts_with(h))
        .max_by_key(|h| h.components().count())
    {
        return Some(h.clone());
    }
    for root in ["/var/root", "/private/var/root", "/root"] {
        if path.starts_with(root) {
            return Some(PathBuf::from(root));
        }
    }
    let mut parts = path.components();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Component::RootDir), Some(Component::Normal(top)), Some(Component::Normal(user)))
            if (top == "Users" && user != "Shared") || top == "home" =>
        {
            Some(Path::new("/").join(top).join(user))
        }
        _ => None,
    }
}

/// A developer toolchain folder (data: `disclosed_locations`), if `path`
/// is in one: `~/.nvm/versions`, `<project>/.venv`, `node_modules`.
fn toolchain(path: &Path, policy: &Policy, homes: &[PathBuf]) -> Option<String> {
    let disclosed = &policy.catalog.disclosed;
    if let Some(home) = home_of(path, homes)
        && let Some(rel) = disclosed
            .home_toolchains
            .iter()
            .find(|rel| path.starts_with(home.join(rel)))
    {
        return Some(format!("~/{rel}"));
    }
    dir_names(path)
        .find(|c| disclosed.project_toolchains.iter().any(|t| t == c))
        .map(|c| format!("a project's {c} folder"))
}

/// Directory components (all but the last), as text.
fn dir_names(path: &Path) -> impl Iterator<Item = &str> {
    let n = path.components().count();
    path.components()
        .take(n.saturating_sub(1))
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
}

/// Hidden folders in the directory chain, each as a reason.
fn hidden_traits(path: &Path) -> Vec<String> {
    dir_names(path)
        .filter(|c| c.starts_with('.') && c.len() > 1)
        .map(|c| {
            if c == ".Trash" {
                "it is in the Trash (.Trash): the app it came with was thrown away".to_string()
            } else {
                format!("it lives in the hidden folder {c}")
            }
        })
        .collect()
}

/// Traits that hold wherever the program is (temp, home Application
/// Support outside a bundle, hidden folders).
fn common_traits(path: &Path, policy: &Policy, homes: &[PathBuf], hidden: bool) -> Vec<String> {
    let mut traits = Vec::new();
    if let Some(t) = policy.temp_dirs.containing(path) {
        traits.push(format!(
            "it lives in the temporary location {t} (TempDirs), which any user can write"
        ));
    }
    if enclosing_bundle(path).is_none()
        && let Some(home) = home_of(path, homes)
        && path.starts_with(home.join("Library/Application Support"))
    {
        traits.push(format!(
            "it lives in {}/Library/Application Support outside any app bundle",
            home.display()
        ));
    }
    if hidden {
        traits.extend(hidden_traits(path));
    }
    traits
}

/// Judge the location of an executable or persistence program.
pub(crate) fn program_place(path: &Path, policy: &Policy, homes: &[PathBuf]) -> Place {
    let disclosed_list = &policy.catalog.disclosed;
    if is_system(path) {
        return Place {
            disclosed: Some("it is part of macOS (/System)".into()),
            ..Place::default()
        };
    }
    // App Translocation: Gatekeeper runs a downloaded app a person opened
    // from a random read-only folder under /private/var/folders. It is an
    // app someone chose to open, not a helper hiding in a temp folder.
    if dir_names(path).any(|c| c == "AppTranslocation") {
        return Place {
            disclosed: Some(
                "it runs from App Translocation: a downloaded app a person opened in Finder".into(),
            ),
            ..Place::default()
        };
    }
    let chosen = if let Some(p) = disclosed_list
        .package_prefixes
        .iter()
        .find(|p| under(path, p))
    {
        Some(format!(
            "it lives in {p}, a package manager's prefix the user chose"
        ))
    } else if let Some(t) = toolchain(path, policy, homes) {
        Some(format!("it lives in {t}, a developer toolchain folder"))
    } else {
        disclosed_list
            .system_prefixes
            .iter()
            .find(|p| under(path, p))
            .map(|p| format!("it lives in {p}, an operating-system location"))
    };
    if let Some(why) = chosen {
        return Place {
            disclosed: Some(why),
            // Hidden folders are part of these layouts (`.linuxbrew`,
            // `.venv`); only a temp location still counts against them.
            undisclosed: common_traits(path, policy, homes, false),
            ..Place::default()
        };
    }
    let mut place = Place::default();
    match enclosing_bundle(path) {
        Some(bundle) => match policy.application_dirs.containing(&bundle) {
            Some(dir) => {
                place.disclosed = Some(format!(
                    "it is inside {}, an app installed in {dir}",
                    bundle.display()
                ));
            }
            None => {
                place.outside_apps = Some(format!(
                    "it is inside {}, which is not installed in an application folder \
                     (ApplicationDirs: {})",
                    bundle.display(),
                    policy.application_dirs.describe()
                ));
            }
        },
        None => match policy.application_dirs.containing(path) {
            Some(dir) => {
                place.disclosed = Some(format!("it lives in the application folder {dir}"))
            }
            None => {
                place.outside_apps = Some(
                    "it lives outside every installed application, package-manager prefix \
                     and OS location"
                        .into(),
                );
            }
        },
    }
    place
        .undisclosed
        .extend(common_traits(path, policy, homes, true));
    if place.disclosed.is_some() && !place.traits(false).is_empty() {
        // An installed app with a hidden folder inside it, say: the traits win.
        place.disclosed = None;
    }
    place
}

/// Judge the script an interpreter runs. Only the traits that mark a
/// hiding place count: a script in a project folder is ordinary, so
/// "outside every installed application" does not apply to scripts.
pub(crate) fn script_traits(path: &Path, policy: &Policy, homes: &[PathBuf]) -> Vec<String> {
    let in_chosen_place = policy
        .catalog
        .disclosed
        .package_prefixes
        .iter()
        .any(|p| under(path, p))
        || toolchain(path, policy, homes).is_some();
    common_traits(path, policy, homes, !in_chosen_place)
        .into_iter()
        .map(|t| format!("the script {} runs: {t}", path.display()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn policy() -> Policy {
        Policy::new(&Config::default()).unwrap()
    }

    fn place(p: &str) -> Place {
        program_place(Path::new(p), &policy(), &[PathBuf::from("/Users/ann")])
    }

    #[test]
    fn disclosed_locations() {
        let table = [
            (
                "/System/Library/CoreServices/ControlCenter.app/Contents/MacOS/ControlCenter",
                "macOS",
            ),
            ("/usr/libexec/rapportd", "operating-system"),
            ("/opt/homebrew/opt/nginx/bin/nginx", "package manager"),
            (
                "/opt/homebrew/Cellar/python@3.12/3.12.1/Frameworks/Python.framework/Versions/3.12/Resources/Python.app/Contents/MacOS/Python",
                "package manager",
            ),
            ("/usr/local/bin/redis-server", "package manager"),
            ("/nix/store/abc-node-20/bin/node", "package manager"),
            ("/home/linuxbrew/.linuxbrew/bin/nginx", "package manager"),
            (
                "/Users/ann/.nvm/versions/node/v20.11.0/bin/node",
                "toolchain",
            ),
            ("/Users/ann/code/site/.venv/bin/python3", "toolchain"),
            (
                "/Applications/Dropbox.app/Contents/MacOS/Dropbox",
                "installed in /Applications",
            ),
            (
                "/Applications/Discord.app/Contents/Frameworks/Discord Helper.app/Contents/MacOS/Discord Helper",
                "Discord.app, an app installed",
            ),
            (
                "/Users/ann/Applications/Tool.app/Contents/MacOS/Tool",
                "installed in /Users/*/Applications",
            ),
            (
                "/Users/ann/Library/Application Support/JetBrains/Toolbox/apps/IDEA-U/ch-0/241.1/IntelliJ IDEA.app/Contents/MacOS/idea",
                "toolchain",
            ),
            (
                "/private/var/folders/x1/abc/T/AppTranslocation/1234/d/Foo.app/Contents/MacOS/Foo",
                "App Translocation",
            ),
        ];
        for (path, want) in table {
            let got = place(path);
            assert!(got.traits(false).is_empty(), "{path}: {:?}", got);
            let why = got.disclosed.unwrap_or_default();
            assert!(why.contains(want), "{path}: {why}");
        }
    }

    #[test]
    fn undisclosed_locations() {
        let table = [
            (
                "/Users/ann/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener",
                "hidden folder .zoomus",
            ),
            (
                "/Users/ann/.Trash/zoom.us.app/Contents/MacOS/zoom.us",
                "Trash",
            ),
            ("/tmp/x/helper", "temporary location /tmp"),
            (
                "/private/var/folders/x1/abc/T/helper",
                "/private/var/folders",
            ),
            (
                "/Users/ann/Library/Application Support/Vendor/helper",
                "Application Support",
            ),
            (
                "/Users/ann/Downloads/Foo.app/Contents/MacOS/Foo",
                "not installed",
            ),
            (
                "/Library/PrivilegedHelperTools/com.vendor.helper",
                "outside every installed",
            ),
            (
                "/Applications/Foo.app/Contents/.cache/helper",
                "hidden folder .cache",
            ),
        ];
        for (path, want) in table {
            let got = place(path);
            assert!(got.disclosed.is_none(), "{path}: {:?}", got.disclosed);
            assert!(
                got.traits(false).iter().any(|t| t.contains(want)),
                "{path}: {:?}",
                got
            );
        }
    }

    #[test]
    fn homes_are_found_with_or_without_observed_homes() {
        let homes = [PathBuf::from("/Volumes/Data/Users/bob")];
        assert_eq!(
            home_of(Path::new("/Volumes/Data/Users/bob/.x/y"), &homes),
            Some(PathBuf::from("/Volumes/Data/Users/bob"))
        );
        assert_eq!(
            home_of(Path::new("/Users/ann/.x/y"), &[]),
            Some(PathBuf::from("/Users/ann"))
        );
        assert_eq!(home_of(Path::new("/Users/Shared/x"), &[]), None);
        assert_eq!(
            home_of(Path::new("/home/u/x"), &[]),
            Some(PathBuf::from("/home/u"))
        );
        assert_eq!(home_of(Path::new("/opt/x"), &[]), None);
        assert!(!is_system(Path::new("/SystemX/a")));
        assert!(is_system(Path::new("/System/Library/x")));
    }

    #[test]
    fn scripts_count_only_hiding_places() {
        let p = policy();
        let homes = [PathBuf::from("/Users/ann")];
        let t = script_traits(Path::new("/Users/ann/code/app/server.py"), &p, &homes);
        assert!(t.is_empty(), "{t:?}");
        let t = script_traits(Path::new("/Users/ann/.helper/server.js"), &p, &homes);
        assert!(t[0].contains(".helper"), "{t:?}");
        let t = script_traits(
            Path::new("/Users/ann/site/node_modules/.bin/vite"),
            &p,
            &homes,
        );
        assert!(
            t.is_empty(),
            "node_modules/.bin is a project toolchain: {t:?}"
        );
    }
}
