//! One reconcile of a HealthSystem: the finalizer first, then build the desired set, apply
//! what differs, observe, and write the status if it changed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event};
use kube::{Resource, ResourceExt};
use tracing::{debug, info, instrument, warn};

use crate::api::{
    DatabaseRestart, HealthSystem, MigrationPhase, MigrationStatus, MovePhase, MoveStatus,
};
use crate::controller::application::image_pull;
use crate::controller::apply;
use crate::controller::backup::bootstrap;
use crate::controller::backup::store_status;
use crate::controller::backup::{drills, physical_drills};
use crate::controller::cleanup;
use crate::controller::context::Context;
use crate::controller::database::{data_hold, engine_move};
use crate::controller::migration;
use crate::controller::runtime::events;
use crate::controller::status;
use crate::error::{Error, Result};
use crate::resources::{Desired, database};

/// The finalizer that runs the deletion policy.
pub const FINALIZER: &str = "sdc.gov.rs/deletion-policy";

/// How long a quiet system waits before it is looked at again. A look costs no request when
/// nothing drifted (everything is compared with the watch stores).
const RESYNC: Duration = Duration::from_secs(10 * 60);

/// Reconciles one HealthSystem, or reports one this version cannot read.
#[instrument(skip_all, fields(healthsystem = %guard.name_any()))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<HealthSystem>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let system = match &guard.0 {
        // As this replica last wrote its status, when the cache does not show that yet: every
        // step of the reconcile reads the same status.
        Ok(system) => Arc::new(ctx.written_status.view(system, std::time::Instant::now())),
        Err(invalid) => return unreadable(&guard, invalid, &ctx).await,
    };
    let _timer = ctx.metrics.reconcile_started();
    ctx.stores.ready().await;
    let api = Api::<HealthSystem>::all(ctx.client.clone());
    finalizer::finalizer(&api, FINALIZER, system, |event| async {
        match event {
            Event::Apply(system) => apply_system(&system, &ctx).await,
            Event::Cleanup(system) => {
                let action = cleanup::cleanup(&system, &ctx).await?;
                ctx.metrics.remove_system(&system.name_any());
                ctx.written_status.forget(&system.uid().unwrap_or_default());
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
    let uid = system.uid().unwrap_or_default();
    let now = whole_seconds_now();
    if let Some(refusal) = ctx
        .config
        .images
        .refuse_version(system.spec.database.version)
    {
        return refused_before_apply(system, ctx, now, |o| o.version_refused = Some(refusal)).await;
    }
    if let Some(refusal) = crate::resources::archive::refuse_bootstrap(system, &ctx.config) {
        return refused_before_apply(system, ctx, now, |o| o.bootstrap_refused = Some(refusal))
            .await;
    }
    let migration = advance_migration(system, ctx, now).await?;
    let engine_move = advance_move(system, ctx, now).await?;
    // The desired set follows the migration's and the move's new phases (their Jobs, the
    // migration's egress allowance, the engine the system switched to).
    let view = with_phases(system, migration.clone(), engine_move.clone());
    let mut desired = Desired::build(&view, &ctx.config);
    data_hold::hold_database_without_its_data(system, ctx, &mut desired);
    let applied = match apply::apply(
        &ctx.client,
        &ctx.stores,
        &name,
        &uid,
        &desired,
        &ctx.credentials,
    )
    .await
    {
        Ok(applied) => applied,
        Err(error @ Error::NamespaceNotOwned(_)) => {
            return namespace_not_owned(system, ctx, &error).await;
        }
        Err(e) => return Err(e),
    };
    for kind in &applied.written_kinds {
        ctx.metrics.writes.with_label_values(&[kind]).inc();
    }
    if applied.written + applied.pruned > 0 {
        info!(
            written = applied.written,
            kinds = applied.written_kinds.join(","),
            pruned = applied.pruned,
            unchanged = applied.unchanged,
            "applied"
        );
    }
    let mut observed = status::observe(
        &ctx.stores,
        &ctx.config,
        &view,
        &desired,
        ctx.monitoring_api,
        applied.credentials.as_ref(),
    );
    observed.migration = migration;
    observed.engine_move = engine_move;
    observed.refused = applied.refused.clone();
    // Pods waiting on their image change nothing the watches see: read them while the
    // application is short of pods for no reason its Deployment gives.
    let application_short = observed
        .application
        .is_some_and(|(available, wanted)| available < wanted);
    if application_short && observed.application_failure.is_none() {
        observed.application_failure = image_pull::read(system, ctx).await?;
    }
    // With an object store, the store's newest manifest is the last backup.
    if ctx.config.backup.object_store.is_some()
        && let Some(from_store) = store_status::last_backup(
            ctx,
            &crate::resources::labels::namespace(system),
            observed.last_success,
            now,
        )
        .await
    {
        observed.last_success = from_store.as_ref().map(|b| b.finished_at.0);
        observed.last_backup = from_store;
    }
    observed.database_restart = restart_database(system, ctx).await?;
    let has_backup = observed.last_success.is_some()
        || system
            .status
            .as_ref()
            .and_then(|s| s.backup.as_ref())
            .is_some_and(|b| b.last_successful_time.is_some());
    let database_ready = observed.database_ready_replicas > 0 && observed.credentials_complete;
    observed.bootstrap = bootstrap::bootstrap(system, ctx, database_ready).await?;
    let drills = drills::drill(system, ctx, has_backup, now).await?;
    observed.drill = drills.last;
    observed.drill_success = drills.last_success;
    let physical = physical_drills::drill(system, ctx, observed.archive.as_ref(), now).await?;
    observed.physical_drill = physical.last;
    observed.physical_drill_success = physical.last_success;
    let status = publish_status(system, ctx, &observed, now).await?;
    debug!(
        written = applied.written,
        pruned = applied.pruned,
        ?status,
        "reconciled"
    );
    let mut wait = status::next_backup_deadline(system, &observed, now)
        .map_or(RESYNC, |deadline| deadline.min(RESYNC));
    if let status::Written::Held(left) = status {
        wait = wait.min(left);
    }
    if !applied.refused.is_empty() {
        wait = wait.min(refusal_backoff(system, now));
    }
    if applied.workloads_held {
        // The quota's status wakes the system through its watch; this is the safety net.
        wait = wait.min(QUOTA_POLL);
    }
    if observed.migration.as_ref().is_some_and(|m| {
        matches!(
            m.phase,
            MigrationPhase::Importing | MigrationPhase::Verifying
        )
    }) {
        // A Job's pod may wait (a missing Secret) without any event on our objects.
        wait = wait.min(MIGRATION_POLL);
    }
    if observed
        .engine_move
        .as_ref()
        .is_some_and(|m| m.phase.holds_application())
    {
        // The Cluster's readiness and a Job's pod waiting wake nothing here.
        wait = wait.min(MIGRATION_POLL);
    }
    if observed
        .bootstrap
        .as_ref()
        .is_some_and(|b| b.phase == "Restoring")
    {
        // The new database's readiness wakes nothing here; the restore Job's changes do.
        wait = wait.min(BOOTSTRAP_POLL);
    }
    if let Some(wake) = drills.wake {
        wait = wait.min(wake + Duration::from_secs(1));
    }
    if let Some(wake) = physical.wake {
        wait = wait.min(wake + Duration::from_secs(1));
    }
    if application_short {
        // Its pods' progress (an image pulled at last, or not) wakes nothing here.
        wait = wait.min(APPLICATION_POLL);
    }
    if observed.database_restart == Some(DatabaseRestart::Pending) {
        // A slot frees when another system's database is ready: nothing tells this one.
        wait = wait.min(RESTART_SLOT_POLL);
    }
    Ok(Action::requeue(wait))
}

/// How often a system whose application is short of pods is looked at again.
const APPLICATION_POLL: Duration = Duration::from_secs(15);

/// How often a system whose workloads wait for its quota to be in force is looked at again.
const QUOTA_POLL: Duration = Duration::from_secs(2);

/// How often a system being restored from a backup is looked at again.
const BOOTSTRAP_POLL: Duration = Duration::from_secs(10);

/// How often a database waiting for a restart slot asks again.
const RESTART_SLOT_POLL: Duration = Duration::from_secs(15);

/// Restarts the database onto its new pod template when one of the fleet's slots is free
/// ([`restarts`]), with an event when its pod is evicted.
async fn restart_database(system: &HealthSystem, ctx: &Context) -> Result<Option<DatabaseRestart>> {
    let namespace = crate::resources::labels::namespace(system);
    let statefulset = ctx
        .stores
        .get("apps/v1", "StatefulSet", Some(&namespace), database::NAME);
    let before = system
        .status
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .and_then(|d| d.restart);
    let restart = ctx
        .restarts
        .step(
            &ctx.client,
            &namespace,
            &database::pod_name(),
            statefulset.as_deref().map(|l| &l.object),
            ctx.config.rollout.max_database_restarts,
        )
        .await?;
    let (in_progress, pending) = ctx.restarts.counts();
    ctx.metrics.set_restarts(in_progress, pending);
    if restart == Some(DatabaseRestart::InProgress) && before != restart {
        info!("database pod evicted onto its new template");
        events::publish(
            &ctx.recorder,
            &system.object_ref(&()),
            EventType::Normal,
            "DatabaseRestarting".into(),
            format!(
                "the database pod runs an older template: restarted onto the new one ({in_progress} of at most {} restarts under way across the fleet)",
                ctx.config.rollout.max_database_restarts
            ),
            "Restart",
        )
        .await;
    }
    Ok(restart)
}

/// How long to wait before applying a refused child again: as long as the system has been
/// refused so far, between 10 s and 10 minutes (so the delay roughly doubles each time).
fn refusal_backoff(system: &HealthSystem, now: Timestamp) -> Duration {
    let since = system
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == status::types::READY && status::is_refusal(&c.reason))
        .map(|c| {
            Duration::try_from(now.duration_since(c.last_transition_time.0)).unwrap_or_default()
        })
        .unwrap_or_default();
    since.clamp(Duration::from_secs(10), Duration::from_secs(600))
}

/// How often a running migration Job's pod is looked at.
const MIGRATION_POLL: Duration = Duration::from_secs(30);

/// The migration's status after a look at its Job, with an event when its phase changes.
async fn advance_migration(
    system: &HealthSystem,
    ctx: &Context,
    now: Timestamp,
) -> Result<Option<MigrationStatus>> {
    let old = system.status.as_ref().and_then(|s| s.migration.as_ref());
    if system.spec.migration.is_none() && old.is_none() {
        return Ok(None);
    }
    let namespace = crate::resources::labels::namespace(system);
    let database_ready = status::database_ready_replicas(&ctx.stores, &namespace) > 0;
    let observed = migration::observe(&ctx.client, &ctx.stores, system, database_ready).await?;
    let max_age = Duration::from_secs(
        u64::try_from(ctx.config.migration.verification_max_age_seconds).unwrap_or(0),
    );
    let incarnation = crate::resources::migration::incarnation(system);
    let step = migration::Step {
        now,
        max_age,
        incarnation: &incarnation,
    };
    let new = migration::advance(system.spec.migration.as_ref(), old, &observed, &step);
    if let Some(new) = &new
        && (old.map(|o| (o.phase, o.attempt, &o.reason))
            != Some((new.phase, new.attempt, &new.reason)))
    {
        let warning = new.phase == MigrationPhase::Failed || new.reason == "ReimportRefused";
        let step = PhaseStep {
            what: "migration",
            phase: new.phase.as_str(),
            attempt: new.attempt,
            reason: &new.reason,
            message: &new.message,
            warning,
        };
        step.tell(system, ctx, "Migration", "Migrate").await;
    }
    Ok(new)
}

/// A change of a migration's or a move's phase, told in the log and as an event.
struct PhaseStep<'a> {
    what: &'static str,
    phase: &'static str,
    attempt: i32,
    reason: &'a str,
    message: &'a str,
    warning: bool,
}

impl PhaseStep<'_> {
    /// Logs it and publishes the event `<prefix><reason>` for `action`.
    async fn tell(&self, system: &HealthSystem, ctx: &Context, prefix: &str, action: &str) {
        info!(
            phase = self.phase,
            attempt = self.attempt,
            reason = self.reason,
            "{}",
            self.what
        );
        let type_ = if self.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        events::publish(
            &ctx.recorder,
            &system.object_ref(&()),
            type_,
            format!("{prefix}{}", self.reason),
            self.message.chars().take(1000).collect(),
            action,
        )
        .await;
    }
}

