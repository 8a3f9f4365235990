//! The backup really runs: a Job made from the backup CronJob dumps the live database with
//! pg_dump onto the backup claim, and that dump restores (checksum verified, pg_restore
//! without error, the same rows) into a throwaway PostgreSQL in a scratch pod.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;

use crate::pods::{self, Script, component_labels};
use crate::wait::until;
use crate::{image, ns, ready_system, setup, systems};

const RESTORE: &str = r#"set -eu
cd /backups
dump=$(ls -1 daily/*.dump | sort | tail -n 1)
sha256sum -c "$dump.sha256" >&2
initdb -D /tmp/pg -U postgres -A trust >/dev/null
pg_ctl -D /tmp/pg -o "-c listen_addresses= -c unix_socket_directories=/tmp" -w start >/dev/null
createdb -h /tmp -U postgres restored
pg_restore -h /tmp -U postgres -d restored --no-owner --exit-on-error "$dump"
psql -h /tmp -U postgres -d restored -tA -c "SELECT count(*), sum(id) FROM visits"
pg_ctl -D /tmp/pg -m fast -w stop >/dev/null
"#;

#[tokio::test]
async fn backup_job_dumps_the_database_and_the_dump_restores() {
    let client = setup().await;
    let name = ready_system(&client, "bak", |_| {}).await;
    let namespace = ns(&name);

    let written = pods::run_ok(
        &client,
        pods::psql_client(
            &namespace,
            "writer",
            &name,
            "CREATE TABLE visits (id int PRIMARY KEY, note text); \
             INSERT INTO visits SELECT g, md5(g::text) FROM generate_series(1, 5000) g; \
             SELECT count(*), sum(id) FROM visits",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&written), "5000|12502500");

    systems::create_backup_job(&client, &namespace, "backup-now", None).await;
    let jobs = Api::<Job>::namespaced(client.clone(), &namespace);
    until(
        "the backup Job succeeded",
        Duration::from_secs(240),
        || async {
            let job = jobs.get("backup-now").await.map_err(|e| e.to_string())?;
            let status = job.status.unwrap_or_default();
            let condition = |type_: &str| {
                status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == type_ && c.status == "True")
            };
            if condition("Complete") {
                Ok(())
            } else if condition("Failed") {
                panic!("the backup Job failed: {:?}", status.conditions)
            } else {
                Err(format!("{:?}", status.conditions))
            }
        },
    )
    .await;
    let job = jobs.get("backup-now").await.unwrap();
    assert_eq!(
        job.status.unwrap().failed.unwrap_or(0),
        0,
        "the dump succeeded at its first attempt"
    );

    let restored = pods::run_ok(
        &client,
        Script {
            namespace: &namespace,
            name: "restore",
            labels: component_labels(&name, "restore-test"),
            image: image("HS_IMAGE_POSTGRES15"),
            script: RESTORE.into(),
            env_from_secret: None,
            claim: Some("backup"),
        },
    )
    .await;
    assert_eq!(
        restored.lines().last().unwrap_or_default().trim(),
        "5000|12502500",
        "the dump restores with the same rows:\n{restored}"
    );
}
