//! One test per user-visible behaviour of the reconciler.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use healthsystem_operator::api::HealthSystem;
use healthsystem_operator::resources::labels::MANAGER;

use crate::cluster::client;
use crate::objects::{self, wait_gone};
use crate::operator;
use crate::systems::{self, condition, wait_condition, wait_ready};
use crate::wait::until;

const MINUTE: Duration = Duration::from_secs(60);

/// Creates a HealthSystem from an example under a name of its own, after `edit`, with the
/// operator running.
async fn create(client: &Client, example: &str, edit: impl FnOnce(&mut Value)) -> String {
    operator::ensure_running(client).await;
    systems::create(client, "hs", example, edit).await
}

fn ns(name: &str) -> String {
    format!("hs-{name}")
}

#[tokio::test]
async fn a_system_becomes_ready_with_every_child() {
    let client = client().await;
    let name = create(&client, "kc-kragujevac.yaml", |_| {}).await;
    let system = wait_ready(&client, &name).await;
    let namespace = ns(&name);
    let status = system.status.as_ref().unwrap();
    assert_eq!(status.namespace.as_deref(), Some(namespace.as_str()));
    assert_eq!(status.observed_generation, system.metadata.generation);
    assert_eq!(format!("{:?}", status.phase), "Some(Ready)");
    // No Prometheus Operator in the local control plane: said so, without blocking readiness.
    assert_eq!(
        condition(&system, "MonitoringReady").unwrap().reason,
        "MonitoringAPIUnavailable"
    );

    let ns_object = Api::<Namespace>::all(client.clone())
        .get(&namespace)
        .await
        .unwrap();
    assert_eq!(
        ns_object.labels()["pod-security.kubernetes.io/enforce"],
        "restricted"
    );

    // The pods were admitted under Pod Security "restricted" and are Ready; the volume is bound.
    let pod = Api::<Pod>::namespaced(client.clone(), &namespace)
        .get("database-0")
        .await
        .unwrap();
    assert!(
        pod.status
            .unwrap()
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace)
        .get("data-database-0")
        .await
        .unwrap();
    assert_eq!(claim.status.unwrap().phase.as_deref(), Some("Bound"));
    let app = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get("application")
        .await
        .unwrap();
    assert_eq!(app.status.unwrap().available_replicas, Some(2));

    let secret = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get("database-credentials")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["password"].0.len(), 32);
    assert!(
        secret.metadata.owner_references.is_none(),
        "no garbage collection path to the credentials"
    );

    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut names: Vec<String> = policies.items.iter().map(|p| p.name_any()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "allow-dns",
            "application-ingress",
            "database-clients-egress",
            "database-ingress",
            "default-deny",
            "platform-services-egress"
        ]
    );
}

