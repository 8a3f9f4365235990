//! Growing the database's claim when spec.database.storage grows: claim templates cannot
//! change, the claim can. The API server refuses any shrink, and admission before it.

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::info;

use crate::controller::cache::kinds::Stores;
use crate::error::{AtStep, Result, Step};
use crate::resources::database;

/// Grows the database claim to the requested size (claim templates cannot change, the
/// claim can); the API server refuses any shrink, and so does admission before it.
pub async fn grow_data_claim(
    client: &Client,
    stores: &Stores,
    namespace: &str,
    desired: &k8s_openapi::api::apps::v1::StatefulSet,
) -> Result<bool> {
    let wanted = desired
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .and_then(|t| t.first())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone());
    let claim_name = database::data_claim_name();
    let Some(live) = stores.get("v1", "PersistentVolumeClaim", Some(namespace), &claim_name) else {
        return Ok(false);
    };
    let current = live
        .data
        .pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str);
    match wanted {
        Some(wanted) if current != Some(wanted.as_str()) => {
            let api = Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(
                client.clone(),
                namespace,
            );
            let patch = json!({ "spec": { "resources": { "requests": { "storage": wanted } } } });
            api.patch(&claim_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .at(
                    Step::ClaimGrowth,
                    format!("PersistentVolumeClaim {claim_name}"),
                )?;
            info!(
                namespace,
                claim = claim_name,
                size = wanted,
                "database claim resized"
            );
            Ok(true)
        }
        _ => Ok(false),
    }
}
