//! A CloudNativePG system's continuous archive, by CloudNativePG's Barman Cloud plugin: every
//! WAL segment and a scheduled base backup go to the system's own prefix of the object store
//! (`<namespace>/archive/postgres/...`) with the system's own store credentials, so it can be
//! recovered to any second of the retention window. Three pieces: the plugin's `ObjectStore`
//! (where and with which credentials), the Cluster naming it as its WAL archiver
//! ([`cluster_plugins`], [`parameters`]) and a `ScheduledBackup` of base backups.
//!
//! The logical dumps stay beside it under the same prefix (`<namespace>/<id>/...`): their
//! pruning only touches two-level keys whose first part is a backup id, never `archive/`.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use super::cnpg::CLUSTER;
use super::labels;
use super::metadata::component_meta;
use super::names::COMPONENT_NAME;
use super::network::{egress_rule, match_labels, policy};
use crate::api::{ArchiveSource, HealthSystem};
use crate::config::{Config, ObjectStore};
use k8s_openapi::api::networking::v1::NetworkPolicy;

/// The name of the system's ObjectStore (and the folder under its prefix).
pub const OBJECT_STORE: &str = "archive";
/// The name of the system's ScheduledBackup.
pub const SCHEDULED_BACKUP: &str = "base-backup";
/// The ObjectStore of the archive a new system is recovered from (`fromArchive`), and the
/// external cluster that names it in the Cluster.
pub const ORIGIN: &str = "origin";

/// `barmancloud.cnpg.io/v1` ObjectStore, the plugin's.
pub fn object_store_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("barmancloud.cnpg.io", "v1", "ObjectStore"),
        "objectstores",
    )
}

/// `postgresql.cnpg.io/v1` ScheduledBackup.
pub fn scheduled_backup_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "ScheduledBackup"),
        "scheduledbackups",
    )
}

/// The fields of an ObjectStore whose change wakes its system (its recovery window).
pub const WAKE_ON: &[&str] = &["/status/serverRecoveryWindow"];

/// The store the system archives to: with archiving on and the system on CloudNativePG.
fn store(config: &Config, on_cluster: bool) -> Option<&ObjectStore> {
    config.backup.archive_store().filter(|_| on_cluster)
}

/// Where the system's archive is: `s3://<bucket>/<namespace>/archive`.
pub fn destination(system: &HealthSystem, store: &ObjectStore) -> String {
    namespace_destination(&labels::namespace(system), store)
}

/// Where the archive of the system that had `namespace` is.
fn namespace_destination(namespace: &str, store: &ObjectStore) -> String {
    format!("s3://{}/{namespace}/{OBJECT_STORE}", store.bucket)
}

/// The archive the new system starts from (`spec.database.bootstrap.fromArchive`).
pub fn source(system: &HealthSystem) -> Option<&ArchiveSource> {
    system
        .spec
        .database
        .bootstrap
        .as_ref()
        .and_then(|b| b.from_archive.as_ref())
}

/// Why `system` cannot start from the archive it names here, if it names one: only a
/// CloudNativePG Cluster recovers from an archive, by the plugin, so anywhere else an empty
/// database would start in its place.
pub fn refuse_bootstrap(system: &HealthSystem, config: &Config) -> Option<String> {
    let source = source(system)?;
    let from = &source.namespace;
    if super::engine(system, config) != crate::api::Engine::CloudNativePg {
        return Some(format!(
            "spec.database.bootstrap.fromArchive: the archive of {from} can only be recovered into a CloudNativePG Cluster, and this platform makes new systems on the StatefulSet engine (database.engine)"
        ));
    }
    if config.backup.archive_store().is_none() {
        return Some(format!(
            "spec.database.bootstrap.fromArchive: this platform keeps no archives (backup.archiving is off, or there is no backup.objectStore), so the archive of {from} cannot be read"
        ));
    }
    None
}

/// The system's ObjectStore: its prefix, its credentials (the Secret the platform put in its
/// namespace for the logical dumps), WAL compressed, retention by recovery window.
pub fn object_store(
    system: &HealthSystem,
    config: &Config,
    on_cluster: bool,
) -> Option<DynamicObject> {
    let store = store(config, on_cluster)?;
    Some(store_object(
        system,
        config,
        store,
        OBJECT_STORE,
        destination(system, store),
        &store.credentials_secret,
    ))
}

/// The ObjectStore of the archive the new system is recovered from: that system's prefix,
/// read with the credentials the bootstrap names (never written: the Cluster only restores
/// from it, and archives into its own).
pub fn origin_object_store(
    system: &HealthSystem,
    config: &Config,
    on_cluster: bool,
) -> Option<DynamicObject> {
    let store = store(config, on_cluster)?;
    let source = source(system)?;
    Some(store_object(
        system,
        config,
        store,
        ORIGIN,
        namespace_destination(&source.namespace, store),
        &source.credentials_secret,
    ))
}

