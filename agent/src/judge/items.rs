//! What a persistence item tells about itself, before anything it starts
//! is looked at: which app claims it (`AssociatedBundleIdentifiers`, a BTM
//! parent, a plist shipped inside an app), whether that app is still
//! installed, where its program (and an interpreter's script) lives, and
//! whether the program exists at all.
//!
//! Sets observe could not fill are treated as unknown, not as "nothing":
//! with no installed apps observed, an item naming its app is assumed to
//! belong to an installed one; with no existing paths observed, no program
//! is assumed missing. A failed observation must not create findings.

use super::heuristics::{self, Code};
use super::locate::{self, Context, Place};
use super::{Observations, Policy};
use crate::model::{PersistenceItem, PersistenceKind, enclosing_bundle};

/// What a persistence item tells about itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemFacts {
    /// Why it is associated with something a person chose.
    pub disclosed: Vec<String>,
    /// Its app is gone, or no visible app is associated with it.
    pub association_traits: Vec<String>,
    /// An installed app claims it (bundle ids, plist inside the app).
    pub claimed_by_app: bool,
    /// Where the program that is judged lives: its program, or for an
    /// interpreter the script it runs, or for inline code the plist.
    pub place: Option<Place>,
    /// That program in words, to prefix its traits: `its program`.
    pub judged: String,
    /// Plain words about what is judged and why (the interpreter is not).
    pub notes: Vec<String>,
    /// Its program does not exist (or it names none).
    pub program_missing: Option<String>,
    /// The file judged as its program (`Finding::judged_path`).
    pub judged_path: Option<std::path::PathBuf>,
}

impl ItemFacts {
    pub(crate) fn traits(&self) -> Vec<String> {
        let mut t = self.association_traits.clone();
        if let Some(place) = &self.place {
            t.extend(
                place
                    .traits(self.claimed_by_app)
                    .into_iter()
                    .map(|t| format!("{}: {t}", self.judged)),
            );
        }
        t
    }
}

/// Known not to exist: observe checked paths and this one is not among
/// them (nor anything under it: a login item may name its bundle while
/// observe recorded the executable inside).
fn known_missing(path: &std::path::Path, obs: &Observations) -> bool {
    !obs.existing_paths.is_empty() && !obs.existing_paths.iter().any(|e| e.starts_with(path))
}

