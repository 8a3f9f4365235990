//! The system's PostgreSQL: its credentials Secrets (one per role, see `roles`; passwords are
//! generated in the cluster, never here), a one-replica StatefulSet with a volume claim and the metrics
//! exporter beside the server, its Services and a PodDisruptionBudget. Every pod template
//! satisfies Pod Security `restricted`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, ExecAction, Lifecycle, LifecycleHandler,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, Service, ServicePort, ServiceSpec, Volume,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{self};
use super::metadata::component_meta;
pub use super::names::{
    COMPONENT_NAME, DATA_VOLUME, HEADLESS_SERVICE, METRICS_PORT, NAME, PASSWORD_KEY, PORT, SERVICE,
    data_claim_name, pod_name,
};
use super::pod::{
    container_security, empty_dir, env, mount, pod_security, secret_env, secret_key_env,
};
use super::roles;
use crate::api::HealthSystem;
use crate::config::Config;

/// The Secret holding the application's credentials.
pub const SECRET: &str = roles::APPLICATION.secret;
/// The database and its owner, both named after the application.
pub const DATABASE_USER: &str = roles::APPLICATION.user;
/// UID and GID of the postgres user in the official images.
const POSTGRES_UID: i64 = 999;
/// Size of the database's /dev/shm (memory, counted against the container's limit when used).
const SHM_SIZE: &str = "1Gi";

/// Where the data volume is mounted, and the cluster directory inside it (a subdirectory, so
/// the volume's own root, `lost+found` included, never has to be empty for initdb).
const DATA_MOUNT: &str = "/var/lib/postgresql/data";
const PGDATA: &str = "/var/lib/postgresql/data/pgdata";
/// The Unix socket directory (an emptyDir: the image's own may not be writable).
const SOCKET_DIR: &str = "/var/run/postgresql";
/// Seconds a clean shutdown may take: the preStop hook's fast shutdown writes a checkpoint.
const SHUTDOWN_SECONDS: i64 = 120;

/// The database container's own bootstrap, in POSIX sh, so any image that carries the
/// PostgreSQL binaries on its PATH works (the official image, a hardened mirror, one built
/// from distribution packages): the image's entrypoint is never used.
///
/// initdb runs only when the cluster directory holds no database, into a temporary directory
/// renamed into place once complete, so an interrupted initialisation is redone rather than
/// half-used. A directory that holds files but no database is refused, never overwritten.
/// The password file lives on the pod's own /tmp and is removed at once.
///
/// Then, on every start, the roles ([`roles`]) are set with the server listening on its
/// socket only, so no client ever meets a database whose roles are not yet right; a
/// database from before roles has its superuser moved off the application's role first.
fn bootstrap() -> String {
    let superuser = roles::SUPERUSER.user;
    let (superuser_env, move_superuser, roles_sql) = (
        roles::SUPERUSER.password_env,
        roles::move_superuser_sql(),
        roles::roles_sql(),
    );
    let passwords = roles::ALL.map(|r| r.password_env).join(" ");
    format!(
        r#"set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -d "$PGDATA" ] && [ -n "$(ls -A "$PGDATA")" ]; then
    echo "bootstrap: $PGDATA holds files but no database; refusing to initialise over them" >&2
    exit 1
  fi
  rm -rf "$PGDATA.init"
  umask 077
  pwfile=$(mktemp)
  printf '%s' "${superuser_env}" >"$pwfile"
  initdb --pgdata="$PGDATA.init" --username={superuser} --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA.init/pg_hba.conf"
  echo "CREATE DATABASE \"$APP_DATABASE\";" | postgres --single -D "$PGDATA.init" postgres >/dev/null
  rmdir "$PGDATA" 2>/dev/null || true
  mv "$PGDATA.init" "$PGDATA"
  echo "bootstrap: initialised a new database in $PGDATA"
fi
pg_ctl start -D "$PGDATA" -w -t 3600 -s \
  -o "-c listen_addresses= -c port=$PGPORT -c unix_socket_directories=$SOCKET_DIR"
sql() {{ psql -X -q -h "$SOCKET_DIR" -p "$PGPORT" "$@"; }}
if ! out=$(sql -U {superuser} -d postgres -tAc 'SELECT 1' 2>&1); then
  case $out in
  *'role "{superuser}" does not exist'*)
    echo "bootstrap: moving the superuser off the application's role $APP_USER"
    sql -U "$APP_USER" -d "$APP_DATABASE" <<'SQL'
{move_superuser}SQL
    ;;
  *) echo "bootstrap: $out" >&2; exit 1 ;;
  esac
