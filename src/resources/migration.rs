//! The migration's Jobs and its egress allowance: an import Job (pg_dump of the source
//! streamed into pg_restore, in one transaction), a verification Job (every table's exact row
//! count and a checksum of its rows, source and target each in one snapshot), and a
//! NetworkPolicy letting only these pods reach the source, only while one of them runs.
//! Both Jobs use the database's own image (client tools of the server's version) and report
//! through their termination message, which `controller/migration.rs` reads.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource, PodSpec, SecretKeySelector};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::backup;
use super::labels;
use super::metadata::{component_meta, meta};
use super::pod::{database_script_container, empty_dir, env, job_pod, mount};
use super::roles;

use crate::api::{HealthSystem, Migration, MigrationPhase};
use crate::backup::liveness;
use crate::config::Config;

/// Component label of the migration Jobs' pods.
pub const COMPONENT_NAME: &str = "migration";
/// The NetworkPolicy that lets the migration pods reach the source.
pub const SOURCE_POLICY: &str = "migration-source-egress";
/// UID of the postgres user in the database image (the Jobs run as it, like backups).
const POSTGRES_UID: i64 = 999;

/// What tells one HealthSystem's migration Jobs from those of an earlier HealthSystem of the
/// same name (deleted with Retain, its namespace adopted): the first 8 characters of its UID.
/// Without it, the earlier import Job, long completed, would pass for this one's.
pub fn incarnation(system: &HealthSystem) -> String {
    let uid = system.metadata.uid.as_deref().unwrap_or("rendered");
    uid.chars().take(8).collect()
}

/// Name of the import Job of `attempt`, for the HealthSystem `incarnation`.
pub fn import_job_name(incarnation: &str, attempt: i32) -> String {
    format!("migration-{incarnation}-import-{attempt}")
}

/// Name of verification run `run` of `attempt`, for the HealthSystem `incarnation`.
pub fn verify_job_name(incarnation: &str, attempt: i32, run: i32) -> String {
    format!("migration-{incarnation}-verify-{attempt}-{run}")
}

/// Both ends answer before anything starts (a new pod's address reaches the policy agent a
/// moment after it starts; the source is reached with its own TLS mode, `SOURCE_SSLMODE`,
/// the system's database with libpq's variables). Then ([`IMPORT`]) the source's archive
/// streams through a pipe into
/// pg_restore, so no local copy of the database is needed (each side's exit status is
/// kept: POSIX sh has no pipefail). pg_restore runs in one
/// transaction: a failed import leaves the system's database as it was. The last lines of
/// the log become the termination message the operator reports.
pub(crate) const WAIT_FOR_BOTH: &str = r#"set -eu
for i in $(seq 1 30); do
  pg_isready -q -t 2 && PGSSLMODE="$SOURCE_SSLMODE" pg_isready -q -t 2 -h "$SOURCE_HOST" -p "$SOURCE_PORT" && break
  sleep 2
done
"#;

