//! A migration for real: a "legacy" PostgreSQL in a namespace of its own holds a hospital's
//! data; a HealthSystem with spec.migration imports it through the import Job, verifies it
//! (row counts and checksums, source and target each in one snapshot), waits for approval
//! and cuts over. A source row changed after the import fails the verification with the
//! table named; a re-import fixes it; a re-import after the cutover is refused (by admission
//! while the approval stands, by the operator once it is removed). The source is reachable
//! from the migration's pods only while a migration Job runs.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use healthsystem_operator::api::{HealthSystem, MigrationPhase, MigrationStatus};

use crate::pods::{self, CHECK, Script, component_labels, outcomes};
use crate::wait::until;
use crate::{image, node, ns, setup, systems};

const LEGACY_PASSWORD: &str = "legacy-secret-1";

/// The legacy server: initialised, seeded (three tables, two schemas), then serving with
/// password logins on every address.
const LEGACY: &str = r#"set -eu
printf '%s' "$LEGACY_PASSWORD" > /tmp/pw
initdb -D /tmp/pg -U his --pwfile=/tmp/pw --auth-host=scram-sha-256 --auth-local=trust >/dev/null
echo "host all all all scram-sha-256" >> /tmp/pg/pg_hba.conf
pg_ctl -D /tmp/pg -o "-c listen_addresses= -c unix_socket_directories=/tmp" -w start >/dev/null
psql -h /tmp -U his -d postgres -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE DATABASE his;
\c his
CREATE TABLE patients (id int PRIMARY KEY, name text NOT NULL, born date, weight numeric(5,2));
INSERT INTO patients SELECT g, 'patient ' || g, date '1950-01-01' + g, 50 + g % 40 FROM generate_series(1, 1000) g;
CREATE TABLE visits (id bigserial PRIMARY KEY, patient int REFERENCES patients, at timestamptz, note text);
INSERT INTO visits (patient, at, note) SELECT 1 + g % 1000, timestamptz '2025-01-01 08:00+01' + g * interval '1 hour', md5(g::text) FROM generate_series(1, 5000) g;
CREATE SCHEMA lab;
CREATE TABLE lab.results (id int PRIMARY KEY, patient int, value double precision, flags jsonb);
INSERT INTO lab.results SELECT g, g, g / 7.0, jsonb_build_object('h', g % 3 = 0) FROM generate_series(1, 20) g;
SQL
pg_ctl -D /tmp/pg -m fast -w stop >/dev/null
exec postgres -D /tmp/pg -c listen_addresses='*' -c unix_socket_directories=/tmp
"#;

async fn legacy_database(client: &Client, namespace: &str) {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": namespace } })).unwrap(),
        )
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "legacy-db", "namespace": namespace, "labels": { "app": "legacy-db" } },
        "spec": {
            "automountServiceAccountToken": false,
            "securityContext": { "runAsNonRoot": true, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999, "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{
                "name": "postgres", "image": image("HS_IMAGE_POSTGRES15"),
                "command": ["/bin/sh", "-c", LEGACY],
                "env": [{ "name": "LEGACY_PASSWORD", "value": LEGACY_PASSWORD }],
                "ports": [{ "name": "postgres", "containerPort": 5432 }],
                "readinessProbe": { "exec": { "command": ["pg_isready", "-h", "/tmp", "-d", "his", "-U", "his"] }, "periodSeconds": 2 },
                "volumeMounts": [{ "name": "tmp", "mountPath": "/tmp" }],
                "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } }
            }],
            "volumes": [{ "name": "tmp", "emptyDir": {} }]
        }
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": "legacy-db", "namespace": namespace },
        "spec": { "selector": { "app": "legacy-db" }, "ports": [{ "port": 5432, "targetPort": "postgres" }] }
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
}

/// Runs SQL on the legacy server (its namespace has no policies).
async fn legacy_sql(client: &Client, namespace: &str, pod: &str, sql: &str) -> String {
    pods::run_ok(
        client,
        Script {
            namespace,
            name: pod,
            labels: BTreeMap::new(),
            image: image("HS_IMAGE_POSTGRES15"),
            script: format!(
                "export PGPASSWORD={LEGACY_PASSWORD}\n\
                 psql -h legacy-db -U his -d his -v ON_ERROR_STOP=1 -tA -c \"{sql}\""
            ),
            env_from_secret: None,
            claim: None,
        },
    )
    .await
}

