//! What every request handler can reach, in a leaf module: `auth`, the
//! API (`http`) and the dashboard (`web`) all take it, and none of them
//! has to import another to get it. (It used to live in `http/mod.rs`,
//! which made `auth` ↔ `http` and `http` ↔ `web` import circles.)

use std::sync::Arc;

use crate::config::{Limits, NetLimits};
use crate::metrics::Metrics;
use crate::store::Store;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub net: NetLimits,
    /// Served over TLS: mark the dashboard cookie `Secure`.
    pub tls: bool,
    /// `/metrics` without a token.
    pub public_metrics: bool,
}
