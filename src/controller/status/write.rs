//! Writing a status only when it changed: each condition keeps its lastTransitionTime unless
//! it flipped, a step of provisioning is written at most every few seconds, and an event is
//! published when readiness flips or something needs a person.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PatchParams};
use kube::runtime::events::{EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::api::{HealthSystem, HealthSystemStatus, Phase};
use crate::controller::apply::patch_body::apply_patch;
use crate::controller::runtime::events::publish;
use crate::controller::status::condition::{
    CREDENTIALS_MISSING, DATA_MISSING, NAMESPACE_NOT_OWNED, is_refusal, types,
};
use crate::controller::status::written::WrittenStatus;
use crate::error::{AtStep, Result, Step};
use crate::resources::labels::MANAGER;

/// Keeps the old lastTransitionTime of every condition whose status did not flip.
pub fn merge(old: Option<&HealthSystemStatus>, mut new: HealthSystemStatus) -> HealthSystemStatus {
    if let Some(old) = old {
        for condition in &mut new.conditions {
            if let Some(previous) = old.conditions.iter().find(|c| c.type_ == condition.type_)
                && previous.status == condition.status
            {
                condition.last_transition_time = previous.last_transition_time.clone();
            }
        }
    }
    new
}

/// While a system is provisioned its conditions move every few seconds (namespace, volume,
/// pods starting): such a step is written at most once per this interval, and the reconcile
/// comes back for the rest of it. At fleet scale each write is one more request per system.
/// Ready, a new generation and anything that needs a person are written at once.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// What became of a new status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Unchanged,
    Written,
    /// A step of provisioning, to be written in this long (see [`PROGRESS_INTERVAL`]).
    Held(Duration),
}

/// How long `new`, a step of provisioning, waits before it is written over `old` at `now`.
pub fn progress_hold(
    old: Option<&HealthSystemStatus>,
    new: &HealthSystemStatus,
    now: Timestamp,
) -> Option<Duration> {
    let old = old?;
    let provisioning = |s: &HealthSystemStatus| s.phase == Some(Phase::Provisioning);
    if !provisioning(old)
        || !provisioning(new)
        || old.observed_generation != new.observed_generation
        || !events(Some(old), new).is_empty()
    {
        return None;
    }
    let last = old
        .conditions
        .iter()
        .map(|c| c.last_transition_time.0)
        .max()?;
    let since = Duration::try_from(now.duration_since(last)).unwrap_or_default();
    PROGRESS_INTERVAL
        .checked_sub(since)
        .filter(|left| !left.is_zero())
}

/// Writes `status` when it differs from the system's (`system` as `WrittenStatus::view` gives
/// it; a step of provisioning only once [`progress_hold`] allows), and publishes an event when
/// Ready flips.
pub async fn write_if_changed(
    client: &Client,
    recorder: &Recorder,
    system: &HealthSystem,
    status: HealthSystemStatus,
    now: Timestamp,
    written: &WrittenStatus,
) -> Result<Written> {
    let old = system.status.as_ref();
    let status = merge(old, status);
    if old == Some(&status) {
        return Ok(Written::Unchanged);
    }
    if let Some(left) = progress_hold(old, &status, now) {
        return Ok(Written::Held(left));
    }
    let api = Api::<HealthSystem>::all(client.clone());
    let patch =
        json!({ "apiVersion": "sdc.gov.rs/v1alpha1", "kind": "HealthSystem", "status": status });
    api.patch_status(
        &system.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &apply_patch(&patch)?,
    )
    .await
    .at(Step::Status, format!("HealthSystem {}", system.name_any()))?;
    let events = events(old, &status);
    written.wrote(
        &system.uid().unwrap_or_default(),
        status,
        std::time::Instant::now(),
    );
    let reference = system.object_ref(&());
    for (type_, reason, message) in events {
        publish(recorder, &reference, type_, reason, message, "Reconcile").await;
    }
    Ok(Written::Written)
}

/// The events a status change publishes: Ready flipping (Normal when it becomes True,
/// Warning when False), and once each, a reason only a person can resolve as it appears.
pub fn events(
    old: Option<&HealthSystemStatus>,
    status: &HealthSystemStatus,
) -> Vec<(EventType, String, String)> {
    let ready = |s: Option<&HealthSystemStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == types::READY))
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (before, after) = (ready(old), ready(Some(status)));
    let mut events = Vec::new();
    // A new system is not Ready while it is provisioned: that is no warning (at fleet
    // scale, one per system onboarded). One found Degraded at its first look is.
    let provisioning = before.is_none() && status.phase == Some(Phase::Provisioning);
    if before.as_ref().map(|b| &b.0) != after.as_ref().map(|a| &a.0)
        && !provisioning
        && let Some((state, reason, message)) = after
    {
        let type_ = if state == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        events.push((type_, reason, message));
    }
    // What needs a person is said once when it appears, even if Ready was already False.
    for condition in &status.conditions {
        let was = old
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition.type_))
            .map(|c| c.reason.as_str());
        if (NEEDS_A_PERSON.contains(&condition.reason.as_str()) || is_refusal(&condition.reason))
            && was != Some(condition.reason.as_str())
            && !events
                .iter()
                .any(|(_, reason, _)| *reason == condition.reason)
        {
            events.push((
                EventType::Warning,
                condition.reason.clone(),
                condition.message.clone(),
            ));
        }
    }
    // A failover or switchover (CloudNativePG engine): the pod that takes writes changed.
    let primary = |s: Option<&HealthSystemStatus>| {
        s.and_then(|s| s.database.as_ref())
            .and_then(|d| d.primary.clone())
    };
    if let (Some(before), Some(after)) = (primary(old), primary(Some(status)))
        && before != after
    {
        events.push((
            EventType::Warning,
            PRIMARY_CHANGED.into(),
            format!(
                "the database's primary moved from {before} to {after} (a failover or a switchover)"
            ),
        ));
    }
    events
}

/// Reason of the event that says the primary changed.
pub const PRIMARY_CHANGED: &str = "PrimaryChanged";

/// Reasons that only a person can resolve: each gets a Warning event when it appears.
const NEEDS_A_PERSON: &[&str] = &[CREDENTIALS_MISSING, DATA_MISSING, NAMESPACE_NOT_OWNED];