/// A new namespace costs one write: it is created as it would be applied (with the
/// fingerprint of the desired object), so the operator's field manager has the create's
/// entry on it and no apply after it. It used to be created and then applied at once.
#[tokio::test]
async fn a_new_namespace_is_created_in_one_write() {
    let client = client().await;
    let name = create(&client, "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = Api::<Namespace>::all(client.clone())
        .get(&ns(&name))
        .await
        .unwrap();
    let ours: Vec<(String, String)> = namespace
        .managed_fields()
        .iter()
        .filter(|e| e.manager.as_deref() == Some(MANAGER))
        .map(|e| {
            (
                e.operation.clone().unwrap_or_default(),
                e.time.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        ours.iter().map(|(op, _)| op.as_str()).collect::<Vec<_>>(),
        ["Update"],
        "the operator's writes to the namespace: {ours:?}"
    );
    assert!(
        namespace
            .annotations()
            .contains_key(healthsystem_operator::controller::apply::fingerprint::FINGERPRINT),
        "created with the fingerprint an apply sends"
    );
}

/// The API server reads an apply as YAML, which refuses DEL and the C1 controls raw: a name
/// with one of them, admitted by the schema, made the RoleBinding's every apply fail and the
/// system never became Ready. Found by the dry-run fuzz test in CI.
#[tokio::test]
async fn an_admin_name_with_a_control_character_reaches_its_role_binding() {
    let client = client().await;
    let admin = "dba\u{7f}team\u{85}";
    let name = create(&client, "lab-biomedica.yaml", |m| {
        m["spec"]["access"]["admins"] = json!([admin]);
    })
    .await;
    wait_ready(&client, &name).await;
    let binding = Api::<RoleBinding>::namespaced(client.clone(), &ns(&name))
        .get("tenant-admins")
        .await
        .unwrap();
    let subjects: Vec<String> = binding
        .subjects
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(subjects, [admin]);
}

#[tokio::test]
async fn spec_changes_reach_the_children() {
    let client = client().await;
    let name = create(&client, "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = ns(&name);
    let patch = json!({ "spec": {
        "tier": "Small",
        "sizing": null,
        "database": { "storage": "100Gi" },
        "backup": { "schedule": "15 3 * * *" },
        "access": { "admins": ["new-admins"] }
    }});
    Api::<HealthSystem>::all(client.clone())
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &namespace);
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
    let crons = Api::<CronJob>::namespaced(client.clone(), &namespace);
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &namespace);
    until("every change applied", 2 * MINUTE, || async {
        let quota = quotas.get("quota").await.map_err(|e| e.to_string())?;
        let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
        let claim = claims
            .get("data-database-0")
            .await
            .map_err(|e| e.to_string())?;
        let size = claim
            .spec
            .and_then(|s| s.resources)
            .and_then(|r| r.requests)
            .unwrap_or_default();
        let schedule = crons
            .get("backup")
            .await
            .map_err(|e| e.to_string())?
            .spec
            .schedule;
        let admins = bindings
            .get("tenant-admins")
            .await
            .map_err(|e| e.to_string())?
            .subjects
            .unwrap_or_default();
        let seen = (
            hard.get("requests.cpu").map(|q| q.0.clone()),
            size.get("storage").map(|q| q.0.clone()),
            schedule,
            admins.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        );
        if seen
            == (
                Some("2".into()),
                Some("100Gi".into()),
                "15 3 * * *".to_string(),
                vec!["new-admins".to_string()],
            )
        {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn drift_is_restored() {
    let client = client().await;
    let name = create(&client, "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = ns(&name);
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace);
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &namespace);
    let before = policies.get("default-deny").await.unwrap().uid();
    policies
        .delete("default-deny", &DeleteParams::default())
        .await
        .unwrap();
    let edit = json!({ "spec": { "hard": { "pods": "999" } } });
    quotas
        .patch("quota", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();

    until(
        "default-deny re-created and the quota restored",
        MINUTE,
        || async {
            let policy = policies
                .get_opt("default-deny")
                .await
                .map_err(|e| e.to_string())?;
            let pods = quotas
                .get("quota")
                .await
                .map_err(|e| e.to_string())?
                .spec
                .and_then(|s| s.hard)
                .and_then(|h| h.get("pods").map(|q| q.0.clone()));
            match (policy, pods.as_deref()) {
                (Some(p), Some("50")) if p.uid() != before => Ok(()),
                (p, pods) => Err(format!("policy {:?}, pods {pods:?}", p.map(|p| p.uid()))),
            }
        },
    )
    .await;
}

/// Every object of the system, by kind and name, with its UID and resourceVersion.
async fn snapshot(client: &Client, name: &str) -> BTreeMap<String, (String, String)> {
    let namespace = ns(name);
    let selector = format!("sdc.gov.rs/healthsystem={name}");
    let identity = |o: &DynamicObject| {
        (
            o.uid().unwrap_or_default(),
            o.resource_version().unwrap_or_default(),
        )
    };
    let mut out: BTreeMap<String, (String, String)> =
        objects::in_namespace(client, &namespace, Some(&selector))
            .await
            .iter()
            .map(|(key, object)| (key.clone(), identity(object)))
            .collect();
    let namespace_object = Api::<Namespace>::all(client.clone())
        .get(&namespace)
        .await
        .unwrap();
    out.insert(
        format!("Namespace/{namespace}"),
        (
            namespace_object.uid().unwrap_or_default(),
            namespace_object.resource_version().unwrap_or_default(),
        ),
    );
    let system = Api::<HealthSystem>::all(client.clone())
        .get(name)
        .await
        .unwrap();
    out.insert(
        "HealthSystem".into(),
        (
            system.uid().unwrap_or_default(),
            system.resource_version().unwrap_or_default(),
        ),
    );
    out
}

#[tokio::test]
async fn a_restarted_operator_keeps_credentials_and_children_and_writes_nothing() {
    let client = client().await;
    let name = create(&client, "poliklinika-medicus.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = ns(&name);
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    let credentials = secrets.get("database-credentials").await.unwrap().data;
    // Let the last watch events of the first convergence settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = snapshot(&client, &name).await;
    assert!(before.len() >= 15, "{before:?}");

    let offset = operator::restart();
    let marker = format!("reconcile{{healthsystem={name}}}");
    until(
        "the restarted operator to reconcile the system",
        MINUTE,
        || async {
            let log = operator::log_since(offset);
            if log
                .lines()
                .any(|l| l.contains(&marker) && l.contains("reconciled"))
            {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;
    let line = operator::log_since(offset)
        .lines()
        .find(|l| l.contains(&marker) && l.contains("reconciled"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("written=0")
            && line.contains("pruned=0")
            && line.contains("status=Unchanged"),
        "{line}"
    );

    let after = snapshot(&client, &name).await;
    assert_eq!(
        after, before,
        "no child was recreated or written, nor the HealthSystem"
    );
    assert_eq!(
        secrets.get("database-credentials").await.unwrap().data,
        credentials,
        "credentials byte-identical"
    );
}

#[tokio::test]
async fn deletion_with_retain_keeps_namespace_claim_and_credentials() {
    let client = client().await;
    let name = create(&client, "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = ns(&name);
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    let credentials = secrets.get("database-credentials").await.unwrap().data;
    let systems = Api::<HealthSystem>::all(client.clone());
    systems
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&systems, &name).await;

    tokio::time::sleep(Duration::from_secs(5)).await;
    let ns_object = Api::<Namespace>::all(client.clone())
        .get(&namespace)
        .await
        .unwrap();
    assert!(ns_object.metadata.deletion_timestamp.is_none());
    let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace)
        .get("data-database-0")
        .await
        .unwrap();
    assert!(claim.metadata.deletion_timestamp.is_none());
    assert_eq!(
        secrets.get("database-credentials").await.unwrap().data,
        credentials
    );
    assert!(
        Api::<StatefulSet>::namespaced(client.clone(), &namespace)
            .get_opt("database")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn deletion_with_delete_removes_the_namespace_then_the_finalizer() {
    let client = client().await;
    let name = create(&client, "lab-biomedica.yaml", |m| {
        m["spec"]["deletionPolicy"] = json!("Delete")
    })
    .await;
    let system = wait_ready(&client, &name).await;
    assert!(
        system
            .finalizers()
            .iter()
            .any(|f| f == "sdc.gov.rs/deletion-policy")
    );
    let systems = Api::<HealthSystem>::all(client.clone());
    systems
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&systems, &name).await;
    // The finalizer is only released once the namespace is gone.
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&ns(&name))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_successful_backup_job_shows_in_status() {
    let client = client().await;
    let name = create(&client, "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = ns(&name);
    systems::create_backup_job(&client, &namespace, "backup-manual", None).await;

    let systems = Api::<HealthSystem>::all(client.clone());
    let system = until("the backup time in status", 2 * MINUTE, || async {
        let system = systems.get(&name).await.map_err(|e| e.to_string())?;
        match system
            .status
            .as_ref()
            .and_then(|s| s.backup.as_ref())
            .and_then(|b| b.last_successful_time.as_ref())
        {
            Some(_) => Ok(system),
            None => Err("no lastSuccessfulTime yet".to_string()),
        }
    })
    .await;
    assert_eq!(
        condition(&system, "BackupReady").unwrap().reason,
        "BackupFresh"
    );
}

#[tokio::test]
async fn an_unknown_storage_class_is_explained_in_status() {
    let client = client().await;
    let name = create(&client, "lab-biomedica.yaml", |m| {
        m["spec"]["database"]["storageClassName"] = json!("gold-nonexistent")
    })
    .await;
    let system = until(
        "DatabaseReady to explain the storage class",
        2 * MINUTE,
        || async {
            let system = Api::<HealthSystem>::all(client.clone())
                .get(&name)
                .await
                .map_err(|e| e.to_string())?;
            match condition(&system, "DatabaseReady") {
                Some(c) if c.reason == "StorageClassNotFound" => Ok(system),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert!(
        condition(&system, "DatabaseReady")
            .unwrap()
            .message
            .contains("gold-nonexistent")
    );
    assert_eq!(condition(&system, "Ready").unwrap().status, "False");
    assert_eq!(
        format!("{:?}", system.status.unwrap().phase),
        "Some(Degraded)"
    );
}

#[tokio::test]
async fn an_unknown_platform_service_is_reported() {
    let client = client().await;
    let name = create(&client, "poliklinika-medicus.yaml", |m| {
        m["spec"]["network"]["platformServices"] = json!(["e-referral", "e-unknown-registry"])
    })
    .await;
    let system = wait_condition(&client, &name, "NetworkIsolated", "False").await;
    let network = condition(&system, "NetworkIsolated").unwrap();
    assert_eq!(network.reason, "UnknownPlatformService");
    assert!(network.message.contains("e-unknown-registry"));
}

/// A NetworkPolicy and a RoleBinding someone else made in a system's namespace (a tenant with
/// too much access, or a break-glass user) are named in status within seconds, and the
/// system is Ready again once they are gone: isolation is never silently undone.
#[tokio::test]
async fn foreign_policies_and_bindings_show_in_status_within_seconds() {
    let client = client().await;
    let name = create(&client, "poliklinika-medicus.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = ns(&name);
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace);
    let allow_all: NetworkPolicy = serde_json::from_value(json!({
        "metadata": { "name": "allow-all" },
        "spec": { "podSelector": {}, "ingress": [{}], "egress": [{}],
                  "policyTypes": ["Ingress", "Egress"] }
    }))
    .unwrap();
    let started = std::time::Instant::now();
    policies
        .create(&Default::default(), &allow_all)
        .await
        .unwrap();
    let system = wait_condition(&client, &name, "NetworkIsolated", "False").await;
    let network = condition(&system, "NetworkIsolated").unwrap();
    assert_eq!(network.reason, "ForeignNetworkPolicy");
    assert!(network.message.contains("allow-all"), "{network:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reported after {:?}",
        started.elapsed()
    );
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &namespace);
    let break_glass: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "break-glass" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "on-call" }]
    }))
    .unwrap();
    bindings
        .create(&Default::default(), &break_glass)
        .await
        .unwrap();
    let system = wait_condition(&client, &name, "AccessControlled", "False").await;
    let access = condition(&system, "AccessControlled").unwrap();
    assert_eq!(access.reason, "ForeignRoleBinding");
    assert!(access.message.contains("break-glass"), "{access:?}");
    assert_eq!(condition(&system, "Ready").unwrap().status, "False");
    policies
        .delete("allow-all", &DeleteParams::default())
        .await
        .unwrap();
    bindings
        .delete("break-glass", &DeleteParams::default())
        .await
        .unwrap();
    wait_ready(&client, &name).await;
}

#[tokio::test]
async fn switching_off_the_application_prunes_it() {
    let client = client().await;
    let name = create(&client, "poliklinika-medicus.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = ns(&name);
    let patch = json!({ "spec": { "application": null } });
    Api::<HealthSystem>::all(client.clone())
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    wait_gone(&deployments, "application").await;
    let service = ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&());
    let services: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &service);
    wait_gone(&services, "application").await;
    // The status that answers the change: the one written for its generation (the pruning
    // reconcile writes it just after the deletes the test has seen).
    let systems = Api::<HealthSystem>::all(client.clone());
    let system = until("the status of the new generation", 2 * MINUTE, || async {
        let system = systems.get(&name).await.map_err(|e| e.to_string())?;
        let observed = system.status.as_ref().and_then(|s| s.observed_generation);
        let ready = condition(&system, "Ready").is_some_and(|c| c.status == "True");
        if ready && observed >= system.metadata.generation {
            Ok(system)
        } else {
            Err(format!("observed generation {observed:?}"))
        }
    })
    .await;
    assert!(condition(&system, "ApplicationReady").is_none());
    // The data stays.
    assert!(
        Api::<Secret>::namespaced(client.clone(), &namespace)
            .get_opt("database-credentials")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_backup_older_than_the_rpo_makes_backup_ready_false() {
    let client = client().await;
    // lab-biomedica's RPO is 8h.
    let name = create(&client, "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = ns(&name);
    // A backup Job that succeeded ten hours ago. No controller of this cluster may touch it
    // (spec.managedBy), so its status can say when it finished.
    let jobs = Api::<Job>::namespaced(client.clone(), &namespace);
    systems::create_backup_job(
        &client,
        &namespace,
        "backup-ten-hours-ago",
        Some("tests.sdc.gov.rs/recorded-backup"),
    )
    .await;
    let now = k8s_openapi::jiff::Timestamp::now();
    let started = now - k8s_openapi::jiff::SignedDuration::from_hours(10);
    let finished = started + k8s_openapi::jiff::SignedDuration::from_mins(2);
    let (started, finished) = (
        started.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        finished.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    let status = json!({ "status": {
        "startTime": started,
        "completionTime": finished,
        "succeeded": 1,
        "conditions": [
            { "type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": finished, "reason": "CompletionsReached", "message": "recorded" },
            { "type": "Complete", "status": "True", "lastTransitionTime": finished, "reason": "CompletionsReached", "message": "recorded" }
        ]
    }});
    jobs.patch_status(
        "backup-ten-hours-ago",
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .unwrap();

    let system = wait_condition(&client, &name, "BackupReady", "False").await;
    assert_eq!(
        condition(&system, "BackupReady").unwrap().reason,
        "BackupStale"
    );
    assert_eq!(condition(&system, "Ready").unwrap().status, "False");
    assert_eq!(
        format!("{:?}", system.status.as_ref().unwrap().phase),
        "Some(Degraded)"
    );
    let recorded = system
        .status
        .unwrap()
        .backup
        .unwrap()
        .last_successful_time
        .unwrap();
    assert_eq!(
        recorded.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        finished
    );
}

/// A child deleted by hand is restored within seconds, not at the next
/// resync (10 minutes), whatever its kind; nothing else is needed to wake the owner.
#[tokio::test]
async fn a_child_deleted_by_hand_is_restored_within_seconds() {
    let client = client().await;
    let name = create(&client, "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = ns(&name);
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace);
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &namespace);
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &namespace);
    let before = (
        policies.get("default-deny").await.unwrap().uid(),
        bindings.get("tenant-admins").await.unwrap().uid(),
        quotas.get("quota").await.unwrap().uid(),
    );
    policies
        .delete("default-deny", &DeleteParams::default())
        .await
        .unwrap();
    bindings
        .delete("tenant-admins", &DeleteParams::default())
        .await
        .unwrap();
    quotas
        .delete("quota", &DeleteParams::default())
        .await
        .unwrap();
    until(
        "the deleted policy, binding and quota re-created",
        Duration::from_secs(30),
        || async {
            let now = (
                policies
                    .get_opt("default-deny")
                    .await
                    .map_err(|e| e.to_string())?,
                bindings
                    .get_opt("tenant-admins")
                    .await
                    .map_err(|e| e.to_string())?,
                quotas.get_opt("quota").await.map_err(|e| e.to_string())?,
            );
            match now {
                (Some(p), Some(b), Some(q))
                    if p.uid() != before.0 && b.uid() != before.1 && q.uid() != before.2 =>
                {
                    Ok(())
                }
                other => Err(format!(
                    "policy {:?}, binding {:?}, quota {:?}",
                    other.0.map(|o| o.uid()),
                    other.1.map(|o| o.uid()),
                    other.2.map(|o| o.uid())
                )),
            }
        },
    )
    .await;
}

/// A field removed from the spec is removed from the child. Removing the
/// namespaceSelector of an allowFrom entry narrows the ingress to the system's own pods; the
/// policy must not keep the wider rule.
#[tokio::test]
async fn a_field_removed_from_the_spec_is_removed_from_the_child() {
    let client = client().await;
    let source = json!({
        "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "sdc-ingress" } },
        "podSelector": { "matchLabels": { "app": "proxy" } },
    });
    let name = create(&client, "poliklinika-medicus.yaml", |m| {
        m["spec"]["network"]["allowFrom"] = json!([source]);
    })
    .await;
    wait_ready(&client, &name).await;
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns(&name));
    let peer = |policy: &NetworkPolicy| {
        serde_json::to_value(
            &policy.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0]
                .from
                .as_ref()
                .unwrap()[0],
        )
        .unwrap()
    };
    let live = policies.get("application-ingress").await.unwrap();
    assert_eq!(peer(&live), source);

    Api::<HealthSystem>::all(client.clone())
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "network": { "allowFrom": [{ "podSelector": source["podSelector"] }] } } })),
        )
        .await
        .unwrap();
    until(
        "the namespaceSelector removed from the policy",
        MINUTE,
        || async {
            let live = policies
                .get("application-ingress")
                .await
                .map_err(|e| e.to_string())?;
            let peer = peer(&live);
            if peer == json!({ "podSelector": source["podSelector"] }) {
                Ok(())
            } else {
                Err(peer.to_string())
            }
        },
    )
    .await;
}

/// The names of the containers of a StatefulSet's pod template.
fn container_names(statefulset: &StatefulSet) -> Vec<String> {
    let template = statefulset.spec.as_ref().unwrap().template.spec.as_ref();
    template
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

/// What someone else adds inside a child's spec is taken back (a
/// default-deny narrowed to some pods, an extra label on a policy's selector, a sidecar in
/// the database pod), while labels and annotations others add to the objects stay.
#[tokio::test]
async fn additions_by_others_inside_a_spec_are_removed_and_their_labels_kept() {
    let client = client().await;
    let name = create(&client, "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = ns(&name);
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace);
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &namespace);
    let by_hand = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    let deny_before = policies.get("default-deny").await.unwrap().spec;
    let ingress_before = policies.get("database-ingress").await.unwrap().spec;
    let containers_before = container_names(&statefulsets.get("database").await.unwrap());

    policies
        .patch(
            "default-deny",
            &by_hand,
            &Patch::Merge(json!({
                "metadata": { "labels": { "team": "sre" }, "annotations": { "note": "kept" } },
                "spec": { "podSelector": { "matchLabels": { "app": "only-this" } } }
            })),
        )
        .await
        .unwrap();
    policies
        .patch(
            "database-ingress",
            &by_hand,
            &Patch::Merge(
                json!({ "spec": { "podSelector": { "matchLabels": { "extra": "1" } } } }),
            ),
        )
        .await
        .unwrap();
    // A strategic merge patch adds to the containers list (merged by name).
    let sidecar = json!({ "spec": { "template": { "spec": { "containers": [
        { "name": "sidecar", "image": "registry.invalid/sidecar:1" }
    ] } } } });
    statefulsets
        .patch("database", &by_hand, &Patch::Strategic(sidecar))
        .await
        .unwrap();

    until("the additions taken back", MINUTE, || async {
        let deny = policies
            .get("default-deny")
            .await
            .map_err(|e| e.to_string())?;
        let ingress = policies
            .get("database-ingress")
            .await
            .map_err(|e| e.to_string())?;
        let containers = container_names(
            &statefulsets
                .get("database")
                .await
                .map_err(|e| e.to_string())?,
        );
        if deny.spec == deny_before
            && ingress.spec == ingress_before
            && containers == containers_before
        {
            Ok(deny)
        } else {
            Err(format!(
                "deny {:?}, ingress {:?}, containers {containers:?}",
                deny.spec.map(|s| s.pod_selector),
                ingress.spec.map(|s| s.pod_selector)
            ))
        }
    })
    .await;
    // Others' labels and annotations stay, through more passes of the reconciler.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deny = policies.get("default-deny").await.unwrap();
    assert_eq!(deny.labels().get("team").map(String::as_str), Some("sre"));
    assert_eq!(
        deny.annotations().get("note").map(String::as_str),
        Some("kept")
    );
    assert_eq!(deny.spec, deny_before);
}
