//! Database restarts, a bounded number at a time across the fleet. The database StatefulSet's
//! update strategy is `OnDelete`: a new pod template (an image changed in the operator's
//! configuration, an operator upgrade, a new tier) is applied at once, but reaches the
//! running server only when the operator evicts its pod, and it evicts at most
//! `rollout.maxDatabaseRestarts` at a time. A restart holds its slot until the new pod is
//! ready, so a template that breaks databases stops the rollout after that many, instead of
//! taking the whole fleet down.
//!
//! The slots are counted in this process: after an operator restart, restarts already under
//! way are not counted (at most twice the bound for that while).

use std::collections::BTreeSet;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DynamicObject, EvictParams};
use serde_json::Value;

use crate::api::DatabaseRestart;
use crate::error::{AtStep, Result, Step};

/// The fleet's database restarts under way and waiting, by namespace.
#[derive(Debug, Default)]
pub struct Restarts {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    in_progress: BTreeSet<String>,
    pending: BTreeSet<String>,
}

/// What a reconcile does about its database's pod.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Evict,
    Report(Option<DatabaseRestart>),
}

/// What the StatefulSet's status says about its pods and the current template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// Every pod runs the current template and is ready (or none is wanted).
    Settled,
    /// A pod runs an older template.
    Outdated,
    /// Neither yet: the controller has not seen the new template, or a pod is starting.
    Moving,
}

/// Reads a StatefulSet's status (pure): its `metadata.generation` and its spec and status
/// (`data`, as the watch store keeps them).
pub fn template(generation: Option<i64>, data: &Value) -> Template {
    let number = |pointer: &str| data.pointer(pointer).and_then(Value::as_i64);
    let observed = number("/status/observedGeneration").unwrap_or(0) >= generation.unwrap_or(0);
    let wanted = number("/spec/replicas").unwrap_or(1);
    let pods = number("/status/replicas").unwrap_or(0);
    let updated = number("/status/updatedReplicas").unwrap_or(0);
    let ready = number("/status/readyReplicas").unwrap_or(0);
    if !observed {
        Template::Moving
    } else if pods > 0 && updated < pods {
        Template::Outdated
    } else if pods == wanted && updated == wanted && ready == wanted {
        Template::Settled
    } else {
        Template::Moving
    }
}

impl Restarts {
    /// What to do for the system of `namespace` whose database is in state `template`:
    /// evict its pod (a slot is taken for it), or report where its restart stands.
    fn decide(&self, namespace: &str, template: Template, max: usize) -> Decision {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.in_progress.contains(namespace) {
            if template == Template::Settled {
                state.in_progress.remove(namespace);
                return Decision::Report(None);
            }
            return Decision::Report(Some(DatabaseRestart::InProgress));
        }
        if template != Template::Outdated {
            state.pending.remove(namespace);
            return Decision::Report(None);
        }
        if state.in_progress.len() >= max {
            state.pending.insert(namespace.to_string());
            return Decision::Report(Some(DatabaseRestart::Pending));
        }
        // The slot is taken before the eviction is asked for, so concurrent reconciles never
        // exceed the bound.
        state.pending.remove(namespace);
        state.in_progress.insert(namespace.to_string());
        Decision::Evict
    }

