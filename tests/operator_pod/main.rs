//! The path a platform team takes: the operator's own image (the release binary on the
//! Debian base, non-root) installed with `helm install` of the chart on the local cluster's
//! real node. Its pod passes its probes there, reconciles a HealthSystem to Ready with a real
//! database, and `helm uninstall` leaves the system and its data in place.
//!
//! A test binary of its own: the operator here is the chart's pod, and no other operator may
//! run beside it.

use healthsystem_test_support::cluster;
use healthsystem_test_support::corpus;
use healthsystem_test_support::node;
use healthsystem_test_support::pods;
use healthsystem_test_support::systems;
use healthsystem_test_support::wait;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret};
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use healthsystem_operator::api::HealthSystem;

use corpus::root;
use wait::until;

pub use node::image;

const RELEASE: &str = "hs";
const RELEASE_NAMESPACE: &str = "sdc-operators";
const SELECTOR: &str = "app.kubernetes.io/name=healthsystem-operator";

/// The release binary, built if it is missing or stale (a no-op after `cargo build
/// --release`, which `.ci/run` does first), in its own profile directory so it does not wait
/// for the test build's lock.
fn release_binary() -> PathBuf {
    let log = healthsystem_test_support::target_tmpdir().join("operator-release-build.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cargo = Command::new(env!("CARGO"));
    // What cargo test sets for test binaries (CARGO_PKG_*, CARGO_MANIFEST_DIR, the library
    // path, ...) would make this build differ from `cargo build --release` and rebuild
    // several crates each time one follows the other.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let keep = matches!(name.as_str(), "CARGO_HOME" | "CARGO_TARGET_DIR");
        if (name.starts_with("CARGO_") && !keep) || name == "LD_LIBRARY_PATH" {
            cargo.env_remove(&name);
        }
    }
    let status = cargo
        .args([
            "build",
            "--release",
            "--locked",
            "--bin",
            "healthsystem-operator",
        ])
        .current_dir(root())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build --release failed: see {}",
        log.display()
    );
    root().join("target/release/healthsystem-operator")
}

fn helm(args: &[&str]) -> String {
    let output = Command::new(cluster::testenv_bin().join("helm"))
        .args(args)
        .arg("--kubeconfig")
        .arg(cluster::kubeconfig())
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Values for the local cluster: the image just built (never pulled), one replica, and the
/// operator configuration the other real-node tests use, through the chart's own values.
fn values(image: &str) -> Value {
    let (repository, tag) = image.rsplit_once(':').unwrap();
    let config = node::operator_config();
    json!({
        "image": { "repository": repository, "tag": tag, "pullPolicy": "Never" },
        "replicas": 1,
        "resources": { "requests": { "cpu": "50m", "memory": "64Mi" }, "limits": { "memory": "512Mi" } },
        "operator": {
            "logFormat": "text",
            "dns": config["dns"],
            "tiers": config["tiers"],
            "images": config["images"],
        },
    })
}

/// The operator's pods of the release.
async fn operator_pods(client: &Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .list(&ListParams::default().labels(SELECTOR))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn the_chart_runs_the_operator_on_the_real_node_and_uninstall_keeps_the_data() {
    let started = Instant::now();
    let phase = |what: &str| eprintln!("{what} at {:.1}s", started.elapsed().as_secs_f64());
    cluster::use_real_node();
    let client = cluster::client().await;
    phase("cluster ready");
    let image = node::operator_image(&release_binary());
    phase("operator image built and imported");

    let values_path = healthsystem_test_support::target_tmpdir()
        .join(format!("operator-pod-values-{}.json", std::process::id()));
    std::fs::write(&values_path, values(&image).to_string()).unwrap();
    let chart = root().join("charts/healthsystem-operator");
    // --wait: until the Deployment's pod is Ready, that is, its readiness probe passes.
    helm(&[
        "install",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "--values",
        values_path.to_str().unwrap(),
        "--wait",
        "--timeout",
        "5m",
    ]);

    phase("helm install done, the operator ready");
    let pods = operator_pods(&client).await;
    assert_eq!(pods.len(), 1, "one operator pod: {pods:?}");
    let pod = &pods[0];
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.node_name.as_deref(),
        Some("hs-node"),
        "on the real node"
    );
    assert_eq!(spec.containers[0].image.as_deref(), Some(image.as_str()));
    let status = pod.status.as_ref().unwrap();
    let container = &status.container_statuses.as_ref().unwrap()[0];
    assert!(
        container.ready && container.state.as_ref().unwrap().running.is_some(),
        "the operator is running and its readiness probe passes: {container:?}"
    );
    assert_eq!(container.restart_count, 0, "never restarted: {container:?}");
    let security = pod
        .spec
        .as_ref()
        .unwrap()
        .security_context
        .as_ref()
        .unwrap();
    assert_eq!(security.run_as_user, Some(65532), "non-root");

    // A system reconciled by the pod, to Ready with its real database.
    let name = systems::create(&client, "pod", "lab-biomedica.yaml", node::small_system).await;
    systems::wait_ready(&client, &name).await;
    phase("system Ready");
    let namespace = format!("hs-{name}");
    let written = pods::run_ok(
        &client,
        pods::psql_client(
            &namespace,
            "writer",
            &name,
            "CREATE TABLE referrals (id int PRIMARY KEY); \
             INSERT INTO referrals SELECT generate_series(1, 250); \
             SELECT count(*) FROM referrals",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&written), "250", "rows written");

    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    let claim_uid = claims.get("data-database-0").await.unwrap().metadata.uid;
    let secret = secrets.get("database-credentials").await.unwrap();
    let namespace_uid = Api::<Namespace>::all(client.clone())
        .get(&namespace)
        .await
        .unwrap()
        .metadata
        .uid;

    let pods = operator_pods(&client).await;
    let container = &pods[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert!(
        container.ready && container.restart_count == 0,
        "still ready, never restarted by its liveness probe: {container:?}"
    );

    helm(&[
        "uninstall",
        RELEASE,
        "--namespace",
        RELEASE_NAMESPACE,
        "--wait",
        "--timeout",
        "2m",
    ]);
    phase("helm uninstall done");
    until(
        "the operator's pods gone",
        Duration::from_secs(120),
        || async {
            let left = operator_pods(&client).await.len();
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} left"))
            }
        },
    )
    .await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .list(&ListParams::default().labels(SELECTOR))
        .await
        .unwrap();
    assert!(deployments.items.is_empty(), "the release is gone");

    // The system and its data stay: the CRD (helm keeps crds/), the HealthSystem, its
    // namespace, claim and credentials, unchanged, and the rows in the running database.
    Api::<HealthSystem>::all(client.clone())
        .get(&name)
        .await
        .expect("the HealthSystem is kept");
    let namespace_after = Api::<Namespace>::all(client.clone())
        .get(&namespace)
        .await
        .unwrap();
    assert_eq!(
        namespace_after.metadata.uid, namespace_uid,
        "same namespace"
    );
    assert!(namespace_after.metadata.deletion_timestamp.is_none());
    assert_eq!(
        claims.get("data-database-0").await.unwrap().metadata.uid,
        claim_uid,
        "same data claim"
    );
    assert_eq!(
        secrets.get("database-credentials").await.unwrap().data,
        secret.data,
        "same credentials"
    );
    let read = pods::run_ok(
        &client,
        pods::psql_client(
            &namespace,
            "reader",
            &name,
            "SELECT count(*) FROM referrals",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&read), "250", "the rows are still there");
    phase("data checked after uninstall");
}
