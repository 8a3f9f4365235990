//! The fleet-wide state of restore drills, held by the controller's context: drills started
//! and not yet seen in the watch store (so concurrent reconciles never start more than the
//! fleet's limit), and whether the drill pods' policy was applied.

use std::sync::atomic::AtomicBool;

use k8s_openapi::jiff::Timestamp;

/// Drills started and not yet seen in the watch store; whether the drill policy is applied.
#[derive(Default)]
pub struct DrillSlots {
    /// Each drill Job started (its namespace/name) and when.
    pub(in crate::controller) started: tokio::sync::Mutex<Vec<(String, Timestamp)>>,
    /// The drill pods' NetworkPolicy in the restore namespace was applied by this process.
    pub(in crate::controller) policy_applied: AtomicBool,
    /// The physical drills' NetworkPolicy in the restore namespace was applied by this process.
    pub(in crate::controller) physical_policy_applied: AtomicBool,
}
