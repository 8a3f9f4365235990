//! The labels that mark what the operator manages: every child carries them, watches select
//! on them, and pruning only ever considers objects that have them.

use std::collections::BTreeMap;

use crate::api::HealthSystem;

/// The field manager of every server-side apply, and the managed-by label value.
pub const MANAGER: &str = "healthsystem-operator";
/// `app.kubernetes.io/managed-by`.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Names the HealthSystem a child belongs to.
pub const HEALTHSYSTEM: &str = "sdc.gov.rs/healthsystem";
/// The component of the system a child is part of (database, backup, application, ...).
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// Annotation on every child: the UID of the HealthSystem that owns it. A name can be
/// reused; a UID cannot, so this is what ownership is judged by.
pub const OWNER_UID: &str = "sdc.gov.rs/healthsystem-uid";
/// Annotation on an adopted namespace: the UID of the deleted HealthSystem it was kept from.
pub const ADOPTED_FROM: &str = "sdc.gov.rs/adopted-from";

/// Labels every child of `system` carries.
pub fn common(system: &HealthSystem) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), MANAGER.to_string()),
        (HEALTHSYSTEM.to_string(), name(system).to_string()),
    ])
}

/// The common labels plus the component.
pub fn component(system: &HealthSystem, component: &str) -> BTreeMap<String, String> {
    let mut labels = common(system);
    labels.insert(COMPONENT.to_string(), component.to_string());
    labels
}

/// Labels selecting the pods of `component` of `system` (Services, policies, monitors).
pub fn selector(system: &HealthSystem, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (HEALTHSYSTEM.to_string(), name(system).to_string()),
        (COMPONENT.to_string(), component.to_string()),
    ])
}

/// The HealthSystem's name (validated non-empty at admission).
pub fn name(system: &HealthSystem) -> &str {
    system.metadata.name.as_deref().unwrap_or_default()
}

/// The namespace that holds `system`: `spec.namespace`, or `hs-<name>`.
pub fn namespace(system: &HealthSystem) -> String {
    system
        .spec
        .namespace
        .clone()
        .unwrap_or_else(|| format!("hs-{}", name(system)))
}
