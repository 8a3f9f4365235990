//! The `HealthSystem` custom resource (`sdc.gov.rs/v1alpha1`): what a platform engineer
//! writes. Every field's `///` comment becomes its `kubectl explain` description, and every
//! rule below is enforced by the API server at admission (OpenAPI schema and CEL) and by
//! `render` before anything is printed (see `validation.rs`).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::HealthSystemStatus;

/// A health information system hosted in the State Data Centre. The operator turns it into an
/// isolated namespace with a PostgreSQL database, backups, network policies and monitoring.
/// The object's name is the system's identifier: a DNS label of at most 60 characters.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sdc.gov.rs",
    version = "v1alpha1",
    kind = "HealthSystem",
    plural = "healthsystems",
    singular = "healthsystem",
    shortname = "hs",
    category = "sdc",
    status = "HealthSystemStatus",
    derive = "PartialEq",
    doc = "A health information system hosted in the State Data Centre: an isolated namespace with a PostgreSQL database, backups, network policies and monitoring.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Lifecycle phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether every subsystem is ready"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the system is or is not ready"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace", description = "Namespace holding the system"),
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier", description = "Sizing preset"),
    printcolumn(name = "Instances", type_ = "integer", json_path = ".status.database.readyInstances", description = "PostgreSQL instances ready (CloudNativePG engine)", priority = 1),
    printcolumn(name = "Primary", type_ = "string", json_path = ".status.database.primary", description = "The current primary's pod (CloudNativePG engine)", priority = 1),
    printcolumn(name = "Migration", type_ = "string", json_path = ".status.migration.phase", description = "Phase of the migration, when the system is migrated", priority = 1),
    printcolumn(name = "Last Backup", type_ = "date", json_path = ".status.backup.lastSuccessfulTime", description = "Time of the last successful backup"),
    printcolumn(name = "Proven", type_ = "date", json_path = ".status.backup.lastProvenTime", description = "When the newest restore drill (logical or physical) that passed started: the backups were last proven then"),
    printcolumn(name = "Recoverable From", type_ = "date", json_path = ".status.backup.archive.firstRecoverabilityPoint", description = "The earliest time the continuous archive recovers to (CloudNativePG with archiving)", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 60").message("metadata.name must be a DNS label (lower-case letters, digits and '-') of at most 60 characters, so that the namespace hs-<name> is valid"),
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(oldSelf.migration) || !has(self.migration)").message("migration can only be declared when the system is created: an import would overwrite the live database").field_path(".migration"),
    validation = Rule::new("!has(self.migration) || !has(self.database.bootstrap)").message("a system is either migrated (spec.migration) or bootstrapped from a backup (spec.database.bootstrap), not both").field_path(".database.bootstrap"),
    validation = Rule::new("has(self.__namespace__) == has(oldSelf.__namespace__) && (!has(self.__namespace__) || self.__namespace__ == oldSelf.__namespace__)").message("namespace is immutable: moving a system to another namespace would leave its data behind").field_path(".namespace"),
)]
pub struct HealthSystemSpec {
    /// The institution the system belongs to.
    pub institution: Institution,

    /// Namespace that holds the system. Defaults to hs-<name>. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("namespace must be a DNS label: lower-case letters, digits and '-'"))]
    #[x_kube(validation = Rule::new("!self.startsWith('kube-') && !(self in ['default', 'kube-system', 'kube-public', 'kube-node-lease'])").message("namespace must not be default or a kube- namespace"))]
    pub namespace: Option<String>,

    /// Sizing preset: the namespace quota, default container limits and default database
    /// storage come from the operator's configuration for this tier.
    #[serde(default)]
    pub tier: Tier,

    /// Overrides of the tier's namespace quota, for systems that need more or less than
    /// their tier gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<Sizing>,

    /// Groups of the identity provider granted access inside the system's namespace.
    #[serde(default)]
    pub access: Access,

    /// The system's PostgreSQL database.
    pub database: Database,

    /// The migrated system's own workload. When absent, only the platform around it
    /// (database, backups, policies, monitoring) is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<Application>,

    /// Scheduled backups of the database, their retention and the recovery point objective.
    #[serde(default)]
    pub backup: Backup,

    /// Network access beyond the default deny: extra ingress sources and national platform
    /// services the system may reach.
    #[serde(default)]
    pub network: Network,

