//! Scheduled backups, a CronJob in the database's own image (its pg_dump matches the server).
//! With an object store configured, it runs the backup agent (`crate::backup`, copied from the
//! operator's image by an init container): encrypted dumps with manifests in the system's
//! prefix, pruned by age. Without one, a shell script dumps into a volume claim of its own and
//! keeps daily, weekly and monthly copies with checksums (the older layout).

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, PodSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::database;
use super::labels;
use super::metadata::component_meta;
use super::pod::job_pod;
use super::pod::{
    container_security, database_client_env, database_script_container, empty_dir, env, mount,
    secret_key_env,
};
use super::roles;
use crate::api::HealthSystem;
use crate::config::{Config, ObjectStore};

/// Component label of the backup Jobs' pods.
pub const COMPONENT_NAME: &str = "backup";
/// Name of the CronJob, its ServiceAccount and its volume claim.
pub const NAME: &str = "backup";

/// The dump, its checksum, the weekly and monthly copies and the pruning, in POSIX sh. It waits
/// up to a minute for the database to answer (a new pod's address reaches the NetworkPolicy
/// agent a moment after the pod starts). A dump is written under a temporary name and
/// renamed when complete, so a half-written file never looks like a backup. pg_dump's
/// connection has keepalives (`LIBPQ_OPTIONS`, a connection string without a database: that
/// still comes from PGDATABASE), so a vanished database fails the run instead of hanging it.
const SCRIPT: &str = r#"set -eu
# A new pod may wait a moment for the network policy agent to let it through.
for i in $(seq 1 30); do pg_isready -q -t 2 && break; sleep 2; done
now=$(date -u +%Y%m%dT%H%M%SZ)
cd /backups
mkdir -p daily weekly monthly
pg_dump --dbname="$LIBPQ_OPTIONS" --format=custom --file="daily/$now.dump.partial"
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

/// Where the agent binary is put in the backup pod.
const AGENT_DIR: &str = "/agent";
/// Slack of the Job's deadline over the agent's own: the pod's start and image pulls.
const JOB_DEADLINE_SLACK_SECONDS: i64 = 600;

/// The claim the dumps are kept on, when there is no object store (a claim from before one was
/// configured is left in place with its dumps: claims are never pruned): as large as the
/// database volume (dumps are compressed) and of the same class.
pub fn claim(system: &HealthSystem, config: &Config) -> Option<PersistentVolumeClaim> {
    config
        .backup
        .object_store
        .is_none()
        .then(|| PersistentVolumeClaim {
            metadata: component_meta(system, NAME, COMPONENT_NAME),
            spec: Some(database::claim_spec(system)),
            ..PersistentVolumeClaim::default()
        })
}

/// The dump script on the backup claim.
fn claim_pod(
    system: &HealthSystem,
    config: &Config,
) -> (Vec<Container>, Vec<Container>, Vec<Volume>) {
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
            env("LIBPQ_OPTIONS", &crate::backup::liveness::libpq_options()),
        ],
        vec![mount("backups", "/backups")],
    );
    let volume = Volume {
        name: "backups".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: NAME.into(),
            // Unset, not false: the API server drops a false here, and the live object
            // would never match.
            read_only: None,
        }),
        ..Volume::default()
    };
    (Vec::new(), vec![container], vec![volume])
}