async fn migration_status(client: &Client, name: &str) -> Option<MigrationStatus> {
    Api::<HealthSystem>::all(client.clone())
        .get(name)
        .await
        .ok()?
        .status?
        .migration
}

/// Waits until the migration is in `phase` (any reason), panicking if it fails instead
/// (unless Failed is what is awaited: that arm comes first).
async fn wait_phase(
    client: &Client,
    name: &str,
    attempt: i32,
    phase: MigrationPhase,
) -> MigrationStatus {
    until(
        &format!("{name} migration attempt {attempt} {phase:?}"),
        Duration::from_secs(300),
        || async {
            let status = migration_status(client, name).await;
            match status {
                Some(s) if s.attempt == attempt && s.phase == phase => Ok(s),
                Some(s) if s.attempt == attempt && s.phase == MigrationPhase::Failed => {
                    panic!("migration failed: {}: {}", s.reason, s.message)
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

async fn patch_migration(client: &Client, name: &str, migration: Value) {
    Api::<HealthSystem>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "migration": migration } })),
        )
        .await
        .unwrap();
}

fn approval() -> Value {
    json!({ "approvedBy": "ana.petrovic", "approvedAt": Timestamp::now().to_string() })
}

async fn application_replicas(client: &Client, namespace: &str) -> i32 {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .get("application")
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas
        .unwrap()
}

/// The target's contents as the application sees them.
async fn target(client: &Client, namespace: &str, system: &str, pod: &str) -> String {
    let out = pods::run_ok(
        client,
        pods::psql_client(
            namespace,
            pod,
            system,
            "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM visits), \
             (SELECT count(*) FROM lab.results), (SELECT name FROM patients WHERE id = 7)",
        ),
    )
    .await;
    pods::last_line(&out).to_string()
}

