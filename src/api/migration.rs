//! `spec.migration` and `status.migration`: moving a system's existing database into the
//! data centre. The operator imports the source into the system's database, verifies that
//! every table arrived whole, and cuts over only when a person approves a fresh verification
//! (`controller/migration.rs` drives the phases, `resources/migration.rs` builds the Jobs).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The system's database comes from an existing one: imported, verified, then cut over.
/// Declared when the system is created (an import into a live database would overwrite it).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(oldSelf.cutover) || !has(self.cutover) || self.attempt == oldSelf.attempt").message("attempt cannot change while a cutover is approved: remove spec.migration.cutover in the same edit to import again (refused after the cutover itself)").field_path(".attempt"),
    validation = Rule::new("!has(oldSelf.cutover) || !has(self.cutover) || self.cutover == oldSelf.cutover").message("a cutover approval cannot be edited: remove it, then approve again").field_path(".cutover"),
)]
pub struct Migration {
    /// The database the system is moved from.
    pub source: MigrationSource,

    /// How the data is moved: DumpAndRestore (pg_dump of the source restored in one
    /// transaction into the system's database).
    #[serde(default)]
    pub method: MigrationMethod,

    /// Import attempt. Raising it imports again (the previous import is replaced in one
    /// transaction) and verifies again; refused once the system is cut over.
    #[serde(default = "default_attempt")]
    #[schemars(range(min = 1, max = 1000))]
    pub attempt: i32,

    /// What verification compares besides every table's exact row count.
    #[serde(default)]
    pub verification: VerificationSpec,

    /// A person's approval to cut over: the system goes live on the imported data once the
    /// latest verification passed and is fresh enough (otherwise it is verified again first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<CutoverApproval>,
}

fn default_attempt() -> i32 {
    1
}

/// Where the source database is and how to log in to it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSource {
    /// Host name or address of the source PostgreSQL server.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$')").message("host must be a host name or an IP address"))]
    pub host: String,

    /// Port of the source server.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Database to import.
    #[schemars(length(min = 1, max = 63))]
    pub database: String,

    /// Secret in the system's namespace with the keys `username` and `password` of a role
    /// that can read the whole source database. Put there by the migration team.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("secretName must be the name of a Secret (lower-case letters, digits, '-' and '.')"))]
    pub secret_name: String,

    /// Where the source server is, for the egress allowance the import and verification
    /// pods get while they run: an address block, or pods selected by labels.
    pub network: SourceNetwork,
}

fn default_port() -> i32 {
    5432
}

/// The network peer of the source database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.cidr) != (has(self.namespaceSelector) || has(self.podSelector))").message("network needs either cidr or namespaceSelector/podSelector, not both"))]
pub struct SourceNetwork {
    /// Address block of the source server, e.g. 10.20.30.40/32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 43))]
    #[x_kube(validation = Rule::new("isCIDR(self)").message("cidr must be an address block such as 10.20.30.40/32"))]
    pub cidr: Option<String>,

    /// Namespaces of the source pods, when the source runs in this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = super::bounds::selector)]
    #[x_kube(validation = Rule::new(super::selector::rule()).message(super::selector::MESSAGE))]
    pub namespace_selector: Option<LabelSelector>,

    /// The source pods, when the source runs in this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = super::bounds::selector)]
    #[x_kube(validation = Rule::new(super::selector::rule()).message(super::selector::MESSAGE))]
    pub pod_selector: Option<LabelSelector>,
}

/// Methods of moving the data.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MigrationMethod {
    /// pg_dump of the source, restored with pg_restore in a single transaction. The source
    /// should not change between the import and the cutover: verification would fail.
    #[default]
    DumpAndRestore,
}

/// What verification compares.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSpec {
    /// Tables (schema.table) whose contents are compared by checksum besides their row
    /// counts; ["*"], the default, checksums every table; [] compares row counts only.
    #[serde(default = "default_checksum_tables")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 127)))]
    #[x_kube(validation = Rule::new("self.all(t, t == '*' || t.matches('^[^.,\\\\s]+[.][^.,\\\\s]+$'))").message("checksumTables must name tables as schema.table (no commas or spaces), or be [\"*\"]"))]
    pub checksum_tables: Vec<String>,
}

impl Default for VerificationSpec {
    fn default() -> Self {
        Self {
            checksum_tables: default_checksum_tables(),
        }
    }
}

fn default_checksum_tables() -> Vec<String> {
    vec!["*".to_string()]
}

/// Who approved the cutover, and when.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CutoverApproval {
    /// The person who approved, e.g. their user name in the identity provider.
    #[schemars(length(min = 1, max = 253))]
    pub approved_by: String,
    /// When they approved (RFC 3339). An approval older than the verification of the current
    /// attempt does not count: the evidence was not there yet.
    pub approved_at: Time,
}

/// Phases of a migration.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationPhase {
    /// Waiting for the system's database before importing.
    Pending,
    /// The import Job copies the source into the system's database.
    Importing,
    /// The verification Job compares source and target.
    Verifying,
    /// Verified; waiting for a person's approval.
    AwaitingCutover,
    /// The system is live on the imported data; the source is no longer read.
    CutOver,
    /// A step failed (the reason says which); raise spec.migration.attempt to import again.
    Failed,
}

impl MigrationPhase {
    /// The phase as written in status and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Importing => "Importing",
            Self::Verifying => "Verifying",
            Self::AwaitingCutover => "AwaitingCutover",
            Self::CutOver => "CutOver",
            Self::Failed => "Failed",
        }
    }

    /// Every phase, in order.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Importing,
        Self::Verifying,
        Self::AwaitingCutover,
        Self::CutOver,
        Self::Failed,
    ];
}

/// Where a migration stands, written by the operator.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// The phase.
    pub phase: MigrationPhase,
    /// The attempt (spec.migration.attempt) this status describes.
    pub attempt: i32,
    /// Why the migration is in this phase, in one word.
    pub reason: String,
    /// What is happening or what went wrong, and what to do.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the phase last changed.
    pub last_transition_time: Time,
    /// When the import of this attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_started: Option<Time>,
    /// When the import of this attempt finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<Time>,
    /// Imports that succeeded into this system's database, all attempts together. Only a
    /// database this migration filled may be replaced by a new import: with none, the
    /// import refuses a database that holds tables.
    #[serde(default)]
    pub imports: i32,
    /// Verification runs of this attempt so far (a stale verification is run again).
    #[serde(default)]
    pub verification_runs: i32,
    /// When this attempt first passed verification: approvals older than this do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_verified: Option<Time>,
    /// The evidence of the latest verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationEvidence>,
    /// When the system went live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_over: Option<Time>,
    /// The person whose approval the cutover followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// What a verification found, comparing source and target each in one snapshot.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerificationEvidence {
    /// When the verification finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// Whether source and target agree.
    #[serde(default)]
    pub passed: bool,
    /// Tables compared (in the source or the target).
    #[serde(default)]
    pub tables: i64,
    /// Rows in the target, all tables together.
    #[serde(default)]
    pub rows: i64,
    /// Tables whose contents were compared by checksum.
    #[serde(default)]
    pub checksummed: i64,
    /// The first differences found (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<TableMismatch>,
    /// Differences beyond those listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_mismatches: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One table that differs between source and target.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TableMismatch {
    /// schema.table.
    pub table: String,
    /// What differs: "missing in target", "missing in source", "row count" or "checksum".
    pub difference: String,
    /// Rows in the source, when the table is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_rows: Option<i64>,
    /// Rows in the target, when the table is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rows: Option<i64>,
}
