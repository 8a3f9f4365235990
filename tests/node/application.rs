//! An application whose image cannot be pulled says so in ApplicationReady, instead of only
//! "0 of 1 pods available". The image's registry is a closed port on loopback: the node
//! really tries, nothing leaves the machine.

use std::time::Duration;

use serde_json::json;

use healthsystem_operator::api::{HealthSystem, Phase};
use healthsystem_test_support::wait::until;
use healthsystem_test_support::{node, systems};
use kube::api::Api;

use crate::setup;

#[tokio::test]
async fn an_application_whose_image_cannot_be_pulled_says_so() {
    let client = setup().await;
    let name = systems::create(&client, "no-image", "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["application"] =
            json!({ "image": "127.0.0.1:1/his/app:1", "replicas": 1, "port": 8080 });
    })
    .await;
    let (_, condition) = systems::wait_reason(
        &client,
        &name,
        "ApplicationReady",
        "ImagePullFailing",
        Duration::from_secs(180),
    )
    .await;
    assert_eq!(condition.status, "False");
    assert!(
        condition
            .message
            .starts_with("0 of 1 pods available: 1 pod cannot pull image 127.0.0.1:1/his/app:1;"),
        "{}",
        condition.message
    );
    // Once its database is ready, the image is what holds the system: Degraded, a person
    // must act (while the database still starts it is Provisioning).
    let status = until("the system Degraded", Duration::from_secs(180), || async {
        let system = Api::<HealthSystem>::all(client.clone())
            .get(&name)
            .await
            .map_err(|e| e.to_string())?;
        let status = system.status.unwrap_or_default();
        match status.phase {
            Some(Phase::Degraded) => Ok(status),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "ImagePullFailing", "{ready:?}");
}
