//! A new system started from a backup (spec.database.bootstrap): a restore Job in the platform's
//! restore namespace (the only place with the private key) restores the chosen backup into
//! the new, empty database over the network, as the new system's `app` role, in one
//! transaction. For its duration the operator copies the new database's login into a Secret
//! there, and two policies open exactly that path: the restore pod to the database's port,
//! and the database's ingress from that pod.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;

use super::backup::{agent_container, store_env};
use super::database;
use super::labels::{self, MANAGED_BY, MANAGER, OWNER_UID};
use super::pod::{empty_dir, env, secret_key_env};
use super::restore_pods::restore_pods;
pub use super::restore_pods::{COMPONENT_NAME, database_peer, pending, source};
use crate::api::{BackupSource, Engine, HealthSystem};
use crate::config::{Config, ObjectStore};

/// Name of the restore Job, its Secret and its policy in the restore namespace.
pub fn name(system: &HealthSystem) -> String {
    let name: String = labels::name(system).chars().take(50).collect();
    format!("bootstrap-{}", name.trim_end_matches('-'))
}

fn meta(system: &HealthSystem, config: &Config) -> ObjectMeta {
    let mut labels = labels::component(system, COMPONENT_NAME);
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    ObjectMeta {
        name: Some(name(system)),
        namespace: Some(config.backup.drills.namespace.clone()),
        labels: Some(labels),
        annotations: system
            .metadata
            .uid
            .as_ref()
            .map(|uid| BTreeMap::from([(OWNER_UID.to_string(), uid.clone())])),
        ..ObjectMeta::default()
    }
}

/// The new database's login for the restore pod: the `app` role's Secret's values (copied
/// by the controller, with a Cluster's CA certificate as `ca.crt`) and where the database is:
/// on CloudNativePG a name its server certificate carries.
pub fn login_secret(
    system: &HealthSystem,
    config: &Config,
    data: BTreeMap<String, k8s_openapi::ByteString>,
) -> Secret {
    let mut data = data;
    let suffix = match super::engine(system, config) {
        Engine::StatefulSet => ".cluster.local",
        Engine::CloudNativePg => "",
    };
    let host = format!(
        "{}.{}.svc{suffix}",
        database::SERVICE,
        labels::namespace(system)
    );
    data.insert("host".into(), k8s_openapi::ByteString(host.into_bytes()));
    Secret {
        metadata: meta(system, config),
        data: Some(data),
        ..Secret::default()
    }
}

/// The restore Job.
pub fn job(
    system: &HealthSystem,
    config: &Config,
    store: &ObjectStore,
    source: &BackupSource,
) -> Job {
    let drills = &config.backup.drills;
    let login = name(system);
    let mut environment = store_env(&source.namespace, store, &drills.credentials_secret);
    environment.extend([
        secret_key_env("HS_RESTORE_IDENTITY", &drills.identity_secret, "identity"),
        env("HS_RESTORE_INTO_DATABASE", "true"),
        env(
            "HS_DRILL_DEADLINE_SECONDS",
            &drills.deadline_seconds.to_string(),
        ),
        secret_key_env("PGHOST", &login, "host"),
        env("PGPORT", &database::PORT.to_string()),
        secret_key_env("PGUSER", &login, "username"),
        secret_key_env("PGPASSWORD", &login, database::PASSWORD_KEY),
        secret_key_env("PGDATABASE", &login, "database"),
    ]);
    if source.backup != "latest" {
        environment.push(env("HS_DRILL_BACKUP", &source.backup));
    }
    let restore = agent_container(system, config, "restore", "drill", environment, Vec::new());
    let metadata = meta(system, config);
    let mut spec = super::drill::restore_job_spec(
        config,
        metadata.labels.clone().unwrap_or_default(),
        restore,
        vec![empty_dir("agent")],
        None,
    );
    if super::engine(system, config) == Engine::CloudNativePg
        && let Some(pod) = spec.template.spec.as_mut()
    {
        // TLS logins only: verified against the Cluster's CA, copied into the login.
        super::cnpg::verify_server_from(pod, &login);
    }
    Job {
        spec: Some(spec),
        metadata,
        ..Job::default()
    }
}

