//! CloudNativePG's Barman Cloud plugin on the real node: its binary built from the Go module
//! proxy at the pinned version, its plugin and sidecar images (`testenv/barman-cloud-image.sh`)
//! imported into the node, and its release manifest applied with those images, never pulled.
//! The manifest asks cert-manager for the TLS between CloudNativePG and the plugin: here
//! openssl makes the two certificates instead (each self-signed, as cert-manager's self-signed
//! issuer would: CloudNativePG trusts the server's, the plugin the client's).

use std::time::Duration;

use kube::Client;
use serde_json::{Value, json};

use crate::{certificate, chart, cluster, cnpg, wait};

/// The Deployment, Service and TLS Secrets' names of the manifest.
const NAME: &str = "barman-cloud";

fn tls_secret(name: &str, (cert, key): (String, String)) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": name, "namespace": cnpg::NAMESPACE },
        "type": "kubernetes.io/tls",
        "stringData": { "tls.crt": cert, "tls.key": key, "ca.crt": cert }
    })
}

/// The manifest's objects without cert-manager's, with the built images.
fn manifest(plugin: &str, sidecar: &str) -> Vec<Value> {
    let path = cluster::testenv_bin().join("../barman-cloud/manifest.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut objects: Vec<Value> = serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_null())
        .filter(|v| {
            !v["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("cert-manager.io/"))
        })
        .collect();
    for object in &mut objects {
        match object["kind"].as_str() {
            // The sidecar's image, which the plugin injects into every database pod.
            Some("Secret") if object["data"].get("SIDECAR_IMAGE").is_some() => {
                object.as_object_mut().unwrap().remove("data");
                object["stringData"] = json!({ "SIDECAR_IMAGE": sidecar });
            }
            Some("Deployment") => {
                let container = &mut object["spec"]["template"]["spec"]["containers"][0];
                container["image"] = json!(plugin);
                container["imagePullPolicy"] = json!("Never");
                // Its own default (info): debug logs every gRPC call.
                if let Some(args) = container["args"].as_array_mut() {
                    args.retain(|a| a != "--log-level=debug");
                }
            }
            _ => {}
        }
    }
    objects
}

/// Installs the plugin (after CloudNativePG: it registers with it through its Service) and
/// waits until it is available. Once per cluster: applying again changes nothing but the
/// certificates, which both sides read again.
pub async fn install(client: &Client) {
    let env = cluster::import_built_images("testenv/barman-cloud-image.sh", "barman-cloud");
    let objects = manifest(
        &env["HS_IMAGE_BARMAN_PLUGIN"],
        &env["HS_IMAGE_BARMAN_SIDECAR"],
    );
    let server = certificate::self_signed(
        NAME,
        &[
            &format!(
                "subjectAltName=DNS:{NAME},DNS:{NAME}.{}.svc",
                cnpg::NAMESPACE
            ),
            "extendedKeyUsage=serverAuth",
        ],
    );
    let client_certificate =
        certificate::self_signed(&format!("{NAME}-client"), &["extendedKeyUsage=clientAuth"]);
    chart::apply(
        client,
        &tls_secret(&format!("{NAME}-server-tls"), server),
        false,
    )
    .await;
    chart::apply(
        client,
        &tls_secret(&format!("{NAME}-client-tls"), client_certificate),
        false,
    )
    .await;
    let rank = |o: &Value| match o["kind"].as_str() {
        Some("CustomResourceDefinition") => 0,
        Some("Deployment") => 2,
        _ => 1,
    };
    chart::apply_in_order(client, &objects, rank).await;
    wait::deployment_available(
        client,
        cnpg::NAMESPACE,
        NAME,
        &format!(
            "the Barman Cloud plugin {} available",
            env["HS_BARMAN_CLOUD_VERSION"]
        ),
        Duration::from_secs(240),
    )
    .await;
}
