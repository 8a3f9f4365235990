//! spec.database.bootstrap: once the new database runs, the operator copies its `app` login
//! into the restore namespace, opens the path (`resources::bootstrap`), and starts the restore
//! Job; the Job's evidence becomes status.database.bootstrap (Restored or Failed, for good:
//! a restore never runs twice), and the copied login and the path are removed. Until then
//! the database is not ready (Restoring).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{BootstrapStatus, HealthSystem};
use crate::backup::drill::{Evidence, Outcome};
use crate::controller::context::Context;
use crate::controller::runtime::job_state::{condition as condition_true, finished};
use crate::error::{AtStep, Result, Step};
use crate::resources::labels;
use crate::resources::{bootstrap, cnpg, database};

fn restoring(message: String) -> BootstrapStatus {
    BootstrapStatus {
        phase: "Restoring".into(),
        message,
        ..BootstrapStatus::default()
    }
}

/// The end of a restore from its Job's evidence (its pod's termination message).
pub fn ended(job: &DynamicObject, message: Option<&str>) -> BootstrapStatus {
    let name = job.name_any();
    match message.and_then(|m| serde_json::from_str::<Evidence>(m).ok()) {
        Some(evidence) => BootstrapStatus {
            phase: match evidence.result {
                Outcome::Passed => "Restored".into(),
                Outcome::Failed => "Failed".into(),
            },
            backup: evidence.backup,
            tables: i64::try_from(evidence.tables).unwrap_or(i64::MAX),
            rows: evidence.rows,
            reason: evidence.reason,
            message: evidence.message,
            job: name,
        },
        None => BootstrapStatus {
            phase: "Failed".into(),
            reason: Some("RestoreJobFailed".into()),
            message: condition_true(job, "Failed")
                .and_then(|c| c["message"].as_str().map(String::from))
                .unwrap_or_else(|| "the restore Job left no evidence".into()),
            job: name,
            ..BootstrapStatus::default()
        },
    }
}

/// Where the bootstrap of `system` stands, moving it on. `database_ready`: the new database
/// accepts logins.
pub async fn bootstrap(
    system: &HealthSystem,
    ctx: &Context,
    database_ready: bool,
) -> Result<Option<BootstrapStatus>> {
    let Some(source) = bootstrap::source(system) else {
        return Ok(None);
    };
    let old = system
        .status
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .and_then(|d| d.bootstrap.clone());
    if !bootstrap::pending(system) {
        return Ok(old);
    }
    let config = &ctx.config.backup;
    let Some(store) = &config.object_store else {
        return Ok(Some(BootstrapStatus {
            phase: "Failed".into(),
            reason: Some("NoObjectStore".into()),
            message: "the operator has no object store configured (backup.objectStore)".into(),
            ..BootstrapStatus::default()
        }));
    };
    let namespace = &config.drills.namespace;
    let name = bootstrap::name(system);
    let job = ctx
        .stores
        .get("batch/v1", "Job", Some(namespace), &name)
        .filter(|j| {
            j.labels().get(labels::HEALTHSYSTEM).map(String::as_str) == Some(labels::name(system))
        });
    if let Some(job) = job {
        if !finished(&job) {
            return Ok(Some(restoring(format!(
                "restoring backup {} of {} (Job {namespace}/{name})",
                source.backup, source.namespace
            ))));
        }
        let pod = crate::controller::runtime::job_state::newest_pod(&ctx.client, namespace, &name)
            .await
            .at(Step::Bootstrap, format!("Job {name}"))?;
        let status = ended(
            &job,
            crate::controller::runtime::job_state::termination_message(pod.as_ref()).as_deref(),
        );
        info!(
            phase = status.phase,
            backup = status.backup,
            "bootstrap ended"
        );
        remove_path(ctx, namespace, &name).await;
        let (type_, reason) = if status.phase == "Restored" {
            (EventType::Normal, "BootstrapRestored")
        } else {
            (EventType::Warning, "BootstrapFailed")
        };
        crate::controller::runtime::events::publish(
            &ctx.recorder,
            &system.object_ref(&()),
            type_,
            reason.into(),
            status.message.clone(),
            "Bootstrap",
        )
        .await;
        return Ok(Some(status));
    }
    if !database_ready {
        return Ok(Some(restoring(
            "waiting for the new database to start before restoring into it".into(),
        )));
    }
    if !start(system, ctx, store, source).await? {
        return Ok(Some(restoring(format!(
            "waiting for the Cluster's CA certificate (Secret {}) before restoring into it",
            cnpg::CA_SECRET
        ))));
    }
    Ok(Some(restoring(format!(
        "restore of backup {} of {} started (Job {namespace}/{name})",
        source.backup, source.namespace
    ))))
}

