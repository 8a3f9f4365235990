//! CloudNativePG, the database engine the systems move onto, on the local cluster's real node:
//! built from the Go module proxy at the pinned version, its release manifest applied with our
//! image, a 2-instance Cluster on the node's PostgreSQL 15 image under Pod Security
//! `restricted`. Its logins are TLS only (plaintext refused, `verify-full` with its CA
//! connects, another CA refused); a row written on the primary is read on the replica; the primary pod deleted
//! under a client committing numbered rows every 100 ms: a replica is promoted, writes resume,
//! and the time from the deletion to the first new commit and the acknowledged rows lost are
//! measured (asynchronous replication: the loss is reported, not asserted away).
//! Its own cluster. `engine` runs the operator with new systems on CloudNativePG; `fleet`
//! measures an idle fleet of them; `data` loses a single instance's claim.

mod data;
mod engine;
mod fleet;
mod lag;

use healthsystem_test_support::cluster;
use healthsystem_test_support::cnpg;
use healthsystem_test_support::node;
use healthsystem_test_support::pods::{self, Script};
use healthsystem_test_support::wait::until;

use std::collections::BTreeMap;

use healthsystem_operator::config::CloudNativePg;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;

const CLUSTER: &str = "db";

async fn namespace(client: &Client) -> String {
    let name = cluster::unique("cnpg");
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "pod-security.kubernetes.io/enforce": "restricted" } }
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .patch(&name, &PatchParams::apply("cnpg-test"), &Patch::Apply(&ns))
        .await
        .unwrap();
    name
}

