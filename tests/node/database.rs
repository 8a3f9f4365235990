//! The database really runs: PostgreSQL started by the pod's own bootstrap, a client logs in
//! with the generated credentials through the `database` Service, the data outlives the pod,
//! and the exporter reports the server up.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

use crate::pods;
use crate::wait::until;
use crate::{ns, ready_system, setup};

#[tokio::test]
async fn database_runs_logs_in_and_keeps_its_rows_across_a_pod_restart() {
    let client = setup().await;
    let name = ready_system(&client, "db", |_| {}).await;
    let namespace = ns(&name);

    let pods_api = Api::<Pod>::namespaced(client.clone(), &namespace);
    let server = pods_api.get("database-0").await.unwrap();
    let spec = server.spec.clone().unwrap();
    assert_eq!(
        spec.node_name.as_deref(),
        Some("hs-node"),
        "on the real node"
    );
    let statuses = server.status.clone().unwrap().container_statuses.unwrap();
    assert!(
        statuses
            .iter()
            .all(|c| c.ready && c.state.as_ref().unwrap().running.is_some()),
        "postgres and exporter running and ready: {statuses:?}"
    );

    let client_pod = |pod: &'static str, sql: &str| pods::psql_client(&namespace, pod, &name, sql);
    let written = pods::run_ok(
        &client,
        client_pod(
            "writer",
            "CREATE TABLE patients (id int PRIMARY KEY, name text NOT NULL); \
             INSERT INTO patients SELECT g, 'patient ' || g FROM generate_series(1, 1000) g; \
             SELECT count(*), sum(id) FROM patients",
        ),
    )
    .await;
    assert_eq!(
        pods::last_line(&written),
        "1000|500500",
        "rows written through the Service"
    );

    let old_uid = server.metadata.uid.clone().unwrap();
    pods_api
        .delete("database-0", &DeleteParams::default())
        .await
        .unwrap();
    until(
        "a new database-0 ready",
        Duration::from_secs(180),
        || async {
            let pod = pods_api
                .get("database-0")
                .await
                .map_err(|e| e.to_string())?;
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| cs.iter().all(|c| c.ready));
            if pod.metadata.uid.as_deref() != Some(old_uid.as_str()) && ready {
                Ok(())
            } else {
                Err("old pod or not ready".to_string())
            }
        },
    )
    .await;
    let read = pods::run_ok(
        &client,
        client_pod("reader", "SELECT count(*), sum(id) FROM patients"),
    )
    .await;
    assert_eq!(
        pods::last_line(&read),
        "1000|500500",
        "the rows survived the pod"
    );
}

