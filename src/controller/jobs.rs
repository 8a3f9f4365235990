//! What the operator reads of its Jobs: a condition that holds (from the watch store), the
//! newest pod of a Job (one list, only when a Job runs or has just finished) and its
//! termination message (never its logs).

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use crate::error::Result;

/// The newest pod of the Job `job` in `namespace`.
pub async fn newest_pod(client: &Client, namespace: &str, job: &str) -> Result<Option<Pod>> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0)))
}

/// The termination message of the first container of `pod` that has one.
pub fn termination_message(pod: Option<&Pod>) -> Option<String> {
    pod?.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
}

/// The Job's condition `type_` (Complete, Failed) when it is True.
pub fn condition(job: &DynamicObject, type_: &str) -> Option<Value> {
    job.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_ && c["status"] == "True")
        .cloned()
}

/// Whether the Job has finished, either way.
pub fn finished(job: &DynamicObject) -> bool {
    condition(job, "Complete").is_some() || condition(job, "Failed").is_some()
}
