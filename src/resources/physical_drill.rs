//! Physical restore drills, in the platform's restore namespace: a throwaway CloudNativePG
//! Cluster recovers a system's latest base backup and every WAL segment archived after it
//! (the plugin reads the system's archive with the restore namespace's read-only store
//! credentials, and archives nothing itself); then a check Job (the backup agent's
//! `backup archive-drill`) logs in as the drill's own role, reads where recovery ended and
//! counts every table's rows, and compares the end with the newest segment the archive held
//! when the drill started. A segment or base backup that cannot be restored makes recovery
//! fail or end early: either fails the drill. The Cluster, its ObjectStore and its login are
//! removed when the drill ends; the check Job stays a week as the evidence.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicySpec,
};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{DynamicObject, ObjectMeta};
use serde_json::json;

use super::archive::{destination, object_store_resource, store_spec};
use super::backup::{agent_container, store_env};
use super::cnpg::{CLUSTER, STATUS_PORT, cluster_resource, resources, storage, verify_server_from};
use super::drill::{REQUEST, restore_job_spec};
use super::labels::{self, COMPONENT, MANAGED_BY, MANAGER, OWNER_UID};
use super::names::PORT;
use super::network::{dns_rule, egress_rule, match_labels, namespace_peer, pods_of, tcp};
use super::pod::{empty_dir, env, secret_key_env};
use super::roles::APPLICATION;
use crate::api::HealthSystem;
use crate::config::{Config, ObjectStore};

/// Component label of a physical drill's Cluster, its pods and its check Job.
pub const COMPONENT_NAME: &str = "physical-drill";
/// The NetworkPolicy of physical drills in the restore namespace.
pub const POLICY: &str = "healthsystem-physical-drills";
/// The role the check logs in as: reads every row and where recovery ended, owns nothing.
pub const CHECK_ROLE: &str = "drill";
/// Annotation of a drill's Cluster: when the drill started (the watch cache keeps no
/// creation time of what the operator makes).
pub const STARTED: &str = "sdc.gov.rs/drill-started";
/// What a physical drill's evidence names as its backup: the archive (its latest base backup
/// and the WAL after it).
pub const EVIDENCE_BACKUP: &str = "archive";
/// Finished check Jobs stay this long: the evidence is recorded at once.
const TTL_SECONDS: i32 = 7 * 24 * 3600;

/// The drill's name (its Cluster, ObjectStore, login Secret prefix and check Job): short
/// enough for CloudNativePG's names derived from it (`<name>-1-full-recovery`).
pub fn name(system: &HealthSystem, now: Timestamp) -> String {
    let system: String = labels::name(system).chars().take(24).collect();
    format!(
        "pdrill-{}-{}",
        system.trim_end_matches('-'),
        now.strftime("%y%m%d%H%M")
    )
}

/// The Secret of the check's login in the drill's Cluster.
pub fn login_secret_name(name: &str) -> String {
    format!("{name}-check")
}

/// The check Job's name.
pub fn check_name(name: &str) -> String {
    format!("{name}-check")
}

/// The recovery Job CloudNativePG runs for the drill's first instance.
pub fn recovery_job_name(name: &str) -> String {
    format!("{name}-1-full-recovery")
}

