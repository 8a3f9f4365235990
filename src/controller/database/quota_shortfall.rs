//! Does the namespace quota leave room for a pod? The StatefulSet controller reports a pod the
//! quota refuses only in an event on the StatefulSet; the quota's own status (hard and used,
//! kept by the quota controller) says the same without a request, so status can name the
//! quota instead of "waiting for the database pod".

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

use crate::resources::quantity;

/// What the quota lacks for one more pod of `pod` (its containers' requests, and one pod),
/// as a sentence naming each exhausted resource; `None` when it fits or cannot be told.
/// `quota` is the ResourceQuota's content as the watch store keeps it (`status` inside).
pub fn shortfall(quota: &Value, pod: &PodSpec) -> Option<String> {
    let hard = quota.pointer("/status/hard")?;
    let used = quota.pointer("/status/used")?;
    // What the pod asks of `resource`: each container's request.
    let asks = |resource: &str| -> Vec<String> {
        pod.containers
            .iter()
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(resource))
            .map(|q| q.0.clone())
            .collect()
    };
    let mut short = Vec::new();
    for (key, read, asked) in [
        (
            "requests.cpu",
            quantity::milli as fn(&str) -> Option<u128>,
            asks("cpu"),
        ),
        ("requests.memory", quantity::bytes, asks("memory")),
        ("pods", quantity::bytes, vec!["1".to_string()]),
    ] {
        let (Some(hard_text), used_text) = (hard[key].as_str(), used[key].as_str()) else {
            continue;
        };
        let need: Option<u128> = asked.iter().map(|q| read(q)).sum();
        let (Some(limit), Some(in_use), Some(need)) =
            (read(hard_text), used_text.map_or(Some(0), read), need)
        else {
            continue;
        };
        if in_use + need > limit {
            short.push(format!(
                "{key}: {} of {hard_text} in use, the pod needs {}",
                used_text.unwrap_or("0"),
                asked.join(" + ")
            ));
        }
    }
    (!short.is_empty()).then(|| short.join("; "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use serde_json::json;

    use super::*;

    fn pod(containers: &[(&str, &str)]) -> PodSpec {
        PodSpec {
            containers: containers
                .iter()
                .map(|(cpu, memory)| Container {
                    resources: Some(ResourceRequirements {
                        requests: Some(BTreeMap::from([
                            ("cpu".to_string(), Quantity((*cpu).into())),
                            ("memory".to_string(), Quantity((*memory).into())),
                        ])),
                        ..ResourceRequirements::default()
                    }),
                    ..Container::default()
                })
                .collect(),
            ..PodSpec::default()
        }
    }

    fn quota(hard: Value, used: Value) -> Value {
        json!({ "status": { "hard": hard, "used": used } })
    }

    #[test]
    fn a_pod_that_fits_has_no_shortfall() {
        let q = quota(
            json!({ "requests.cpu": "2", "requests.memory": "4Gi", "pods": "20" }),
            json!({ "requests.cpu": "100m", "requests.memory": "128Mi", "pods": "1" }),
        );
        assert_eq!(
            shortfall(&q, &pod(&[("500m", "1Gi"), ("50m", "64Mi")])),
            None
        );
    }

    #[test]
    fn memory_beyond_the_quota_is_named_with_what_the_pod_needs() {
        let q = quota(
            json!({ "requests.cpu": "2", "requests.memory": "256Mi", "pods": "20" }),
            json!({ "requests.cpu": "0", "requests.memory": "0", "pods": "0" }),
        );
        assert_eq!(
            shortfall(&q, &pod(&[("500m", "1Gi"), ("50m", "64Mi")])).as_deref(),
            Some("requests.memory: 0 of 256Mi in use, the pod needs 1Gi + 64Mi")
        );
    }

    #[test]
    fn a_full_pod_count_and_cpu_are_both_named() {
        let q = quota(
            json!({ "requests.cpu": "1", "pods": "2" }),
            json!({ "requests.cpu": "900m", "pods": "2" }),
        );
        let text = shortfall(&q, &pod(&[("500m", "1Gi")])).unwrap();
        assert!(text.contains("requests.cpu: 900m of 1 in use"), "{text}");
        assert!(
            text.contains("pods: 2 of 2 in use, the pod needs 1"),
            "{text}"
        );
    }

    #[test]
    fn a_quota_without_status_cannot_tell() {
        assert_eq!(shortfall(&json!({}), &pod(&[("1", "1Gi")])), None);
    }
}