/// An ObjectStore of `store` named `name` at `destination`, with the credentials of `secret`.
fn store_object(
    system: &HealthSystem,
    config: &Config,
    store: &ObjectStore,
    name: &str,
    destination: String,
    secret: &str,
) -> DynamicObject {
    let mut spec = store_spec(store, destination, secret);
    spec["retentionPolicy"] = json!(format!("{}d", config.backup.archiving.retention_days));
    let mut object =
        DynamicObject::new(name, &object_store_resource()).data(json!({ "spec": spec }));
    object.metadata = component_meta(system, name, COMPONENT_NAME);
    object
}

/// The spec of an ObjectStore of `store` at `destination` with the credentials of `secret`
/// (keys `accessKeyId`, `secretAccessKey`), without retention: only the store a Cluster
/// archives into prunes it.
pub(crate) fn store_spec(store: &ObjectStore, destination: String, secret: &str) -> Value {
    let credential = |key: &str| json!({ "name": secret, "key": key });
    json!({
        "configuration": {
            "destinationPath": destination,
            "endpointURL": store.endpoint,
            "s3Credentials": {
                "accessKeyId": credential("accessKeyId"),
                "secretAccessKey": credential("secretAccessKey"),
            },
            "wal": { "compression": "gzip" },
            "data": { "compression": "gzip" },
        },
        "instanceSidecarConfiguration": {
            // Newer S3 clients (boto3 1.36 on) send checksums that S3-compatible stores in a
            // data centre often refuse or do not return: only when the store requires them.
            "env": [
                { "name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required" },
                { "name": "AWS_RESPONSE_CHECKSUM_VALIDATION", "value": "when_required" },
                { "name": "AWS_DEFAULT_REGION", "value": store.region },
            ],
            // The CRD's defaults, spelled out: a default the API server adds would otherwise
            // differ from what is applied at every reconcile.
            "retentionPolicyIntervalSeconds": 1800,
            "logLevel": "info",
        },
    })
}

/// The Cluster's `bootstrap` and `externalClusters` for a system recovered from an archive
/// (`fromArchive`): recovery from the origin's base backups and WAL up to the target time
/// (or the end of the archive), the application's role then given the password of our
/// Secret. `None` for any other system.
pub fn recovery(system: &HealthSystem, config: &Config) -> Option<(Value, Value)> {
    let source = source(system)?;
    let mut recovery = json!({
        "source": ORIGIN,
        "database": super::roles::APPLICATION.user,
        "owner": super::roles::APPLICATION.user,
        "secret": { "name": super::roles::APPLICATION.secret },
    });
    if source.target_time != "latest" {
        recovery["recoveryTarget"] = json!({ "targetTime": source.target_time });
    }
    let external = json!([{
        "name": ORIGIN,
        "plugin": {
            "name": config.backup.archiving.plugin,
            "enabled": true,
            "isWALArchiver": false,
            "parameters": { "barmanObjectName": ORIGIN, "serverName": CLUSTER },
        },
    }]);
    Some((json!({ "recovery": recovery }), external))
}

/// Whether the archive has taken WAL, or holds a base backup, by the system's status: its
/// base backups start then. Before, a base backup would fail (the store's credentials not
/// provisioned yet, the store unreachable) and CloudNativePG would not try again before the
/// next scheduled time, a day later.
fn archive_started(system: &HealthSystem) -> bool {
    let archive = system
        .status
        .as_ref()
        .and_then(|s| s.backup.as_ref())
        .and_then(|b| b.archive.as_ref());
    archive.is_some_and(|a| a.wal_archiving == Some(true) || a.first_recoverability_point.is_some())
}

/// Base backups of the Cluster on the configured schedule, the first one at once, from when
/// the archive has started ([`archive_started`]).
pub fn scheduled_backup(
    system: &HealthSystem,
    config: &Config,
    on_cluster: bool,
) -> Option<DynamicObject> {
    store(config, on_cluster)?;
    if !archive_started(system) {
        return None;
    }
    let archiving = &config.backup.archiving;
    let spec = json!({
        "schedule": archiving.base_backup_schedule,
        "cluster": { "name": CLUSTER },
        "method": "plugin",
        "pluginConfiguration": { "name": archiving.plugin },
        "immediate": true,
        // Each Backup object belongs to the Cluster, which is never deleted implicitly;
        // removing a Backup object leaves its data in the store (retention removes that).
        "backupOwnerReference": "cluster",
    });
    let mut object = DynamicObject::new(SCHEDULED_BACKUP, &scheduled_backup_resource())
        .data(json!({ "spec": spec }));
    object.metadata = component_meta(system, SCHEDULED_BACKUP, COMPONENT_NAME);
    Some(object)
}

