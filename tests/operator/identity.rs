//! Tenant identity: a HealthSystem writes only into the namespace the operator
//! created for it (recorded by its UID), never takes over another system's namespace nor
//! deletes one it did not create, and a system re-created after a `Retain` deletion adopts
//! what it kept.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use healthsystem_operator::api::HealthSystem;

use crate::cluster::{client, unique};
use crate::objects::{self, wait_gone};
use crate::operator;
use crate::systems::{self, condition, wait_condition, wait_ready};
use crate::wait::until;

/// The annotation that records the owner's UID on every child.
const OWNER_UID: &str = "sdc.gov.rs/healthsystem-uid";
/// The annotation that records the UID of the system a namespace was adopted from.
const ADOPTED_FROM: &str = "sdc.gov.rs/adopted-from";

/// Every object of the kinds a system has, in `namespace`, whoever made it, as JSON text:
/// equal snapshots mean byte-identical objects (resourceVersions included).
async fn contents(client: &Client, namespace: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let namespace_object = Api::<Namespace>::all(client.clone())
        .get(namespace)
        .await
        .unwrap();
    out.insert(
        "Namespace".into(),
        serde_json::to_string(&namespace_object).unwrap(),
    );
    for (key, object) in objects::in_namespace(client, namespace, None).await {
        out.insert(key, serde_json::to_string(&object).unwrap());
    }
    out
}

/// Waits until kube-controller-manager has put into a new namespace what it puts into every
/// one (the `default` ServiceAccount, the `kube-root-ca.crt` ConfigMap), so a snapshot taken
/// afterwards changes only if someone else writes.
async fn settled(client: &Client, namespace: &str) {
    until(
        "the default ServiceAccount and kube-root-ca.crt",
        Duration::from_secs(30),
        || async {
            let snapshot = contents(client, namespace).await;
            match ["ServiceAccount/default", "ConfigMap/kube-root-ca.crt"]
                .iter()
                .find(|key| !snapshot.contains_key(**key))
            {
                Some(missing) => Err(format!("{missing} not yet made")),
                None => Ok(()),
            }
        },
    )
    .await
}

/// Waits until `name` reports `NamespaceReady=False` because the namespace is not its own.
async fn wait_not_owned(client: &Client, name: &str) -> HealthSystem {
    let system = wait_condition(client, name, "NamespaceReady", "False").await;
    let namespace_ready = condition(&system, "NamespaceReady").unwrap();
    assert_eq!(
        namespace_ready.reason, "NamespaceNotOwned",
        "{namespace_ready:?}"
    );
    assert_eq!(condition(&system, "Ready").unwrap().status, "False");
    system
}

/// A HealthSystem naming another system's namespace takes nothing over:
/// the victim's objects (its RoleBindings, policies, credentials) stay byte-identical.
#[tokio::test]
async fn a_system_naming_another_systems_namespace_takes_nothing_over() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let victim = systems::create(&client, "victim", "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &victim).await;
    let namespace = format!("hs-{victim}");
    let before = contents(&client, &namespace).await;

    let intruder = systems::create(&client, "intruder", "lab-biomedica.yaml", |m| {
        m["spec"]["namespace"] = json!(namespace);
        m["spec"]["access"]["admins"] = json!(["intruders"]);
    })
    .await;
    wait_not_owned(&client, &intruder).await;
    until(
        "a NamespaceNotOwned event",
        Duration::from_secs(30),
        || async { systems::has_warning(&client, &intruder, "NamespaceNotOwned").await },
    )
    .await;
    // Some more passes of the intruder's reconcile, then nothing of the victim has changed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(contents(&client, &namespace).await, before);
    let victim_status = wait_ready(&client, &victim).await;
    assert_eq!(condition(&victim_status, "Ready").unwrap().status, "True");
}

/// A namespace the operator did not create is never written, and a
/// HealthSystem pointed at it with `deletionPolicy: Delete` never deletes it.
#[tokio::test]
async fn a_namespace_the_operator_did_not_create_is_neither_written_nor_deleted() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let namespace = unique("existing");
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": namespace } })).unwrap(),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "records" },
                "data": { "patients": "irreplaceable" }
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    settled(&client, &namespace).await;
    let before = contents(&client, &namespace).await;

    let name = systems::create(&client, "foreign", "lab-biomedica.yaml", |m| {
        m["spec"]["namespace"] = json!(namespace);
        m["spec"]["deletionPolicy"] = json!("Delete");
    })
    .await;
    wait_not_owned(&client, &name).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        contents(&client, &namespace).await,
        before,
        "nothing written"
    );

    let systems_api = Api::<HealthSystem>::all(client.clone());
    systems_api
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&systems_api, &name).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        contents(&client, &namespace).await,
        before,
        "the namespace and its data are untouched after the deletion"
    );
}

/// A system deleted with `Retain` and re-created under the same name adopts its namespace,
/// data claim and credentials as they are, and the namespace records whom it was adopted
/// from.
#[tokio::test]
async fn a_system_recreated_after_retain_adopts_what_it_kept() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let name = systems::create(&client, "readopt", "lab-biomedica.yaml", |_| {}).await;
    let first = wait_ready(&client, &name).await;
    let first_uid = first.uid().unwrap();
    let namespace = format!("hs-{name}");
    let namespaces = Api::<Namespace>::all(client.clone());
    let kept = namespaces.get(&namespace).await.unwrap();
    assert_eq!(
        kept.annotations().get(OWNER_UID),
        Some(&first_uid),
        "the namespace records its owner"
    );
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
    let credentials = secrets.get("database-credentials").await.unwrap().data;
    let claim_uid = claims.get("data-database-0").await.unwrap().uid();

    let systems_api = Api::<HealthSystem>::all(client.clone());
    systems_api
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&systems_api, &name).await;

    let again = systems::create_named(&client, &name, "lab-biomedica.yaml", |_| {}).await;
    let second = wait_ready(&client, &again).await;
    let second_uid = second.uid().unwrap();
    assert_ne!(second_uid, first_uid);
    let adopted = namespaces.get(&namespace).await.unwrap();
    assert_eq!(adopted.uid(), kept.uid(), "the same namespace");
    assert_eq!(adopted.annotations().get(OWNER_UID), Some(&second_uid));
    assert_eq!(adopted.annotations().get(ADOPTED_FROM), Some(&first_uid));
    assert_eq!(
        secrets.get("database-credentials").await.unwrap().data,
        credentials,
        "the same credentials"
    );
    assert_eq!(
        claims.get("data-database-0").await.unwrap().uid(),
        claim_uid,
        "the same data claim"
    );
}