/// A psql client of the Cluster as its application (CloudNativePG's `db-app` Secret: its
/// keys become the environment), over TLS.
fn client_script<'a>(namespace: &'a str, name: &'a str, body: &str) -> Script<'a> {
    Script {
        namespace,
        name,
        labels: BTreeMap::new(),
        image: node::image("HS_IMAGE_POSTGRES15"),
        script: format!(
            "export PGUSER=$username PGPASSWORD=$password PGDATABASE=$dbname PGSSLMODE=require\n\
             for i in $(seq 1 60); do psql -h {CLUSTER}-rw -c 'select 1' >/dev/null 2>&1 && break; sleep 1; done\n\
             {body}"
        ),
        env_from_secret: Some("db-app"),
        claim: None,
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Numbered commits every 100 ms for 70 s, each bounded to 3 s; then which acknowledged
/// ones are missing.
const WRITER: &str = r#"psql -h db-rw -v ON_ERROR_STOP=1 -q -c "CREATE TABLE IF NOT EXISTS f (n int PRIMARY KEY)"
end=$(( $(date +%s) + 70 ))
n=0
: >/tmp/ok
while [ "$(date +%s)" -lt "$end" ]; do
  n=$((n + 1))
  if PGCONNECT_TIMEOUT=2 PGOPTIONS='-c statement_timeout=2000' timeout 3 psql -h db-rw -tAq -c "INSERT INTO f VALUES ($n)" >/dev/null 2>&1; then
    echo "ok $n $(date +%s%3N)"; echo "$n" >>/tmp/ok
  else
    echo "fail $n $(date +%s%3N)"
  fi
  sleep 0.1
done
for i in $(seq 1 30); do psql -h db-rw -tA -c "SELECT n FROM f" >/tmp/have 2>/dev/null && break; sleep 1; done
echo "acknowledged $(wc -l </tmp/ok)"
echo "lost $(sort /tmp/ok | comm -23 - <(sort /tmp/have) | wc -l)"
"#;

/// CloudNativePG on the real node and a healthy 2-instance Cluster `db` in a namespace of its
/// own: the client, the namespace, the primary and the replica.
async fn replicated(synchronous: bool) -> (Client, String, String, String) {
    cluster::use_real_node();
    // The cluster of this binary keeps an audit log (`fleet`), whichever test starts it.
    cluster::use_audit_log();
    let client = cluster::client().await;
    let image = cnpg::install(&client).await;
    eprintln!("CloudNativePG running from {image}");
    let namespace = namespace(&client).await;
    let (primary, replica) = two_instances(&client, &namespace, synchronous).await;
    (client, namespace, primary, replica)
}

/// A 2-instance Cluster `db`, with synchronous commits or not, healthy: its primary and its
/// replica.
async fn two_instances(client: &Client, namespace: &str, synchronous: bool) -> (String, String) {
    let clusters =
        Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &cnpg::cluster_resource());
    // TLS only: CloudNativePG's own rules accept plaintext logins with a password.
    let mut postgresql = json!({ "pg_hba": ["hostnossl all all all reject"] });
    if synchronous {
        postgresql["synchronous"] =
            json!({ "method": "any", "number": 1, "dataDurability": "required" });
    }
    let manifest: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": { "name": CLUSTER },
        "spec": {
            "instances": 2,
            "imageName": node::image("HS_IMAGE_POSTGRES15"),
            // Also the init container's that copies the manager in: never pulled here.
            "imagePullPolicy": "Never",
            "postgresUID": 999, "postgresGID": 999,
            // The operator's default, so the failover measured is the one systems get.
            "primaryLease": CloudNativePg::default().primary_lease,
            "storage": { "size": "1Gi", "storageClass": "standard" },
            "postgresql": postgresql,
            "bootstrap": { "initdb": { "database": "app", "owner": "app" } }
        }
    }))
    .unwrap();
    clusters
        .patch(
            CLUSTER,
            &PatchParams::apply("cnpg-test"),
            &Patch::Apply(&manifest),
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let healthy = until(
        "the Cluster healthy with 2 instances",
        Duration::from_secs(300),
        || async {
            let cluster = cnpg::get(client, namespace, CLUSTER).await?;
            let status = &cluster.data["status"];
            if status["readyInstances"] == 2 && status["phase"] == "Cluster in healthy state" {
                Ok(status.clone())
            } else {
                Err(format!(
                    "{} ready, {}",
                    status["readyInstances"], status["phase"]
                ))
            }
        },
    )
    .await;
    eprintln!("healthy after {:.1}s", started.elapsed().as_secs_f64());
    let primary = healthy["currentPrimary"].as_str().unwrap().to_string();
    let replica = healthy["instanceNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .find(|name| *name != primary)
        .expect("a replica")
        .to_string();
    (primary, replica)
}

#[tokio::test]
async fn a_replicated_cluster_fails_over_when_its_primary_pod_is_deleted() {
    let (client, namespace, primary, _) = replicated(false).await;

    // A row written on the primary is read on the replica (the -ro Service).
    let replicated = pods::run_ok(
        &client,
        client_script(
            &namespace,
            "replica-read",
            "psql -h db-rw -v ON_ERROR_STOP=1 -q -c 'CREATE TABLE r (id int PRIMARY KEY); INSERT INTO r VALUES (42)'\n\
             for i in $(seq 1 30); do got=$(psql -h db-ro -tA -c 'SELECT count(*) FROM r WHERE id = 42' 2>/dev/null); [ \"$got\" = 1 ] && break; sleep 1; done\n\
             echo \"replica $got $(psql -h db-ro -tA -c 'SELECT pg_is_in_recovery()')\"",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&replicated), "replica 1 t", "{replicated}");

    // TLS: plaintext refused; verify-full with the Cluster's CA connects; another CA (the
    // public ones of the image) is refused.
    let ca = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &namespace)
        .get("db-ca")
        .await
        .unwrap();
    let ca = String::from_utf8(ca.data.unwrap()["ca.crt"].0.clone()).unwrap();
    let host = format!("{CLUSTER}-rw.{namespace}.svc");
    let tls = pods::run_ok(
        &client,
        client_script(
            &namespace,
            "tls",
            &format!(
                "cat >/tmp/ca.crt <<'PEM'\n{ca}PEM\n\
                 try() {{ out=$(psql \"host={host} dbname=app $2\" -tA -c 'select 1' 2>&1 | tr '\\n' ' '); echo \"$1 $out\"; }}\n\
                 try plaintext sslmode=disable\n\
                 try verified 'sslmode=verify-full sslrootcert=/tmp/ca.crt'\n\
                 try wrongca 'sslmode=verify-full sslrootcert=/etc/ssl/certs/ca-certificates.crt'"
            ),
        ),
    )
    .await;
    let line = |name: &str| {
        tls.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("plaintext").contains("no encryption"),
        "plaintext refused by pg_hba: {tls}"
    );
    assert_eq!(line("verified").trim(), "1", "verify-full connects: {tls}");
    assert!(
        line("wrongca").contains("certificate verify failed"),
        "another CA refused: {tls}"
    );

    // Failover under a writing client.
    let writer = {
        let client = client.clone();
        let namespace = namespace.clone();
        tokio::spawn(async move {
            pods::run_ok(&client, client_script(&namespace, "writer", WRITER)).await
        })
    };
    let pods_api = Api::<Pod>::namespaced(client.clone(), &namespace);
    until(
        "the writer committing",
        Duration::from_secs(120),
        || async {
            let logs = pods_api
                .logs("writer", &Default::default())
                .await
                .map_err(|e| e.to_string())?;
            if logs.lines().filter(|l| l.starts_with("ok ")).count() >= 20 {
                Ok(())
            } else {
                Err("fewer than 20 commits".to_string())
            }
        },
    )
    .await;
    let deleted_at = now_ms();
    pods_api
        .delete(&primary, &DeleteParams::default())
        .await
        .unwrap();
    let logs = writer.await.unwrap();
    let outcome = Outcome::read(&logs, deleted_at);
    let after = cnpg::get(&client, &namespace, CLUSTER).await.unwrap();
    let new_primary = after.data["status"]["currentPrimary"]
        .as_str()
        .unwrap_or_default();
    eprintln!("failover: primary {primary} -> {new_primary}; {outcome}");
    assert_ne!(new_primary, primary, "a replica was promoted");
    let downtime = outcome
        .downtime
        .unwrap_or_else(|| panic!("no commit after the deletion:\n{logs}"));
    assert!(downtime < 60.0, "writes resumed only after {downtime} s");
    assert!(outcome.acknowledged.unwrap_or(0) > 20, "{logs}");
    assert!(outcome.lost.is_some(), "the loss was counted:\n{logs}");
}

