//! Credentials that cannot drift from the database, and a database that does not
//! block node drains.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, EvictParams};

use crate::cluster::client;
use crate::operator;
use crate::systems::{self, condition, wait_condition, wait_ready};
use crate::wait::until;

/// A credentials Secret deleted while the database holds data is never
/// replaced by a new password (the data volume was initialised with the old one): the
/// system reports `CredentialsMissing` and a Warning event says what to do.
#[tokio::test]
async fn a_deleted_secret_is_reported_and_never_regenerated_while_data_exists() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let name = systems::create(&client, "creds", "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let namespace = format!("hs-{name}");
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    secrets
        .delete("database-credentials", &DeleteParams::default())
        .await
        .unwrap();
    let system = wait_condition(&client, &name, "DatabaseReady", "False").await;
    let database = condition(&system, "DatabaseReady").unwrap();
    assert_eq!(database.reason, "CredentialsMissing", "{database:?}");
    assert!(
        database.message.contains("database-credentials"),
        "{database:?}"
    );
    until(
        "a CredentialsMissing event",
        Duration::from_secs(30),
        || async { systems::has_warning(&client, &name, "CredentialsMissing").await },
    )
    .await;
    // Several passes later, still no new password.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        secrets
            .get_opt("database-credentials")
            .await
            .unwrap()
            .is_none(),
        "a new password was generated for a database initialised with the old one"
    );
}

/// Secrets are not watched (the operator may read only its own, by name): a Secret deleted
/// by a break-glass user is found by the operator's sweep, and one whose password the
/// database takes on every start (the monitoring role's) is made again, with a new password.
#[tokio::test]
async fn a_deleted_secret_the_database_takes_on_start_is_made_again_by_the_sweep() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let name = systems::create(&client, "resweep", "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let secrets = Api::<Secret>::namespaced(client.clone(), &format!("hs-{name}"));
    let before = secrets.get("database-monitoring").await.unwrap();
    secrets
        .delete("database-monitoring", &DeleteParams::default())
        .await
        .unwrap();
    let after = until(
        "database-monitoring made again",
        Duration::from_secs(120),
        || async {
            match secrets.get_opt("database-monitoring").await {
                Ok(Some(secret)) if secret.metadata.uid != before.metadata.uid => Ok(secret),
                other => Err(format!("{:?}", other.map(|s| s.is_some()))),
            }
        },
    )
    .await;
    let password = |s: &Secret| s.data.as_ref().and_then(|d| d.get("password")).cloned();
    assert!(password(&after).is_some_and(|p| p.0.len() == 32));
    assert_ne!(password(&after), password(&before), "a new password");
}

/// A node drain evicts the single database pod (the StatefulSet brings
/// it back elsewhere) instead of being blocked by a budget no single instance can meet.
#[tokio::test]
async fn a_node_drain_can_evict_the_single_database_pod() {
    let client = client().await;
    operator::ensure_running(&client).await;
    let name = systems::create(&client, "drain", "lab-biomedica.yaml", |_| {}).await;
    wait_ready(&client, &name).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &format!("hs-{name}"));
    // The disruption controller must have counted the healthy pod before it can allow one.
    until("the eviction allowed", Duration::from_secs(60), || async {
        match pods.evict("database-0", &EvictParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
}