/// See [`WAIT_FOR_BOTH`]: the import itself.
pub(crate) const IMPORT: &str = r#"if [ "$REPLACE_ALLOWED" != yes ]; then
  held=$(psql -X -tA -c "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
  if [ "$held" != 0 ]; then
    echo "import refused: the system's database already holds $held tables that no import of this migration put there; an import never overwrites them" >&2
    exit 1
  fi
fi
restored=0
{
  dumped=0
  PGSSLMODE="$SOURCE_SSLMODE" PGPASSWORD="$SOURCE_PASSWORD" pg_dump --host="$SOURCE_HOST" --port="$SOURCE_PORT" \
    --username="$SOURCE_USER" --dbname="$SOURCE_DATABASE" --format=custom \
    --no-owner --no-privileges || dumped=$?
  echo "$dumped" > /tmp/dumped
} | pg_restore --dbname="$PGDATABASE" --no-owner --no-privileges --clean --if-exists \
  --single-transaction --exit-on-error || restored=$?
dumped=$(cat /tmp/dumped 2>/dev/null || echo unknown)
if [ "$dumped" != 0 ] || [ "$restored" != 0 ]; then
  echo "import failed: pg_dump of $SOURCE_DATABASE at $SOURCE_HOST:$SOURCE_PORT exited $dumped, pg_restore exited $restored; the system's database is unchanged (one transaction)" >&2
  exit 1
fi
tables=$(psql -X -tA -c "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
echo "imported $SOURCE_DATABASE from $SOURCE_HOST:$SOURCE_PORT: $tables tables" | tee /dev/termination-log
"#;

/// Every table of one database with its exact row count and, for the chosen tables, the
/// sum of a 64-bit hash of each row's text (order-free, constant memory), all in one
/// read-only snapshot. Output formats are pinned so both servers print rows alike.
pub(crate) const INVENTORY_SQL: &str = r#"SET extra_float_digits = 3;
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET TimeZone = 'UTC';
SET bytea_output = 'hex';
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
SELECT n.nspname || '.' || c.relname,
       (xpath('/row/c/text()', x))[1]::text,
       coalesce((xpath('/row/s/text()', x))[1]::text, '-')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL query_to_xml(format(
  CASE WHEN :'tables' = '*' OR (n.nspname || '.' || c.relname) = ANY (string_to_array(:'tables', ','))
       THEN 'SELECT count(*) AS c, coalesce(sum((''x'' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0) AS s FROM %I.%I AS t'
       ELSE 'SELECT count(*) AS c FROM %I.%I AS t' END,
  n.nspname, c.relname), false, true, '') AS x
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
ORDER BY 1;
COMMIT;
"#;

/// After [`WAIT_FOR_BOTH`], takes both inventories, compares them with awk (checksums as strings: they exceed a
/// double's precision) and writes the evidence as JSON to the termination message: at most
/// ten differences listed, the rest counted, so it stays far below the 4 KiB limit.
pub(crate) const VERIFY: &str = r#"inventory() { psql -X -q -v ON_ERROR_STOP=1 -v tables="$CHECKSUM_TABLES" -tA -F "$(printf '\t')" -f /tmp/inventory.sql; }
printf '%s' "$INVENTORY_SQL" > /tmp/inventory.sql
(export PGSSLMODE="$SOURCE_SSLMODE" PGHOST="$SOURCE_HOST" PGPORT="$SOURCE_PORT" PGUSER="$SOURCE_USER" PGPASSWORD="$SOURCE_PASSWORD" PGDATABASE="$SOURCE_DATABASE"; inventory) > /tmp/source.tsv
inventory > /tmp/target.tsv
awk -F '\t' '
function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return s }
function differ(t, what, s, g) {
  n++
  if (n > 10) return
  list = list (n > 1 ? "," : "") "{\"table\":\"" esc(t) "\",\"difference\":\"" what "\""
  if (s != "") list = list ",\"sourceRows\":" s
  if (g != "") list = list ",\"targetRows\":" g
  list = list "}"
}
FILENAME == ARGV[1] { sc[$1] = $2; ss[$1] = $3; next }
{ tc[$1] = $2; ts[$1] = $3 }
END {
  for (t in sc) { tables++; if (!(t in tc)) differ(t, "missing in target", sc[t], "") }
  for (t in tc) {
    rows += tc[t]
    if (!(t in sc)) { tables++; differ(t, "missing in source", "", tc[t]); continue }
    if ((sc[t] "") != (tc[t] "")) { differ(t, "row count", sc[t], tc[t]); continue }
    if ((ss[t] "") == "-") continue
    checksummed++
    if ((ss[t] "") != (ts[t] "")) differ(t, "checksum", sc[t], tc[t])
  }
  printf "{\"tables\":%.0f,\"rows\":%.0f,\"checksummed\":%.0f,\"mismatches\":[%s],\"moreMismatches\":%.0f}\n", tables, rows, checksummed, list, (n > 10 ? n - 10 : 0)
}' /tmp/source.tsv /tmp/target.tsv > /tmp/evidence.json
cat /tmp/evidence.json | tee /dev/termination-log
"#;

/// An environment variable from a key of a Secret (the migration team's, for the source).
pub(crate) fn source_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn job(
    system: &HealthSystem,
    config: &Config,
    migration: &Migration,
    name: String,
    script: &str,
    extra_env: Vec<EnvVar>,
    deadline_seconds: i64,
) -> Job {
    let source = &migration.source;
    let mut environment = vec![
        env("SOURCE_HOST", &source.host),
        env("SOURCE_PORT", &source.port.to_string()),
        env("SOURCE_DATABASE", &source.database),
        source_env("SOURCE_USER", &source.secret_name, "username"),
        source_env("SOURCE_PASSWORD", &source.secret_name, "password"),
        // libpq's default: TLS when the source offers it.
        env("SOURCE_SSLMODE", "prefer"),
    ];
    environment.extend(extra_env);
    script_job(
        system,
        config,
        name,
        &[WAIT_FOR_BOTH, script].concat(),
        environment,
        deadline_seconds,
    )
}

/// Where the Jobs' scripts write libpq's service file ([`liveness::libpq_service_file`]).
const SERVICE_FILE: &str = "/tmp/pg_service.conf";

/// Writes the service file first: every libpq client of the script (pg_dump, pg_restore,
/// psql, pg_isready, on both servers) reads it through PGSERVICE, so a connection whose
/// peer vanished fails within about a minute instead of holding the Job until its deadline.
const WRITE_SERVICE_FILE: &str = "printf '%s' \"$LIBPQ_SERVICE\" > \"$PGSERVICEFILE\"\n";

/// A Job of one try that runs `script` in the database's image as the application's role
/// (the system's database as libpq's target), with `environment`, labelled as a migration
/// pod (the database's policies let those in). Its clients' connections have keepalives.
pub(crate) fn script_job(
    system: &HealthSystem,
    config: &Config,
    name: String,
    script: &str,
    environment: Vec<EnvVar>,
    deadline_seconds: i64,
) -> Job {
    let mut environment = environment;
    environment.extend([
        env("LIBPQ_SERVICE", &liveness::libpq_service_file()),
        env("PGSERVICEFILE", SERVICE_FILE),
        env("PGSERVICE", liveness::SERVICE),
    ]);
    let script = [WRITE_SERVICE_FILE, script].concat();
    let container = Container {
        // The script's own summary, or on failure the last lines of its log (the tools'
        // error messages): what status reports.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..database_script_container(
            system,
            config,
            roles::APPLICATION,
            COMPONENT_NAME,
            &script,
            environment,
            vec![mount("tmp", "/tmp")],
        )
    };
    let pod_labels = labels::component(system, COMPONENT_NAME);
    Job {
        metadata: component_meta(system, &name, COMPONENT_NAME),
        spec: Some(JobSpec {
            // One try: a failure is reported, and raising the attempt retries.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(deadline_seconds),
            template: job_pod(
                pod_labels,
                POSTGRES_UID,
                PodSpec {
                    // No API access: the backup ServiceAccount has no token and no roles.
                    service_account_name: Some(backup::NAME.into()),
                    containers: vec![container],
                    volumes: Some(vec![empty_dir("tmp")]),
                    ..PodSpec::default()
                },
            ),
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The Jobs and the source allowance the migration's current phase needs: the import Job
/// while importing, the current verification Job while verifying, and the allowance only
/// while one of them runs. Nothing otherwise (finished Jobs are kept by the cluster as
/// evidence: Jobs are never pruned).
pub fn children(system: &HealthSystem, config: &Config) -> (Vec<Job>, Option<NetworkPolicy>) {
    let (Some(migration), Some(status)) = (
        system.spec.migration.as_ref(),
        system.status.as_ref().and_then(|s| s.migration.as_ref()),
    ) else {
        return (Vec::new(), None);
    };
    let deadlines = &config.migration;
    let job = match status.phase {
        MigrationPhase::Importing => job(
            system,
            config,
            migration,
            import_job_name(&incarnation(system), status.attempt),
            IMPORT,
            vec![env(
                "REPLACE_ALLOWED",
                if status.imports > 0 { "yes" } else { "no" },
            )],
            deadlines.import_deadline_seconds,
        ),
        MigrationPhase::Verifying => job(
            system,
            config,
            migration,
            verify_job_name(
                &incarnation(system),
                status.attempt,
                status.verification_runs,
            ),
            VERIFY,
            vec![
                env("INVENTORY_SQL", INVENTORY_SQL),
                env(
                    "CHECKSUM_TABLES",
                    &migration.verification.checksum_tables.join(","),
                ),
            ],
            deadlines.verify_deadline_seconds,
        ),
        _ => return (Vec::new(), None),
    };
    (vec![job], Some(source_policy(system, migration)))
}

/// Egress from the migration pods to the source server's port.
fn source_policy(system: &HealthSystem, migration: &Migration) -> NetworkPolicy {
    let network = &migration.source.network;
    let peer = NetworkPolicyPeer {
        ip_block: network.cidr.as_ref().map(|cidr| IPBlock {
            cidr: cidr.clone(),
            except: None,
        }),
        namespace_selector: network.namespace_selector.clone(),
        pod_selector: network.pod_selector.clone(),
    };
    NetworkPolicy {
        metadata: meta(system, SOURCE_POLICY),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(system, COMPONENT_NAME)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![peer]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(migration.source.port)),
                    protocol: Some("TCP".into()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ingress: None,
        }),
    }
}

/// Whether the application is held at zero replicas: until the cutover, the source is the
/// live system and the imported database may still be replaced.
pub fn holds_application(system: &HealthSystem) -> bool {
    system.spec.migration.is_some()
        && system
            .status
            .as_ref()
            .and_then(|s| s.migration.as_ref())
            .is_none_or(|m| m.phase != MigrationPhase::CutOver)
}

/// Labels of the migration pods, for the database's ingress rule.
pub fn pod_labels(system: &HealthSystem) -> BTreeMap<String, String> {
    labels::selector(system, COMPONENT_NAME)
}
