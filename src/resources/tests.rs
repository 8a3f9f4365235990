//! Builder tests on small inline manifests: what matters for isolation and data safety.

use serde_json::{Value, json};

use super::*;
use crate::api::validation::validate;

fn system(spec_extra: Value) -> HealthSystem {
    let mut manifest = json!({
        "apiVersion": "sdc.gov.rs/v1alpha1",
        "kind": "HealthSystem",
        "metadata": { "name": "dz-test" },
        "spec": {
            "institution": { "displayName": "Dom zdravlja Test", "registryId": "07151950", "ownership": "Public" },
            "database": { "version": "16", "storage": "50Gi" },
            "application": { "image": "registry.sdc.gov.rs/his/app:1", "port": 8080 },
            "network": { "platformServices": ["e-referral", "e-unknown"], "allowFrom": [{ "namespaceSelector": { "matchLabels": { "a": "b" } } }] }
        }
    });
    if let (Some(spec), Some(extra)) = (manifest["spec"].as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    validate(&manifest).unwrap()
}

fn all(system: &HealthSystem) -> Vec<Value> {
    Desired::build(system, &Config::default()).manifests()
}

#[test]
fn every_child_records_its_owners_uid_and_only_the_object_itself() {
    let mut owned = system(json!({}));
    owned.metadata.uid = Some("4f0c-uid".into());
    for object in all(&owned) {
        assert_eq!(
            object["metadata"]["annotations"][labels::OWNER_UID],
            "4f0c-uid",
            "{object}"
        );
        // Pod templates carry labels only: adopting a system must not restart its pods.
        let template = object
            .pointer("/spec/template/metadata")
            .or_else(|| object.pointer("/spec/jobTemplate/spec/template/metadata"));
        if let Some(template) = template {
            assert!(template.get("annotations").is_none(), "{object}");
        }
    }
    // A manifest that was never created (render) has no UID to record.
    for object in all(&system(json!({}))) {
        assert!(
            object["metadata"]["annotations"]
                .get(labels::OWNER_UID)
                .is_none()
        );
    }
}

#[test]
fn every_child_is_labelled_and_in_the_system_namespace() {
    for object in all(&system(json!({}))) {
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels[labels::MANAGED_BY], labels::MANAGER, "{object}");
        assert_eq!(labels[labels::HEALTHSYSTEM], "dz-test", "{object}");
        if object["kind"] != "Namespace" {
            assert_eq!(object["metadata"]["namespace"], "hs-dz-test", "{object}");
        }
    }
}

#[test]
fn no_child_has_an_owner_reference() {
    // Garbage collection must never reach the namespace, the claims or the credentials.
    for object in all(&system(json!({}))) {
        assert!(
            object["metadata"].get("ownerReferences").is_none(),
            "{object}"
        );
    }
}

