//! The kro peer: kro (github.com/kubernetes-sigs/kro, pinned in testenv/kro/go.mod) with one
//! ResourceGraphDefinition per kind of system the benchmark creates (the three examples),
//! whose resources are exactly the objects the operator would apply for it, the system's
//! name a parameter; then one instance per system. Every namespaced resource refers to the
//! namespace resource, so kro creates the namespace first, as the operator does.
//!
//! kro runs with the operator's concurrency (16 instances at once) and a client rate that
//! does not hold it back (its defaults, one instance at a time and 100 requests per second,
//! would be far slower): the comparison is of the approaches, not of their defaults.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// The variants' kinds, in the order of the examples (system `i` is variant `i % 3`).
pub const KINDS: [&str; 3] = ["PeerLarge", "PeerSmall", "PeerStandard"];

/// Builds kro once (cached) and returns the directory with `kro` and `crds/`.
pub fn build() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testenv/kro/build.sh");
    let out = Command::new("bash").arg(script).output().expect("bash");
    assert!(
        out.status.success(),
        "testenv/kro/build.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// kro's controller, killed when dropped.
pub struct Controller(Child);

impl Controller {
    pub fn start(dir: &Path, kubeconfig: &Path, log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(dir.join("kro"))
            .args([
                "--metrics-bind-address",
                "0",
                "--health-probe-bind-address",
                "0",
                "--dynamic-controller-concurrent-reconciles",
                "16",
                "--client-qps",
                "1000",
                "--client-burst",
                "2000",
            ])
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("kro");
        Self(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Replaces the system's name in every string of `value` with the instance's `spec.name`.
fn parameterise(value: &mut Value, name: &str) {
    match value {
        Value::String(s) if s.contains(name) => {
            *s = s.replace(name, "${schema.spec.name}");
        }
        Value::Array(items) => items.iter_mut().for_each(|v| parameterise(v, name)),
        Value::Object(map) => map.values_mut().for_each(|v| parameterise(v, name)),
        _ => {}
    }
}

/// The ResourceGraphDefinition of variant `kind` from the objects of one system `name`
/// (namespace first). The namespace of every namespaced object refers to the namespace
/// resource: an edge kro orders by.
pub fn graph(kind: &str, name: &str, objects: &[Value]) -> Value {
    let resources: Vec<Value> = objects
        .iter()
        .enumerate()
        .map(|(i, object)| {
            let mut template = object.clone();
            let namespaced = template["metadata"].get("namespace").is_some();
            parameterise(&mut template, name);
            if namespaced {
                template["metadata"]["namespace"] = json!("${systemNamespace.metadata.name}");
            }
            let id = if i == 0 {
                "systemNamespace".to_string()
            } else {
                format!("r{i}")
            };
            json!({ "id": id, "template": template })
        })
        .collect();
    json!({
        "apiVersion": "kro.run/v1alpha1",
        "kind": "ResourceGraphDefinition",
        "metadata": { "name": format!("{}.kro.run", kind.to_lowercase()) },
        "spec": {
            "schema": { "apiVersion": "v1alpha1", "kind": kind, "spec": { "name": "string" } },
            "resources": resources,
        }
    })
}

fn api(client: &Client, group: &str, version: &str, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::all_with(client.clone(), &resource)
}

/// Waits until the graph `name` is Active and its instance kind is served.
pub async fn wait_active(client: &Client, name: &str, kind: &str) {
    let graphs = api(client, "kro.run", "v1alpha1", "ResourceGraphDefinition");
    super::wait::until(
        &format!("graph {name} active"),
        Duration::from_secs(120),
        || async {
            let graph = graphs.get(name).await.map_err(|e| e.to_string())?;
            if graph.data["status"]["state"] != "Active" {
                return Err(format!("{}", graph.data["status"]));
            }
            api(client, "kro.run", "v1alpha1", kind)
                .list(&ListParams::default().limit(1))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
}

/// The instance of system `i` named `name`.
pub fn instance(i: usize, name: &str) -> Value {
    json!({
        "apiVersion": "kro.run/v1alpha1",
        "kind": KINDS[i % 3],
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "name": name },
    })
}
