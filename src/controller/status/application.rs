//! ApplicationReady (only when spec.application is set): its pods available, or why not.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::controller::status::condition::{QUOTA_EXCEEDED, Stamp, types};
use crate::controller::status::observed::Observed;

/// The application's condition, when the system has one.
pub fn condition(observed: &Observed, stamp: Stamp) -> Option<Condition> {
    let (available, wanted) = observed.application?;
    Some(
        if let Some((reason, why)) = observed
            .application_failure
            .as_ref()
            .filter(|_| available < wanted)
        {
            let hint = if reason == QUOTA_EXCEEDED {
                "; lower spec.application.replicas or raise spec.sizing.pods (or the tier)"
            } else {
                ""
            };
            stamp.condition(
                types::APPLICATION,
                false,
                reason,
                format!("{available} of {wanted} pods available: {why}{hint}"),
            )
        } else if available >= wanted {
            stamp.condition(
                types::APPLICATION,
                true,
                "ApplicationAvailable",
                format!("{available} of {wanted} pods available"),
            )
        } else {
            stamp.condition(
                types::APPLICATION,
                false,
                "ApplicationStarting",
                format!("{available} of {wanted} pods available"),
            )
        },
    )
}
