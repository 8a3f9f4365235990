//! The kinds of child the operator manages, each watched cluster-wide through our
//! managed-by label (never Secrets: `database::credentials_seen`), with managedFields trimmed
//! to others' writes inside a spec, into an in-memory cache ([`crate::controller::cache::compact`]) the reconciler compares
//! against before it writes anything.

use std::collections::HashMap;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::PartialObjectMeta;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::controller::apply::takeback;
use crate::controller::cache::ChildStream;
use crate::controller::cache::compact::{Cache, Live};
use crate::controller::cache::foreign::{self, Foreign};
use crate::controller::cache::owned_fields;
use crate::resources::labels::{MANAGED_BY, MANAGER};
use crate::resources::{archive, cnpg, monitoring};

/// A kind of child: its API resource and whether it is namespaced.
#[derive(Clone, Debug)]
pub struct Kind {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Namespaced (everything but the Namespace itself).
    pub namespaced: bool,
    /// Objects of this kind the operator may delete when no longer wanted. Never a
    /// Namespace, a claim or a Secret (patient data and credentials), nor the Jobs the
    /// CronJob creates.
    pub prunable: bool,
    /// Whether spec fields others add are taken back ([`crate::controller::apply::takeback`]). Not for claims
    /// (the volume binder writes their spec) nor for what is never applied (Secret, Job).
    pub exact: bool,
    /// Immutable fields (JSON pointers) whose live value is sent back as it is: a
    /// StatefulSet's claim templates (the claim itself is grown instead).
    pub keep_from_live: &'static [&'static str],
    /// Spec fields (JSON pointers) read besides the status, kept when the object is slimmed.
    pub read: &'static [&'static str],
    /// The fields (JSON pointers) whose change wakes the object's system; empty: any change.
    /// A kind another controller rewrites many times a second needs it: every event restarts
    /// the controller's debounce, so such a stream would keep its system from being
    /// reconciled at all.
    pub wake_on: &'static [&'static str],
}

impl Kind {
    /// The API of this kind, in `namespace` unless the kind is cluster-scoped.
    pub fn api(&self, client: &Client, namespace: &str) -> Api<DynamicObject> {
        if self.namespaced {
            Api::namespaced_with(client.clone(), namespace, &self.resource)
        } else {
            Api::all_with(client.clone(), &self.resource)
        }
    }
}

fn kind<K: Resource<DynamicType = ()>>(namespaced: bool, prunable: bool, exact: bool) -> Kind {
    Kind {
        resource: ApiResource::erase::<K>(&()),
        namespaced,
        prunable,
        exact,
        keep_from_live: &[],
        read: &[],
        wake_on: &[],
    }
}

/// The optional APIs the cluster serves: their kinds are watched and applied only then.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Apis {
    /// monitoring.coreos.com (PodMonitor, PrometheusRule).
    pub monitoring: bool,
    /// postgresql.cnpg.io (CloudNativePG's Cluster and ScheduledBackup).
    pub cloud_native_pg: bool,
    /// barmancloud.cnpg.io (the Barman Cloud plugin's ObjectStore).
    pub archiving: bool,
}

impl Apis {
    /// Every optional API.
    pub const ALL: Self = Self {
        monitoring: true,
        cloud_native_pg: true,
        archiving: true,
    };
}

/// The registry of child kinds: every kind the operator creates or reads back, declared once
/// with how it is kept, pruned and compared. The kinds of optional APIs come last and only
/// when their API is served (a declared kind that is not watched is not applied; status says
/// why). A kind missing here fails `every_desired_kind_is_declared`.
pub fn kinds(apis: Apis) -> Vec<Kind> {
    let mut kinds = vec![
        kind::<Namespace>(false, false, true),
        kind::<ResourceQuota>(true, true, true),
        kind::<LimitRange>(true, true, true),
        kind::<RoleBinding>(true, true, true),
        kind::<ServiceAccount>(true, true, true),
        kind::<NetworkPolicy>(true, true, true),
        kind::<Service>(true, true, true),
        Kind {
            keep_from_live: &["/spec/volumeClaimTemplates"],
            // Whether its pods run the current template (`restarts`).
            read: &["/spec/replicas"],
            ..kind::<StatefulSet>(true, true, true)
        },
        kind::<PodDisruptionBudget>(true, true, true),
        kind::<PersistentVolumeClaim>(true, false, false),
        kind::<CronJob>(true, true, true),
        kind::<Job>(true, false, false),
        kind::<Deployment>(true, true, true),
    ];
    if apis.cloud_native_pg {
        kinds.push(Kind {
            resource: cnpg::cluster_resource(),
            namespaced: true,
            // Never: its claims go with it (CloudNativePG's owner references).
            prunable: false,
            exact: true,
            keep_from_live: &[],
            // Instances wanted, read with the status (`status::cluster`).
            read: &["/spec/instances"],
            // What `status::cluster` judges by. CloudNativePG rewrote the status of a Cluster
            // whose claims were gone about 30 times a second, alternating its phase reason.
            wake_on: cnpg::WAKE_ON,
        });
        // Pruned when archiving is switched off: its Backups stay (they belong to the
        // Cluster), and so does their data in the store.
        kinds.push(configuration(archive::scheduled_backup_resource(), &[]));
    }
    if apis.archiving {
        // Removing it removes a configuration, never an archived byte. Its recovery window
        // is read with the status (`status::archive`).
        kinds.push(configuration(
            archive::object_store_resource(),
            archive::WAKE_ON,
        ));
    }
    if apis.monitoring {
        kinds.push(configuration(monitoring::pod_monitor_resource(), &[]));
        kinds.push(configuration(monitoring::prometheus_rule_resource(), &[]));
    }
    kinds
}

