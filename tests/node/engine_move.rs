//! A system made on the StatefulSet engine (this suite's operator makes new systems there, as
//! every earlier version did) moves onto CloudNativePG with its data: rows in two schemas
//! written before, `spec.database.move` set while a session of the application's role is
//! still open (it commits a last row 45 s later: the copy waits for it), and then the same
//! rows (checksums), the late row and the sequence's position read through the `database`
//! Service with `verify-full`, logged in with the application's old password; the old
//! StatefulSet kept stopped with the same claim; removing the move releases the StatefulSet
//! and never the claim.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use healthsystem_operator::api::HealthSystem;
use healthsystem_test_support::wait::until;
use healthsystem_test_support::{cnpg, pods, systems as hs};

/// Rows in two schemas, a sequence in use, and a fingerprint of every row.
const FILL: &str = "CREATE SCHEMA lab; \
CREATE TABLE patients (id serial PRIMARY KEY, name text, born date); \
INSERT INTO patients (name, born) SELECT 'p' || i, date '1950-01-01' + i FROM generate_series(1, 5000) i; \
CREATE TABLE lab.results (id bigint PRIMARY KEY, patient int REFERENCES patients, value numeric, at timestamptz); \
INSERT INTO lab.results SELECT i, 1 + i % 5000, i / 7.0, timestamptz '2026-01-01 00:00+00' + i * interval '1 minute' FROM generate_series(1, 3000) i;";

/// What the move must keep of the rows written before it: row counts, a digest of every row
/// and who owns the tables.
const FINGERPRINT: &str = "SELECT (SELECT count(*) FROM patients WHERE name <> 'late') || ' ' || (SELECT count(*) FROM lab.results) || ' ' || \
(SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM patients t WHERE name <> 'late') || ' ' || \
(SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM lab.results t) || ' ' || \
(SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE tablename IN ('patients', 'results'))";

/// The row a session open when the move starts commits later, and the sequence's position.
const LATE: &str = "SELECT (SELECT count(*) FROM patients WHERE name = 'late') || ' ' || (SELECT last_value FROM patients_id_seq)";

#[tokio::test]
async fn a_statefulset_system_moves_onto_cloudnativepg_with_its_rows_and_passwords() {
    let client = super::setup().await;
    let name = super::ready_system(&client, "move", |_| {}).await;
    let namespace = super::ns(&name);
    let systems = Api::<HealthSystem>::all(client.clone());
    let engine = |s: &HealthSystem| {
        s.status
            .as_ref()
            .and_then(|s| s.database.as_ref())
            .and_then(|d| d.engine)
    };
    assert_eq!(
        engine(&systems.get(&name).await.unwrap()),
        Some(healthsystem_operator::api::Engine::StatefulSet)
    );

    let before = pods::run_ok(
        &client,
        pods::psql_client(&namespace, "fill", &name, &format!("{FILL} {FINGERPRINT}")),
    )
    .await;
    let before = pods::last_line(&before).to_string();
    assert!(before.starts_with("5000 3000 "), "{before}");
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    let credentials = secrets.get("database-credentials").await.unwrap().data;
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
    let claim_uid = claims.get("data-database-0").await.unwrap().uid();

    // A session of the application's role, open across the start of the copy.
    let late = pods::run_ok(
        &client,
        pods::psql_client(
            &namespace,
            "late",
            &name,
            "SELECT pg_sleep(45); INSERT INTO patients (name) VALUES ('late')",
        ),
    );
    let started = Instant::now();
    let moving = async {
        // Once the session is open.
        tokio::time::sleep(Duration::from_secs(8)).await;
        systems
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "database": {
                    "move": { "to": "CloudNativePG", "approvedBy": "platform-test" }
                } } })),
            )
            .await
            .unwrap();
        switched(&systems, &name).await
    };
    let (_, moved) = tokio::join!(late, moving);
    eprintln!(
        "switched after {:.1}s: {moved}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(moved["verification"]["rows"], 8001, "{moved}");
    assert_eq!(moved["verification"]["checksummed"], 2, "{moved}");
    let system = hs::wait_ready(&client, &name).await;
    assert_eq!(
        engine(&system),
        Some(healthsystem_operator::api::Engine::CloudNativePg)
    );

    // The application's old password, through the `database` Service, verifying the
    // Cluster's certificate: the same rows, and the late one.
    assert_eq!(
        secrets.get("database-credentials").await.unwrap().data,
        credentials,
        "the same credentials"
    );
    let ca = cnpg::ca(&client, &namespace).await;
    let after = pods::run_ok(
        &client,
        pods::login(
            &namespace,
            "after",
            &name,
            "database-credentials",
            &ca,
            &format!(
                "psql -v ON_ERROR_STOP=1 -tA -c \"SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()\" && psql -v ON_ERROR_STOP=1 -tA -c \"{LATE}\" && psql -v ON_ERROR_STOP=1 -tA -c \"{FINGERPRINT}\""
            ),
        ),
    )
    .await;
    let lines: Vec<&str> = after.trim().lines().rev().take(3).collect();
    assert_eq!(lines, [before.as_str(), "1 5001", "t"], "{after}");
    assert!(cnpg::get(&client, &namespace, "postgres").await.is_ok());

    // The old StatefulSet stopped and kept, with the same claim.
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &namespace);
    let old = statefulsets.get("database").await.unwrap();
    assert_eq!(old.spec.unwrap().replicas, Some(0));
    assert_eq!(
        claims.get("data-database-0").await.unwrap().uid(),
        claim_uid
    );

    // Released: the StatefulSet goes, its claim stays until a person deletes it.
    systems
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "database": { "move": null } } })),
        )
        .await
        .unwrap();
    until(
        "the old StatefulSet released",
        Duration::from_secs(60),
        || async {
            match statefulsets.get_opt("database").await {
                Ok(None) => Ok(()),
                other => Err(format!("{:?}", other.map(|s| s.is_some()))),
            }
        },
    )
    .await;
    assert_eq!(
        claims.get("data-database-0").await.unwrap().uid(),
        claim_uid
    );
    let system = systems.get(&name).await.unwrap();
    assert_eq!(
        engine(&system),
        Some(healthsystem_operator::api::Engine::CloudNativePg)
    );
}

/// The move's status once it switched (a failure fails the test).
async fn switched(systems: &Api<HealthSystem>, name: &str) -> Value {
    until("the move switched", Duration::from_secs(420), || async {
        let system = systems.get(name).await.map_err(|e| e.to_string())?;
        let status = system
            .status
            .as_ref()
            .and_then(|s| s.database.as_ref())
            .and_then(|d| d.engine_move.as_ref())
            .map(|m| serde_json::to_value(m).unwrap())
            .unwrap_or(Value::Null);
        match status["phase"].as_str() {
            Some("Switched") => Ok(status),
            Some("Failed") => panic!("the move failed: {status}"),
            _ => Err(status.to_string()),
        }
    })
    .await
}
