//! A child the API server refused is reported in the condition of its subsystem, with the
//! API server's words (which name the field).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::controller::apply::Refusal;
use crate::controller::status::condition::{Stamp, types};

/// The subsystem condition a child of `kind` belongs to.
fn subsystem_of(kind: &str) -> &'static str {
    match kind {
        "NetworkPolicy" => types::NETWORK,
        "Secret"
        | "Service"
        | "StatefulSet"
        | "PodDisruptionBudget"
        | "PersistentVolumeClaim"
        | "Cluster" => types::DATABASE,
        "CronJob" => types::BACKUP,
        "Deployment" => types::APPLICATION,
        "PodMonitor" | "PrometheusRule" => types::MONITORING,
        _ => types::NAMESPACE,
    }
}

/// Marks the subsystem of every refused child False, with the API server's reason.
pub fn report_refusals(conditions: &mut [Condition], refused: &[Refusal], stamp: Stamp) {
    for refusal in refused {
        let type_ = subsystem_of(&refusal.kind);
        let Some(slot) = conditions.iter_mut().find(|c| c.type_ == type_) else {
            continue;
        };
        let reason = format!("{}Refused", refusal.kind);
        let what = format!(
            "{} {} refused by the API server: {}",
            refusal.kind, refusal.name, refusal.message
        );
        let message = if slot.reason == reason {
            format!("{}; {what}", slot.message)
        } else {
            format!(
                "{what}; the rest of the system is applied, and this is retried with a growing delay"
            )
        };
        *slot = stamp.condition(type_, false, &reason, message);
    }
}
