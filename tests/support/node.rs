//! What tests on the real node share: its images, and the operator configuration that runs
//! systems there (the node's images, its DNS address, requests small enough for one node).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::cluster;
use crate::corpus;

/// The real node's images, read once.
pub fn images() -> &'static BTreeMap<String, String> {
    static IMAGES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    IMAGES.get_or_init(cluster::node_images)
}

/// The image of a variable of images.env.
pub fn image(var: &str) -> String {
    images()
        .get(var)
        .unwrap_or_else(|| panic!("{var} missing from images.env"))
        .clone()
}

/// The operator's configuration on the real node: `config/operator.yaml` with the node's
/// images, its DNS address, and database requests small enough for several systems on one
/// 2-core node. PostgreSQL 16 and 17 have no image here (Debian 12 packages 15 only):
/// systems in these tests use 15.
pub fn operator_config() -> Value {
    let defaults = std::fs::read_to_string(corpus::root().join("config/operator.yaml")).unwrap();
    let mut config: Value = serde_saphyr::from_str(&defaults).unwrap();
    for tier in ["small", "standard", "large"] {
        let preset = &mut config["tiers"][tier];
        preset["defaultCpuRequest"] = json!("25m");
        preset["defaultMemoryRequest"] = json!("64Mi");
        preset["databaseCpu"] = json!("50m");
        preset["databaseMemory"] = json!("512Mi");
    }
    // Every cutover approval re-verifies (migration tests change the source after a
    // verification and expect the approval's verification to see it).
    config["migration"]["verificationMaxAgeSeconds"] = json!(1);
    // The node's resolver is CoreDNS on the bridge address, not a pod of kube-system.
    config["dns"]["addresses"] = json!(["10.244.0.1/32"]);
    config["images"] = json!({
        // The versions the node has images for are the versions offered.
        "postgres": {
            "15": image("HS_IMAGE_POSTGRES15"),
            "17": image("HS_IMAGE_POSTGRES17"),
        },
        "exporter": image("HS_IMAGE_EXPORTER"),
    });
    config
}

/// `examples/lab-biomedica.yaml` made small for the node: PostgreSQL 15, 1Gi, Small tier, no
/// application.
pub fn small_system(manifest: &mut Value) {
    manifest["spec"]["database"]["version"] = json!("15");
    manifest["spec"]["database"]["storage"] = json!("1Gi");
    manifest["spec"]["database"]["storageClassName"] = json!("standard");
    manifest["spec"]["tier"] = json!("Small");
    let spec = manifest["spec"].as_object_mut().unwrap();
    spec.remove("sizing");
    spec.remove("application");
}

/// The operator's image, built by `testenv/operator-image.sh` from `binary` and imported into
/// the node: its name.
pub fn operator_image(binary: &std::path::Path) -> String {
    let output = std::process::Command::new("bash")
        .arg(corpus::root().join("testenv/operator-image.sh"))
        .arg(binary)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("testenv/operator-image.sh runs");
    assert!(output.status.success(), "testenv/operator-image.sh failed");
    let dir = std::path::PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    cluster::import_node_image(&dir.join("operator.tar"));
    let env = std::fs::read_to_string(dir.join("operator.env")).unwrap();
    env.trim()
        .strip_prefix("HS_IMAGE_OPERATOR=")
        .expect("operator.env names the image")
        .to_string()
}

/// Silences the pod at `ip` on the real node's bridge: its host-side veth goes down, so
/// whatever it was talking to hears nothing more, not even a reset (as when a node or its
/// network dies). The veth goes with the pod; nothing is left to restore.
pub fn cut_pod_network(ip: &str) {
    let script = format!(
        "ping -c 1 -W 1 {ip} >/dev/null 2>&1; \
         mac=$(ip neigh show {ip} | awk '{{print $5}}'); \
         [ -n \"$mac\" ] || {{ echo \"no neighbour entry for {ip}\" >&2; exit 1; }}; \
         dev=$(bridge fdb show | awk -v mac=\"$mac\" '$1 == mac && $2 == \"dev\" {{print $3; exit}}'); \
         [ -n \"$dev\" ] || {{ echo \"no bridge port for $mac\" >&2; exit 1; }}; \
         ip link set \"$dev\" down && echo \"$dev\""
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "cutting {ip}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
