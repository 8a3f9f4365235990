//! Restore drills of each system's backups (`resources::drill`): the evidence of a finished
//! drill Job (its pod's termination message) goes into status.backup.lastDrill once, with an
//! event; a new drill starts when one is due (`backup.drills.intervalHours` after the last,
//! once a backup exists, or when the annotation sdc.gov.rs/drill-requested has a value no drill
//! answered yet), at most `maxConcurrent` at a time across the fleet.

use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{DrillStatus, HealthSystem};
use crate::backup::drill::{Evidence, Outcome};
use crate::controller::context::Context;
use crate::controller::runtime::job_state::{condition as condition_true, finished};
use crate::error::{AtStep, Result, Step};
use crate::resources::drill::{self, COMPONENT_NAME, REQUEST};
use crate::resources::labels::{self, COMPONENT};

/// How often a system whose drill waits for a free slot asks again.
pub const SLOT_POLL: Duration = Duration::from_secs(30);

/// What the drills of one system, of one line, come to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The newest drill's evidence (recorded before, or just now).
    pub last: Option<DrillStatus>,
    /// When the newest drill that passed started.
    pub last_success: Option<Timestamp>,
    /// When to look again: a drill becomes due, or waits for a slot.
    pub wake: Option<Duration>,
}

fn created(job: &DynamicObject) -> Option<Timestamp> {
    job.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The status of a finished drill Job: its pod's evidence, or why there is none.
pub(super) fn recorded(job: &DynamicObject, message: Option<&str>) -> DrillStatus {
    let name = job.name_any();
    let request = job.annotations().get(REQUEST).cloned();
    let started = created(job).unwrap_or_else(Timestamp::now);
    match message.and_then(|m| serde_json::from_str::<Evidence>(m).ok()) {
        Some(evidence) => DrillStatus {
            time: Time(evidence.started_at),
            backup: evidence.backup,
            duration_seconds: i64::try_from(evidence.duration_seconds).unwrap_or(i64::MAX),
            tables: i64::try_from(evidence.tables).unwrap_or(i64::MAX),
            rows: evidence.rows,
            result: match evidence.result {
                Outcome::Passed => "Passed".into(),
                Outcome::Failed => "Failed".into(),
            },
            reason: evidence.reason,
            message: evidence.message,
            job: name,
            request,
        },
        None => {
            let why = condition_true(job, "Failed")
                .and_then(|c| c["message"].as_str().map(String::from))
                .unwrap_or_else(|| "the drill left no evidence".into());
            DrillStatus {
                time: Time(started),
                backup: String::new(),
                duration_seconds: 0,
                tables: 0,
                rows: 0,
                result: "Failed".into(),
                reason: Some("DrillJobFailed".into()),
                message: format!("drill Job {name}: {why}"),
                job: name,
                request,
            }
        }
    }
}

/// Which of a system's two backup lines a drill proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// The encrypted logical dumps.
    Logical,
    /// The WAL archive (its latest base backup and the WAL after it).
    Physical,
}

/// Records a drill's evidence in `observed` (its last, and its last success when it passed),
/// with an event on the system.
pub(super) async fn record(
    system: &HealthSystem,
    ctx: &Context,
    observed: &mut Observed,
    status: DrillStatus,
    line: Line,
) {
    let passed = status.result == "Passed";
    if passed {
        observed.last_success = Some(status.time.0);
    }
    let (reason, action) = match (line, passed) {
        (Line::Logical, true) => ("BackupDrillPassed", "RestoreDrill"),
        (Line::Logical, false) => ("BackupDrillFailed", "RestoreDrill"),
        (Line::Physical, true) => ("PhysicalDrillPassed", "PhysicalDrill"),
        (Line::Physical, false) => ("PhysicalDrillFailed", "PhysicalDrill"),
    };
    let type_ = if passed {
        EventType::Normal
    } else {
        EventType::Warning
    };
    info!(
        job = status.job,
        result = status.result,
        ?line,
        "drill recorded"
    );
    crate::controller::runtime::events::publish(
        &ctx.recorder,
        &system.object_ref(&()),
        type_,
        reason.into(),
        status.message.clone(),
        action,
    )
    .await;
    observed.last = Some(status);
}

