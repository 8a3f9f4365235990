//! Moving a system's database from the operator's StatefulSet onto a CloudNativePG Cluster
//! (spec.database.move): which engine's objects exist at each phase, and the two Jobs, a
//! copy (the old database dumped into the Cluster, once no application session is left)
//! and a comparison (row counts and checksums of both, the migration's verifier). Both log
//! in to the old database as the backup role (it reads every row and writes nothing) in
//! plaintext, as that engine serves, and to the Cluster as the application with
//! `verify-full`.

use k8s_openapi::api::batch::v1::Job;

use super::migration::{IMPORT, INVENTORY_SQL, VERIFY, WAIT_FOR_BOTH, script_job, source_env};
use super::pod::env;
use super::roles::{APPLICATION, BACKUP};
use super::{cnpg, migration, names};
use crate::api::{Engine, HealthSystem, MovePhase, MoveStatus};
use crate::config::Config;

/// Where the move stands, as the operator last decided.
pub fn status(system: &HealthSystem) -> Option<&MoveStatus> {
    system
        .status
        .as_ref()?
        .database
        .as_ref()?
        .engine_move
        .as_ref()
}

/// Whether the system has switched onto the Cluster of its move.
pub fn switched(system: &HealthSystem) -> bool {
    status(system).is_some_and(|m| m.phase == MovePhase::Switched)
}

/// Whether a Cluster is wanted beside the StatefulSet that still serves: from the moment a
/// move is asked for (or was once, and failed or was withdrawn: the Cluster is never deleted
/// by the operator, and kept up to date) until the switch.
pub fn cluster_beside(system: &HealthSystem, engine: Engine) -> bool {
    engine == Engine::StatefulSet
        && (system.spec.database.engine_move.is_some() || status(system).is_some())
}

/// Whether the old StatefulSet is kept, stopped, after the switch: until a person removes
/// spec.database.move.
pub fn keeps_old(system: &HealthSystem) -> bool {
    switched(system) && system.spec.database.engine_move.is_some()
}

/// Whether the application is held stopped: from the start of an attempt until its switch
/// (or its failure, when the application runs on the old database again).
pub fn holds_application(system: &HealthSystem) -> bool {
    system.spec.database.engine_move.is_some()
        && status(system).is_some_and(|m| m.phase.holds_application())
}

/// Name of the copy Job of `attempt`, for the HealthSystem `incarnation`.
pub fn copy_job_name(incarnation: &str, attempt: i32) -> String {
    format!("move-{incarnation}-copy-{attempt}")
}

/// Name of the comparison Job of `attempt`, for the HealthSystem `incarnation`.
pub fn verify_job_name(incarnation: &str, attempt: i32) -> String {
    format!("move-{incarnation}-verify-{attempt}")
}

/// The old database has no session of the application's role left (its pods stopped a
/// moment ago may still be closing), or the copy is refused: a copy would miss what such a
/// session writes after it.
const QUIESCED: &str = r#"for i in $(seq 1 120); do
  sessions=$(PGSSLMODE="$SOURCE_SSLMODE" PGPASSWORD="$SOURCE_PASSWORD" psql -X -tA -h "$SOURCE_HOST" \
    -p "$SOURCE_PORT" -U "$SOURCE_USER" -d "$SOURCE_DATABASE" \
    -c "SELECT count(*) FROM pg_stat_activity WHERE usename = '$APPLICATION_USER'")
  [ "$sessions" = 0 ] && break
  sleep 5
done
if [ "$sessions" != 0 ]; then
  echo "copy refused: the application's role still has $sessions sessions on the old database 10 minutes after the application was stopped" >&2
  exit 1
fi
"#;

/// The Job the move's phase needs, if any.
pub fn jobs(system: &HealthSystem, config: &Config) -> Vec<Job> {
    let Some(status) = status(system) else {
        return Vec::new();
    };
    if system.spec.database.engine_move.is_none() {
        return Vec::new();
    }
    let id = migration::incarnation(system);
    let deadlines = &config.migration;
    let mut environment = vec![
        env("SOURCE_HOST", names::SERVICE),
        env("SOURCE_PORT", &names::PORT.to_string()),
        source_env("SOURCE_DATABASE", BACKUP.secret, "database"),
        source_env("SOURCE_USER", BACKUP.secret, "username"),
        source_env("SOURCE_PASSWORD", BACKUP.secret, names::PASSWORD_KEY),
        // The StatefulSet engine serves no TLS.
        env("SOURCE_SSLMODE", "disable"),
    ];
    let (name, script, deadline) = match status.phase {
        MovePhase::Copying => {
            environment.push(source_env(
                "APPLICATION_USER",
                APPLICATION.secret,
                "username",
            ));
            // A first copy refuses a Cluster that already holds tables (one adopted with
            // data); a later one replaces what an earlier copy of this move put there.
            environment.push(env(
                "REPLACE_ALLOWED",
                if status.copies > 0 { "yes" } else { "no" },
            ));
            (
                copy_job_name(&id, status.attempt),
                [WAIT_FOR_BOTH, QUIESCED, IMPORT].concat(),
                deadlines.import_deadline_seconds,
            )
        }
        MovePhase::Verifying => {
            environment.push(env("INVENTORY_SQL", INVENTORY_SQL));
            // Every table's rows checksummed.
            environment.push(env("CHECKSUM_TABLES", "*"));
            (
                verify_job_name(&id, status.attempt),
                [WAIT_FOR_BOTH, VERIFY].concat(),
                deadlines.verify_deadline_seconds,
            )
        }
        _ => return Vec::new(),
    };
    let mut job = script_job(system, config, name, &script, environment, deadline);
    if let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        for container in &mut pod.containers {
            // The Cluster's read-write Service: `database` still reaches the old database.
            for variable in container.env.iter_mut().flatten() {
                if variable.name == "PGHOST" {
                    variable.value = Some(cnpg::read_write_service());
                }
            }
        }
        cnpg::verify_server(pod);
    }
    vec![job]
}