    /// Metrics scraping and alert rules.
    #[serde(default)]
    pub monitoring: Monitoring,

    /// Moves an existing database into this system: import, verification and a cutover
    /// approved by a person. Only when the system is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<super::migration::Migration>,

    /// What deleting this HealthSystem does to the namespace, data and credentials: Retain
    /// (the default) keeps them; Delete removes the namespace through the operator.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Identity of the institution that owns a hosted system.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Institution {
    /// Human-readable name of the institution, e.g. "Dom zdravlja Kragujevac".
    #[schemars(length(min = 1, max = 200))]
    pub display_name: String,

    /// Identifier of the institution in the national business register: 8 digits.
    #[schemars(length(max = 8))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{8}$')").message("registryId must be the institution's 8-digit register number"))]
    pub registry_id: String,

    /// Whether the institution is publicly or privately owned.
    pub ownership: Ownership,
}

/// Ownership of an institution.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Owned by the state, a province or a municipality.
    Public,
    /// Privately owned.
    Private,
}

/// Sizing preset of a hosted system.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tier {
    /// A clinic or a laboratory with a handful of users.
    Small,
    /// A health centre or a general hospital.
    #[default]
    Standard,
    /// A clinical centre or a large hospital.
    Large,
}

/// Overrides of the tier's namespace quota. Each value is a Kubernetes quantity.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sizing {
    /// Total CPU the namespace may request, e.g. "8".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("sizing.cpu must be a positive quantity such as 4 or 500m"))]
    pub cpu: Option<String>,

    /// Total memory the namespace may request, e.g. "16Gi".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("sizing.memory must be a positive quantity such as 16Gi"))]
    pub memory: Option<String>,

    /// Maximum number of pods in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub pods: Option<i32>,
}

/// Groups bound to roles in the system's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// Groups that run the system's application in its namespace (the `healthsystem-admin`
    /// role: workloads, logs, configuration and the application's credentials; never network
    /// policies, quotas, access or the database's objects).
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 253)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new("self.all(g, !g.startsWith('system:'))").message("groups starting with 'system:' are Kubernetes' own groups (system:authenticated is every user): name groups of the identity provider"))]
    pub admins: Vec<String>,

    /// Groups with read-only access to the system's namespace, Secrets aside (the
    /// `healthsystem-viewer` role).
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 253)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new("self.all(g, !g.startsWith('system:'))").message("groups starting with 'system:' are Kubernetes' own groups (system:authenticated is every user): name groups of the identity provider"))]
    pub viewers: Vec<String>,
}

/// The system's database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.synchronousReplication) || !self.synchronousReplication || (has(self.instances) && self.instances >= 2)").message("synchronousReplication needs instances: 2 or more (each commit waits until a replica has it)").field_path(".synchronousReplication"),
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storageClassName is immutable: the data lives on volumes of the original class").field_path(".storageClassName"),
    validation = Rule::new("has(self.bootstrap) == has(oldSelf.bootstrap) && (!has(self.bootstrap) || self.bootstrap == oldSelf.bootstrap)").message("bootstrap can only be declared when the system is created, and is immutable: a restore would overwrite the live database").field_path(".bootstrap"),
)]
pub struct Database {
    /// Database engine. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("engine is immutable: changing it would abandon the data"))]
    pub engine: DatabaseEngine,

    /// Major version of PostgreSQL. Immutable: a major upgrade is a migration (dump and
    /// import into a new system), not an edit.
    #[x_kube(validation = Rule::new("self == oldSelf").message("version is immutable: a major upgrade needs a migration to a new system"))]
    pub version: PostgresVersion,