/// Copies the new database's login, opens the restore pod's path, creates the Job; false
/// while a Cluster's CA certificate, which the restore verifies the server with, is not there.
async fn start(
    system: &HealthSystem,
    ctx: &Context,
    store: &crate::config::ObjectStore,
    source: &crate::api::BackupSource,
) -> Result<bool> {
    let namespace = &ctx.config.backup.drills.namespace;
    // The login is read once, here, by name (the operator keeps no Secret value), and copied.
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &labels::namespace(system));
    let login = secrets
        .get_opt(database::SECRET)
        .await
        .at(Step::Bootstrap, format!("Secret {}", database::SECRET))?
        .and_then(|s| s.data)
        .unwrap_or_default();
    let mut data: BTreeMap<_, _> = login
        .into_iter()
        .filter(|(k, _)| ["username", "database", database::PASSWORD_KEY].contains(&k.as_str()))
        .collect();
    if crate::resources::engine(system, &ctx.config) == crate::api::Engine::CloudNativePg {
        // The restore verifies the server: the Cluster's CA certificate (never its key).
        let ca = secrets
            .get_opt(cnpg::CA_SECRET)
            .await
            .at(Step::Bootstrap, format!("Secret {}", cnpg::CA_SECRET))?
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove("ca.crt"));
        let Some(ca) = ca else {
            return Ok(false);
        };
        data.insert("ca.crt".into(), ca);
    }
    let copy = bootstrap::login_secret(system, &ctx.config, data);
    crate::controller::apply::apply_one(&ctx.client, &copy, Step::Bootstrap).await?;
    crate::controller::apply::apply_one(
        &ctx.client,
        &bootstrap::policy(system, &ctx.config, store),
        Step::Bootstrap,
    )
    .await?;
    let job = bootstrap::job(system, &ctx.config, store, source);
    match Api::<Job>::namespaced(ctx.client.clone(), namespace)
        .create(&PostParams::default(), &job)
        .await
    {
        Ok(_) => {
            info!(namespace, "bootstrap restore started");
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(true),
        Err(e) => Err(e).at(Step::Bootstrap, format!("Job {}", bootstrap::name(system))),
    }
}

/// Removes the copied login and the restore pod's policy (the Job stays as the record).
async fn remove_path(ctx: &Context, namespace: &str, name: &str) {
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), namespace);
    let policies = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), namespace);
    for result in [
        secrets
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ()),
        policies
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ()),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => warn!(error = %e, name, "cannot remove the bootstrap's login or policy"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn job(failed: Option<&str>) -> DynamicObject {
        let conditions: Vec<Value> = failed
            .map(|m| serde_json::json!({ "type": "Failed", "status": "True", "message": m }))
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": { "name": "bootstrap-lab-new", "namespace": "healthsystem-restore" },
            "status": { "conditions": conditions }
        }))
        .unwrap()
    }

    #[test]
    fn a_restore_ends_restored_or_failed_from_its_evidence() {
        let passed = r#"{"backup":"20261129T065900Z","startedAt":"2026-11-29T07:00:05Z",
            "durationSeconds":42,"tables":1,"rows":4000,"result":"Passed","message":"ok"}"#;
        let status = ended(&job(None), Some(passed));
        assert_eq!(status.phase, "Restored");
        assert_eq!((status.tables, status.rows), (1, 4000));
        assert_eq!(status.backup, "20261129T065900Z");
        let refused = r#"{"backup":"20261129T065900Z","startedAt":"2026-11-29T07:00:05Z",
            "durationSeconds":1,"tables":0,"rows":0,"result":"Failed",
            "reason":"TargetNotEmpty","message":"the database already holds 3 tables"}"#;
        let status = ended(&job(Some("BackoffLimitExceeded")), Some(refused));
        assert_eq!(status.phase, "Failed");
        assert_eq!(status.reason.as_deref(), Some("TargetNotEmpty"));
        let none = ended(&job(Some("DeadlineExceeded")), None);
        assert_eq!(none.phase, "Failed");
        assert_eq!(none.reason.as_deref(), Some("RestoreJobFailed"));
        assert!(none.message.contains("DeadlineExceeded"));
    }
}
