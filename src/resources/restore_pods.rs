//! Which pod restores a new system's database from a backup (spec.database.bootstrap), and
//! whether one still does: the restore Job's own objects and the database's ingress policy
//! both name it.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::labels::{self, COMPONENT, HEALTHSYSTEM};
use crate::api::{BackupSource, HealthSystem};
use crate::config::Config;

/// Component label of the restore Job and its pod.
pub const COMPONENT_NAME: &str = "bootstrap";

/// The source of the system's bootstrap, when it has one.
pub fn source(system: &HealthSystem) -> Option<&BackupSource> {
    system
        .spec
        .database
        .bootstrap
        .as_ref()
        .and_then(|b| b.from_backup.as_ref())
}

/// Whether the system is still to be restored (the status has not recorded the end).
pub fn pending(system: &HealthSystem) -> bool {
    source(system).is_some()
        && system
            .status
            .as_ref()
            .and_then(|s| s.database.as_ref())
            .and_then(|d| d.bootstrap.as_ref())
            .is_none_or(|b| b.phase == "Restoring")
}

/// The labels of the restore pod of `system`.
pub fn restore_pods(system: &HealthSystem) -> BTreeMap<String, String> {
    BTreeMap::from([
        (HEALTHSYSTEM.to_string(), labels::name(system).to_string()),
        (COMPONENT.to_string(), COMPONENT_NAME.to_string()),
    ])
}

/// Who may reach the new database's port while it is restored: the restore pod, in the
/// restore namespace.
pub fn database_peer(system: &HealthSystem, config: &Config) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                config.backup.drills.namespace.clone(),
            )])),
            ..LabelSelector::default()
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(restore_pods(system)),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}
