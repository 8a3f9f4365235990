//! Reasons that say what is wrong, not "starting".

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

/// Watches `api` and records the resourceVersion (an etcd revision) of the first change seen
/// whose object passes `wanted`.
fn first_revision<K>(
    api: Api<K>,
    wanted: impl Fn(&K) -> bool + Send + 'static,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    tokio::task::JoinHandle<()>,
)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
        while let Some(Ok(event)) = events.next().await {
            if let watcher::Event::Apply(object) = event
                && wanted(&object)
            {
                let revision = object
                    .meta()
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let _ = record.compare_exchange(
                    0,
                    revision,
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                );
            }
        }
    });
    (seen, task)
}

/// Quotas hold from the first pod: a brand new system whose application asks for more pods
/// than its quota allows never has more pods than the quota at any moment. Admission counts
/// pods against a quota only once the quota controller has published the quota's status, so
/// workloads applied in the same second as the quota slipped past it (27 pods under a quota
/// of 20 on the real node). Here the order is checked where it is decided: the application's
/// Deployment is created only after the quota's status exists (etcd revisions, which the
/// API server's resourceVersions are, order writes across kinds), and no more pods than the
/// quota allows are ever there.
#[tokio::test]
async fn a_new_namespace_never_runs_more_pods_than_its_quota() {
    use futures::StreamExt;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
    use kube::runtime::{WatchStreamExt, watcher};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let client = client().await;
    operator::ensure_running(&client).await;
    let name = crate::cluster::unique("podquota");
    let namespace = format!("hs-{name}");
    // Watched from before the system exists: every pod, the quota's status, the Deployment.
    let most = Arc::new(AtomicUsize::new(0));
    let pods = {
        let most = most.clone();
        let api = Api::<Pod>::namespaced(client.clone(), &namespace);
        tokio::spawn(async move {
            let mut alive = std::collections::BTreeSet::new();
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(Ok(event)) = events.next().await {
                match event {
                    watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
                        if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
                            alive.remove(&name);
                        } else {
                            alive.insert(name);
                        }
                    }
                    watcher::Event::Delete(pod) => {
                        alive.remove(&pod.metadata.name.clone().unwrap_or_default());
                    }
                    watcher::Event::Init | watcher::Event::InitDone => {}
                }
                most.fetch_max(alive.len(), Ordering::SeqCst);
            }
        })
    };
    let (quota_in_force, quotas) = first_revision(
        Api::<ResourceQuota>::namespaced(client.clone(), &namespace),
        |quota| {
            quota
                .status
                .as_ref()
                .and_then(|s| s.hard.as_ref())
                .is_some()
        },
    );
    let (deployment_created, deployments) = first_revision(
        Api::<Deployment>::namespaced(client.clone(), &namespace),
        |_| true,
    );
    // The watches' first lists (of an empty namespace) are made before the system is.
    tokio::time::sleep(Duration::from_secs(1)).await;
    systems::create_named(&client, &name, "poliklinika-medicus.yaml", |m| {
        m["spec"]["application"]["replicas"] = json!(50);
    })
    .await;
    systems::wait_reason(
        &client,
        &name,
        "ApplicationReady",
        "QuotaExceeded",
        Duration::from_secs(120),
    )
    .await;
    // The ReplicaSet keeps trying: give it time to slip past, as it did.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for task in [pods, quotas, deployments] {
        task.abort();
    }
    let (in_force, created) = (
        quota_in_force.load(Ordering::SeqCst),
        deployment_created.load(Ordering::SeqCst),
    );
    assert!(
        in_force > 0 && created > 0,
        "quota status at {in_force}, Deployment at {created}"
    );
    assert!(
        created > in_force,
        "the Deployment was created (revision {created}) before the quota was in force (revision {in_force})"
    );
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &namespace)
        .get("quota")
        .await
        .unwrap();
    let hard: usize = quota.spec.unwrap().hard.unwrap()["pods"].0.parse().unwrap();
    let most = most.load(Ordering::SeqCst);
    assert!(
        most <= hard,
        "{most} pods at once in a namespace whose quota allows {hard}"
    );
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

