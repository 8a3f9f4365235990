//! Physical drills on the real node: a system on CloudNativePG archives its WAL and base
//! backups to a real S3 server (versitygw); the operator, with exactly the chart's access,
//! recovers them into a throwaway Cluster in the platform's restore namespace, checks where
//! recovery ended against the archive and counts the rows, and records the evidence. Then a
//! WAL segment is corrupted in the store, as a disk's rot would, and the next drill must fail
//! saying so. Its own cluster: drills and archiving are configured for the whole operator.

use std::path::Path;
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use healthsystem_operator::api::{DrillStatus, HealthSystem};
use healthsystem_test_support::archiving::{self, provision, segments, wait_new_segment};
use healthsystem_test_support::objectstore::{self, Store};
use healthsystem_test_support::wait::until;
use healthsystem_test_support::{
    barman, chart, cluster, cnpg, node, operator, pods, restore, systems,
};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;

/// PostgreSQL's archive_timeout here: a quiet database's segment reaches the store within it.
const ARCHIVE_TIMEOUT_SECONDS: u64 = 20;

fn store() -> &'static Store {
    objectstore::shared()
}

/// The real-node cluster with CloudNativePG and the plugin, the restore namespace, and the
/// operator running with the chart's access (its restore Role included).
async fn setup() -> Client {
    cluster::use_real_node();
    let client = cluster::client().await;
    cnpg::install(&client).await;
    barman::install(&client).await;
    let identity = age::x25519::Identity::generate();
    let key = identity.to_string();
    restore::prepare(&client, store(), key.expose_secret()).await;
    let values = json!({ "operator": { "backup": {
        "objectStore": store().config(),
        "recipients": [identity.to_public().to_string()],
        "drills": { "namespace": restore::NAMESPACE },
    } } });
    let binary = Path::new(env!("CARGO_BIN_EXE_healthsystem-operator"));
    operator::use_config(archiving::operator_config(
        "physical-drill",
        binary,
        &identity.to_public().to_string(),
        ARCHIVE_TIMEOUT_SECONDS,
        json!({ "namespace": restore::NAMESPACE, "deadlineSeconds": 900 }),
    ));
    chart::operator_with_chart_access(&client, &values).await;
    operator::ensure_running(&client).await;
    client
}

async fn system(client: &Client, name: &str) -> HealthSystem {
    Api::<HealthSystem>::all(client.clone())
        .get(name)
        .await
        .unwrap()
}

/// Waits for the system's physical drill that answers `request` (any, when `None`) to end.
async fn drill_answering(client: &Client, name: &str, request: Option<&str>) -> DrillStatus {
    until(
        &format!("{name}: a physical drill answering {request:?} in status"),
        Duration::from_secs(900),
        || async {
            let backup = system(client, name).await.status.and_then(|s| s.backup);
            match backup.as_ref().and_then(|b| b.last_physical_drill.clone()) {
                Some(d) if request.is_none_or(|r| d.request.as_deref() == Some(r)) => Ok(d),
                other => Err(format!(
                    "{other:?}; archive {:?}",
                    backup.and_then(|b| b.archive)
                )),
            }
        },
    )
    .await
}

/// Waits until what was written so far is in the archive: a segment newer than every one
/// archived now (the one being written is archived only once it is switched).
async fn archived_so_far(namespace: &str) {
    let now = segments(namespace);
    wait_new_segment(
        namespace,
        &now,
        Duration::from_secs(ARCHIVE_TIMEOUT_SECONDS * 6),
    )
    .await;
}

/// Asks for a drill of the system now, answering `request`.
async fn request_drill(client: &Client, name: &str, request: &str) {
    Api::<HealthSystem>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": {
                "sdc.gov.rs/drill-requested": request
            } } })),
        )
        .await
        .unwrap();
}

/// Commits a row through the system's `database` Service as its application.
async fn write(client: &Client, name: &str, pod: &str, sql: &str) {
    let namespace = format!("hs-{name}");
    let ca = cnpg::ca(client, &namespace).await;
    pods::run_ok(
        client,
        pods::login(
            &namespace,
            pod,
            name,
            "database-credentials",
            &ca,
            &format!("psql -v ON_ERROR_STOP=1 -qtA -c \"{sql}\""),
        ),
    )
    .await;
}

