//! What the cluster reports about one system's children, read from the watch caches (no
//! request): the input of every condition builder.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::Value;

use crate::api::HealthSystem;
use crate::config::Config;
use crate::controller::apply::Refusal;
use crate::controller::cache::compact::Live;
use crate::controller::cache::kinds::Stores;
use crate::controller::database::credentials_seen::Seen;
use crate::controller::database::quota_shortfall;
use crate::controller::status::archive as archive_status;
use crate::controller::status::cluster::ClusterState;
use crate::controller::status::condition::QUOTA_EXCEEDED;
use crate::resources::labels::{self, COMPONENT};
use crate::resources::{Desired, application, archive, backup, cnpg, database, namespace, network};

/// What the cluster reports about one system's children.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Why the namespace is not this system's, when it is not (nothing was written).
    pub namespace_not_owned: Option<String>,
    /// Why the platform refuses the system's PostgreSQL version (nothing was written).
    pub version_refused: Option<String>,
    /// Why the platform cannot start the system from the archive it names (nothing was
    /// written).
    pub bootstrap_refused: Option<String>,
    /// Phase of the namespace; None when it does not exist.
    pub namespace_phase: Option<String>,
    /// What runs the database.
    pub engine: crate::api::Engine,
    /// The CloudNativePG API is served (the Cluster kind is watched).
    pub engine_api: bool,
    /// The system's CloudNativePG Cluster, when it has one.
    pub cluster: Option<ClusterState>,
    /// Ready replicas of the database StatefulSet (CloudNativePG: ready instances while a
    /// primary takes writes).
    pub database_ready_replicas: i32,
    /// Pods of the database StatefulSet, ready or not.
    pub database_pods: i32,
    /// Phase of the database claim; None before it exists.
    pub claim_phase: Option<String>,
    /// UID of the database claim; None before it exists.
    pub claim_uid: Option<String>,
    /// The claim's StorageClass when it does not exist in the cluster.
    pub missing_storage_class: Option<String>,
    /// The credentials Secret exists.
    pub credentials_exist: bool,
    /// ...and holds a password.
    pub credentials_complete: bool,
    /// The operator could not read the credentials Secrets this pass (its access to them in
    /// the namespace is not in force): the two above are then not known.
    pub credentials_unreadable: bool,
    /// Completion time of the newest successful backup Job.
    pub last_success: Option<Timestamp>,
    /// Time of the newest failed backup Job.
    pub last_failure: Option<Timestamp>,
    /// Start of the oldest backup Job still running.
    pub backup_running_since: Option<Timestamp>,
    /// Available and wanted replicas of the application, when there is one.
    pub application: Option<(i32, i32)>,
    /// Why the application's Deployment cannot make progress, from its conditions
    /// (ReplicaFailure, or Progressing with ProgressDeadlineExceeded): reason and message.
    pub application_failure: Option<(String, String)>,
    /// The monitoring.coreos.com API is served.
    pub monitoring_api: bool,
    /// Platform services named in the spec that the configuration does not know.
    pub unknown_services: Vec<String>,
    /// `(asked, bound)` when `spec.database.instances` is above the tier's bound.
    pub instances_above_tier: Option<(i32, i32)>,
    /// Network policies the system should have that are not in the cluster (deleted by
    /// hand and not re-created yet, or refused).
    pub missing_policies: Vec<String>,
    /// NetworkPolicies in the namespace the operator did not make.
    pub foreign_policies: Vec<String>,
    /// RoleBindings in the namespace the operator did not make.
    pub foreign_bindings: Vec<String>,
    /// Where the migration stands (`migration::advance`), copied into the status.
    pub migration: Option<crate::api::MigrationStatus>,
    /// Where the move onto CloudNativePG stands (`engine_move::advance`), copied into the
    /// status.
    pub engine_move: Option<crate::api::MoveStatus>,
    /// Children the API server refused in this pass.
    pub refused: Vec<Refusal>,
    /// The database's restart onto a new pod template, if one is waiting or under way.
    pub database_restart: Option<crate::api::DatabaseRestart>,
    /// What the namespace quota lacks for the database pod, when there is no such pod.
    pub database_quota_shortfall: Option<String>,
    /// Where the restore of spec.database.bootstrap stands.
    pub bootstrap: Option<crate::api::BootstrapStatus>,
    /// The newest backup in the object store (then `last_success` is its time).
    pub last_backup: Option<crate::api::LastBackup>,
    /// The newest restore drill's evidence.
    pub drill: Option<crate::api::DrillStatus>,
    /// When the newest drill that passed started.
    pub drill_success: Option<Timestamp>,
    /// The newest physical drill's evidence, and when the newest that passed started.
    pub physical_drill: Option<crate::api::DrillStatus>,
    pub physical_drill_success: Option<Timestamp>,
    /// How old the newest drill that passed may be for a backup to count as proven; `None`
    /// where no drills run (nothing can be proven, nothing is waited for).
    pub drill_max_age: Option<std::time::Duration>,
    /// The continuous archive, when the system has one.
    pub archive: Option<crate::api::ArchiveStatus>,
}