fi
sql -U {superuser} -d "$APP_DATABASE" <<'SQL'
{roles_sql}SQL
pg_ctl stop -D "$PGDATA" -m fast -w -s
echo "bootstrap: roles in place"
unset {passwords}
exec postgres -D "$PGDATA" -c listen_addresses='*' -c port="$PGPORT" \
  -c unix_socket_directories="$SOCKET_DIR" -c password_encryption=scram-sha-256
"#
    )
}

/// `pg_isready` on the local socket: the server accepts connections.
fn pg_isready_probe(period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(
                [
                    "pg_isready",
                    "-h",
                    SOCKET_DIR,
                    "-p",
                    &PORT.to_string(),
                    "-U",
                    DATABASE_USER,
                ]
                .map(String::from)
                .to_vec(),
            ),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// Readiness is a real login over TCP with the Secret's credentials (the container's own
/// environment), as the application will log in: a server that answers but refuses that
/// password is not ready. Liveness stays `pg_isready`: a failed login is no reason to
/// restart the server.
fn login_probe() -> Probe {
    let login = format!(
        "PGPASSWORD=\"$APP_PASSWORD\" psql -X -q -h 127.0.0.1 -p {PORT} -U \"$APP_USER\" -d \"$APP_DATABASE\" -tAc 'SELECT 1' >/dev/null"
    );
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["/bin/sh".into(), "-c".into(), login]),
        }),
        period_seconds: Some(5),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The PostgreSQL StatefulSet: one server with its data on a claim of the requested size and
