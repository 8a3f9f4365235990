//! A system's database on the CloudNativePG engine: one `Cluster` (instances by tier, its
//! volumes, the roles from our Secrets, TLS-only logins), the `database` Service every client
//! already uses pointed at its current primary, and the traffic its instances need.
//!
//! CloudNativePG does the replication, the failover and the certificates; what stays ours is
//! who may log in as whom and who may reach what. Its Cluster puts an owner reference on each
//! of its claims, so deleting the Cluster deletes the data: the controller never prunes one
//! (`cache::kinds`), and only `deletionPolicy: Delete` removes it, with the namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvVar, KeyToPath, PodSpec, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use super::database::service_port;
use super::labels;
use super::metadata::component_meta;
use super::names::{COMPONENT_NAME, METRICS_PORT, PORT, SERVICE};
use super::network::{egress_rule, match_labels, namespace_peer, pods_of, policy, tcp};
use super::roles::{APPLICATION, BACKUP, MONITORING};
use crate::api::HealthSystem;
use crate::config::Config;

/// The Cluster's name: its Services are `postgres-rw`, `-ro` and `-r`, its pods `postgres-1`,
/// ... (never `database`, the name of the StatefulSet engine's objects, so a system can move
/// from one to the other with both in place).
pub const CLUSTER: &str = "postgres";

/// The Secret CloudNativePG keeps its certificate authority in (`ca.crt`, and `ca.key`, which
/// no pod of ours ever mounts).
pub const CA_SECRET: &str = "postgres-ca";

/// The port of the instance manager's status endpoint, which its operator and the other
/// instances call.
pub const STATUS_PORT: i32 = 8000;

/// CloudNativePG's label naming the Cluster of a pod.
const CLUSTER_LABEL: &str = "cnpg.io/cluster";
/// CloudNativePG's label of the current primary's pod.
const ROLE_LABEL: &str = "cnpg.io/instanceRole";

/// `postgresql.cnpg.io/v1` Cluster.
pub fn cluster_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster"),
        "clusters",
    )
}

/// The fields of a Cluster whose change wakes its system (`status::cluster` reads them).
pub const WAKE_ON: &[&str] = &[
    "/spec/instances",
    "/status/phase",
    "/status/readyInstances",
    "/status/currentPrimary",
    "/status/targetPrimary",
    // ContinuousArchiving among them (`status::archive`); they change on transitions only.
    "/status/conditions",
];

/// The instances of `system`: its spec's, or its tier's; never more than its tier allows
/// (what is asked beyond is reported by [`instances_above_tier`], not applied).
pub fn instances(system: &HealthSystem, config: &Config) -> i32 {
    let tier = config.tiers.get(system.spec.tier);
    system
        .spec
        .database
        .instances
        .unwrap_or(tier.instances)
        .min(tier.max_instances)
}

/// `(asked, bound)` when `spec.database.instances` is above the tier's `maxInstances`.
pub fn instances_above_tier(system: &HealthSystem, config: &Config) -> Option<(i32, i32)> {
    let bound = config.tiers.get(system.spec.tier).max_instances;
    system
        .spec
        .database
        .instances
        .filter(|asked| *asked > bound)
        .map(|asked| (asked, bound))
}

/// Where a client finds the database's certificate authority, mounted from [`CA_SECRET`].
pub const CA_MOUNT: &str = "/etc/healthsystem/database-ca";

/// The names the server's certificate is also valid for: the `database` Service the
/// credentials Secrets point at, so clients verify it (`sslmode=verify-full`).
fn service_names(system: &HealthSystem) -> Vec<String> {
    let namespace = labels::namespace(system);
    vec![
        SERVICE.to_string(),
        format!("{SERVICE}.{namespace}"),
        format!("{SERVICE}.{namespace}.svc"),
    ]
}

/// A Cluster's `storage`: the system's size and class.
pub fn storage(system: &HealthSystem) -> Value {
    let database = &system.spec.database;
    let mut storage = json!({ "size": database.storage });
    if let Some(class) = &database.storage_class_name {
        storage["storageClass"] = json!(class);
    }
    storage
}

/// A Cluster's `resources`: the tier's for the database.
pub fn resources(system: &HealthSystem, config: &Config) -> Value {
    let tier = config.tiers.get(system.spec.tier);
    json!({
        "requests": { "cpu": tier.database_cpu, "memory": tier.database_memory },
        "limits": { "memory": tier.database_memory }
    })
}

