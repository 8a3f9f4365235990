//! Drives spec.database.move through its phases: Preparing (the Cluster made while the
//! application runs) -> Copying (the application stopped) -> Verifying -> Switched, or
//! Failed with a reason, when the application runs on the old database again. `advance` is pure: the old status, what was
//! observed and the time in, the new status out; the Jobs are built from the new status
//! (`resources/engine_move.rs`), so a phase and its Job are applied in the same reconcile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use kube::Client;

use crate::api::{DatabaseMove, Engine, HealthSystem, MigrationPhase, MovePhase, MoveStatus};
use crate::config::Config;
use crate::controller::cache::kinds::Stores;
use crate::controller::migration::{self, JobState};
use crate::controller::status::cluster::ClusterState;
use crate::error::Result;
use crate::resources::{cnpg, engine_move as jobs, labels};

/// What `advance` needs from the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The engine the database runs on, before this step.
    pub engine: Engine,
    /// Why no Cluster can be made here (CloudNativePG not served, or the API server's address
    /// not configured): a move would stop the application for nothing.
    pub refusal: Option<String>,
    /// The Cluster's primary takes writes.
    pub cluster_ready: bool,
    /// The Job the current phase waits for (copy or comparison); Absent otherwise.
    pub job: JobState,
}

fn transition(
    old: &MoveStatus,
    phase: MovePhase,
    reason: &str,
    message: String,
    now: Timestamp,
) -> MoveStatus {
    MoveStatus {
        phase,
        reason: reason.into(),
        message,
        last_transition_time: if phase == old.phase {
            old.last_transition_time.clone()
        } else {
            Time(now)
        },
        ..old.clone()
    }
}

/// What a failed step says besides its cause.
const AFTER_FAILURE: &str = "the application runs on the old database again; raise spec.database.move.attempt to copy again";

/// The move's status after one look at the cluster; `incarnation` is the HealthSystem's, which
/// its Jobs' names carry.
pub fn advance(
    spec: Option<&DatabaseMove>,
    old: Option<&MoveStatus>,
    observed: &Observed,
    now: Timestamp,
    incarnation: &str,
) -> Option<MoveStatus> {
    let Some(spec) = spec else {
        // Withdrawn: the record stays (and with it the Cluster, which the operator never
        // deletes); an attempt under way stops and the application runs on the old database.
        return old.map(|old| {
            if old.phase.holds_application() {
                transition(
                    old,
                    MovePhase::Failed,
                    "Withdrawn",
                    "spec.database.move was removed: the application runs on the old database again; the Cluster made for the move is kept (the operator never deletes one)".into(),
                    now,
                )
            } else {
                old.clone()
            }
        });
    };
    let old = match old {
        Some(old) if old.phase == MovePhase::Switched => return Some(old.clone()),
        Some(old) if old.attempt == spec.attempt && old.phase == MovePhase::Failed => {
            return Some(old.clone());
        }
        _ if observed.engine == Engine::StatefulSet && observed.refusal.is_some() => {
            let why = observed.refusal.clone().unwrap_or_default();
            return Some(refused(spec, old, why, now));
        }
        Some(old) if old.attempt == spec.attempt => old.clone(),
        _ if observed.engine == Engine::CloudNativePg => {
            return Some(MoveStatus {
                phase: MovePhase::Failed,
                attempt: spec.attempt,
                reason: "NothingToMove".into(),
                message: "the database already runs on CloudNativePG".into(),
                last_transition_time: Time(now),
                approved_by: spec.approved_by.clone(),
                stopped: None,
                copies: 0,
                verification: None,
                switched: None,
                downtime_seconds: None,
            });
        }
        other => MoveStatus {
            phase: MovePhase::Preparing,
            attempt: spec.attempt,
            reason: "Preparing".into(),
            message: "waiting for the Cluster's primary; the application runs on the old database until the copy starts".into(),
            last_transition_time: Time(now),
            approved_by: spec.approved_by.clone(),
            stopped: None,
            copies: other.map_or(0, |o| o.copies),
            verification: None,
            switched: None,
            downtime_seconds: None,
        },
    };
    let attempt = old.attempt;
    let next = match old.phase {
        MovePhase::Preparing
            if !observed.cluster_ready
                && since(&old.last_transition_time, now) > PREPARE_DEADLINE =>
        {
            transition(
                &old,
                MovePhase::Failed,
                "ClusterNotReady",
                format!(
                    "the Cluster's primary was not ready {} s after the move started (its pods and `kubectl cnpg status` say why); the application was not stopped; raise spec.database.move.attempt to try again",
                    PREPARE_DEADLINE
                ),
                now,
            )
        }
        MovePhase::Preparing if observed.cluster_ready => MoveStatus {
            stopped: Some(Time(now)),
            ..transition(
                &old,
                MovePhase::Copying,
                "Copying",
                format!(
                    "the application is stopped; Job {} copies the old database into the Cluster once no session of the application is left",
                    jobs::copy_job_name(incarnation, attempt)
                ),
                now,
            )
        },
        MovePhase::Copying => on_job(
            &old,
            &observed.job,
            &jobs::copy_job_name(incarnation, attempt),
            "CopyFailed",
            now,
            |_, _| MoveStatus {
                copies: old.copies + 1,
                ..transition(
                    &old,
                    MovePhase::Verifying,
                    "Verifying",
                    format!(
                        "copied; Job {} compares both databases",
                        jobs::verify_job_name(incarnation, attempt)
                    ),
                    now,
                )
            },
        ),
        MovePhase::Verifying => on_job(
            &old,
            &observed.job,
            &jobs::verify_job_name(incarnation, attempt),
            "VerificationError",
            now,
            |at, report| verified(&old, report, at, now),
        ),
        MovePhase::Preparing | MovePhase::Switched | MovePhase::Failed => old,
    };
    Some(next)
}

