//! Scheduled backups: a CronJob that runs `pg_dump` (from the database's own image, so the
//! client matches the server) into a volume claim of its own, keeps daily, weekly and monthly
//! copies with checksums, and prunes beyond the retention.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::database;
use super::labels;
use super::metadata::component_meta;
use super::pod::pod_security;
use super::pod::{database_script_container, env, mount};
use super::roles;
use crate::api::HealthSystem;
use crate::config::Config;

/// Component label of the backup Jobs' pods.
pub const COMPONENT_NAME: &str = "backup";
/// Name of the CronJob, its ServiceAccount and its volume claim.
pub const NAME: &str = "backup";

/// The dump, its checksum, the weekly and monthly copies and the pruning, in POSIX sh. It waits
/// up to a minute for the database to answer (a new pod's address reaches the NetworkPolicy
/// agent a moment after the pod starts). A dump is written under a temporary name and
/// renamed when complete, so a half-written file never looks like a backup.
const SCRIPT: &str = r#"set -eu
# A new pod may wait a moment for the network policy agent to let it through.
for i in $(seq 1 30); do pg_isready -q -t 2 && break; sleep 2; done
now=$(date -u +%Y%m%dT%H%M%SZ)
cd /backups
mkdir -p daily weekly monthly
pg_dump --format=custom --file="daily/$now.dump.partial"
mv "daily/$now.dump.partial" "daily/$now.dump"
sha256sum "daily/$now.dump" > "daily/$now.dump.sha256"
if [ "$(date -u +%u)" = 7 ]; then cp "daily/$now.dump" "daily/$now.dump.sha256" weekly/; fi
if [ "$(date -u +%d)" = 01 ]; then cp "daily/$now.dump" "daily/$now.dump.sha256" monthly/; fi
prune() { ls -1 "$1" | grep '\.dump$' | sort -r | tail -n "+$(($2 + 1))" | while read -r f; do rm -f "$1/$f" "$1/$f.sha256"; done; }
prune daily "$RETAIN_DAILY"
prune weekly "$RETAIN_WEEKLY"
prune monthly "$RETAIN_MONTHLY"
echo "backup $now complete: $(wc -c < "daily/$now.dump") bytes"
"#;

/// The claim the dumps are kept on: as large as the database volume (dumps are compressed)
/// and of the same class.
pub fn claim(system: &HealthSystem) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: component_meta(system, NAME, COMPONENT_NAME),
        spec: Some(database::claim_spec(system)),
        ..PersistentVolumeClaim::default()
    }
}

/// The backup CronJob. One run at a time; three succeeded and three failed Jobs are kept,
/// which is what status reads the last backup times from.
pub fn cron_job(system: &HealthSystem, config: &Config) -> CronJob {
    let backup = &system.spec.backup;
    let container = database_script_container(
        system,
        config,
        roles::BACKUP,
        "pg-dump",
        SCRIPT,
        vec![
            env("RETAIN_DAILY", &backup.retention.daily.to_string()),
            env("RETAIN_WEEKLY", &backup.retention.weekly.to_string()),
            env("RETAIN_MONTHLY", &backup.retention.monthly.to_string()),
        ],
        vec![mount("backups", "/backups")],
    );
    let pod_labels = labels::component(system, COMPONENT_NAME);
    CronJob {
        metadata: component_meta(system, NAME, COMPONENT_NAME),
        spec: CronJobSpec {
            schedule: backup.schedule.trim().to_string(),
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(pod_labels),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            restart_policy: Some("Never".into()),
                            service_account_name: Some(NAME.into()),
                            automount_service_account_token: Some(false),
                            security_context: Some(pod_security(999)),
                            containers: vec![container],
                            volumes: Some(vec![Volume {
                                name: "backups".into(),
                                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                    claim_name: NAME.into(),
                                    // Unset, not false: the API server drops a false here,
                                    // and the live object would never match.
                                    read_only: None,
                                }),
                                ..Volume::default()
                            }]),
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        },
        ..CronJob::default()
    }
}
