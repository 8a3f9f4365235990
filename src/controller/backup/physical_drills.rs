//! Physical drills of each archiving system (`resources::physical_drill`), one step per
//! reconcile: when one is due (as the logical drills: `backup.drills.intervalHours` after the
//! last, or a new value of the annotation sdc.gov.rs/drill-requested) and a slot of the
//! fleet's drills is free, the drill's login, ObjectStore and Cluster are made in the restore
//! namespace; once CloudNativePG has recovered it, the check Job runs; its evidence goes
//! into status.backup.lastPhysicalDrill, and the drill's Cluster, ObjectStore and login are
//! deleted. A recovery that fails, or a drill past its deadline, ends it with that reason.
//!
//! These are the only Clusters the operator ever deletes: throwaway copies in the platform's
//! restore namespace, never a system's own (its Role allows it there only).

use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tracing::{info, warn};

use super::drills::{Line, Observed, SLOT_POLL, due, record, recorded};
use crate::api::{ArchiveStatus, DrillStatus, HealthSystem};
use crate::controller::context::Context;
use crate::controller::database::credentials::password;
use crate::controller::runtime::job_state::{finished, newest_pod, termination_message};
use crate::error::{AtStep, Result, Step};
use crate::resources::archive::object_store_resource;
use crate::resources::cnpg::cluster_resource;
use crate::resources::drill::{self as logical, REQUEST};
use crate::resources::labels::{self, COMPONENT};
use crate::resources::physical_drill::{self as physical, COMPONENT_NAME};

/// How often a running physical drill is looked at (its Cluster's recovery and the check's
/// pod wake nothing here between the watch events).
const POLL: Duration = Duration::from_secs(15);

fn created(object: &DynamicObject) -> Option<Timestamp> {
    object.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// When the drill of `cluster` started: its annotation (the cache keeps no creation time of
/// what the operator makes).
fn started(cluster: &DynamicObject) -> Option<Timestamp> {
    cluster
        .annotations()
        .get(physical::STARTED)
        .and_then(|t| t.parse().ok())
        .or_else(|| created(cluster))
}

/// The physical drills' objects among `objects` (a system's, of one kind, in any namespace),
/// copied out of the cache only once chosen: this runs on every reconcile of an archiving
/// system, whose backup Jobs are among them.
fn in_restore_namespace<'a>(
    objects: Vec<std::sync::Arc<crate::controller::cache::compact::Live>>,
    namespace: &'a str,
) -> impl Iterator<Item = DynamicObject> + 'a {
    objects
        .into_iter()
        .filter(move |live| live.object.namespace().as_deref() == Some(namespace))
        .filter(|live| {
            live.object.labels().get(COMPONENT).map(String::as_str) == Some(COMPONENT_NAME)
        })
        .map(|live| live.object.clone())
}

/// Whether CloudNativePG has the recovered instance running.
fn recovered(cluster: &DynamicObject) -> bool {
    let status = &cluster.data["status"];
    status["readyInstances"].as_i64().unwrap_or(0) >= 1
        && status["phase"].as_str() == Some("Cluster in healthy state")
}

/// A drill that ended without a check: its Cluster's evidence.
fn ended(cluster: &DynamicObject, now: Timestamp, reason: &str, message: String) -> DrillStatus {
    let started = started(cluster).unwrap_or(now);
    DrillStatus {
        time: Time(started),
        backup: physical::EVIDENCE_BACKUP.into(),
        duration_seconds: now.duration_since(started).as_secs(),
        tables: 0,
        rows: 0,
        result: "Failed".into(),
        reason: Some(reason.into()),
        message,
        job: cluster.name_any(),
        request: cluster.annotations().get(REQUEST).cloned(),
    }
}

