//! The shape every condition shares: its types, the reasons other code acts on, and how one
//! is made (the transition time and generation of this look).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition types.
pub mod types {
    /// Every subsystem below (monitoring aside) is ready.
    pub const READY: &str = "Ready";
    /// The namespace exists and is active.
    pub const NAMESPACE: &str = "NamespaceReady";
    /// The database runs, its volume is bound and its credentials exist.
    pub const DATABASE: &str = "DatabaseReady";
    /// The last successful backup is within the RPO.
    pub const BACKUP: &str = "BackupReady";
    /// The network policies are applied and every platform service named is known.
    pub const NETWORK: &str = "NetworkIsolated";
    /// Metrics and alert rules are installed (or monitoring is off).
    pub const MONITORING: &str = "MonitoringReady";
    /// Access to the namespace is only what the operator bound (spec.access's tenant roles).
    pub const ACCESS: &str = "AccessControlled";
    /// The application's pods are available (only when spec.application is set).
    pub const APPLICATION: &str = "ApplicationReady";
}

/// The operator cannot read the credentials Secrets (its access there is not in force).
pub const CREDENTIALS_NOT_READABLE: &str = "CredentialsNotReadable";
/// The DatabaseReady reason when the credentials Secret is gone but the data is not.
pub const CREDENTIALS_MISSING: &str = "CredentialsMissing";

/// The DatabaseReady reason when the claim the data was on is gone.
pub const DATA_MISSING: &str = "DataMissing";

/// The DatabaseReady reason when spec.database.instances is above the tier's bound.
pub const INSTANCES_ABOVE_TIER: &str = "InstancesAboveTier";
/// The system asks for a PostgreSQL version the platform has no image for.
pub const VERSION_REFUSED: &str = "VersionRefused";
/// The system asks to start from an archive this platform cannot recover it from.
pub const BOOTSTRAP_REFUSED: &str = "BootstrapRefused";

/// The DatabaseReady reason when spec.database.bootstrap's restore failed.
pub const BOOTSTRAP_FAILED: &str = "BootstrapFailed";

/// The BackupReady reason when the last restore drill failed: the backups are not proven.
pub const RESTORE_DRILL_FAILED: &str = "RestoreDrillFailed";

/// The NamespaceReady reason when the namespace belongs to someone else.
pub const NAMESPACE_NOT_OWNED: &str = "NamespaceNotOwned";

/// The NetworkIsolated reason when a NetworkPolicy the operator did not make is in the
/// namespace (policies add up: it may allow what the default deny refuses).
pub const FOREIGN_NETWORK_POLICY: &str = "ForeignNetworkPolicy";

/// The AccessControlled reason when a RoleBinding the operator did not make is in the
/// namespace.
pub const FOREIGN_ROLE_BINDING: &str = "ForeignRoleBinding";

/// The ApplicationReady reason when the namespace quota refuses the application's pods.
pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";

/// When this look at a system happened and which generation of its spec it saw: every
/// condition made now carries both (`merge` keeps the old time of those that did not flip).
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    /// The time of the look, in whole seconds.
    pub now: Timestamp,
    /// The HealthSystem's metadata.generation.
    pub generation: Option<i64>,
}

impl Stamp {
    /// A condition of `type_`, True when `ok`.
    pub fn condition(&self, type_: &str, ok: bool, reason: &str, message: String) -> Condition {
        Condition {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            reason: reason.into(),
            message,
            last_transition_time: Time(self.now),
            observed_generation: self.generation,
        }
    }
}

/// Whether a reason is a refusal of the API server (the spec must change).
pub fn is_refusal(reason: &str) -> bool {
    reason.ends_with("Refused")
}
