//! Issue 12, defect 2: reasons that say what is wrong, not "starting".

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
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
    let systems_api = Api::<HealthSystem>::all(client.clone());
    let (system, application): (HealthSystem, Condition) = until(
        "ApplicationReady says the quota",
        Duration::from_secs(120),
        || async {
            let system = systems_api.get(&name).await.map_err(|e| e.to_string())?;
            match condition(&system, "ApplicationReady") {
                Some(c) if c.reason == "QuotaExceeded" => {
                    let c = c.clone();
                    Ok((system, c))
                }
                other => Err(format!("{other:?}")),
            }
        },
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
