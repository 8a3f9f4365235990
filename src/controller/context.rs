//! What every reconcile shares: the client, the operator's configuration, the child stores
//! and the event recorder.

use kube::Client;
use kube::runtime::events::Recorder;

use crate::config::Config;
use crate::controller::cache::kinds::Stores;
use crate::controller::database::restarts::Restarts;
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
    pub drill_slots: crate::controller::backup::drill_slots::DrillSlots,
    /// Each system's last backup read from the object store.
    pub store_reads: crate::controller::backup::store_reads::StoreReads,
    /// The credentials Secrets of each namespace (read by name, never watched).
    pub credentials: crate::controller::database::credentials_seen::CredentialsSeen,
    /// Statuses written that the HealthSystem cache may not show yet.
    pub written_status: crate::controller::status::written::WrittenStatus,
}
