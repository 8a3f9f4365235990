//! Backups in object storage, on the real node with a real S3-compatible store
//! (versitygw). The operator is configured with the store; each system's backup Job runs the
//! backup agent copied from the operator's image into the database's image; the dump lands
//! encrypted under the system's prefix with a manifest whose row counts match the database;
//! retention prunes by age on the store; one system's credentials reach nothing of another's.
//! Its own cluster, store and operator.

use healthsystem_test_support::chart;
use healthsystem_test_support::cluster;
use healthsystem_test_support::node;
use healthsystem_test_support::objectstore;
use healthsystem_test_support::operator;
use healthsystem_test_support::pods;
use healthsystem_test_support::restore::{self, secret};
use healthsystem_test_support::systems;
use healthsystem_test_support::wait;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use futures::TryStreamExt;
use healthsystem_operator::backup::manifest::{self, Manifest};
use healthsystem_operator::backup::store;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{Value, json};

use objectstore::Store;
use wait::until;

pub use node::image;

/// The store, started once the real node is up.
fn store() -> &'static Store {
    objectstore::shared()
}

/// The private key restores would hold; the operator gets only its public key.
fn identity() -> &'static age::x25519::Identity {
    static IDENTITY: OnceLock<age::x25519::Identity> = OnceLock::new();
    IDENTITY.get_or_init(age::x25519::Identity::generate)
}

fn write_config() -> PathBuf {
    let mut config = node::operator_config();
    // The backup Jobs take the agent from the operator's image, built from this build.
    let binary = Path::new(env!("CARGO_BIN_EXE_healthsystem-operator"));
    config["images"]["operator"] = json!(node::operator_image(binary));
    config["backup"] = json!({
        "objectStore": store().config(),
        "recipients": [identity().to_public().to_string()],
        "deadlineSeconds": 600,
        "drills": { "namespace": RESTORE_NAMESPACE, "deadlineSeconds": 600 },
    });
    let path = healthsystem_test_support::target_tmpdir()
        .join(format!("backup-store-config-{}.yaml", std::process::id()));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

/// The platform's restore namespace.
const RESTORE_NAMESPACE: &str = restore::NAMESPACE;

async fn setup() -> Client {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();

    cluster::use_real_node();
    let path = CONFIG.get_or_init(write_config).clone();
    operator::use_config(path);
    let client = cluster::client().await;
    let identity = identity().to_string();
    restore::prepare(&client, store(), identity.expose_secret()).await;
    // Backups, drills, bootstrap restores and final backups, all under exactly the access the
    // chart grants with an object store (and its tenant admission policy in force).
    chart::operator_with_chart_access(&client, &chart_values()).await;
    operator::ensure_running(&client).await;
    client
}

/// The chart's values for this operator: its object store and restore namespace.
fn chart_values() -> Value {
    json!({ "operator": { "backup": {
        "objectStore": store().config(),
        "recipients": [identity().to_public().to_string()],
        "drills": { "namespace": RESTORE_NAMESPACE },
    } } })
}

/// A Ready system on the node whose namespace holds its own store credentials, as the
/// platform's provisioning puts them there: its namespace and those credentials.
async fn system_with_store(client: &Client, prefix: &str) -> (String, String, (String, String)) {
    system_with_store_after(client, prefix, |_| {}).await
}

/// Like `system_with_store`, the manifest edited by `edit` first.
async fn system_with_store_after(
    client: &Client,
    prefix: &str,
    edit: impl FnOnce(&mut Value),
) -> (String, String, (String, String)) {
    let name = systems::create(client, prefix, "lab-biomedica.yaml", |m| {
        node::small_system(m);
        edit(m);
    })
    .await;
    systems::wait_ready(client, &name).await;
    let namespace = format!("hs-{name}");
    let (access, secret_key) = store().add_user(&namespace);
    let credentials = secret(
        "backup-store-credentials",
        &[("accessKeyId", &access), ("secretAccessKey", &secret_key)],
    );
    Api::<Secret>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &credentials)
        .await
        .unwrap();
    (name, namespace, (access, secret_key))
}