/// class, kept when the StatefulSet is deleted or scaled, and the exporter beside it.
pub fn stateful_set(system: &HealthSystem, config: &Config) -> StatefulSet {
    let database = &system.spec.database;
    let tier = config.tiers.get(system.spec.tier);
    let selector = labels::selector(system, COMPONENT_NAME);
    let postgres = Container {
        name: "postgres".into(),
        image: Some(config.images.postgres(database.version).to_string()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), bootstrap()]),
        env: Some(
            vec![
                secret_env("APP_USER", "username"),
                secret_env("APP_DATABASE", "database"),
                env("PGDATA", PGDATA),
                env("PGPORT", &PORT.to_string()),
                env("SOCKET_DIR", SOCKET_DIR),
            ]
            .into_iter()
            .chain(
                roles::ALL
                    .iter()
                    .map(|role| secret_key_env(role.password_env, role.secret, PASSWORD_KEY)),
            )
            .collect(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("postgres".into()),
            container_port: PORT,
            ..ContainerPort::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(tier.database_cpu.clone())),
                ("memory".to_string(), Quantity(tier.database_memory.clone())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity(tier.database_memory.clone()),
            )])),
            ..ResourceRequirements::default()
        }),
        // Crash recovery of a large database may take long: up to an hour to start, then a
        // minute without answers before the kubelet restarts the server.
        startup_probe: Some(pg_isready_probe(5, 720)),
        liveness_probe: Some(pg_isready_probe(10, 6)),
        readiness_probe: Some(login_probe()),
        // SIGTERM would be a "smart" shutdown that waits for every client to leave; a fast
        // shutdown ends sessions and writes the checkpoint, so the next start needs no recovery.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(
                        [
                            "pg_ctl",
                            "stop",
                            "-D",
                            PGDATA,
                            "-m",
                            "fast",
                            "-w",
                            "-t",
                            &(SHUTDOWN_SECONDS - 10).to_string(),
                        ]
                        .map(String::from)
                        .to_vec(),
                    ),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        volume_mounts: Some(vec![
            mount(DATA_VOLUME, DATA_MOUNT),
            mount("run", SOCKET_DIR),
            mount("tmp", "/tmp"),
            mount("shm", "/dev/shm"),
        ]),
        security_context: Some(container_security()),
        ..Container::default()
    };
    let exporter = Container {
        name: "exporter".into(),
        image: Some(config.images.exporter.clone()),
        env: Some(vec![
            env(
                "DATA_SOURCE_URI",
                &format!("localhost:{PORT}/{DATABASE_USER}?sslmode=disable"),
            ),
            secret_key_env("DATA_SOURCE_USER", roles::MONITORING.secret, "username"),
            secret_key_env("DATA_SOURCE_PASS", roles::MONITORING.secret, PASSWORD_KEY),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: METRICS_PORT,
            ..ContainerPort::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("50m".into())),
                ("memory".to_string(), Quantity("64Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("128Mi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(container_security()),
        ..Container::default()
    };
    StatefulSet {
        metadata: component_meta(system, NAME, COMPONENT_NAME),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(HEADLESS_SERVICE.into()),
            // A new template reaches the running server when the operator evicts its pod, a
            // bounded number of databases at a time across the fleet (controller/restarts.rs).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::component(system, COMPONENT_NAME)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.into()),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        // Only a volume whose root is not yet the database's group is walked.
                        fs_group_change_policy: Some("OnRootMismatch".into()),
                        ..pod_security(POSTGRES_UID)
                    }),
                    termination_grace_period_seconds: Some(SHUTDOWN_SECONDS),
                    containers: vec![postgres, exporter],
                    volumes: Some(vec![
                        empty_dir("run"),
                        empty_dir("tmp"),
                        // Parallel queries need more than the runtime's 64 MiB /dev/shm.
                        Volume {
                            name: "shm".into(),
                            empty_dir: Some(EmptyDirVolumeSource {
                                medium: Some("Memory".into()),
                                size_limit: Some(Quantity(SHM_SIZE.into())),
                            }),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(DATA_VOLUME.into()),
                    labels: Some(labels::component(system, COMPONENT_NAME)),
                    ..ObjectMeta::default()
                },
                spec: Some(claim_spec(system)),
                ..PersistentVolumeClaim::default()
            }]),
            // Patient data: the claims outlive the StatefulSet, whatever happens to it.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// A single-node claim of the database's size and class: the data claim template, and the
/// backup claim (dumps are compressed, so the database's size holds them).
pub fn claim_spec(system: &HealthSystem) -> PersistentVolumeClaimSpec {
    let database = &system.spec.database;
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".into()]),
        storage_class_name: database.storage_class_name.clone(),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_string(),
                Quantity(database.storage.clone()),
            )])),
            ..VolumeResourceRequirements::default()
        }),
        ..PersistentVolumeClaimSpec::default()
    }
}

pub(crate) fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// The Service applications and backups connect to, and the headless one of the StatefulSet.
/// Both select the StatefulSet's own pod by name as well: a CloudNativePG Cluster's pods
/// carry the same labels (during a move both engines run), and a client sent to either
/// database at random would write into both.
pub fn services(system: &HealthSystem) -> Vec<Service> {
    let mut selector = labels::selector(system, COMPONENT_NAME);
    selector.insert(POD_NAME_LABEL.into(), pod_name());
    let service = |name: &str, headless: bool| Service {
        metadata: component_meta(system, name, COMPONENT_NAME),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            cluster_ip: headless.then(|| "None".to_string()),
            ports: Some(vec![
                service_port("postgres", PORT),
                service_port("metrics", METRICS_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    vec![service(SERVICE, false), service(HEADLESS_SERVICE, true)]
}

/// The label the StatefulSet controller gives each of its pods: its name.
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// The StatefulSet stopped (no pod), its claim kept: the old engine after a move.
pub fn stopped(mut statefulset: StatefulSet) -> StatefulSet {
    if let Some(spec) = statefulset.spec.as_mut() {
        spec.replicas = Some(0);
    }
    statefulset
}

/// Voluntary disruptions (a node drain) take the database pod down one at a time.
pub fn disruption_budget(system: &HealthSystem) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: component_meta(system, NAME, COMPONENT_NAME),
        spec: Some(PodDisruptionBudgetSpec {
            // One at a time, never none: with a single instance, minAvailable 1 would block
            // every node drain; the StatefulSet brings the evicted pod back on another node.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(system, COMPONENT_NAME)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
