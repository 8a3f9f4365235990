//! Objects the operator did not make, of the kinds that decide a system's isolation and access
//! (NetworkPolicies add up, so any one may allow what the default deny refuses; a RoleBinding
//! may grant anyone anything in the namespace). The children's watches select our label and
//! never see them, so these two kinds are also watched whole, by metadata only, keeping the
//! names of those without our label, by namespace: a few per cluster, while ours are
//! thousands. Each change of one wakes the system whose namespace it is in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::core::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::controller::cache::ChildStream;
use crate::controller::cache::compact::Cache;
use crate::resources::labels::{HEALTHSYSTEM, MANAGED_BY, MANAGER};

/// The kinds watched for foreign objects.
const KINDS: usize = 2;

/// Names of foreign objects, by namespace.
type ByNamespace = BTreeMap<String, BTreeSet<String>>;

/// The foreign NetworkPolicies and RoleBindings of every namespace.
#[derive(Clone)]
pub struct Foreign {
    policies: Arc<RwLock<ByNamespace>>,
    bindings: Arc<RwLock<ByNamespace>>,
    /// Initial lists completed (each kind's first one counts; relists too, harmlessly).
    loaded: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Default for Foreign {
    fn default() -> Self {
        Self {
            policies: Arc::default(),
            bindings: Arc::default(),
            loaded: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl Foreign {
    /// NetworkPolicies in `namespace` the operator did not make.
    pub fn policies(&self, namespace: &str) -> Vec<String> {
        names(&self.policies, namespace)
    }

    /// Waits until both kinds have been listed once (a restarted operator then reports what
    /// is there, instead of flipping conditions when the lists arrive).
    pub async fn ready(&self) {
        let mut loaded = self.loaded.subscribe();
        let _ = loaded.wait_for(|n| *n >= KINDS).await;
    }

    /// RoleBindings in `namespace` the operator did not make.
    pub fn bindings(&self, namespace: &str) -> Vec<String> {
        names(&self.bindings, namespace)
    }
}

fn names(map: &RwLock<ByNamespace>, namespace: &str) -> Vec<String> {
    map.read()
        .unwrap_or_else(|e| e.into_inner())
        .get(namespace)
        .map(|names| names.iter().cloned().collect())
        .unwrap_or_default()
}

/// Whether a RoleBinding is neither the operator's nor made by the database engine for the
/// system's Cluster (CloudNativePG's for its instances, the Barman Cloud plugin's for its
/// sidecar: each belongs to the Cluster). Only trusted accounts may make RoleBindings under
/// the chart's tenant admission, so the owner reference is not a way around it there.
fn is_foreign_binding(metadata: &kube::api::ObjectMeta) -> bool {
    let engines = metadata.owner_references.iter().flatten().any(|owner| {
        owner.kind == "Cluster"
            && owner.name == crate::resources::cnpg::CLUSTER
            && owner.api_version.starts_with("postgresql.cnpg.io/")
    });
    is_foreign(metadata) && !engines
}

/// Whether an object is not the operator's.
fn is_foreign(metadata: &kube::api::ObjectMeta) -> bool {
    !ours(metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
}

/// Whether an object is the operator's (its managed-by label).
fn ours(labels: &BTreeMap<String, String>) -> bool {
    labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
}

/// Applies one watch event to `map`. `fresh` gathers a relist until it is complete.
fn record(
    map: &RwLock<ByNamespace>,
    fresh: &mut ByNamespace,
    event: &watcher::Event<(String, String, bool)>,
) {
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    match event {
        watcher::Event::Apply((namespace, name, foreign)) => {
            let names = map.entry(namespace.clone()).or_default();
            if *foreign {
                names.insert(name.clone());
            } else {
                names.remove(name);
            }
        }
        watcher::Event::Delete((namespace, name, _)) => {
            if let Some(names) = map.get_mut(namespace) {
                names.remove(name);
            }
        }
        watcher::Event::Init => fresh.clear(),
        watcher::Event::InitApply((namespace, name, foreign)) => {
            if *foreign {
                fresh
                    .entry(namespace.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
        watcher::Event::InitDone => *map = std::mem::take(fresh),
    }
    map.retain(|_, names| !names.is_empty());
}

/// A trigger for the system whose namespace `namespace` is (from the namespace cache), if any.
fn trigger(namespaces: &Cache, namespace: &str, resource: &ApiResource) -> Option<DynamicObject> {
    let system = namespaces
        .get("", namespace)?
        .labels()
        .get(HEALTHSYSTEM)?
        .clone();
    let mut object = DynamicObject::new(namespace, resource).within(namespace);
    object.labels_mut().insert(HEALTHSYSTEM.to_string(), system);
    Some(object)
}

fn watch_kind<K>(
    client: &Client,
    map: Arc<RwLock<ByNamespace>>,
    loaded: Arc<tokio::sync::watch::Sender<usize>>,
    namespaces: Cache,
    foreign: fn(&kube::api::ObjectMeta) -> bool,
) -> (ChildStream, ApiResource)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let resource = ApiResource::erase::<K>(&());
    let api = Api::<PartialObjectMeta<K>>::all(client.clone());
    let events = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let (sender, receiver) = futures::channel::mpsc::unbounded();
    let of_kind = resource.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        let mut fresh = ByNamespace::new();
        while let Some(item) = events.next().await {
            let key = |o: PartialObjectMeta<K>| {
                let foreign = foreign(&o.metadata);
                (o.namespace().unwrap_or_default(), o.name_any(), foreign)
            };
            let event = match item {
                Ok(watcher::Event::Apply(o)) => watcher::Event::Apply(key(o)),
                Ok(watcher::Event::Delete(o)) => watcher::Event::Delete(key(o)),
                Ok(watcher::Event::InitApply(o)) => watcher::Event::InitApply(key(o)),
                Ok(watcher::Event::Init) => watcher::Event::Init,
                Ok(watcher::Event::InitDone) => {
                    loaded.send_modify(|n| *n += 1);
                    watcher::Event::InitDone
                }
                Err(e) => {
                    if sender.unbounded_send(Err(e)).is_err() {
                        break;
                    }
                    continue;
                }
            };
            record(&map, &mut fresh, &event);
            let touched = match &event {
                watcher::Event::Apply((namespace, _, true))
                | watcher::Event::Delete((namespace, _, true)) => {
                    trigger(&namespaces, namespace, &of_kind)
                }
                _ => None,
            };
            if let Some(object) = touched
                && sender.unbounded_send(Ok(object)).is_err()
            {
                break; // the controller has stopped
            }
        }
    });
    (Box::pin(receiver) as ChildStream, resource)
}

/// Starts the metadata watches of NetworkPolicies and RoleBindings; `namespaces` is the
/// cache of the operator's namespaces (to wake the system a foreign object is in).
pub fn watch(client: &Client, namespaces: Cache) -> (Foreign, Vec<(ChildStream, ApiResource)>) {
    let foreign = Foreign::default();
    let streams = vec![
        watch_kind::<NetworkPolicy>(
            client,
            foreign.policies.clone(),
            foreign.loaded.clone(),
            namespaces.clone(),
            is_foreign,
        ),
        watch_kind::<RoleBinding>(
            client,
            foreign.bindings.clone(),
            foreign.loaded.clone(),
            namespaces,
            is_foreign_binding,
        ),
    ];
    (foreign, streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        kind: &str,
        namespace: &str,
        name: &str,
        foreign: bool,
    ) -> watcher::Event<(String, String, bool)> {
        let item = (namespace.to_string(), name.to_string(), foreign);
        match kind {
            "apply" => watcher::Event::Apply(item),
            "delete" => watcher::Event::Delete(item),
            _ => watcher::Event::InitApply(item),
        }
    }

    /// The Barman Cloud plugin binds its sidecar's Role for the Cluster it archives (the
    /// binding belongs to the Cluster, without our label): the system was Degraded with
    /// ForeignRoleBinding as soon as it archived.
    #[test]
    fn the_engines_bindings_for_the_systems_cluster_are_not_foreign() {
        let meta = |labels: serde_json::Value, owners: serde_json::Value| {
            serde_json::from_value::<kube::api::ObjectMeta>(serde_json::json!({
                "name": "postgres-barman-cloud", "namespace": "hs-a",
                "labels": labels, "ownerReferences": owners
            }))
            .unwrap()
        };
        let cluster = |name: &str| {
            serde_json::json!([{ "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                                 "name": name, "uid": "u-1", "controller": true }])
        };
        let plugin = serde_json::json!({ "app.kubernetes.io/name": "barman-cloud-plugin" });
        assert!(!is_foreign_binding(&meta(
            plugin.clone(),
            cluster("postgres")
        )));
        // Another owner, or none: a binding someone made.
        assert!(is_foreign_binding(&meta(plugin.clone(), cluster("other"))));
        assert!(is_foreign_binding(&meta(
            plugin.clone(),
            serde_json::json!([])
        )));
        let ours = serde_json::json!({ MANAGED_BY: MANAGER });
        assert!(!is_foreign_binding(&meta(ours, serde_json::json!([]))));
        // A NetworkPolicy is foreign without our label, whoever owns it.
        assert!(is_foreign(&meta(plugin, cluster("postgres"))));
    }

    /// Only objects without our label are kept; a relist replaces what was known, so one
    /// deleted while the watch was down is forgotten.
    #[test]
    fn only_foreign_objects_are_kept_and_a_relist_replaces_them() {
        let map = RwLock::new(ByNamespace::new());
        let mut fresh = ByNamespace::new();
        record(
            &map,
            &mut fresh,
            &event("apply", "hs-a", "default-deny", false),
        );
        record(&map, &mut fresh, &event("apply", "hs-a", "allow-all", true));
        record(&map, &mut fresh, &event("apply", "hs-b", "open", true));
        assert_eq!(names(&map, "hs-a"), ["allow-all"]);
        // Labelled as ours later (adopted by hand): no longer foreign.
        record(&map, &mut fresh, &event("apply", "hs-b", "open", false));
        assert!(names(&map, "hs-b").is_empty());
        // A relist that no longer has allow-all.
        record(&map, &mut fresh, &watcher::Event::Init);
        record(&map, &mut fresh, &event("init", "hs-c", "extra", true));
        assert_eq!(
            names(&map, "hs-a"),
            ["allow-all"],
            "kept until the relist is complete"
        );
        record(&map, &mut fresh, &watcher::Event::InitDone);
        assert!(names(&map, "hs-a").is_empty());
        assert_eq!(names(&map, "hs-c"), ["extra"]);
        record(&map, &mut fresh, &event("delete", "hs-c", "extra", true));
        assert!(names(&map, "hs-c").is_empty());
    }
}
