//! CloudNativePG at fleet scale, measured on the real node: N single-instance systems on the
//! engine (`HS_CNPG_FLEET`, 3 by default; CI runs the default, more is a documented command),
//! then an idle minute. From the API server's audit log, the writes per second in the fleet's
//! namespaces and on its HealthSystems by user agent (CloudNativePG's operator and its
//! instance managers, ours); from the kubelet, the working set of CloudNativePG's operator
//! before and after the fleet. Printed for docs/cloudnativepg.md; asserted: every system
//! Ready, and this operator writes nothing while the fleet is idle.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use healthsystem_operator::api::HealthSystem;
use healthsystem_test_support::{cluster, node, systems};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// The idle window.
const IDLE: Duration = Duration::from_secs(60);

/// The working set of CloudNativePG's operator container, in bytes, from the kubelet's
/// resource metrics (through the API server).
async fn operator_memory(client: &Client) -> f64 {
    let request = http::Request::get("/api/v1/nodes/hs-node/proxy/metrics/resource")
        .body(Vec::new())
        .unwrap();
    let text = client
        .request_text(request)
        .await
        .expect("the kubelet's resource metrics");
    text.lines()
        .find(|l| {
            l.starts_with("container_memory_working_set_bytes{")
                && l.contains("namespace=\"cnpg-system\"")
                && l.contains("container=\"manager\"")
        })
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no working set of CloudNativePG's operator in:\n{text}"))
}

/// Writes the API server received from `since` on, in `namespaces` or on the HealthSystems
/// `names`, counted by user agent (its product, before the first '/').
fn writes_since(
    since: &str,
    namespaces: &BTreeSet<String>,
    names: &BTreeSet<String>,
) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(cluster::audit_log()).expect("the audit log");
    let mut counts = BTreeMap::new();
    for event in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let at = event["requestReceivedTimestamp"]
            .as_str()
            .unwrap_or_default();
        let object = &event["objectRef"];
        let ours = object["namespace"]
            .as_str()
            .is_some_and(|n| namespaces.contains(n))
            || (object["resource"] == "healthsystems"
                && object["name"].as_str().is_some_and(|n| names.contains(n)));
        if event["stage"] != "ResponseComplete" || at < since || !ours {
            continue;
        }
        let agent = event["userAgent"].as_str().unwrap_or("unknown");
        let product = agent.split('/').next().unwrap_or(agent).to_string();
        *counts.entry(product).or_insert(0) += 1;
    }
    counts
}

/// CloudNativePG's operator pod.
async fn operator_pod(client: &Client) -> Pod {
    Api::<Pod>::namespaced(client.clone(), "cnpg-system")
        .list(&ListParams::default().labels("app.kubernetes.io/name=cloudnative-pg"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .expect("CloudNativePG's operator pod")
}

/// Restarts of CloudNativePG's operator container (killed for its memory, say).
async fn operator_restarts(client: &Client) -> i32 {
    let pod = operator_pod(client).await;
    pod.status
        .and_then(|s| s.container_statuses)
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

/// The configuration CloudNativePG's operator says it loaded at start.
async fn loaded_settings(client: &Client) -> String {
    let pods = Api::<Pod>::namespaced(client.clone(), "cnpg-system");
    let pod = operator_pod(client).await;
    let log = pods
        .logs(&pod.name_any(), &LogParams::default())
        .await
        .unwrap();
    log.lines()
        .find(|l| l.contains("Operator configuration loaded"))
        .unwrap_or_else(|| panic!("no configuration in its log:\n{log}"))
        .to_string()
}

#[tokio::test]
async fn an_idle_fleet_on_cloudnativepg_is_measured_and_our_operator_writes_nothing() {
    let client = super::engine::setup().await;
    // The fleet's settings (config/cloudnativepg.yaml) are the ones in force.
    let settings = loaded_settings(&client).await;
    for setting in [
        "\"enableInstanceManagerInplaceUpdates\":true",
        "\"clustersRolloutDelay\":15",
        "\"instancesRolloutDelay\":10",
    ] {
        assert!(settings.contains(setting), "{setting} not in {settings}");
    }
    let n: usize = std::env::var("HS_CNPG_FLEET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let before = operator_memory(&client).await;
    let started = std::time::Instant::now();
    let mut names = BTreeSet::new();
    for _ in 0..n {
        names.insert(
            systems::create(&client, "fleet", "lab-biomedica.yaml", |m| {
                node::small_system(m);
                m["spec"]["monitoring"] = json!({ "enabled": false });
            })
            .await,
        );
    }
    for name in &names {
        systems::wait_ready(&client, name).await;
    }
    let ready = started.elapsed().as_secs_f64();
    let namespaces: BTreeSet<String> = names.iter().map(|n| format!("hs-{n}")).collect();
    // Settled: what follows is the fleet at rest.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let since = Timestamp::now().to_string();
    tokio::time::sleep(IDLE).await;
    let writes = writes_since(&since, &namespaces, &names);
    let after = operator_memory(&client).await;
    let per_second =
        |agent: &str| writes.get(agent).copied().unwrap_or(0) as f64 / IDLE.as_secs_f64();
    let total: usize = writes.values().sum();
    let mib = |bytes: f64| bytes / 1048576.0;
    let per_cluster_mib = (mib(after) - mib(before)) / n as f64;
    eprintln!(
        "CloudNativePG fleet: {n} single-instance systems Ready in {ready:.1}s; idle {}s: {total} writes in their namespaces and HealthSystems ({:.2}/s, {:.3}/s per system), by user agent {writes:?}",
        IDLE.as_secs(),
        total as f64 / IDLE.as_secs_f64(),
        total as f64 / IDLE.as_secs_f64() / n as f64,
    );
    eprintln!(
        "CloudNativePG operator working set: {:.1} MiB before, {:.1} MiB after ({per_cluster_mib:+.2} MiB per cluster); extrapolated: {:.0} MiB and {:.1} writes/s at 470 systems, {:.0} MiB and {:.1} writes/s at 1000",
        mib(before),
        mib(after),
        mib(after) + per_cluster_mib * (470 - n) as f64,
        total as f64 / IDLE.as_secs_f64() / n as f64 * 470.0,
        mib(after) + per_cluster_mib * (1000 - n) as f64,
        total as f64 / IDLE.as_secs_f64() / n as f64 * 1000.0,
    );
    assert_eq!(
        operator_restarts(&client).await,
        0,
        "CloudNativePG's operator restarted"
    );
    assert_eq!(
        per_second("healthsystem-operator"),
        0.0,
        "this operator wrote while the fleet was idle: {writes:?}"
    );
    assert!(after > 0.0 && before > 0.0);

    // A reconcile of a settled system (woken by a label on it, as the resync wakes every
    // system every ten minutes) writes nothing: the Cluster as applied is the Cluster wanted,
    // whatever CloudNativePG defaulted in it.
    let since = Timestamp::now().to_string();
    let api = Api::<HealthSystem>::all(client.clone());
    for name in &names {
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "woken": "yes" } } })),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let woken = writes_since(&since, &namespaces, &names);
    assert_eq!(
        woken.get("healthsystem-operator"),
        None,
        "a reconcile of a settled system wrote: {woken:?}"
    );
}
