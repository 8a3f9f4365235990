//! Events on HealthSystems, published best-effort: an event that cannot be published is
//! logged and never fails a reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

/// Publishes one event about `reference`.
pub async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    type_: EventType,
    reason: String,
    note: String,
    action: &str,
) {
    let event = Event {
        type_,
        reason,
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, reference).await {
        warn!(error = %e, "event not published");
    }
}
