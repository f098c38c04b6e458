//! Where a program lives, judged in plain words: a location a person or the
//! OS chose (disclosed), or traits that make it undisclosed (docs/design.md §2,
//! criterion 4).
//!
//! Order matters and is deliberate: the OS and package-manager prefixes
//! and toolchain folders are checked first, because Homebrew's Python
//! lives in `…/Cellar/…/Python.app` and nvm's node in `~/.nvm` — a naive
//! "hidden folder" or "app not in /Applications" test would flag every
//! developer's machine. Toolchain folders and App Translocation say "a
//! person chose this", so they count only for what a person started: a
//! persistence item's program gets no such pass (`Context::persistent`).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::Policy;
use crate::model::{enclosing_bundle, translocation_bundle};

/// What the judge knows besides the path: whose homes there are, which
/// App Translocation mounts observe confirmed, and whether a persistence
/// item starts the program. A shortcut that says "a person chose this"
/// (a toolchain folder, App Translocation) holds only for what a person
/// started: persistence is not a person (docs/design.md §4, "Judge what runs,
/// not what it says about itself").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub homes: &'a [PathBuf],
    /// `<Name>.app` folders observe found on a real App Translocation
    /// (nullfs) mount.
    pub translocated: &'a BTreeSet<PathBuf>,
    /// A persistence item (launchd job, login item) starts it.
    pub persistent: bool,
}

/// Package managers whose prefix may sit in a home (`~/.linuxbrew`): as
/// much a chosen place as `/opt/homebrew`, and where `brew services`
/// programs live, so persistence does not void them the way it voids a
/// toolchain folder.
const HOME_PACKAGE_PREFIXES: &[&str] = &[".linuxbrew", ".homebrew", ".nix-profile"];

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
    /// Why a shortcut that would have disclosed it did not apply (a
    /// toolchain folder under persistence, a folder merely named
    /// `AppTranslocation`): said in the finding whatever the verdict.
    pub notes: Vec<String>,
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

/// On the sealed system volume: `/System`, `/usr` (but not `/usr/local`),
/// `/bin`, `/sbin`. Nothing there is a user's or a vendor's to hide a
/// script in.
pub(crate) fn is_sealed_os(path: &Path) -> bool {
    is_system(path)
        || (under(path, "/usr") && !under(path, "/usr/local"))
        || under(path, "/bin")
        || under(path, "/sbin")
}