/// A namespaced kind of another API that only configures something (no data of its own):
/// applied exactly, pruned when no longer wanted.
fn configuration(resource: ApiResource, wake_on: &'static [&'static str]) -> Kind {
    Kind {
        resource,
        namespaced: true,
        prunable: true,
        exact: true,
        keep_from_live: &[],
        read: &[],
        wake_on,
    }
}

/// Every kind the operator creates: the watched ones ([`kinds`]) and Secrets, created once
/// and never watched, read by name only where it may
/// ([`crate::controller::database::credentials_seen`]).
pub fn declared(apis: Apis) -> Vec<Kind> {
    let mut all = kinds(apis);
    all.push(kind::<Secret>(true, false, false));
    all
}

/// Whether a kind is declared ([`declared`] with every optional API): a desired object of any
/// other kind is a defect, refused by the apply instead of skipped.
pub fn is_declared(api_version: &str, kind: &str) -> bool {
    declared(Apis::ALL)
        .iter()
        .any(|k| k.resource.api_version == api_version && k.resource.kind == kind)
}

/// The label selector every watch uses.
pub fn selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}

/// The caches of every watched kind, keyed by "apiVersion/Kind", and the cluster's
/// StorageClasses (names only).
#[derive(Clone, Default)]
pub struct Stores {
    stores: HashMap<String, (Kind, Cache)>,
    storage_classes: Option<Store<PartialObjectMeta<StorageClass>>>,
    /// NetworkPolicies and RoleBindings the operator did not make, by namespace.
    pub foreign: Foreign,
}

fn key(api_version: &str, kind: &str) -> String {
    format!("{api_version}/{kind}")
}

impl Stores {
    /// The cache of a kind, if it is watched.
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<&(Kind, Cache)> {
        self.stores.get(&key(api_version, kind))
    }

    /// The live object of `kind` named `name` (in `namespace` when namespaced).
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<std::sync::Arc<Live>> {
        let (k, cache) = self.kind(api_version, kind)?;
        let namespace = if k.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        cache.get(namespace, name)
    }

    /// The live objects of `kind` labelled as the HealthSystem `system`'s, in any namespace.
    pub fn of_system(
        &self,
        api_version: &str,
        kind: &str,
        system: &str,
    ) -> Vec<std::sync::Arc<Live>> {
        self.kind(api_version, kind)
            .map(|(_, cache)| cache.of_system(system))
            .unwrap_or_default()
    }

    /// Whether the StorageClass `name` exists (true when they are not watched: no claim is
    /// then blamed on its class).
    pub fn storage_class_exists(&self, name: &str) -> bool {
        self.storage_classes
            .as_ref()
            .is_none_or(|classes| classes.get(&ObjectRef::new(name)).is_some())
    }

    /// Every watched kind with its cache.
    pub fn all(&self) -> impl Iterator<Item = &(Kind, Cache)> {
        self.stores.values()
    }

    /// Waits until every cache has its first full list, so a restarted operator compares
    /// against the real cluster rather than an empty cache.
    pub async fn ready(&self) {
        for (_, cache) in self.stores.values() {
            cache.ready().await;
        }
        if let Some(classes) = &self.storage_classes {
            let _ = classes.wait_until_ready().await;
        }
        if self.storage_classes.is_some() {
            // Watched only by a running controller (not in unit tests' empty stores).
            self.foreign.ready().await;
        }
    }
}