/// Whether a drill starts now (`Ok`): once there is a backup to prove, when asked (a
/// request not answered yet) or `interval` after the last drill started. Otherwise when to
/// look again, if time alone will make one due. A request before any backup waits for it:
/// a drill of nothing would only fail.
pub(super) fn due(
    has_backup: bool,
    requested: bool,
    last: Option<Timestamp>,
    interval: SignedDuration,
    now: Timestamp,
) -> std::result::Result<(), Option<Duration>> {
    if !has_backup {
        return Err(None);
    }
    let next = last.map(|t| t + interval);
    if requested || next.is_none_or(|next| now >= next) {
        return Ok(());
    }
    Err(next.and_then(|n| Duration::try_from(n.duration_since(now)).ok()))
}

/// Records the newest finished drill of `system`, and starts one when due. `has_backup`:
/// a backup of this system has succeeded.
pub async fn drill(
    system: &HealthSystem,
    ctx: &Context,
    has_backup: bool,
    now: Timestamp,
) -> Result<Observed> {
    let old = system.status.as_ref().and_then(|s| s.backup.as_ref());
    let mut observed = Observed {
        last: old.and_then(|b| b.last_drill.clone()),
        last_success: old
            .and_then(|b| b.last_successful_drill_time.as_ref())
            .map(|t| t.0),
        wake: None,
    };
    let config = &ctx.config.backup;
    let Some(store) = config.drill_store() else {
        return Ok(observed);
    };
    let namespace = &config.drills.namespace;
    let name = labels::name(system);
    let mine: Vec<_> = ctx
        .stores
        .of_system("batch/v1", "Job", name)
        .into_iter()
        .filter(|j| j.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|j| j.labels().get(COMPONENT).map(String::as_str) == Some(COMPONENT_NAME))
        .collect();

    let newest_finished = mine
        .iter()
        .filter(|j| finished(j))
        .max_by_key(|j| created(j));
    let known = observed.last.as_ref().map(|d| d.job.as_str());
    if let Some(job) = newest_finished
        && known != Some(job.name_any().as_str())
        && observed
            .last
            .as_ref()
            .is_none_or(|d| created(job) > Some(d.time.0))
    {
        let pod = crate::controller::runtime::job_state::newest_pod(
            &ctx.client,
            namespace,
            &job.name_any(),
        )
        .await
        .at(Step::Drill, format!("Job {}", job.name_any()))?;
        let status = recorded(
            job,
            crate::controller::runtime::job_state::termination_message(pod.as_ref()).as_deref(),
        );
        record(system, ctx, &mut observed, status, Line::Logical).await;
    }

    if mine.iter().any(|j| !finished(j)) {
        return Ok(observed);
    }
    let requested = system.annotations().get(REQUEST);
    let answered = |request: &String| {
        mine.iter()
            .any(|j| j.annotations().get(REQUEST) == Some(request))
    };
    let request = requested.filter(|r| !answered(r));
    let interval = SignedDuration::from_hours(i64::from(config.drills.interval_hours));
    if let Err(wake) = due(
        has_backup,
        request.is_some(),
        observed.last.as_ref().map(|d| d.time.0),
        interval,
        now,
    ) {
        observed.wake = wake;
        return Ok(observed);
    }

    // The fleet's drills, for the limit on how many run at once: a scan of every Job, but only
    // when this system's drill is due, not on every reconcile.
    let all: Vec<_> = ctx
        .stores
        .kind("batch/v1", "Job")
        .map(|(_, cache)| cache.all())
        .unwrap_or_default()
        .into_iter()
        .filter(|j| j.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|j| j.labels().get(COMPONENT).map(String::as_str) == Some(COMPONENT_NAME))
        .collect();
    let mut started = ctx.drill_slots.started.lock().await;
    let visible: Vec<String> = all.iter().map(|j| j.name_any()).collect();
    started.retain(|(job, at)| !visible.contains(job) && now.duration_since(*at).as_secs() < 120);
    let running = all.iter().filter(|j| !finished(j)).count() + started.len();
    if running >= config.drills.max_concurrent {
        observed.wake = Some(SLOT_POLL);
        return Ok(observed);
    }
    let job_name = drill::job_name(system, now);
    let job = drill::job(
        system,
        &ctx.config,
        store,
        &job_name,
        request.map(String::as_str),
    );
    if let Err(e) = start(ctx, &job).await {
        warn!(error = %e, namespace, "restore drill not started");
        observed.wake = Some(SLOT_POLL);
        return Ok(observed);
    }
    info!(job = job_name, "restore drill started");
    started.push((job_name, now));
    Ok(observed)
}

