//! Pure builders: a HealthSystem and the operator's configuration in, every desired child
//! out. No client, no I/O: `render` prints this set and the controller applies it.

pub mod application;
pub mod archive;
pub mod backup;
pub mod bootstrap;
pub mod cnpg;
pub mod database;
pub mod drill;
pub mod engine_move;
pub mod final_backup;
pub mod labels;
pub mod metadata;
pub mod migration;
pub mod monitoring;
pub mod names;
pub mod namespace;
pub mod network;
pub mod physical_drill;
pub mod pod;
pub mod quantity;
pub mod rbac;
pub mod restore_pods;
pub mod roles;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Resource;
use kube::api::DynamicObject;
use serde::Serialize;
use serde_json::Value;

use crate::api::{Engine, HealthSystem};
use crate::config::Config;

/// Every child object one HealthSystem should have. Consumers destructure it without `..`,
/// so a new kind of child that nobody applies or prints fails to compile.
#[derive(Clone, Debug)]
pub struct Desired {
    /// The system's namespace.
    pub namespace: Namespace,
    /// The namespace quota.
    pub quota: ResourceQuota,
    /// Default container requests and limits.
    pub limits: LimitRange,
    /// Access groups bound to roles.
    pub role_bindings: Vec<RoleBinding>,
    /// One per workload, no token mounted.
    pub service_accounts: Vec<ServiceAccount>,
    /// Default deny, then what the system needs.
    pub network_policies: Vec<NetworkPolicy>,
    /// The credentials of the database's roles without their passwords (the application's
    /// first): created by the controller, never updated.
    pub database_secrets: Vec<Secret>,
    /// What runs the database: the engine chosen for this system ([`engine`]).
    pub engine: Engine,
    /// The PostgreSQL server and its exporter (StatefulSet engine).
    pub database: Option<StatefulSet>,
    /// The CloudNativePG Cluster (CloudNativePG engine).
    pub database_cluster: Option<DynamicObject>,
    /// Its continuous archive (CloudNativePG engine, archiving on): the plugin's ObjectStore
    /// and the ScheduledBackup of base backups.
    pub archive: Vec<DynamicObject>,
    /// The database Service (and the StatefulSet's headless one).
    pub database_services: Vec<Service>,
    /// Keeps drains from stopping the database unannounced (StatefulSet engine; a Cluster
    /// keeps its own).
    pub database_budget: Option<PodDisruptionBudget>,
    /// Where the backups are kept when there is no object store.
    pub backup_claim: Option<PersistentVolumeClaim>,
    /// The scheduled backup.
    pub backup: CronJob,
    /// PodMonitor and PrometheusRule, when monitoring is enabled (applied only where the
    /// monitoring.coreos.com API is served).
    pub monitoring: Vec<DynamicObject>,
    /// The application Deployment, when spec.application is set.
    pub application: Option<Deployment>,
    /// The application Service, when spec.application is set.
    pub application_service: Option<Service>,
    /// The Jobs the migration's and the move's phases need (import, copy, verification).
    pub migration_jobs: Vec<Job>,
}