/// The home directory `path` is in: the longest observed home that is a
/// prefix, else the conventional `/Users/<name>`, `/home/<name>` or root's.
pub(crate) fn home_of(path: &Path, homes: &[PathBuf]) -> Option<PathBuf> {
    if let Some(h) = homes
        .iter()
        // The prefix test first: it fails at the first differing
        // component, which for almost every home is the first one.
        .filter(|h| path.starts_with(h) && h.components().count() > 1)
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

/// A chosen place a path can be in besides the OS's.
enum Chosen {
    /// A package manager's prefix (`/opt/homebrew`, `~/.linuxbrew`).
    Package(String),
    /// A developer toolchain folder (`~/.nvm/versions`, a `.venv`).
    Toolchain(String),
}

/// A package manager's prefix or a developer toolchain folder (data:
/// `disclosed_locations`), if `path` is in one: `/opt/homebrew`,
/// `~/.nvm/versions`, `<project>/.venv`, `node_modules`.
fn chosen_place(path: &Path, policy: &Policy, homes: &[PathBuf]) -> Option<Chosen> {
    let disclosed = &policy.catalog.disclosed;
    if let Some(p) = disclosed.package_prefixes.iter().find(|p| under(path, p)) {
        return Some(Chosen::Package(p.clone()));
    }
    if let Some(home) = home_of(path, homes)
        && let Some(rel) = disclosed
            .home_toolchains
            .iter()
            .find(|rel| path.starts_with(home.join(rel)))
    {
        return Some(if HOME_PACKAGE_PREFIXES.contains(&rel.as_str()) {
            Chosen::Package(format!("~/{rel}"))
        } else {
            Chosen::Toolchain(format!("~/{rel}"))
        });
    }
    dir_names(path)
        .find(|c| disclosed.project_toolchains.iter().any(|t| t == c))
        .map(|c| Chosen::Toolchain(format!("a project's {c} folder")))
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

/// App Translocation, judged: `Ok(why)` when `path` runs from a real
/// translocation mount a person opened, `Err(note)` when its path merely
/// looks like one (or names the folder), `None` when it has nothing to do
/// with App Translocation.
fn translocation(path: &Path, ctx: &Context<'_>) -> Option<Result<String, String>> {
    let Some(bundle) = translocation_bundle(path) else {
        return dir_names(path).any(|c| c == "AppTranslocation").then(|| {
            Err(
                "a folder named AppTranslocation is in its path, but macOS runs translocated \
                 apps only from /private/var/folders/…/T/AppTranslocation/<UUID>/d/<Name>.app \
                 on a read-only mount, so the name does not disclose it"
                    .to_string(),
            )
        });
    };
    let b = bundle.display();
    Some(if ctx.persistent {
        Err(format!(
            "it runs from {b}, an App Translocation path, but a persistence item starts it: \
             App Translocation discloses only an app a person opened"
        ))
    } else if ctx.translocated.contains(&bundle) {
        Ok(format!(
            "it runs from App Translocation ({b} is a read-only translocation mount): a \
             downloaded app a person opened in Finder"
        ))
    } else {
        Err(format!(
            "its path looks like App Translocation, but {b} is not on an App Translocation \
             (nullfs) mount, so the folder names alone do not disclose it"
        ))
    })
}

/// Judge the location of an executable, persistence program or plist.
pub(crate) fn program_place(path: &Path, policy: &Policy, ctx: &Context<'_>) -> Place {
    let homes = ctx.homes;
    if is_system(path) {
        return Place {
            disclosed: Some("it is part of macOS (/System)".into()),
            ..Place::default()
        };
    }
    let mut notes = Vec::new();
    // App Translocation: Gatekeeper runs a downloaded app a person opened
    // from a random read-only folder under /private/var/folders. It is an
    // app someone chose to open, not a helper hiding in a temp folder —
    // when the mount is real and no persistence item starts it.
    match translocation(path, ctx) {
        Some(Ok(why)) => {
            return Place {
                disclosed: Some(why),
                ..Place::default()
            };
        }
        Some(Err(note)) => notes.push(note),
        None => {}
    }
    let chosen = match chosen_place(path, policy, homes) {
        Some(Chosen::Package(p)) => Some(format!(
            "it lives in {p}, a package manager's prefix the user chose"
        )),
        Some(Chosen::Toolchain(t)) if ctx.persistent => {
            notes.push(format!(
                "it lives in {t}, a developer toolchain folder, but a persistence item starts \
                 it: a toolchain folder discloses only what a person starts"
            ));
            None
        }
        Some(Chosen::Toolchain(t)) => {
            Some(format!("it lives in {t}, a developer toolchain folder"))
        }
        None => policy
            .catalog
            .disclosed
            .system_prefixes
            .iter()
            .find(|p| under(path, p))
            .map(|p| format!("it lives in {p}, an operating-system location")),
    };
    if let Some(why) = chosen {
        return Place {
            disclosed: Some(why),
            // Hidden folders are part of these layouts (`.linuxbrew`,
            // `.venv`); only a temp location still counts against them.
            undisclosed: common_traits(path, policy, homes, false),
            notes,
            ..Place::default()
        };
    }
    let mut place = Place {
        notes,
        ..Place::default()
    };
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

/// Where installers put interpreters besides the places `program_place`
/// calls chosen: framework installs (python.org's Python, Mono), which
/// only an administrator can write.
const FRAMEWORK_INSTALLS: &[&str] = &["/Library/Frameworks"];

/// Is `exe`, named like an interpreter, one that is installed where
/// interpreters are: the OS, a package manager's prefix, a toolchain
/// folder, an installed app (Xcode) or a framework install? A copy named
/// `node` in a hidden folder is not: a name is a claim, and such a copy
/// is judged as its own program, not by the script it says it runs.
pub(crate) fn interpreter_installed(exe: &Path, policy: &Policy, homes: &[PathBuf]) -> bool {
    if FRAMEWORK_INSTALLS.iter().any(|p| under(exe, p)) {
        return true;
    }
    let none = BTreeSet::new();
    let ctx = Context {
        homes,
        translocated: &none,
        persistent: false,
    };
    let place = program_place(exe, policy, &ctx);
    place.disclosed.is_some() && place.traits(false).is_empty()
}

/// Judge the location of the script an interpreter runs, which is the
/// program that matters (docs/design.md §2, criterion 2). As for a program,
/// except that "outside every installed application" does not apply: a
/// script in a project folder is ordinary, and a persistence item's own
/// "no visible app is associated" covers one that nothing claims.
pub(crate) fn script_place(path: &Path, policy: &Policy, ctx: &Context<'_>) -> Place {
    Place {
        outside_apps: None,
        ..program_place(path, policy, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn policy() -> Policy {
        Policy::new(&Config::default()).unwrap()
    }

    const TRANSLOCATED: &str = "/private/var/folders/x1/abc/T/AppTranslocation/2A2D6B24-0C1B-4F5E-9A8D-1234567890AB/d/Foo.app";

    fn homes() -> Vec<PathBuf> {
        vec![PathBuf::from("/Users/ann")]
    }

    /// Where a person-started program lives; `TRANSLOCATED` is a real
    /// translocation mount.
    fn place(p: &str) -> Place {
        place_as(p, false)
    }

    fn place_as(p: &str, persistent: bool) -> Place {
        let homes = homes();
        let translocated: BTreeSet<PathBuf> = [PathBuf::from(TRANSLOCATED)].into();
        let ctx = Context {
            homes: &homes,
            translocated: &translocated,
            persistent,
        };
        program_place(Path::new(p), &policy(), &ctx)
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
                &format!("{TRANSLOCATED}/Contents/MacOS/Foo"),
                "App Translocation",
            ),
            ("/Users/ann/.linuxbrew/bin/nginx", "package manager"),
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
        let homes = homes();
        let none = BTreeSet::new();
        let ctx = |persistent| Context {
            homes: &homes,
            translocated: &none,
            persistent,
        };
        let traits = |path: &str, persistent| {
            script_place(Path::new(path), &p, &ctx(persistent)).traits(false)
        };
        assert!(traits("/Users/ann/code/app/server.py", false).is_empty());
        assert!(traits("/Users/ann/code/app/server.py", true).is_empty());
        let t = traits("/Users/ann/.helper/server.js", false);
        assert!(t[0].contains(".helper"), "{t:?}");
        let t = traits("/Users/ann/site/node_modules/.bin/vite", false);
        assert!(
            t.is_empty(),
            "a person's node_modules/.bin is a project toolchain: {t:?}"
        );
        // Started by persistence, the toolchain folder discloses nothing:
        // its hidden `.bin` counts.
        let t = traits("/Users/ann/site/node_modules/.bin/vite", true);
        assert!(t.iter().any(|t| t.contains(".bin")), "{t:?}");
    }

    #[test]
    fn toolchain_folders_disclose_only_what_a_person_starts() {
        for path in [
            "/Users/ann/site/node_modules/acme/bin/server",
            "/Users/ann/code/site/.venv/bin/serve",
            "/Users/ann/.local/bin/helper",
            "/Users/ann/.nvm/versions/node/v20.11.0/bin/helper",
        ] {
            let person = place_as(path, false);
            assert!(
                person
                    .disclosed
                    .as_deref()
                    .is_some_and(|d| d.contains("toolchain")),
                "{path}: {person:?}"
            );
            let plist = place_as(path, true);
            assert_eq!(plist.disclosed, None, "{path}");
            assert!(!plist.traits(false).is_empty(), "{path}: {plist:?}");
            assert!(
                plist
                    .notes
                    .iter()
                    .any(|n| n.contains("a persistence item starts it")),
                "{path}: {plist:?}"
            );
        }
        // Package managers' prefixes, in a home or not, stay chosen places
        // for `brew services`.
        for path in [
            "/opt/homebrew/opt/nginx/bin/nginx",
            "/Users/ann/.linuxbrew/bin/nginx",
        ] {
            let plist = place_as(path, true);
            assert!(
                plist
                    .disclosed
                    .as_deref()
                    .is_some_and(|d| d.contains("package manager")),
                "{path}: {plist:?}"
            );
        }
    }

    #[test]
    fn app_translocation_only_on_a_real_mount_and_never_for_persistence() {
        let real = format!("{TRANSLOCATED}/Contents/MacOS/Foo");
        assert!(place(&real).disclosed.is_some());
        let started = place_as(&real, true);
        assert_eq!(started.disclosed, None);
        assert!(
            started
                .notes
                .iter()
                .any(|n| n.contains("a persistence item starts it")),
            "{started:?}"
        );
        let fakes = [
            // The right shape, but observe found no translocation mount.
            (
                "/private/var/folders/x1/abc/T/AppTranslocation/2A2D6B24-0C1B-4F5E-9A8D-FFFFFFFFFFFF/d/Foo.app/Contents/MacOS/Foo",
                "not on an App Translocation",
            ),
            // A folder merely named so.
            (
                "/Users/ann/AppTranslocation/Foo.app/Contents/MacOS/Foo",
                "named AppTranslocation",
            ),
            (
                "/Users/ann/.cache/AppTranslocation/x/d/helper",
                "named AppTranslocation",
            ),
            (
                "/tmp/AppTranslocation/2A2D6B24-0C1B-4F5E-9A8D-1234567890AB/d/Foo.app/Contents/MacOS/Foo",
                "named AppTranslocation",
            ),
        ];
        for (path, note) in fakes {
            let got = place(path);
            assert_eq!(got.disclosed, None, "{path}");
            assert!(!got.traits(false).is_empty(), "{path}: {got:?}");
            assert!(
                got.notes.iter().any(|n| n.contains(note)),
                "{path}: {got:?}"
            );
        }
    }

    #[test]
    fn interpreters_are_believed_only_where_interpreters_are_installed() {
        let p = policy();
        let homes = homes();
        for exe in [
            "/usr/bin/python3",
            "/bin/sh",
            "/usr/bin/osascript",
            "/opt/homebrew/bin/node",
            "/Users/ann/.nvm/versions/node/v20.11.0/bin/node",
            "/Library/Developer/CommandLineTools/usr/bin/python3",
            "/Library/Frameworks/Python.framework/Versions/3.12/bin/python3.12",
            "/Applications/Xcode.app/Contents/Developer/usr/bin/python3",
        ] {
            assert!(interpreter_installed(Path::new(exe), &p, &homes), "{exe}");
        }
        for exe in [
            "/Users/ann/.hidden/node",
            "/tmp/python3",
            "/Users/ann/Library/Application Support/Vendor/node",
            "/Users/Shared/perl",
        ] {
            assert!(!interpreter_installed(Path::new(exe), &p, &homes), "{exe}");
        }
    }
}