/// Records the newest physical drill of `system`, moves a running one on, and starts one when
/// due. `archive`: the system's archive in status (drills start once it holds a base backup).
pub async fn drill(
    system: &HealthSystem,
    ctx: &Context,
    archive: Option<&ArchiveStatus>,
    now: Timestamp,
) -> Result<Observed> {
    let old = system.status.as_ref().and_then(|s| s.backup.as_ref());
    let mut observed = Observed {
        last: old.and_then(|b| b.last_physical_drill.clone()),
        last_success: old
            .and_then(|b| b.last_successful_physical_drill_time.as_ref())
            .map(|t| t.0),
        wake: None,
    };
    let config = &ctx.config.backup;
    let (Some(store), Some(_), Some(archive)) =
        (config.drill_store(), config.archive_store(), archive)
    else {
        return Ok(observed);
    };
    if ctx
        .stores
        .kind("postgresql.cnpg.io/v1", "Cluster")
        .is_none()
    {
        return Ok(observed);
    }
    let namespace = config.drills.namespace.as_str();
    let name = labels::name(system);
    let clusters: Vec<_> = in_restore_namespace(
        ctx.stores
            .of_system("postgresql.cnpg.io/v1", "Cluster", name),
        namespace,
    )
    .collect();
    let checks: Vec<_> =
        in_restore_namespace(ctx.stores.of_system("batch/v1", "Job", name), namespace).collect();

    // 1. The newest finished check, once.
    let known = observed.last.as_ref().map(|d| d.job.clone());
    if let Some(job) = checks
        .iter()
        .filter(|j| finished(j))
        .max_by_key(|j| created(j))
        && known.as_deref() != Some(job.name_any().as_str())
        && observed
            .last
            .as_ref()
            .is_none_or(|d| created(job) > Some(d.time.0))
    {
        let pod = newest_pod(&ctx.client, namespace, &job.name_any())
            .await
            .at(Step::Drill, format!("Job {}", job.name_any()))?;
        let status = recorded(job, termination_message(pod.as_ref()).as_deref());
        record(system, ctx, &mut observed, status, Line::Physical).await;
    }

    // 2. A running drill, one step on.
    if let Some(cluster) = clusters.iter().max_by_key(|c| started(c)) {
        let drill = cluster.name_any();
        let started = started(cluster).unwrap_or(now);
        let check = checks
            .iter()
            .find(|j| j.name_any() == physical::check_name(&drill));
        observed.wake = Some(POLL);
        match check {
            Some(job) if finished(job) => remove(ctx, namespace, &drill).await?,
            Some(_) => {}
            None => {
                let deadline = SignedDuration::from_secs(i64::from(config.drills.deadline_seconds));
                if now > started + deadline {
                    let message = format!(
                        "the drill's Cluster {drill} did not recover within {}s",
                        config.drills.deadline_seconds
                    );
                    record(
                        system,
                        ctx,
                        &mut observed,
                        ended(cluster, now, "Deadline", message),
                        Line::Physical,
                    )
                    .await;
                    remove(ctx, namespace, &drill).await?;
                } else if let Some(why) = recovery_failed(ctx, namespace, &drill).await? {
                    record(
                        system,
                        ctx,
                        &mut observed,
                        ended(cluster, now, "RecoveryFailed", why),
                        Line::Physical,
                    )
                    .await;
                    remove(ctx, namespace, &drill).await?;
                } else if recovered(cluster) {
                    let job = physical::check_job(
                        system,
                        &ctx.config,
                        store,
                        &drill,
                        started,
                        cluster.annotations().get(REQUEST).map(String::as_str),
                    );
                    create(
                        Api::<Job>::namespaced(ctx.client.clone(), namespace),
                        &job,
                        &format!("Job {}", job.name_any()),
                    )
                    .await?;
                    info!(
                        job = job.name_any(),
                        "physical drill recovered; checking it"
                    );
                }
            }
        }
        return Ok(observed);
    }

    // 3. A new drill when one is due.
    let requested = system.annotations().get(REQUEST);
    let answered = |request: &String| {
        checks
            .iter()
            .any(|j| j.annotations().get(REQUEST) == Some(request))
            || observed.last.as_ref().and_then(|d| d.request.as_ref()) == Some(request)
    };
    let request = requested.filter(|r| !answered(r));
    if let Err(wake) = due(
        archive.last_base_backup_time.is_some(),
        request.is_some(),
        observed.last.as_ref().map(|d| d.time.0),
        SignedDuration::from_hours(i64::from(config.drills.interval_hours)),
        now,
    ) {
        observed.wake = wake;
        return Ok(observed);
    }
    let mut started = ctx.drill_slots.started.lock().await;
    if running(ctx, namespace, &mut started, now) >= config.drills.max_concurrent {
        observed.wake = Some(SLOT_POLL);
        return Ok(observed);
    }
    let drill = physical::name(system, now);
    if let Err(e) = start(system, ctx, store, &drill, request.map(String::as_str), now).await {
        warn!(error = %e, namespace, "physical drill not started");
        observed.wake = Some(SLOT_POLL);
        return Ok(observed);
    }
    info!(cluster = drill, "physical drill started");
    started.push((drill, now));
    observed.wake = Some(POLL);
    Ok(observed)
}