#[tokio::test]
async fn a_legacy_database_is_imported_verified_and_cut_over_once() {
    let client = setup().await;
    let legacy = crate::cluster::unique("legacy");
    legacy_database(&client, &legacy).await;
    let manifest = |m: &mut Value| {
        node::small_system(m);
        m["spec"]["application"] =
            json!({ "image": image("HS_IMAGE_APP"), "replicas": 1, "port": 8080 });
        m["spec"]["migration"] = json!({
            "source": {
                "host": format!("legacy-db.{legacy}.svc"),
                "database": "his",
                "secretName": "legacy-credentials",
                "network": {
                    "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": legacy } },
                    "podSelector": { "matchLabels": { "app": "legacy-db" } }
                }
            }
        });
    };
    let name = systems::create(&client, "mig", "lab-biomedica.yaml", manifest).await;
    let namespace = ns(&name);

    // The import waits for the source's credentials, and status says so.
    let waiting = until(
        "the import Job waiting for the source Secret",
        Duration::from_secs(240),
        || async {
            match migration_status(&client, &name).await {
                Some(s)
                    if s.phase == MigrationPhase::Importing
                        && s.message.contains("legacy-credentials") =>
                {
                    Ok(s)
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert!(waiting.message.contains("waiting"), "{}", waiting.message);
    assert_eq!(
        application_replicas(&client, &namespace).await,
        0,
        "no application before the cutover"
    );
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "legacy-credentials" },
        "stringData": { "username": "his", "password": LEGACY_PASSWORD }
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let verified = wait_phase(&client, &name, 1, MigrationPhase::AwaitingCutover).await;
    let evidence = verified.verification.clone().unwrap();
    assert!(evidence.passed, "{evidence:?}");
    assert_eq!(
        (evidence.tables, evidence.rows, evidence.checksummed),
        (3, 6020, 3)
    );
    assert_eq!(verified.imports, 1);
    assert_eq!(
        target(&client, &namespace, &name, "target-1").await,
        "1000|5000|20|patient 7"
    );
    assert_eq!(application_replicas(&client, &namespace).await, 0);
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace);
    assert!(
        policies
            .get_opt("migration-source-egress")
            .await
            .unwrap()
            .is_none(),
        "no way to the source while no migration Job runs"
    );

    // The source changes after the import; the approval's final verification sees it (the
    // node's operator accepts verifications at most 1 s old, so every approval re-verifies).
    legacy_sql(
        &client,
        &legacy,
        "change",
        "UPDATE patients SET name = 'renamed' WHERE id = 7",
    )
    .await;
    patch_migration(&client, &name, json!({ "cutover": approval() })).await;
    let failed = wait_phase(&client, &name, 1, MigrationPhase::Failed).await;
    assert_eq!(failed.reason, "VerificationFailed");
    assert!(
        failed.message.contains("public.patients (checksum"),
        "{}",
        failed.message
    );
    assert!(
        !failed.message.contains("public.visits"),
        "{}",
        failed.message
    );
    assert_eq!(failed.verification_runs, 2);
    assert_eq!(application_replicas(&client, &namespace).await, 0);
    until(
        "a MigrationVerificationFailed warning",
        Duration::from_secs(30),
        || systems::has_warning(&client, &name, "MigrationVerificationFailed"),
    )
    .await;

    // Import again (the approval goes in the same edit), verify, approve, cut over.
    patch_migration(&client, &name, json!({ "attempt": 2, "cutover": null })).await;
    let second = wait_phase(&client, &name, 2, MigrationPhase::AwaitingCutover).await;
    assert_eq!(second.imports, 2);
    assert_eq!(
        target(&client, &namespace, &name, "target-2").await,
        "1000|5000|20|renamed"
    );
    patch_migration(&client, &name, json!({ "cutover": approval() })).await;
    let live = wait_phase(&client, &name, 2, MigrationPhase::CutOver).await;
    assert_eq!(live.approved_by.as_deref(), Some("ana.petrovic"));
    assert!(live.verification.unwrap().passed);
    until(
        "the application started after the cutover",
        Duration::from_secs(60),
        || async {
            match application_replicas(&client, &namespace).await {
                1 => Ok(()),
                n => Err(n),
            }
        },
    )
    .await;

    // The source is out of reach for the migration's pods now.
    let probe = pods::run_ok(
        &client,
        Script {
            namespace: &namespace,
            name: "source-probe",
            labels: component_labels(&name, "migration"),
            image: image("HS_IMAGE_POSTGRES15"),
            script: format!("{CHECK}\ncheck source legacy-db.{legacy}.svc 5432 closed"),
            env_from_secret: None,
            claim: None,
        },
    )
    .await;
    assert_eq!(outcomes(&probe)["source"], "closed", "{probe}");

    // Re-importing after the cutover: admission refuses while the approval stands...
    let refused = Api::<HealthSystem>::all(client.clone())
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "migration": { "attempt": 3 } } })),
        )
        .await
        .expect_err("admission refuses a new attempt while the cutover is approved");
    assert!(
        refused.to_string().contains("attempt cannot change"),
        "{refused}"
    );
    // ...and the operator refuses once it is removed: no import Job, the data untouched.
    patch_migration(&client, &name, json!({ "attempt": 3, "cutover": null })).await;
    until("the re-import refused", Duration::from_secs(60), || async {
        match migration_status(&client, &name).await {
            Some(s) if s.reason == "ReimportRefused" => Ok(s),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    until(
        "a MigrationReimportRefused warning",
        Duration::from_secs(30),
        || systems::has_warning(&client, &name, "MigrationReimportRefused"),
    )
    .await;
    let jobs = Api::<Job>::namespaced(client.clone(), &namespace);
    let imports = jobs
        .list(&ListParams::default().labels("app.kubernetes.io/component=migration"))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|j| {
            j.metadata
                .name
                .as_deref()
                .unwrap_or_default()
                .contains("-import-")
        })
        .count();
    assert_eq!(imports, 2, "no import Job for attempt 3");
    assert_eq!(
        target(&client, &namespace, &name, "target-3").await,
        "1000|5000|20|renamed"
    );

    // The HealthSystem deleted (Retain) and applied again from the same manifest: it adopts
    // the namespace and its live data, its migration starts afresh, and the import refuses
    // a database it did not fill (the source changed again: an overwrite would show).
    legacy_sql(
        &client,
        &legacy,
        "change-2",
        "UPDATE patients SET name = 'overwritten' WHERE id = 7",
    )
    .await;
    let systems_api = Api::<HealthSystem>::all(client.clone());
    systems_api
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    until("the HealthSystem gone", Duration::from_secs(60), || async {
        match systems_api
            .get_opt(&name)
            .await
            .map_err(|e| e.to_string())?
        {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    systems::create_named(&client, &name, "lab-biomedica.yaml", manifest).await;
    let refused = wait_phase(&client, &name, 1, MigrationPhase::Failed).await;
    assert_eq!(refused.reason, "ImportFailed");
    assert!(
        refused.message.contains("already holds 3 tables"),
        "{}",
        refused.message
    );
    assert_eq!(
        target(&client, &namespace, &name, "target-4").await,
        "1000|5000|20|renamed"
    );
}