/// Reads the state of `system`'s children from the watch caches (no request), and of its
/// credentials from what the apply knew of them (`None`: not readable this pass, not blamed).
pub fn observe(
    stores: &Stores,
    config: &Config,
    system: &HealthSystem,
    desired: &Desired,
    monitoring_api: bool,
    credentials: Option<&Seen>,
) -> Observed {
    let namespace = labels::namespace(system);
    let ns = Some(namespace.as_str());
    let field = |object: &Option<std::sync::Arc<Live>>, pointer: &str| {
        object
            .as_ref()
            .and_then(|o| o.data.pointer(pointer).cloned())
    };
    let namespace_object = stores.get("v1", "Namespace", None, &namespace);
    let statefulset = stores.get("apps/v1", "StatefulSet", ns, database::NAME);
    let claim = stores.get(
        "v1",
        "PersistentVolumeClaim",
        ns,
        &database::data_claim_name(),
    );
    let claim_phase = field(&claim, "/status/phase").and_then(|v| v.as_str().map(String::from));

    let mut missing_storage_class = None;
    if claim_phase.as_deref() == Some("Pending") {
        let class =
            field(&claim, "/spec/storageClassName").and_then(|v| v.as_str().map(String::from));
        if let Some(class) = class
            && !stores.storage_class_exists(&class)
        {
            missing_storage_class = Some(class);
        }
    }

    let (mut last_success, mut last_failure, mut backup_running_since) = (None, None, None);
    for job in stores.of_system("batch/v1", "Job", labels::name(system)) {
        let labels = job.labels();
        if job.namespace().as_deref() != ns
            || labels.get(COMPONENT).map(String::as_str) != Some(backup::COMPONENT_NAME)
        {
            continue;
        }
        for condition in job
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let time = condition["lastTransitionTime"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok());
            let target = match (condition["type"].as_str(), condition["status"].as_str()) {
                (Some("Complete"), Some("True")) => &mut last_success,
                (Some("Failed"), Some("True")) => &mut last_failure,
                _ => continue,
            };
            if time > *target {
                *target = time;
            }
        }
        if !crate::controller::runtime::job_state::finished(&job) {
            let started = job
                .data
                .pointer("/status/startTime")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<Timestamp>().ok())
                .or_else(|| job.metadata.creation_timestamp.as_ref().map(|t| t.0));
            if backup_running_since.is_none() || started < backup_running_since {
                backup_running_since = started;
            }
        }
    }

    let deployment = stores.get("apps/v1", "Deployment", ns, application::NAME);
    let application_failure = system
        .spec
        .application
        .as_ref()
        .and_then(|_| deployment_failure(deployment.as_deref().map(|l| &l.object)));
    let application = system.spec.application.as_ref().map(|app| {
        let available = field(&deployment, "/status/availableReplicas")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        (available as i32, application::replicas(system, app))
    });

    let database_pods = field(&statefulset, "/status/replicas")
        .and_then(|v| v.as_i64())
        .unwrap_or(0) as i32;
    let database_quota_shortfall = if database_pods == 0 {
        let quota = stores.get("v1", "ResourceQuota", ns, namespace::QUOTA);
        let pod = desired
            .database
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.template.spec.as_ref());
        quota
            .zip(pod)
            .and_then(|(quota, pod)| quota_shortfall::shortfall(&quota.data, pod))
    } else {
        None
    };

    let engine_api = stores
        .kind(&cnpg::cluster_resource().api_version, "Cluster")
        .is_some();
    // A move's Cluster beside the StatefulSet is not yet what serves: the StatefulSet is.
    let serving_cluster = desired.engine == crate::api::Engine::CloudNativePg;
    let live_cluster = stores.get(
        &cnpg::cluster_resource().api_version,
        "Cluster",
        ns,
        cnpg::CLUSTER,
    );
    let cluster = live_cluster
        .as_ref()
        .filter(|_| serving_cluster)
        .map(|live| ClusterState {
            claims: cluster_claims(stores, system),
            ..ClusterState::read(&live.data)
        });
    // The system archives when its ObjectStore is desired; where to, that object says.
    let archive = desired
        .archive
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some(archive::OBJECT_STORE))
        .map(|desired_store| {
            let live_store = stores.get(
                &archive::object_store_resource().api_version,
                "ObjectStore",
                ns,
                archive::OBJECT_STORE,
            );
            archive_status::read(
                desired_store.data["spec"]["configuration"]["destinationPath"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                live_store.as_ref().map(|o| &o.data),
                live_cluster.as_ref().map(|c| &c.data),
            )
        });
    let database_ready_replicas = match &cluster {
        Some(cluster) if cluster.primary_ready() => cluster.ready_instances,
        Some(_) => 0,
        None => database_ready_replicas(stores, &namespace),
    };

    Observed {
        engine: desired.engine,
        engine_api,
        cluster,
        bootstrap: None,
        last_backup: None,
        drill: None,
        drill_success: None,
        physical_drill: None,
        physical_drill_success: None,
        drill_max_age: config.backup.drill_store().map(|_| {
            std::time::Duration::from_secs(u64::from(config.backup.drills.max_age_hours) * 3600)
        }),
        archive,
        namespace_not_owned: None,
        version_refused: None,
        bootstrap_refused: None,
        namespace_phase: field(&namespace_object, "/status/phase")
            .and_then(|v| v.as_str().map(String::from)),
        database_ready_replicas,
        database_pods,
        database_quota_shortfall,
        claim_phase,
        claim_uid: data_claim_uid(claim.as_ref().map(|c| &c.metadata)),
        missing_storage_class,
        credentials_exist: credentials.is_none_or(|c| c.exists(database::SECRET)),
        credentials_complete: credentials
            .is_none_or(|c| c.has_key(database::SECRET, database::PASSWORD_KEY)),
        credentials_unreadable: credentials.is_none(),
        last_success,
        last_failure,
        backup_running_since,
        application,
        application_failure,
        monitoring_api,
        unknown_services: network::unknown_platform_services(system, config),
        instances_above_tier: cnpg::instances_above_tier(system, config),
        missing_policies: desired
            .network_policies
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .filter(|name| {
                stores
                    .get("networking.k8s.io/v1", "NetworkPolicy", ns, name)
                    .is_none()
            })
            .collect(),
        foreign_policies: stores.foreign.policies(&namespace),
        foreign_bindings: stores.foreign.bindings(&namespace),
        migration: None,
        engine_move: None,
        refused: Vec::new(),
        database_restart: None,
    }
}