/// The Cluster's `plugins`: the Barman Cloud plugin as its WAL archiver, with the system's
/// ObjectStore; `None` without archiving.
pub fn cluster_plugins(config: &Config) -> Option<Value> {
    config.backup.archive_store()?;
    Some(json!([{
        "name": config.backup.archiving.plugin,
        "enabled": true,
        "isWALArchiver": true,
        "parameters": { "barmanObjectName": OBJECT_STORE },
    }]))
}

/// PostgreSQL settings archiving adds: `archive_timeout`.
pub fn parameters(config: &Config) -> Option<Value> {
    config.backup.archive_store()?;
    Some(json!({ "archive_timeout": config.backup.archiving.archive_timeout }))
}

/// The database instances' egress to the store (the plugin's sidecar in each instance pod
/// uploads WAL and base backups, and a recovering instance downloads them).
pub fn network_policy(
    system: &HealthSystem,
    config: &Config,
    on_cluster: bool,
) -> Option<NetworkPolicy> {
    let store = store(config, on_cluster)?;
    Some(policy(
        system,
        "database-archive-egress",
        match_labels(labels::selector(system, COMPONENT_NAME)),
        None,
        Some(vec![egress_rule(&store.network)]),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::Engine;
    use crate::api::validation::validate;
    use crate::config::ObjectStore;
    use crate::resources::Desired;

    fn system() -> HealthSystem {
        let mut system = archiving_system();
        system.status = Some(
            serde_json::from_value(json!({ "backup": { "archive": {
                "destination": "s3://healthsystem-backups/hs-dz-test/archive", "walArchiving": true
            } } }))
            .unwrap(),
        );
        system
    }

    fn archiving_system() -> HealthSystem {
        validate(&json!({
            "apiVersion": "sdc.gov.rs/v1alpha1", "kind": "HealthSystem",
            "metadata": { "name": "dz-test", "uid": "u-1" },
            "spec": {
                "institution": { "displayName": "DZ", "registryId": "07151950", "ownership": "Public" },
                "database": { "version": "17", "storage": "50Gi" }
            }
        }))
        .unwrap()
    }

    fn config(engine: Engine, archiving: bool) -> Config {
        let mut config = Config::default();
        config.database.engine = engine;
        config.database.cloud_native_pg.api_server.cidrs = vec!["10.0.0.1/32".into()];
        config.backup.object_store = Some(ObjectStore::example());
        config.backup.archiving.enabled = archiving;
        config
    }

    #[test]
    fn a_cluster_archives_to_its_own_prefix_with_its_own_credentials() {
        let desired = Desired::build(&system(), &config(Engine::CloudNativePg, true));
        let store = desired
            .archive
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(OBJECT_STORE))
            .expect("an ObjectStore");
        assert_eq!(store.metadata.namespace.as_deref(), Some("hs-dz-test"));
        let configuration = &store.data["spec"]["configuration"];
        assert_eq!(
            configuration["destinationPath"],
            "s3://healthsystem-backups/hs-dz-test/archive"
        );
        assert_eq!(configuration["endpointURL"], "https://s3.sdc.gov.rs");
        assert_eq!(
            configuration["s3Credentials"]["secretAccessKey"],
            json!({ "name": "backup-store-credentials", "key": "secretAccessKey" })
        );
        assert_eq!(store.data["spec"]["retentionPolicy"], "30d");

        let cluster = &desired.database_cluster.as_ref().unwrap().data["spec"];
        assert_eq!(
            cluster["plugins"],
            json!([{ "name": "barman-cloud.cloudnative-pg.io", "enabled": true,
                     "isWALArchiver": true, "parameters": { "barmanObjectName": "archive" } }])
        );
        assert_eq!(
            cluster["postgresql"]["parameters"]["archive_timeout"],
            "5min"
        );
        let schedule = desired
            .archive
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(SCHEDULED_BACKUP))
            .expect("a ScheduledBackup");
        assert_eq!(schedule.data["spec"]["method"], "plugin");
        assert_eq!(schedule.data["spec"]["schedule"], "0 0 1 * * *");
        assert_eq!(schedule.data["spec"]["cluster"]["name"], "postgres");

        // The instances reach the store, and only they (the sidecar is in their pods).
        let egress = desired
            .network_policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("database-archive-egress"))
            .expect("the archive's egress");
        let spec = egress.spec.as_ref().unwrap();
        assert_eq!(
            spec.pod_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["app.kubernetes.io/component"],
            "database"
        );
        let to = spec.egress.as_ref().unwrap()[0].to.as_ref().unwrap();
        assert_eq!(to[0].ip_block.as_ref().unwrap().cidr, "10.220.0.0/24");
        // Where it archives to comes before the Cluster naming it.
        let kinds: Vec<_> = desired
            .manifests()
            .iter()
            .map(|m| m["kind"].as_str().unwrap_or_default().to_string())
            .collect();
        let at = |kind: &str| kinds.iter().position(|k| k == kind).unwrap();
        assert!(at("ObjectStore") < at("Cluster"), "{kinds:?}");
    }

    /// A base backup before the archive takes WAL fails (credentials not provisioned yet,
    /// the store unreachable), and CloudNativePG would not try again for a day.
    #[test]
    fn base_backups_start_once_the_archive_takes_wal() {
        let config = config(Engine::CloudNativePg, true);
        let new = Desired::build(&archiving_system(), &config);
        let names: Vec<_> = new
            .archive
            .iter()
            .map(|o| o.metadata.name.clone())
            .collect();
        assert_eq!(names, [Some(OBJECT_STORE.to_string())]);
        let started = Desired::build(&system(), &config);
        assert_eq!(started.archive.len(), 2);
    }

    fn recovered(target: Option<&str>) -> HealthSystem {
        let mut source =
            json!({ "namespace": "hs-lab-old", "credentialsSecret": "archive-reader" });
        if let Some(t) = target {
            source["targetTime"] = json!(t);
        }
        validate(&json!({
            "apiVersion": "sdc.gov.rs/v1alpha1", "kind": "HealthSystem",
            "metadata": { "name": "dz-new", "uid": "u-2" },
            "spec": {
                "institution": { "displayName": "DZ", "registryId": "07151950", "ownership": "Public" },
                "database": { "version": "17", "storage": "50Gi",
                              "bootstrap": { "fromArchive": source } }
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_system_recovered_from_an_archive_reads_the_origin_and_archives_into_its_own() {
        let config = config(Engine::CloudNativePg, true);
        let desired = Desired::build(&recovered(Some("2026-12-07T10:15:00Z")), &config);
        let origin = desired
            .archive
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(ORIGIN))
            .expect("the origin's ObjectStore");
        let configuration = &origin.data["spec"]["configuration"];
        assert_eq!(
            configuration["destinationPath"],
            "s3://healthsystem-backups/hs-lab-old/archive"
        );
        assert_eq!(
            configuration["s3Credentials"]["accessKeyId"]["name"],
            "archive-reader"
        );
        let own = desired
            .archive
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(OBJECT_STORE))
            .unwrap();
        assert_eq!(
            own.data["spec"]["configuration"]["destinationPath"],
            "s3://healthsystem-backups/hs-dz-new/archive"
        );
        let cluster = &desired.database_cluster.as_ref().unwrap().data["spec"];
        assert_eq!(
            cluster["bootstrap"],
            json!({ "recovery": { "source": "origin", "database": "app", "owner": "app",
                    "secret": { "name": "database-credentials" },
                    "recoveryTarget": { "targetTime": "2026-12-07T10:15:00Z" } } })
        );
        assert_eq!(
            cluster["externalClusters"][0]["plugin"]["parameters"],
            json!({ "barmanObjectName": "origin", "serverName": "postgres" })
        );
        // Its own archive goes on from the recovered timeline.
        assert_eq!(
            cluster["plugins"][0]["parameters"]["barmanObjectName"],
            "archive"
        );

        let latest = Desired::build(&recovered(None), &config);
        let cluster = &latest.database_cluster.as_ref().unwrap().data["spec"];
        assert!(
            cluster["bootstrap"]["recovery"]
                .get("recoveryTarget")
                .is_none()
        );
        assert_eq!(refuse_bootstrap(&recovered(None), &config), None);
    }

    /// Anywhere but on a Cluster with the plugin, an empty database would start in place of
    /// the archive's: refused, naming why.
    #[test]
    fn a_recovery_the_platform_cannot_make_is_refused() {
        let statefulset = refuse_bootstrap(&recovered(None), &config(Engine::StatefulSet, true));
        assert!(statefulset.unwrap().contains("CloudNativePG"));
        let off = refuse_bootstrap(&recovered(None), &config(Engine::CloudNativePg, false));
        assert!(off.unwrap().contains("backup.archiving is off"));
        assert_eq!(
            refuse_bootstrap(&system(), &config(Engine::StatefulSet, false)),
            None
        );
    }

    #[test]
    fn nothing_is_archived_when_off_or_on_the_statefulset() {
        for config in [
            config(Engine::CloudNativePg, false),
            config(Engine::StatefulSet, true),
        ] {
            let desired = Desired::build(&system(), &config);
            assert!(desired.archive.is_empty());
            assert!(
                desired
                    .network_policies
                    .iter()
                    .all(|p| p.metadata.name.as_deref() != Some("database-archive-egress"))
            );
            if let Some(cluster) = &desired.database_cluster {
                assert!(cluster.data["spec"].get("plugins").is_none());
                assert!(
                    cluster.data["spec"]["postgresql"]
                        .get("parameters")
                        .is_none()
                );
            }
        }
    }
}
