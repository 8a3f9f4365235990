//! Failover with a replica behind on purpose: on one machine a replica is never behind by
//! itself, so the WAL stream into the replica's pod is throttled on the node (a token bucket
//! on its host-side interface, for traffic from port 5432 only; CloudNativePG's own status
//! calls pass). The primary pod is then killed without grace under a client committing
//! numbered rows. Asynchronous: acknowledged rows are lost, and counted. Synchronous
//! (`dataDurability: required`): none are. The HA suite, a documented command
//! (`cargo test --test cnpg lag -- --ignored`), not CI: two 2-instance clusters, 5 minutes.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};

use super::{CLUSTER, Outcome, WRITER, client_script, now_ms, replicated};
use healthsystem_test_support::wait::until;
use healthsystem_test_support::{cnpg, pods};

/// Throttles what enters the pod of `ip` from port 5432 (the WAL stream from the primary)
/// to 8 kbit/s with HTB (the kernels here have neither netem nor prio); the host-side
/// interface goes with the pod, and the shaping with it.
const SLOW: &str = r#"set -eu
ip=$1 index=
for ns in $(ip netns list | awk '{print $1}'); do
  if ip -n "$ns" -4 -o addr show | grep -q " $ip/"; then
    index=$(ip netns exec "$ns" cat /sys/class/net/eth0/iflink); break
  fi
done
[ -n "$index" ] || { echo "no network namespace has $ip" >&2; exit 1; }
dev=$(ip -o link | awk -F': ' -v i="$index" '$1 == i {print $2}' | cut -d@ -f1)
tc qdisc add dev "$dev" root handle 1: htb default 10
tc class add dev "$dev" parent 1: classid 1:10 htb rate 10gbit
tc class add dev "$dev" parent 1: classid 1:30 htb rate 8kbit ceil 8kbit burst 1600 cburst 1600
tc filter add dev "$dev" parent 1: protocol ip prio 1 u32 match ip sport 5432 0xffff flowid 1:30
echo "$dev""#;

/// Slows the replica's WAL stream, lets a writer commit for a while, kills the primary pod
/// without grace and returns what the writer saw.
async fn kill_primary_behind_a_slow_replica(synchronous: bool) -> Outcome {
    let (client, namespace, primary, replica) = replicated(synchronous).await;
    // The writer's table on both instances first: what follows is only its rows.
    let table = pods::run_ok(
        &client,
        client_script(
            &namespace,
            "table",
            "psql -h db-rw -v ON_ERROR_STOP=1 -q -c 'CREATE TABLE f (n int PRIMARY KEY)'\n\
             for i in $(seq 1 30); do psql -h db-ro -tA -c 'SELECT 1 FROM f' >/dev/null 2>&1 && break; sleep 1; done\n\
             echo \"replica $(psql -h db-ro -tA -c 'SELECT count(*) FROM f')\"",
        ),
    )
    .await;
    assert_eq!(pods::last_line(&table), "replica 0", "{table}");
    let pods_api = Api::<Pod>::namespaced(client.clone(), &namespace);
    let replica_ip = pods_api
        .get(&replica)
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap();
    let slowed = Command::new("bash")
        .args(["-c", SLOW, "slow", &replica_ip])
        .output()
        .unwrap();
    assert!(
        slowed.status.success(),
        "{}",
        String::from_utf8_lossy(&slowed.stderr)
    );

    let writer = {
        let client = client.clone();
        let namespace = namespace.clone();
        tokio::spawn(async move {
            pods::run_ok(&client, client_script(&namespace, "writer", WRITER)).await
        })
    };
    // 15 s of commits: the replica falls behind (asynchronous) or each commit waits (not).
    until(
        "the writer committing for 15 s",
        Duration::from_secs(120),
        || async {
            let logs = pods_api
                .logs("writer", &Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let first = logs
                .lines()
                .find_map(|l| l.strip_prefix("ok "))
                .and_then(|l| l.split(' ').nth(1)?.parse::<u128>().ok());
            match first {
                Some(at) if now_ms() > at + 15_000 => Ok(()),
                _ => Err("not yet".to_string()),
            }
        },
    )
    .await;
    let dev = String::from_utf8_lossy(&slowed.stdout).trim().to_string();
    let shaped = Command::new("tc")
        .args(["-s", "class", "show", "dev", &dev])
        .output()
        .unwrap();
    eprintln!(
        "shaping of {dev}:\n{}",
        String::from_utf8_lossy(&shaped.stdout)
    );
    let deleted_at = now_ms();
    let no_grace = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    pods_api.delete(&primary, &no_grace).await.unwrap();
    let logs = writer.await.unwrap();
    let outcome = Outcome::read(&logs, deleted_at);
    let after = cnpg::get(&client, &namespace, CLUSTER).await.unwrap();
    eprintln!(
        "{} replication, replica slowed, primary {primary} killed -> {}; {outcome}",
        if synchronous {
            "synchronous"
        } else {
            "asynchronous"
        },
        after.data["status"]["currentPrimary"]
    );
    assert!(outcome.acknowledged.unwrap_or(0) > 20, "{logs}");
    outcome
}

#[tokio::test]
#[ignore = "HA suite: cargo test --test cnpg lag -- --ignored"]
async fn asynchronous_replication_behind_a_slowed_replica_loses_acknowledged_rows_and_counts_them()
{
    let outcome = kill_primary_behind_a_slow_replica(false).await;
    assert!(
        outcome.lost.is_some_and(|lost| lost > 0),
        "the replica was made to lag, so acknowledged rows are lost: {outcome}"
    );
}

#[tokio::test]
#[ignore = "HA suite: cargo test --test cnpg lag -- --ignored"]
async fn synchronous_replication_behind_a_slowed_replica_loses_no_acknowledged_row() {
    let outcome = kill_primary_behind_a_slow_replica(true).await;
    assert_eq!(outcome.lost, Some(0), "{outcome}");
}