/// The fleet's drills running, logical and physical, with those started and not yet seen.
fn running(
    ctx: &Context,
    namespace: &str,
    started: &mut Vec<(String, Timestamp)>,
    now: Timestamp,
) -> usize {
    let of_kind = |api_version: &str, kind: &str, component: &str| -> Vec<DynamicObject> {
        ctx.stores
            .kind(api_version, kind)
            .map(|(_, cache)| cache.all())
            .unwrap_or_default()
            .into_iter()
            .map(|live| live.object.clone())
            .filter(|o| o.namespace().as_deref() == Some(namespace))
            .filter(|o| o.labels().get(COMPONENT).map(String::as_str) == Some(component))
            .collect()
    };
    let jobs = of_kind("batch/v1", "Job", logical::COMPONENT_NAME);
    let clusters = of_kind("postgresql.cnpg.io/v1", "Cluster", COMPONENT_NAME);
    let visible: Vec<String> = jobs
        .iter()
        .chain(&clusters)
        .map(ResourceExt::name_any)
        .collect();
    started.retain(|(name, at)| !visible.contains(name) && now.duration_since(*at).as_secs() < 120);
    jobs.iter().filter(|j| !finished(j)).count() + clusters.len() + started.len()
}

/// Why CloudNativePG's recovery of the drill failed, if it did: its recovery pod failed (the
/// base backup or the WAL to its consistency point could not be restored). The last lines of
/// its log say why.
async fn recovery_failed(ctx: &Context, namespace: &str, drill: &str) -> Result<Option<String>> {
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), namespace);
    let job = physical::recovery_job_name(drill);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .at(Step::Drill, format!("pods of Job {job}"))?;
    let Some(pod) = list
        .items
        .iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
    else {
        return Ok(None);
    };
    let tail = pods
        .logs(
            &pod.name_any(),
            &LogParams {
                container: Some("full-recovery".into()),
                tail_lines: Some(5),
                ..LogParams::default()
            },
        )
        .await
        .map(|log| last_messages(&log))
        .unwrap_or_default();
    Ok(Some(format!(
        "CloudNativePG could not recover the archive's latest base backup (its recovery pod {} failed){}",
        pod.name_any(),
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        }
    )))
}

/// The messages of the last JSON log lines of CloudNativePG's instance manager, or the lines.
fn last_messages(log: &str) -> String {
    let line = |l: &str| match serde_json::from_str::<Value>(l) {
        Ok(v) => {
            let message = v["msg"].as_str().unwrap_or_default();
            match v["error"].as_str() {
                Some(error) => format!("{message}: {error}"),
                None => message.to_string(),
            }
        }
        Err(_) => l.to_string(),
    };
    let text: Vec<String> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(line)
        .collect();
    let joined = text.join("; ");
    joined.chars().take(600).collect()
}

/// Makes the drill's policy (once per process), login, ObjectStore and Cluster.
async fn start(
    system: &HealthSystem,
    ctx: &Context,
    store: &crate::config::ObjectStore,
    drill: &str,
    request: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    let config = &ctx.config;
    let namespace = &config.backup.drills.namespace;
    if !ctx
        .drill_slots
        .physical_policy_applied
        .load(Ordering::Relaxed)
    {
        crate::controller::apply::apply_one(
            &ctx.client,
            &physical::policy(config, store),
            Step::Drill,
        )
        .await?;
        ctx.drill_slots
            .physical_policy_applied
            .store(true, Ordering::Relaxed);
    }
    let secret = physical::login_secret(system, config, drill, &password()?);
    create(
        Api::<Secret>::namespaced(ctx.client.clone(), namespace),
        &secret,
        &format!("Secret {}", secret.name_any()),
    )
    .await?;
    create(
        Api::<DynamicObject>::namespaced_with(
            ctx.client.clone(),
            namespace,
            &object_store_resource(),
        ),
        &physical::object_store(system, config, store, drill),
        &format!("ObjectStore {drill}"),
    )
    .await?;
    create(
        Api::<DynamicObject>::namespaced_with(ctx.client.clone(), namespace, &cluster_resource()),
        &physical::cluster(system, config, drill, request, now),
        &format!("Cluster {drill}"),
    )
    .await
}

