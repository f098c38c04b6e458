//! The deliverer: the daemon's side of delivery — the delivery thread
//! (`upload::worker`; started, given new settings, stopped as
//! `CollectorURL` comes and goes) and the fleet policy in force. The
//! thread's notices arrive on the daemon's loop, so the loop never waits
//! on the network.

use std::time::Duration;

use crate::config::Config;
use crate::report::hostid;
use crate::report::policy_sync::{self, Fetched, FleetAdditions};
use crate::report::reporter::Reporter;
use crate::report::upload::worker::{Delivery, DeliverySettings, Notice};

/// The delivery thread and the fleet policy in force.
pub struct Deliverer {
    delivery: Option<Delivery>,
    settings: Option<DeliverySettings>,
    notices: tokio::sync::mpsc::UnboundedSender<Notice>,
    /// The fleet policy in force (stored in `fleet-policy.json`).
    pub fleet: Option<Fetched>,
    empty: FleetAdditions,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("running", &self.delivery.is_some())
            .field("fleet", &self.fleet.as_ref().map(|p| &p.etag))
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    /// With the fleet policy stored by the previous run, if it is usable.
    pub fn new(config: &Config, notices: tokio::sync::mpsc::UnboundedSender<Notice>) -> Deliverer {
        let fleet = match policy_sync::load(&config.state_dir) {
            Ok(Some(stored)) => Fetched::from_stored(stored)
                .inspect_err(|e| tracing::error!(error = %e, "stored fleet policy ignored"))
                .ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "stored fleet policy ignored");
                None
            }
        };
        Deliverer {
            delivery: None,
            settings: None,
            notices,
            fleet,
            empty: FleetAdditions::default(),
        }
    }

    /// What the fleet policy in force adds to the judge's policy.
    pub fn additions(&self) -> &FleetAdditions {
        self.fleet.as_ref().map_or(&self.empty, |f| &f.additions)
    }

    /// Start, reconfigure or stop the delivery thread for `config`.
    pub fn configure(&mut self, config: &Config) {
        let settings = DeliverySettings::from_config(config);
        if settings == self.settings && (settings.is_some() == self.delivery.is_some()) {
            return;
        }
        match (&self.delivery, settings.clone()) {
            (Some(d), Some(s)) => d.reconfigure(s),
            (Some(_), None) => self.stop(),
            (None, Some(s)) => {
                let tx = self.notices.clone();
                let etag = self.fleet.as_ref().map(|f| f.etag.clone());
                match Delivery::start(
                    s,
                    hostid::detect(),
                    etag,
                    Box::new(move |n| {
                        let _ = tx.send(n);
                    }),
                ) {
                    Ok(d) => self.delivery = Some(d),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the delivery thread; events stay in the outbox")
                    }
                }
            }
            (None, None) => {}
        }
        self.settings = settings;
    }

    /// A new fleet policy from the delivery thread: the judge's policy
    /// built with it (stored and reported as applied), or `None` when it
    /// does not build (reported as rejected; the previous one stays).
    pub fn apply(
        &mut self,
        fetched: Fetched,
        config: &Config,
        local: &[crate::config::Rule],
        reporter: &mut Reporter,
    ) -> Option<crate::judge::Policy> {
        match crate::policy::policy_for(config, local, &fetched.additions) {
            Ok(policy) => {
                if let Err(e) = policy_sync::store(&config.state_dir, &fetched.to_stored()) {
                    // In force now; after a restart the previous one is,
                    // until the next poll brings this one again.
                    tracing::error!(error = %e, "cannot store the fleet policy");
                }
                tracing::info!(etag = %fetched.etag, rules = fetched.policy.rules.len(), catalog = fetched.policy.catalog.len(), "fleet policy applied");
                reporter.delivery(policy_sync::applied_notice(&fetched));
                self.fleet = Some(fetched);
                Some(policy)
            }
            Err(e) => {
                tracing::error!(error = %e, etag = %fetched.etag, "fleet policy rejected; the previous one stays");
                reporter.delivery(policy_sync::rejected_notice(&fetched.etag, &e.to_string()));
                None
            }
        }
    }

    /// Stop the thread (a request in flight is not waited for: its batch
    /// goes again at the next start).
    pub fn stop(&mut self) {
        if let Some(d) = self.delivery.take()
            && let Some(stats) = d.stop(Duration::from_secs(1))
        {
            tracing::info!(?stats, "delivery stopped");
        }
    }
}
