//! DatabaseReady of a system on the CloudNativePG engine, from its Cluster's status: the
//! phase in our words (`FailingOver`, `Switchover`, `InstancesNotReady`, ...), the instances
//! ready and the current primary.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::Value;

use crate::controller::status::condition::{DATA_MISSING, Stamp, types};
use crate::resources::cnpg::CLUSTER;

/// What a Cluster reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterState {
    /// Instances wanted.
    pub instances: i32,
    /// Instances ready.
    pub ready_instances: i32,
    /// The current primary's pod, once there is one.
    pub primary: Option<String>,
    /// CloudNativePG's phase ("Cluster in healthy state", "Failing over", ...).
    pub phase: String,
    /// Its explanation of the phase.
    pub phase_reason: String,
    /// Volume claims of its instances in the namespace (from the claims' watch).
    pub claims: usize,
}

impl ClusterState {
    /// Reads a Cluster object (`spec.instances` and its status).
    pub fn read(cluster: &Value) -> Self {
        let status = &cluster["status"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let primary = status["currentPrimary"]
            .as_str()
            .filter(|p| !p.is_empty())
            .map(String::from);
        Self {
            instances: cluster["spec"]["instances"].as_i64().unwrap_or(0) as i32,
            ready_instances: status["readyInstances"].as_i64().unwrap_or(0) as i32,
            primary,
            phase: text(&status["phase"]),
            phase_reason: text(&status["phaseReason"]),
            claims: 0,
        }
    }

    /// Whether the primary takes writes: a primary is elected and ready (replicas may still be
    /// catching up).
    pub fn primary_ready(&self) -> bool {
        self.primary.is_some() && self.ready_instances >= 1 && self.phase != PHASE_FAILOVER
    }
}

const PHASE_HEALTHY: &str = "Cluster in healthy state";
const PHASE_UNRECOVERABLE: &str = "Cluster is unrecoverable and needs manual intervention";
const PHASE_FAILOVER: &str = "Failing over";
const PHASE_SWITCHOVER: &str = "Switchover in progress";

/// Our reason for a CloudNativePG phase that is not healthy.
fn reason(phase: &str) -> &'static str {
    match phase {
        PHASE_FAILOVER => "FailingOver",
        PHASE_SWITCHOVER => "Switchover",
        "" | "Setting up primary" => "DatabaseStarting",
        "Creating a new replica" | "Waiting for the instances to become active" => {
            "InstancesNotReady"
        }
        "Upgrading cluster"
        | "Upgrading Postgres major version"
        | "Cluster upgrade delayed"
        | "Online upgrade in progress"
        | "Applying configuration"
        | "Primary instance is being restarted in-place"
        | "Primary instance is being restarted without a switchover" => "Updating",
        PHASE_UNRECOVERABLE | "Waiting for user action" => "NeedsIntervention",
        _ => "EngineError",
    }
}