#[test]
fn every_pod_template_is_restricted() {
    let objects = all(&system(json!({})));
    let templates: Vec<&Value> = objects
        .iter()
        .filter_map(|o| match o["kind"].as_str() {
            Some("StatefulSet" | "Deployment") => Some(&o["spec"]["template"]["spec"]),
            Some("CronJob") => Some(&o["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
            _ => None,
        })
        .collect();
    assert_eq!(templates.len(), 3);
    for pod in templates {
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
        for c in pod["containers"].as_array().unwrap() {
            assert_eq!(
                c["securityContext"]["allowPrivilegeEscalation"], false,
                "{c}"
            );
            assert_eq!(
                c["securityContext"]["capabilities"]["drop"],
                json!(["ALL"]),
                "{c}"
            );
        }
    }
}

#[test]
fn the_secrets_are_rendered_without_a_password() {
    let desired = Desired::build(&system(json!({})), &Config::default());
    let users: Vec<String> = desired
        .database_secrets
        .iter()
        .map(|secret| {
            let data = secret.string_data.clone().unwrap();
            assert!(!data.contains_key(database::PASSWORD_KEY));
            assert_eq!(data["host"], "database.hs-dz-test.svc");
            assert_eq!(data["database"], "app");
            format!(
                "{}={}",
                secret.metadata.name.clone().unwrap(),
                data["username"]
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            "database-credentials=app",
            "database-superuser=postgres",
            "database-monitoring=monitoring",
            "database-backup=backup"
        ]
    );
}

/// Every container the operator asks for, and the Secrets it reads. Only
/// the database server itself is given the superuser's password; the exporter logs in as
/// the monitoring role, backups as the backup role, the application and migrations as the
/// application's role.
#[test]
fn no_workload_but_the_database_server_reads_the_superusers_secret() {
    let mut spec = json!({
        "migration": {
            "source": { "host": "legacy.example", "database": "his", "secretName": "legacy",
                        "network": { "cidr": "10.9.0.0/16" } }
        }
    });
    spec["application"] = json!({ "image": "registry.example/his:1", "port": 8080 });
    let mut importing = system(spec);
    importing.status =
        serde_json::from_value(json!({ "migration": { "phase": "Importing", "reason": "Importing", "message": "", "lastTransitionTime": "2026-11-29T00:00:00Z", "attempt": 0 } }))
            .unwrap();
    let desired = Desired::build(&importing, &Config::default());
    let mut readers: Vec<String> = Vec::new();
    for manifest in desired.manifests() {
        let template = match manifest["kind"].as_str() {
            Some("StatefulSet" | "Deployment" | "Job") => &manifest["spec"]["template"],
            Some("CronJob") => &manifest["spec"]["jobTemplate"]["spec"]["template"],
            _ => continue,
        };
        for container in template["spec"]["containers"].as_array().unwrap() {
            let mut secrets: Vec<&str> = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
                .filter(|name| name.starts_with("database-"))
                .collect();
            secrets.sort_unstable();
            secrets.dedup();
            readers.push(format!(
                "{}/{}: {}",
                manifest["kind"].as_str().unwrap(),
                container["name"].as_str().unwrap(),
                secrets.join(",")
            ));
        }
    }
    readers.sort();
    assert_eq!(
        readers,
        [
            "CronJob/pg-dump: database-backup",
            "Deployment/application: database-credentials",
            "Job/migration: database-credentials",
            "StatefulSet/exporter: database-monitoring",
            "StatefulSet/postgres: database-backup,database-credentials,database-monitoring,database-superuser",
        ]
    );
}

#[test]
fn claims_are_retained_and_sized_from_the_spec() {
    let desired = Desired::build(
        &system(
            json!({ "database": { "version": "16", "storage": "80Gi", "storageClassName": "sdc-encrypted" } }),
        ),
        &Config::default(),
    );
    let sts = desired.database.unwrap().spec.unwrap();
    let policy = sts.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(policy.when_deleted.as_deref(), Some("Retain"));
    let claim = &sts.volume_claim_templates.unwrap()[0];
    let spec = claim.spec.as_ref().unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("sdc-encrypted"));
    assert_eq!(
        spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "80Gi"
    );
}

#[test]
fn quota_comes_from_the_tier_with_overrides() {
    let desired = Desired::build(
        &system(json!({ "tier": "Small", "sizing": { "memory": "6Gi" } })),
        &Config::default(),
    );
    let hard = desired.quota.spec.unwrap().hard.unwrap();
    assert_eq!(hard["requests.memory"].0, "6Gi");
    assert_eq!(hard["requests.cpu"].0, Config::default().tiers.small.cpu);
}

#[test]
fn platform_services_become_egress_rules_and_unknown_ones_are_reported() {
    let system = system(json!({}));
    let config = Config::default();
    let policies = network::policies(&system, &config);
    let names: Vec<&str> = policies
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    assert_eq!(
        names,
        [
            "default-deny",
            "allow-dns",
            "database-ingress",
            "database-clients-egress",
            "application-ingress",
            "platform-services-egress"
        ]
    );
    let egress = serde_json::to_value(&policies[5]).unwrap();
    assert_eq!(
        egress["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"],
        json!(config.platform_services["e-referral"].cidrs[0])
    );
    assert_eq!(
        egress["spec"]["egress"].as_array().unwrap().len(),
        1,
        "the unknown service gets no rule"
    );
    assert_eq!(
        network::unknown_platform_services(&system, &config),
        ["e-unknown"]
    );
}

#[test]
fn without_an_application_there_is_no_deployment_nor_its_rules() {
    let mut system = system(json!({}));
    system.spec.application = None;
    let desired = Desired::build(&system, &Config::default());
    assert!(desired.application.is_none() && desired.application_service.is_none());
    assert_eq!(desired.service_accounts.len(), 2);
    assert_eq!(desired.network_policies.len(), 4);
}

/// Run as a ServiceAccount, the operator binds it in the namespace to the role that reads the
/// credentials Secrets by name; run as anyone else (locally, as an administrator) it binds
/// nobody.
#[test]
fn the_operator_is_bound_to_read_its_credentials_only_when_it_is_a_service_account() {
    let system = system(json!({ "access": { "admins": ["team-a"] } }));
    let names = |desired: &Desired| -> Vec<String> {
        desired
            .role_bindings
            .iter()
            .map(|b| b.metadata.name.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(
        names(&Desired::build(&system, &Config::default())),
        ["tenant-admins"]
    );
    let config = Config {
        operator_account: Some(crate::config::OperatorAccount {
            namespace: "sdc-operators".into(),
            name: "hs-healthsystem-operator".into(),
        }),
        ..Config::default()
    };
    let desired = Desired::build(&system, &config);
    assert_eq!(names(&desired), ["tenant-admins", rbac::OPERATOR_BINDING]);
    let binding = serde_json::to_value(&desired.role_bindings[1]).unwrap();
    assert_eq!(binding["roleRef"]["name"], rbac::CREDENTIALS_ROLE);
    assert_eq!(
        binding["subjects"],
        json!([{ "kind": "ServiceAccount", "name": "hs-healthsystem-operator", "namespace": "sdc-operators" }])
    );
}

#[test]
fn monitoring_can_be_switched_off() {
    let desired = Desired::build(
        &system(json!({ "monitoring": { "enabled": false } })),
        &Config::default(),
    );
    assert!(desired.monitoring.is_empty());
}

#[test]
fn the_database_pod_bootstraps_itself_and_stops_cleanly() {
    let desired = Desired::build(&system(json!({ "tier": "Small" })), &Config::default());
    let pod = desired
        .database
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    let postgres = pod
        .containers
        .iter()
        .find(|c| c.name == "postgres")
        .unwrap();
    // The pod's own command initialises and starts the server: no image entrypoint needed.
    let command = postgres.command.as_ref().unwrap().join(" ");
    assert!(command.contains("initdb"), "{command}");
    assert!(
        command.contains("PG_VERSION"),
        "initdb only on an empty directory"
    );
    assert!(command.contains("exec postgres"), "{command}");
    assert!(postgres.startup_probe.is_some() && postgres.liveness_probe.is_some());
    let pre_stop = postgres
        .lifecycle
        .as_ref()
        .unwrap()
        .pre_stop
        .as_ref()
        .unwrap();
    assert!(
        pre_stop
            .exec
            .as_ref()
            .unwrap()
            .command
            .as_ref()
            .unwrap()
            .contains(&"fast".to_string())
    );
    assert!(pod.termination_grace_period_seconds.unwrap() >= 60);
    assert_eq!(
        pod.security_context
            .unwrap()
            .fs_group_change_policy
            .as_deref(),
        Some("OnRootMismatch")
    );
    let shm = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "shm")
        .unwrap();
    assert_eq!(shm.empty_dir.unwrap().medium.as_deref(), Some("Memory"));
    let resources = postgres.resources.as_ref().unwrap();
    let tier = &Config::default().tiers.small;
    assert_eq!(
        resources.requests.as_ref().unwrap()["cpu"].0,
        tier.database_cpu
    );
    assert_eq!(
        resources.limits.as_ref().unwrap()["memory"].0,
        tier.database_memory
    );
}

#[test]
fn dns_egress_reaches_the_configured_resolver_addresses() {
    let mut config = Config::default();
    config.dns.addresses = vec!["169.254.20.10/32".into()];
    let desired = Desired::build(&system(json!({})), &config);
    let dns = desired
        .network_policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("allow-dns"))
        .unwrap();
    let to =
        serde_json::to_value(&dns.spec.as_ref().unwrap().egress.as_ref().unwrap()[0].to).unwrap();
    assert_eq!(
        to[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "kube-system"
    );
    assert_eq!(to[1]["ipBlock"]["cidr"], "169.254.20.10/32");
}

/// DNS egress reaches the DNS pods only (by default those labelled
/// `k8s-app: kube-dns`, as CoreDNS and kube-dns are), on the ports the configuration names
/// (a resolver on 5353 behind its Service), not every pod of kube-system on 53.
#[test]
fn dns_egress_reaches_only_the_dns_pods_on_their_ports() {
    let dns_rule = |config: &Config| {
        let desired = Desired::build(&system(json!({})), config);
        let dns = desired
            .network_policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("allow-dns"))
            .unwrap()
            .clone();
        serde_json::to_value(&dns.spec.unwrap().egress.unwrap()[0]).unwrap()
    };
    let default = dns_rule(&Config::default());
    assert_eq!(
        default["to"][0]["podSelector"],
        json!({ "matchLabels": { "k8s-app": "kube-dns" } })
    );
    assert_eq!(
        default["ports"],
        json!([{ "port": 53, "protocol": "UDP" }, { "port": 53, "protocol": "TCP" }])
    );

    let config: Config = serde_saphyr::from_str(
        "dns:\n  namespace: openshift-dns\n  podSelector: { matchLabels: { dns.operator.openshift.io/daemonset-dns: default } }\n  ports: [5353]\n",
    )
    .unwrap();
    let custom = dns_rule(&config);
    assert_eq!(
        custom["to"][0],
        json!({
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "openshift-dns" } },
            "podSelector": { "matchLabels": { "dns.operator.openshift.io/daemonset-dns": "default" } }
        })
    );
    assert_eq!(
        custom["ports"],
        json!([{ "port": 5353, "protocol": "UDP" }, { "port": 5353, "protocol": "TCP" }])
    );
}

