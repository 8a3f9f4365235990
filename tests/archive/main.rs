//! Continuous archiving on the real node: CloudNativePG and its Barman Cloud plugin (built from
//! the Go module proxy at the pinned versions, TLS between them from openssl), the operator
//! with `backup.archiving` on, and a real S3 server (versitygw) with a user per system that
//! reaches its own prefix only. A system on CloudNativePG archives every WAL segment and takes
//! its first base backup into `<namespace>/archive` with its own credentials, and says so in
//! status (WAL archiving, the recovery window); rows committed on a quiet database reach the
//! store within `archive_timeout`; a deleted system whose primary failed over while it
//! archived is recovered to a point in time after the failover and to the end of its
//! archive; a store outage is reported and caught up without a gap (ignored in CI). Its own cluster: archiving is configured for the whole operator, and a system without
//! store credentials is never BackupReady here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use healthsystem_operator::api::{ArchiveStatus, HealthSystem, HealthSystemStatus};
use healthsystem_test_support::archiving::{self, provision};
use healthsystem_test_support::objectstore::{self, BUCKET, Store};
use healthsystem_test_support::wait::until;
use healthsystem_test_support::{
    barman, chart, cluster, cnpg, node, operator, pods, restore, systems,
};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams};
use serde_json::json;

/// PostgreSQL's archive_timeout here: a quiet database's rows reach the store within it.
const ARCHIVE_TIMEOUT_SECONDS: u64 = 30;
/// How long the point-in-time test's client commits rows: `HS_PITR_WRITER_SECONDS`, 45
/// unless given (what CI runs; the README's figures are for 60).
fn writer_seconds() -> u64 {
    std::env::var("HS_PITR_WRITER_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(45)
}

/// The store's availability: tests that need it hold a read guard, the outage test the write
/// guard (it stops the store every system of this binary archives to).
static STORE_UP: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn store() -> &'static Store {
    objectstore::shared()
}

/// The node's operator configuration with new systems on CloudNativePG, archiving to the S3
/// server (logical dumps there too; no drills).
fn write_config() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_healthsystem-operator"));
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    archiving::operator_config(
        "archive",
        binary,
        &recipient,
        ARCHIVE_TIMEOUT_SECONDS,
        json!({ "enabled": false }),
    )
}

/// The real-node cluster with CloudNativePG and the plugin installed, the chart's tenant
/// admission in force, and the operator running with archiving on.
async fn setup() -> Client {
    cluster::use_real_node();
    let client = cluster::client().await;
    // Installed before the operator starts: it looks for their APIs once, at start.
    cnpg::install(&client).await;
    barman::install(&client).await;
    chart::apply_tenant_admission(&client).await;
    operator::use_config(write_config());
    operator::ensure_running(&client).await;
    client
}

/// The system's status, once it has one.
async fn status(client: &Client, name: &str) -> Option<HealthSystemStatus> {
    Api::<HealthSystem>::all(client.clone())
        .get(name)
        .await
        .ok()?
        .status
}

async fn archive_status(client: &Client, name: &str) -> Option<ArchiveStatus> {
    status(client, name).await?.backup?.archive
}