/// DatabaseReady from the Cluster (`None`: not made yet). `version` is the PostgreSQL major.
pub fn condition(cluster: Option<&ClusterState>, version: &str, stamp: Stamp) -> Condition {
    let Some(cluster) = cluster else {
        return stamp.condition(
            types::DATABASE,
            false,
            "DatabaseStarting",
            "waiting for the CloudNativePG Cluster postgres".into(),
        );
    };
    let counts = format!(
        "{} of {} instances ready",
        cluster.ready_instances, cluster.instances
    );
    let primary = cluster.primary.as_deref().unwrap_or("none yet");
    if cluster.phase == PHASE_UNRECOVERABLE && cluster.claims == 0 {
        // CloudNativePG never initialises an empty database in a Cluster that had data: it
        // holds the Cluster stopped, and so does the operator (it never deletes a Cluster).
        return stamp.condition(
            types::DATABASE,
            false,
            DATA_MISSING,
            format!("the volume claims that held this database's data are gone; CloudNativePG holds the Cluster {CLUSTER} stopped and no empty database starts. Restore the volumes (re-bind their PersistentVolumes if the class retains them), or restore a backup into a new system (spec.database.bootstrap); only if the data is lost for good, a person deletes the Cluster {CLUSTER} and the operator makes an empty one"),
        );
    }
    if cluster.phase == PHASE_HEALTHY && cluster.ready_instances >= cluster.instances {
        return stamp.condition(
            types::DATABASE,
            true,
            "DatabaseRunning",
            format!("PostgreSQL {version} is running: {counts}, primary {primary}"),
        );
    }
    let reason = if cluster.phase == PHASE_HEALTHY {
        "InstancesNotReady"
    } else {
        reason(&cluster.phase)
    };
    let phase = if cluster.phase.is_empty() {
        "no phase yet".to_string()
    } else if cluster.phase_reason.is_empty() {
        cluster.phase.clone()
    } else {
        format!("{} ({})", cluster.phase, cluster.phase_reason)
    };
    stamp.condition(
        types::DATABASE,
        false,
        reason,
        format!("CloudNativePG: {phase}; {counts}, primary {primary}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stamp() -> Stamp {
        Stamp {
            now: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            generation: Some(1),
        }
    }

    #[test]
    fn a_healthy_cluster_with_every_instance_ready_is_running() {
        let cluster = ClusterState::read(&json!({
            "spec": { "instances": 2 },
            "status": { "readyInstances": 2, "currentPrimary": "postgres-1", "phase": PHASE_HEALTHY }
        }));
        let c = condition(Some(&cluster), "17", stamp());
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "DatabaseRunning")
        );
        assert!(
            c.message
                .contains("2 of 2 instances ready, primary postgres-1"),
            "{}",
            c.message
        );
        assert!(cluster.primary_ready());
    }

    #[test]
    fn a_failover_is_said_in_our_words_with_the_engines() {
        let cluster = ClusterState::read(&json!({
            "spec": { "instances": 2 },
            "status": { "readyInstances": 1, "currentPrimary": "postgres-1", "targetPrimary": "postgres-2",
                        "phase": PHASE_FAILOVER, "phaseReason": "Failing over from postgres-1 to postgres-2" }
        }));
        let c = condition(Some(&cluster), "17", stamp());
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "FailingOver")
        );
        assert!(
            c.message
                .contains("Failing over from postgres-1 to postgres-2"),
            "{}",
            c.message
        );
        assert!(!cluster.primary_ready());
    }

    #[test]
    fn a_healthy_phase_with_a_replica_missing_is_not_ready() {
        let cluster = ClusterState::read(&json!({
            "spec": { "instances": 3 },
            "status": { "readyInstances": 2, "currentPrimary": "postgres-1", "phase": PHASE_HEALTHY }
        }));
        let c = condition(Some(&cluster), "15", stamp());
        assert_eq!(c.reason, "InstancesNotReady");
        assert!(cluster.primary_ready());
    }

    #[test]
    fn no_cluster_or_no_status_yet_is_starting() {
        assert_eq!(condition(None, "15", stamp()).reason, "DatabaseStarting");
        let new = ClusterState::read(&json!({ "spec": { "instances": 1 } }));
        assert_eq!(
            condition(Some(&new), "15", stamp()).reason,
            "DatabaseStarting"
        );
        assert!(!new.primary_ready());
    }

    #[test]
    fn an_unknown_phase_is_an_engine_error_naming_it() {
        let cluster = ClusterState::read(&json!({
            "spec": { "instances": 1 },
            "status": { "phase": "Invalid cluster definition", "phaseReason": "bad" }
        }));
        let c = condition(Some(&cluster), "15", stamp());
        assert_eq!(c.reason, "EngineError");
        assert!(
            c.message.contains("Invalid cluster definition (bad)"),
            "{}",
            c.message
        );
    }

    /// A Cluster whose instances' claims are all gone: CloudNativePG refuses to start (its
    /// phase, with a reason that comes and goes), and status says DataMissing, as for the
    /// StatefulSet's lost claim. With a claim left, it is CloudNativePG's own intervention.
    #[test]
    fn an_unrecoverable_cluster_without_claims_is_data_missing() {
        let unrecoverable = |claims| ClusterState {
            claims,
            ..ClusterState::read(&json!({
                "spec": { "instances": 1 },
                "status": { "readyInstances": 0, "currentPrimary": "postgres-1",
                            "phase": PHASE_UNRECOVERABLE }
            }))
        };
        let c = condition(Some(&unrecoverable(0)), "15", stamp());
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", DATA_MISSING)
        );
        assert!(
            c.message.contains("no empty database starts"),
            "{}",
            c.message
        );
        let c = condition(Some(&unrecoverable(1)), "15", stamp());
        assert_eq!(c.reason, "NeedsIntervention");
    }
}
