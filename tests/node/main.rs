//! End-to-end tests on the local cluster's real node (`testenv/cluster.sh --real-node`):
//! PostgreSQL really starts from the operator's StatefulSet, clients log in with the
//! generated credentials, the backup Job really dumps and the dump really restores, the
//! NetworkPolicies really refuse connections, the exporter really scrapes. One cluster with
//! one real node and one operator process for this test binary; each test has systems of
//! its own.

#[path = "../support/cluster.rs"]
mod cluster;
#[path = "../support/corpus.rs"]
mod corpus;
#[path = "../support/operator.rs"]
mod operator;
mod pods;
#[path = "../support/systems.rs"]
mod systems;
#[path = "../support/wait.rs"]
mod wait;

mod backup;
mod database;
mod isolation;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kube::Client;
use serde_json::{Value, json};

/// The real node's images, read once.
pub fn images() -> &'static std::collections::BTreeMap<String, String> {
    static IMAGES: OnceLock<std::collections::BTreeMap<String, String>> = OnceLock::new();
    IMAGES.get_or_init(cluster::node_images)
}

/// The image of a variable of images.env.
pub fn image(var: &str) -> String {
    images()
        .get(var)
        .unwrap_or_else(|| panic!("{var} missing from images.env"))
        .clone()
}

/// The operator's configuration on the real node: its images, its DNS address, and database
/// requests small enough for several systems on one 2-core node. PostgreSQL 16 and 17 have no image here
/// (Debian 12 packages 15 only): systems in these tests use 15.
fn write_config() -> PathBuf {
    let defaults = std::fs::read_to_string(corpus::root().join("config/operator.yaml")).unwrap();
    let mut config: Value = serde_saphyr::from_str(&defaults).unwrap();
    for tier in ["small", "standard", "large"] {
        let preset = &mut config["tiers"][tier];
        preset["defaultCpuRequest"] = json!("25m");
        preset["defaultMemoryRequest"] = json!("64Mi");
        preset["databaseCpu"] = json!("50m");
        preset["databaseMemory"] = json!("512Mi");
    }
    // The node's resolver is CoreDNS on the bridge address, not a pod of kube-system.
    config["dns"]["addresses"] = json!(["10.244.0.1/32"]);
    let postgres = image("HS_IMAGE_POSTGRES15");
    config["images"] = json!({
        "postgres15": postgres,
        "postgres16": "localhost/hs-testenv/postgres:16-not-built",
        "postgres17": "localhost/hs-testenv/postgres:17-not-built",
        "exporter": image("HS_IMAGE_EXPORTER"),
    });
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("node-config-{}.yaml", std::process::id()));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

/// A client of the real-node cluster, with the operator running on it.
pub async fn setup() -> Client {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    cluster::use_real_node();
    operator::use_config(CONFIG.get_or_init(write_config).clone());
    let client = cluster::client().await;
    operator::ensure_running(&client).await;
    client
}

/// Creates a system from `example` on PostgreSQL 15, after `edit`, and waits until Ready.
pub async fn ready_system(client: &Client, prefix: &str, edit: impl FnOnce(&mut Value)) -> String {
    let name = systems::create(client, prefix, "lab-biomedica.yaml", |m| {
        m["spec"]["database"]["version"] = json!("15");
        m["spec"]["database"]["storage"] = json!("1Gi");
        m["spec"]["database"]["storageClassName"] = json!("standard");
        m["spec"]["tier"] = json!("Small");
        m["spec"].as_object_mut().unwrap().remove("sizing");
        m["spec"].as_object_mut().unwrap().remove("application");
        edit(m);
    })
    .await;
    systems::wait_ready(client, &name).await;
    name
}

/// The namespace of a system created by these tests.
pub fn ns(name: &str) -> String {
    format!("hs-{name}")
}