/// Waits until the system's archive takes WAL and holds a first base backup; its status.
async fn wait_archiving(client: &Client, name: &str) -> ArchiveStatus {
    until(
        &format!("{name}: WAL archived and a first base backup in status"),
        Duration::from_secs(420),
        || async {
            match archive_status(client, name).await {
                Some(a)
                    if a.wal_archiving == Some(true) && a.first_recoverability_point.is_some() =>
                {
                    Ok(a)
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// The names of the archive's WAL files in the store (compressed: `.gz`): segments in a
/// folder per log file, timelines' history files beside those folders.
fn archived_segments(namespace: &str) -> Vec<String> {
    let wals = store()
        .data
        .join(BUCKET)
        .join(namespace)
        .join("archive/postgres/wals");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&wals).into_iter().flatten().flatten() {
        if entry.path().is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
            continue;
        }
        for file in std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            names.push(file.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}

#[tokio::test]
async fn a_system_archives_its_wal_and_base_backups_to_its_own_prefix() {
    let _store_up = STORE_UP.read().await;
    let client = setup().await;
    let name = systems::create(&client, "arch", "lab-biomedica.yaml", node::small_system).await;
    let namespace = format!("hs-{name}");
    provision(&client, &namespace).await;

    // WAL archived, then the first base backup (made once the archive takes WAL).
    let started = Instant::now();
    let archive = wait_archiving(&client, &name).await;
    println!(
        "archiving and a first base backup after {:.1} s: {archive:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        archive.destination,
        format!("s3://{BUCKET}/{namespace}/archive")
    );
    let base = store()
        .data
        .join(BUCKET)
        .join(&namespace)
        .join("archive/postgres/base");
    assert!(
        std::fs::read_dir(&base).is_ok_and(|mut d| d.next().is_some()),
        "a base backup under {}",
        base.display()
    );
    let system = systems::wait_ready(&client, &name).await;
    let backup = systems::condition(&system, "BackupReady").unwrap();
    assert_eq!(backup.status, "True", "{backup:?}");

    // A quiet database: a committed row's segment reaches the store within archive_timeout.
    let before = archived_segments(&namespace);
    let ca = cnpg::ca(&client, &namespace).await;
    pods::run_ok(
        &client,
        pods::login(
            &namespace,
            "write",
            &name,
            "database-credentials",
            &ca,
            "psql -v ON_ERROR_STOP=1 -qtA -c \"CREATE TABLE marks (n int PRIMARY KEY, at timestamptz DEFAULT now()); INSERT INTO marks (n) VALUES (1)\"",
        ),
    )
    .await;
    let committed = Instant::now();
    let after = until(
        "a new WAL segment in the store",
        Duration::from_secs(ARCHIVE_TIMEOUT_SECONDS * 4),
        || async {
            let now = archived_segments(&namespace);
            if now.iter().any(|s| !before.contains(s)) {
                Ok(now)
            } else {
                Err(format!("{} segments, as before", now.len()))
            }
        },
    )
    .await;
    println!(
        "a committed row's segment archived {:.1} s after the commit (archive_timeout {ARCHIVE_TIMEOUT_SECONDS} s); {} segments",
        committed.elapsed().as_secs_f64(),
        after.len()
    );
    assert!(
        after
            .iter()
            .all(|s| s.ends_with(".gz") || s.ends_with(".history.gz") || s.contains(".partial")),
        "segments are compressed: {after:?}"
    );
}

/// Numbered rows committed one per transaction, each stamped with the server's clock, for
/// `seconds`; prints `last N`. A failed insert (the primary failing over) is retried with the
/// same number, idempotently, so the numbers stay consecutive on the client's side.
fn writer(seconds: u64) -> String {
    format!(
        "psql -v ON_ERROR_STOP=1 -qtA -c \"CREATE TABLE marks (n int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())\" || exit 1\n\
         export PGCONNECT_TIMEOUT=3\n\
         end=$(( $(date +%s) + {seconds} )); n=0; failed=0\n\
         while [ \"$(date +%s)\" -lt \"$end\" ]; do\n\
           if timeout 10 psql -v ON_ERROR_STOP=1 -qtA -c \"INSERT INTO marks (n) VALUES ($((n + 1))) ON CONFLICT DO NOTHING\" 2>/dev/null\n\
           then n=$((n + 1)); else failed=$((failed + 1)); sleep 1; fi\n\
           sleep 0.2\n\
         done\n\
         echo \"failed $failed\"\n\
         echo \"last $n\""
    )
}

/// The new system recovered from the archive of `from` to `target`, given a reader of that
/// archive and its own store credentials; its name.
async fn recover(client: &Client, prefix: &str, from: &str, target: &str) -> String {
    let name = systems::create(client, prefix, "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["database"]["bootstrap"] = json!({ "fromArchive": {
            "namespace": from, "targetTime": target, "credentialsSecret": "archive-reader"
        } });
    })
    .await;
    let namespace = format!("hs-{name}");
    provision(client, &namespace).await;
    let (access, secret_key) = store().add_archive_reader(&format!("reader-{name}"), from);
    restore::create(
        &Api::<Secret>::namespaced(client.clone(), &namespace),
        &restore::secret(
            "archive-reader",
            &[("accessKeyId", &access), ("secretAccessKey", &secret_key)],
        ),
    )
    .await;
    name
}

/// `SELECT` through the system's `database` Service as its application; the last line.
async fn query(client: &Client, name: &str, pod: &str, sql: &str) -> String {
    let namespace = format!("hs-{name}");
    let ca = cnpg::ca(client, &namespace).await;
    let out = pods::run_ok(
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
    pods::last_line(&out).to_string()
}

/// The rows of `marks`: each number with its commit time in microseconds since the epoch.
async fn marks(client: &Client, name: &str, pod: &str) -> Vec<(i64, i64)> {
    let line = query(
        client,
        name,
        pod,
        "SELECT coalesce(string_agg(n || '@' || (extract(epoch FROM at) * 1000000)::bigint, ',' ORDER BY n), '') FROM marks",
    )
    .await;
    line.split(',')
        .filter(|row| !row.is_empty())
        .map(|row| {
            let (n, at) = row.split_once('@').unwrap_or_else(|| panic!("{line}"));
            (n.parse().unwrap(), at.parse().unwrap())
        })
        .collect()
}

/// The numbers of `marks` in the system `name`, in order.
async fn numbers(client: &Client, name: &str) -> Vec<i64> {
    marks(client, name, "numbers")
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// The name of the system's primary pod, from its status.
async fn primary(client: &Client, name: &str) -> Option<String> {
    status(client, name).await?.database?.primary
}

/// Waits until the pod `name` runs, then `after` longer, then deletes the primary without a
/// grace period; once the status names another primary, the time it did.
async fn fail_over_during(client: &Client, system: &str, pod: &str, after: Duration) -> Timestamp {
    let namespace = format!("hs-{system}");
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    until(
        &format!("pod {pod} running"),
        Duration::from_secs(120),
        || async {
            match pods.get_opt(pod).await {
                Ok(Some(p))
                    if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") =>
                {
                    Ok(())
                }
                other => Err(format!("{:?}", other.map(|p| p.map(|p| p.status)))),
            }
        },
    )
    .await;
    tokio::time::sleep(after).await;
    let old = primary(client, system).await.expect("a primary in status");
    pods.delete(&old, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let deleted = Instant::now();
    let new = until(
        "another primary in status",
        Duration::from_secs(180),
        || async {
            match primary(client, system).await {
                Some(p) if p != old => Ok(p),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    println!(
        "failover: {old} deleted, {new} primary {:.1} s later",
        deleted.elapsed().as_secs_f64()
    );
    Timestamp::now()
}

#[tokio::test]
async fn a_deleted_system_recovers_to_a_point_in_time_after_a_failover_and_to_the_end_of_its_archive()
 {
    let _store_up = STORE_UP.read().await;
    let client = setup().await;
    // Two instances: the primary is killed while the client writes and archiving runs.
    let source = systems::create(&client, "pitr", "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["tier"] = json!("Standard");
        m["spec"]["deletionPolicy"] = json!("Delete");
    })
    .await;
    let source_ns = format!("hs-{source}");
    provision(&client, &source_ns).await;
    wait_archiving(&client, &source).await;
    systems::wait_ready(&client, &source).await;

    // A client commits numbered rows; a few seconds in, the primary is killed.
    let ca = cnpg::ca(&client, &source_ns).await;
    let (out, promoted) = tokio::join!(
        pods::run_ok(
            &client,
            pods::login(
                &source_ns,
                "writer",
                &source,
                "database-credentials",
                &ca,
                &writer(writer_seconds()),
            ),
        ),
        fail_over_during(&client, &source, "writer", Duration::from_secs(8)),
    );
    let last: i64 = pods::last_line(&out)
        .strip_prefix("last ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the writer's count: {out}"));
    println!(
        "the writer: {}",
        out.trim()
            .lines()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .join(", ")
    );
    // What the source holds once failed over: an asynchronous replica may miss the last rows
    // the old primary acknowledged; the archive is held to the source, not to the client.
    let held = marks(&client, &source, "held").await;
    let promoted_us = promoted.as_microsecond();
    let after_failover: Vec<&(i64, i64)> =
        held.iter().filter(|(_, at)| *at > promoted_us).collect();
    assert!(
        after_failover.len() >= 10,
        "rows committed after the failover: {} ({last} written)",
        after_failover.len()
    );
    // T: halfway between two rows committed after the failover, on the new timeline.
    let k = after_failover.len() / 2;
    let (row, at) = *after_failover[k - 1];
    let next_at = after_failover[k].1;
    let target = Timestamp::from_microsecond((at + next_at) / 2)
        .unwrap()
        .to_string();
    let expected_at_t: Vec<i64> = held
        .iter()
        .filter(|(_, a)| *a <= at)
        .map(|(n, _)| *n)
        .collect();
    println!(
        "{last} rows written, {} held after the failover; T = {target}, after row {row}",
        held.len()
    );

    // The whole system goes, its namespace with it.
    let deleted = Instant::now();
    systems::delete_and_wait_gone(&client, &source, Duration::from_secs(600)).await;
    let namespaces = Api::<Namespace>::all(client.clone());
    until(
        &format!("namespace {source_ns} gone"),
        Duration::from_secs(300),
        || async {
            match namespaces.get_opt(&source_ns).await {
                Ok(None) => Ok(()),
                other => Err(format!("{:?}", other.map(|n| n.map(|n| n.status)))),
            }
        },
    )
    .await;
    println!(
        "the source system and its namespace gone {:.1} s after the deletion",
        deleted.elapsed().as_secs_f64()
    );
    let timelines: Vec<String> = archived_segments(&source_ns)
        .into_iter()
        .filter(|s| s.contains(".history"))
        .collect();
    assert!(
        !timelines.is_empty(),
        "the failover's new timeline archived: {:?}",
        archived_segments(&source_ns)
    );
    println!("timelines' history in the archive: {timelines:?}");

    let at_t = recover(&client, "pitr-t", &source_ns, &target).await;
    let latest = recover(&client, "pitr-latest", &source_ns, "latest").await;
    let started = Instant::now();
    systems::wait_ready(&client, &at_t).await;
    systems::wait_ready(&client, &latest).await;
    println!(
        "both recoveries Ready {:.1} s after their creation",
        started.elapsed().as_secs_f64()
    );

    let rows_at_t = numbers(&client, &at_t).await;
    assert_eq!(
        rows_at_t, expected_at_t,
        "exactly the rows the source held up to T"
    );
    let rows_latest = numbers(&client, &latest).await;
    let recovered = rows_latest.len();
    assert_eq!(
        rows_latest[..],
        held.iter().map(|(n, _)| *n).collect::<Vec<_>>()[..recovered],
        "the end of the archive: the source's rows up to its last, none missing"
    );
    let lost = held.len() - recovered;
    // What the writer committed in archive_timeout (and 10 s for the segment's upload).
    let bound = held.len() * (ARCHIVE_TIMEOUT_SECONDS as usize + 10) / writer_seconds() as usize;
    println!(
        "latest: {recovered} of {} rows recovered, {lost} lost (at most {bound}: archive_timeout {ARCHIVE_TIMEOUT_SECONDS} s)",
        held.len()
    );
    assert!(
        lost <= bound,
        "lost more than archive_timeout's rows: {lost} > {bound}"
    );
}

/// A WAL segment's name as its position: timeline, then log and segment number.
fn position(segment: &str) -> Option<(u64, u64)> {
    let hex = segment.get(..24)?;
    let timeline = u64::from_str_radix(&hex[..8], 16).ok()?;
    let log = u64::from_str_radix(&hex[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&hex[16..24], 16).ok()?;
    // 16 MiB segments: 256 to a log file.
    Some((timeline, log * 256 + seg))
}

/// A resilience test, not in CI (its minutes go to the suites that prove more per minute):
/// `cargo test --test archive outage -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a store outage: run with --ignored (docs/testing.md)"]
async fn archiving_through_a_store_outage_says_so_and_catches_up_without_a_gap() {
    let _store_down = STORE_UP.write().await;
    let client = setup().await;
    let name = systems::create(&client, "outage", "lab-biomedica.yaml", node::small_system).await;
    let namespace = format!("hs-{name}");
    provision(&client, &namespace).await;
    wait_archiving(&client, &name).await;
    let ca = cnpg::ca(&client, &namespace).await;
    let write = |pod: &'static str| {
        pods::login(
            &namespace,
            pod,
            &name,
            "database-credentials",
            &ca,
            "psql -v ON_ERROR_STOP=1 -qtA -c \"CREATE TABLE IF NOT EXISTS marks (n serial PRIMARY KEY); INSERT INTO marks DEFAULT VALUES\"",
        )
    };
    pods::run_ok(&client, write("before")).await;
    let before = archived_segments(&namespace)
        .iter()
        .filter_map(|s| position(s))
        .max()
        .expect("segments archived before the outage");

    store().stop();
    let stopped = Instant::now();
    // Writes go on while the store is away: each switches to a new segment to archive.
    pods::run_ok(&client, write("during-1")).await;
    let (_, condition) = systems::wait_reason(
        &client,
        &name,
        "BackupReady",
        "ArchivingFailing",
        Duration::from_secs(300),
    )
    .await;
    println!(
        "the store stopped: BackupReady=False ArchivingFailing {:.1} s later: {}",
        stopped.elapsed().as_secs_f64(),
        condition.message
    );
    assert!(
        condition.message.contains(&namespace),
        "{}",
        condition.message
    );
    pods::run_ok(&client, write("during-2")).await;

    store().start_again();
    let back = Instant::now();
    systems::wait_condition(&client, &name, "BackupReady", "True").await;
    println!(
        "the store back: BackupReady=True {:.1} s later",
        back.elapsed().as_secs_f64()
    );
    pods::run_ok(&client, write("after")).await;
    // Every segment from the first to the last in the store, none missing.
    let segments = until(
        "the segments written during the outage archived",
        Duration::from_secs(180),
        || async {
            let mut positions: Vec<(u64, u64)> = archived_segments(&namespace)
                .iter()
                .filter(|s| !s.contains(".history"))
                .filter_map(|s| position(s))
                .collect();
            positions.sort();
            positions.dedup();
            let timeline = positions.last().map(|p| p.0);
            let on_timeline: Vec<u64> = positions
                .iter()
                .filter(|p| Some(p.0) == timeline)
                .map(|p| p.1)
                .collect();
            let first = *on_timeline.first().ok_or("no segment")?;
            let last = *on_timeline.last().ok_or("no segment")?;
            // Written during the outage (archive_timeout switched segments after each write),
            // archived after it, with no gap from the first segment on.
            if last - first + 1 == on_timeline.len() as u64 && (timeline.unwrap(), last) > before {
                Ok(on_timeline)
            } else {
                Err(format!("{on_timeline:?}"))
            }
        },
    )
    .await;
    println!(
        "{} consecutive segments in the store after the outage (the last before it: {before:?})",
        segments.len()
    );
}