/// The move's status after a look at the Cluster and its Job, with an event when its phase
/// changes.
async fn advance_move(
    system: &HealthSystem,
    ctx: &Context,
    now: Timestamp,
) -> Result<Option<MoveStatus>> {
    let old = crate::resources::engine_move::status(system);
    let spec = system.spec.database.engine_move.as_ref();
    if spec.is_none() && old.is_none() {
        return Ok(None);
    }
    let engine = crate::resources::engine(system, &ctx.config);
    let observed =
        engine_move::observe(&ctx.client, &ctx.stores, &ctx.config, system, engine).await?;
    let incarnation = crate::resources::migration::incarnation(system);
    let new = engine_move::advance(spec, old, &observed, now, &incarnation);
    if let Some(new) = &new
        && old.map(|o| (o.phase, o.attempt, &o.reason))
            != Some((new.phase, new.attempt, &new.reason))
    {
        let step = PhaseStep {
            what: "database move",
            phase: new.phase.as_str(),
            attempt: new.attempt,
            reason: &new.reason,
            message: &new.message,
            warning: new.phase == MovePhase::Failed,
        };
        step.tell(system, ctx, "Move", "Move").await;
    }
    Ok(new)
}

/// `system` with `migration` and `engine_move` as its migration's and move's status: what
/// the desired set is built from.
fn with_phases(
    system: &HealthSystem,
    migration: Option<MigrationStatus>,
    engine_move: Option<MoveStatus>,
) -> HealthSystem {
    let mut view = system.clone();
    let status = view.status.get_or_insert_default();
    status.migration = migration;
    status.database.get_or_insert_default().engine_move = engine_move;
    view
}