/// The PodMonitor and PrometheusRule carry the labels the platform's
/// Prometheus selects them by (configuration `monitoring.resourceLabels`), never in place of
/// the operator's own labels.
#[test]
fn monitoring_objects_carry_the_labels_prometheus_selects() {
    let mut config = Config::default();
    config.monitoring.resource_labels = [
        ("release".to_string(), "kube-prometheus-stack".to_string()),
        (
            crate::resources::labels::MANAGED_BY.to_string(),
            "someone-else".to_string(),
        ),
    ]
    .into();
    let desired = Desired::build(&system(json!({})), &config);
    assert_eq!(desired.monitoring.len(), 2);
    for object in &desired.monitoring {
        let labels = object.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["release"], "kube-prometheus-stack");
        assert_eq!(
            labels[crate::resources::labels::MANAGED_BY],
            crate::resources::labels::MANAGER,
            "the operator's own labels win"
        );
    }
}

/// Kubernetes expands `$(NAME)` and reduces `$$` to `$` in a container's command and args:
/// a script holding `$$` (a PostgreSQL dollar quote, the shell's PID) would run changed.
#[test]
fn no_container_command_holds_what_kubernetes_would_expand() {
    let mut importing = system(json!({
        "migration": {
            "source": { "host": "legacy.example", "database": "his", "secretName": "legacy",
                        "network": { "cidr": "10.9.0.0/16" } }
        }
    }));
    for phase in ["Importing", "Verifying"] {
        importing.status = serde_json::from_value(json!({ "migration": {
            "phase": phase, "reason": phase, "message": "",
            "lastTransitionTime": "2026-11-29T00:00:00Z", "attempt": 0 } }))
        .unwrap();
        let text = serde_json::to_string(&all(&importing)).unwrap();
        assert!(!text.contains("$$"), "a script holds $$");
        for env in ["PGDATA", "PGPORT", "APP_USER", "PGHOST", "PGUSER"] {
            assert!(!text.contains(&format!("$({env})")), "{env}");
        }
    }
}

