//! The reconciler on a cluster that serves the Prometheus Operator's API (its real CRDs,
//! pinned in testenv/crds/go.mod): a system gets its PodMonitor and PrometheusRule, and
//! loses them when monitoring is switched off. A cluster and an operator of its own, since
//! the API must be served before the operator starts.

use healthsystem_test_support::cluster;
use healthsystem_test_support::operator;
use healthsystem_test_support::systems;
use healthsystem_test_support::wait;

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

use healthsystem_operator::api::HealthSystem;
use healthsystem_operator::resources::monitoring;

use cluster::{client, install_monitoring_crds};
use wait::until;

fn condition(system: &HealthSystem, type_: &str) -> Option<(String, String)> {
    systems::condition(system, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn monitoring_objects_follow_the_spec_when_the_api_is_served() {
    let client = client().await;
    install_monitoring_crds(&client).await;
    operator::ensure_running(&client).await;

    let name = systems::create(&client, "mon", "lab-biomedica.yaml", |_| {}).await;
    let namespace = format!("hs-{name}");
    let systems = Api::<HealthSystem>::all(client.clone());
    until(
        "MonitoringReady True and Ready",
        Duration::from_secs(180),
        || async {
            let system = systems.get(&name).await.map_err(|e| e.to_string())?;
            match (
                condition(&system, "MonitoringReady"),
                condition(&system, "Ready"),
            ) {
                (Some((m, reason)), Some((r, _)))
                    if m == "True" && r == "True" && reason == "MonitoringConfigured" =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    let pod_monitors: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &monitoring::pod_monitor_resource(),
    );
    let rules: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &monitoring::prometheus_rule_resource(),
    );
    let monitor = pod_monitors.get("database").await.unwrap();
    assert_eq!(
        monitor.data["spec"]["podMetricsEndpoints"][0]["port"],
        "metrics"
    );
    let rule = rules.get("database").await.unwrap();
    let alerts: Vec<&str> = rule.data["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert_eq!(
        alerts,
        [
            "HealthSystemDatabaseDown",
            "HealthSystemVolumeFillingUp",
            "HealthSystemConnectionsNearLimit"
        ]
    );

    // Switched off: both pruned, and the condition says so.
    let patch = json!({ "spec": { "monitoring": { "enabled": false } } });
    systems
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    until(
        "monitoring objects pruned",
        Duration::from_secs(60),
        || async {
            let monitor = pod_monitors
                .get_opt("database")
                .await
                .map_err(|e| e.to_string())?;
            let rule = rules.get_opt("database").await.map_err(|e| e.to_string())?;
            let system = systems.get(&name).await.map_err(|e| e.to_string())?;
            let reason = condition(&system, "MonitoringReady").map(|c| c.1);
            if monitor.is_none()
                && rule.is_none()
                && reason.as_deref() == Some("MonitoringDisabled")
            {
                Ok(())
            } else {
                Err(format!(
                    "podmonitor {}, rule {}, {reason:?}",
                    monitor.is_some(),
                    rule.is_some()
                ))
            }
        },
    )
    .await;
}