/// Creates `object`; one that exists already (an interrupted start) is left as it is.
async fn create<K>(api: Api<K>, object: &K, what: &str) -> Result<()>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e).at(Step::Drill, what.to_string()),
    }
}

/// Deletes the drill's Cluster (its volume goes with it: a throwaway copy), ObjectStore and
/// login. The check Job stays as the evidence until its TTL.
async fn remove(ctx: &Context, namespace: &str, drill: &str) -> Result<()> {
    let gone = |result: kube::Result<_>, what: String| match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e).at(Step::Drill, what),
    };
    let client = &ctx.client;
    let params = DeleteParams::background();
    gone(
        Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &cluster_resource())
            .delete(drill, &params)
            .await
            .map(|_| ()),
        format!("Cluster {drill}"),
    )?;
    gone(
        Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &object_store_resource())
            .delete(drill, &params)
            .await
            .map(|_| ()),
        format!("ObjectStore {drill}"),
    )?;
    let login = physical::login_secret_name(drill);
    gone(
        Api::<Secret>::namespaced(client.clone(), namespace)
            .delete(&login, &params)
            .await
            .map(|_| ()),
        format!("Secret {login}"),
    )?;
    info!(cluster = drill, "physical drill removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_recovery_that_ended_is_evidence_and_cloudnativepgs_log_is_read_as_messages() {
        let cluster: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {
                "name": "pdrill-a-2612080300", "namespace": "healthsystem-restore",
                "creationTimestamp": "2026-12-08T03:00:00Z",
                "annotations": { REQUEST: "r2" }
            },
            "status": { "phase": "Setting up primary", "readyInstances": 0 }
        }))
        .unwrap();
        assert!(!recovered(&cluster));
        let now: Timestamp = "2026-12-08T03:02:30Z".parse().unwrap();
        let status = ended(&cluster, now, "RecoveryFailed", "no".into());
        assert_eq!(status.result, "Failed");
        assert_eq!(status.duration_seconds, 150);
        assert_eq!(status.request.as_deref(), Some("r2"));
        assert_eq!(status.job, "pdrill-a-2612080300");

        let mut healthy = cluster.clone();
        healthy.data["status"] =
            json!({ "phase": "Cluster in healthy state", "readyInstances": 1 });
        assert!(recovered(&healthy));

        // As the watch cache holds a Cluster the operator made: without its creation time
        // (dropped from applied kinds), its start in an annotation.
        let config = crate::config::Config::default();
        let system: HealthSystem = crate::api::validation::validate(&json!({
            "apiVersion": "sdc.gov.rs/v1alpha1", "kind": "HealthSystem",
            "metadata": { "name": "a" },
            "spec": {
                "institution": { "displayName": "A", "registryId": "07151950", "ownership": "Private" },
                "database": { "version": "17", "storage": "10Gi" }
            }
        }))
        .unwrap();
        let start: Timestamp = "2026-12-08T03:00:00Z".parse().unwrap();
        let cached = physical::cluster(&system, &config, "pdrill-a-2612080300", None, start);
        assert!(cached.metadata.creation_timestamp.is_none());
        let late = ended(&cached, now, "Deadline", "late".into());
        assert_eq!((late.time.0, late.duration_seconds), (start, 150));

        let log = "{\"level\":\"error\",\"msg\":\"Error while restoring a backup\",\"error\":\"exit status 1\"}\nplain line\n";
        assert_eq!(
            last_messages(log),
            "Error while restoring a backup: exit status 1; plain line"
        );
    }
}
