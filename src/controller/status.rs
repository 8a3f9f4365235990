//! Conditions and phase from what the cluster reports. `observe` reads the watch stores (and,
//! only while the database claim is pending, its StorageClass); `evaluate` is pure; the
//! status is written only when it changed, keeping each condition's lastTransitionTime
//! unless its status flipped, and an event is published when readiness flips.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PatchParams};
use kube::runtime::events::{EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use super::children::Stores;
use super::written_status::WrittenStatus;
use crate::api::{BackupStatus, DatabaseStatus, HealthSystem, HealthSystemStatus, Phase};
use crate::config::Config;
use crate::error::Result;
use crate::resources::labels::{self, COMPONENT, MANAGER};
use crate::resources::{Desired, application, backup, database, namespace, network};

/// Condition types.
pub mod types {
    /// Every subsystem below (monitoring aside) is ready.
    pub const READY: &str = "Ready";
    /// The namespace exists and is active.
    pub const NAMESPACE: &str = "NamespaceReady";
    /// The database runs, its volume is bound and its credentials exist.
    pub const DATABASE: &str = "DatabaseReady";
    /// The last successful backup is within the RPO.
    pub const BACKUP: &str = "BackupReady";
    /// The network policies are applied and every platform service named is known.
    pub const NETWORK: &str = "NetworkIsolated";
    /// Metrics and alert rules are installed (or monitoring is off).
    pub const MONITORING: &str = "MonitoringReady";
    /// The application's pods are available (only when spec.application is set).
    pub const APPLICATION: &str = "ApplicationReady";
}

/// The DatabaseReady reason when the credentials Secret is gone but the data is not.
pub const CREDENTIALS_MISSING: &str = "CredentialsMissing";

/// The DatabaseReady reason when the claim the data was on is gone.
pub const DATA_MISSING: &str = "DataMissing";

/// The DatabaseReady reason when spec.database.bootstrap's restore failed.
pub const BOOTSTRAP_FAILED: &str = "BootstrapFailed";

/// The BackupReady reason when the last restore drill failed: the backups are not proven.
pub const RESTORE_DRILL_FAILED: &str = "RestoreDrillFailed";

/// The NamespaceReady reason when the namespace belongs to someone else.
pub const NAMESPACE_NOT_OWNED: &str = "NamespaceNotOwned";

/// What the cluster reports about one system's children.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Why the namespace is not this system's, when it is not (nothing was written).
    pub namespace_not_owned: Option<String>,
    /// Phase of the namespace; None when it does not exist.
    pub namespace_phase: Option<String>,
    /// Ready replicas of the database StatefulSet.
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
    /// Completion time of the newest successful backup Job.
    pub last_success: Option<Timestamp>,
    /// Time of the newest failed backup Job.
    pub last_failure: Option<Timestamp>,
    /// Available and wanted replicas of the application, when there is one.
    pub application: Option<(i32, i32)>,
    /// Why the application's Deployment cannot make progress, from its conditions
    /// (ReplicaFailure, or Progressing with ProgressDeadlineExceeded): reason and message.
    pub application_failure: Option<(String, String)>,
    /// The monitoring.coreos.com API is served.
    pub monitoring_api: bool,
    /// Platform services named in the spec that the configuration does not know.
    pub unknown_services: Vec<String>,
    /// Network policies the system should have that are not in the cluster (deleted by
    /// hand and not re-created yet, or refused).
    pub missing_policies: Vec<String>,
    /// Where the migration stands (`migration::advance`), copied into the status.
    pub migration: Option<crate::api::MigrationStatus>,
    /// Children the API server refused in this pass.
    pub refused: Vec<super::apply::Refusal>,
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
}