/// The backup claim is as large as the database and counts against the
/// namespace's storage quota. A database of more than half its tier's storage could never
/// converge; the quota holds the tier's storage for the data plus the backup claim.
#[test]
fn a_database_as_large_as_its_tiers_storage_fits_beside_its_backup_claim() {
    let config = Config::default();
    let tier_storage = crate::resources::quantity::bytes(&config.tiers.small.storage).unwrap();
    let system = system(json!({
        "tier": "Small",
        "database": { "version": "16", "storage": config.tiers.small.storage }
    }));
    let desired = Desired::build(&system, &config);
    let quota = desired.quota.spec.unwrap().hard.unwrap();
    let quota_storage = crate::resources::quantity::bytes(&quota["requests.storage"].0).unwrap();
    let claims: u128 = [
        desired.backup_claim.clone().unwrap().spec.unwrap(),
        desired
            .database
            .clone()
            .unwrap()
            .spec
            .unwrap()
            .volume_claim_templates
            .unwrap()[0]
            .spec
            .clone()
            .unwrap(),
    ]
    .iter()
    .map(|spec| {
        crate::resources::quantity::bytes(
            &spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        )
        .unwrap()
    })
    .sum();
    assert_eq!(claims, 2 * tier_storage);
    assert!(
        quota_storage >= claims,
        "quota {} < data and backup claims {claims}",
        quota["requests.storage"].0
    );
}

