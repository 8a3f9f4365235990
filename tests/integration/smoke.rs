//! Proof that the test environment is a real cluster: the controllers our operator relies on
//! (StatefulSet, CronJob and Job, garbage collection, namespace deletion), volume binding,
//! CEL admission and Pod Security enforcement all behave as on a production cluster.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::json;

use crate::cluster::{client, unique};
use crate::wait::until;

const MINUTE: Duration = Duration::from_secs(60);

async fn create_namespace(client: &Client, name: &str, labels: serde_json::Value) {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels }
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// A pod spec that Pod Security `restricted` admits.
fn restricted_pod_spec() -> serde_json::Value {
    json!({
        "securityContext": { "runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": { "type": "RuntimeDefault" } },
        "containers": [{
            "name": "main",
            "image": "registry.invalid/smoke:1",
            "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } }
        }]
    })
}

#[tokio::test]
async fn namespace_is_created_and_active() {
    let client = client().await;
    let name = unique("smoke-ns");
    create_namespace(&client, &name, json!({})).await;
    let namespaces = Api::<Namespace>::all(client);
    let phase = until("namespace Active", MINUTE, || async {
        let ns = namespaces.get(&name).await.map_err(|e| e.to_string())?;
        match ns.status.and_then(|s| s.phase) {
            Some(phase) if phase == "Active" => Ok(phase),
            other => Err(format!("phase {other:?}")),
        }
    })
    .await;
    assert_eq!(phase, "Active");
}

#[tokio::test]
async fn statefulset_pod_with_volume_claim_becomes_ready() {
    let client = client().await;
    let ns = unique("smoke-sts");
    create_namespace(
        &client,
        &ns,
        json!({ "pod-security.kubernetes.io/enforce": "restricted" }),
    )
    .await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "db" },
        "spec": {
            "serviceName": "db",
            "replicas": 1,
            "selector": { "matchLabels": { "app": "db" } },
            "template": {
                "metadata": { "labels": { "app": "db" } },
                "spec": restricted_pod_spec(),
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "sdc-encrypted",
                    "resources": { "requests": { "storage": "1Gi" } }
                }
            }]
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();

    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    until("pod db-0 Ready", 2 * MINUTE, || async {
        let pod = pods.get("db-0").await.map_err(|e| e.to_string())?;
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            Ok(())
        } else {
            Err(format!("{:?}", pod.status))
        }
    })
    .await;

    let claim = Api::<PersistentVolumeClaim>::namespaced(client, &ns)
        .get("data-db-0")
        .await
        .unwrap();
    let status = claim.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Bound"));
    assert_eq!(status.capacity.unwrap()["storage"].0, "1Gi");
}

#[tokio::test]
async fn cronjob_runs_a_job_whose_pod_succeeds() {
    let client = client().await;
    let ns = unique("smoke-cron");
    create_namespace(&client, &ns, json!({})).await;
    let cron: CronJob = serde_json::from_value(json!({
        "metadata": { "name": "tick" },
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": { "spec": { "template": {
                "spec": { "restartPolicy": "Never", "containers": [{ "name": "tick", "image": "registry.invalid/tick:1" }] }
            } } }
        }
    }))
    .unwrap();
    Api::<CronJob>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cron)
        .await
        .unwrap();

    // The CronJob controller starts a Job at the next minute boundary; kwok then runs its pod
    // to completion and the Job controller marks the Job complete.
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    let job = until("a Job of the CronJob to succeed", 3 * MINUTE, || async {
        let list = jobs
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        list.items
            .into_iter()
            .find(|j| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) >= 1)
            .ok_or_else(|| "no succeeded Job yet".to_string())
    })
    .await;
    let owner = &job.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("CronJob", "tick")
    );

    let pods = Api::<Pod>::namespaced(client, &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        pods.items
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")),
        "a pod of the Job has phase Succeeded"
    );
}

