//! One reconcile of a HealthSystem: the finalizer first, then build the desired set, apply
//! what differs, observe, and write the status if it changed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event};
use tracing::{debug, info, instrument, warn};

use super::context::Context;
use super::{apply, cleanup, status};
use crate::api::HealthSystem;
use crate::error::{Error, Result};
use crate::resources::Desired;

/// The finalizer that runs the deletion policy.
pub const FINALIZER: &str = "sdc.gov.rs/deletion-policy";

/// How long a quiet system waits before it is looked at again. A look costs no request when
/// nothing drifted (everything is compared with the watch stores).
const RESYNC: Duration = Duration::from_secs(10 * 60);

/// Reconciles one HealthSystem.
#[instrument(skip_all, fields(healthsystem = %system.name_any()))]
pub async fn reconcile(system: Arc<HealthSystem>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started();
    ctx.stores.ready().await;
    let api = Api::<HealthSystem>::all(ctx.client.clone());
    finalizer::finalizer(&api, FINALIZER, system, |event| async {
        match event {
            Event::Apply(system) => apply_system(&system, &ctx).await,
            Event::Cleanup(system) => {
                let action = cleanup::cleanup(&system, &ctx).await?;
                ctx.metrics.remove_system(&system.name_any());
                Ok(action)
            }
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(inner) | finalizer::Error::CleanupFailed(inner) => inner,
        other => Error::Finalizer(Box::new(other)),
    })
}

async fn apply_system(system: &HealthSystem, ctx: &Context) -> Result<Action> {
    let name = system.name_any();
    let desired = Desired::build(system, &ctx.config);
    let applied = apply::apply(
        &ctx.client,
        &ctx.stores,
        &name,
        &desired,
        ctx.monitoring_api,
    )
    .await?;
    for kind in &applied.written_kinds {
        ctx.metrics.writes.with_label_values(&[kind]).inc();
    }
    if applied.written + applied.pruned > 0 {
        info!(
            written = applied.written,
            pruned = applied.pruned,
            unchanged = applied.unchanged,
            "applied"
        );
    }
    let observed = status::observe(
        &ctx.client,
        &ctx.stores,
        &ctx.config,
        system,
        ctx.monitoring_api,
    )
    .await?;
    let now =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let new_status = status::evaluate(system, &observed, now);
    let rpo = status::parse_rpo(&system.spec.backup.rpo).unwrap_or_default();
    ctx.metrics
        .set_system(system, &new_status, rpo.as_secs_f64());
    let status_written =
        status::write_if_changed(&ctx.client, &ctx.recorder, system, new_status).await?;
    debug!(
        written = applied.written,
        pruned = applied.pruned,
        status_written,
        "reconciled"
    );
    let wait = status::next_backup_deadline(system, &observed, now)
        .map_or(RESYNC, |deadline| deadline.min(RESYNC));
    Ok(Action::requeue(wait))
}

/// What to do after a failed reconcile: a spec that cannot work waits for a change, a
/// namespace being deleted is checked again soon, anything else retries with a delay.
pub fn error_policy(system: Arc<HealthSystem>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&[error.category()])
        .inc();
    match error {
        Error::InvalidSpec(_) => {
            warn!(healthsystem = %system.name_any(), category = error.category(), %error, "waiting for a change");
            Action::await_change()
        }
        Error::NamespaceTerminating(_) => Action::requeue(Duration::from_secs(2)),
        _ => {
            warn!(healthsystem = %system.name_any(), category = error.category(), %error, "will retry");
            Action::requeue(Duration::from_secs(10))
        }
    }
}
