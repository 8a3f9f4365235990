//! The controller: the only code that talks to the API server. It watches HealthSystems and,
//! through our labels, every child, reconciles with bounded concurrency and stops cleanly on
//! SIGINT or SIGTERM.

pub mod application;
pub mod apply;
pub mod backup;
pub mod cache;
pub mod cleanup;
pub mod context;
pub mod database;
pub mod migration;
pub mod reconcile;
pub mod runtime;
pub mod status;

use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use crate::api::HealthSystem;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::resources::labels::{HEALTHSYSTEM, MANAGER};
use crate::resources::monitoring;
use backup::{drill_slots::DrillSlots, store_reads::StoreReads};
use cache::kinds;
use context::Context;
use database::credentials_seen::CredentialsSeen;
use database::restarts::Restarts;
use runtime::{api_health, fence, leader};
use status::written::WrittenStatus;

/// Settings of a controller run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// HealthSystems reconciled at once.
    pub concurrency: u16,
    /// Where /metrics, /healthz and /readyz are served.
    pub http_addr: std::net::SocketAddr,
    /// Leader election, when several replicas run.
    pub leader: Option<LeaderElection>,
    /// What the client checks before each write (open without leader election).
    pub fence: fence::Fence,
}

/// Where the leader Lease lives and who this replica is.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
}

/// Whether the cluster serves the Prometheus Operator's API.
pub async fn monitoring_api_served(client: &Client) -> bool {
    let gv = kube::core::GroupVersion::gv(monitoring::GROUP_VERSION.0, monitoring::GROUP_VERSION.1);
    match kube::discovery::pinned_group(client, &gv).await {
        Ok(group) => ["PodMonitor", "PrometheusRule"]
            .iter()
            .all(|kind| group.recommended_kind(kind).is_some()),
        Err(_) => false,
    }
}

/// Whether the cluster serves CloudNativePG's Cluster.
pub async fn cloud_native_pg_served(client: &Client) -> bool {
    kind_served(client, &crate::resources::cnpg::cluster_resource()).await
}

/// Whether the cluster serves the Barman Cloud plugin's ObjectStore.
pub async fn object_store_served(client: &Client) -> bool {
    kind_served(client, &crate::resources::archive::object_store_resource()).await
}

/// Whether the cluster serves `resource`'s kind.
async fn kind_served(client: &Client, resource: &kube::api::ApiResource) -> bool {
    let gv = kube::core::GroupVersion::gv(&resource.group, &resource.version);
    match kube::discovery::pinned_group(client, &gv).await {
        Ok(group) => group.recommended_kind(&resource.kind).is_some(),
        Err(_) => false,
    }
}

/// The controller's backoff on errors of its merged trigger streams: none, because each
/// stream (the HealthSystem watch and every child watch) already backs off on its own.
/// kube's default pauses the merged stream after an error of any one of them, growing to
/// 30 s: after an API server restart two dozen watches fail at once, and the whole
/// controller stood still for minutes after the API server was back.
struct NoPause;

impl Iterator for NoPause {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<Self::Item> {
        // `None` would end the stream: never give up, never wait.
        Some(std::time::Duration::ZERO)
    }
}

impl Backoff for NoPause {
    fn reset(&mut self) {}
}

/// How long a burst of events for one system (its ~20 children appearing, each one's
/// status moving while it starts) is gathered into one reconcile. Trailing: each event
/// restarts it, so it must stay short (a system's children settle within it; an edit of
/// the spec is applied this much later).
const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(200);

/// Resolves on SIGTERM (what Kubernetes sends to stop a pod).
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// Runs the controller until a shutdown signal.
pub async fn run(
    client: Client,
    config: Config,
    settings: Settings,
    metrics: Metrics,
) -> anyhow::Result<()> {
    crate::http::serve(settings.http_addr, metrics.clone()).await?;
    tokio::spawn(api_health::probe(client.clone(), metrics.clone()));
    let Some(election) = settings.leader.clone() else {
        metrics.leader.set(1);
        return reconcile_until_stopped(client, config, settings, metrics).await;
    };
    let elector = Arc::new(leader::Elector::new(
        client.clone(),
        &election.namespace,
        &election.name,
        &election.identity,
        settings.fence.clone(),
    ));
    // A standby serves its role: it is ready, and waits.
    metrics.up.set(1.0);
    tokio::select! {
        () = elector.acquire() => {}
        _ = tokio::signal::ctrl_c() => return Ok(()),
        () = terminated() => return Ok(()),
    }
    metrics.up.set(0.0);
    metrics.leader.set(1);
    // Renewed from the moment it is held: loading the caches of a large fleet takes longer
    // than the Lease lasts, and a standby must not take it meanwhile.
    let mut holder = {
        let elector = elector.clone();
        tokio::spawn(async move { elector.hold().await })
    };
    tokio::select! {
        result = reconcile_until_stopped(client, config, settings, metrics.clone()) => {
            holder.abort();
            elector.release().await;
            result
        }
        _ = &mut holder => {
            metrics.leader.set(0);
            anyhow::bail!("leadership lost: stopping so that only one replica writes");
        }
    }
}

