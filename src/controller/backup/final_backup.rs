//! The last backup of a system deleted with `Delete` (with an object store): a Job made from
//! the backup CronJob's template (its own retries included), storing `ID-final` (never pruned
//! by retention), whose success the namespace's deletion waits for. A failed one is reported
//! (a Warning event) and the namespace kept: delete that Job to try again, or set
//! spec.backup.skipFinalBackup to delete without it. One whose pod cannot start (its store
//! credentials gone) is reported as soon as its pod says why (`FinalBackupBlocked`).

use k8s_openapi::api::batch::v1::Job;
use kube::Resource;
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::events::EventType;
use tracing::info;

use crate::api::HealthSystem;
use crate::controller::context::Context;
use crate::error::{AtStep, Result, Step};
use crate::resources::final_backup::{NAME, job};
use crate::resources::{Desired, labels};

fn condition(job: &DynamicObject, type_: &str) -> Option<String> {
    crate::controller::runtime::job_state::condition(job, type_)
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
}

/// Whether the namespace must wait: the final backup has not succeeded (and one is wanted).
pub async fn pending(system: &HealthSystem, ctx: &Context) -> Result<bool> {
    let Some(store) = &ctx.config.backup.object_store else {
        return Ok(false);
    };
    if system.spec.backup.skip_final_backup {
        return Ok(false);
    }
    let namespace = labels::namespace(system);
    let reference = system.object_ref(&());
    let Some(existing) = ctx.stores.get("batch/v1", "Job", Some(&namespace), NAME) else {
        let desired = Desired::build(system, &ctx.config);
        if let Some(job) = job(system, &desired) {
            match Api::<Job>::namespaced(ctx.client.clone(), &namespace)
                .create(&PostParams::default(), &job)
                .await
            {
                Ok(_) => {
                    crate::controller::runtime::events::publish(
                        &ctx.recorder,
                        &reference,
                        EventType::Normal,
                        "FinalBackupStarted".into(),
                        "deleted with Delete: a final backup is taken before the namespace goes"
                            .into(),
                        "Delete",
                    )
                    .await;
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(e).at(Step::FinalBackup, format!("Job {NAME}")),
            }
        }
        return Ok(true);
    };
    if condition(&existing, "Complete").is_some() {
        info!(namespace, "final backup done");
        return Ok(false);
    }
    if let Some(why) = condition(&existing, "Failed") {
        crate::controller::runtime::events::publish(
            &ctx.recorder,
            &reference,
            EventType::Warning,
            "FinalBackupFailed".into(),
            format!(
                "the final backup Job {NAME} failed ({why}); the namespace is kept: delete that \
                 Job to try again, or set spec.backup.skipFinalBackup: true to delete without it"
            ),
            "Delete",
        )
        .await;
        return Ok(true);
    }
    // A pod that cannot start (the store credentials gone) would otherwise say nothing until
    // the Job's deadline.
    let pod = crate::controller::runtime::job_state::newest_pod(&ctx.client, &namespace, NAME)
        .await
        .at(Step::FinalBackup, format!("Job {NAME}"))?;
    if let Some(why) = pod
        .as_ref()
        .and_then(crate::controller::runtime::job_state::waiting_reason)
    {
        crate::controller::runtime::events::publish(
            &ctx.recorder,
            &reference,
            EventType::Warning,
            "FinalBackupBlocked".into(),
            format!(
                "the final backup Job {NAME} cannot start ({why}); the namespace is kept: \
                 restore what it needs (the system's store credentials are the Secret \
                 {} in {namespace}), or set spec.backup.skipFinalBackup: true to \
                 delete without it",
                store.credentials_secret
            ),
            "Delete",
        )
        .await;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::api::validation::validate;
    use crate::config::Config;

    #[test]
    fn the_final_backup_is_the_scheduled_one_marked_final() {
        let system = validate(&json!({
            "apiVersion": "sdc.gov.rs/v1alpha1",
            "kind": "HealthSystem",
            "metadata": { "name": "lab-gone" },
            "spec": {
                "institution": { "displayName": "Lab", "registryId": "07151950", "ownership": "Private" },
                "database": { "version": "15", "storage": "10Gi" },
                "deletionPolicy": "Delete"
            }
        }))
        .unwrap();
        let desired = Desired::build(&system, &Config::default());
        let final_job = serde_json::to_value(job(&system, &desired).unwrap()).unwrap();
        let scheduled = serde_json::to_value(&desired.backup.spec.job_template.spec).unwrap();
        assert_eq!(final_job["metadata"]["name"], NAME);
        assert_eq!(final_job["metadata"]["namespace"], "hs-lab-gone");
        assert_eq!(
            final_job["metadata"]["labels"]["app.kubernetes.io/component"],
            "backup"
        );
        let env = |v: &Value| v["template"]["spec"]["containers"][0]["env"].clone();
        let mut wanted = env(&scheduled);
        wanted
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "HS_BACKUP_FINAL", "value": "true" }));
        assert_eq!(env(&final_job["spec"]), wanted);
    }
}
