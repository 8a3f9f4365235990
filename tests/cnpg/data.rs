//! Data safety on CloudNativePG, on the real node. A single-instance system whose claim is
//! lost (deleted with its pod): CloudNativePG refuses to start an empty database, the
//! operator deletes and re-creates nothing, and DatabaseReady says `DataMissing`, as for the
//! StatefulSet's lost claim. A system deleted with `Retain` and made again under its name
//! adopts the same Cluster, claim and credentials.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};

use healthsystem_operator::api::{HealthSystem, Phase};
use healthsystem_test_support::{cnpg, node, systems};

#[tokio::test]
async fn a_lost_claim_of_a_single_instance_system_is_data_missing_and_no_empty_database_starts() {
    let client = super::engine::setup().await;
    let name = systems::create(&client, "lost-claim", "lab-biomedica.yaml", |m| {
        node::small_system(m);
    })
    .await;
    let namespace = format!("hs-{name}");
    systems::wait_ready(&client, &name).await;
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    let instances = ListParams::default().labels("cnpg.io/cluster=postgres");
    let before = claims.list(&instances).await.unwrap().items;
    assert_eq!(before.len(), 1, "one instance, one claim");

    // The claim goes (its protection holds it while the pod runs), then the pod.
    claims
        .delete("postgres-1", &DeleteParams::default())
        .await
        .unwrap();
    pods.delete("postgres-1", &DeleteParams::default())
        .await
        .unwrap();
    let (_, condition) = systems::wait_reason(
        &client,
        &name,
        "DatabaseReady",
        "DataMissing",
        Duration::from_secs(120),
    )
    .await;
    assert!(
        condition.message.contains("no empty database starts"),
        "{}",
        condition.message
    );

    // And it stays so: no instance, no new claim, the Cluster kept.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let running: Vec<String> = pods
        .list(&instances)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert!(running.is_empty(), "an instance started: {running:?}");
    assert!(
        claims.list(&instances).await.unwrap().items.is_empty(),
        "a new claim was made"
    );
    assert!(cnpg::get(&client, &namespace, "postgres").await.is_ok());
    let system = Api::<HealthSystem>::all(client.clone())
        .get(&name)
        .await
        .unwrap();
    let status = system.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Degraded));
    let database = status
        .conditions
        .iter()
        .find(|c| c.type_ == "DatabaseReady")
        .unwrap();
    assert_eq!(database.reason, "DataMissing", "{database:?}");
}

#[tokio::test]
async fn a_system_recreated_after_retain_keeps_its_cluster_claim_and_credentials() {
    let client = super::engine::setup().await;
    let name = systems::create(&client, "retained", "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["deletionPolicy"] = serde_json::json!("Retain");
    })
    .await;
    let namespace = format!("hs-{name}");
    systems::wait_ready(&client, &name).await;
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    let instances = ListParams::default().labels("cnpg.io/cluster=postgres");
    let uids = |list: Vec<PersistentVolumeClaim>| -> Vec<String> {
        list.iter().filter_map(|c| c.uid()).collect()
    };
    let claim_uids = uids(claims.list(&instances).await.unwrap().items);
    let cluster_uid = cnpg::get(&client, &namespace, "postgres")
        .await
        .unwrap()
        .uid();
    let credentials = secrets.get("database-credentials").await.unwrap().data;

    systems::delete_and_wait_gone(&client, &name, Duration::from_secs(120)).await;
    // Retained: the Cluster and its claim outlive the system.
    assert_eq!(
        cnpg::get(&client, &namespace, "postgres")
            .await
            .unwrap()
            .uid(),
        cluster_uid
    );

    systems::create_named(&client, &name, "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["deletionPolicy"] = serde_json::json!("Retain");
    })
    .await;
    systems::wait_ready(&client, &name).await;
    assert_eq!(
        cnpg::get(&client, &namespace, "postgres")
            .await
            .unwrap()
            .uid(),
        cluster_uid,
        "the same Cluster"
    );
    assert_eq!(
        uids(claims.list(&instances).await.unwrap().items),
        claim_uids,
        "the same claim"
    );
    assert_eq!(
        secrets.get("database-credentials").await.unwrap().data,
        credentials,
        "the same credentials"
    );
}