/// Runs a Job made from the backup CronJob and waits until it succeeded; its log.
async fn backup_now(client: &Client, name: &str, namespace: &str, job: &str) -> String {
    let (succeeded, logs) = systems::run_backup_job(client, namespace, job).await;
    assert!(succeeded, "backup Job {job} of {name} failed:\n{logs}");
    logs
}

/// The agent's summary: the last line of a backup Job's log that is one (printed on stdout
/// last; its log lines go to stderr, and the two streams may be recorded out of order).
fn agent_summary(log: &str) -> Value {
    log.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line.get("backup").is_some())
        .unwrap_or_else(|| panic!("no summary line in the agent's log:\n{log}"))
}

/// Every object of `prefix` as the store lists it to `client`.
async fn list(client: &impl ObjectStore, prefix: &str) -> object_store::Result<Vec<String>> {
    let mut names: Vec<String> = client
        .list(Some(&ObjectPath::from(prefix)))
        .map_ok(|o| o.location.to_string())
        .try_collect()
        .await?;
    names.sort();
    Ok(names)
}

async fn read(client: &impl ObjectStore, key: &str) -> object_store::Result<Vec<u8>> {
    Ok(client
        .get(&ObjectPath::from(key))
        .await?
        .bytes()
        .await?
        .to_vec())
}