/// How long the Cluster's primary may take to be ready: a new Cluster's takes well under a
/// minute here.
const PREPARE_DEADLINE: i64 = 600;

/// Seconds from `from` to `now`.
fn since(from: &Time, now: Timestamp) -> i64 {
    now.as_second() - from.0.as_second()
}

/// A move that cannot start here: nothing stops, the reason says what is missing.
fn refused(
    spec: &DatabaseMove,
    old: Option<&MoveStatus>,
    why: String,
    now: Timestamp,
) -> MoveStatus {
    let base = MoveStatus {
        phase: MovePhase::Failed,
        attempt: spec.attempt,
        reason: String::new(),
        message: String::new(),
        last_transition_time: Time(now),
        approved_by: spec.approved_by.clone(),
        stopped: None,
        copies: old.map_or(0, |o| o.copies),
        verification: None,
        switched: None,
        downtime_seconds: None,
    };
    transition(
        old.unwrap_or(&base),
        MovePhase::Failed,
        "MoveRefused",
        format!("{why}; nothing was stopped"),
        now,
    )
}

/// A phase that waits for the Job `name`: its progress, its failure (reason `failure`, the
/// application given back), or `done` with the time it ended and its report.
fn on_job(
    old: &MoveStatus,
    job: &JobState,
    name: &str,
    failure: &str,
    now: Timestamp,
    done: impl FnOnce(Timestamp, &str) -> MoveStatus,
) -> MoveStatus {
    match job {
        JobState::Absent => old.clone(),
        JobState::Running(waiting) => transition(
            old,
            old.phase,
            old.phase.as_str(),
            migration::running_message(name, waiting),
            now,
        ),
        JobState::Failed(_, why) => transition(
            old,
            MovePhase::Failed,
            failure,
            format!("{why}; {AFTER_FAILURE}"),
            now,
        ),
        JobState::Succeeded(at, report) => done(*at, report),
    }
}

