//! What the operator reads of its Jobs: a condition that holds (from the watch store), the
//! newest pod of a Job (one list, only when a Job runs or has just finished) and its
//! termination message (never its logs).

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

/// The newest pod of the Job `job` in `namespace`.
pub async fn newest_pod(client: &Client, namespace: &str, job: &str) -> kube::Result<Option<Pod>> {
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

/// Why a container of `pod` (an init container first) waits, other than being created: e.g.
/// `CreateContainerConfigError: secret "x" not found`. Such a pod waits until its Job's
/// deadline without any event on the operator's objects.
pub fn waiting_reason(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .chain(&status.container_statuses)
        .flatten()
        .find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.clone().unwrap_or_default();
            // A container being created (or waiting for its init containers) is not news.
            (!reason.is_empty() && reason != "ContainerCreating" && reason != "PodInitializing")
                .then(|| format!("{reason}: {}", waiting.message.clone().unwrap_or_default()))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(init: Value, main: Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "p" },
            "status": { "initContainerStatuses": init, "containerStatuses": main }
        }))
        .unwrap()
    }

    fn waiting(reason: &str, message: &str) -> Value {
        serde_json::json!([{ "name": "c", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": { "waiting": { "reason": reason, "message": message } } }])
    }

    /// What keeps a pod from starting is news; a pod on its way is not.
    #[test]
    fn a_pod_that_cannot_start_says_why() {
        let missing = pod(
            serde_json::json!([]),
            waiting(
                "CreateContainerConfigError",
                "secret \"backup-store-credentials\" not found",
            ),
        );
        assert_eq!(
            waiting_reason(&missing).as_deref(),
            Some("CreateContainerConfigError: secret \"backup-store-credentials\" not found")
        );
        let no_image = pod(
            waiting("ErrImagePull", "not found"),
            waiting("PodInitializing", ""),
        );
        assert_eq!(
            waiting_reason(&no_image).as_deref(),
            Some("ErrImagePull: not found")
        );
        for starting in [
            pod(serde_json::json!([]), waiting("ContainerCreating", "")),
            pod(serde_json::json!([]), waiting("PodInitializing", "")),
            pod(serde_json::json!([]), serde_json::json!([])),
        ] {
            assert_eq!(waiting_reason(&starting), None);
        }
    }
}