fn decrypt(ciphertext: &[u8]) -> Vec<u8> {
    let decryptor = age::Decryptor::new(ciphertext).expect("an age file");
    let mut plain = Vec::new();
    decryptor
        .decrypt(std::iter::once(identity() as &dyn age::Identity))
        .expect("our key opens it")
        .read_to_end(&mut plain)
        .unwrap();
    plain
}

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `pg_restore --list` of a plain custom-format dump: its table of contents.
fn restore_list(dump: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("hs-dump-{}.dump", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(dump)
        .unwrap();
    let output = Command::new("pg_restore")
        .arg("--list")
        .arg(&path)
        .output()
        .expect("pg_restore (PostgreSQL client tools) runs");
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "pg_restore --list: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_backup_lands_encrypted_in_the_systems_prefix_with_a_manifest_matching_the_database() {
    let client = setup().await;
    let (name, namespace, (access, secret)) = system_with_store(&client, "s3bak").await;
    let written = pods::run_ok(
        &client,
        pods::psql_client(
            &namespace,
            "writer",
            &name,
            "CREATE TABLE visits (id int PRIMARY KEY, note text); \
             INSERT INTO visits SELECT g, md5(g::text) FROM generate_series(1, 5000) g; \
             CREATE SCHEMA lab; CREATE TABLE lab.\\\"Results\\\" (id int); \
             INSERT INTO lab.\\\"Results\\\" SELECT generate_series(1, 42); \
             SELECT count(*) FROM visits",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&written), "5000");

    let log = backup_now(&client, &name, &namespace, "backup-1").await;
    let summary = agent_summary(&log);
    assert_eq!(summary["rows"], json!(5042), "{summary}");

    let ours = store::connect(&store().settings(&access, &secret)).unwrap();
    let objects = list(&ours, &namespace).await.unwrap();
    let id = summary["backup"].as_str().unwrap();
    assert_eq!(
        objects,
        vec![
            format!("{namespace}/{id}/dump.age"),
            format!("{namespace}/{id}/manifest.json")
        ]
    );
    let manifest: Manifest = serde_json::from_slice(
        &read(&ours, &format!("{namespace}/{id}/manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    let rows: BTreeMap<String, i64> = manifest
        .tables
        .iter()
        .map(|t| (format!("{}.{}", t.schema, t.table), t.rows))
        .collect();
    assert_eq!(
        rows,
        BTreeMap::from([("lab.Results".into(), 42), ("public.visits".into(), 5000)])
    );
    assert_eq!(manifest.system, namespace);
    assert!(
        manifest.server_version.starts_with("15."),
        "{}",
        manifest.server_version
    );
    let stored = read(&ours, &format!("{namespace}/{id}/dump.age"))
        .await
        .unwrap();
    assert_eq!(manifest.size, stored.len() as u64);
    assert_eq!(manifest.sha256, sha256(&stored));
    assert!(
        !stored.windows(5).any(|w| w == b"PGDMP"),
        "the stored dump is readable without the private key"
    );
    let dump = decrypt(&stored);
    assert!(
        dump.starts_with(b"PGDMP"),
        "a custom-format dump once decrypted"
    );
    let contents = restore_list(&dump);
    assert!(contents.contains("TABLE DATA public visits"), "{contents}");
    assert!(contents.contains("TABLE DATA lab Results"), "{contents}");

    // Retention on the store: backdated backups as earlier runs would have left them (the
    // spec keeps 7 days, 4 weeks, 12 months), an interrupted run's leftover, and objects
    // that are not backups. The next run prunes exactly what retention no longer keeps.
    let now = Timestamp::now();
    let ago = |days: i64| manifest::id(now - SignedDuration::from_hours(24 * days));
    let (recent, old_week, ancient) = (ago(2), ago(15), ago(800));
    let incomplete = ago(1);
    for backdated in [&recent, &old_week, &ancient] {
        for object in ["dump.age", "manifest.json"] {
            ours.put(
                &ObjectPath::from(format!("{namespace}/{backdated}/{object}")),
                PutPayload::from_static(b"{}"),
            )
            .await
            .unwrap();
        }
    }
    for key in [
        format!("{namespace}/{incomplete}/dump.age"),
        format!("{namespace}/notes/readme.txt"),
        format!("{namespace}/handmade.dump"),
    ] {
        ours.put(&ObjectPath::from(key), PutPayload::from_static(b"x"))
            .await
            .unwrap();
    }
    let log = backup_now(&client, &name, &namespace, "backup-2").await;
    let summary = agent_summary(&log);
    assert_eq!(summary["pruned"], json!(1), "{summary}");
    assert_eq!(summary["incompleteRemoved"], json!(1), "{summary}");
    let second = summary["backup"].as_str().unwrap();
    let objects = list(&ours, &namespace).await.unwrap();
    let mut want: Vec<String> = [&recent, &old_week, &id.to_string(), &second.to_string()]
        .iter()
        .flat_map(|b| {
            [
                format!("{namespace}/{b}/dump.age"),
                format!("{namespace}/{b}/manifest.json"),
            ]
        })
        .collect();
    want.push(format!("{namespace}/handmade.dump"));
    want.push(format!("{namespace}/notes/readme.txt"));
    want.sort();
    assert_eq!(
        objects, want,
        "kept: 2 and 15 days old (a week's newest), both real backups"
    );

    // Status comes from the store's newest manifest, not from the Jobs: with every backup Job
    // gone, the last backup is still the second one, and fresh.
    let last = |system: &healthsystem_operator::api::HealthSystem| {
        system
            .status
            .as_ref()
            .and_then(|s| s.backup.as_ref())
            .and_then(|b| b.last_backup.clone())
    };
    let systems_api = Api::<healthsystem_operator::api::HealthSystem>::all(client.clone());
    until(
        "status names the second backup",
        Duration::from_secs(60),
        || async {
            let system = systems_api.get(&name).await.map_err(|e| e.to_string())?;
            match last(&system) {
                Some(b) if b.id == second => Ok(b),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let jobs = Api::<Job>::namespaced(client.clone(), &namespace);
    for job in ["backup-1", "backup-2"] {
        jobs.delete(job, &kube::api::DeleteParams::background())
            .await
            .unwrap();
    }
    let annotate = json!({ "metadata": { "annotations": { "test/poke": "1" } } });
    systems_api
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&annotate),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let system = systems_api.get(&name).await.unwrap();
    let kept = last(&system).expect("the last backup stays in status without its Job");
    assert_eq!(
        (kept.id.as_str(), kept.tables, kept.rows),
        (second, 2, 5042)
    );
    // Fresh, and counted once the drill that starts after the first backup has proven it.
    let (_, backup_ready) = systems::wait_reason(
        &client,
        &name,
        "BackupReady",
        "BackupFresh",
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(backup_ready.status, "True", "{backup_ready:?}");
}

#[tokio::test]
async fn one_systems_credentials_reach_nothing_of_anothers_backups() {
    let client = setup().await;
    let ((a, ns_a, creds_a), (_b, ns_b, creds_b)) = tokio::join!(
        system_with_store(&client, "s3iso-a"),
        system_with_store(&client, "s3iso-b")
    );
    backup_now(&client, &a, &ns_a, "backup-1").await;
    let a_client = store::connect(&store().settings(&creds_a.0, &creds_a.1)).unwrap();
    let b_client = store::connect(&store().settings(&creds_b.0, &creds_b.1)).unwrap();
    let a_objects = list(&a_client, &ns_a).await.unwrap();
    assert_eq!(a_objects.len(), 2, "{a_objects:?}");

    let listed = list(&b_client, &ns_a).await;
    assert!(listed.is_err(), "B listed A's prefix: {listed:?}");
    for key in &a_objects {
        let got = read(&b_client, key).await;
        assert!(got.is_err(), "B read {key}");
        let deleted = b_client.delete(&ObjectPath::from(key.as_str())).await;
        assert!(deleted.is_err(), "B deleted {key}");
    }
    let planted = b_client
        .put(
            &ObjectPath::from(format!("{ns_a}/20200101T000000Z/manifest.json")),
            PutPayload::from_static(b"{}"),
        )
        .await;
    assert!(planted.is_err(), "B wrote into A's prefix");
    let whole_bucket = list(&b_client, "").await;
    assert!(
        whole_bucket.is_err(),
        "B listed the whole bucket: {whole_bucket:?}"
    );
    // A still has exactly its own backup, and B its own prefix to write to.
    assert_eq!(list(&a_client, &ns_a).await.unwrap(), a_objects);
    b_client
        .put(
            &ObjectPath::from(format!("{ns_b}/probe")),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap();
}

/// The system's last drill once `done` holds for it.
async fn wait_drill(
    client: &Client,
    name: &str,
    what: &str,
    done: impl Fn(&healthsystem_operator::api::DrillStatus) -> bool,
) -> healthsystem_operator::api::DrillStatus {
    let systems = Api::<healthsystem_operator::api::HealthSystem>::all(client.clone());
    until(what, Duration::from_secs(1800), || async {
        let system = systems.get(name).await.map_err(|e| e.to_string())?;
        let drill = system
            .status
            .and_then(|s| s.backup)
            .and_then(|b| b.last_drill);
        match drill {
            Some(d) if done(&d) => Ok(d),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// The operator's value of a metric series, e.g. `healthsystem_backup_drill_passed{healthsystem="x"}`.
fn metric(series: &str) -> Option<f64> {
    let (_, body) = operator::http_get("/metrics").ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn a_restore_drill_proves_the_latest_backup_and_a_changed_byte_fails_the_next() {
    let client = setup().await;
    let (name, namespace, _) = system_with_store(&client, "s3drill").await;
    pods::run_ok(
        &client,
        pods::psql_client(
            &namespace,
            "writer",
            &name,
            "CREATE TABLE visits (id int PRIMARY KEY, note text); \
             INSERT INTO visits SELECT g, md5(g::text) FROM generate_series(1, 3000) g; \
             CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 70)",
        ),
    )
    .await;
    let log = backup_now(&client, &name, &namespace, "backup-1").await;
    let summary = agent_summary(&log);
    let id = summary["backup"].as_str().unwrap().to_string();

    // The first backup makes a drill due: it runs in the restore namespace by itself.
    let drill = wait_drill(&client, &name, "the first drill passed", |d| {
        d.result == "Passed"
    })
    .await;
    assert_eq!(drill.backup, id);
    assert_eq!((drill.tables, drill.rows), (2, 3070), "{drill:?}");
    assert!(drill.job.starts_with("drill-"), "{drill:?}");
    let system = Api::<healthsystem_operator::api::HealthSystem>::all(client.clone())
        .get(&name)
        .await
        .unwrap();
    let backup = system.status.unwrap().backup.unwrap();
    assert_eq!(backup.last_successful_drill_time, Some(drill.time.clone()));
    let passed = format!("healthsystem_backup_drill_passed{{healthsystem=\"{name}\"}}");
    until("the drill's metric", Duration::from_secs(30), || async {
        (metric(&passed) == Some(1.0))
            .then_some(())
            .ok_or("not 1 yet")
    })
    .await;

    // One byte of the stored dump changes; the drill asked for next fails, and says why.
    let object = store()
        .data
        .join(objectstore::BUCKET)
        .join(&namespace)
        .join(&id)
        .join("dump.age");
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&object, &bytes).unwrap();
    let patch = json!({ "metadata": { "annotations": { "sdc.gov.rs/drill-requested": "after-corruption" } } });
    Api::<healthsystem_operator::api::HealthSystem>::all(client.clone())
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let failed = wait_drill(&client, &name, "the drill after the change failed", |d| {
        d.request.as_deref() == Some("after-corruption")
    })
    .await;
    assert_eq!(failed.result, "Failed", "{failed:?}");
    assert_eq!(
        failed.reason.as_deref(),
        Some("ChecksumMismatch"),
        "{failed:?}"
    );
    assert!(failed.message.contains(&id), "{failed:?}");
    systems::wait_reason(
        &client,
        &name,
        "BackupReady",
        "RestoreDrillFailed",
        Duration::from_secs(60),
    )
    .await;
    until(
        "the failed drill's metric",
        Duration::from_secs(30),
        || async {
            (metric(&passed) == Some(0.0))
                .then_some(())
                .ok_or("not 0 yet")
        },
    )
    .await;
    until(
        "a Warning event BackupDrillFailed",
        Duration::from_secs(30),
        || systems::has_warning(&client, &name, "BackupDrillFailed"),
    )
    .await;
}

/// A final backup whose pod cannot start (the system's store credentials were removed) is
/// reported at once, naming what is missing, instead of when its Job's deadline ends; the
/// namespace stays until the credentials are back or the final backup is skipped.
#[tokio::test]
async fn a_final_backup_that_cannot_start_says_why_and_keeps_the_namespace() {
    let client = setup().await;
    // Ready, and deleted with Delete, but its namespace never got its store credentials.
    let name = systems::create(&client, "s3nocred", "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["deletionPolicy"] = json!("Delete");
    })
    .await;
    systems::wait_ready(&client, &name).await;
    let namespace = format!("hs-{name}");
    let systems_api = Api::<healthsystem_operator::api::HealthSystem>::all(client.clone());
    systems_api
        .delete(&name, &kube::api::DeleteParams::default())
        .await
        .unwrap();

    // Well before the Job's deadline (600 s here).
    let message = until(
        "a Warning that the final backup cannot start",
        Duration::from_secs(150),
        || systems::has_warning(&client, &name, "FinalBackupBlocked"),
    )
    .await;
    assert!(
        message.contains("backup-store-credentials") && message.contains("skipFinalBackup"),
        "names the missing Secret and the way out: {message}"
    );
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    assert!(
        namespaces.get_opt(&namespace).await.unwrap().is_some(),
        "the namespace is kept"
    );

    // Skipping the final backup lets the deletion finish.
    systems_api
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "spec": { "backup": { "skipFinalBackup": true } } })),
        )
        .await
        .unwrap();
    namespace_gone(&client, &namespace).await;
}

/// Waits until the namespace `name` no longer exists.
async fn namespace_gone(client: &Client, name: &str) {
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    until(
        &format!("namespace {name} is gone"),
        Duration::from_secs(180),
        || async {
            match namespaces.get_opt(name).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_new_system_starts_from_the_backup_of_a_deleted_one() {
    let client = setup().await;
    let (old, old_ns, _) = system_with_store_after(&client, "s3src", |m| {
        m["spec"]["deletionPolicy"] = json!("Delete");
    })
    .await;
    pods::run_ok(
        &client,
        pods::psql_client(
            &old_ns,
            "writer",
            &old,
            "CREATE TABLE visits (id int PRIMARY KEY, note text); \
             INSERT INTO visits SELECT g, md5(g::text) FROM generate_series(1, 4000) g; \
             CREATE FUNCTION visit_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM visits'",
        ),
    )
    .await;
    backup_now(&client, &old, &old_ns, "backup-1").await;
    // Rows written after the last scheduled backup: only the final backup holds them.
    pods::run_ok(
        &client,
        pods::psql_client(
            &old_ns,
            "late-writer",
            &old,
            "INSERT INTO visits SELECT g, 'late' FROM generate_series(4001, 4010) g",
        ),
    )
    .await;

    // The system is deleted (Delete): a final backup is taken, then the namespace goes, and
    // only the store keeps the data.
    let systems_api = Api::<healthsystem_operator::api::HealthSystem>::all(client.clone());
    systems_api
        .delete(&old, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    namespace_gone(&client, &old_ns).await;

    let new = systems::create(&client, "s3dst", "lab-biomedica.yaml", |m| {
        node::small_system(m);
        m["spec"]["database"]["bootstrap"] =
            json!({ "fromBackup": { "namespace": old_ns, "backup": "latest" } });
    })
    .await;
    let system = systems::wait_ready(&client, &new).await;
    let restored = system.status.unwrap().database.unwrap().bootstrap.unwrap();
    assert_eq!(restored.phase, "Restored", "{restored:?}");
    assert!(
        restored.backup.ends_with("-final"),
        "latest is the final backup: {restored:?}"
    );
    assert_eq!((restored.tables, restored.rows), (1, 4010), "{restored:?}");
    let reader = restore::reader(store());
    let restore_view = store::connect(&store().settings(&reader.0, &reader.1)).unwrap();
    let kept = list(&restore_view, &old_ns).await.unwrap();
    assert_eq!(
        kept.len(),
        4,
        "the scheduled and the final backup: {kept:?}"
    );

    // The new system's own credentials open the same rows, owned by its own app role.
    let new_ns = format!("hs-{new}");
    let read = pods::run_ok(
        &client,
        pods::psql_client(
            &new_ns,
            "reader",
            &new,
            "SELECT count(*), sum(id), visit_count(), (SELECT tableowner FROM pg_tables \
             WHERE tablename = 'visits') FROM visits",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&read), "4010|8042055|4010|app");
    // The copied login and the opened path are gone again.
    let name = format!("bootstrap-{new}");
    let copied = Api::<Secret>::namespaced(client.clone(), RESTORE_NAMESPACE)
        .get_opt(&name)
        .await
        .unwrap();
    assert!(
        copied.is_none(),
        "the new database's login stayed in the restore namespace"
    );
    let policy = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(
        client.clone(),
        RESTORE_NAMESPACE,
    )
    .get_opt(&name)
    .await
    .unwrap();
    assert!(policy.is_none(), "the restore pod's path stayed open");
}

/// Fills the system's database with about `mib` MiB: about 1 KiB per row of hex text from
/// many digests (compresses like real data, not like a repeated string), in batches of 64 MiB,
/// each its own statement. The database's size in bytes and the rows.
async fn fill(client: &Client, name: &str, namespace: &str, mib: u64) -> (String, u64) {
    let rows = mib * 1024;
    let mut sql = systems::fill_sql(mib);
    sql.push_str("SELECT pg_database_size('app'), count(*) FROM records");
    let filled = pods::run_ok(client, pods::psql_client(namespace, "filler", name, &sql)).await;
    let (db_bytes, counted) = pods::last_line(&filled).split_once('|').unwrap();
    assert_eq!(counted, rows.to_string());
    (db_bytes.to_string(), rows)
}

/// The database pod's network cut and the pod force-deleted 3 s into a backup, so no reset
/// ever reaches the backup (tried by hand on a force-deleted pod: pg_dump then waited on a
/// dead connection for hours, and every scheduled run behind it, `concurrencyPolicy:
/// Forbid`): the run notices within a couple of minutes and fails saying why, and the next
/// one succeeds. (The pod force-deleted alone, its PostgreSQL's sockets reset every
/// connection as it died: the backup failed 4 s later even without keepalives.)
#[tokio::test]
async fn a_backup_whose_database_pod_vanishes_fails_within_minutes_and_the_next_succeeds() {
    let client = setup().await;
    let (name, namespace, _) = system_with_store_after(&client, "s3cut", |m| {
        m["spec"]["database"]["storage"] = json!("2Gi");
    })
    .await;
    fill(&client, &name, &namespace, 192).await;
    systems::create_backup_job(&client, &namespace, "backup-cut", None).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    let job_pods = ListParams::default().labels("job-name=backup-cut");
    until(
        "the backup's pod running",
        Duration::from_secs(120),
        || async {
            let list = pods.list(&job_pods).await.map_err(|e| e.to_string())?;
            match list
                .items
                .iter()
                .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            {
                true => Ok(()),
                false => Err(format!("{} pods", list.items.len())),
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let database = pods.get("database-0").await.unwrap();
    let ip = database
        .status
        .and_then(|s| s.pod_ip)
        .expect("the database's address");
    node::cut_pod_network(&ip);
    pods.delete(
        "database-0",
        &kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let cut = Instant::now();
    let failed = until(
        "the backup's pod failed",
        Duration::from_secs(240),
        || async {
            let list = pods.list(&job_pods).await.map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
                .ok_or_else(|| "none failed yet".to_string())
        },
    )
    .await;
    let noticed = cut.elapsed();
    let log = pods
        .logs(&failed.metadata.name.clone().unwrap(), &Default::default())
        .await
        .unwrap();
    println!(
        "the database pod cut off and force-deleted during a backup: the run failed {:.1} s later:\n{log}",
        noticed.as_secs_f64()
    );
    assert!(noticed < Duration::from_secs(180), "{noticed:?}");
    assert!(log.contains("pg_dump") || log.contains("database"), "{log}");
    backup_now(&client, &name, &namespace, "backup-after-cut").await;
}

/// The size of the database the timing test fills, in MiB: `HS_BACKUP_SIZE_MIB`, 16 unless
/// given (what CI runs; the README's figures are for 1024).
fn size_mib() -> u64 {
    std::env::var("HS_BACKUP_SIZE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

#[tokio::test]
async fn a_backup_and_its_drill_of_a_sized_database_are_timed() {
    let client = setup().await;
    let mib = size_mib();
    let storage_gib = (mib * 3).div_ceil(1024) + 1;
    let (name, namespace, _) = system_with_store_after(&client, "s3size", |m| {
        m["spec"]["database"]["storage"] = json!(format!("{storage_gib}Gi"));
    })
    .await;
    let (db_bytes, rows) = fill(&client, &name, &namespace, mib).await;

    let log = backup_now(&client, &name, &namespace, "backup-sized").await;
    let summary = agent_summary(&log);
    assert_eq!(summary["rows"], json!(rows), "{summary}");
    let id = summary["backup"].as_str().unwrap().to_string();
    let reader = restore::reader(store());
    let restore_view = store::connect(&store().settings(&reader.0, &reader.1)).unwrap();
    let manifest: Manifest = serde_json::from_slice(
        &read(&restore_view, &format!("{namespace}/{id}/manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    let backup_seconds = manifest
        .finished_at
        .duration_since(manifest.started_at)
        .as_secs_f64();

    let drill = wait_drill(&client, &name, "the sized backup's drill passed", |d| {
        d.backup == id && d.result == "Passed"
    })
    .await;
    assert_eq!(drill.rows, rows as i64);
    println!(
        "backup timing: {mib} MiB asked, database {db_bytes} bytes, {rows} rows; dump {} bytes \
         encrypted; backup (snapshot, counts, dump, encrypt, upload, read back) {backup_seconds:.1} s; \
         drill (download, verify, decrypt, pg_restore, count) {} s",
        manifest.size, drill.duration_seconds
    );
}
