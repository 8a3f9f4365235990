//! CloudNativePG on the real node: its manager built from the Go module proxy and laid out as
//! its own image (`testenv/cnpg-image.sh`), imported into the node, and its release manifest of
//! the pinned version applied with that image (never pulled).

use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use crate::{chart, cluster, wait};

/// The namespace of CloudNativePG's operator (its release manifest's).
pub const NAMESPACE: &str = "cnpg-system";

/// A `postgresql.cnpg.io/v1` Cluster.
pub fn cluster_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster"),
        "clusters",
    )
}

/// The image's name and CloudNativePG's version, built and imported into the node.
fn image() -> (String, String) {
    let env = cluster::import_built_images("testenv/cnpg-image.sh", "cnpg");
    (env["HS_IMAGE_CNPG"].clone(), env["HS_CNPG_VERSION"].clone())
}

/// The release manifest's objects, its Deployment running `image` as the operator and as the
/// image it copies into each database pod, never pulled.
fn manifest(image: &str) -> Vec<Value> {
    let path = cluster::testenv_bin().join("../cnpg/release.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut objects: Vec<Value> = serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_null())
        .collect();
    // The fleet's settings, read by its operator at start, and its operator's resources.
    let path = crate::corpus::root().join("config/cloudnativepg.yaml");
    for fleet in
        serde_saphyr::from_multiple::<Value>(&std::fs::read_to_string(path).unwrap()).unwrap()
    {
        match fleet["kind"].as_str() {
            Some("Deployment") => {
                let name = &fleet["metadata"]["name"];
                let resources = &fleet["spec"]["template"]["spec"]["containers"][0]["resources"];
                let deployment = objects
                    .iter_mut()
                    .find(|o| o["kind"] == "Deployment" && &o["metadata"]["name"] == name)
                    .expect("the release's Deployment");
                deployment["spec"]["template"]["spec"]["containers"][0]["resources"] =
                    resources.clone();
            }
            Some(_) => objects.push(fleet),
            None => {}
        }
    }
    for object in &mut objects {
        if object["kind"] == "Deployment" {
            let container = &mut object["spec"]["template"]["spec"]["containers"][0];
            container["image"] = json!(image);
            container["imagePullPolicy"] = json!("Never");
            for env in container["env"].as_array_mut().into_iter().flatten() {
                if env["name"] == "OPERATOR_IMAGE_NAME" {
                    env["value"] = json!(image);
                }
            }
        }
    }
    objects
}

/// Installs CloudNativePG with the fleet's settings (`config/cloudnativepg.yaml`; once per
/// cluster: applying again changes nothing) and waits until its operator is available. Returns the image of its manager.
pub async fn install(client: &Client) -> String {
    let (image, version) = image();
    let objects = manifest(&image);
    // The namespace and the CRDs first: the rest lives in one or refers to the others.
    let rank = |o: &Value| match o["kind"].as_str() {
        Some("Namespace") => 0,
        Some("CustomResourceDefinition") => 1,
        // Before the Deployment: its operator reads the settings once, at start.
        Some("ConfigMap") => 2,
        _ => 3,
    };
    chart::apply_in_order(client, &objects, rank).await;
    wait::deployment_available(
        client,
        NAMESPACE,
        "cnpg-controller-manager",
        &format!("CloudNativePG {version} available"),
        Duration::from_secs(240),
    )
    .await;
    image
}

/// The Cluster `name` in `namespace`, or an error naming what is missing.
pub async fn get(client: &Client, namespace: &str, name: &str) -> Result<DynamicObject, String> {
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &cluster_resource())
        .get(name)
        .await
        .map_err(|e| e.to_string())
}

/// The CA certificate of the system whose namespace is `namespace` (its Cluster's, Secret
/// `postgres-ca`), which its clients verify the server with.
pub async fn ca(client: &Client, namespace: &str) -> String {
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .get("postgres-ca")
        .await
        .unwrap_or_else(|e| panic!("Secret {namespace}/postgres-ca: {e}"));
    String::from_utf8(secret.data.unwrap_or_default()["ca.crt"].0.clone()).unwrap()
}