pub(crate) fn item_facts(item: &PersistenceItem, policy: &Policy, obs: &Observations) -> ItemFacts {
    let mut f = ItemFacts::default();
    let mut ids: Vec<&str> = item
        .associated_bundle_ids
        .iter()
        .map(String::as_str)
        .chain(item.parent_identifier.as_deref())
        .map(super::subject::strip_btm_type)
        .filter(|s| !s.is_empty())
        .collect();
    ids.dedup();
    if !ids.is_empty() {
        let listed = ids.join(", ");
        if obs.installed_bundle_ids.is_empty() {
            f.disclosed.push(format!(
                "it belongs to {listed}; installed apps were not observed, so lenscap assumes \
                 that app is installed"
            ));
            f.claimed_by_app = true;
        } else if let Some(id) = ids.iter().find(|id| {
            obs.installed_bundle_ids
                .iter()
                .any(|i| i.eq_ignore_ascii_case(id))
        }) {
            f.disclosed
                .push(format!("it belongs to the installed app {id}"));
            f.claimed_by_app = true;
        } else {
            f.association_traits.push(format!(
                "the app it belongs to ({listed}) is not installed: it outlived its app"
            ));
        }
    }
    if let Some(bundle) = enclosing_bundle(&item.path)
        && let Some(dir) = policy.application_dirs.containing(&bundle)
    {
        f.disclosed.push(format!(
            "its definition ships inside {}, installed in {dir}",
            bundle.display()
        ));
        f.claimed_by_app = true;
    }
    match item.program.as_deref() {
        None => f.program_missing = Some("it names no program".into()),
        Some(program) => {
            if known_missing(program, obs) {
                f.program_missing =
                    Some(format!("its program {} does not exist", program.display()));
            }
            // What an item starts runs by itself: toolchain folders and
            // App Translocation do not disclose it.
            let ctx = Context {
                homes: &obs.home_dirs,
                translocated: &obs.translocated,
                persistent: true,
            };
            let (code, named) = heuristics::code_of(program, &item.args, policy, &obs.home_dirs);
            f.notes.extend(named);
            let plist =
                Some(item.path.as_path()).filter(|_| item.kind != PersistenceKind::LoginItem);
            f.judged_path = heuristics::judged_path(Some(program), code, plist);
            let place = match code {
                Code::Own => {
                    f.judged = "its program".into();
                    locate::program_place(program, policy, &ctx)
                }
                Code::Script(script) => {
                    f.judged = format!("the script {} it runs", script.display());
                    f.notes.push(format!(
                        "its program {} is an interpreter: the script {} is what runs, so the \
                         script is judged, not the interpreter",
                        program.display(),
                        script.display()
                    ));
                    if f.program_missing.is_none() && known_missing(script, obs) {
                        f.program_missing = Some(format!(
                            "the script it runs, {}, does not exist",
                            script.display()
                        ));
                    }
                    locate::script_place(script, policy, &ctx)
                }
                Code::Inline if plist.is_none() => {
                    // A login item has no plist to hold inline code: the
                    // interpreter's location is all there is (never moved).
                    f.judged = "its program".into();
                    locate::program_place(program, policy, &ctx)
                }
                Code::Inline => {
                    f.judged = "its plist".into();
                    let owner = item
                        .owner_uid
                        .map_or_else(String::new, |u| format!(", owned by uid {u}"));
                    f.notes.push(format!(
                        "its program {} is an interpreter handed code in the item itself, not a \
                         script file: what runs is written in {}{owner}, so that is what is \
                         judged, not the interpreter",
                        program.display(),
                        item.path.display()
                    ));
                    locate::program_place(&item.path, policy, &ctx)
                }
            };
            if let Some(why) = &place.disclosed {
                let brew = item
                    .label
                    .as_deref()
                    .is_some_and(|l| l.starts_with("homebrew.mxcl."));
                if brew {
                    f.disclosed
                        .push("it is a Homebrew service: someone ran `brew services start`".into());
                }
                f.disclosed.push(format!("{}: {why}", f.judged));
            }
            f.notes.extend(place.notes.iter().cloned());
            f.place = Some(place);
        }
    }
    let place_disclosed = f.place.as_ref().is_some_and(|p| p.disclosed.is_some());
    if ids.is_empty() && !f.claimed_by_app && !place_disclosed {
        f.association_traits.push(
            "no visible app is associated with it (no AssociatedBundleIdentifiers or parent \
             app, and its program is not inside an installed app)"
                .into(),
        );
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::testkit::*;

    fn facts(item: &PersistenceItem, obs: &Observations) -> ItemFacts {
        item_facts(item, &policy(), obs)
    }

    #[test]
    fn privileged_helper_claimed_by_an_installed_app_is_disclosed() {
        let mut item = launch_agent(
            "/Library/LaunchDaemons/com.docker.vmnetd.plist",
            "com.docker.vmnetd",
            "/Library/PrivilegedHelperTools/com.docker.vmnetd",
        );
        item.associated_bundle_ids = vec!["com.docker.docker".into()];
        let mut obs = observations();
        obs.installed_bundle_ids.insert("com.docker.docker".into());
        let f = facts(&item, &obs);
        assert!(f.claimed_by_app);
        assert!(f.traits().is_empty(), "{:?}", f.traits());

        // The app is gone: the helper outlived it.
        let f = facts(&item, &observations());
        let traits = f.traits().join(" | ");
        assert!(
            traits.contains("(com.docker.docker) is not installed"),
            "{traits}"
        );
        assert!(
            traits.contains("outside every installed application"),
            "{traits}"
        );

        // Installed apps not observed at all: assume installed, say so.
        let mut obs = observations();
        obs.installed_bundle_ids.clear();
        let f = facts(&item, &obs);
        assert!(f.traits().is_empty());
        assert!(f.disclosed[0].contains("were not observed"));
    }

    #[test]
    fn btm_parent_and_plist_inside_an_app_claim_the_item() {
        let mut item = login_item(
            "keepresso-helper",
            "/Applications/Keepresso.app/Contents/Library/LaunchDaemons/sh.gyorgy.keepresso.helper.plist",
            "/Applications/Keepresso.app/Contents/MacOS/keepresso-helper",
        );
        item.parent_identifier = Some("2.sh.gyorgy.keepresso".into());
        let mut obs = observations();
        obs.installed_bundle_ids
            .insert("sh.gyorgy.keepresso".into());
        let f = facts(&item, &obs);
        assert!(f.claimed_by_app && f.traits().is_empty(), "{f:?}");
        assert!(
            f.disclosed
                .iter()
                .any(|d| d.contains("installed app sh.gyorgy.keepresso"))
        );
        assert!(
            f.disclosed
                .iter()
                .any(|d| d.contains("ships inside /Applications/Keepresso.app"))
        );
    }

    #[test]
    fn unassociated_and_missing_programs() {
        let item = launch_agent(
            &home("Library/LaunchAgents/com.x.plist"),
            "com.x",
            &home(".x/agent"),
        );
        let f = facts(&item, &observations());
        let traits = f.traits().join(" | ");
        assert!(traits.contains("no visible app is associated"), "{traits}");
        assert!(traits.contains("hidden folder .x"), "{traits}");
        assert_eq!(
            f.program_missing, None,
            "nothing observed: not assumed missing"
        );

        let mut obs = observations();
        obs.existing_paths.insert("/elsewhere".into());
        assert!(facts(&item, &obs).program_missing.is_some());
        obs.existing_paths.insert(home(".x/agent").into());
        assert!(facts(&item, &obs).program_missing.is_none());

        let mut no_program = item.clone();
        no_program.program = None;
        assert!(facts(&no_program, &obs).program_missing.is_some());
    }

    #[test]
    fn homebrew_service_and_interpreter_script() {
        let f = facts(&brew_nginx_agent(), &observations());
        assert!(f.traits().is_empty(), "{:?}", f.traits());
        assert!(f.disclosed[0].contains("Homebrew service"));

        let mut item = launch_agent(
            &home("Library/LaunchAgents/com.sync.plist"),
            "com.sync",
            "/opt/homebrew/bin/python3",
        );
        item.args = vec!["/opt/homebrew/bin/python3".into(), home(".sync/server.py")];
        let traits = facts(&item, &observations()).traits().join(" | ");
        assert!(
            traits.contains("the script /Users/ann/.sync/server.py"),
            "{traits}"
        );
    }
}