/// Drops what tells one copy of an object from another (its UID, resourceVersion and
/// creation time): about 110 bytes of the 500 or so each cached object takes, nowhere read
/// for the kinds the operator applies (a change is taken back by applying, never by an update
/// that names the version it read).
fn forget_identity(object: &mut DynamicObject) {
    object.metadata.uid = None;
    object.metadata.resource_version = None;
    object.metadata.creation_timestamp = None;
}

/// What the cache keeps of a live child: a child of a kind the operator applies slimmed
/// ([`slim`]); the others whole but for who wrote what, of which
/// only others' writes inside a spec are kept (what takeback needs).
fn to_live(mut object: DynamicObject, kind: &Kind) -> Live {
    if kind.exact {
        let keep: Vec<&str> = kind
            .keep_from_live
            .iter()
            .chain(kind.read)
            .copied()
            .collect();
        // A namespace's resourceVersion guards its adoption (`ownership`); of the other
        // kinds the operator applies, it never reads which copy of the object this is.
        if kind.resource.kind != "Namespace" {
            forget_identity(&mut object);
        }
        owned_fields::slim(object, &keep)
    } else {
        object
            .managed_fields_mut()
            .retain(takeback::is_foreign_spec_entry);
        Live::whole(object)
    }
}

fn live_event(event: watcher::Event<DynamicObject>, kind: &Kind) -> watcher::Event<Live> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(to_live(o, kind)),
        watcher::Event::Delete(o) => watcher::Event::Delete(to_live(o, kind)),
        watcher::Event::InitApply(o) => watcher::Event::InitApply(to_live(o, kind)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// Whether a changed `object` wakes its system: always, unless its kind names the fields
/// that do (`wake_on`) and none of them differs from the copy in `cache`.
fn wakes(cache: &Cache, kind: &Kind, object: &DynamicObject) -> bool {
    if kind.wake_on.is_empty() {
        return true;
    }
    let namespace = object.namespace().unwrap_or_default();
    let Some(before) = cache.get(&namespace, &object.name_any()) else {
        return true;
    };
    let after = serde_json::to_value(object).unwrap_or_default();
    let before = serde_json::to_value(&before.object).unwrap_or_default();
    kind.wake_on
        .iter()
        .any(|pointer| after.pointer(pointer) != before.pointer(pointer))
}

/// What the controller needs of a changed child to wake its system: its labels.
fn trigger(object: &DynamicObject) -> DynamicObject {
    DynamicObject {
        types: object.types.clone(),
        metadata: kube::core::ObjectMeta {
            name: object.metadata.name.clone(),
            namespace: object.metadata.namespace.clone(),
            labels: object.metadata.labels.clone(),
            ..Default::default()
        },
        data: serde_json::Value::Null,
    }
}

/// Starts a label-filtered watch of every kind. Each watch runs in a task of its own, so the
/// stores stay current whatever the controller is doing (a controller at full concurrency
/// stops polling its trigger streams, and a reconcile waiting for a store would then wait
/// forever); the returned streams carry the same changes to the controller as triggers.
pub fn watch(client: &Client, kinds: Vec<Kind>) -> (Stores, Vec<(ChildStream, ApiResource)>) {
    let mut stores = Stores::default();
    let mut streams = Vec::new();
    for kind in kinds {
        let cache = Cache::default();
        let api = Api::<DynamicObject>::all_with(client.clone(), &kind.resource);
        let config = watcher::Config::default().labels(&selector());
        let events = watcher(api, config).default_backoff();
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        let (writer, of_kind) = (cache.clone(), kind.clone());
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(item) = events.next().await {
                let touched = match item {
                    Ok(event) => {
                        // Deletions too: a child deleted by hand wakes its owner, which
                        // restores it at once.
                        let touched = match &event {
                            watcher::Event::Apply(object) if !wakes(&writer, &of_kind, object) => {
                                None
                            }
                            watcher::Event::Apply(object)
                            | watcher::Event::Delete(object)
                            | watcher::Event::InitApply(object) => Some(trigger(object)),
                            watcher::Event::Init | watcher::Event::InitDone => None,
                        };
                        writer.write(live_event(event, &of_kind));
                        match touched {
                            Some(object) => Ok(object),
                            None => continue,
                        }
                    }
                    Err(e) => Err(e),
                };
                if sender.unbounded_send(touched).is_err() {
                    break; // the controller has stopped
                }
            }
        });
        streams.push((Box::pin(receiver) as ChildStream, kind.resource.clone()));
        stores.stores.insert(
            key(&kind.resource.api_version, &kind.resource.kind),
            (kind, cache),
        );
    }
    stores.storage_classes = Some(watch_storage_classes(client));
    if let Some((_, namespaces)) = stores.kind("v1", "Namespace") {
        let (foreign, foreign_streams) = foreign::watch(client, namespaces.clone());
        stores.foreign = foreign;
        streams.extend(foreign_streams);
    }
    (stores, streams)
}