/// Reads the state of `system`'s children from the watch caches (no request).
pub fn observe(
    stores: &Stores,
    config: &Config,
    system: &HealthSystem,
    desired: &Desired,
    monitoring_api: bool,
) -> Observed {
    let namespace = labels::namespace(system);
    let ns = Some(namespace.as_str());
    let field = |object: &Option<std::sync::Arc<super::cache::Live>>, pointer: &str| {
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
    let secret = stores.get("v1", "Secret", ns, database::SECRET);
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

    let (mut last_success, mut last_failure) = (None, None);
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
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref());
        quota
            .zip(pod)
            .and_then(|(quota, pod)| super::quota::shortfall(&quota.data, pod))
    } else {
        None
    };

    Observed {
        bootstrap: None,
        last_backup: None,
        drill: None,
        drill_success: None,
        namespace_not_owned: None,
        namespace_phase: field(&namespace_object, "/status/phase")
            .and_then(|v| v.as_str().map(String::from)),
        database_ready_replicas: database_ready_replicas(stores, &namespace),
        database_pods,
        database_quota_shortfall,
        claim_phase,
        claim_uid: data_claim_uid(claim.as_ref().map(|c| &c.metadata)),
        missing_storage_class,
        credentials_exist: secret.is_some(),
        credentials_complete: secret.as_ref().is_some_and(|s| {
            s.data
                .pointer(&format!("/data/{}", database::PASSWORD_KEY))
                .is_some()
        }),
        last_success,
        last_failure,
        application,
        application_failure,
        monitoring_api,
        unknown_services: network::unknown_platform_services(system, config),
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
        migration: None,
        refused: Vec::new(),
        database_restart: None,
    }
}

/// The subsystem condition a child of `kind` belongs to.
fn subsystem_of(kind: &str) -> &'static str {
    match kind {
        "NetworkPolicy" => types::NETWORK,
        "Secret" | "Service" | "StatefulSet" | "PodDisruptionBudget" | "PersistentVolumeClaim" => {
            types::DATABASE
        }
        "CronJob" => types::BACKUP,
        "Deployment" => types::APPLICATION,
        "PodMonitor" | "PrometheusRule" => types::MONITORING,
        _ => types::NAMESPACE,
    }
}

/// Marks the subsystem of every refused child False, with the API server's reason.
fn report_refusals(
    conditions: &mut [Condition],
    refused: &[super::apply::Refusal],
    now: Timestamp,
    generation: Option<i64>,
) {
    for refusal in refused {
        let type_ = subsystem_of(&refusal.kind);
        let Some(slot) = conditions.iter_mut().find(|c| c.type_ == type_) else {
            continue;
        };
        let reason = format!("{}Refused", refusal.kind);
        let what = format!(
            "{} {} refused by the API server: {}",
            refusal.kind, refusal.name, refusal.message
        );
        let message = if slot.reason == reason {
            format!("{}; {what}", slot.message)
        } else {
            format!(
                "{what}; the rest of the system is applied, and this is retried with a growing delay"
            )
        };
        *slot = condition(type_, false, &reason, message, now, generation);
    }
}

/// Whether a reason is a refusal of the API server (the spec must change).
pub fn is_refusal(reason: &str) -> bool {
    reason.ends_with("Refused")
}

/// The UID of the data claim whose metadata is `claim`, unless it is being deleted: its data
/// goes once the pod lets go of it, and the StatefulSet then makes a new, empty claim at once.
/// Counted as lost from its deletion, the database is held stopped before that happens.
pub fn data_claim_uid(claim: Option<&ObjectMeta>) -> Option<String> {
    claim
        .filter(|c| c.deletion_timestamp.is_none())
        .and_then(|c| c.uid.clone())
}

/// The UID of the data claim this system's database was initialised on, when that claim is
/// gone (`live` is the UID of the claim there now, if any) and no person has accepted the
/// loss. The database must then stay stopped: a new claim would hold an empty database.
pub fn lost_data_claim(system: &HealthSystem, live: Option<&str>) -> Option<String> {
    let recorded = system
        .status
        .as_ref()?
        .database
        .as_ref()?
        .data_claim_uid
        .as_deref()?;
    let accepted = system.spec.database.accept_data_loss.as_deref() == Some(recorded);
    (live != Some(recorded) && !accepted).then(|| recorded.to_string())
}

