//! NamespaceReady: the namespace exists, is active and is this system's own.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::HealthSystem;
use crate::controller::status::condition::{NAMESPACE_NOT_OWNED, Stamp, types};
use crate::controller::status::observed::Observed;
use crate::resources::labels;

/// The namespace subsystem's condition.
pub fn condition(system: &HealthSystem, observed: &Observed, stamp: Stamp) -> Condition {
    let namespace = labels::namespace(system);
    match observed.namespace_phase.as_deref() {
        _ if observed.namespace_not_owned.is_some() => stamp.condition(
            types::NAMESPACE,
            false,
            NAMESPACE_NOT_OWNED,
            observed.namespace_not_owned.clone().unwrap_or_default(),
        ),
        Some("Active") => stamp.condition(
            types::NAMESPACE,
            true,
            "NamespaceActive",
            format!("namespace {namespace} is active"),
        ),
        Some(phase) => stamp.condition(
            types::NAMESPACE,
            false,
            "NamespaceNotActive",
            format!("namespace {namespace} is {phase}"),
        ),
        None => stamp.condition(
            types::NAMESPACE,
            false,
            "NamespaceMissing",
            format!("namespace {namespace} does not exist yet"),
        ),
    }
}
