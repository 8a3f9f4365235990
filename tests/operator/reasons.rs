//! Issue 12, defect 2: reasons that say what is wrong, not "starting".

use kube::api::Api;
use serde_json::json;
use std::time::Duration;

use healthsystem_operator::api::{HealthSystem, Phase};

use crate::cluster::client;
use crate::operator;
use crate::systems::{self, condition};
use crate::wait::until;

/// More application replicas than the tier's pod quota allows: the reason says the quota,
/// not "ApplicationStarting 18 of 50", and the phase is Degraded (only a change helps).
#[tokio::test]
async fn an_application_beyond_the_quota_says_so() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let name = systems::create(&client, "quota", "poliklinika-medicus.yaml", |m| {
        m["spec"]["application"]["replicas"] = json!(50);
    })
    .await;
    let (system, application) = systems::wait_reason(
        &client,
        &name,
        "ApplicationReady",
        "QuotaExceeded",
        Duration::from_secs(120),
    )
    .await;
    assert!(
        application.message.contains("of 50 pods"),
        "{application:?}"
    );
    assert!(
        application.message.contains("exceeded quota"),
        "{application:?}"
    );
    assert_eq!(system.status.unwrap().phase, Some(Phase::Degraded));
}

/// A namespace quota too small for the database pod (its memory request above the quota's
/// memory): DatabaseReady says the quota and what the pod needs, not "DatabaseStarting".
#[tokio::test]
async fn a_database_beyond_the_quota_says_so() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let name = systems::create(&client, "dbquota", "poliklinika-medicus.yaml", |m| {
        m["spec"]["sizing"] = json!({ "memory": "256Mi" });
        m["spec"].as_object_mut().unwrap().remove("application");
    })
    .await;
    let (_, database) = systems::wait_reason(
        &client,
        &name,
        "DatabaseReady",
        "QuotaExceeded",
        Duration::from_secs(120),
    )
    .await;
    assert!(
        database.message.contains("requests.memory") && database.message.contains("256Mi"),
        "{database:?}"
    );
}

/// Issue 12, defect 1: application resources the cluster refuses (a memory request above
/// its limit, a CPU quantity that is no quantity; the CRD cannot check Kubernetes'
/// unbounded resource maps within its CEL cost budget) are reported in ApplicationReady with
/// the API server's own words, and Ready turns False.
#[tokio::test]
async fn application_resources_the_cluster_refuses_are_reported() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let systems_api = Api::<HealthSystem>::all(client.clone());
    for (prefix, resources, expected) in [
        (
            "reqlimit",
            json!({ "requests": { "memory": "2Gi" }, "limits": { "memory": "1Gi" } }),
            "must be less than or equal to memory limit",
        ),
        (
            "badcpu",
            json!({ "requests": { "cpu": "half a core" } }),
            "quantities must match the regular expression",
        ),
    ] {
        let name = systems::create(&client, prefix, "poliklinika-medicus.yaml", |m| {
            m["spec"]["application"]["resources"] = resources;
        })
        .await;
        let (_, application) = systems::wait_reason(
            &client,
            &name,
            "ApplicationReady",
            "DeploymentRefused",
            Duration::from_secs(60),
        )
        .await;
        assert!(application.message.contains(expected), "{application:?}");
        let system = systems_api.get(&name).await.unwrap();
        assert_eq!(condition(&system, "Ready").unwrap().status, "False");
    }
}

/// Issue 12, defect 1: a spec the API server admits but the cluster refuses (a label key no
/// NetworkPolicy accepts in allowFrom) is reported: the subsystem's condition says which
/// object was refused and why, Ready turns False (no stale Ready=True), a Warning event is
/// published, and the rest of the system is still applied.
#[tokio::test]
async fn a_child_the_cluster_refuses_is_reported_in_its_subsystem() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let name = systems::create(&client, "refused", "poliklinika-medicus.yaml", |_| {}).await;
    systems::wait_ready(&client, &name).await;
    let systems_api = Api::<HealthSystem>::all(client.clone());
    systems_api
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "spec": {
                "network": { "allowFrom": [{ "podSelector": { "matchLabels": { "bad key!": "x" } } }] },
                "backup": { "schedule": "15 3 * * *" },
            } })),
        )
        .await
        .unwrap();
    let (system, network) = systems::wait_reason(
        &client,
        &name,
        "NetworkIsolated",
        "NetworkPolicyRefused",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        network.message.contains("application-ingress"),
        "{network:?}"
    );
    assert!(network.message.contains("bad key!"), "{network:?}");
    let ready = condition(&system, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NetworkPolicyRefused")
    );
    until(
        "a NetworkPolicyRefused event",
        Duration::from_secs(30),
        || systems::has_warning(&client, &name, "NetworkPolicyRefused"),
    )
    .await;
    // Everything else was still applied: the backup schedule changed.
    let cron = Api::<k8s_openapi::api::batch::v1::CronJob>::namespaced(
        client.clone(),
        &format!("hs-{name}"),
    )
    .get("backup")
    .await
    .unwrap();
    assert_eq!(cron.spec.schedule, "15 3 * * *");
}
