//! End-to-end tests on the local cluster's real node (`testenv/cluster.sh --real-node`):
//! PostgreSQL really starts from the operator's StatefulSet, clients log in with the
//! generated credentials, the backup Job really dumps and the dump really restores, the
//! NetworkPolicies really refuse connections, the exporter really scrapes. One cluster with
//! one real node and one operator process for this test binary; each test has systems of
//! its own.

use healthsystem_test_support::cluster;
use healthsystem_test_support::cnpg;
use healthsystem_test_support::node;
use healthsystem_test_support::operator;
use healthsystem_test_support::pods;
use healthsystem_test_support::systems;
use healthsystem_test_support::wait;

mod application;
mod backup;
mod database;
mod engine_move;
mod isolation;
mod migration;
mod roles;
mod tenant_attack;
mod version;

use std::path::PathBuf;
use std::sync::OnceLock;

use kube::Client;
use serde_json::Value;

pub use node::image;

/// The operator's configuration on the real node, as a file: new systems on the StatefulSet
/// (the default engine), and where CloudNativePG's instances reach the API server, for the
/// systems that move onto it.
fn write_config() -> PathBuf {
    let path = healthsystem_test_support::target_tmpdir()
        .join(format!("node-config-{}.yaml", std::process::id()));
    let mut config = node::operator_config();
    config["database"]["cloudNativePG"]["apiServer"] =
        serde_json::json!({ "cidrs": ["10.244.0.1/32"], "ports": [{ "port": 6443 }] });
    let config = serde_json::to_string_pretty(&config).unwrap();
    std::fs::write(&path, config).unwrap();
    path
}

/// A client of the real-node cluster, with the operator running on it.
pub async fn setup() -> Client {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    cluster::use_real_node();
    operator::use_config(CONFIG.get_or_init(write_config).clone());
    let client = cluster::client().await;
    // Installed before the operator starts (it looks for the API once, at start), for the
    // systems that move onto it.
    cnpg::install(&client).await;
    operator::ensure_running(&client).await;
    client
}

/// Creates a system from `example` on PostgreSQL 15, after `edit`, and waits until Ready.
pub async fn ready_system(client: &Client, prefix: &str, edit: impl FnOnce(&mut Value)) -> String {
    let name = systems::create(client, prefix, "lab-biomedica.yaml", |m| {
        node::small_system(m);
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