/// The restore pod's policy in the restore namespace: no ingress; egress to the store, DNS
/// and the new database's port.
pub fn policy(system: &HealthSystem, config: &Config, store: &ObjectStore) -> NetworkPolicy {
    let database = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    labels::namespace(system),
                )])),
                ..LabelSelector::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(system, database::COMPONENT_NAME)),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(database::PORT)),
            protocol: Some("TCP".into()),
            ..NetworkPolicyPort::default()
        }]),
    };
    NetworkPolicy {
        metadata: meta(system, config),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(restore_pods(system)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: Some(vec![
                super::network::egress_rule(&store.network),
                super::network::dns_rule(config),
                database,
            ]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::api::validation::validate;
    use crate::resources::Desired;
    use crate::resources::labels::COMPONENT;

    fn system(status: Option<&str>) -> HealthSystem {
        let mut system = validate(&json!({
            "apiVersion": "sdc.gov.rs/v1alpha1",
            "kind": "HealthSystem",
            "metadata": { "name": "lab-new" },
            "spec": {
                "institution": { "displayName": "Lab", "registryId": "07151950", "ownership": "Private" },
                "database": { "version": "15", "storage": "10Gi",
                              "bootstrap": { "fromBackup": { "namespace": "hs-lab-old" } } }
            }
        }))
        .unwrap();
        if let Some(phase) = status {
            system.status =
                serde_json::from_value(json!({ "database": { "bootstrap": { "phase": phase } } }))
                    .unwrap();
        }
        system
    }

    fn config() -> Config {
        let mut config = Config::default();
        config.backup.recipients = vec!["age1key".into()];
        config.backup.object_store = Some(ObjectStore::example());
        config
    }

    fn database_ingress_sources(system: &HealthSystem) -> Value {
        let objects = Desired::build(system, &config()).manifests();
        let policy = objects
            .iter()
            .find(|o| o["kind"] == "NetworkPolicy" && o["metadata"]["name"] == "database-ingress")
            .unwrap();
        policy["spec"]["ingress"][0]["from"].clone()
    }

    #[test]
    fn a_restore_into_a_cluster_verifies_it_with_the_cas_copy_under_a_name_it_carries() {
        let system = system(None);
        let mut config = config();
        config.database.engine = Engine::CloudNativePg;
        let job = job(
            &system,
            &config,
            config.backup.object_store.as_ref().unwrap(),
            source(&system).unwrap(),
        );
        let pod = job.spec.unwrap().template.spec.unwrap();
        let env: BTreeMap<String, String> = pod.containers[0]
            .env
            .iter()
            .flatten()
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect();
        assert_eq!(env["PGSSLMODE"], "verify-full");
        let volumes = serde_json::to_value(&pod.volumes).unwrap().to_string();
        assert!(
            volumes.contains(r#""secretName":"bootstrap-lab-new""#),
            "the CA from the copied login: {volumes}"
        );
        let copy = login_secret(&system, &config, BTreeMap::new());
        let host = copy.data.unwrap()["host"].0.clone();
        assert_eq!(String::from_utf8(host).unwrap(), "database.hs-lab-new.svc");
    }

    #[test]
    fn the_restore_reads_the_old_prefix_and_writes_as_the_new_systems_app_role() {
        let system = system(None);
        let source = source(&system).unwrap();
        assert_eq!(source.backup, "latest");
        let job = serde_json::to_value(job(
            &system,
            &config(),
            config().backup.object_store.as_ref().unwrap(),
            source,
        ))
        .unwrap();
        assert_eq!(job["metadata"]["namespace"], "healthsystem-restore");
        assert_eq!(job["metadata"]["name"], "bootstrap-lab-new");
        let env = job["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
        assert!(
            env.contains(r#"{"name":"HS_BACKUP_PREFIX","value":"hs-lab-old"}"#),
            "{env}"
        );
        assert!(
            env.contains(r#"{"name":"HS_RESTORE_INTO_DATABASE","value":"true"}"#),
            "{env}"
        );
        assert!(
            env.contains(r#""name":"bootstrap-lab-new""#),
            "the copied login: {env}"
        );
        assert!(!env.contains("HS_DRILL_BACKUP"), "latest: {env}");

        let copy = login_secret(&system, &config(), BTreeMap::new());
        let host = copy.data.unwrap()["host"].0.clone();
        assert_eq!(
            String::from_utf8(host).unwrap(),
            "database.hs-lab-new.svc.cluster.local"
        );
    }

    #[test]
    fn the_database_admits_the_restore_pod_only_while_it_is_restored() {
        for (status, open) in [
            (None, true),
            (Some("Restoring"), true),
            (Some("Restored"), false),
            (Some("Failed"), false),
        ] {
            let from = database_ingress_sources(&system(status));
            assert_eq!(
                from.as_array().unwrap().len(),
                if open { 2 } else { 1 },
                "{status:?}: {from}"
            );
            if open {
                assert_eq!(
                    from[1]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                    "healthsystem-restore"
                );
                assert_eq!(
                    from[1]["podSelector"]["matchLabels"][COMPONENT],
                    COMPONENT_NAME
                );
            }
        }
    }
}