    /// Size of the database volume, a Kubernetes quantity between 1Gi and 16Ti. It may grow
    /// but never shrink.
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).compareTo(quantity('1Gi')) >= 0 && quantity(self).compareTo(quantity('16Ti')) <= 0").message("storage must be a quantity between 1Gi and 16Ti, such as 50Gi"))]
    #[x_kube(validation = Rule::new("!isQuantity(self) || !isQuantity(oldSelf) || quantity(self).compareTo(quantity(oldSelf)) >= 0").message("storage cannot shrink: a smaller volume would not hold the data"))]
    pub storage: String,

    /// StorageClass of the database volume; the cluster default when absent. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("storageClassName must be the name of a StorageClass: lower-case letters, digits, '-' and '.'"))]
    pub storage_class_name: Option<String>,

    /// A person's acceptance that the data volume with this claim UID is lost for good. When
    /// the claim the database was initialised on disappears, the operator holds the database
    /// stopped (DatabaseReady=False, reason DataMissing, which names the UID) rather than
    /// start an empty one; setting this to that UID lets an empty database start. Restore the
    /// volume instead whenever possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub accept_data_loss: Option<String>,

    /// Start the new database from a backup in the object store (disaster recovery, or moving
    /// a system), restored before the system is ready. Only when the system is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Bootstrap>,

    /// PostgreSQL instances, a primary and its replicas (CloudNativePG engine; the
    /// StatefulSet engine runs one): the tier's (tiers.*.instances) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: Option<i32>,

    /// Each commit waits until a replica has it, so a failover loses no acknowledged row
    /// (CloudNativePG engine). Needs instances: 2 or more; with exactly 2, commits wait while
    /// the only replica is away (a failover, a node drain) until it is back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub synchronous_replication: bool,

    /// Move this database, made on the operator's StatefulSet engine, onto CloudNativePG:
    /// the application stops, a Cluster is made and the data copied into it and verified
    /// (row counts and checksums), then the system switches over (same roles and passwords)
    /// and the old StatefulSet is stopped and kept with its claim. Removing this after the
    /// switch releases the StatefulSet (its claim stays until a person deletes it).
    #[serde(default, rename = "move", skip_serializing_if = "Option::is_none")]
    pub engine_move: Option<super::DatabaseMove>,
}

/// Where a new database's content comes from: one of a logical backup or a continuous
/// archive.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.fromBackup) != has(self.fromArchive)").message("bootstrap takes exactly one of fromBackup and fromArchive"))]
pub struct Bootstrap {
    /// A backup of a system, live or deleted, in the operator's object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_backup: Option<BackupSource>,
    /// The continuous archive of a system on CloudNativePG, live or deleted, recovered to a
    /// point in time (CloudNativePG engine with backup.archiving): the new database is that
    /// system's as it was then, same PostgreSQL major version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_archive: Option<ArchiveSource>,
}

/// A system's continuous archive and the time to recover it to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveSource {
    /// The namespace the archived system had (its prefix in the store), e.g. hs-lab-old.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("fromArchive.namespace must be a namespace name such as hs-lab-old"))]
    pub namespace: String,
    /// The time to recover to, RFC 3339 (2026-12-07T10:15:00Z; every transaction committed
    /// up to it, none after), or latest (everything the archive holds).
    #[serde(default = "latest")]
    #[schemars(length(min = 1, max = 35))]
    #[x_kube(validation = Rule::new("self == 'latest' || (self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$') && timestamp(self) > timestamp('2000-01-01T00:00:00Z'))").message("fromArchive.targetTime must be latest or an RFC 3339 time such as 2026-12-07T10:15:00Z"))]
    pub target_time: String,
    /// The Secret in the new system's namespace with credentials that read the archived
    /// system's prefix (keys accessKeyId and secretAccessKey), which the platform provides:
    /// the new system's own credentials reach its own prefix only.
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: String,
}

/// A system's backup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSource {
    /// The namespace the backed-up system had (its prefix in the store), e.g. hs-lab-old.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("fromBackup.namespace must be a namespace name such as hs-lab-old"))]
    pub namespace: String,
    /// The backup's id (its start time, YYYYMMDDTHHMMSSZ, with -final for the backup taken
    /// when a system was deleted), or latest (the newest of either kind).
    #[serde(default = "latest")]
    #[schemars(length(min = 1, max = 22))]
    #[x_kube(validation = Rule::new("self == 'latest' || self.matches('^[0-9]{8}T[0-9]{6}Z(-final)?$')").message("fromBackup.backup must be latest or a backup id such as 20261129T071503Z"))]
    pub backup: String,
}

fn latest() -> String {
    "latest".into()
}

/// Database engines the operator provides.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DatabaseEngine {
    /// PostgreSQL, run by the operator as a StatefulSet.
    #[default]
    PostgreSQL,
}

/// PostgreSQL major versions the API knows; a platform offers those it has images for
/// (the operator configuration's `images.postgres`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostgresVersion {
    /// PostgreSQL 15.
    #[serde(rename = "15")]
    V15,
    /// PostgreSQL 16.
    #[serde(rename = "16")]
    V16,
    /// PostgreSQL 17.
    #[serde(rename = "17")]
    V17,
}

