//! Application pods waiting on their image (`ErrImagePull`, `ImagePullBackOff`, ...). Read
//! with one list of the application's pods, only while some are unavailable and the
//! Deployment reports no failure of its own; said in ApplicationReady.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::api::HealthSystem;
use crate::controller::context::Context;
use crate::resources::{application, labels};

/// The ApplicationReady reason when pods of the application cannot get their image.
pub const IMAGE_PULL_FAILING: &str = "ImagePullFailing";

/// The kubelet's waiting reasons of a container whose image cannot be had.
const IMAGE_REASONS: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// `(reason, message)` when some of `pods` wait on their image. The message names the image
/// and the number of pods, never the kubelet's current reason or message: those alternate
/// (`ErrImagePull`, then `ImagePullBackOff`, ...) and the status would be rewritten with each.
pub fn image_wait(pods: &[Pod]) -> Option<(String, String)> {
    let mut images: Vec<String> = Vec::new();
    let mut waiting = 0;
    for pod in pods {
        let Some(status) = pod.status.as_ref() else {
            continue;
        };
        let stuck: Vec<String> = status
            .init_container_statuses
            .iter()
            .chain(&status.container_statuses)
            .flatten()
            .filter(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    .is_some_and(|r| IMAGE_REASONS.contains(&r))
            })
            .map(|c| c.image.clone())
            .collect();
        if !stuck.is_empty() {
            waiting += 1;
            images.extend(stuck);
        }
    }
    images.sort();
    images.dedup();
    (waiting > 0).then(|| {
        let pods = if waiting == 1 { "pod" } else { "pods" };
        (
            IMAGE_PULL_FAILING.to_string(),
            format!(
                "{waiting} {pods} cannot pull image {}; check the image's name and tag and that the cluster may pull from its registry (kubectl describe pod shows the registry's answer)",
                images.join(", ")
            ),
        )
    })
}

/// Lists the application's pods of `system` and says whether they wait on their image.
pub async fn read(system: &HealthSystem, ctx: &Context) -> kube::Result<Option<(String, String)>> {
    let namespace = labels::namespace(system);
    let selector = labels::selector(system, application::COMPONENT_NAME)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &namespace)
        .list(&ListParams::default().labels(&selector))
        .await?;
    Ok(image_wait(&pods.items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(reason: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "application-1" },
            "status": { "containerStatuses": [{
                "name": "application", "image": "registry.sdc.gov.rs/his/app:9", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": { "waiting": { "reason": reason, "message": "some words" } }
            }] }
        }))
        .unwrap()
    }

    #[test]
    fn pods_waiting_on_their_image_are_said_the_same_way_whatever_the_kubelets_step() {
        let pulling = image_wait(&[pod("ErrImagePull"), pod("ContainerCreating")]).unwrap();
        assert_eq!(pulling.0, IMAGE_PULL_FAILING);
        assert!(
            pulling
                .1
                .starts_with("1 pod cannot pull image registry.sdc.gov.rs/his/app:9;"),
            "{}",
            pulling.1
        );
        let backing_off = image_wait(&[pod("ImagePullBackOff"), pod("ContainerCreating")]);
        assert_eq!(backing_off, Some(pulling), "no rewrite between the two");
        let both = image_wait(&[pod("ImagePullBackOff"), pod("ErrImagePull")]).unwrap();
        assert!(
            both.1.starts_with("2 pods cannot pull image "),
            "{}",
            both.1
        );
    }

    #[test]
    fn pods_starting_or_crashing_are_not_an_image_problem() {
        assert_eq!(image_wait(&[]), None);
        assert_eq!(image_wait(&[pod("ContainerCreating")]), None);
        assert_eq!(image_wait(&[pod("CrashLoopBackOff")]), None);
    }
}