/// The backup CronJob, with and without an object store.
mod backup_job {
    use serde_json::{Value, json};

    use crate::api::validation::validate;
    use crate::config::{Config, ObjectStore};
    use crate::resources::Desired;

    fn system() -> crate::api::HealthSystem {
        validate(&json!({
            "apiVersion": "sdc.gov.rs/v1alpha1",
            "kind": "HealthSystem",
            "metadata": { "name": "lab-test" },
            "spec": {
                "institution": { "displayName": "Lab", "registryId": "07151950", "ownership": "Private" },
                "database": { "version": "16", "storage": "10Gi" },
                "backup": { "schedule": "0 2 * * *", "retention": { "daily": 7, "weekly": 4, "monthly": 12 } }
            }
        }))
        .unwrap()
    }

    fn with_store() -> Config {
        let mut config = Config::default();
        config.images.operator = Some("registry.sdc.gov.rs/healthsystem-operator:9.9.9".into());
        config.backup.recipients = vec!["age1key".into()];
        config.backup.object_store = Some(ObjectStore {
            region: "eu-rs-1".into(),
            ..ObjectStore::example()
        });
        config
    }

    fn kind<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    fn env(container: &Value) -> std::collections::BTreeMap<String, Value> {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let value = if e["value"].is_null() {
                    e["valueFrom"]["secretKeyRef"].clone()
                } else {
                    e["value"].clone()
                };
                (e["name"].as_str().unwrap().to_string(), value)
            })
            .collect()
    }

    #[test]
    fn with_an_object_store_the_job_runs_the_agent_with_the_systems_own_credentials() {
        let objects = Desired::build(&system(), &with_store()).manifests();
        assert!(
            kind(&objects, "PersistentVolumeClaim", "backup").is_none(),
            "no backup claim with a store"
        );
        let cron = kind(&objects, "CronJob", "backup").unwrap();
        let job = &cron["spec"]["jobTemplate"]["spec"];
        assert_eq!(job["activeDeadlineSeconds"], 21600 + 600);
        let pod = &job["template"]["spec"];
        let install = &pod["initContainers"][0];
        assert_eq!(
            install["image"],
            "registry.sdc.gov.rs/healthsystem-operator:9.9.9"
        );
        assert_eq!(
            install["command"],
            json!([
                "/usr/local/bin/healthsystem-operator",
                "backup",
                "install",
                "/agent"
            ])
        );
        let run = &pod["containers"][0];
        assert_eq!(run["image"], "registry.sdc.gov.rs/mirror/postgres:16.9");
        assert_eq!(
            run["command"],
            json!(["/agent/healthsystem-operator", "backup", "run"])
        );
        for container in [install, run] {
            assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
            assert_eq!(
                container["securityContext"]["allowPrivilegeEscalation"],
                false
            );
        }
        let env = env(run);
        assert_eq!(env["HS_BACKUP_PREFIX"], "hs-lab-test");
        assert_eq!(env["HS_BACKUP_BUCKET"], "healthsystem-backups");
        assert_eq!(env["HS_BACKUP_REGION"], "eu-rs-1");
        assert_eq!(env["HS_BACKUP_RECIPIENTS"], "age1key");
        assert_eq!(env["HS_BACKUP_KEEP_DAYS"], "7");
        assert_eq!(env["HS_BACKUP_KEEP_WEEKS"], "4");
        assert_eq!(env["HS_BACKUP_KEEP_MONTHS"], "12");
        assert_eq!(
            env["AWS_SECRET_ACCESS_KEY"],
            json!({ "name": "backup-store-credentials", "key": "secretAccessKey", "optional": false })
        );
        assert_eq!(
            env["PGPASSWORD"],
            json!({ "name": "database-backup", "key": "password", "optional": false })
        );
        assert!(
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["persistentVolumeClaim"].is_null())
        );

        let egress = kind(&objects, "NetworkPolicy", "backup-store-egress").unwrap();
        assert_eq!(
            egress["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
            "backup"
        );
        assert_eq!(
            egress["spec"]["egress"],
            json!([{ "to": [{ "ipBlock": { "cidr": "10.220.0.0/24" } }],
                     "ports": [{ "port": 443, "protocol": "TCP" }] }])
        );
    }

    #[test]
    fn without_an_object_store_the_dumps_stay_on_a_claim_and_nothing_reaches_out() {
        let objects = Desired::build(&system(), &Config::default()).manifests();
        assert!(kind(&objects, "PersistentVolumeClaim", "backup").is_some());
        assert!(kind(&objects, "NetworkPolicy", "backup-store-egress").is_none());
        let cron = kind(&objects, "CronJob", "backup").unwrap();
        assert!(
            cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"].is_null()
        );
        assert!(cron["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"].is_null());
    }
}