/// The data claim UID status records: the bound claim's, unless the recorded one is lost
/// (kept until a person accepts the loss).
fn recorded_claim(
    system: &HealthSystem,
    observed: &Observed,
    lost: Option<&String>,
) -> Option<String> {
    let recorded = system
        .status
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .and_then(|d| d.data_claim_uid.clone());
    match (lost, observed.claim_phase.as_deref()) {
        (Some(lost), _) => Some(lost.clone()),
        (None, Some("Bound")) => observed.claim_uid.clone().or(recorded),
        (None, _) => recorded,
    }
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

/// The ApplicationReady reason when the namespace quota refuses the application's pods.
pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";

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

/// Parses an RPO such as "24h" or "90m" (the forms admission allows).
pub fn parse_rpo(rpo: &str) -> Option<Duration> {
    let (number, unit) = rpo.split_at(rpo.len().checked_sub(1)?);
    let number: u64 = number.parse().ok()?;
    match unit {
        "h" => Some(Duration::from_secs(number * 3600)),
        "m" => Some(Duration::from_secs(number * 60)),
        _ => None,
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    now: Timestamp,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: Time(now),
        observed_generation: generation,
    }
}

/// The status `system` should have, given what was observed at `now`. Conditions carry `now`
/// as their transition time; `merge` keeps the old time of those that did not flip.
pub fn evaluate(system: &HealthSystem, observed: &Observed, now: Timestamp) -> HealthSystemStatus {
    let generation = system.metadata.generation;
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        condition(type_, ok, reason, message, now, generation)
    };
    let namespace = labels::namespace(system);
    let mut conditions = Vec::new();

    conditions.push(match observed.namespace_phase.as_deref() {
        _ if observed.namespace_not_owned.is_some() => cond(
            types::NAMESPACE,
            false,
            NAMESPACE_NOT_OWNED,
            observed.namespace_not_owned.clone().unwrap_or_default(),
        ),
        Some("Active") => cond(
            types::NAMESPACE,
            true,
            "NamespaceActive",
            format!("namespace {namespace} is active"),
        ),
        Some(phase) => cond(
            types::NAMESPACE,
            false,
            "NamespaceNotActive",
            format!("namespace {namespace} is {phase}"),
        ),
        None => cond(
            types::NAMESPACE,
            false,
            "NamespaceMissing",
            format!("namespace {namespace} does not exist yet"),
        ),
    });

    let lost = lost_data_claim(system, observed.claim_uid.as_deref());
    conditions.push(if let Some(lost) = &lost {
        let now_there = match &observed.claim_uid {
            Some(uid) => format!("; claim {} now there (UID {uid}) is a new, empty volume", database::data_claim_name()),
            None => String::new(),
        };
        cond(types::DATABASE, false, DATA_MISSING, format!("the volume claim {} (UID {lost}) that holds this database's data is gone or being deleted{now_there}. The database is held stopped so that no empty database replaces it. Restore the volume (re-bind its PersistentVolume if its class retains it) or restore from a backup; if the data is lost for good, set spec.database.acceptDataLoss: {lost} to start an empty database", database::data_claim_name()))
    } else if !observed.credentials_exist && observed.claim_phase.is_some() {
        cond(types::DATABASE, false, CREDENTIALS_MISSING, format!("Secret {} is missing while the database volume {} holds data initialised with its password; the operator never generates a new one for it. Restore the Secret with the original password (from the platform's secret backup)", database::SECRET, database::data_claim_name()))
    } else if observed.credentials_exist && !observed.credentials_complete {
        cond(types::DATABASE, false, "CredentialsIncomplete", format!("Secret {} has no {} key; add it, the operator never overwrites credentials", database::SECRET, database::PASSWORD_KEY))
    } else if let Some(class) = &observed.missing_storage_class {
        cond(types::DATABASE, false, "StorageClassNotFound", format!("storage class {class:?} does not exist, so the database volume cannot be provisioned"))
    } else if observed.claim_phase.as_deref() != Some("Bound") {
        cond(types::DATABASE, false, "VolumePending", "waiting for the database volume to be bound".into())
    } else if observed.database_ready_replicas < 1 && observed.database_pods > 0 {
        cond(types::DATABASE, false, "DatabaseNotReady", format!("the database pod runs but is not ready: it is starting (crash recovery may take long), or a login with the credentials of Secret {} fails (kubectl describe pod database-0 shows the probe's error)", database::SECRET))
    } else if let Some(short) = observed.database_quota_shortfall.as_ref().filter(|_| observed.database_ready_replicas < 1 && observed.database_pods == 0) {
        cond(types::DATABASE, false, QUOTA_EXCEEDED, format!("the namespace quota leaves no room for the database pod ({short}); raise spec.sizing or choose a larger tier"))
    } else if observed.database_ready_replicas < 1 {
        cond(types::DATABASE, false, "DatabaseStarting", "waiting for the database pod".into())
    } else if let Some(restore) = observed.bootstrap.as_ref().filter(|b| b.phase != "Restored") {
        let reason = if restore.phase == "Failed" { BOOTSTRAP_FAILED } else { "Restoring" };
        cond(types::DATABASE, false, reason, restore.message.clone())
    } else {
        cond(types::DATABASE, true, "DatabaseRunning", format!("PostgreSQL {} is running", system.spec.database.version.as_str()))
    });

    let rpo = parse_rpo(&system.spec.backup.rpo).unwrap_or(Duration::from_secs(24 * 3600));
    let rpo_text = &system.spec.backup.rpo;
    let age = |t: Timestamp| Duration::try_from(now.duration_since(t)).unwrap_or_default();
    let created = system
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let failed_drill = observed.drill.as_ref().filter(|d| d.result != "Passed");
    conditions.push(match observed.last_success {
        Some(_) if let Some(drill) = failed_drill => cond(
            types::BACKUP,
            false,
            RESTORE_DRILL_FAILED,
            format!(
                "the restore drill of backup {} ({}) failed: {}: {}",
                drill.backup,
                drill.job,
                drill.reason.as_deref().unwrap_or("Failed"),
                drill.message
            ),
        ),
        Some(t) if age(t) <= rpo => cond(
            types::BACKUP,
            true,
            "BackupFresh",
            format!("last successful backup at {t}"),
        ),
        Some(t) => cond(
            types::BACKUP,
            false,
            "BackupStale",
            format!("last successful backup at {t} is older than the RPO of {rpo_text}"),
        ),
        None if age(created) <= rpo => cond(
            types::BACKUP,
            true,
            "AwaitingFirstBackup",
            format!("no backup yet; the first is due within the RPO of {rpo_text}"),
        ),
        None => cond(
            types::BACKUP,
            false,
            "NoSuccessfulBackup",
            format!("no successful backup within the RPO of {rpo_text}"),
        ),
    });

    conditions.push(if !observed.missing_policies.is_empty() {
        cond(
            types::NETWORK,
            false,
            "PolicyMissing",
            format!(
                "network policies not in place: {}",
                observed.missing_policies.join(", ")
            ),
        )
    } else if observed.unknown_services.is_empty() {
        cond(
            types::NETWORK,
            true,
            "PoliciesApplied",
            "default deny with the system's allowances".into(),
        )
    } else {
        cond(
            types::NETWORK,
            false,
            "UnknownPlatformService",
            format!(
                "platform services not in the operator's configuration: {}",
                observed.unknown_services.join(", ")
            ),
        )
    });

    conditions.push(if !system.spec.monitoring.enabled {
        cond(types::MONITORING, true, "MonitoringDisabled", "monitoring is switched off in the spec".into())
    } else if !observed.monitoring_api {
        cond(types::MONITORING, false, "MonitoringAPIUnavailable", "the monitoring.coreos.com API is not served; PodMonitor and PrometheusRule are skipped".into())
    } else {
        cond(types::MONITORING, true, "MonitoringConfigured", "PodMonitor and PrometheusRule installed".into())
    });

    if let Some((available, wanted)) = observed.application {
        conditions.push(
            if let Some((reason, why)) = observed
                .application_failure
                .as_ref()
                .filter(|_| available < wanted)
            {
                let hint = if reason == QUOTA_EXCEEDED {
                    "; lower spec.application.replicas or raise spec.sizing.pods (or the tier)"
                } else {
                    ""
                };
                cond(
                    types::APPLICATION,
                    false,
                    reason,
                    format!("{available} of {wanted} pods available: {why}{hint}"),
                )
            } else if available >= wanted {
                cond(
                    types::APPLICATION,
                    true,
                    "ApplicationAvailable",
                    format!("{available} of {wanted} pods available"),
                )
            } else {
                cond(
                    types::APPLICATION,
                    false,
                    "ApplicationStarting",
                    format!("{available} of {wanted} pods available"),
                )
            },
        );
    }

    report_refusals(&mut conditions, &observed.refused, now, generation);

    // Monitoring is reported but does not gate readiness: a cluster without the Prometheus
    // Operator still hosts systems.
    let blocking = conditions
        .iter()
        .find(|c| c.type_ != types::MONITORING && c.status != "True")
        .cloned();
    let previous = system.status.as_ref().and_then(|s| s.phase);
    let phase = match &blocking {
        None => Phase::Ready,
        Some(_) if matches!(previous, Some(Phase::Ready | Phase::Degraded)) => Phase::Degraded,
        Some(c) if is_refusal(&c.reason) => Phase::Degraded,
        Some(c)
            if matches!(
                c.reason.as_str(),
                "StorageClassNotFound"
                    | "UnknownPlatformService"
                    | "CredentialsIncomplete"
                    | CREDENTIALS_MISSING
                    | DATA_MISSING
                    | QUOTA_EXCEEDED
                    | "BackupStale"
                    | "NoSuccessfulBackup"
            ) =>
        {
            Phase::Degraded
        }
        Some(_) => Phase::Provisioning,
    };
    let ready = match blocking {
        None => cond(
            types::READY,
            true,
            "AllSubsystemsReady",
            "every subsystem is ready".into(),
        ),
        Some(c) => cond(
            types::READY,
            false,
            &c.reason,
            format!("{}: {}", c.type_, c.message),
        ),
    };
    conditions.insert(0, ready);

    let old_backup = system.status.as_ref().and_then(|s| s.backup.as_ref());
    HealthSystemStatus {
        observed_generation: generation,
        phase: Some(phase),
        conditions,
        namespace: Some(namespace),
        database: Some(DatabaseStatus {
            service: Some(database::SERVICE.into()),
            secret_name: Some(database::SECRET.into()),
            data_claim_uid: recorded_claim(system, observed, lost.as_ref()),
            restart: observed.database_restart,
            bootstrap: observed.bootstrap.clone(),
        }),
        backup: Some(BackupStatus {
            last_successful_time: observed.last_success.map(Time),
            last_failed_time: observed.last_failure.map(Time),
            last_backup: observed.last_backup.clone(),
            // Evidence is kept: a pass that did not look at drills carries it over.
            last_drill: observed
                .drill
                .clone()
                .or_else(|| old_backup.and_then(|b| b.last_drill.clone())),
            last_successful_drill_time: observed
                .drill_success
                .map(Time)
                .or_else(|| old_backup.and_then(|b| b.last_successful_drill_time.clone())),
        }),
        migration: observed.migration.clone(),
    }
}

