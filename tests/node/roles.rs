//! Nobody works as the superuser. The application logs in as a role that
//! owns its database and nothing more, the exporter as a `pg_monitor` member, backups as a
//! read-only role; the superuser's password is in a Secret of its own. A database made before
//! the roles existed (its superuser was the application's own role) is moved to this layout
//! when it starts, the application keeping its login and password and owning its tables.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::cluster::unique;
use crate::pods::{self, psql_as, psql_client};
use crate::wait::until;
use crate::{image, node, ns, ready_system, setup, systems};

/// Every role the database has, as `name:superuser:pg_monitor:pg_read_all_data`.
const ROLE_LAYOUT: &str = "SELECT string_agg(rolname || ':' || rolsuper || ':' \
     || pg_has_role(rolname, 'pg_monitor', 'member') || ':' \
     || pg_has_role(rolname, 'pg_read_all_data', 'member'), ',' ORDER BY rolname) \
     FROM pg_roles WHERE rolname !~ '^pg_'";
const EXPECTED_LAYOUT: &str = "app:false:false:false,backup:false:false:true,\
     monitoring:false:true:false,postgres:true:true:true";

/// What the application's role may and may not do, checked in one of its sessions: it is
/// not a superuser, it owns its database and every table in it, and running a program on
/// the server is refused.
async fn assert_application_role(client: &Client, namespace: &str, system: &str) {
    let ownership = pods::run_ok(
        client,
        psql_client(
            namespace,
            "app-role",
            system,
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
             (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()), \
             (SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class c \
              JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast'))",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&ownership), "f|app|app", "{ownership}");
    let (ok, refused) = pods::run(
        client,
        psql_client(
            namespace,
            "app-program",
            system,
            "COPY (SELECT 1) TO PROGRAM 'true'",
        ),
    )
    .await;
    assert!(
        !ok && refused.contains("pg_execute_server_program"),
        "the application must not run programs on the server:\n{refused}"
    );
}

/// The role layout, read by a session of the superuser (with the superuser's Secret).
async fn role_layout(client: &Client, namespace: &str, system: &str) -> String {
    let layout = pods::run_ok(
        client,
        psql_as(
            namespace,
            "layout",
            system,
            "database-superuser",
            ROLE_LAYOUT,
        ),
    )
    .await;
    pods::last_line(&layout).to_string()
}

#[tokio::test]
async fn each_workload_logs_in_as_a_role_of_its_own_and_none_as_the_superuser() {
    let client = setup().await;
    let name = ready_system(&client, "roles", |_| {}).await;
    let namespace = ns(&name);

    let written = pods::run_ok(
        &client,
        psql_client(
            &namespace,
            "writer",
            &name,
            "CREATE TABLE patients (id serial PRIMARY KEY, name text); \
             INSERT INTO patients (name) SELECT 'p' || g FROM generate_series(1, 100) g; \
             SELECT count(*) FROM patients",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&written), "100");
    assert_application_role(&client, &namespace, &name).await;
    assert_eq!(
        role_layout(&client, &namespace, &name).await,
        EXPECTED_LAYOUT
    );

    // Backups read everything and write nothing.
    let read = pods::run_ok(
        &client,
        psql_as(
            &namespace,
            "backup-read",
            &name,
            "database-backup",
            "SELECT count(*) FROM patients",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&read), "100");
    let (ok, refused) = pods::run(
        &client,
        psql_as(
            &namespace,
            "backup-write",
            &name,
            "database-backup",
            "DELETE FROM patients",
        ),
    )
    .await;
    assert!(!ok, "the backup role must not write:\n{refused}");

    // Only the database server itself is given the superuser's password.
    let pods_api = Api::<Pod>::namespaced(client.clone(), &namespace);
    let server = pods_api.get("database-0").await.unwrap();
    for container in server.spec.unwrap().containers {
        let secrets: Vec<String> = container
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .map(|r| r.name.clone())
            .collect();
        let superuser = secrets.iter().any(|s| s == "database-superuser");
        assert_eq!(
            superuser,
            container.name == "postgres",
            "{}: {secrets:?}",
            container.name
        );
        if container.name == "exporter" {
            assert_eq!(secrets, ["database-monitoring", "database-monitoring"]);
        }
    }
}

/// The bootstrap of the operator's versions before roles: the application's role was the
/// superuser made by initdb. Run here on the data claim before the HealthSystem exists, with
/// a schema as an application of those days left it (a serial, a view, a function, a type).
const BEFORE_ROLES: &str = r#"set -eu
export PGDATA=/var/lib/postgresql/data/pgdata
printf '%s' "$password" > /tmp/pw
initdb --username=app --pwfile=/tmp/pw --auth-local=trust --auth-host=scram-sha-256 >/dev/null
echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
echo 'CREATE DATABASE "app" OWNER "app";' | postgres --single -D "$PGDATA" postgres >/dev/null
pg_ctl -o "-c listen_addresses= -c unix_socket_directories=/tmp" -w start >/dev/null
psql -h /tmp -U app -d app -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE TYPE triage AS ENUM ('green', 'yellow', 'red');
CREATE TABLE patients (id serial PRIMARY KEY, name text NOT NULL, level triage);
INSERT INTO patients (name, level) SELECT 'patient ' || g, 'green' FROM generate_series(1, 500) g;
CREATE VIEW urgent AS SELECT * FROM patients WHERE level = 'red';
CREATE FUNCTION admit(text) RETURNS int LANGUAGE sql AS 'INSERT INTO patients (name) VALUES ($1) RETURNING id';
SQL
pg_ctl -m fast -w stop >/dev/null
"#;

#[tokio::test]
async fn a_database_from_before_roles_moves_its_superuser_off_the_application_role() {
    let client = setup().await;
    let name = unique("oldroles");
    let namespace = ns(&name);
    let labels = json!({
        "app.kubernetes.io/managed-by": "healthsystem-operator",
        "sdc.gov.rs/healthsystem": name,
    });
    let component = json!({
        "app.kubernetes.io/managed-by": "healthsystem-operator",
        "sdc.gov.rs/healthsystem": name,
        "app.kubernetes.io/component": "database",
    });
    // What an operator version without roles left behind: its namespace (made before UIDs
    // were recorded), the credentials Secret and the data claim.
    let create = PostParams::default();
    Api::<Namespace>::all(client.clone())
        .create(
            &create,
            &serde_json::from_value(json!({ "metadata": { "name": namespace, "labels": labels } }))
                .unwrap(),
        )
        .await
        .unwrap();
    let password = "the-password-of-2024";
    Api::<Secret>::namespaced(client.clone(), &namespace)
        .create(
            &create,
            &serde_json::from_value(json!({
                "metadata": { "name": "database-credentials", "labels": component },
                "stringData": {
                    "username": "app", "database": "app", "password": password,
                    "host": format!("database.{namespace}.svc"), "port": "5432",
                }
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace)
        .create(
            &create,
            &serde_json::from_value(json!({
                "metadata": { "name": "data-database-0", "labels": component },
                "spec": {
                    "accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                    "resources": { "requests": { "storage": "1Gi" } },
                }
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let seed: Pod = serde_json::from_value(json!({
        "metadata": { "name": "seed", "namespace": namespace },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "securityContext": { "runAsNonRoot": true, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999, "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{
                "name": "seed", "image": image("HS_IMAGE_POSTGRES15"),
                "command": ["/bin/sh", "-c", BEFORE_ROLES],
                "env": [{ "name": "password", "value": password }],
                "volumeMounts": [
                    { "name": "data", "mountPath": "/var/lib/postgresql/data" },
                    { "name": "tmp", "mountPath": "/tmp" },
                    { "name": "run", "mountPath": "/var/run/postgresql" }
                ],
                "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } }
            }],
            "volumes": [
                { "name": "data", "persistentVolumeClaim": { "claimName": "data-database-0" } },
                { "name": "tmp", "emptyDir": {} },
                { "name": "run", "emptyDir": {} }
            ]
        }
    }))
    .unwrap();
    let pods_api = Api::<Pod>::namespaced(client.clone(), &namespace);
    pods_api.create(&create, &seed).await.unwrap();
    until(
        "the old database seeded",
        Duration::from_secs(240),
        || async {
            let pod = pods_api.get("seed").await.map_err(|e| e.to_string())?;
            match pod.status.and_then(|s| s.phase).as_deref() {
                Some("Succeeded") => Ok(()),
                Some("Failed") => panic!(
                    "seeding failed: {}",
                    pods_api
                        .logs("seed", &Default::default())
                        .await
                        .unwrap_or_default()
                ),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    pods_api.delete("seed", &Default::default()).await.unwrap();

    systems::create_named(&client, &name, "lab-biomedica.yaml", node::small_system).await;
    systems::wait_ready(&client, &name).await;

    // The application logs in as before (same Secret, same password) and finds its rows.
    let rows = pods::run_ok(
        &client,
        psql_client(
            &namespace,
            "rows",
            &name,
            "SELECT count(*), admit('new patient') FROM patients",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&rows), "500|501", "{rows}");
    assert_application_role(&client, &namespace, &name).await;
    assert_eq!(
        role_layout(&client, &namespace, &name).await,
        EXPECTED_LAYOUT
    );
    let owners = pods::run_ok(
        &client,
        psql_as(
            &namespace,
            "owners",
            &name,
            "database-superuser",
            "SELECT (SELECT rolname FROM pg_roles WHERE oid = 10), \
             pg_get_userbyid((SELECT typowner FROM pg_type WHERE typname = 'triage')), \
             pg_get_userbyid((SELECT proowner FROM pg_proc WHERE proname = 'admit'))",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&owners), "postgres|app|app", "{owners}");
}
