//! A change of the operator's configuration that changes every database's
//! pod template (here a tier's database memory; an image works the same way) restarts the
//! fleet's databases a bounded number at a time (`rollout.maxDatabaseRestarts`), each
//! holding its slot until its new pod is ready, never all at once. On the real node, with
//! databases that really restart: its own cluster and operator, as the configuration changes.

use healthsystem_test_support::cluster;
use healthsystem_test_support::node;
use healthsystem_test_support::operator;
use healthsystem_test_support::systems;
use healthsystem_test_support::wait;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

const SYSTEMS: usize = 3;

fn config_path() -> PathBuf {
    healthsystem_test_support::target_tmpdir()
        .join(format!("rollout-config-{}.yaml", std::process::id()))
}

/// The node's configuration, one database restart at a time, with `memory` for every tier's
/// database.
fn write_config(memory: &str) {
    let mut config = node::operator_config();
    config["rollout"] = json!({ "maxDatabaseRestarts": 1 });
    for tier in ["small", "standard", "large"] {
        config["tiers"][tier]["databaseMemory"] = json!(memory);
    }
    std::fs::write(
        config_path(),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
}

/// The database pod of a system: its UID, whether it is ready, and its memory limit.
async fn database_pod(client: &Client, system: &str) -> Option<(String, bool, String)> {
    let pod = Api::<Pod>::namespaced(client.clone(), &format!("hs-{system}"))
        .get_opt("database-0")
        .await
        .ok()
        .flatten()?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.ready));
    let memory = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == "postgres"))
        .and_then(|c| {
            c.resources
                .as_ref()?
                .limits
                .as_ref()?
                .get("memory")
                .cloned()
        })
        .map(|q| q.0)
        .unwrap_or_default();
    Some((pod.metadata.uid.unwrap_or_default(), ready, memory))
}

/// `status.database.restart` of a system, read as JSON.
async fn restart_state(client: &Client, system: &str) -> Option<String> {
    let resource = ApiResource {
        group: "sdc.gov.rs".into(),
        version: "v1alpha1".into(),
        api_version: "sdc.gov.rs/v1alpha1".into(),
        kind: "HealthSystem".into(),
        plural: "healthsystems".into(),
    };
    let object = Api::<DynamicObject>::all_with(client.clone(), &resource)
        .get(system)
        .await
        .ok()?;
    object
        .data
        .pointer("/status/database/restart")
        .and_then(Value::as_str)
        .map(String::from)
}

#[tokio::test]
async fn a_configuration_change_restarts_the_databases_one_at_a_time() {
    cluster::use_real_node();
    write_config("512Mi");
    operator::use_config(config_path());
    let client = cluster::client().await;
    operator::ensure_running(&client).await;

    let mut names = Vec::new();
    for _ in 0..SYSTEMS {
        names
            .push(systems::create(&client, "roll", "lab-biomedica.yaml", node::small_system).await);
    }
    for name in &names {
        systems::wait_ready(&client, name).await;
    }
    let mut before = BTreeMap::new();
    for name in &names {
        let (uid, ready, memory) = database_pod(&client, name).await.unwrap();
        assert!(ready && memory == "512Mi", "{name}: {ready} {memory}");
        before.insert(name.clone(), uid);
    }

    // The new configuration changes every database's template at once.
    write_config("640Mi");
    operator::restart();

    let deadline = Instant::now() + Duration::from_secs(600);
    let mut most_down = 0;
    let mut states_seen = BTreeSet::new();
    loop {
        let mut down = 0;
        let mut done = 0;
        for name in &names {
            match database_pod(&client, name).await {
                Some((uid, true, memory)) if uid != before[name] && memory == "640Mi" => done += 1,
                Some((_, true, _)) => {}
                _ => down += 1,
            }
            if let Some(state) = restart_state(&client, name).await {
                states_seen.insert(state);
            }
        }
        most_down = most_down.max(down);
        assert!(
            most_down <= 1,
            "{down} databases down at once with maxDatabaseRestarts 1"
        );
        if done == SYSTEMS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {SYSTEMS} databases restarted onto the new template in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        states_seen.contains("Pending") && states_seen.contains("InProgress"),
        "status showed the restarts waiting and under way: {states_seen:?}"
    );
    for name in &names {
        systems::wait_ready(&client, name).await;
        wait::until(
            "no restart left in status",
            Duration::from_secs(120),
            || async {
                match restart_state(&client, name).await {
                    None => Ok(()),
                    Some(state) => Err(state),
                }
            },
        )
        .await;
    }
    wait::until(
        "the restart metrics at rest",
        Duration::from_secs(60),
        || async {
            let (_, metrics) = operator::http_get("/metrics").map_err(|e| e.to_string())?;
            let at_rest = ["in_progress", "pending"].iter().all(|state| {
                metrics.contains(&format!(
                    "healthsystem_database_restarts{{state=\"{state}\"}} 0"
                ))
            });
            if at_rest && metrics.contains("healthsystem_database_restarts_max 1") {
                Ok(())
            } else {
                Err(metrics
                    .lines()
                    .filter(|l| l.contains("restarts"))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        },
    )
    .await;
}