/// The system's CloudNativePG Cluster.
pub fn cluster(system: &HealthSystem, config: &Config) -> DynamicObject {
    let database = &system.spec.database;
    let cnpg = &config.database.cloud_native_pg;
    // With the values CloudNativePG's webhook would default (no connection limit, inherit):
    // the list of roles is one field to server-side apply, so a default added in it would
    // make every later reconcile see a difference and apply the Cluster again.
    let role = |name: &str, secret: &str, in_roles: &[&str], bypass_rls: bool| {
        json!({
            "name": name, "ensure": "present", "login": true, "bypassrls": bypass_rls,
            "inRoles": in_roles, "passwordSecret": { "name": secret },
            "connectionLimit": -1, "inherit": true
        })
    };
    let spec = json!({
        "instances": instances(system, config),
        "imageName": config.images.postgres(database.version),
        // Also the init container's that copies the instance manager in: an image that
        // is already on the node is not pulled again.
        "imagePullPolicy": "IfNotPresent",
        "postgresUID": cnpg.postgres_uid,
        "postgresGID": cnpg.postgres_gid,
        // Its pods, claims and Services carry our labels: the database's policies select
        // its pods, and the watches see its claims.
        "inheritedMetadata": { "labels": labels::component(system, COMPONENT_NAME) },
        "storage": storage(system),
        "resources": resources(system, config),
        "affinity": { "enablePodAntiAffinity": true, "podAntiAffinityType": "preferred" },
        "primaryLease": cnpg.primary_lease,
        "certificates": { "serverAltDNSNames": service_names(system) },
        // No workload logs in as the superuser; CloudNativePG keeps no password for it.
        "enableSuperuserAccess": false,
        "postgresql": postgresql(system, config),
        // The application's role owns its database, with the password of our Secret
        // (generated once, never rotated while the Secret exists).
        "bootstrap": { "initdb": {
            "database": APPLICATION.user,
            "owner": APPLICATION.user,
            "secret": { "name": APPLICATION.secret }
        } },
        "managed": { "roles": [
            role(MONITORING.user, MONITORING.secret, &["pg_monitor"], false),
            // Reads every row, row security included; owns and may write nothing.
            role(BACKUP.user, BACKUP.secret, &["pg_read_all_data"], true),
        ] }
    });
    let mut spec = spec;
    if let Some(plugins) = super::archive::cluster_plugins(config) {
        spec["plugins"] = plugins;
    }
    if let Some((bootstrap, external)) = super::archive::recovery(system, config) {
        spec["bootstrap"] = bootstrap;
        spec["externalClusters"] = external;
    }
    let mut object = DynamicObject::new(CLUSTER, &cluster_resource()).data(json!({ "spec": spec }));
    object.metadata = component_meta(system, CLUSTER, COMPONENT_NAME);
    object
}

/// PostgreSQL's settings: TLS-only logins (CloudNativePG's own rules would accept a plaintext
/// login with a password), synchronous commits where the system asks, and what archiving
/// sets.
fn postgresql(system: &HealthSystem, config: &Config) -> Value {
    let mut settings = json!({ "pg_hba": ["hostnossl all all all reject"] });
    if let Some(parameters) = super::archive::parameters(config) {
        settings["parameters"] = parameters;
    }
    if system.spec.database.synchronous_replication {
        // `required`: a commit is acknowledged only once a replica has it, never quietly
        // downgraded to asynchronous (`preferred` would, when no replica answers).
        settings["synchronous"] =
            json!({ "method": "any", "number": 1, "dataDurability": "required" });
    }
    settings
}

/// The Cluster as a manifest (apiVersion and kind set).
pub fn manifest(cluster: &DynamicObject) -> Value {
    serde_json::to_value(cluster).unwrap_or(Value::Null)
}

/// The Cluster's own read-write Service (CloudNativePG's, on the primary), which its server
/// certificate names.
pub fn read_write_service() -> String {
    format!("{CLUSTER}-rw")
}