/// Watches the cluster's StorageClasses, names only (a handful in any cluster): a claim pending
/// on a class that does not exist is explained without a GET per reconcile.
fn watch_storage_classes(client: &Client) -> Store<PartialObjectMeta<StorageClass>> {
    let api = Api::<PartialObjectMeta<StorageClass>>::all(client.clone());
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {}
    });
    reader
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::labels::MANAGER;

    fn applied(kind: &str, api_version: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {
                "name": "a", "namespace": "hs-a", "uid": "u-1", "resourceVersion": "42",
                "creationTimestamp": "2026-11-30T01:00:00Z", "generation": 3,
                "labels": { "sdc.gov.rs/healthsystem": "a" },
                "annotations": { "sdc.gov.rs/applied-fingerprint": "f" },
                "managedFields": [{
                    "manager": MANAGER, "operation": "Apply", "apiVersion": api_version,
                    "fieldsType": "FieldsV1", "fieldsV1": { "f:spec": { "f:replicas": {} } }
                }]
            },
            "spec": { "replicas": 1 }
        }))
        .unwrap()
    }

    /// The cache holds what the operator reads; a copy's identity it never reads
    /// but for the namespace, whose resourceVersion guards an adoption.
    #[test]
    fn a_cached_child_keeps_what_is_read_of_its_metadata() {
        let kinds = kinds(Apis::default());
        let of = |name: &str| kinds.iter().find(|k| k.resource.kind == name).unwrap();
        let live = to_live(applied("StatefulSet", "apps/v1"), of("StatefulSet"));
        let meta = &live.object.metadata;
        assert_eq!(
            (meta.uid.as_deref(), meta.resource_version.as_deref()),
            (None, None)
        );
        assert_eq!(meta.creation_timestamp, None);
        assert_eq!(
            meta.generation,
            Some(3),
            "rollouts compare it with the status"
        );
        assert_eq!(live.labels()["sdc.gov.rs/healthsystem"], "a");
        assert_eq!(live.annotations()["sdc.gov.rs/applied-fingerprint"], "f");

        let namespace = to_live(applied("Namespace", "v1"), of("Namespace"));
        assert_eq!(
            namespace.object.metadata.resource_version.as_deref(),
            Some("42")
        );
        let claim = to_live(
            applied("PersistentVolumeClaim", "v1"),
            of("PersistentVolumeClaim"),
        );
        assert_eq!(
            claim.object.metadata.uid.as_deref(),
            Some("u-1"),
            "a lost claim is told by its UID"
        );
    }

    /// CloudNativePG rewrote an unrecoverable Cluster's status 30 times a second, its phase
    /// reason coming and going: only a change of what status reads wakes the system, or the
    /// debounce, restarted by each event, would never let it be reconciled.
    #[test]
    fn a_cluster_wakes_its_system_only_when_what_status_reads_changes() {
        let kinds = kinds(Apis {
            cloud_native_pg: true,
            ..Apis::default()
        });
        let cluster_kind = kinds.iter().find(|k| k.resource.kind == "Cluster").unwrap();
        let cluster = |phase: &str, reason: &str| {
            let mut object = applied("Cluster", "postgresql.cnpg.io/v1");
            object.data["status"] =
                serde_json::json!({ "phase": phase, "phaseReason": reason, "readyInstances": 0 });
            object
        };
        let cache = Cache::default();
        let unrecoverable = "Cluster is unrecoverable and needs manual intervention";
        assert!(
            wakes(&cache, cluster_kind, &cluster(unrecoverable, "")),
            "not cached yet"
        );
        cache.write(watcher::Event::Apply(to_live(
            cluster(unrecoverable, "no PVCs"),
            cluster_kind,
        )));
        assert!(!wakes(&cache, cluster_kind, &cluster(unrecoverable, "")));
        assert!(wakes(
            &cache,
            cluster_kind,
            &cluster("Cluster in healthy state", "")
        ));
        let mut grown = cluster(unrecoverable, "no PVCs");
        grown.data["spec"]["instances"] = serde_json::json!(2);
        assert!(wakes(&cache, cluster_kind, &grown));

        let statefulset = kinds
            .iter()
            .find(|k| k.resource.kind == "StatefulSet")
            .unwrap();
        assert!(wakes(
            &cache,
            statefulset,
            &applied("StatefulSet", "apps/v1")
        ));
    }

    /// The registry is the one place a kind is declared: every object the operator writes,
    /// the systems' children (every feature on, whatever the migration's phase) and the
    /// restore namespace's objects and the final backup, is of a declared kind. A builder that
    /// adds a kind without declaring it fails here, not silently in the cluster.
    #[test]
    fn every_desired_kind_is_declared() {
        use crate::api::validation::validate;
        use crate::config::{Config, ObjectStore};
        use crate::resources::{Desired, bootstrap, drill, final_backup, manifest};

        let mut config = Config::default();
        config.backup.object_store = Some(ObjectStore::example());
        let store = ObjectStore::example();
        let fixtures_base = || {
            serde_json::json!({
                "institution": { "displayName": "DZ", "registryId": "07151950", "ownership": "Public" },
                "database": { "version": "15", "storage": "10Gi" },
                "application": { "image": "registry.sdc.gov.rs/his/app:1", "port": 8080 },
                "monitoring": { "enabled": true }
            })
        };
        let base = fixtures_base();
        let mut migrated = base.clone();
        migrated["migration"] = serde_json::json!({
            "source": { "host": "legacy.example", "database": "his", "secretName": "legacy",
                        "network": { "cidr": "10.20.30.40/32" } }
        });
        let mut restored = base.clone();
        restored["database"]["bootstrap"] =
            serde_json::json!({ "fromBackup": { "namespace": "hs-old" } });
        let mut objects = Vec::new();
        let fixtures = [
            (base, None, false),
            (migrated.clone(), Some("Importing"), true),
            (migrated, Some("Verifying"), true),
            (restored, None, true),
        ];
        for (spec, phase, with_store) in fixtures {
            let mut system = validate(&serde_json::json!({
                "apiVersion": "sdc.gov.rs/v1alpha1", "kind": "HealthSystem",
                "metadata": { "name": "dz-test", "uid": "u-1" }, "spec": spec
            }))
            .unwrap();
            if let Some(phase) = phase {
                system.status = Some(
                    serde_json::from_value(serde_json::json!({
                        "migration": { "phase": phase, "attempt": 1, "reason": phase,
                            "lastTransitionTime": "2026-12-06T00:00:00Z" }
                    }))
                    .unwrap(),
                );
            }
            let config = if with_store {
                config.clone()
            } else {
                Config::default()
            };
            let desired = Desired::build(&system, &config);
            objects.extend(desired.manifests());
            objects.extend(final_backup::job(&system, &desired).iter().map(manifest));
            objects.push(manifest(&drill::policy(&config, &store)));
            objects.push(manifest(&drill::job(
                &system,
                &config,
                &store,
                "drill-dz-test",
                None,
            )));
            if let Some(source) = bootstrap::source(&system) {
                objects.push(manifest(&bootstrap::policy(&system, &config, &store)));
                objects.push(manifest(&bootstrap::job(&system, &config, &store, source)));
                objects.push(manifest(&bootstrap::login_secret(
                    &system,
                    &config,
                    Default::default(),
                )));
            }
        }
        // The CloudNativePG engine's children.
        let mut cloud_native = Config::default();
        cloud_native.database.engine = crate::api::Engine::CloudNativePg;
        let system = validate(&serde_json::json!({
            "apiVersion": "sdc.gov.rs/v1alpha1", "kind": "HealthSystem",
            "metadata": { "name": "dz-cnpg", "uid": "u-2" }, "spec": fixtures_base()
        }))
        .unwrap();
        objects.extend(Desired::build(&system, &cloud_native).manifests());
        let kinds: std::collections::BTreeSet<_> = objects
            .iter()
            .map(|o| {
                (
                    o["apiVersion"].as_str().unwrap().to_string(),
                    o["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for wanted in [
            "Deployment",
            "Job",
            "PersistentVolumeClaim",
            "PodMonitor",
            "NetworkPolicy",
        ] {
            assert!(
                kinds.iter().any(|(_, k)| k == wanted),
                "the fixture builds no {wanted}: {kinds:?}"
            );
        }
        for (api_version, kind) in &kinds {
            assert!(
                is_declared(api_version, kind),
                "{api_version}/{kind} is built but not declared in kinds()"
            );
        }
        assert!(
            !is_declared("v1", "ConfigMap"),
            "an undeclared kind is told apart"
        );
    }
}
