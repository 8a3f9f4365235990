//! Moving a database made on the StatefulSet engine onto a CloudNativePG Cluster
//! (`spec.database.move`), and where the move stands (`status.database.move`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::VerificationEvidence;

/// A person's request to move the system's database onto another engine. The Cluster is made
/// while the application runs; the application is stopped from the start of the copy until
/// the copy is verified and the system switched; the old StatefulSet and its claim are kept.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseMove {
    /// The engine to move onto.
    pub to: MoveTarget,
    /// Who approved the move (and the application's downtime it takes).
    #[schemars(length(min = 1, max = 253))]
    pub approved_by: String,
    /// Raise to copy again after a failed attempt (before the switch only).
    #[serde(default = "first_attempt")]
    #[schemars(range(min = 1))]
    pub attempt: i32,
}

fn first_attempt() -> i32 {
    1
}

/// Engines a database can move onto.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveTarget {
    /// A CloudNativePG Cluster: replicas, automatic failover, TLS only.
    #[serde(rename = "CloudNativePG")]
    CloudNativePg,
}

/// Where a move stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MovePhase {
    /// The Cluster is being made; the application still runs on the old database.
    Preparing,
    /// The application is stopped; a Job copies the old database into the Cluster once no
    /// session of the application is left.
    Copying,
    /// A Job compares both databases (row counts and checksums).
    Verifying,
    /// The system runs on the Cluster; the old StatefulSet is stopped and kept.
    Switched,
    /// A step failed (the reason says which): the application runs on the old database
    /// again; raise spec.database.move.attempt to copy again.
    Failed,
}

impl MovePhase {
    /// The phase as written in status and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preparing => "Preparing",
            Self::Copying => "Copying",
            Self::Verifying => "Verifying",
            Self::Switched => "Switched",
            Self::Failed => "Failed",
        }
    }

    /// Whether the application is held stopped (the old database must not change while it
    /// is copied and compared).
    pub fn holds_application(self) -> bool {
        matches!(self, Self::Copying | Self::Verifying)
    }
}

/// Where the move of spec.database.move stands, written by the operator.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MoveStatus {
    /// The phase.
    pub phase: MovePhase,
    /// The attempt (spec.database.move.attempt) this status describes.
    pub attempt: i32,
    /// Why the move is in this phase, in one word.
    pub reason: String,
    /// What is happening or what went wrong, and what to do.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the phase last changed.
    pub last_transition_time: Time,
    /// Who approved it.
    #[serde(default)]
    pub approved_by: String,
    /// When the application was stopped for this attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Time>,
    /// Copies made into the Cluster by this move (a later copy may replace an earlier one).
    #[serde(default)]
    pub copies: i32,
    /// The comparison of both databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationEvidence>,
    /// When the system switched onto the Cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched: Option<Time>,
    /// The application's downtime, from its stop to the switch, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_seconds: Option<i64>,
}
