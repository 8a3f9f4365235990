//! The metadata every child of a system carries: its name, the system's namespace, our
//! labels, and the owner's UID (what ownership is judged by: `controller/ownership.rs`).

use std::collections::BTreeMap;

use kube::api::ObjectMeta;

use super::labels::{self, OWNER_UID};
use crate::api::HealthSystem;

/// Metadata of a namespaced child named `name`. The owner's UID is left out when the
/// HealthSystem has none yet (`render` of a manifest that was never created).
pub fn meta(system: &HealthSystem, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(labels::namespace(system)),
        labels: Some(labels::common(system)),
        annotations: system
            .metadata
            .uid
            .as_ref()
            .map(|uid| BTreeMap::from([(OWNER_UID.to_string(), uid.clone())])),
        ..ObjectMeta::default()
    }
}

/// Metadata of a child that belongs to one component of the system (its labels say which).
pub fn component_meta(system: &HealthSystem, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        labels: Some(labels::component(system, component)),
        ..meta(system, name)
    }
}