impl PostgresVersion {
    /// Every version the API knows, oldest first.
    pub const ALL: [Self; 3] = [Self::V15, Self::V16, Self::V17];

    /// The version written as `major` ("15"), if the API knows it.
    pub fn from_major(major: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == major)
    }

    /// The major version as written in manifests and image tags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V15 => "15",
            Self::V16 => "16",
            Self::V17 => "17",
        }
    }
}

/// The migrated system's own workload, run as a Deployment behind a Service and wired to
/// the database credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Container image of the application, from the data centre's registry mirror.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("!self.matches('\\\\s')").message("image must not contain white space"))]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message("image must be an image reference such as registry.sdc.gov.rs/his/app:1.0, optionally with @sha256:<digest>"))]
    pub image: String,

    /// Number of application pods (0 stops the application, keeping everything else).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 50))]
    pub replicas: i32,

    /// Port the application listens on. Pods run as non-root, so ports below 1024 are not
    /// available.
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,

    /// CPU and memory requests and limits of each application container. Defaults come from
    /// the namespace's LimitRange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = super::bounds::resources)]
    #[x_kube(validation = Rule::new(RESOURCES_RULE).message("resources: requests and limits of cpu, memory or ephemeral-storage only, each a quantity of at least 0 such as 500m or 1Gi, no request above its limit, and no claims"))]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
}

/// An image reference as container runtimes read it: an optional registry host (and port),
/// lower-case path components, an optional tag and an optional sha256 digest. Anything else
/// (a control character, an upper-case path) would fail only when the pod starts, or make
/// the API server refuse the Deployment.
const IMAGE_RULE: &str = "self.matches('^([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*(:[0-9]+)?/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*(:[A-Za-z0-9_][-A-Za-z0-9_.]{0,127})?(@sha256:[a-f0-9]{64})?$')";

/// What the API server accepts of a container's resources (checked at admission, naming
/// the spec's field, instead of a Deployment refused later).
const RESOURCES_RULE: &str = "!has(self.claims) \
    && (!has(self.limits) || self.limits.all(k, k in ['cpu', 'memory', 'ephemeral-storage'] \
        && isQuantity(string(self.limits[k])) && !quantity(string(self.limits[k])).isLessThan(quantity('0')))) \
    && (!has(self.requests) || self.requests.all(k, k in ['cpu', 'memory', 'ephemeral-storage'] \
        && isQuantity(string(self.requests[k])) && !quantity(string(self.requests[k])).isLessThan(quantity('0')) \
        && (!has(self.limits) || !(k in self.limits) || !isQuantity(string(self.limits[k])) \
            || quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)))";

fn default_replicas() -> i32 {
    2
}

/// Backup schedule, retention and recovery point objective.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    /// When backups run, a five-field cron expression in the operator's time zone, e.g.
    /// "0 2 * * *" for 02:00 every day.
    #[serde(default = "default_schedule")]
    #[schemars(length(min = 9, max = 100))]
    #[x_kube(validation = Rule::new("self.matches('^\\\\s*(\\\\S+\\\\s+){4}\\\\S+\\\\s*$')").message("schedule must be a cron expression of five fields, such as \"0 2 * * *\""))]
    #[x_kube(validation = Rule::new(r#"self.matches('(?i)^\\s*([*]|[0-5]?[0-9](-[0-5]?[0-9])?)(/[1-9][0-9]*)?(,([*]|[0-5]?[0-9](-[0-5]?[0-9])?)(/[1-9][0-9]*)?)*\\s+([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]*)?(,([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]*)?)*\\s+([*?]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]*)?(,([*?]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]*)?)*\\s+([*]|(0?[1-9]|1[0-2]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)(-(0?[1-9]|1[0-2]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))?)(/[1-9][0-9]*)?(,([*]|(0?[1-9]|1[0-2]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)(-(0?[1-9]|1[0-2]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))?)(/[1-9][0-9]*)?)*\\s+([*?]|([0-7]|sun|mon|tue|wed|thu|fri|sat)(-([0-7]|sun|mon|tue|wed|thu|fri|sat))?)(/[1-9][0-9]*)?(,([*?]|([0-7]|sun|mon|tue|wed|thu|fri|sat)(-([0-7]|sun|mon|tue|wed|thu|fri|sat))?)(/[1-9][0-9]*)?)*\\s*$')"#).message("schedule has a field out of range: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, day of week 0-7 or sun-sat (lists, ranges and steps allowed)"))]
    #[x_kube(validation = Rule::new(r#"!self.matches('(?i)^\\s*\\S+\\s+\\S+\\s+(30|31)\\s+(0?2|feb)\\s+[*?]\\s*$') && !self.matches('(?i)^\\s*\\S+\\s+\\S+\\s+31\\s+(0?4|0?6|0?9|11|apr|jun|sep|nov)\\s+[*?]\\s*$')"#).message("schedule names a day that never comes (such as 31 February): the backup would never run"))]
    pub schedule: String,

    /// How many backups are kept.
    #[serde(default)]
    pub retention: Retention,

    /// Recovery point objective: when the last successful backup is older than this, the
    /// system is reported unhealthy. A duration between 1h and 168h, such as "24h".
    #[serde(default = "default_rpo")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(h|m)$') && duration(self) >= duration('1h') && duration(self) <= duration('168h')").message("rpo must be a duration in hours or minutes between 1h and 168h, such as 24h"))]
    pub rpo: String,

    /// With deletionPolicy Delete and an object store, a last backup is taken (kept apart
    /// from retention: `ID-final` in the store) and its manifest awaited before the namespace
    /// is deleted; true deletes without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_final_backup: bool,
}

