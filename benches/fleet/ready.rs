//! When were the floor's workloads ready? What makes a HealthSystem Ready on the benchmark's
//! clusters is its database StatefulSet's pod ready (its claim bound) and its application's
//! Deployment available; the floor has no operator to say so, so one watch per kind takes
//! each StatefulSet and Deployment off its list once its status shows that. With it the
//! operator's time to all Ready has a floor too: the same objects' pods, started by the same
//! cluster, with nothing but their applies before them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// (namespace, name) of each object of `kind` among `objects`.
fn named(objects: &[&Value], kind: &str) -> HashSet<(String, String)> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| {
            (
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                o["metadata"]["name"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

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

/// Resolves when every object in `pending` satisfies `ready` (watched with `selector`).
async fn until_ready<K>(
    client: Client,
    mut pending: HashSet<(String, String)>,
    selector: String,
    ready: fn(&K) -> bool,
    started: Instant,
    timeout: Duration,
) -> Duration
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let stream = watcher(
        Api::<K>::all(client),
        watcher::Config::default().labels(&selector),
    )
    .default_backoff()
    .touched_objects();
    let mut stream = std::pin::pin!(stream);
    while !pending.is_empty() {
        let next = tokio::time::timeout_at((started + timeout).into(), stream.next())
            .await
            .unwrap_or_else(|_| panic!("{} not ready after {timeout:?}", pending.len()));
        if let Some(Ok(object)) = next
            && ready(&object)
        {
            pending.remove(&(object.namespace().unwrap_or_default(), object.name_any()));
        }
    }
    started.elapsed()
}

/// Starts the watches and resolves with the time after `started` at which the last
/// StatefulSet and Deployment of `objects` was ready; panics after `timeout`.
pub fn watch_until_all_ready(
    client: &Client,
    objects: &[&Value],
    selector: &str,
    started: Instant,
    timeout: Duration,
) -> tokio::task::JoinHandle<Duration> {
    let statefulsets = until_ready::<StatefulSet>(
        client.clone(),
        named(objects, "StatefulSet"),
        selector.to_string(),
        statefulset_ready,
        started,
        timeout,
    );
    let deployments = until_ready::<Deployment>(
        client.clone(),
        named(objects, "Deployment"),
        selector.to_string(),
        deployment_ready,
        started,
        timeout,
    );
    tokio::spawn(async move {
        let (s, d) = futures::join!(statefulsets, deployments);
        s.max(d)
    })
}