/// Keeps the old lastTransitionTime of every condition whose status did not flip.
pub fn merge(old: Option<&HealthSystemStatus>, mut new: HealthSystemStatus) -> HealthSystemStatus {
    if let Some(old) = old {
        for condition in &mut new.conditions {
            if let Some(previous) = old.conditions.iter().find(|c| c.type_ == condition.type_)
                && previous.status == condition.status
            {
                condition.last_transition_time = previous.last_transition_time.clone();
            }
        }
    }
    new
}

/// When the BackupReady verdict can next change by the passage of time alone.
pub fn next_backup_deadline(
    system: &HealthSystem,
    observed: &Observed,
    now: Timestamp,
) -> Option<Duration> {
    let rpo = parse_rpo(&system.spec.backup.rpo)?;
    let since = observed
        .last_success
        .or_else(|| system.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or_default();
    rpo.checked_sub(elapsed).map(|d| d + Duration::from_secs(1))
}

/// While a system is provisioned its conditions move every few seconds (namespace, volume,
/// pods starting): such a step is written at most once per this interval, and the reconcile
/// comes back for the rest of it. At fleet scale each write is one more request per system.
/// Ready, a new generation and anything that needs a person are written at once.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// What became of a new status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Unchanged,
    Written,
    /// A step of provisioning, to be written in this long (see [`PROGRESS_INTERVAL`]).
    Held(Duration),
}