/// A finished comparison: the switch when both databases agree, else Failed with the tables
/// named.
fn verified(old: &MoveStatus, report: &str, at: Timestamp, now: Timestamp) -> MoveStatus {
    let evidence = match migration::evidence(report, at) {
        Ok(evidence) => evidence,
        Err(unreadable) => {
            return transition(
                old,
                MovePhase::Failed,
                "VerificationError",
                format!("{unreadable}; {AFTER_FAILURE}"),
                now,
            );
        }
    };
    if !evidence.passed {
        let differences = migration::differences(&evidence);
        return MoveStatus {
            verification: Some(evidence),
            ..transition(
                old,
                MovePhase::Failed,
                "VerificationFailed",
                format!(
                    "the Cluster differs from the old database: {differences}; {AFTER_FAILURE}"
                ),
                now,
            )
        };
    }
    let downtime = old
        .stopped
        .as_ref()
        .map(|stopped| now.as_second() - stopped.0.as_second());
    let message = format!(
        "on CloudNativePG since {now}: {} tables, {} rows, every row checksummed alike; the application was stopped for {} s; the old StatefulSet is stopped and kept with its claim until spec.database.move is removed",
        evidence.tables,
        evidence.rows,
        downtime.unwrap_or_default()
    );
    MoveStatus {
        verification: Some(evidence),
        switched: Some(Time(now)),
        downtime_seconds: downtime,
        ..transition(old, MovePhase::Switched, "Switched", message, now)
    }
}

/// Why the database cannot be copied now: it is still being filled by a migration or a
/// restore (a copy would take half of it, and their Jobs write into the old database).
pub fn busy(system: &HealthSystem) -> Option<&'static str> {
    let status = system.status.as_ref();
    let migrating = system.spec.migration.is_some()
        && status
            .and_then(|s| s.migration.as_ref())
            .is_none_or(|m| m.phase != MigrationPhase::CutOver);
    if migrating {
        Some(
            "a migration into this system is under way (spec.migration): move it after its cutover",
        )
    } else if crate::resources::restore_pods::pending(system) {
        Some(
            "the database is still being restored from a backup (spec.database.bootstrap): move it once restored",
        )
    } else {
        None
    }
}

/// The Cluster's readiness and the state of the Job the move's phase waits for.
pub async fn observe(
    client: &Client,
    stores: &Stores,
    config: &Config,
    system: &HealthSystem,
    engine: Engine,
) -> Result<Observed> {
    let namespace = labels::namespace(system);
    let cluster_ready = stores
        .get(
            &cnpg::cluster_resource().api_version,
            "Cluster",
            Some(&namespace),
            cnpg::CLUSTER,
        )
        .is_some_and(|live| ClusterState::read(&live.data).primary_ready());
    let id = crate::resources::migration::incarnation(system);
    let asked = system.spec.database.engine_move.as_ref().map(|m| m.attempt);
    let name = match jobs::status(system) {
        Some(s) if Some(s.attempt) == asked && s.phase == MovePhase::Copying => {
            Some(jobs::copy_job_name(&id, s.attempt))
        }
        Some(s) if Some(s.attempt) == asked && s.phase == MovePhase::Verifying => {
            Some(jobs::verify_job_name(&id, s.attempt))
        }
        _ => None,
    };
    let job = match name {
        Some(name) => migration::job(client, stores, &namespace, &name).await?,
        None => JobState::Absent,
    };
    let refusal = if let Some(why) = busy(system) {
        Some(why.to_string())
    } else if stores
        .kind(&cnpg::cluster_resource().api_version, "Cluster")
        .is_none()
    {
        Some("CloudNativePG's API (postgresql.cnpg.io/v1 Cluster) is not served here: install CloudNativePG, then restart the operator".to_string())
    } else if !config.database.cloud_native_pg.api_server_named() {
        Some("database.cloudNativePG.apiServer is not configured: a Cluster's instances could not reach the API server".to_string())
    } else {
        None
    };
    Ok(Observed {
        engine,
        refusal,
        cluster_ready,
        job,
    })
}

#[cfg(test)]
mod tests;
