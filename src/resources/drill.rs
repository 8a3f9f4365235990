//! Restore drills, in the platform's restore namespace (`backup.drills.namespace`): the only
//! place that holds the age private key and read access to every system's prefix. A drill Job
//! restores a system's latest backup into a throwaway PostgreSQL in its own pod (the backup
//! agent's `backup drill`, in the database's image so pg_restore matches); its pods reach the
//! object store and DNS, nothing else.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;

use super::backup::{agent_container, install_agent, store_env};
use super::labels::{self, COMPONENT, MANAGED_BY, MANAGER, OWNER_UID};
use super::pod::{empty_dir, env, job_pod, mount, secret_key_env};
use crate::api::HealthSystem;
use crate::config::{Config, Drills, ObjectStore};

/// Component label of drill Jobs and their pods.
pub const COMPONENT_NAME: &str = "restore-drill";
/// The annotation that asks for a drill now: any new value does.
pub const REQUEST: &str = "sdc.gov.rs/drill-requested";
/// The NetworkPolicy of the drill pods in the restore namespace.
pub const POLICY: &str = "healthsystem-restore-drills";
/// Finished drill Jobs stay this long (the operator records their evidence at once).
const TTL_SECONDS: i32 = 7 * 24 * 3600;
/// Slack of the Job's deadline over the agent's own.
const JOB_DEADLINE_SLACK_SECONDS: i64 = 600;

/// The drill Job's name: the system's name (cut to fit) and the start time.
pub fn job_name(system: &HealthSystem, now: Timestamp) -> String {
    let name: String = labels::name(system).chars().take(40).collect();
    format!(
        "drill-{}-{}",
        name.trim_end_matches('-'),
        now.strftime("%Y%m%d%H%M%S")
    )
}

/// A drill of `system`'s latest backup, answering `request` (the annotation's value) if any.
pub fn job(
    system: &HealthSystem,
    config: &Config,
    store: &ObjectStore,
    name: &str,
    request: Option<&str>,
) -> Job {
    let drills = &config.backup.drills;
    let mut pod_labels = labels::component(system, COMPONENT_NAME);
    pod_labels.insert(MANAGED_BY.into(), MANAGER.into());
    let mut annotations = BTreeMap::new();
    if let Some(uid) = &system.metadata.uid {
        annotations.insert(OWNER_UID.to_string(), uid.clone());
    }
    if let Some(request) = request {
        annotations.insert(REQUEST.to_string(), request.to_string());
    }
    let mut environment = store_env(
        &labels::namespace(system),
        store,
        &drills.credentials_secret,
    );
    environment.extend([
        secret_key_env("HS_RESTORE_IDENTITY", &drills.identity_secret, "identity"),
        env("HS_DRILL_SCRATCH", "/scratch"),
        env(
            "HS_DRILL_DEADLINE_SECONDS",
            &drills.deadline_seconds.to_string(),
        ),
    ]);
    let drill = agent_container(
        system,
        config,
        "drill",
        "drill",
        environment,
        vec![mount("scratch", "/scratch")],
    );
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(drills.namespace.clone()),
            labels: Some(pod_labels.clone()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(restore_job_spec(
            config,
            pod_labels,
            drill,
            vec![empty_dir("agent"), empty_dir("scratch")],
            Some(TTL_SECONDS),
        )),
        ..Job::default()
    }
}

/// The spec of a Job in the restore namespace (a drill, a bootstrap's restore): one try,
/// the agent installed by an init container, the pod restricted and without a token.
pub(crate) fn restore_job_spec(
    config: &Config,
    pod_labels: BTreeMap<String, String>,
    container: k8s_openapi::api::core::v1::Container,
    volumes: Vec<k8s_openapi::api::core::v1::Volume>,
    ttl_seconds: Option<i32>,
) -> JobSpec {
    JobSpec {
        backoff_limit: Some(0),
        active_deadline_seconds: Some(
            i64::from(config.backup.drills.deadline_seconds) + JOB_DEADLINE_SLACK_SECONDS,
        ),
        ttl_seconds_after_finished: ttl_seconds,
        template: job_pod(
            pod_labels,
            999,
            PodSpec {
                init_containers: Some(vec![install_agent(config)]),
                containers: vec![container],
                volumes: Some(volumes),
                ..PodSpec::default()
            },
        ),
        ..JobSpec::default()
    }
}

/// The drill pods' policy: no ingress; egress to the object store and to DNS only.
pub fn policy(config: &Config, store: &ObjectStore) -> NetworkPolicy {
    let drills: &Drills = &config.backup.drills;
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(POLICY.into()),
            namespace: Some(drills.namespace.clone()),
            labels: Some(BTreeMap::from([(MANAGED_BY.into(), MANAGER.into())])),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    COMPONENT.to_string(),
                    COMPONENT_NAME.to_string(),
                )])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: Some(vec![
                super::network::egress_rule(&store.network),
                super::network::dns_rule(config),
            ]),
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
            "metadata": { "name": "lab-test" },
            "spec": {
                "institution": { "displayName": "Lab", "registryId": "07151950", "ownership": "Private" },
                "database": { "version": "15", "storage": "10Gi" }
            }
        }))
        .unwrap();
        system.metadata.uid = Some("uid-1".into());
        system
    }

    fn store() -> ObjectStore {
        ObjectStore::example()
    }

    #[test]
    fn a_drill_runs_in_the_restore_namespace_with_its_key_and_no_system_credentials() {
        let config = Config::default();
        let now: Timestamp = "2026-11-29T07:00:00Z".parse().unwrap();
        let name = job_name(&system(), now);
        assert_eq!(name, "drill-lab-test-20261129070000");
        let job =
            serde_json::to_value(job(&system(), &config, &store(), &name, Some("r1"))).unwrap();
        assert_eq!(job["metadata"]["namespace"], "healthsystem-restore");
        assert_eq!(job["metadata"]["labels"][COMPONENT], COMPONENT_NAME);
        assert_eq!(job["metadata"]["labels"][labels::HEALTHSYSTEM], "lab-test");
        assert_eq!(job["metadata"]["annotations"][REQUEST], "r1");
        assert_eq!(job["metadata"]["annotations"][OWNER_UID], "uid-1");
        assert_eq!(job["spec"]["backoffLimit"], 0);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["automountServiceAccountToken"], false);
        let drill = &pod["containers"][0];
        assert_eq!(drill["image"], config.images.postgres["15"]);
        assert_eq!(
            drill["command"],
            json!(["/agent/healthsystem-operator", "backup", "drill"])
        );
        let env = drill["env"].to_string();
        assert!(env.contains(r#""name":"backup-restore-identity""#), "{env}");
        assert!(
            env.contains(r#""name":"backup-restore-credentials""#),
            "{env}"
        );
        assert!(!env.contains("backup-store-credentials"), "{env}");
        assert!(!env.contains("database-"), "no database credentials: {env}");
        assert!(env.contains(r#""value":"hs-lab-test""#), "{env}");

        let policy = serde_json::to_value(policy(&config, &store())).unwrap();
        assert_eq!(policy["metadata"]["namespace"], "healthsystem-restore");
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert!(policy["spec"]["ingress"].is_null());
        let egress = policy["spec"]["egress"].as_array().unwrap();
        assert_eq!(egress.len(), 2, "the store and DNS only");
        assert_eq!(egress[0]["to"][0]["ipBlock"]["cidr"], "10.220.0.0/24");
    }
}