/// The init container that copies the agent (this operator's binary) from the operator's
/// image into the `agent` scratch volume, for a container of the database's image.
pub(crate) fn install_agent(config: &Config) -> Container {
    Container {
        name: "install-agent".into(),
        image: Some(config.images.operator()),
        command: Some(vec![
            "/usr/local/bin/healthsystem-operator".into(),
            "backup".into(),
            "install".into(),
            AGENT_DIR.into(),
        ]),
        volume_mounts: Some(vec![mount("agent", AGENT_DIR)]),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

/// A container `name` of the database's image (its client tools match the server) running
/// the installed agent's `backup SUBCOMMAND` with `environment`, the agent and `mounts`
/// mounted, under the restricted container context.
pub(crate) fn agent_container(
    system: &HealthSystem,
    config: &Config,
    name: &str,
    subcommand: &str,
    environment: Vec<k8s_openapi::api::core::v1::EnvVar>,
    mounts: Vec<k8s_openapi::api::core::v1::VolumeMount>,
) -> Container {
    let mut volume_mounts = vec![mount("agent", AGENT_DIR)];
    volume_mounts.extend(mounts);
    Container {
        name: name.into(),
        image: Some(
            config
                .images
                .postgres(system.spec.database.version)
                .to_string(),
        ),
        command: Some(vec![
            format!("{AGENT_DIR}/healthsystem-operator"),
            "backup".into(),
            subcommand.into(),
        ]),
        env: Some(environment),
        volume_mounts: Some(volume_mounts),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

/// Where the store is, the prefix (a system's namespace name), and credentials from `secret`
/// (keys `accessKeyId`, `secretAccessKey`).
pub(crate) fn store_env(
    prefix: &str,
    store: &ObjectStore,
    secret: &str,
) -> Vec<k8s_openapi::api::core::v1::EnvVar> {
    let mut out = vec![
        env("HS_BACKUP_ENDPOINT", &store.endpoint),
        env("HS_BACKUP_BUCKET", &store.bucket),
        env("HS_BACKUP_REGION", &store.region),
        env("HS_BACKUP_PREFIX", prefix),
        secret_key_env("AWS_ACCESS_KEY_ID", secret, "accessKeyId"),
        secret_key_env("AWS_SECRET_ACCESS_KEY", secret, "secretAccessKey"),
    ];
    if let Some(pem) = &store.ca_bundle {
        out.push(env("HS_BACKUP_CA_BUNDLE", pem));
    }
    out
}

/// The backup agent: copied from the operator's image, run in the database's image as the
/// `backup` role with the system's own store credentials.
fn agent_pod(
    system: &HealthSystem,
    config: &Config,
    store: &ObjectStore,
) -> (Vec<Container>, Vec<Container>, Vec<Volume>) {
    let backup = &system.spec.backup;
    let install = install_agent(config);
    let mut environment = database_client_env(roles::BACKUP);
    environment.extend(store_env(
        &labels::namespace(system),
        store,
        &store.credentials_secret,
    ));
    environment.extend([
        env("HS_BACKUP_RECIPIENTS", &config.backup.recipients.join(",")),
        env("HS_BACKUP_KEEP_DAYS", &backup.retention.daily.to_string()),
        env("HS_BACKUP_KEEP_WEEKS", &backup.retention.weekly.to_string()),
        env(
            "HS_BACKUP_KEEP_MONTHS",
            &backup.retention.monthly.to_string(),
        ),
        env(
            "HS_BACKUP_DEADLINE_SECONDS",
            &config.backup.deadline_seconds.to_string(),
        ),
    ]);
    let run = agent_container(system, config, "backup", "run", environment, Vec::new());
    (vec![install], vec![run], vec![empty_dir("agent")])
}

/// Makes the backup's pod verify the database server (CloudNativePG engine).
pub fn verify_server(cron_job: &mut CronJob) {
    if let Some(pod) = cron_job
        .spec
        .job_template
        .spec
        .as_mut()
        .and_then(|j| j.template.spec.as_mut())
    {
        super::cnpg::verify_server(pod);
    }
}

/// The backup CronJob. One run at a time; three succeeded and three failed Jobs are kept,
/// which is what status reads the last backup times from.
pub fn cron_job(system: &HealthSystem, config: &Config) -> CronJob {
    let backup = &system.spec.backup;
    let (init_containers, containers, volumes) = match &config.backup.object_store {
        Some(store) => agent_pod(system, config, store),
        None => claim_pod(system, config),
    };
    let deadline = config
        .backup
        .object_store
        .as_ref()
        .map(|_| i64::from(config.backup.deadline_seconds) + JOB_DEADLINE_SLACK_SECONDS);
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
                    active_deadline_seconds: deadline,
                    template: job_pod(
                        pod_labels,
                        999,
                        PodSpec {
                            service_account_name: Some(NAME.into()),
                            init_containers: (!init_containers.is_empty())
                                .then_some(init_containers),
                            containers,
                            volumes: Some(volumes),
                            ..PodSpec::default()
                        },
                    ),
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        },
        ..CronJob::default()
    }
}