/// Metadata of an object of the drill `name` in the restore namespace.
fn metadata(
    system: &HealthSystem,
    config: &Config,
    name: &str,
    request: Option<&str>,
) -> ObjectMeta {
    let mut annotations = BTreeMap::new();
    if let Some(uid) = &system.metadata.uid {
        annotations.insert(OWNER_UID.to_string(), uid.clone());
    }
    if let Some(request) = request {
        annotations.insert(REQUEST.to_string(), request.to_string());
    }
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(config.backup.drills.namespace.clone()),
        labels: Some(pod_labels(system)),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

fn pod_labels(system: &HealthSystem) -> BTreeMap<String, String> {
    let mut labels = labels::component(system, COMPONENT_NAME);
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    labels
}

/// The ObjectStore the drill recovers from: the system's archive, read with the restore
/// namespace's read-only credentials.
pub fn object_store(
    system: &HealthSystem,
    config: &Config,
    store: &ObjectStore,
    name: &str,
) -> DynamicObject {
    let spec = store_spec(
        store,
        destination(system, store),
        &config.backup.drills.credentials_secret,
    );
    let mut object =
        DynamicObject::new(name, &object_store_resource()).data(json!({ "spec": spec }));
    object.metadata = metadata(system, config, name, None);
    object
}

/// The check's login: `username` and `password`, as CloudNativePG's managed roles read them.
pub fn login_secret(system: &HealthSystem, config: &Config, name: &str, password: &str) -> Secret {
    Secret {
        metadata: metadata(system, config, &login_secret_name(name), None),
        type_: Some("kubernetes.io/basic-auth".into()),
        data: Some(BTreeMap::from([
            (
                "username".to_string(),
                ByteString(CHECK_ROLE.as_bytes().to_vec()),
            ),
            (
                "password".to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

/// The throwaway Cluster: one instance of the system's PostgreSQL and size, recovered from
/// the latest base backup and all the WAL after it (no target: the end of the archive), with
/// no WAL archiver of its own, TLS-only logins, and the check's role.
pub fn cluster(
    system: &HealthSystem,
    config: &Config,
    name: &str,
    request: Option<&str>,
    started: Timestamp,
) -> DynamicObject {
    let cnpg = &config.database.cloud_native_pg;
    let spec = json!({
        "instances": 1,
        "imageName": config.images.postgres(system.spec.database.version),
        "imagePullPolicy": "IfNotPresent",
        "postgresUID": cnpg.postgres_uid,
        "postgresGID": cnpg.postgres_gid,
        "inheritedMetadata": { "labels": pod_labels(system) },
        "storage": storage(system),
        "resources": resources(system, config),
        "enableSuperuserAccess": false,
        "postgresql": { "pg_hba": ["hostnossl all all all reject"] },
        "bootstrap": { "recovery": {
            "source": "origin",
            "database": APPLICATION.user,
            "owner": APPLICATION.user,
        } },
        "externalClusters": [{
            "name": "origin",
            "plugin": {
                "name": config.backup.archiving.plugin,
                "enabled": true,
                "isWALArchiver": false,
                "parameters": { "barmanObjectName": name, "serverName": CLUSTER },
            },
        }],
        "managed": { "roles": [{
            "name": CHECK_ROLE, "ensure": "present", "login": true,
            // Every row, the statistics, and the timeline history files (where recovery
            // ended): nothing it could change in the recovered database.
            "inRoles": ["pg_read_all_data", "pg_monitor", "pg_read_server_files"],
            "passwordSecret": { "name": login_secret_name(name) },
        }] },
    });
    let mut object = DynamicObject::new(name, &cluster_resource()).data(json!({ "spec": spec }));
    object.metadata = metadata(system, config, name, request);
    object
        .annotations_mut()
        .insert(STARTED.into(), started.to_string());
    object
}

/// The check of the recovered Cluster `name`, started at `started` (the newest segment the
/// archive held then is what recovery must have reached).
pub fn check_job(
    system: &HealthSystem,
    config: &Config,
    store: &ObjectStore,
    name: &str,
    started: Timestamp,
    request: Option<&str>,
) -> Job {
    let drills = &config.backup.drills;
    let login = login_secret_name(name);
    let mut environment = store_env(
        &labels::namespace(system),
        store,
        &drills.credentials_secret,
    );
    environment.extend([
        env("PGHOST", &format!("{name}-rw")),
        env("PGPORT", &PORT.to_string()),
        secret_key_env("PGUSER", &login, "username"),
        secret_key_env("PGPASSWORD", &login, "password"),
        env("PGDATABASE", APPLICATION.user),
        env("HS_ARCHIVE_SERVER", CLUSTER),
        env("HS_DRILL_ARCHIVED_BEFORE", &started.to_string()),
        env(
            "HS_DRILL_DEADLINE_SECONDS",
            &drills.deadline_seconds.to_string(),
        ),
    ]);
    let check = agent_container(
        system,
        config,
        "check",
        "archive-drill",
        environment,
        Vec::new(),
    );
    let mut spec = restore_job_spec(
        config,
        pod_labels(system),
        check,
        vec![empty_dir("agent")],
        Some(TTL_SECONDS),
    );
    // The Cluster's own certificate authority, which CloudNativePG keeps beside it.
    verify_server_from(
        spec.template.spec.get_or_insert_default(),
        &format!("{name}-ca"),
    );
    Job {
        metadata: metadata(system, config, &check_name(name), request),
        spec: Some(spec),
        ..Job::default()
    }
}

/// The policy of every physical drill's pods: PostgreSQL and the instance manager's status
/// port from each other and from CloudNativePG's operator; out to the store, DNS and the API
/// server (the instance manager reads its Cluster), nothing else.
pub fn policy(config: &Config, store: &ObjectStore) -> NetworkPolicy {
    let ours = || {
        pods_of(match_labels(BTreeMap::from([(
            COMPONENT.to_string(),
            COMPONENT_NAME.to_string(),
        )])))
    };
    let ports = || Some(vec![tcp(PORT), tcp(STATUS_PORT)]);
    let cnpg = &config.database.cloud_native_pg;
    let mut egress = vec![
        NetworkPolicyEgressRule {
            to: Some(vec![ours()]),
            ports: ports(),
        },
        egress_rule(&store.network),
        dns_rule(config),
    ];
    let api = &cnpg.api_server;
    if !api.cidrs.is_empty() || api.namespace_selector.is_some() || api.pod_selector.is_some() {
        egress.push(egress_rule(api));
    }
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(POLICY.into()),
            namespace: Some(config.backup.drills.namespace.clone()),
            labels: Some(BTreeMap::from([(MANAGED_BY.into(), MANAGER.into())])),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(match_labels(BTreeMap::from([(
                COMPONENT.to_string(),
                COMPONENT_NAME.to_string(),
            )]))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![ours(), namespace_peer(&cnpg.operator_namespace)]),
                ports: ports(),
            }]),
            egress: Some(egress),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::validation::validate;

    fn system() -> HealthSystem {
        let mut system = validate(&json!({
            "apiVersion": "sdc.gov.rs/v1alpha1",
            "kind": "HealthSystem",
            "metadata": { "name": "clinical-center-of-vojvodina-his" },
            "spec": {
                "institution": { "displayName": "KCV", "registryId": "08012345", "ownership": "Public" },
                "database": { "version": "17", "storage": "20Gi" }
            }
        }))
        .unwrap();
        system.metadata.uid = Some("uid-1".into());
        system
    }

    #[test]
    fn a_physical_drill_recovers_the_systems_archive_in_the_restore_namespace_and_archives_nothing()
    {
        let config = Config::default();
        let store = ObjectStore::example();
        let now: Timestamp = "2026-12-08T03:04:05Z".parse().unwrap();
        let name = name(&system(), now);
        assert_eq!(name, "pdrill-clinical-center-of-vojvo-2612080304");
        assert!(
            recovery_job_name(&name).len() <= 63,
            "CloudNativePG's derived names fit"
        );

        let cluster =
            serde_json::to_value(cluster(&system(), &config, &name, Some("r1"), now)).unwrap();
        assert_eq!(cluster["metadata"]["namespace"], "healthsystem-restore");
        assert_eq!(cluster["metadata"]["labels"][COMPONENT], COMPONENT_NAME);
        assert_eq!(
            cluster["metadata"]["labels"][labels::HEALTHSYSTEM],
            "clinical-center-of-vojvodina-his"
        );
        assert_eq!(cluster["metadata"]["annotations"][REQUEST], "r1");
        assert_eq!(
            cluster["metadata"]["annotations"][STARTED],
            "2026-12-08T03:04:05Z"
        );
        let spec = &cluster["spec"];
        assert_eq!(spec["instances"], 1);
        assert_eq!(spec["storage"]["size"], "20Gi");
        assert!(spec["plugins"].is_null(), "a drill never archives: {spec}");
        assert!(
            spec["bootstrap"]["recovery"]["recoveryTarget"].is_null(),
            "to the end"
        );
        let origin = &spec["externalClusters"][0]["plugin"];
        assert_eq!(origin["isWALArchiver"], false);
        assert_eq!(origin["parameters"]["barmanObjectName"], name.as_str());
        assert_eq!(origin["parameters"]["serverName"], CLUSTER);
        assert_eq!(spec["managed"]["roles"][0]["name"], CHECK_ROLE);

        let store_object =
            serde_json::to_value(object_store(&system(), &config, &store, &name)).unwrap();
        let configuration = &store_object["spec"]["configuration"];
        assert_eq!(
            configuration["destinationPath"],
            "s3://healthsystem-backups/hs-clinical-center-of-vojvodina-his/archive"
        );
        assert_eq!(
            configuration["s3Credentials"]["accessKeyId"]["name"],
            config.backup.drills.credentials_secret.as_str(),
            "the restore namespace's read-only credentials"
        );
        assert!(store_object["spec"]["retentionPolicy"].is_null());

        let job =
            serde_json::to_value(check_job(&system(), &config, &store, &name, now, None)).unwrap();
        assert_eq!(job["metadata"]["name"], format!("{name}-check"));
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["command"],
            json!(["/agent/healthsystem-operator", "backup", "archive-drill"])
        );
        let env = container["env"].to_string();
        assert!(env.contains(&format!(r#""value":"{name}-rw""#)), "{env}");
        assert!(env.contains(r#""value":"2026-12-08T03:04:05Z""#), "{env}");
        assert!(
            env.contains(r#""name":"PGSSLMODE","value":"verify-full""#),
            "{env}"
        );
        assert!(
            !env.contains(r#""name":"database-"#),
            "no system credentials: {env}"
        );

        let policy = serde_json::to_value(policy(&config, &store)).unwrap();
        assert_eq!(policy["metadata"]["namespace"], "healthsystem-restore");
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"][COMPONENT],
            COMPONENT_NAME
        );
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    }
}
