//! When did the last child appear? One metadata watch per kind (what an informer costs the
//! API server, unlike polling lists) takes every expected object off its list as it appears.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, PartialObjectMeta};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Expected objects by "apiVersion/kind": (namespace, name) of each.
pub type Expected = BTreeMap<(String, String), HashSet<(String, String)>>;

/// The objects of `systems` (each a list of manifests) by kind.
pub fn expected<'a>(systems: impl IntoIterator<Item = &'a Value>) -> Expected {
    let mut out = Expected::new();
    for object in systems {
        let key = (
            object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            object["kind"].as_str().unwrap_or_default().to_string(),
        );
        out.entry(key).or_default().insert((
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ));
    }
    out
}

/// Watches `api` (labelled `selector`) and resolves with the time after `started` at which
/// every object in `pending` had been seen `done`; panics after `timeout`, naming `what`.
pub async fn until_all<K>(
    api: Api<K>,
    selector: &str,
    mut pending: HashSet<(String, String)>,
    done: impl Fn(&K) -> bool,
    what: &str,
    started: Instant,
    timeout: Duration,
) -> Duration
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let stream = watcher(api, watcher::Config::default().labels(selector))
        .default_backoff()
        .touched_objects();
    let mut stream = std::pin::pin!(stream);
    while !pending.is_empty() {
        let next = tokio::time::timeout_at((started + timeout).into(), stream.next())
            .await
            .unwrap_or_else(|_| panic!("{} {what} still missing after {timeout:?}", pending.len()));
        if let Some(Ok(object)) = next
            && done(&object)
        {
            pending.remove(&(object.namespace().unwrap_or_default(), object.name_any()));
        }
    }
    started.elapsed()
}

/// Starts the watches (labelled `selector`) and resolves with the time after `started` at
/// which the last expected object existed; panics after `timeout`.
pub fn watch_until_all_exist(
    client: &Client,
    expected: Expected,
    selector: &str,
    started: Instant,
    timeout: Duration,
) -> tokio::task::JoinHandle<Duration> {
    let watches: Vec<_> = expected
        .into_iter()
        .map(|((api_version, kind), pending)| {
            let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
            // Metadata only: what an informer of names costs.
            let api = Api::<PartialObjectMeta<DynamicObject>>::all_with(client.clone(), &resource);
            let selector = selector.to_string();
            async move {
                let what = format!("{kind} objects");
                until_all(api, &selector, pending, |_| true, &what, started, timeout).await
            }
        })
        .collect();
    tokio::spawn(async move {
        futures::future::join_all(watches)
            .await
            .into_iter()
            .max()
            .unwrap_or_default()
    })
}
