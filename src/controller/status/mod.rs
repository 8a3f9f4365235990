//! Conditions and phase from what the cluster reports. `observed` reads the watch stores;
//! one builder per subsystem turns that into its condition (`namespace`, `database`,
//! `backup`, `network`, `monitoring`, `application`); `evaluate` here combines them into the
//! phase and Ready, and is pure; `write` writes the status only when it changed.

pub mod access;
pub mod application;
pub mod archive;
pub mod backup;
pub mod cluster;
pub mod condition;
pub mod database;
pub mod monitoring;
pub mod namespace;
pub mod network;
pub mod observed;
pub mod refusals;
pub mod write;
pub mod written;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{BackupStatus, DatabaseStatus, HealthSystem, HealthSystemStatus, Phase};
use crate::resources::{database as db, labels};

pub use backup::{BACKUP_UNVERIFIED, last_proven, next_backup_deadline, parse_rpo, rpo};
pub use condition::{
    BOOTSTRAP_FAILED, CREDENTIALS_MISSING, CREDENTIALS_NOT_READABLE, DATA_MISSING,
    FOREIGN_NETWORK_POLICY, FOREIGN_ROLE_BINDING, INSTANCES_ABOVE_TIER, NAMESPACE_NOT_OWNED,
    QUOTA_EXCEEDED, RESTORE_DRILL_FAILED, Stamp, is_refusal, types,
};
pub use database::lost_data_claim;
pub use observed::{Observed, data_claim_uid, database_ready_replicas, observe};
pub use write::{PROGRESS_INTERVAL, Written, events, merge, progress_hold, write_if_changed};

/// The status `system` should have, given what was observed at `now`. Conditions carry `now`
/// as their transition time; `merge` keeps the old time of those that did not flip.
pub fn evaluate(system: &HealthSystem, observed: &Observed, now: Timestamp) -> HealthSystemStatus {
    let generation = system.metadata.generation;
    let stamp = Stamp { now, generation };
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        stamp.condition(type_, ok, reason, message)
    };
    let namespace = labels::namespace(system);
    let lost = (observed.engine == crate::api::Engine::StatefulSet)
        .then(|| lost_data_claim(system, observed.claim_uid.as_deref()))
        .flatten();
    let mut conditions = vec![
        namespace::condition(system, observed, stamp),
        database::condition(system, observed, lost.as_ref(), stamp),
        backup::condition(system, observed, stamp),
        network::condition(observed, stamp),
        access::condition(observed, stamp),
        monitoring::condition(system, observed, stamp),
    ];
    conditions.extend(application::condition(observed, stamp));

    refusals::report_refusals(&mut conditions, &observed.refused, stamp);

    // Monitoring is reported but does not gate readiness: a cluster without the Prometheus
    // Operator still hosts systems. Nor do backups that only await a drill's proof: they
    // exist, and a first drill may wait hours for a slot (its overdue alert has the say).
    // A refusal needs a person, so it speaks for the system before what merely waits.
    let gating = || {
        conditions.iter().filter(|c| {
            c.type_ != types::MONITORING && c.status != "True" && c.reason != BACKUP_UNVERIFIED
        })
    };
    let blocking = gating()
        .find(|c| is_refusal(&c.reason))
        .or_else(|| gating().next())
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
                    | INSTANCES_ABOVE_TIER
                    | QUOTA_EXCEEDED
                    | FOREIGN_NETWORK_POLICY
                    | FOREIGN_ROLE_BINDING
                    | "BackupStale"
                    | crate::controller::application::image_pull::IMAGE_PULL_FAILING
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
            service: Some(db::SERVICE.into()),
            secret_name: Some(db::SECRET.into()),
            // The StatefulSet's claim: not the data of a system that moved onto a Cluster.
            data_claim_uid: (observed.engine == crate::api::Engine::StatefulSet)
                .then(|| database::recorded_claim(system, observed, lost.as_ref()))
                .flatten(),
            restart: observed.database_restart,
            bootstrap: observed.bootstrap.clone(),
            engine: Some(observed.engine),
            instances: observed.cluster.as_ref().map(|c| c.instances),
            ready_instances: observed.cluster.as_ref().map(|c| c.ready_instances),
            primary: observed.cluster.as_ref().and_then(|c| c.primary.clone()),
            engine_move: observed.engine_move.clone(),
        }),
        backup: Some(with_last_proven(BackupStatus {
            last_successful_time: observed.last_success.map(Time),
            last_failed_time: observed.last_failure.map(Time),
            running_since: observed.backup_running_since.map(Time),
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
            last_physical_drill: observed
                .physical_drill
                .clone()
                .or_else(|| old_backup.and_then(|b| b.last_physical_drill.clone())),
            last_successful_physical_drill_time: observed
                .physical_drill_success
                .map(Time)
                .or_else(|| old_backup.and_then(|b| b.last_successful_physical_drill_time.clone())),
            archive: observed.archive.clone(),
            last_proven_time: None,
        })),
        migration: observed.migration.clone(),
    }
}

/// `backup` with its lastProvenTime: the newer of its two lines' last passing drills.
fn with_last_proven(mut backup: BackupStatus) -> BackupStatus {
    backup.last_proven_time = backup
        .last_successful_drill_time
        .iter()
        .chain(&backup.last_successful_physical_drill_time)
        .max_by_key(|t| t.0)
        .cloned();
    backup
}

#[cfg(test)]
mod tests;