/// The `database` Service, on the current primary: what the credentials Secrets, the
/// application, the backups and the exporter's scrape already use.
pub fn service(system: &HealthSystem) -> Service {
    Service {
        metadata: component_meta(system, SERVICE, COMPONENT_NAME),
        spec: Some(ServiceSpec {
            selector: Some(primary_selector()),
            // By number: CloudNativePG names its container's ports differently (postgresql).
            ports: Some(
                [("postgres", PORT), ("metrics", METRICS_PORT)]
                    .map(|(name, port)| ServicePort {
                        target_port: Some(IntOrString::Int(port)),
                        ..service_port(name, port)
                    })
                    .to_vec(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The labels of the Cluster's current primary pod.
fn primary_selector() -> BTreeMap<String, String> {
    BTreeMap::from([
        (CLUSTER_LABEL.to_string(), CLUSTER.to_string()),
        (ROLE_LABEL.to_string(), "primary".to_string()),
    ])
}

/// What the Cluster's pods (its instances and the Jobs that make them) need besides the
/// database's clients: each other on PostgreSQL and the status port (replication, and the
/// instance managers asking each other), CloudNativePG's operator to both ports, and the API
/// server (the instance manager reads its Cluster and writes its status).
pub fn network_policy(system: &HealthSystem, config: &Config) -> NetworkPolicy {
    let cnpg = &config.database.cloud_native_pg;
    let mut ours = labels::selector(system, COMPONENT_NAME);
    ours.insert(CLUSTER_LABEL.to_string(), CLUSTER.to_string());
    let instances = || pods_of(match_labels(ours.clone()));
    let ports = || Some(vec![tcp(PORT), tcp(STATUS_PORT)]);
    let mut egress = vec![NetworkPolicyEgressRule {
        to: Some(vec![instances()]),
        ports: ports(),
    }];
    // A rule without a peer would allow every address: only where the API server is known
    // (the configuration requires it while this engine makes new systems).
    let api = &cnpg.api_server;
    if !api.cidrs.is_empty() || api.namespace_selector.is_some() || api.pod_selector.is_some() {
        egress.push(egress_rule(api));
    }
    policy(
        system,
        "database-instances",
        match_labels(ours.clone()),
        Some(vec![NetworkPolicyIngressRule {
            from: Some(vec![instances(), namespace_peer(&cnpg.operator_namespace)]),
            ports: ports(),
        }]),
        Some(egress),
    )
}

/// Makes a client pod's containers verify the server (`sslmode=verify-full` against the
/// Cluster's own certificate authority, mounted without its key) in libpq's variables, which
/// `psql`, `pg_dump`, the backup agent and most drivers read, and as DATABASE_SSLMODE and
/// DATABASE_SSLROOTCERT beside the application's other DATABASE_ variables.
pub fn verify_server(pod: &mut PodSpec) {
    verify_server_from(pod, CA_SECRET);
}

/// [`verify_server`] with the CA's certificate (key `ca.crt`) from the Secret `secret`: a
/// pod outside the system's namespace gets a copy of it.
pub fn verify_server_from(pod: &mut PodSpec, secret: &str) {
    let root = format!("{CA_MOUNT}/ca.crt");
    for container in &mut pod.containers {
        let env = container.env.get_or_insert_default();
        for (name, value) in [
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", root.as_str()),
            ("DATABASE_SSLMODE", "verify-full"),
            ("DATABASE_SSLROOTCERT", root.as_str()),
        ] {
            env.push(EnvVar {
                name: name.into(),
                value: Some(value.into()),
                ..EnvVar::default()
            });
        }
        container
            .volume_mounts
            .get_or_insert_default()
            .push(VolumeMount {
                name: "database-ca".into(),
                mount_path: CA_MOUNT.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
    }
    pod.volumes.get_or_insert_default().push(Volume {
        name: "database-ca".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: Some(vec![KeyToPath {
                key: "ca.crt".into(),
                path: "ca.crt".into(),
                ..KeyToPath::default()
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::Engine;
    use crate::api::validation::validate;
    use crate::resources::Desired;

    fn system(tier: &str, status: Option<serde_json::Value>) -> HealthSystem {
        let mut system = validate(&json!({
            "apiVersion": "sdc.gov.rs/v1alpha1", "kind": "HealthSystem",
            "metadata": { "name": "dz-test", "uid": "u-1" },
            "spec": {
                "institution": { "displayName": "DZ", "registryId": "07151950", "ownership": "Public" },
                "tier": tier,
                "database": { "version": "17", "storage": "50Gi", "storageClassName": "fast" },
                "application": { "image": "registry.sdc.gov.rs/his/app:1", "port": 8080 }
            }
        }))
        .unwrap();
        system.status = status.map(|s| serde_json::from_value(s).unwrap());
        system
    }

    fn config() -> Config {
        let mut config = Config::default();
        config.database.engine = Engine::CloudNativePg;
        config.database.cloud_native_pg.api_server.cidrs = vec!["10.0.0.1/32".into()];
        config
    }

    #[test]
    fn a_new_system_gets_the_configured_engine_and_keeps_the_one_it_was_made_on() {
        let config = config();
        assert_eq!(
            crate::resources::engine(&system("Standard", None), &config),
            Engine::CloudNativePg
        );
        let made = system(
            "Standard",
            Some(json!({ "database": { "engine": "StatefulSet" } })),
        );
        assert_eq!(
            crate::resources::engine(&made, &config),
            Engine::StatefulSet
        );
        // Made by an earlier version: its data claim is on record, no engine.
        let older = system(
            "Standard",
            Some(json!({ "database": { "dataClaimUid": "c-1" } })),
        );
        assert_eq!(
            crate::resources::engine(&older, &config),
            Engine::StatefulSet
        );
        let on_cnpg = system(
            "Standard",
            Some(json!({ "database": { "engine": "CloudNativePG" } })),
        );
        assert_eq!(
            crate::resources::engine(&on_cnpg, &Config::default()),
            Engine::CloudNativePg
        );
    }

    #[test]
    fn the_cluster_has_the_tiers_instances_our_roles_and_tls_only_logins() {
        let config = config();
        let desired = Desired::build(&system("Standard", None), &config);
        assert!(desired.database.is_none() && desired.database_budget.is_none());
        let cluster = desired.database_cluster.as_ref().unwrap();
        let spec = &cluster.data["spec"];
        assert_eq!(spec["instances"], 2);
        assert_eq!(spec["imageName"], config.images.postgres["17"]);
        assert_eq!(
            spec["storage"],
            json!({ "size": "50Gi", "storageClass": "fast" })
        );
        assert_eq!(spec["enableSuperuserAccess"], false);
        assert_eq!(
            spec["primaryLease"],
            json!({ "leaseDurationSeconds": 15, "renewDeadlineSeconds": 10, "retryPeriodSeconds": 5 })
        );
        assert_eq!(
            spec["postgresql"]["pg_hba"],
            json!(["hostnossl all all all reject"])
        );
        assert_eq!(
            spec["bootstrap"]["initdb"],
            json!({ "database": "app", "owner": "app", "secret": { "name": "database-credentials" } })
        );
        let roles = spec["managed"]["roles"].as_array().unwrap();
        let names: Vec<_> = roles
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap(),
                    r["passwordSecret"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("monitoring", "database-monitoring"),
                ("backup", "database-backup")
            ]
        );
        assert!(roles.iter().all(|r| r.get("superuser").is_none()));
        assert_eq!(
            spec["certificates"]["serverAltDNSNames"],
            json!(["database", "database.hs-dz-test", "database.hs-dz-test.svc"])
        );
        assert_eq!(
            spec["inheritedMetadata"]["labels"]["app.kubernetes.io/component"],
            "database"
        );
        assert!(spec["postgresql"].get("synchronous").is_none());
        let large = Desired::build(&system("Large", None), &config);
        assert_eq!(large.database_cluster.unwrap().data["spec"]["instances"], 3);
        let mut synchronous = system("Standard", None);
        synchronous.spec.database.instances = Some(3);
        synchronous.spec.database.synchronous_replication = true;
        let made = super::cluster(&synchronous, &config);
        assert_eq!(made.data["spec"]["instances"], 3);
        assert_eq!(
            made.data["spec"]["postgresql"]["synchronous"],
            json!({ "method": "any", "number": 1, "dataDurability": "required" })
        );
        let manifest = manifest(cluster);
        assert_eq!(
            (manifest["apiVersion"].as_str(), manifest["kind"].as_str()),
            (Some("postgresql.cnpg.io/v1"), Some("Cluster"))
        );
        assert_eq!(
            manifest["metadata"]["annotations"]["sdc.gov.rs/healthsystem-uid"],
            "u-1"
        );
    }

    #[test]
    fn clients_reach_the_primary_by_the_same_service_and_verify_it() {
        let desired = Desired::build(&system("Small", None), &config());
        let names: Vec<_> = desired
            .database_services
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["database"]);
        let selector = desired.database_services[0]
            .spec
            .as_ref()
            .unwrap()
            .selector
            .clone()
            .unwrap();
        assert_eq!(selector["cnpg.io/instanceRole"], "primary");
        assert_eq!(selector["cnpg.io/cluster"], CLUSTER);
        // CloudNativePG's pods name their ports otherwise: a named target port finds none.
        let ports = desired.database_services[0]
            .spec
            .as_ref()
            .unwrap()
            .ports
            .clone()
            .unwrap();
        let targets: Vec<_> = ports
            .iter()
            .map(|p| p.target_port.clone().unwrap())
            .collect();
        assert_eq!(targets, [IntOrString::Int(5432), IntOrString::Int(9187)]);
        // The backups verify the server as the application does.
        let backup = desired.backup.spec.job_template.spec.clone().unwrap();
        let backup_env = backup.template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        assert!(
            backup_env
                .iter()
                .any(|e| e.name == "PGSSLMODE" && e.value.as_deref() == Some("verify-full"))
        );
        let pod = desired
            .application
            .unwrap()
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let env = pod.containers[0].env.clone().unwrap();
        let value = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(value("PGSSLMODE").as_deref(), Some("verify-full"));
        assert_eq!(
            value("DATABASE_SSLROOTCERT").as_deref(),
            Some("/etc/healthsystem/database-ca/ca.crt")
        );
        let ca = pod
            .volumes
            .unwrap()
            .into_iter()
            .find_map(|v| v.secret)
            .unwrap();
        assert_eq!(ca.secret_name.as_deref(), Some(CA_SECRET));
        // Only the certificate, never the authority's key.
        assert_eq!(
            ca.items
                .unwrap()
                .iter()
                .map(|i| i.key.as_str())
                .collect::<Vec<_>>(),
            ["ca.crt"]
        );
    }

    #[test]
    fn instances_above_the_tiers_bound_are_not_applied_but_reported() {
        let config = config();
        let mut asked = system("Small", None);
        asked.spec.database.instances = Some(2);
        assert_eq!(instances(&asked, &config), 2);
        assert_eq!(instances_above_tier(&asked, &config), None);
        asked.spec.database.instances = Some(4);
        assert_eq!(instances(&asked, &config), 2);
        assert_eq!(instances_above_tier(&asked, &config), Some((4, 2)));
        assert_eq!(super::cluster(&asked, &config).data["spec"]["instances"], 2);
        let tier_default = system("Large", None);
        assert_eq!(instances_above_tier(&tier_default, &config), None);
    }

    #[test]
    fn instances_reach_each_other_the_engines_operator_and_the_api_server_only() {
        let config = config();
        let desired = Desired::build(&system("Standard", None), &config);
        let policy = desired
            .network_policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("database-instances"))
            .unwrap();
        let value = serde_json::to_value(policy).unwrap();
        let spec = &value["spec"];
        assert_eq!(
            spec["podSelector"]["matchLabels"]["cnpg.io/cluster"],
            CLUSTER
        );
        assert_eq!(
            spec["ingress"][0]["from"][1]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "cnpg-system"
        );
        assert_eq!(
            spec["egress"][1]["to"],
            json!([{ "ipBlock": { "cidr": "10.0.0.1/32" } }])
        );
        let ports: Vec<_> = spec["ingress"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_i64().unwrap())
            .collect();
        assert_eq!(ports, [5432, 8000]);
        // Where the API server is not known, no rule that would allow every address.
        let mut unknown = config.clone();
        unknown.database.cloud_native_pg.api_server.cidrs.clear();
        let policy = network_policy(&system("Standard", None), &unknown);
        assert_eq!(policy.spec.unwrap().egress.unwrap().len(), 1);
        // The StatefulSet engine has no such policy and no Cluster.
        let old = Desired::build(&system("Standard", None), &Config::default());
        assert!(old.database_cluster.is_none() && old.database.is_some());
        assert!(
            old.network_policies
                .iter()
                .all(|p| p.metadata.name.as_deref() != Some("database-instances"))
        );
    }
}