/// Loads the caches and reconciles until a shutdown signal (SIGTERM drains the reconciles
/// in flight).
async fn reconcile_until_stopped(
    client: Client,
    config: Config,
    settings: Settings,
    metrics: Metrics,
) -> anyhow::Result<()> {
    // Guarded: one HealthSystem this version cannot read (an older or hand-loosened CRD)
    // is reported on its own instead of failing every list and watch of the fleet.
    let systems = Api::<DeserializeGuard<HealthSystem>>::all(client.clone());
    systems.list(&ListParams::default().limit(1)).await.map_err(|e| {
        anyhow::anyhow!("cannot list HealthSystems ({e}); is the CRD installed? (healthsystem-operator crd | kubectl apply -f -)")
    })?;
    let monitoring_api = monitoring_api_served(&client).await;
    if !monitoring_api {
        warn!(
            "monitoring.coreos.com is not served: PodMonitors and PrometheusRules are skipped until the operator restarts with it"
        );
    }
    let cloud_native_pg = cloud_native_pg_served(&client).await;
    if !cloud_native_pg {
        info!(
            "postgresql.cnpg.io is not served: systems on the CloudNativePG engine wait until the operator restarts with it"
        );
    }
    let archiving = object_store_served(&client).await;
    if !archiving && config.backup.archive_store().is_some() {
        warn!(
            "barmancloud.cnpg.io is not served: the systems' archive stores are not made until the operator restarts with it (install the Barman Cloud plugin)"
        );
    }
    let apis = kinds::Apis {
        monitoring: monitoring_api,
        cloud_native_pg,
        archiving,
    };
    let (stores, mut streams) = kinds::watch(&client, kinds::kinds(apis));
    // Secrets are not watched: what is known of them is swept (`credentials_seen`).
    let credentials = CredentialsSeen::default();
    streams.push(credentials.sweep(client.clone()));
    // Compare with the cluster, never with an empty cache: a restart then writes nothing.
    // A signal while the first lists are still loading stops the operator at once.
    tokio::select! {
        () = stores.ready() => {}
        _ = tokio::signal::ctrl_c() => return Ok(()),
        () = terminated() => return Ok(()),
    }
    metrics.up.set(1.0);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    metrics
        .migration_import_stuck_after
        .set(config.migration.import_stuck_after_seconds as f64);
    metrics
        .database_restarts_max
        .set(i64::try_from(config.rollout.max_database_restarts).unwrap_or(i64::MAX));
    metrics.set_restarts(0, 0);
    metrics
        .drill_max_age
        .set(config.backup.drill_max_age_seconds());
    let ctx = Arc::new(Context {
        client,
        config,
        stores,
        recorder,
        monitoring_api,
        metrics: metrics.clone(),
        restarts: Restarts::default(),
        drill_slots: DrillSlots::default(),
        store_reads: StoreReads::default(),
        written_status: WrittenStatus::default(),
        credentials: credentials.clone(),
    });

    // Every trigger stream backs off on its own, so the controller's merged stream must not
    // pause on their errors too (see `NoPause`).
    let writer = reflector::store::Writer::default();
    let reader = writer.as_reader();
    let trigger = reflector::reflector(
        writer,
        watcher::watcher(systems, watcher::Config::default())
            .default_backoff()
            // Nothing reads who wrote which field of a HealthSystem: not kept in memory.
            .modify(|system| system.managed_fields_mut().clear()),
    )
    .applied_objects();
    let mut controller = Controller::for_stream(trigger, reader)
        .trigger_backoff(NoPause)
        .with_config(
            controller::Config::default()
                .concurrency(settings.concurrency)
                .debounce(DEBOUNCE),
        );
    for (stream, resource) in streams {
        controller = controller.watches_stream_with(
            stream,
            |child| {
                child
                    .labels()
                    .get(HEALTHSYSTEM)
                    .map(|name| ObjectRef::<DeserializeGuard<HealthSystem>>::new(name))
            },
            resource,
        );
    }
    info!(
        concurrency = settings.concurrency,
        monitoring_api, "controller starting"
    );
    // SIGTERM drains the reconciles in flight, then the Lease is given up.
    let controller = controller
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                // Failed reconciles are logged by the error policy, with their system.
                Err(controller::Error::ReconcilerFailed(..)) | Ok(_) => {}
                Err(e) => warn!(error = %e, "controller queue error"),
            }
        });
    controller.await;
    info!("controller stopped");
    Ok(())
}