/// The size of the timed drill's database: `HS_PHYSICAL_DRILL_SIZE_MIB`, 16 unless given
/// (what CI runs; the figures in docs/archiving.md are for 1024).
fn size_mib() -> u64 {
    std::env::var("HS_PHYSICAL_DRILL_SIZE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// A base backup of the system's Cluster now (a CloudNativePG Backup by the plugin), once it
/// completed: how long it took.
async fn base_backup(client: &Client, namespace: &str) -> f64 {
    let backups = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Backup"),
            "backups",
        ),
    );
    let backup: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Backup",
        "metadata": { "name": "sized" },
        "spec": {
            "cluster": { "name": "postgres" },
            "method": "plugin",
            "pluginConfiguration": { "name": "barman-cloud.cloudnative-pg.io" }
        }
    }))
    .unwrap();
    backups.create(&Default::default(), &backup).await.unwrap();
    let started = Instant::now();
    until(
        "the base backup completed",
        Duration::from_secs(1800),
        || async {
            let b = backups.get("sized").await.map_err(|e| e.to_string())?;
            match b.data["status"]["phase"].as_str() {
                Some("completed") => Ok(()),
                Some("failed") => panic!("base backup failed: {:?}", b.data["status"]),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    started.elapsed().as_secs_f64()
}

/// A database of `HS_PHYSICAL_DRILL_SIZE_MIB`, a base backup of it, and a physical drill of
/// it, timed: the figures of a physical drill round of the fleet.
#[tokio::test]
async fn a_physical_drill_of_a_sized_database_is_timed() {
    let client = setup().await;
    let mib = size_mib();
    let storage_gib = (mib * 3).div_ceil(1024) + 1;
    let name = systems::create(&client, "pdsize", "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["database"]["storage"] = json!(format!("{storage_gib}Gi"));
    })
    .await;
    let namespace = format!("hs-{name}");
    provision(&client, &namespace).await;
    systems::wait_ready(&client, &name).await;
    let rows = mib * 1024;
    write(&client, &name, "fill", &systems::fill_sql(mib)).await;
    let backup_seconds = base_backup(&client, &namespace).await;
    archived_so_far(&namespace).await;
    request_drill(&client, &name, "sized").await;
    let drill = drill_answering(&client, &name, Some("sized")).await;
    assert_eq!(drill.result, "Passed", "{drill:?}");
    assert_eq!(drill.rows, rows as i64, "{drill:?}");
    println!(
        "physical drill timing: {mib} MiB, {rows} rows; base backup {backup_seconds:.1} s; \
         drill (Cluster made, base backup and WAL recovered, checked, counted) {} s",
        drill.duration_seconds
    );
}

#[tokio::test]
async fn a_physical_drill_recovers_the_archive_and_a_corrupted_segment_fails_the_next() {
    let client = setup().await;
    let name = systems::create(&client, "pd", "lab-biomedica.yaml", node::small_system).await;
    let namespace = format!("hs-{name}");
    provision(&client, &namespace).await;
    systems::wait_ready(&client, &name).await;
    write(
        &client,
        &name,
        "write-1",
        "CREATE TABLE marks (n int PRIMARY KEY); INSERT INTO marks SELECT generate_series(1, 500)",
    )
    .await;

    // A drill starts on its own once the archive holds a base backup; the one asked for once
    // the marks' segment is archived must recover them all.
    archived_so_far(&namespace).await;
    request_drill(&client, &name, "marks").await;
    let started = Instant::now();
    let first = drill_answering(&client, &name, Some("marks")).await;
    println!(
        "physical drill asked for: ended {:.1} s later (a drill that started on its own may have run first): {first:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(first.result, "Passed", "{first:?}");
    assert_eq!(
        (first.tables, first.rows),
        (1, 500),
        "the marks were recovered: {first:?}"
    );
    assert!(
        first.duration_seconds >= 10,
        "the whole drill's time, its recovery included: {first:?}"
    );
    let status = system(&client, &name).await.status.unwrap().backup.unwrap();
    assert_eq!(
        status
            .last_successful_physical_drill_time
            .as_ref()
            .map(|t| t.0),
        Some(first.time.0)
    );
    let leftovers = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        restore::NAMESPACE,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster"),
            "clusters",
        ),
    );
    until(
        "the drill's Cluster removed",
        Duration::from_secs(120),
        || async {
            match leftovers.list(&Default::default()).await {
                Ok(list) if list.items.is_empty() => Ok(()),
                other => Err(format!("{:?}", other.map(|l| l.items.len()))),
            }
        },
    )
    .await;

    // Rot in the store: the newest archived segment is overwritten, then more WAL is archived
    // after it, so recovery has to pass through it to reach the archive's end.
    let before = segments(&namespace);
    let rotten = before.last().expect("archived segments").clone();
    std::fs::write(&rotten, b"not a WAL segment any more").unwrap();
    println!("corrupted {}", rotten.display());
    write(
        &client,
        &name,
        "write-2",
        "INSERT INTO marks SELECT generate_series(501, 600)",
    )
    .await;
    wait_new_segment(
        &namespace,
        &before,
        Duration::from_secs(ARCHIVE_TIMEOUT_SECONDS * 6),
    )
    .await;
    request_drill(&client, &name, "after-rot").await;
    let second = drill_answering(&client, &name, Some("after-rot")).await;
    println!("physical drill after the corruption: {second:?}");
    assert_eq!(second.result, "Failed", "{second:?}");
    assert!(
        matches!(
            second.reason.as_deref(),
            Some("RecoveryEndedEarly" | "RecoveryFailed")
        ),
        "{second:?}"
    );
    let status = system(&client, &name).await.status.unwrap().backup.unwrap();
    assert_eq!(
        status.last_successful_physical_drill_time.map(|t| t.0),
        Some(first.time.0),
        "the last success stays the first drill's"
    );
    let (_, backup_ready) = systems::wait_reason(
        &client,
        &name,
        "BackupReady",
        "RestoreDrillFailed",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(backup_ready.status, "False", "{backup_ready:?}");
    assert!(
        backup_ready.message.contains("physical drill"),
        "{backup_ready:?}"
    );
}