/// Now, to the second (condition times are written in whole seconds).
fn whole_seconds_now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now())
}

/// The status `observed` gives, in the metrics and (when it changed) on the object.
async fn publish_status(
    system: &HealthSystem,
    ctx: &Context,
    observed: &status::Observed,
    now: Timestamp,
) -> Result<status::Written> {
    let new_status = status::evaluate(system, observed, now);
    let rpo = status::parse_rpo(&system.spec.backup.rpo).unwrap_or_default();
    ctx.metrics
        .set_system(system, &new_status, rpo.as_secs_f64());
    status::write_if_changed(
        &ctx.client,
        &ctx.recorder,
        system,
        new_status,
        now,
        &ctx.written_status,
    )
    .await
}

/// The system asks for what the platform cannot give it (a PostgreSQL version it has no image
/// for: admission refuses it where the chart's policy runs, the configuration may also have
/// dropped the version; an archive it cannot recover): nothing is written but the status,
/// which says so (`refuse`), and the system waits for a change.
async fn refused_before_apply(
    system: &HealthSystem,
    ctx: &Context,
    now: Timestamp,
    refuse: impl FnOnce(&mut status::Observed),
) -> Result<Action> {
    let desired = Desired::build(system, &ctx.config);
    let mut observed = status::observe(
        &ctx.stores,
        &ctx.config,
        system,
        &desired,
        ctx.monitoring_api,
        None,
    );
    refuse(&mut observed);
    warn!(
        refusal = ?observed.version_refused.as_ref().or(observed.bootstrap_refused.as_ref()),
        "refused: nothing written"
    );
    observed.migration = system.status.as_ref().and_then(|s| s.migration.clone());
    observed.engine_move = crate::resources::engine_move::status(system).cloned();
    publish_status(system, ctx, &observed, now).await?;
    Ok(Action::await_change())
}