/// Applies the drill pods' policy (once per process) and creates the Job.
async fn start(ctx: &Context, job: &Job) -> Result<()> {
    let config = &ctx.config.backup;
    let namespace = &config.drills.namespace;
    if !ctx.drill_slots.policy_applied.load(Ordering::Relaxed)
        && let Some(store) = &config.object_store
    {
        crate::controller::apply::apply_one(
            &ctx.client,
            &drill::policy(&ctx.config, store),
            Step::Drill,
        )
        .await?;
        ctx.drill_slots
            .policy_applied
            .store(true, Ordering::Relaxed);
    }
    Api::<Job>::namespaced(ctx.client.clone(), namespace)
        .create(&PostParams::default(), job)
        .await
        .at(Step::Drill, format!("Job {}", job.name_any()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(message_failed: Option<&str>) -> DynamicObject {
        let mut conditions = vec![];
        if let Some(m) = message_failed {
            conditions
                .push(serde_json::json!({ "type": "Failed", "status": "True", "message": m }));
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": "drill-a-20261129070000", "namespace": "healthsystem-restore",
                "creationTimestamp": "2026-11-29T07:00:00Z",
                "annotations": { REQUEST: "r1" }
            },
            "status": { "conditions": conditions }
        }))
        .unwrap()
    }

    #[test]
    fn a_drill_is_due_once_there_is_a_backup_when_asked_or_after_its_interval() {
        let now: Timestamp = "2026-12-08T03:00:00Z".parse().unwrap();
        let week = SignedDuration::from_hours(168);
        let hours_ago = |h: i64| Some(now - SignedDuration::from_hours(h));
        assert_eq!(
            due(false, true, None, week, now),
            Err(None),
            "asked, nothing to prove"
        );
        assert_eq!(due(false, false, None, week, now), Err(None));
        assert_eq!(
            due(true, false, None, week, now),
            Ok(()),
            "the first, at once"
        );
        assert_eq!(due(true, true, hours_ago(1), week, now), Ok(()), "asked");
        assert_eq!(due(true, false, hours_ago(168), week, now), Ok(()));
        assert_eq!(
            due(true, false, hours_ago(160), week, now),
            Err(Some(Duration::from_secs(8 * 3600)))
        );
    }

    #[test]
    fn a_drills_evidence_becomes_its_status_and_a_drill_without_evidence_fails() {
        let evidence = r#"{"backup":"20261129T065900Z","startedAt":"2026-11-29T07:00:05Z",
            "durationSeconds":42,"tables":2,"rows":3070,"result":"Failed",
            "reason":"ChecksumMismatch","message":"changed"}"#;
        let status = recorded(&job(Some("BackoffLimitExceeded")), Some(evidence));
        assert_eq!(status.result, "Failed");
        assert_eq!(status.reason.as_deref(), Some("ChecksumMismatch"));
        assert_eq!(
            (status.tables, status.rows, status.duration_seconds),
            (2, 3070, 42)
        );
        assert_eq!(status.job, "drill-a-20261129070000");
        assert_eq!(status.request.as_deref(), Some("r1"));
        assert_eq!(status.time.0.to_string(), "2026-11-29T07:00:05Z");

        let none = recorded(
            &job(Some("Job was active longer than specified deadline")),
            None,
        );
        assert_eq!(none.result, "Failed");
        assert_eq!(none.reason.as_deref(), Some("DrillJobFailed"));
        assert!(none.message.contains("deadline"), "{none:?}");
        let garbage = recorded(&job(None), Some("not json"));
        assert_eq!(garbage.reason.as_deref(), Some("DrillJobFailed"));
    }
}