/// `system` with its move at `phase` (spec.database.move declared when `declared`).
fn moving(phase: crate::api::MovePhase, declared: bool) -> HealthSystem {
    let mut system = system(json!({}));
    system.metadata.uid = Some("0a1b2c3d-uid".into());
    if declared {
        system.spec.database.engine_move = Some(
            serde_json::from_value(json!({ "to": "CloudNativePG", "approvedBy": "ana" })).unwrap(),
        );
    }
    system.status = Some(
        serde_json::from_value(json!({ "database": {
            "engine": "StatefulSet",
            "move": { "phase": phase, "attempt": 1, "reason": "r",
                      "lastTransitionTime": "2026-12-07T10:00:00Z", "copies": 0 }
        } }))
        .unwrap(),
    );
    system
}

fn env_of(job: &k8s_openapi::api::batch::v1::Job) -> std::collections::BTreeMap<String, String> {
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| {
            (
                e.name.clone(),
                e.value.clone().unwrap_or_else(|| "<secret>".into()),
            )
        })
        .collect()
}

#[test]
fn a_move_runs_the_cluster_beside_the_statefulset_that_alone_serves_until_the_switch() {
    use crate::api::MovePhase;
    let config = Config::default();
    let copying = Desired::build(&moving(MovePhase::Copying, true), &config);
    assert_eq!(copying.engine, Engine::StatefulSet);
    assert!(copying.database.is_some() && copying.database_cluster.is_some());
    // The `database` Service reaches the StatefulSet's pod only (the Cluster's pods carry the
    // same labels), and no budget covers the Cluster's pods beside the Cluster's own.
    let service = &copying.database_services[0];
    assert_eq!(service.metadata.name.as_deref(), Some("database"));
    let selector = service.spec.as_ref().unwrap().selector.as_ref().unwrap();
    assert_eq!(selector["statefulset.kubernetes.io/pod-name"], "database-0");
    assert!(copying.database_budget.is_none());
    assert_eq!(
        copying
            .application
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .replicas,
        Some(0),
        "the application is stopped while the database is copied"
    );
    let names: Vec<_> = copying
        .network_policies
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert!(
        names.contains(&"database-instances".to_string()),
        "{names:?}"
    );
    // The copy reads the old database as the backup role in plaintext and writes into the
    // Cluster's read-write Service, verifying its certificate.
    assert_eq!(copying.migration_jobs.len(), 1);
    let job = &copying.migration_jobs[0];
    assert_eq!(job.metadata.name.as_deref(), Some("move-0a1b2c3d-copy-1"));
    let env = env_of(job);
    assert_eq!(env["PGHOST"], "postgres-rw");
    assert_eq!(env["PGSSLMODE"], "verify-full");
    assert_eq!(env["SOURCE_HOST"], "database");
    assert_eq!(env["SOURCE_SSLMODE"], "disable");
    assert_eq!(env["REPLACE_ALLOWED"], "no");

    let verifying = Desired::build(&moving(MovePhase::Verifying, true), &config);
    assert_eq!(
        verifying.migration_jobs[0].metadata.name.as_deref(),
        Some("move-0a1b2c3d-verify-1")
    );

    // A failed move gives the application back on the old database; its Cluster is kept.
    let failed = Desired::build(&moving(MovePhase::Failed, true), &config);
    assert_eq!(failed.engine, Engine::StatefulSet);
    assert!(failed.database_cluster.is_some() && failed.migration_jobs.is_empty());
    assert_eq!(
        failed
            .application
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .replicas,
        Some(2)
    );
}

