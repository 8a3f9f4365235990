//! The database really runs: PostgreSQL started by the pod's own bootstrap, a client logs in
//! with the generated credentials through the `database` Service, the data outlives the pod,
//! and the exporter reports the server up.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

use crate::pods::{self, Script};
use crate::wait::until;
use crate::{image, ns, ready_system, setup};

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
    let logs = pods::run_ok(
        &client,
        Script {
            namespace: "monitoring",
            name: &pod_name,
            labels: Default::default(),
            image: image("HS_IMAGE_POSTGRES15"),
            // A plain HTTP GET with bash's /dev/tcp, retried until the exporter answers.
            script: format!(
                "scrape() {{ exec 3<>/dev/tcp/database.{}.svc/9187 && \
                   printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3 >/tmp/metrics; }}\n\
                 for i in $(seq 1 60); do\n\
                   (scrape) 2>/dev/null && grep -q '^pg_up 1' /tmp/metrics && break\n\
                   sleep 1\n\
                 done\n\
                 grep '^pg_up ' /tmp/metrics",
                ns(&name)
            ),
            env_from_secret: None,
            claim: None,
        },
    )
    .await;
    assert_eq!(logs.trim(), "pg_up 1");
}
