//! The operator on the CloudNativePG engine: a Standard HealthSystem becomes a Cluster of two
//! instances that its status reports (engine, instances ready, primary); its application logs
//! in through the `database` Service over TLS with `verify-full` (plaintext refused), as an
//! ordinary role; the monitoring and backup roles log in with our Secrets' passwords; a row
//! written on the primary is read on a replica; the primary pod deleted, the status names
//! the new primary and the database is ready again; a backup by the agent (to a real S3
//! server) dumps the rows through the `database` Service with `verify-full`. All of it under
//! the chart's tenant admission policy.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use healthsystem_operator::api::HealthSystem;
use healthsystem_test_support::objectstore::{self, Store};
use healthsystem_test_support::pods;
use healthsystem_test_support::wait::until;
use healthsystem_test_support::{chart, cluster, cnpg, node, operator, restore, systems};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams};
use serde_json::json;

fn store() -> &'static Store {
    objectstore::shared()
}

/// The private key restores hold; the operator gets only its public key.
fn identity() -> &'static age::x25519::Identity {
    static IDENTITY: OnceLock<age::x25519::Identity> = OnceLock::new();
    IDENTITY.get_or_init(age::x25519::Identity::generate)
}

/// The node's operator configuration with new systems on CloudNativePG; the API server as
/// pods reach it is the bridge address the local cluster advertises. Backups go to the S3
/// server by the agent of this build's image, and restore into new systems from the restore
/// namespace (no drills: they restore into a server of their own, not into a Cluster).
fn write_config() -> PathBuf {
    let mut config = node::operator_config();
    let binary = Path::new(env!("CARGO_BIN_EXE_healthsystem-operator"));
    config["images"]["operator"] = json!(node::operator_image(binary));
    let recipient = identity().to_public().to_string();
    config["backup"] = json!({
        "objectStore": store().config(),
        "recipients": [recipient],
        "deadlineSeconds": 600,
        "drills": { "enabled": false },
    });
    config["database"]["engine"] = json!("CloudNativePG");
    config["database"]["cloudNativePG"]["apiServer"] =
        json!({ "cidrs": ["10.244.0.1/32"], "ports": [{ "port": 6443 }] });
    let path = healthsystem_test_support::target_tmpdir()
        .join(format!("cnpg-config-{}.yaml", std::process::id()));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

async fn database_status(client: &Client, name: &str) -> serde_json::Value {
    let system = Api::<HealthSystem>::all(client.clone())
        .get(name)
        .await
        .unwrap();
    serde_json::to_value(system.status.unwrap().database.unwrap()).unwrap()
}

/// The real-node cluster (with its audit log of writes) with CloudNativePG installed and the
/// operator running on the engine.
pub async fn setup() -> Client {
    cluster::use_real_node();
    cluster::use_audit_log();
    let client = cluster::client().await;
    // Installed before the operator starts: it looks for the API once, at start.
    cnpg::install(&client).await;
    // The chart's tenant admission in force, as wherever the chart is installed: the engine's
    // own operator makes each Cluster's claims, Services, Secrets and roles under it.
    chart::apply_tenant_admission(&client).await;
    operator::use_config(write_config());
    restore::prepare(&client, store(), identity().to_string().expose_secret()).await;
    operator::ensure_running(&client).await;
    client
}

/// Gives the system's namespace its own store credentials (as the platform's provisioning
/// does) and runs a backup Job made from its CronJob; the Job's log.
async fn backup_now(client: &Client, namespace: &str, job: &str) -> String {
    let (access, secret_key) = store().add_user(namespace);
    let credentials = restore::secret(
        "backup-store-credentials",
        &[("accessKeyId", &access), ("secretAccessKey", &secret_key)],
    );
    restore::create(
        &Api::<Secret>::namespaced(client.clone(), namespace),
        &credentials,
    )
    .await;
    let (succeeded, log) = systems::run_backup_job(client, namespace, job).await;
    assert!(succeeded, "the backup failed:\n{log}");
    log
}

/// The Cluster's CA certificate of the system `name`.
async fn cluster_ca(client: &Client, name: &str) -> String {
    cnpg::ca(client, &format!("hs-{name}")).await
}

#[tokio::test]
async fn a_system_on_the_cloudnativepg_engine_replicates_verifies_tls_and_reports_its_primary() {
    let client = setup().await;

    let started = std::time::Instant::now();
    let name = systems::create(&client, "cnpg-hs", "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["tier"] = json!("Standard");
    })
    .await;
    let namespace = format!("hs-{name}");
    systems::wait_ready(&client, &name).await;
    eprintln!(
        "Ready with 2 instances after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let status = database_status(&client, &name).await;
    assert_eq!(status["engine"], "CloudNativePG", "{status}");
    assert_eq!(
        (
            status["instances"].as_i64(),
            status["readyInstances"].as_i64()
        ),
        (Some(2), Some(2)),
        "{status}"
    );
    let primary = status["primary"].as_str().unwrap().to_string();
    assert!(primary.starts_with("postgres-"), "{status}");
    let cluster = cnpg::get(&client, &namespace, "postgres").await.unwrap();
    assert_eq!(cluster.data["spec"]["instances"], 2);

    let ca = cluster_ca(&client, &name).await;

    // The application: verify-full through `database`, an ordinary role owning its database;
    // plaintext refused; its row read on a replica (verified by the -ro Service's name).
    let app = pods::run_ok(
        &client,
        pods::login(&namespace, "app", &name, "database-credentials", &ca,
            "psql -v ON_ERROR_STOP=1 -q -c 'CREATE TABLE r (id int PRIMARY KEY); INSERT INTO r VALUES (42)'\n\
             echo \"whoami $(psql -tA -c \"SELECT current_user || ' ' || rolsuper FROM pg_roles WHERE rolname = current_user\")\"\n\
             echo \"plaintext $(PGSSLMODE=disable psql -tA -c 'select 1' 2>&1 | tr '\\n' ' ')\"\n\
             for i in $(seq 1 30); do got=$(psql -h postgres-ro -tA -c 'SELECT count(*) FROM r WHERE id = 42' 2>/dev/null); [ \"$got\" = 1 ] && break; sleep 1; done\n\
             echo \"replica $got $(psql -h postgres-ro -tA -c 'SELECT pg_is_in_recovery()')\""),
    )
    .await;
    let line = |name: &str| {
        app.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(line("whoami"), "app false", "{app}");
    assert!(
        line("plaintext").contains("no encryption"),
        "plaintext refused: {app}"
    );
    assert_eq!(line("replica"), "1 t", "{app}");

    // The operator's roles log in with the passwords of our Secrets.
    for (secret, expected) in [
        ("database-monitoring", "monitoring true"),
        ("database-backup", "backup 42"),
    ] {
        let sql = if secret == "database-monitoring" {
            "SELECT current_user || ' ' || pg_has_role(current_user, 'pg_monitor', 'member')"
        } else {
            "SELECT current_user || ' ' || id FROM r"
        };
        let out = pods::run_ok(
            &client,
            pods::login(
                &namespace,
                secret,
                &name,
                secret,
                &ca,
                &format!("psql -v ON_ERROR_STOP=1 -tA -c \"{sql}\""),
            ),
        )
        .await;
        assert_eq!(pods::last_line(&out), expected, "{out}");
    }

    // Failover: the primary pod deleted, the status names the new one, ready again.
    let deleted = std::time::Instant::now();
    Api::<Pod>::namespaced(client.clone(), &namespace)
        .delete(&primary, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let promoted = until(
        "a new primary in status",
        Duration::from_secs(120),
        || async {
            let status = database_status(&client, &name).await;
            match status["primary"].as_str() {
                Some(p) if p != primary => Ok(p.to_string()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    eprintln!(
        "status names {promoted} after {:.1}s",
        deleted.elapsed().as_secs_f64()
    );
    systems::wait_ready(&client, &name).await;
    let out = pods::run_ok(
        &client,
        pods::login(
            &namespace,
            "after",
            &name,
            "database-credentials",
            &ca,
            "psql -v ON_ERROR_STOP=1 -qtA -c 'INSERT INTO r VALUES (43) RETURNING id'",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&out), "43", "{out}");

    // A backup by the agent, through `database` with verify-full: both rows.
    let log = backup_now(&client, &namespace, "backup-tls").await;
    let summary = log
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line.get("backup").is_some())
        .unwrap_or_else(|| panic!("no summary line in the agent's log:\n{log}"));
    assert_eq!(summary["rows"], json!(2), "{summary}");
}

/// PostgreSQL 17, from its Debian trixie image, is a version the node offers: a system
/// asking for it runs 17 on CloudNativePG and its application logs in over TLS.
#[tokio::test]
async fn a_postgresql_17_system_runs_on_its_own_image() {
    let client = setup().await;
    let name = systems::create(&client, "cnpg-17", "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["database"]["version"] = json!("17");
    })
    .await;
    let namespace = format!("hs-{name}");
    systems::wait_ready(&client, &name).await;
    let cluster = cnpg::get(&client, &namespace, "postgres").await.unwrap();
    assert_eq!(
        cluster.data["spec"]["imageName"],
        node::image("HS_IMAGE_POSTGRES17")
    );
    let ca = cluster_ca(&client, &name).await;
    let out = pods::run_ok(
        &client,
        pods::login(
            &namespace,
            "version",
            &name,
            "database-credentials",
            &ca,
            "psql -v ON_ERROR_STOP=1 -tA -c 'SHOW server_version_num'",
        ),
    )
    .await;
    assert!(pods::last_line(&out).starts_with("17"), "{out}");
}

/// The series the per-system alert rules and dashboard read on this engine (`src/resources/
/// monitoring.rs`, `tests/offline.rs`), served by a live instance's exporter through the
/// `database` Service to Prometheus' namespace.
#[tokio::test]
async fn the_exporter_of_a_cluster_serves_the_series_the_alerts_and_dashboards_read() {
    let client = setup().await;
    let name = systems::create(&client, "cnpg-metrics", "lab-biomedica.yaml", |m| {
        node::small_system(m);
    })
    .await;
    systems::wait_ready(&client, &name).await;
    chart::ensure_namespace(&client, "monitoring").await;
    let pod = format!("scrape-{name}");
    let target = format!("database.hs-{name}.svc");
    let logs = pods::run_ok(
        &client,
        pods::scraper("monitoring", &pod, &target, "cnpg_collector_up", "cnpg_"),
    )
    .await;
    let line = |prefix: &str, contains: &str| {
        logs.lines()
            .find(|l| l.starts_with(prefix) && l.contains(contains))
            .unwrap_or_else(|| panic!("no {prefix}..{contains} in:\n{logs}"))
            .to_string()
    };
    assert!(line("cnpg_collector_up", "").ends_with(" 1"), "{logs}");
    line("cnpg_backends_total{", "datname=");
    line("cnpg_pg_database_size_bytes{", "datname=\"app\"");
    let limit = line("cnpg_pg_settings_setting{", "name=\"max_connections\"");
    eprintln!("{limit}");
}

/// Disaster recovery on this engine: a new system starts from another's backup. The restore
/// Job, in the restore namespace, verifies the new Cluster with a copy of its CA.
#[tokio::test]
async fn a_new_system_on_the_engine_starts_from_another_systems_backup() {
    let client = setup().await;
    let old = systems::create(&client, "cnpg-old", "lab-biomedica.yaml", |m| {
        node::small_system(m);
    })
    .await;
    let old_ns = format!("hs-{old}");
    systems::wait_ready(&client, &old).await;
    let fingerprint =
        "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM visits t";
    let written = pods::run_ok(
        &client,
        pods::login(
            &old_ns,
            "fill",
            &old,
            "database-credentials",
            &cluster_ca(&client, &old).await,
            &format!(
                "psql -v ON_ERROR_STOP=1 -qtA -c \"CREATE TABLE visits (id int PRIMARY KEY, note text); INSERT INTO visits SELECT i, 'v' || i FROM generate_series(1, 2500) i\" && psql -v ON_ERROR_STOP=1 -tA -c \"{fingerprint}\""
            ),
        ),
    )
    .await;
    let written = pods::last_line(&written).to_string();
    assert!(written.starts_with("2500 "), "{written}");
    backup_now(&client, &old_ns, "backup-source").await;

    let new = systems::create(&client, "cnpg-new", "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["database"]["bootstrap"] = json!({ "fromBackup": { "namespace": old_ns } });
    })
    .await;
    let system = systems::wait_ready(&client, &new).await;
    let bootstrap = system
        .status
        .and_then(|s| s.database)
        .and_then(|d| d.bootstrap)
        .unwrap();
    assert_eq!(
        (bootstrap.phase.as_str(), bootstrap.rows),
        ("Restored", 2500),
        "{bootstrap:?}"
    );
    let read = pods::run_ok(
        &client,
        pods::login(
            &format!("hs-{new}"),
            "read",
            &new,
            "database-credentials",
            &cluster_ca(&client, &new).await,
            &format!("psql -v ON_ERROR_STOP=1 -tA -c \"{fingerprint}\""),
        ),
    )
    .await;
    assert_eq!(pods::last_line(&read), written, "the same rows");
}
