//! The last backup of a system deleted with `Delete`: a Job made from the backup CronJob's
//! template (its own retries included) that stores `ID-final`, never pruned by retention.

use k8s_openapi::api::batch::v1::Job;
use kube::api::ObjectMeta;

use super::Desired;
use super::labels;
use super::pod::env;
use crate::api::HealthSystem;

/// Name of the final backup Job in the system's namespace.
pub const NAME: &str = "backup-final";

/// The final backup Job: the CronJob's template, storing a final backup.
pub fn job(system: &HealthSystem, desired: &Desired) -> Option<Job> {
    let template = desired.backup.spec.job_template.clone();
    let mut spec = template.spec?;
    let pod = spec.template.spec.as_mut()?;
    for container in &mut pod.containers {
        container
            .env
            .get_or_insert_with(Vec::new)
            .push(env("HS_BACKUP_FINAL", "true"));
    }
    let mut labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
    labels.extend(labels::common(system));
    Some(Job {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(labels::namespace(system)),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        ..Job::default()
    })
}
