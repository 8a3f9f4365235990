//! NetworkIsolated: every policy the system should have is in place and every platform
//! service it names is known.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::controller::status::condition::{FOREIGN_NETWORK_POLICY, Stamp, types};
use crate::controller::status::observed::Observed;

/// The network subsystem's condition.
pub fn condition(observed: &Observed, stamp: Stamp) -> Condition {
    if !observed.foreign_policies.is_empty() {
        stamp.condition(
            types::NETWORK,
            false,
            FOREIGN_NETWORK_POLICY,
            format!(
                "NetworkPolicies the operator did not make: {}. Policies add up, so each may allow what the default deny refuses; remove them, and declare what the system needs in spec.network",
                observed.foreign_policies.join(", ")
            ),
        )
    } else if !observed.missing_policies.is_empty() {
        stamp.condition(
            types::NETWORK,
            false,
            "PolicyMissing",
            format!(
                "network policies not in place: {}",
                observed.missing_policies.join(", ")
            ),
        )
    } else if observed.unknown_services.is_empty() {
        stamp.condition(
            types::NETWORK,
            true,
            "PoliciesApplied",
            "default deny with the system's allowances".into(),
        )
    } else {
        stamp.condition(
            types::NETWORK,
            false,
            "UnknownPlatformService",
            format!(
                "platform services not in the operator's configuration: {}",
                observed.unknown_services.join(", ")
            ),
        )
    }
}