/// The UID of the data claim whose metadata is `claim`, unless it is being deleted: its data
/// goes once the pod lets go of it, and the StatefulSet then makes a new, empty claim at once.
/// Counted as lost from its deletion, the database is held stopped before that happens.
pub fn data_claim_uid(claim: Option<&ObjectMeta>) -> Option<String> {
    claim
        .filter(|c| c.deletion_timestamp.is_none())
        .and_then(|c| c.uid.clone())
}

/// Why a Deployment cannot make progress: a ReplicaFailure condition (pods refused, say by
/// the namespace quota) or a progress deadline exceeded (say an image that never pulls).
fn deployment_failure(deployment: Option<&kube::api::DynamicObject>) -> Option<(String, String)> {
    let conditions = deployment?.data.pointer("/status/conditions")?.as_array()?;
    conditions.iter().find_map(|c| {
        let (type_, status) = (c["type"].as_str()?, c["status"].as_str()?);
        let reason = c["reason"].as_str().unwrap_or_default();
        let message = c["message"].as_str().unwrap_or_default().to_string();
        match (type_, status) {
            ("ReplicaFailure", "True") if message.contains("exceeded quota") => {
                Some((QUOTA_EXCEEDED.to_string(), message))
            }
            ("ReplicaFailure", "True") => Some(("PodsRefused".to_string(), message)),
            ("Progressing", "False") => Some((reason.to_string(), message)),
            _ => None,
        }
    })
}

/// Claims of the system's Cluster instances (CloudNativePG labels them with its name; they
/// carry our labels through the Cluster's inherited metadata), from the watch store.
fn cluster_claims(stores: &Stores, system: &HealthSystem) -> usize {
    stores
        .kind("v1", "PersistentVolumeClaim")
        .map(|(_, claims)| {
            claims
                .of_system(&system.name_any())
                .iter()
                .filter(|claim| {
                    claim.labels().get("cnpg.io/cluster").map(String::as_str) == Some(cnpg::CLUSTER)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Ready pods of the database StatefulSet in `namespace`, from the watch store.
pub fn database_ready_replicas(stores: &Stores, namespace: &str) -> i32 {
    stores
        .get("apps/v1", "StatefulSet", Some(namespace), database::NAME)
        .and_then(|s| {
            s.data
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
        })
        .unwrap_or(0) as i32
}
