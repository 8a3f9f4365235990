//! What the operator reports about a `HealthSystem`: its phase, one condition per subsystem
//! plus `Ready`, and where to find its database and backups. Written only by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a HealthSystem, written by the operator.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HealthSystemStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Lifecycle phase: Pending, Provisioning, Ready, Degraded or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Ready, and one condition per subsystem: NamespaceReady, DatabaseReady, BackupReady,
    /// NetworkIsolated, AccessControlled, MonitoringReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Namespace that holds the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Where applications find the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseStatus>,

    /// Outcome of the scheduled backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,

    /// Where the migration of spec.migration stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<super::migration::MigrationStatus>,
}

/// Lifecycle phase of a HealthSystem.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, nothing created yet.
    Pending,
    /// Children are being created or are not ready yet.
    Provisioning,
    /// Every subsystem is ready.
    Ready,
    /// Was ready, and a subsystem no longer is, or the spec cannot be satisfied.
    Degraded,
    /// Being deleted according to its deletion policy.
    Deleting,
}

/// Connection details of the database (never the credentials themselves).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// Name of the Service, in the system's namespace, that reaches the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Name of the Secret, in the system's namespace, holding the database credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// UID of the volume claim holding the data, recorded once it is bound: if that claim
    /// disappears, the database is held stopped (DataMissing) instead of starting empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_claim_uid: Option<String>,
    /// The database pod runs an older template (a new image, an operator upgrade, a new
    /// tier) and is restarted onto the new one: `Pending` while the fleet's restart slots
    /// (rollout.maxDatabaseRestarts) are taken, `InProgress` until the new pod is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<DatabaseRestart>,
    /// Where the restore of spec.database.bootstrap stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapStatus>,
    /// What runs this database, recorded when it is made: a system keeps it whatever the
    /// operator's configuration says for new systems. Absent on systems made before it was
    /// recorded (the StatefulSet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
    /// PostgreSQL instances wanted (CloudNativePG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<i32>,
    /// Instances ready (CloudNativePG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_instances: Option<i32>,
    /// The pod of the current primary (CloudNativePG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Where the move of spec.database.move stands.
    #[serde(default, rename = "move", skip_serializing_if = "Option::is_none")]
    pub engine_move: Option<super::MoveStatus>,
}

/// What runs a system's PostgreSQL.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Engine {
    /// One pod of a StatefulSet the operator builds: no replica, no failover.
    #[default]
    StatefulSet,
    /// A CloudNativePG Cluster: instances by tier, automatic failover, TLS only.
    #[serde(rename = "CloudNativePG")]
    CloudNativePg,
}

/// The restore of a new database from a backup (spec.database.bootstrap).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapStatus {
    /// Restoring, Restored or Failed.
    pub phase: String,
    /// The backup restored (its id).
    #[serde(default)]
    pub backup: String,
    /// Tables and rows restored, checked against the backup's manifest.
    #[serde(default)]
    pub tables: i64,
    /// Rows restored.
    #[serde(default)]
    pub rows: i64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened.
    #[serde(default)]
    pub message: String,
    /// The restore Job, in the restore namespace.
    #[serde(default)]
    pub job: String,
}

/// Where a database's restart onto a new pod template stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseRestart {
    /// Waiting for one of the fleet's restart slots.
    Pending,
    /// The old pod was evicted; the new one is not ready yet.
    InProgress,
}

/// Outcome of the scheduled backups, from the backup Jobs.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// When the last successful backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// When the last failed backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_time: Option<Time>,
    /// When the backup that is running started (absent while none runs): a run far longer
    /// than the last good one is alerted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<Time>,
    /// The newest backup in the object store, from its manifest (with an object store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<LastBackup>,
    /// The evidence of the last restore drill (with an object store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<DrillStatus>,
    /// When the last drill that passed started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_drill_time: Option<Time>,
    /// When the system's backups were last proven: the start of the newest drill, logical or
    /// physical, that passed (`kubectl get hs` shows it as Proven).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_proven_time: Option<Time>,
    /// The evidence of the last physical drill: the archive's latest base backup and WAL
    /// recovered into a throwaway Cluster (archiving on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_physical_drill: Option<DrillStatus>,
    /// When the last physical drill that passed started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_physical_drill_time: Option<Time>,
    /// The continuous archive of WAL and base backups (CloudNativePG engine, archiving on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveStatus>,
}

/// The continuous archive: what can be recovered, and whether WAL is being archived.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveStatus {
    /// Where it is (`s3://bucket/namespace/archive`).
    pub destination: String,
    /// The earliest time the database can be recovered to (the oldest base backup kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_recoverability_point: Option<Time>,
    /// When the newest base backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_base_backup_time: Option<Time>,
    /// When the newest failed base backup ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_base_backup_time: Option<Time>,
    /// Whether WAL segments are being archived (CloudNativePG's ContinuousArchiving), once
    /// it has said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_archiving: Option<bool>,
    /// Why not, in its words, when it is failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The newest backup in the object store, as its manifest describes it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    /// Its id in the store (its start time).
    pub id: String,
    /// When its upload was verified.
    pub finished_at: Time,
    /// Bytes stored (encrypted).
    pub size: i64,
    /// Tables in it.
    pub tables: i64,
    /// Rows in it, counted in the dump's snapshot.
    pub rows: i64,
    /// How long it took, from its start to its verified upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
}

/// What a restore drill proved: the latest backup restored into a throwaway PostgreSQL,
/// its checksum, decryption, pg_restore and every table's row count checked.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DrillStatus {
    /// When the drill started.
    pub time: Time,
    /// The backup restored (its id in the store).
    #[serde(default)]
    pub backup: String,
    /// How long the drill took.
    #[serde(default)]
    pub duration_seconds: i64,
    /// Tables compared with the manifest.
    #[serde(default)]
    pub tables: i64,
    /// Rows in the restored database.
    #[serde(default)]
    pub rows: i64,
    /// Passed or Failed.
    pub result: String,
    /// Why it failed (ChecksumMismatch, DecryptionFailed, RestoreFailed, RowCountMismatch,
    /// NoBackup, StoreUnreachable, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened.
    #[serde(default)]
    pub message: String,
    /// The drill Job, in the restore namespace.
    #[serde(default)]
    pub job: String,
    /// The value of the annotation sdc.gov.rs/drill-requested this drill answered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}
