//! When were the floor's workloads ready? What makes a HealthSystem Ready on the benchmark's
//! clusters is its database StatefulSet's pod ready (its claim bound) and its application's
//! Deployment available; the floor has no operator to say so, so one watch per kind takes
//! each StatefulSet and Deployment off its list once its status shows that. With it the
//! operator's time to all Ready has a floor too: the same objects' pods, started by the same
//! cluster, with nothing but their applies before them.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::{Api, Client};
use serde_json::Value;

use super::applied::{expected, until_all};

fn statefulset_ready(s: &StatefulSet) -> bool {
    let wanted = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.status
        .as_ref()
        .is_some_and(|st| st.ready_replicas.unwrap_or(0) >= wanted)
}

fn deployment_ready(d: &Deployment) -> bool {
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    d.status
        .as_ref()
        .is_some_and(|st| st.available_replicas.unwrap_or(0) >= wanted)
}

/// Starts the watches and resolves with the time after `started` at which the last
/// StatefulSet and Deployment of `objects` was ready; panics after `timeout`.
pub fn watch_until_all_ready<'a>(
    client: &Client,
    objects: impl IntoIterator<Item = &'a Value>,
    selector: &str,
    started: Instant,
    timeout: Duration,
) -> tokio::task::JoinHandle<Duration> {
    let mut by_kind = expected(objects);
    let mut of = |kind: &str| {
        by_kind
            .remove(&("apps/v1".to_string(), kind.to_string()))
            .unwrap_or_default()
    };
    let (statefulsets, deployments) = (of("StatefulSet"), of("Deployment"));
    let (client, selector) = (client.clone(), selector.to_string());
    tokio::spawn(async move {
        let statefulsets = until_all(
            Api::<StatefulSet>::all(client.clone()),
            &selector,
            statefulsets,
            statefulset_ready,
            "StatefulSets ready",
            started,
            timeout,
        );
        let deployments = until_all(
            Api::<Deployment>::all(client),
            &selector,
            deployments,
            deployment_ready,
            "Deployments available",
            started,
            timeout,
        );
        let (s, d) = futures::join!(statefulsets, deployments);
        s.max(d)
    })
}
