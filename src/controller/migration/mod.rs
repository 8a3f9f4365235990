//! Drives spec.migration through its phases: Pending -> Importing -> Verifying ->
//! AwaitingCutover -> CutOver, or Failed with a reason. `observe` reads the migration Jobs
//! (from the watch store) and their pods' termination messages; `advance` is pure: the old
//! status, what was observed and the time in, the new status out. The Jobs themselves are
//! built from the new status (`resources/migration.rs`), so a phase change and the Job it
//! needs are applied in the same reconcile.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;

use crate::api::{HealthSystem, Migration, MigrationPhase, MigrationStatus, VerificationEvidence};
use crate::controller::cache::kinds::Stores;
use crate::controller::runtime::job_state;
use crate::error::{AtStep, Result, Step as ErrorStep};
use crate::resources::{labels, migration as jobs};

/// How a migration Job stands.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Not created yet (or deleted).
    Absent,
    /// Created, not finished; why its pod waits, when it does (a missing Secret, an image
    /// that cannot be pulled).
    Running(Option<String>),
    /// Finished successfully at that time, with its pod's termination message.
    Succeeded(Timestamp, String),
    /// Failed at that time, with its pod's termination message (or the Job's reason).
    Failed(Timestamp, String),
}

/// What `advance` needs from the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The system's database answers (its StatefulSet has a ready pod).
    pub database_ready: bool,
    /// The Job the current phase waits for (import while importing, the current
    /// verification while verifying); Absent otherwise.
    pub job: JobState,
}