/// What a `WRITER` saw of a failover that began at `deleted_at` (ms since the epoch).
pub struct Outcome {
    /// Attempts after the deletion that failed.
    pub failed: usize,
    /// Seconds from the deletion to the first commit after the first failure.
    pub downtime: Option<f64>,
    /// Commits the writer was told succeeded.
    pub acknowledged: Option<u64>,
    /// Acknowledged commits missing afterwards.
    pub lost: Option<u64>,
}

impl Outcome {
    pub fn read(logs: &str, deleted_at: u128) -> Self {
        // (time, committed) of each attempt after the deletion. The old primary may commit
        // for a moment more while it shuts down; the outage is from the deletion to the
        // first commit after the first failed attempt.
        let attempts: Vec<(u128, bool)> = logs
            .lines()
            .filter_map(|l| {
                let mut words = l.split(' ');
                let ok = match words.next()? {
                    "ok" => true,
                    "fail" => false,
                    _ => return None,
                };
                let at = words.nth(1)?.parse::<u128>().ok()?;
                (at > deleted_at).then_some((at, ok))
            })
            .collect();
        let first_failure = attempts.iter().position(|(_, ok)| !ok);
        let first_after = match first_failure {
            Some(i) => attempts[i..].iter().find(|(_, ok)| *ok).map(|(at, _)| *at),
            None => attempts.first().map(|(at, _)| *at),
        };
        let value = |key: &str| {
            logs.lines()
                .find_map(|l| l.strip_prefix(&format!("{key} ")))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Self {
            failed: attempts.iter().filter(|(_, ok)| !ok).count(),
            downtime: first_after.map(|at| (at - deleted_at) as f64 / 1000.0),
            acknowledged: value("acknowledged"),
            lost: value("lost"),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed attempts; writes again {:?} s after the deletion; {:?} acknowledged, {:?} of them lost",
            self.failed, self.downtime, self.acknowledged, self.lost
        )
    }
}
