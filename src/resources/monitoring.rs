//! Monitoring of a system, for the Prometheus Operator: a PodMonitor for the database
//! exporter and a PrometheusRule with the system's own alerts. Both are only applied when the
//! cluster serves the monitoring.coreos.com API; the controller finds out at run time.

use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use super::labels;
use super::metadata::component_meta;
use super::{cnpg, database};
use crate::api::{Engine, HealthSystem};
use crate::config::Config;

/// The Prometheus Operator's API group and version.
pub const GROUP_VERSION: (&str, &str) = ("monitoring.coreos.com", "v1");

/// The PodMonitor resource.
pub fn pod_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP_VERSION.0, GROUP_VERSION.1, "PodMonitor"),
        "podmonitors",
    )
}

/// The PrometheusRule resource.
pub fn prometheus_rule_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP_VERSION.0, GROUP_VERSION.1, "PrometheusRule"),
        "prometheusrules",
    )
}

/// A monitoring object with the operator's labels plus those the platform's Prometheus
/// selects by (`monitoring.resourceLabels`); ours win a clash.
fn object(
    system: &HealthSystem,
    config: &Config,
    resource: &ApiResource,
    spec: serde_json::Value,
) -> DynamicObject {
    let mut object = DynamicObject::new("database", resource).data(json!({ "spec": spec }));
    object.metadata = component_meta(system, "database", database::COMPONENT_NAME);
    let mut labels = config.monitoring.resource_labels.clone();
    labels.extend(object.metadata.labels.take().unwrap_or_default());
    object.metadata.labels = Some(labels);
    object
}

/// Scrapes the exporter's metrics port of the database pod.
pub fn pod_monitor(system: &HealthSystem, config: &Config) -> DynamicObject {
    object(
        system,
        config,
        &pod_monitor_resource(),
        json!({
            "selector": { "matchLabels": labels::selector(system, database::COMPONENT_NAME) },
            "podMetricsEndpoints": [{ "port": "metrics", "interval": "30s" }]
        }),
    )
}

/// The series the alerts read, by engine: the StatefulSet's exporter (postgres_exporter's
/// names) or CloudNativePG's own on each instance (`cnpg_`, from its default queries).
struct Series {
    /// 0 when no database answers.
    up: String,
    /// The data claims (`persistentvolumeclaim` matcher).
    claims: String,
    /// Connections in use, on the busiest server.
    connections: String,
    /// The connection limit.
    max_connections: String,
}

fn series(ns: &str, engine: Engine) -> Series {
    match engine {
        Engine::StatefulSet => Series {
            up: format!("pg_up{{namespace=\"{ns}\"}}"),
            claims: format!("persistentvolumeclaim=\"{}\"", database::data_claim_name()),
            connections: format!("sum(pg_stat_database_numbackends{{namespace=\"{ns}\"}})"),
            max_connections: format!("max(pg_settings_max_connections{{namespace=\"{ns}\"}})"),
        },
        // Every instance reports itself: down when none is up (a lost primary alone is a
        // failover, which DatabaseReady reports).
        Engine::CloudNativePg => Series {
            up: format!("max(cnpg_collector_up{{namespace=\"{ns}\"}})"),
            claims: format!("persistentvolumeclaim=~\"{}-[0-9]+\"", cnpg::CLUSTER),
            connections: format!("max(sum by (pod) (cnpg_backends_total{{namespace=\"{ns}\"}}))"),
            max_connections: format!(
                "max(cnpg_pg_settings_setting{{namespace=\"{ns}\",name=\"max_connections\"}})"
            ),
        },
    }
}

/// The series of a system's WAL archive lag in seconds (recorded by its own rules).
pub const ARCHIVE_LAG: &str = "healthsystem:wal_archive_lag_seconds";

/// The system's own alerts: database down, volume filling up, connections near the limit,
/// on the series of the engine its database runs on; and, when it archives its WAL, the
/// archiving failing, its lag recorded, and the lag past the RPO.
pub fn prometheus_rule(system: &HealthSystem, config: &Config) -> DynamicObject {
    let ns = labels::namespace(system);
    let name = labels::name(system);
    let engine = super::engine(system, config);
    let Series {
        up,
        claims,
        connections,
        max_connections,
    } = series(&ns, engine);
    let mut rules = json!([
                {
                    "alert": "HealthSystemDatabaseDown",
                    "expr": format!("{up} == 0"),
                    "for": "5m",
                    "labels": { "severity": "critical", "healthsystem": name },
                    "annotations": { "summary": format!("The database of {name} is down") }
                },
                {
                    "alert": "HealthSystemVolumeFillingUp",
                    "expr": format!("kubelet_volume_stats_available_bytes{{namespace=\"{ns}\",{claims}}} / kubelet_volume_stats_capacity_bytes{{namespace=\"{ns}\",{claims}}} < 0.15"),
                    "for": "15m",
                    "labels": { "severity": "warning", "healthsystem": name },
                    "annotations": { "summary": format!("The database volume of {name} is more than 85% full") }
                },
                {
                    "alert": "HealthSystemConnectionsNearLimit",
                    "expr": format!("{connections} / {max_connections} > 0.8"),
                    "for": "10m",
                    "labels": { "severity": "warning", "healthsystem": name },
                    "annotations": { "summary": format!("The database of {name} uses more than 80% of its connections") }
                }
    ]);
    let archiving =
        engine == Engine::CloudNativePg && super::archive::cluster_plugins(config).is_some();
    if archiving && let Some(rules) = rules.as_array_mut() {
        // Only the primary's archiver reports them.
        let failed = format!("max(cnpg_pg_stat_archiver_last_failed_time{{namespace=\"{ns}\"}})");
        let archived =
            format!("max(cnpg_pg_stat_archiver_last_archived_time{{namespace=\"{ns}\"}})");
        // Its last attempt failed, and went on failing; what can be lost grows from then on.
        rules.push(json!({
            "alert": "HealthSystemWalArchivingFailing",
            "expr": format!("{failed} > {archived}"),
            "for": "5m",
            "labels": { "severity": "critical", "healthsystem": name },
            "annotations": { "summary": format!("The database of {name} cannot archive its WAL: BackupReady says why") }
        }));
        // What a loss of the database now would cost: 0 while the last attempt archived,
        // else the time since the last segment that did. Past the RPO, the objective is
        // broken (spec.backup.rpo is the archive's lag on a system that archives).
        rules.push(json!({
            "record": ARCHIVE_LAG,
            "expr": format!("({failed} > bool {archived}) * (time() - {archived})"),
            "labels": { "healthsystem": name, "namespace": ns }
        }));
        let rpo = &system.spec.backup.rpo;
        let rpo_seconds = crate::controller::status::rpo(system).as_secs();
        rules.push(json!({
            "alert": "HealthSystemWalArchiveLagOverRpo",
            "expr": format!("{ARCHIVE_LAG}{{healthsystem=\"{name}\"}} > {rpo_seconds}"),
            "for": "5m",
            "labels": { "severity": "critical", "healthsystem": name },
            "annotations": { "summary": format!("The WAL of {name} has not reached its archive for longer than its RPO of {rpo}") }
        }));
    }
    object(
        system,
        config,
        &prometheus_rule_resource(),
        json!({ "groups": [{
            "name": format!("healthsystem-{name}"),
            "rules": rules
        }]}),
    )
}