fn transition(
    old: &MigrationStatus,
    phase: MigrationPhase,
    reason: &str,
    message: String,
    now: Timestamp,
) -> MigrationStatus {
    MigrationStatus {
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

fn fresh(attempt: i32, imports: i32, now: Timestamp) -> MigrationStatus {
    MigrationStatus {
        phase: MigrationPhase::Pending,
        attempt,
        reason: "WaitingForDatabase".into(),
        message: "the import starts once the system's database answers".into(),
        last_transition_time: Time(now),
        import_started: None,
        imported: None,
        imports,
        verification_runs: 0,
        first_verified: None,
        verification: None,
        cut_over: None,
        approved_by: None,
    }
}

/// When and for whom `advance` decides.
#[derive(Clone, Debug)]
pub struct Step<'a> {
    /// Now.
    pub now: Timestamp,
    /// How old a passed verification may be when the cutover is approved.
    pub max_age: Duration,
    /// The HealthSystem's incarnation, which its Jobs' names carry (`jobs::incarnation`).
    pub incarnation: &'a str,
}

/// The migration status after one look at the cluster.
pub fn advance(
    spec: Option<&Migration>,
    old: Option<&MigrationStatus>,
    observed: &Observed,
    step: &Step,
) -> Option<MigrationStatus> {
    let (now, id) = (step.now, step.incarnation);
    let Some(spec) = spec else {
        // The record of a cutover stays when spec.migration is removed afterwards.
        return old.filter(|o| o.phase == MigrationPhase::CutOver).cloned();
    };
    let old = match old {
        Some(old) if old.phase == MigrationPhase::CutOver => {
            return Some(if spec.attempt != old.attempt {
                transition(
                    old,
                    MigrationPhase::CutOver,
                    "ReimportRefused",
                    format!(
                        "attempt {} refused: the system is live on the data imported by attempt {}; an import would overwrite it",
                        spec.attempt, old.attempt
                    ),
                    now,
                )
            } else {
                transition(
                    old,
                    MigrationPhase::CutOver,
                    "CutOver",
                    cutover_message(old),
                    now,
                )
            });
        }
        Some(old) if old.attempt == spec.attempt => old.clone(),
        Some(old) => fresh(spec.attempt, old.imports, now),
        None => fresh(spec.attempt, 0, now),
    };
    let attempt = old.attempt;
    let next = match old.phase {
        MigrationPhase::Pending if observed.database_ready => MigrationStatus {
            import_started: Some(Time(now)),
            ..transition(
                &old,
                MigrationPhase::Importing,
                "Importing",
                format!(
                    "Job {} copies {} into the system's database",
                    jobs::import_job_name(id, attempt),
                    spec.source.database
                ),
                now,
            )
        },
        MigrationPhase::Pending => old,
        MigrationPhase::Importing => match &observed.job {
            JobState::Absent => old,
            JobState::Running(waiting) => transition(
                &old,
                MigrationPhase::Importing,
                "Importing",
                running_message(&jobs::import_job_name(id, attempt), waiting),
                now,
            ),
            JobState::Failed(_, message) => transition(
                &old,
                MigrationPhase::Failed,
                "ImportFailed",
                format!("{message}; raise spec.migration.attempt to import again"),
                now,
            ),
            JobState::Succeeded(at, message) => MigrationStatus {
                imported: Some(Time(*at)),
                imports: old.imports + 1,
                verification_runs: 1,
                ..transition(
                    &old,
                    MigrationPhase::Verifying,
                    "Verifying",
                    format!(
                        "{}; Job {} compares source and target",
                        match message.trim() {
                            "" => "imported",
                            summary => summary,
                        },
                        jobs::verify_job_name(id, attempt, 1)
                    ),
                    now,
                )
            },
        },
        MigrationPhase::Verifying => {
            let name = jobs::verify_job_name(id, attempt, old.verification_runs);
            match &observed.job {
                JobState::Absent => old,
                JobState::Running(waiting) => transition(
                    &old,
                    MigrationPhase::Verifying,
                    "Verifying",
                    running_message(&name, waiting),
                    now,
                ),
                JobState::Failed(_, message) => transition(
                    &old,
                    MigrationPhase::Failed,
                    "VerificationError",
                    format!("Job {name}: {message}"),
                    now,
                ),
                JobState::Succeeded(at, message) => verified(&old, spec, message, *at, step),
            }
        }
        MigrationPhase::AwaitingCutover => awaiting(&old, spec, step),
        MigrationPhase::Failed | MigrationPhase::CutOver => old,
    };
    Some(next)
}

/// What a phase waiting for the Job `job` says while it runs.
pub fn running_message(job: &str, waiting: &Option<String>) -> String {
    match waiting {
        Some(why) => format!("Job {job} is waiting: {why}"),
        None => format!("Job {job} is running"),
    }
}

fn cutover_message(status: &MigrationStatus) -> String {
    format!(
        "live since {} on the data of attempt {}, approved by {}",
        status
            .cut_over
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        status.attempt,
        status.approved_by.as_deref().unwrap_or("?")
    )
}

/// A finished verification: its evidence decides between waiting for the cutover (or
/// cutting over, when an approval is waiting for it) and failing with the tables named.
fn verified(
    old: &MigrationStatus,
    spec: &Migration,
    message: &str,
    at: Timestamp,
    step: &Step,
) -> MigrationStatus {
    let now = step.now;
    let evidence = match evidence(message, at) {
        Ok(evidence) => evidence,
        Err(unreadable) => {
            return transition(
                old,
                MigrationPhase::Failed,
                "VerificationError",
                unreadable,
                now,
            );
        }
    };
    if !evidence.passed {
        let differences = differences(&evidence);
        return MigrationStatus {
            verification: Some(evidence),
            ..transition(
                old,
                MigrationPhase::Failed,
                "VerificationFailed",
                format!(
                    "source and target differ: {differences}; if the source changed after the import, stop its writers and raise spec.migration.attempt to import again"
                ),
                now,
            )
        };
    }
    let status = MigrationStatus {
        first_verified: old.first_verified.clone().or(Some(Time(at))),
        ..old.clone()
    };
    let summary = format!(
        "{} tables, {} rows, {} checksummed",
        evidence.tables, evidence.rows, evidence.checksummed
    );
    let status = MigrationStatus {
        verification: Some(evidence),
        ..transition(
            &status,
            MigrationPhase::AwaitingCutover,
            "AwaitingApproval",
            format!(
                "verified at {at}: {summary}; set spec.migration.cutover (approvedBy, approvedAt) to go live"
            ),
            now,
        )
    };
    awaiting(&status, spec, step)
}

/// The report of a verification Job that finished at `at` (`passed` set from its
/// differences), or why it cannot be read.
pub fn evidence(message: &str, at: Timestamp) -> std::result::Result<VerificationEvidence, String> {
    let mut evidence =
        serde_json::from_str::<VerificationEvidence>(message.trim()).map_err(|_| {
            format!(
                "the verification Job's report cannot be read: {}",
                message.trim()
            )
        })?;
    evidence.time = Some(Time(at));
    evidence.passed = evidence.mismatches.is_empty() && evidence.more_mismatches == 0;
    Ok(evidence)
}

/// The tables that differ, for a message: `public.t (row count: source 3 rows, target 2)`.
pub fn differences(evidence: &VerificationEvidence) -> String {
    let tables: Vec<String> = evidence
        .mismatches
        .iter()
        .map(|m| match (m.source_rows, m.target_rows) {
            (Some(s), Some(t)) => format!(
                "{} ({}: source {s} rows, target {t})",
                m.table, m.difference
            ),
            _ => format!("{} ({})", m.table, m.difference),
        })
        .collect();
    let more = match evidence.more_mismatches {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!("{}{more}", tables.join(", "))
}

/// Verified and waiting: cut over when an approval given after the evidence is there and
/// the verification is fresh; verify again first when it is not.
fn awaiting(old: &MigrationStatus, spec: &Migration, step: &Step) -> MigrationStatus {
    let (now, max_age, id) = (step.now, step.max_age, step.incarnation);
    let Some(approval) = &spec.cutover else {
        return old.clone();
    };
    let first = old.first_verified.as_ref().map(|t| t.0);
    if first.is_some_and(|first| approval.approved_at.0 < first) {
        return transition(
            old,
            MigrationPhase::AwaitingCutover,
            "ApprovalPredatesVerification",
            format!(
                "the approval by {} at {} is older than the verification of attempt {} at {}: approve again after reading the evidence",
                approval.approved_by,
                approval.approved_at.0,
                old.attempt,
                first.map(|t| t.to_string()).unwrap_or_default()
            ),
            now,
        );
    }
    let verified_at = old
        .verification
        .as_ref()
        .and_then(|v| v.time.as_ref())
        .map(|t| t.0);
    let age = verified_at.map(|t| Duration::try_from(now.duration_since(t)).unwrap_or_default());
    if age.is_some_and(|age| age <= max_age) {
        let status = MigrationStatus {
            cut_over: Some(Time(now)),
            approved_by: Some(approval.approved_by.clone()),
            ..old.clone()
        };
        let message = cutover_message(&status);
        return transition(&status, MigrationPhase::CutOver, "CutOver", message, now);
    }
    let runs = old.verification_runs + 1;
    MigrationStatus {
        verification_runs: runs,
        ..transition(
            old,
            MigrationPhase::Verifying,
            "Reverifying",
            format!(
                "cutover approved by {}, but the last verification is older than {} s: Job {} verifies again first",
                approval.approved_by,
                max_age.as_secs(),
                jobs::verify_job_name(id, old.attempt, runs)
            ),
            now,
        )
    }
}

/// The state of the Job the current phase waits for: from the watch store, and its pod's
/// termination message or waiting reason from the API (one list, only while a Job runs or
/// the moment it finishes).
pub async fn observe(
    client: &Client,
    stores: &Stores,
    system: &HealthSystem,
    database_ready: bool,
) -> Result<Observed> {
    let status = system.status.as_ref().and_then(|s| s.migration.as_ref());
    let id = jobs::incarnation(system);
    let name = match status.map(|s| (s.phase, s)) {
        Some((MigrationPhase::Importing, s)) if s.attempt == spec_attempt(system) => {
            jobs::import_job_name(&id, s.attempt)
        }
        Some((MigrationPhase::Verifying, s)) if s.attempt == spec_attempt(system) => {
            jobs::verify_job_name(&id, s.attempt, s.verification_runs)
        }
        _ => {
            return Ok(Observed {
                database_ready,
                job: JobState::Absent,
            });
        }
    };
    let namespace = labels::namespace(system);
    Ok(Observed {
        database_ready,
        job: job(client, stores, &namespace, &name).await?,
    })
}

/// How the Job `name` stands: from the watch store, and its pod's termination message or
/// waiting reason from the API (one list, only while the Job runs or the moment it ends).
pub async fn job(
    client: &Client,
    stores: &Stores,
    namespace: &str,
    name: &str,
) -> Result<JobState> {
    let Some(job) = stores.get("batch/v1", "Job", Some(namespace), name) else {
        return Ok(JobState::Absent);
    };
    let finished = |type_: &str| {
        job_state::condition(&job, type_).map(|c| {
            let at = c["lastTransitionTime"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .unwrap_or_else(Timestamp::now);
            let why = c["message"].as_str().unwrap_or_default().to_string();
            (at, why)
        })
    };
    let pod = job_state::newest_pod(client, namespace, name)
        .await
        .at(ErrorStep::Migration, format!("Job {name}"))?;
    Ok(if let Some((at, _)) = finished("Complete") {
        JobState::Succeeded(
            at,
            job_state::termination_message(pod.as_ref()).unwrap_or_default(),
        )
    } else if let Some((at, why)) = finished("Failed") {
        let message = job_state::termination_message(pod.as_ref())
            .filter(|m| !m.trim().is_empty())
            .unwrap_or(why);
        JobState::Failed(at, last_lines(&message))
    } else {
        JobState::Running(pod.as_ref().and_then(job_state::waiting_reason))
    })
}

fn spec_attempt(system: &HealthSystem) -> i32 {
    system.spec.migration.as_ref().map_or(0, |m| m.attempt)
}

/// The last lines of a log used as a message: at most five lines and 1,000 characters.
fn last_lines(message: &str) -> String {
    let lines: Vec<&str> = message.trim().lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    match tail.char_indices().rev().nth(999) {
        Some((cut, _)) => format!("...{}", &tail[cut..]),
        None => tail,
    }
}

#[cfg(test)]
mod tests;