#[tokio::test]
async fn exporter_reports_the_database_up_to_the_monitoring_namespace() {
    let client = setup().await;
    let name = ready_system(&client, "exp", |_| {}).await;
    let namespaces = Api::<Namespace>::all(client.clone());
    let monitoring = Namespace {
        metadata: ObjectMeta {
            name: Some("monitoring".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match namespaces.create(&PostParams::default(), &monitoring).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("namespace monitoring: {e}"),
    }
    let pod_name = format!("scrape-{name}");
    let target = format!("database.{}.svc", ns(&name));
    let logs = pods::run_ok(
        &client,
        pods::scraper("monitoring", &pod_name, &target, "pg_up 1", "pg_up "),
    )
    .await;
    assert_eq!(logs.trim(), "pg_up 1");
}

/// A data volume lost (its claim deleted by hand, the pod gone with it)
/// is never silently replaced by an empty database: status records the data claim's UID,
/// reports `DataMissing` with a Warning event, and the database stays stopped until a
/// person accepts the loss of that very claim (`spec.database.acceptDataLoss`); only then
/// does an empty database start.
#[tokio::test]
async fn a_lost_data_volume_is_reported_and_no_empty_database_starts_until_accepted() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use kube::api::{Patch, PatchParams};

    use crate::systems::{self, condition};

    let client = setup().await;
    let name = ready_system(&client, "lost", |_| {}).await;
    let namespace = ns(&name);
    let written = pods::run_ok(
        &client,
        pods::psql_client(
            &namespace,
            "writer",
            &name,
            "CREATE TABLE records (id int PRIMARY KEY); \
             INSERT INTO records SELECT generate_series(1, 100); SELECT count(*) FROM records",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&written), "100");

    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace);
    let lost_uid = claims
        .get("data-database-0")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    claims
        .delete("data-database-0", &DeleteParams::background())
        .await
        .unwrap();
    Api::<Pod>::namespaced(client.clone(), &namespace)
        .delete("database-0", &DeleteParams::default())
        .await
        .unwrap();

    let systems_api = Api::<healthsystem_operator::api::HealthSystem>::all(client.clone());
    let system = until("DataMissing reported", Duration::from_secs(180), || async {
        let system = systems_api.get(&name).await.map_err(|e| e.to_string())?;
        match condition(&system, "DatabaseReady") {
            Some(c) if c.reason == "DataMissing" => Ok(system),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let database = condition(&system, "DatabaseReady").unwrap();
    assert!(database.message.contains(&lost_uid), "{database:?}");
    assert_eq!(
        system.status.as_ref().unwrap().phase,
        Some(healthsystem_operator::api::Phase::Degraded)
    );
    until("a DataMissing event", Duration::from_secs(30), || {
        systems::has_warning(&client, &name, "DataMissing")
    })
    .await;
    // The database stays stopped: no empty database is initialised behind anyone's back.
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &namespace);
    until(
        "the database held at 0 replicas",
        Duration::from_secs(60),
        || async {
            let set = statefulsets
                .get("database")
                .await
                .map_err(|e| e.to_string())?;
            let wanted = set.spec.and_then(|s| s.replicas);
            let running = set.status.map(|s| s.replicas).unwrap_or(0);
            if wanted == Some(0) && running == 0 {
                Ok(())
            } else {
                Err(format!("{wanted:?} {running}"))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = systems_api.get(&name).await.unwrap();
    assert_eq!(
        condition(&still, "DatabaseReady").unwrap().reason,
        "DataMissing"
    );

    // A person accepts the loss of that claim: an empty database starts, and is Ready.
    systems_api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({ "spec": { "database": { "acceptDataLoss": lost_uid } } }),
            ),
        )
        .await
        .unwrap();
    let ready = systems::wait_ready(&client, &name).await;
    let recorded = serde_json::to_value(ready.status).unwrap()["database"]["dataClaimUid"].clone();
    assert!(
        recorded.is_string() && recorded != serde_json::json!(lost_uid),
        "the new claim is recorded: {recorded}"
    );
    let read = pods::run_ok(
        &client,
        pods::psql_client(
            &namespace,
            "reader",
            &name,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'records'",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&read), "0", "the accepted empty database");
}

/// Readiness proves a login with the Secret's credentials, not only that
/// the server answers: a Secret whose password no longer opens the database (a botched
/// restore of it) makes the database not ready, with a reason that says where to look, and
/// the right password makes it ready again.
#[tokio::test]
async fn readiness_proves_a_login_with_the_secrets_password() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Patch, PatchParams};

    use crate::systems::{self, condition};

    let client = setup().await;
    let name = ready_system(&client, "login", |_| {}).await;
    let namespace = ns(&name);
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    let pods_api = Api::<Pod>::namespaced(client.clone(), &namespace);
    let original = secrets.get("database-credentials").await.unwrap();
    let password = original.data.as_ref().unwrap()["password"].clone();
    let set_password = |value: ByteString| {
        let secrets = secrets.clone();
        async move {
            secrets
                .patch(
                    "database-credentials",
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({ "data": { "password": value } })),
                )
                .await
                .unwrap();
        }
    };
    let restart = || async {
        let old = pods_api.get("database-0").await.unwrap().metadata.uid;
        pods_api
            .delete("database-0", &DeleteParams::default())
            .await
            .unwrap();
        until("database-0 replaced", Duration::from_secs(120), || async {
            let pod = pods_api
                .get("database-0")
                .await
                .map_err(|e| e.to_string())?;
            if pod.metadata.uid != old {
                Ok(())
            } else {
                Err("old pod".to_string())
            }
        })
        .await;
    };

    set_password(ByteString(b"not-the-password".to_vec())).await;
    restart().await;
    let systems_api = Api::<healthsystem_operator::api::HealthSystem>::all(client.clone());
    let system = until(
        "the database not ready",
        Duration::from_secs(180),
        || async {
            let system = systems_api.get(&name).await.map_err(|e| e.to_string())?;
            match condition(&system, "DatabaseReady") {
                Some(c) if c.reason == "DatabaseNotReady" => Ok(system),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let database = condition(&system, "DatabaseReady").unwrap();
    assert!(
        database.message.contains("database-credentials"),
        "{database:?}"
    );
    // The server runs (the kubelet does not restart it for a failed login) and stays not
    // ready well past the few seconds a good login takes.
    let postgres = || async {
        let pod = pods_api.get("database-0").await.unwrap();
        let statuses = pod
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default();
        statuses.into_iter().find(|c| c.name == "postgres")
    };
    until("the server running", Duration::from_secs(60), || async {
        match postgres().await {
            Some(c) if c.state.as_ref().is_some_and(|s| s.running.is_some()) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let server = postgres().await.unwrap();
    assert!(
        server.state.as_ref().unwrap().running.is_some()
            && !server.ready
            && server.restart_count == 0,
        "{server:?}"
    );
    let system = systems_api.get(&name).await.unwrap();
    assert_eq!(
        condition(&system, "DatabaseReady").unwrap().reason,
        "DatabaseNotReady"
    );

    set_password(password).await;
    restart().await;
    systems::wait_ready(&client, &name).await;
}