impl Desired {
    /// Builds every child of `system`.
    pub fn build(system: &HealthSystem, config: &Config) -> Self {
        let app = system.spec.application.as_ref();
        let (mut migration_jobs, source_policy) = migration::children(system, config);
        let engine = engine(system, config);
        let cloud_native = engine == Engine::CloudNativePg;
        // A move's Cluster beside the StatefulSet that still serves, or the StatefulSet kept
        // stopped beside the Cluster the system moved onto.
        let cluster_beside = engine_move::cluster_beside(system, engine);
        let with_cluster = cloud_native || cluster_beside;
        let mut network_policies = network::policies(system, config);
        network_policies.extend(source_policy);
        if with_cluster {
            network_policies.push(cnpg::network_policy(system, config));
        }
        network_policies.extend(archive::network_policy(system, config, with_cluster));
        if cloud_native {
            for job in &mut migration_jobs {
                if let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
                    cnpg::verify_server(pod);
                }
            }
        }
        migration_jobs.extend(engine_move::jobs(system, config));
        Self {
            namespace: namespace::namespace(system),
            quota: namespace::resource_quota(system, config),
            limits: namespace::limit_range(system, config),
            role_bindings: rbac::role_bindings(system, config.operator_account.as_ref()),
            service_accounts: rbac::service_accounts(system),
            network_policies,
            database_secrets: roles::secrets(system),
            engine,
            database: if !cloud_native {
                Some(database::stateful_set(system, config))
            } else if engine_move::keeps_old(system) {
                Some(database::stopped(database::stateful_set(system, config)))
            } else {
                None
            },
            database_cluster: with_cluster.then(|| cnpg::cluster(system, config)),
            archive: archive::object_store(system, config, with_cluster)
                .into_iter()
                .chain(archive::origin_object_store(system, config, with_cluster))
                .chain(archive::scheduled_backup(system, config, with_cluster))
                .collect(),
            database_services: if cloud_native {
                vec![cnpg::service(system)]
            } else {
                database::services(system)
            },
            // Never two budgets over one pod (evictions would fail): a Cluster keeps its own.
            database_budget: (!with_cluster).then(|| database::disruption_budget(system)),
            backup_claim: backup::claim(system, config),
            backup: {
                let mut cron_job = backup::cron_job(system, config);
                if cloud_native {
                    backup::verify_server(&mut cron_job);
                }
                cron_job
            },
            monitoring: if system.spec.monitoring.enabled {
                vec![
                    monitoring::pod_monitor(system, config),
                    monitoring::prometheus_rule(system, config),
                ]
            } else {
                Vec::new()
            },
            application: app.map(|app| {
                let mut deployment = application::deployment(system, app);
                if cloud_native {
                    application::verify_server(&mut deployment);
                }
                deployment
            }),
            application_service: app.map(|app| application::service(system, app)),
            migration_jobs,
        }
    }

    /// The children as complete manifests (apiVersion and kind set) in creation order: the
    /// namespace first, the credentials before what uses them. What `render` prints.
    pub fn manifests(&self) -> Vec<Value> {
        self.collect(true)
    }

    /// What the controller applies: every manifest but the credentials Secrets, which are
    /// created with their generated passwords and never applied.
    pub fn applied_manifests(&self) -> Vec<Value> {
        self.collect(false)
    }

    fn collect(&self, with_secret: bool) -> Vec<Value> {
        let Self {
            namespace,
            quota,
            limits,
            role_bindings,
            service_accounts,
            network_policies,
            database_secrets,
            engine: _,
            database,
            database_cluster,
            archive,
            database_services,
            database_budget,
            backup_claim,
            backup,
            monitoring,
            application,
            application_service,
            migration_jobs,
        } = self;
        let mut out = vec![manifest(namespace), manifest(quota), manifest(limits)];
        out.extend(role_bindings.iter().map(manifest));
        out.extend(service_accounts.iter().map(manifest));
        out.extend(network_policies.iter().map(manifest));
        if with_secret {
            out.extend(database_secrets.iter().map(manifest));
        }
        out.extend(database_services.iter().map(manifest));
        out.extend(database.iter().map(manifest));
        // Where it archives to before the Cluster that names it.
        out.extend(archive.iter().map(cnpg::manifest));
        out.extend(database_cluster.iter().map(cnpg::manifest));
        out.extend(database_budget.iter().map(manifest));
        out.extend(backup_claim.iter().map(manifest));
        out.push(manifest(backup));
        out.extend(
            monitoring
                .iter()
                .map(|m| serde_json::to_value(m).unwrap_or(Value::Null)),
        );
        out.extend(application.iter().map(manifest));
        out.extend(application_service.iter().map(manifest));
        out.extend(migration_jobs.iter().map(manifest));
        out
    }
}

/// The engine of `system`'s database: the one recorded in its status when it was made; the
/// StatefulSet for a system made before engines were recorded (it has a data claim on
/// record); the configuration's for a new system. So changing the configuration never
/// moves an existing database: only a move (spec.database.move) does, at its switch.
pub fn engine(system: &HealthSystem, config: &Config) -> Engine {
    if engine_move::switched(system) {
        return Engine::CloudNativePg;
    }
    let recorded = system.status.as_ref().and_then(|s| s.database.as_ref());
    match recorded {
        Some(database) if database.engine.is_some() => database.engine.unwrap_or_default(),
        Some(database) if database.data_claim_uid.is_some() => Engine::StatefulSet,
        _ => config.database.engine,
    }
}

/// An object as JSON with its apiVersion and kind, which k8s-openapi types leave implicit.
pub fn manifest<K>(object: &K) -> Value
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert(
            "apiVersion".into(),
            Value::String(K::api_version(&()).into_owned()),
        );
        map.insert("kind".into(), Value::String(K::kind(&()).into_owned()));
    }
    value
}

#[cfg(test)]
mod tests;