    /// Decides for the system of `namespace`, whose database StatefulSet is `statefulset`
    /// (as watched), and evicts its pod `pod` when a slot is free.
    pub async fn step(
        &self,
        client: &Client,
        namespace: &str,
        pod: &str,
        statefulset: Option<&DynamicObject>,
        max: usize,
    ) -> Result<Option<DatabaseRestart>> {
        let template = statefulset
            .map(|s| template(s.metadata.generation, &s.data))
            .unwrap_or(Template::Settled);
        if let Decision::Report(restart) = self.decide(namespace, template, max) {
            return Ok(restart);
        }
        let evicted = Api::<Pod>::namespaced(client.clone(), namespace)
            .evict(pod, &EvictParams::default())
            .await;
        match evicted {
            Ok(_) => Ok(Some(DatabaseRestart::InProgress)),
            // Already gone: the StatefulSet makes the new pod.
            Err(kube::Error::Api(status)) if status.code == 404 => {
                Ok(Some(DatabaseRestart::InProgress))
            }
            Err(e) => {
                // Not evicted (a disruption budget, the API): the slot is given back.
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.in_progress.remove(namespace);
                state.pending.insert(namespace.to_string());
                match e {
                    kube::Error::Api(status) if status.code == 429 => {
                        Ok(Some(DatabaseRestart::Pending))
                    }
                    other => Err(other).at(Step::Restart, format!("Pod {pod}")),
                }
            }
        }
    }

    /// Forgets a system (deleted).
    pub fn forget(&self, namespace: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.in_progress.remove(namespace);
        state.pending.remove(namespace);
    }

    /// Restarts under way and waiting for a slot, across the fleet.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.in_progress.len(), state.pending.len())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sts(generation: i64, observed: i64, pods: i64, updated: i64, ready: i64) -> Template {
        held(generation, observed, pods, updated, ready, 1)
    }

    fn held(
        generation: i64,
        observed: i64,
        pods: i64,
        updated: i64,
        ready: i64,
        wanted: i64,
    ) -> Template {
        template(
            Some(generation),
            &json!({
                "spec": { "replicas": wanted },
                "status": { "observedGeneration": observed, "replicas": pods,
                            "updatedReplicas": updated, "readyReplicas": ready }
            }),
        )
    }

    #[test]
    fn a_pod_on_an_older_template_is_outdated_once_the_controller_saw_the_new_one() {
        assert_eq!(sts(2, 2, 1, 0, 1), Template::Outdated);
        assert_eq!(sts(2, 1, 1, 1, 1), Template::Moving);
        assert_eq!(sts(2, 2, 1, 1, 1), Template::Settled);
        // Evicted: no pod yet, then a new one starting.
        assert_eq!(sts(2, 2, 0, 0, 0), Template::Moving);
        assert_eq!(sts(2, 2, 1, 1, 0), Template::Moving);
        // Held at zero replicas (DataMissing): nothing to restart.
        assert_eq!(held(3, 3, 0, 0, 0, 0), Template::Settled);
    }

    #[test]
    fn at_most_max_restarts_are_under_way_and_a_slot_frees_when_the_pod_is_ready() {
        let restarts = Restarts::default();
        let decide = |ns: &str, t| restarts.decide(ns, t, 2);
        assert_eq!(decide("a", Template::Outdated), Decision::Evict);
        assert_eq!(decide("b", Template::Outdated), Decision::Evict);
        assert_eq!(
            decide("c", Template::Outdated),
            Decision::Report(Some(DatabaseRestart::Pending))
        );
        assert_eq!(restarts.counts(), (2, 1));
        // a's new pod is starting: still under way, c still waits.
        assert_eq!(
            decide("a", Template::Moving),
            Decision::Report(Some(DatabaseRestart::InProgress))
        );
        assert_eq!(
            decide("c", Template::Outdated),
            Decision::Report(Some(DatabaseRestart::Pending))
        );
        // a is ready on the new template: its slot goes to c.
        assert_eq!(decide("a", Template::Settled), Decision::Report(None));
        assert_eq!(decide("c", Template::Outdated), Decision::Evict);
        assert_eq!(restarts.counts(), (2, 0));
        // A deleted system gives its slot back.
        restarts.forget("b");
        assert_eq!(restarts.counts(), (1, 0));
        // A system whose pods run the current template takes no slot.
        assert_eq!(decide("d", Template::Settled), Decision::Report(None));
        assert_eq!(decide("e", Template::Moving), Decision::Report(None));
        assert_eq!(restarts.counts(), (1, 0));
    }
}