#[tokio::test]
async fn crd_cel_rule_rejects_a_bad_object_with_its_message() {
    let client = client().await;
    let group = format!("{}.smoke.test", unique("cel"));
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": { "name": format!("widgets.{group}") },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget" },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "properties": { "min": { "type": "integer" }, "max": { "type": "integer" } },
                        "x-kubernetes-validations": [{ "rule": "self.min <= self.max", "message": "min must not exceed max" }]
                    } }
                } }
            }]
        }
    }))
    .unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let name = crd.metadata.name.clone().unwrap();
    until("CRD Established", MINUTE, || async {
        let crd = crds.get(&name).await.map_err(|e| e.to_string())?;
        let established = crd.status.and_then(|s| s.conditions).is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            Ok(())
        } else {
            Err("not established".to_string())
        }
    })
    .await;

    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, "v1", "Widget"));
    let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), "default", &resource);
    let widget = |name: &str, min: i64, max: i64| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": format!("{group}/v1"), "kind": "Widget",
            "metadata": { "name": name },
            "spec": { "min": min, "max": max }
        }))
        .unwrap()
    };
    // The discovery cache of a fresh CRD can lag a moment behind Established.
    until("a valid Widget is accepted", MINUTE, || async {
        widgets
            .create(&PostParams::default(), &widget("good", 1, 2))
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let err = widgets
        .create(&PostParams::default(), &widget("bad", 3, 2))
        .await
        .expect_err("the CEL rule rejects min > max");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains("min must not exceed max"),
        "{}",
        status.message
    );

    crds.delete(&name, &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn namespace_deletion_completes() {
    let client = client().await;
    let ns = unique("smoke-del");
    create_namespace(&client, &ns, json!({})).await;
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "content" }, "data": { "a": "b" } }))
            .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let namespaces = Api::<Namespace>::all(client);
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    until("namespace gone", 2 * MINUTE, || async {
        match namespaces.get_opt(&ns).await {
            Ok(None) => Ok(()),
            Ok(Some(n)) => Err(format!("still there: {:?}", n.status)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
}

#[tokio::test]
async fn dependent_is_garbage_collected_after_its_owner() {
    let client = client().await;
    let ns = unique("smoke-gc");
    create_namespace(&client, &ns, json!({})).await;
    let configmaps = Api::<ConfigMap>::namespaced(client, &ns);
    let owner: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "owner" } })).unwrap();
    let owner = configmaps
        .create(&PostParams::default(), &owner)
        .await
        .unwrap();
    let dependent: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "dependent",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                "uid": owner.metadata.uid.unwrap()
            }]
        }
    }))
    .unwrap();
    configmaps
        .create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    configmaps
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    until("dependent garbage-collected", 2 * MINUTE, || async {
        match configmaps.get_opt("dependent").await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err("still there".to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
}

#[tokio::test]
async fn pod_security_restricted_is_enforced() {
    let client = client().await;
    let ns = unique("smoke-psa");
    create_namespace(
        &client,
        &ns,
        json!({ "pod-security.kubernetes.io/enforce": "restricted" }),
    )
    .await;
    let pods = Api::<Pod>::namespaced(client, &ns);
    // No security context at all: allowed by "baseline", refused by "restricted".
    let unhardened: Pod = serde_json::from_value(json!({
        "metadata": { "name": "root" },
        "spec": { "containers": [{ "name": "main", "image": "registry.invalid/x:1" }] }
    }))
    .unwrap();
    let err = pods
        .create(&PostParams::default(), &unhardened)
        .await
        .expect_err("an unhardened pod is refused in a restricted namespace");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}")
    };
    assert!(
        status.message.contains("violates PodSecurity \"restricted"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("runAsNonRoot"),
        "{}",
        status.message
    );

    let compliant: Pod = serde_json::from_value(
        json!({ "metadata": { "name": "ok" }, "spec": restricted_pod_spec() }),
    )
    .unwrap();
    pods.create(&PostParams::default(), &compliant)
        .await
        .unwrap();
    // Server-side apply is how the operator writes; prove the field manager sees the object.
    let applied = pods
        .patch("ok", &PatchParams::apply("smoke-test"), &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "ok", "labels": { "applied": "yes" } }
        })))
        .await
        .unwrap();
    assert_eq!(applied.metadata.labels.unwrap()["applied"], "yes");
}