/// Makes the cluster refuse, in namespace `namespace` only, `resource` objects
/// (`group/version/plural`) for which `expression` (CEL over `object`) is false, with
/// `message`: a ValidatingAdmissionPolicy, as a data centre's own admission rules would.
/// Returns once the policy is in force (a dry run of `probe` is refused).
async fn cluster_policy(
    client: &kube::Client,
    namespace: &str,
    resource: (&str, &str, &str),
    expression: &str,
    message: &str,
    probe: serde_json::Value,
) {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
    let (group, version, plural) = resource;
    let name = format!("refuse-{namespace}");
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [{
                    "apiGroups": [group], "apiVersions": [version],
                    "operations": ["CREATE", "UPDATE"], "resources": [plural],
                }],
                "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": namespace } },
            },
            "validations": [{ "expression": expression, "message": message }],
        },
    }))
    .unwrap();
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "policyName": name, "validationActions": ["Deny"] },
    }))
    .unwrap();
    Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let kind = probe["kind"].as_str().unwrap().to_string();
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, &kind), plural);
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
    let probe: DynamicObject = serde_json::from_value(probe).unwrap();
    until(
        "the policy to be in force",
        Duration::from_secs(30),
        || async {
            let dry_run = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            match api.create(&dry_run, &probe).await {
                Err(kube::Error::Api(s)) if s.message.contains(message) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// Application resources the cluster refuses (here a data centre's
/// admission policy capping application memory; what Kubernetes itself refuses is refused
/// at admission) are reported in ApplicationReady with the API server's own
/// words, and Ready turns False.
#[tokio::test]
async fn application_resources_the_cluster_refuses_are_reported() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let systems_api = Api::<HealthSystem>::all(client.clone());
    let name = systems::create(&client, "memcap", "poliklinika-medicus.yaml", |_| {}).await;
    systems::wait_ready(&client, &name).await;
    let message = "the data centre caps an application container's memory at 2Gi";
    cluster_policy(
        &client,
        &format!("hs-{name}"),
        ("apps", "v1", "deployments"),
        "object.spec.template.spec.containers.all(c, !has(c.resources) || !has(c.resources.limits) || !('memory' in c.resources.limits) || quantity(string(c.resources.limits['memory'])).compareTo(quantity('2Gi')) <= 0)",
        message,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "probe" },
            "spec": {
                "selector": { "matchLabels": { "a": "b" } },
                "template": {
                    "metadata": { "labels": { "a": "b" } },
                    "spec": { "containers": [{ "name": "c", "image": "x",
                        "resources": { "limits": { "memory": "4Gi" } } }] },
                },
            },
        }),
    )
    .await;
    systems_api
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "spec": { "application": {
                "resources": { "requests": { "memory": "1Gi" }, "limits": { "memory": "4Gi" } }
            } } })),
        )
        .await
        .unwrap();
    let (system, application) = systems::wait_reason(
        &client,
        &name,
        "ApplicationReady",
        "DeploymentRefused",
        Duration::from_secs(60),
    )
    .await;
    assert!(application.message.contains(message), "{application:?}");
    assert_eq!(condition(&system, "Ready").unwrap().status, "False");
}

/// A spec the API server admits but the cluster refuses (here a data
/// centre's admission policy forbidding ingress from legacy proxies; a label key Kubernetes
/// itself refuses is refused at admission) is reported: the subsystem's
/// condition says which object was refused and why, Ready turns False (no stale
/// Ready=True), a Warning event is published, and the rest of the system is still applied.
#[tokio::test]
async fn a_child_the_cluster_refuses_is_reported_in_its_subsystem() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let name = systems::create(&client, "refused", "poliklinika-medicus.yaml", |_| {}).await;
    systems::wait_ready(&client, &name).await;
    let message = "the data centre forbids ingress from legacy-proxy pods";
    cluster_policy(
        &client,
        &format!("hs-{name}"),
        ("networking.k8s.io", "v1", "networkpolicies"),
        "!has(object.spec.ingress) || !object.spec.ingress.exists(r, has(r.from) && r.from.exists(p, has(p.podSelector) && has(p.podSelector.matchLabels) && 'app' in p.podSelector.matchLabels && p.podSelector.matchLabels['app'] == 'legacy-proxy'))",
        message,
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": { "name": "probe" },
            "spec": { "podSelector": {}, "ingress": [{ "from": [
                { "podSelector": { "matchLabels": { "app": "legacy-proxy" } } }
            ] }] },
        }),
    )
    .await;
    let systems_api = Api::<HealthSystem>::all(client.clone());
    systems_api
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "spec": {
                "network": { "allowFrom": [{ "podSelector": { "matchLabels": { "app": "legacy-proxy" } } }] },
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
    assert!(network.message.contains(message), "{network:?}");
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
