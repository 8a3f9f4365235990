//! What SREs see: the operator's /metrics (fleet series per system, linted by promtool on a
//! real scrape), its health endpoints, and no secret in logs, events, status or metrics.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};

use healthsystem_operator::api::HealthSystem;

use crate::cluster::client;
use crate::operator;
use crate::systems;
use crate::wait::until;

async fn ready_system(client: &Client) -> String {
    operator::ensure_running(client).await;
    let name = systems::create(client, "obs", "lab-biomedica.yaml", |_| {}).await;
    systems::wait_ready(client, &name).await;
    name
}

fn scrape() -> String {
    let (code, body) = operator::http_get("/metrics").expect("the operator serves /metrics");
    assert_eq!(code, 200);
    body
}

#[tokio::test]
async fn metrics_describe_the_fleet_and_pass_promtool() {
    let client = client().await;
    let name = ready_system(&client).await;
    let expected = [
        format!("healthsystem_ready{{healthsystem=\"{name}\"}} 1"),
        format!("healthsystem_phase{{healthsystem=\"{name}\",phase=\"Ready\"}} 1"),
        format!("healthsystem_phase{{healthsystem=\"{name}\",phase=\"Degraded\"}} 0"),
        format!("healthsystem_condition{{condition=\"DatabaseReady\",healthsystem=\"{name}\"}} 1"),
        format!("healthsystem_backup_rpo_seconds{{healthsystem=\"{name}\"}} 28800"),
    ];
    let text = until("the system's series", Duration::from_secs(60), || async {
        let text = scrape();
        match expected.iter().find(|line| !text.contains(line.as_str())) {
            None => Ok(text),
            Some(missing) => Err(format!("missing {missing}")),
        }
    })
    .await;
    for name in [
        "healthsystem_operator_reconciliations_total",
        "healthsystem_operator_reconcile_duration_seconds_bucket",
        "healthsystem_operator_reconciles_in_flight",
        "healthsystem_operator_object_writes_total{kind=\"StatefulSet\"}",
        "healthsystem_operator_ready 1",
        "healthsystem_operator_api_requests_total{verb=\"patch\"}",
        "healthsystem_operator_api_requests_total{verb=\"watch\"}",
    ] {
        assert!(text.contains(name), "{name} missing");
    }

    // The real scrape passes promtool's lint with no complaint.
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus; bash .ci/run installs it)");
    lint.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "promtool check metrics: {complaints}"
    );

    assert_eq!(operator::http_get("/healthz").unwrap().0, 200);
    assert_eq!(operator::http_get("/readyz").unwrap().0, 200);

    // The series of a deleted system disappear.
    Api::<HealthSystem>::all(client.clone())
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    until(
        "the system's series gone",
        Duration::from_secs(60),
        || async {
            let text = scrape();
            if text.contains(&format!("healthsystem=\"{name}\"")) {
                Err("still exposed".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_password_never_appears_in_logs_events_status_or_metrics() {
    let client = client().await;
    let name = ready_system(&client).await;
    let secret = Api::<Secret>::namespaced(client.clone(), &format!("hs-{name}"))
        .get("database-credentials")
        .await
        .unwrap();
    let password = String::from_utf8(secret.data.unwrap()["password"].0.clone()).unwrap();
    assert_eq!(password.len(), 32);

    let log = operator::log_since(0);
    assert!(
        log.contains(&format!("healthsystem={name}")),
        "the log covers this system"
    );
    assert!(
        !log.contains(&password),
        "the password is in the operator's log"
    );

    let system = Api::<HealthSystem>::all(client.clone())
        .get(&name)
        .await
        .unwrap();
    assert!(!serde_json::to_string(&system).unwrap().contains(&password));
    assert!(!scrape().contains(&password));
    let events = Api::<Event>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(!events.items.is_empty());
    assert!(
        !serde_json::to_string(&events.items)
            .unwrap()
            .contains(&password)
    );
}