/// The system names a namespace that is not its own: nothing was written; status and a
/// Warning event say why, and it is looked at again now and then (the namespace may go).
async fn namespace_not_owned(
    system: &HealthSystem,
    ctx: &Context,
    error: &Error,
) -> Result<Action> {
    warn!(%error, "namespace not owned: nothing written");
    ctx.metrics
        .errors
        .with_label_values(&[error.category()])
        .inc();
    // The Warning event comes with the status (`NamespaceNotOwned` needs a person).
    let observed = status::Observed {
        namespace_not_owned: Some(error.to_string()),
        migration: system.status.as_ref().and_then(|s| s.migration.clone()),
        engine_move: crate::resources::engine_move::status(system).cloned(),
        ..status::Observed::default()
    };
    let now = whole_seconds_now();
    publish_status(system, ctx, &observed, now).await?;
    Ok(Action::requeue(NOT_OWNED_RETRY))
}

/// A HealthSystem that does not match this operator's types (stored under an older or a
/// loosened CRD): nothing is written, a Warning event and the log say why, and it is looked
/// at again when it changes.
async fn unreadable(
    guard: &DeserializeGuard<HealthSystem>,
    invalid: &InvalidObject,
    ctx: &Context,
) -> Result<Action> {
    warn!(error = %invalid.error, "HealthSystem cannot be read: nothing done until it changes");
    ctx.metrics
        .errors
        .with_label_values(&[UNREADABLE_CATEGORY])
        .inc();
    events::publish(
        &ctx.recorder,
        &guard.object_ref(&()),
        EventType::Warning,
        "Unreadable".into(),
        format!(
            "this operator cannot read the object ({}); nothing is done with it until it is fixed (kubectl edit), as admission would require",
            invalid.error
        ),
        "Reconcile",
    )
    .await;
    Ok(Action::await_change())
}

/// The error category of HealthSystems that cannot be read.
const UNREADABLE_CATEGORY: &str = "unreadable";

/// How often a system whose namespace is someone else's is looked at again.
const NOT_OWNED_RETRY: Duration = Duration::from_secs(5 * 60);

/// What to do after a failed reconcile: a spec that cannot work waits for a change, a
/// namespace being deleted is checked again soon, anything else retries with a delay.
pub fn error_policy(
    system: Arc<DeserializeGuard<HealthSystem>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
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
        // The final backup Job's changes wake the system sooner.
        Error::FinalBackupPending(_) => Action::requeue(Duration::from_secs(10)),
        _ => {
            warn!(healthsystem = %system.name_any(), category = error.category(), %error, "will retry");
            Action::requeue(Duration::from_secs(10))
        }
    }
}