impl Default for Backup {
    fn default() -> Self {
        Self {
            schedule: default_schedule(),
            retention: Retention::default(),
            rpo: default_rpo(),
            skip_final_backup: false,
        }
    }
}

fn default_schedule() -> String {
    "0 2 * * *".to_string()
}

fn default_rpo() -> String {
    "24h".to_string()
}

/// How long backups are kept. In the object store, by age whatever the schedule: every backup
/// of the last `daily` days, the newest of each of the last `weekly` weeks and of each of the
/// last `monthly` months. On a backup claim, by count.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Daily backups kept (at least 1).
    #[serde(default = "default_daily")]
    #[schemars(range(min = 1, max = 366))]
    pub daily: i32,
    /// Weekly backups kept.
    #[serde(default = "default_weekly")]
    #[schemars(range(min = 0, max = 104))]
    pub weekly: i32,
    /// Monthly backups kept.
    #[serde(default = "default_monthly")]
    #[schemars(range(min = 0, max = 120))]
    pub monthly: i32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            daily: default_daily(),
            weekly: default_weekly(),
            monthly: default_monthly(),
        }
    }
}

fn default_daily() -> i32 {
    7
}
fn default_weekly() -> i32 {
    4
}
fn default_monthly() -> i32 {
    12
}

/// Network access granted on top of the namespace's default deny.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Extra sources allowed to reach the application port, e.g. a reverse proxy namespace.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub allow_from: Vec<IngressSource>,

    /// National platform services the system may reach (egress), by name, e.g.
    /// e-health-record, e-referral, e-sick-leave. Their addresses come from the operator's
    /// configuration; an unknown name is reported in status.
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 63)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message("platformServices must be names such as e-health-record (lower-case letters, digits and '-')"))]
    pub platform_services: Vec<String>,
}

/// A source of ingress traffic, selected by namespace labels, pod labels or both.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.namespaceSelector) || has(self.podSelector)").message("each allowFrom entry needs a namespaceSelector, a podSelector or both"))]
pub struct IngressSource {
    /// Namespaces whose pods may connect. With podSelector, only the matching pods of the
    /// matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = super::bounds::selector)]
    #[x_kube(validation = Rule::new(super::selector::rule()).message(super::selector::MESSAGE))]
    pub namespace_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,

    /// Pods that may connect; in the system's own namespace unless namespaceSelector is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = super::bounds::selector)]
    #[x_kube(validation = Rule::new(super::selector::rule()).message(super::selector::MESSAGE))]
    pub pod_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// Monitoring of the hosted system.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// Whether metrics are scraped and the system's alert rules installed.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for Monitoring {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn default_true() -> bool {
    true
}

/// What deleting a HealthSystem does to its data.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the namespace, volumes, data and credentials; the operator stops managing them.
    #[default]
    Retain,
    /// Remove the namespace and everything in it, through the operator's finalizer.
    Delete,
}