/// How long `new`, a step of provisioning, waits before it is written over `old` at `now`.
pub fn progress_hold(
    old: Option<&HealthSystemStatus>,
    new: &HealthSystemStatus,
    now: Timestamp,
) -> Option<Duration> {
    let old = old?;
    let provisioning = |s: &HealthSystemStatus| s.phase == Some(Phase::Provisioning);
    if !provisioning(old)
        || !provisioning(new)
        || old.observed_generation != new.observed_generation
        || !events(Some(old), new).is_empty()
    {
        return None;
    }
    let last = old
        .conditions
        .iter()
        .map(|c| c.last_transition_time.0)
        .max()?;
    let since = Duration::try_from(now.duration_since(last)).unwrap_or_default();
    PROGRESS_INTERVAL
        .checked_sub(since)
        .filter(|left| !left.is_zero())
}

/// Writes `status` when it differs from the system's (`system` as `WrittenStatus::view` gives
/// it; a step of provisioning only once [`progress_hold`] allows), and publishes an event when
/// Ready flips.
pub async fn write_if_changed(
    client: &Client,
    recorder: &Recorder,
    system: &HealthSystem,
    status: HealthSystemStatus,
    now: Timestamp,
    written: &WrittenStatus,
) -> Result<Written> {
    let old = system.status.as_ref();
    let status = merge(old, status);
    if old == Some(&status) {
        return Ok(Written::Unchanged);
    }
    if let Some(left) = progress_hold(old, &status, now) {
        return Ok(Written::Held(left));
    }
    let api = Api::<HealthSystem>::all(client.clone());
    let patch =
        json!({ "apiVersion": "sdc.gov.rs/v1alpha1", "kind": "HealthSystem", "status": status });
    api.patch_status(
        &system.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &super::apply_body::apply_patch(&patch)?,
    )
    .await?;
    let events = events(old, &status);
    written.wrote(
        &system.uid().unwrap_or_default(),
        status,
        std::time::Instant::now(),
    );
    let reference = system.object_ref(&());
    for (type_, reason, message) in events {
        super::events::publish(recorder, &reference, type_, reason, message, "Reconcile").await;
    }
    Ok(Written::Written)
}

