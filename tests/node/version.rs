//! The versions the platform offers are the versions it has images for: the node has
//! PostgreSQL 15 and 17, so a system asking for 16 gets nothing made (no namespace, no
//! database that could never start) and DatabaseReady says why; it is deleted cleanly.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use serde_json::json;

use healthsystem_operator::api::Phase;
use healthsystem_test_support::{node, systems};

use crate::setup;

#[tokio::test]
async fn a_version_without_an_image_on_the_node_is_refused_and_nothing_is_made() {
    let client = setup().await;
    let name = systems::create(&client, "no-version", "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["database"]["version"] = json!("16");
    })
    .await;
    let (system, database) = systems::wait_reason(
        &client,
        &name,
        "DatabaseReady",
        "VersionRefused",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        database.message.starts_with(
            "spec.database.version: PostgreSQL 16 is not offered by this platform, which has images for 15, 17 only"
        ),
        "{}",
        database.message
    );
    let status = system.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Degraded));
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "VersionRefused");
    let namespaces = Api::<Namespace>::all(client.clone());
    assert!(
        namespaces
            .get_opt(&format!("hs-{name}"))
            .await
            .unwrap()
            .is_none(),
        "no namespace is made for a system refused"
    );

    systems::delete_and_wait_gone(&client, &name, Duration::from_secs(60)).await;
}
