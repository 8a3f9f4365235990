//! What every reconcile shares: the client, the operator's configuration, the child stores
//! and the event recorder.

use kube::Client;
use kube::runtime::events::Recorder;

use super::children::Stores;
use super::restarts::Restarts;
use crate::config::Config;
use crate::metrics::Metrics;

/// Shared by every reconcile.
pub struct Context {
    /// The API client (one connection pool for the whole operator).
    pub client: Client,
    /// The operator's configuration.
    pub config: Config,
    /// The watched children.
    pub stores: Stores,
    /// Publishes events on HealthSystems.
    pub recorder: Recorder,
    /// The monitoring.coreos.com API was served when the operator started.
    pub monitoring_api: bool,
    /// The operator's and the fleet's metrics.
    pub metrics: Metrics,
    /// Database restarts under way and waiting, bounded across the fleet.
    pub restarts: Restarts,
    /// Restore drills started, bounded across the fleet.
    pub drills: super::drills::Drills,
    /// Each system's last backup read from the object store.
    pub store_status: super::store_status::StoreStatus,
    /// Statuses written that the HealthSystem cache may not show yet.
    pub written_status: super::written_status::WrittenStatus,
}
