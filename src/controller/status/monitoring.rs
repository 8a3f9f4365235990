//! MonitoringReady: the PodMonitor and PrometheusRule are installed, where their API is
//! served (it does not gate readiness).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::HealthSystem;
use crate::controller::status::condition::{Stamp, types};
use crate::controller::status::observed::Observed;

/// The monitoring subsystem's condition.
pub fn condition(system: &HealthSystem, observed: &Observed, stamp: Stamp) -> Condition {
    if !system.spec.monitoring.enabled {
        stamp.condition(
            types::MONITORING,
            true,
            "MonitoringDisabled",
            "monitoring is switched off in the spec".into(),
        )
    } else if !observed.monitoring_api {
        stamp.condition(types::MONITORING, false, "MonitoringAPIUnavailable", "the monitoring.coreos.com API is not served; PodMonitor and PrometheusRule are skipped".into())
    } else {
        stamp.condition(
            types::MONITORING,
            true,
            "MonitoringConfigured",
            "PodMonitor and PrometheusRule installed".into(),
        )
    }
}