#[test]
fn after_the_switch_the_system_runs_on_the_cluster_and_keeps_the_old_statefulset_stopped() {
    use crate::api::MovePhase;
    let config = Config::default();
    let switched = Desired::build(&moving(MovePhase::Switched, true), &config);
    assert_eq!(switched.engine, Engine::CloudNativePg);
    assert!(switched.database_cluster.is_some() && switched.migration_jobs.is_empty());
    let old = switched
        .database
        .as_ref()
        .expect("the old StatefulSet is kept");
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));
    let selector = switched.database_services[0]
        .spec
        .as_ref()
        .unwrap()
        .selector
        .as_ref()
        .unwrap();
    assert_eq!(selector["cnpg.io/instanceRole"], "primary");
    let app = switched.application.as_ref().unwrap();
    let pod = app.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert!(
        pod.containers[0]
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "PGSSLMODE"),
        "the application verifies the Cluster's certificate"
    );
    // Removing spec.database.move releases the StatefulSet (its claim is never pruned).
    let released = Desired::build(&moving(MovePhase::Switched, false), &config);
    assert_eq!(released.engine, Engine::CloudNativePg);
    assert!(released.database.is_none());
}

#[test]
fn the_application_waits_for_the_restore_of_its_database() {
    let mut restoring = system(json!({}));
    restoring.spec.database.bootstrap =
        Some(serde_json::from_value(json!({ "fromBackup": { "namespace": "hs-old" } })).unwrap());
    let replicas = |system: &HealthSystem| {
        Desired::build(system, &Config::default())
            .application
            .and_then(|d| d.spec)
            .and_then(|s| s.replicas)
    };
    assert_eq!(replicas(&restoring), Some(0));
    let mut restored = restoring.clone();
    restored.status = Some(
        serde_json::from_value(json!({ "database": { "bootstrap": { "phase": "Restored" } } }))
            .unwrap(),
    );
    assert_eq!(replicas(&restored), Some(2));
}
