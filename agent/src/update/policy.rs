//! Whether this Mac may update itself: a pure function of the loaded
//! configuration and where each key came from.
//!
//! A fleet whose configuration comes from an MDM gets new versions as pkgs
//! from that MDM; a copy that replaced itself behind the MDM's back would
//! drift from what the admin deployed (and from the PPPC grant, which is
//! tied to the signed binary the admin approved). So when any key's value
//! comes from the managed preferences file, updates are off unless the
//! profile itself sets `AutoUpdate` to true. A local `AutoUpdate` does not
//! count there: an admin on the Mac cannot override the MDM.
//!
//! Without an MDM, `lenscap update --apply` (run by an administrator) is
//! allowed, and the daemon updates itself only when `AutoUpdate` is true.
//!
//! A managed preferences file that exists but sets no lenscap key leaves
//! every origin at its default, so it is not seen as MDM configuration:
//! an MDM that manages lenscap sends at least `Mode`.

use std::path::PathBuf;

use crate::config::{Loaded, Origin};

/// What the configuration allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// No MDM configuration: an administrator may update by hand; the
    /// daemon updates itself only with `AutoUpdate`.
    Unmanaged { automatic: bool },
    /// The MDM profile sets `AutoUpdate` to true.
    ManagedAllowed { path: PathBuf },
    /// Configuration comes from the MDM and its profile does not set
    /// `AutoUpdate` to true: updates come only as pkgs from the MDM.
    ManagedDisabled { path: PathBuf },
}

impl Permission {
    /// May `lenscap update --apply` replace the binary?
    pub fn manual(&self) -> bool {
        !matches!(self, Permission::ManagedDisabled { .. })
    }

    /// May the daemon check for and apply updates by itself?
    pub fn automatic(&self) -> bool {
        match self {
            Permission::Unmanaged { automatic } => *automatic,
            Permission::ManagedAllowed { .. } => true,
            Permission::ManagedDisabled { .. } => false,
        }
    }
}

/// The update permission of `loaded`. Pure: reads only `loaded`.
pub fn permission(loaded: &Loaded) -> Permission {
    let managed_path = loaded.origins.values().find_map(|origin| match origin {
        Origin::Managed(path) => Some(path.clone()),
        _ => None,
    });
    match managed_path {
        None => Permission::Unmanaged {
            automatic: loaded.config.auto_update,
        },
        Some(path) => {
            let set_by_mdm = matches!(loaded.origins.get("AutoUpdate"), Some(Origin::Managed(_)));
            if set_by_mdm && loaded.config.auto_update {
                Permission::ManagedAllowed { path }
            } else {
                Permission::ManagedDisabled { path }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::config::{Config, KEYS};

    const MANAGED: &str = "/Library/Managed Preferences/io.lenscap.agent.plist";
    const LOCAL: &str = "/Library/Preferences/io.lenscap.agent.plist";

    /// A `Loaded` with `auto_update` and the given keys' origins; every
    /// other key is a default.
    fn loaded(auto_update: bool, origins: &[(&'static str, Origin)]) -> Loaded {
        let mut map: BTreeMap<&'static str, Origin> =
            KEYS.iter().map(|k| (*k, Origin::Default)).collect();
        for (key, origin) in origins {
            map.insert(key, origin.clone());
        }
        Loaded {
            config: Config {
                auto_update,
                ..Config::default()
            },
            origins: map,
            warnings: Vec::new(),
        }
    }

    fn managed() -> Origin {
        Origin::Managed(PathBuf::from(MANAGED))
    }

    fn local() -> Origin {
        Origin::Local(PathBuf::from(LOCAL))
    }

    #[test]
    fn defaults_allow_manual_but_not_automatic() {
        let p = permission(&loaded(false, &[]));
        assert_eq!(p, Permission::Unmanaged { automatic: false });
        assert!(p.manual() && !p.automatic());
    }

    #[test]
    fn local_auto_update_turns_on_automatic_without_mdm() {
        let p = permission(&loaded(true, &[("AutoUpdate", local())]));
        assert!(p.manual() && p.automatic());
        // --config FILE is not MDM either.
        let file = Origin::File(PathBuf::from("/tmp/c.plist"));
        let p = permission(&loaded(
            true,
            &[("AutoUpdate", file.clone()), ("Mode", file)],
        ));
        assert_eq!(p, Permission::Unmanaged { automatic: true });
    }

    #[test]
    fn any_managed_key_disables_updates() {
        let p = permission(&loaded(false, &[("Mode", managed())]));
        assert_eq!(
            p,
            Permission::ManagedDisabled {
                path: PathBuf::from(MANAGED)
            }
        );
        assert!(!p.manual() && !p.automatic());
    }

    #[test]
    fn a_local_auto_update_cannot_override_the_mdm() {
        let p = permission(&loaded(
            true,
            &[("Mode", managed()), ("AutoUpdate", local())],
        ));
        assert!(matches!(p, Permission::ManagedDisabled { .. }), "{p:?}");
    }

    #[test]
    fn managed_auto_update_false_stays_disabled() {
        // The shipped profile sets every key to its default, AutoUpdate false.
        let p = permission(&loaded(false, &[("AutoUpdate", managed())]));
        assert!(matches!(p, Permission::ManagedDisabled { .. }), "{p:?}");
    }

    #[test]
    fn managed_auto_update_true_allows_both() {
        let p = permission(&loaded(
            true,
            &[("AutoUpdate", managed()), ("Mode", managed())],
        ));
        assert_eq!(
            p,
            Permission::ManagedAllowed {
                path: PathBuf::from(MANAGED)
            }
        );
        assert!(p.manual() && p.automatic());
    }

    #[test]
    fn real_loader_origins_feed_the_policy() {
        // The same rule through config::load, with files in a temp dir.
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(
                &path,
                format!(
                    "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>{body}</dict></plist>"
                ),
            )
            .unwrap();
            path
        };
        let managed = write("m.plist", "<key>Mode</key><string>monitor</string>");
        let local = write("l.plist", "<key>AutoUpdate</key><true/>");
        let absent = dir.path().join("absent.plist");
        let load = |m: &Path, l: &Path| {
            crate::config::load(&crate::config::Sources::layered(m, l)).unwrap()
        };
        assert!(!permission(&load(&managed, &local)).manual());
        assert!(permission(&load(&absent, &local)).automatic());
        let managed_on = write("m2.plist", "<key>AutoUpdate</key><true/>");
        assert!(permission(&load(&managed_on, &absent)).automatic());
    }
}