/// The events a status change publishes: Ready flipping (Normal when it becomes True,
/// Warning when False), and once each, a reason only a person can resolve as it appears.
pub fn events(
    old: Option<&HealthSystemStatus>,
    status: &HealthSystemStatus,
) -> Vec<(EventType, String, String)> {
    let ready = |s: Option<&HealthSystemStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == types::READY))
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (before, after) = (ready(old), ready(Some(status)));
    let mut events = Vec::new();
    // A new system is not Ready while it is provisioned: that is no warning (at fleet
    // scale, one per system onboarded). One found Degraded at its first look is.
    let provisioning = before.is_none() && status.phase == Some(Phase::Provisioning);
    if before.as_ref().map(|b| &b.0) != after.as_ref().map(|a| &a.0)
        && !provisioning
        && let Some((state, reason, message)) = after
    {
        let type_ = if state == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        events.push((type_, reason, message));
    }
    // What needs a person is said once when it appears, even if Ready was already False.
    for condition in &status.conditions {
        let was = old
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition.type_))
            .map(|c| c.reason.as_str());
        if (NEEDS_A_PERSON.contains(&condition.reason.as_str()) || is_refusal(&condition.reason))
            && was != Some(condition.reason.as_str())
            && !events
                .iter()
                .any(|(_, reason, _)| *reason == condition.reason)
        {
            events.push((
                EventType::Warning,
                condition.reason.clone(),
                condition.message.clone(),
            ));
        }
    }
    events
}

/// Reasons that only a person can resolve: each gets a Warning event when it appears.
const NEEDS_A_PERSON: &[&str] = &[CREDENTIALS_MISSING, DATA_MISSING, NAMESPACE_NOT_OWNED];

#[cfg(test)]
mod tests;
