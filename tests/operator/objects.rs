//! What the reconciler tests read back from the cluster: every object of the kinds a system
//! has in a namespace, and waiting until an object is gone.

use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};

use crate::wait::until;

/// The namespaced kinds a system's namespace holds (ConfigMap for data others keep there).
const KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "ResourceQuota"),
    ("", "v1", "LimitRange"),
    ("", "v1", "Secret"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Service"),
    ("", "v1", "ServiceAccount"),
    ("", "v1", "PersistentVolumeClaim"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "Deployment"),
    ("batch", "v1", "CronJob"),
    ("policy", "v1", "PodDisruptionBudget"),
];

/// Every object of those kinds in `namespace` (only those matching `selector`, if given),
/// as `Kind/name` and the object.
pub async fn in_namespace(
    client: &Client,
    namespace: &str,
    selector: Option<&str>,
) -> Vec<(String, DynamicObject)> {
    let mut params = ListParams::default();
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let mut out = Vec::new();
    for (group, version, kind) in KINDS {
        let (resource, _) =
            kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
                .await
                .unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for object in api.list(&params).await.unwrap() {
            out.push((format!("{kind}/{}", object.name_any()), object));
        }
    }
    out
}

/// Waits until `name` no longer exists.
pub async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    until(
        &format!("{name} gone"),
        Duration::from_secs(180),
        || async {
            match api.get_opt(name).await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err("still there".to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}
