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

use super::heuristics::script_arg;
use super::locate::{self, Place};
use super::{Observations, Policy};
use crate::model::{PersistenceItem, enclosing_bundle};

/// What is known about a persistence item on its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemFacts {
    /// Why it is associated with something a person chose.
    pub disclosed: Vec<String>,
    /// Its app is gone, or no visible app is associated with it.
    pub association_traits: Vec<String>,
    /// An installed app claims it (bundle ids, plist inside the app).
    pub claimed_by_app: bool,
    /// Where its program lives.
    pub place: Option<Place>,
    /// Traits of the script its interpreter runs.
    pub script_traits: Vec<String>,
    /// Its program does not exist (or it names none).
    pub program_missing: Option<String>,
}

impl ItemFacts {
    pub(crate) fn traits(&self) -> Vec<String> {
        let mut t = self.association_traits.clone();
        if let Some(place) = &self.place {
            t.extend(
                place
                    .traits(self.claimed_by_app)
                    .into_iter()
                    .map(|t| format!("its program: {t}")),
            );
        }
        t.extend(self.script_traits.iter().cloned());
        t
    }
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
            let known_missing =
                !obs.existing_paths.is_empty() && !obs.existing_paths.contains(program);
            if known_missing {
                f.program_missing =
                    Some(format!("its program {} does not exist", program.display()));
            }
            let place = locate::program_place(program, policy, &obs.home_dirs);
            if let Some(why) = &place.disclosed {
                let brew = item
                    .label
                    .as_deref()
                    .is_some_and(|l| l.starts_with("homebrew.mxcl."));
                if brew {
                    f.disclosed
                        .push("it is a Homebrew service: someone ran `brew services start`".into());
                }
                f.disclosed.push(why.clone());
            }
            if let Some(script) = script_arg(program, &item.args) {
                f.script_traits = locate::script_traits(script, policy, &obs.home_dirs);
            }
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
