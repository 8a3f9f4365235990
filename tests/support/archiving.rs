//! What the test binaries of the continuous archive share: the operator's configuration with
//! new systems on CloudNativePG archiving to the shared S3 server, a system's namespace given
//! its own store credentials as the platform's provisioning does, and the archive's segments
//! as files of the store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};

use crate::objectstore::{self, BUCKET};
use crate::wait::until;
use crate::{node, restore};

/// The node's operator configuration (written to a file named after `name`) with new systems
/// on CloudNativePG, archiving to the shared S3 server with `archive_timeout_seconds`, the
/// backup agent from `binary`'s image, logical dumps to the same store encrypted to
/// `recipient` (an age public key), and `drills`.
pub fn operator_config(
    name: &str,
    binary: &Path,
    recipient: &str,
    archive_timeout_seconds: u64,
    drills: Value,
) -> PathBuf {
    let mut config = node::operator_config();
    config["images"]["operator"] = json!(node::operator_image(binary));
    config["backup"] = json!({
        "objectStore": objectstore::shared().config(),
        "recipients": [recipient],
        "deadlineSeconds": 600,
        "drills": drills,
        "archiving": {
            "enabled": true,
            "archiveTimeout": format!("{archive_timeout_seconds}s"),
        },
    });
    config["database"]["engine"] = json!("CloudNativePG");
    config["database"]["cloudNativePG"]["apiServer"] =
        json!({ "cidrs": ["10.244.0.1/32"], "ports": [{ "port": 6443 }] });
    let path = crate::target_tmpdir().join(format!("{name}-config-{}.yaml", std::process::id()));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

/// Gives the system's namespace, once the operator made it, its own store credentials, as
/// the platform's provisioning does.
pub async fn provision(client: &Client, namespace: &str) {
    let namespaces = Api::<Namespace>::all(client.clone());
    until(
        &format!("namespace {namespace}"),
        Duration::from_secs(60),
        || async {
            match namespaces.get_opt(namespace).await {
                Ok(Some(_)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let (access, secret_key) = objectstore::shared().add_archiving_user(namespace);
    restore::create(
        &Api::<Secret>::namespaced(client.clone(), namespace),
        &restore::secret(
            "backup-store-credentials",
            &[("accessKeyId", &access), ("secretAccessKey", &secret_key)],
        ),
    )
    .await;
}

/// The archive's WAL segment files (compressed; not history files) in the store's folder,
/// oldest first.
pub fn segments(namespace: &str) -> Vec<PathBuf> {
    let wals = objectstore::shared()
        .data
        .join(BUCKET)
        .join(namespace)
        .join("archive/postgres/wals");
    let mut out = Vec::new();
    for folder in std::fs::read_dir(&wals).into_iter().flatten().flatten() {
        if !folder.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(folder.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.len() == "000000010000000000000001.gz".len() && name.ends_with(".gz") {
                out.push(file.path());
            }
        }
    }
    out.sort();
    out
}

/// Waits until the archive holds a segment newer than every one of `before`.
pub async fn wait_new_segment(namespace: &str, before: &[PathBuf], timeout: Duration) {
    until("a new segment in the archive", timeout, || async {
        let now = segments(namespace);
        if now.last() > before.last() {
            Ok(())
        } else {
            Err(format!("{} segments", now.len()))
        }
    })
    .await;
}
