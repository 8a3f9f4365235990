//! Leader election between two replicas of the real operator on the local control plane:
//! only the leader reconciles; when it is killed the standby takes over within the lease
//! duration; a replica stopped with SIGTERM gives the Lease up at once. Under load (issue
//! 16), leaders killed and paused while systems converge: the API server's audit log proves
//! that two replicas never wrote at once.
//!
//! The tests take turns: every replica reconciles every HealthSystem of the cluster. The
//! long failover run is `LEADER_SYSTEMS=200 LEADER_KILLS=10 cargo test --test leader --
//! --nocapture failover` (figures in the README).

use healthsystem_test_support::cluster;
use healthsystem_test_support::corpus;
use healthsystem_test_support::settings;
use healthsystem_test_support::systems;
use healthsystem_test_support::wait;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::Client;

use cluster::{client, install_crd};
use corpus::root;
use settings::setting;
use wait::until;

/// One replica, run under testenv/owned.sh so it never outlives the test binary.
struct Replica {
    wrapper: Child,
    log: PathBuf,
}

impl Replica {
    fn start(name: &str) -> Self {
        Self::start_with_lease(name, "leader-test")
    }

    fn start_with_lease(name: &str, lease: &str) -> Self {
        let log = healthsystem_test_support::target_tmpdir()
            .join(format!("leader-{name}-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let wrapper = Command::new("bash")
            .arg(root().join("testenv/owned.sh"))
            .arg(std::process::id().to_string())
            .arg(env!("CARGO_BIN_EXE_healthsystem-operator"))
            .args(["run", "--leader-elect", "--http-addr", "127.0.0.1:0"])
            .env("KUBECONFIG", cluster::kubeconfig())
            .env("POD_NAMESPACE", "default")
            .env("POD_NAME", name)
            .env("HS_LEASE_NAME", lease)
            .env("RUST_LOG", "info,healthsystem_operator=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { wrapper, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn is_leader(&self) -> bool {
        self.log().contains("became leader")
    }

    /// The operator process itself (the wrapper's child).
    fn operator_pid(&self) -> String {
        // The wrapper's children are the operator and, now and then, a `sleep`.
        let out = Command::new("pgrep")
            .args([
                "-P",
                &self.wrapper.id().to_string(),
                "-f",
                "healthsystem-operator",
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Whether the replica has exited (its wrapper exits with it).
    fn exited(&mut self) -> bool {
        matches!(self.wrapper.try_wait(), Ok(Some(_)))
    }

    fn signal(&self, signal: &str) {
        let pid = self.operator_pid();
        assert!(!pid.is_empty(), "the operator runs");
        Command::new("kill").args([signal, &pid]).status().unwrap();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.wrapper.id().to_string()])
            .status();
        let _ = self.wrapper.wait();
    }
}

/// One test at a time: each test's leader would reconcile the others' systems.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn create_and_wait_ready(client: &Client) -> String {
    let name = systems::create(client, "leader", "lab-biomedica.yaml", |_| {}).await;
    systems::wait_ready(client, &name).await;
    name
}

#[tokio::test]
async fn one_leader_reconciles_and_a_standby_takes_over() {
    let _turn = TURN.lock().await;
    cluster::use_audit_log();
    let client = client().await;
    install_crd(&client).await;
    let a = Replica::start("replica-a");
    let b = Replica::start("replica-b");
    until("one leader", Duration::from_secs(60), || async {
        match (a.is_leader(), b.is_leader()) {
            (true, false) | (false, true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let (leader, standby) = if a.is_leader() { (a, b) } else { (b, a) };

    let first = create_and_wait_ready(&client).await;
    let marker = format!("healthsystem={first}");
    assert!(
        leader.log().contains(&marker),
        "the leader reconciled {first}"
    );
    assert!(
        !standby.log().contains(&marker),
        "the standby reconciled {first}:\n{}",
        standby.log()
    );

    // The leader dies without a word: the standby waits for the Lease to expire.
    leader.signal("-KILL");
    let killed = Instant::now();
    until(
        "the standby to take over",
        Duration::from_secs(60),
        || async {
            if standby.is_leader() {
                Ok(())
            } else {
                Err("still standby".to_string())
            }
        },
    )
    .await;
    let takeover = killed.elapsed();
    eprintln!(
        "takeover after the leader was killed: {:.1}s",
        takeover.as_secs_f64()
    );
    assert!(takeover <= Duration::from_secs(20), "took {takeover:?}");
    let second = create_and_wait_ready(&client).await;
    assert!(standby.log().contains(&format!("healthsystem={second}")));

    // SIGTERM: in-flight work drains and the Lease is given up; a new replica leads at once.
    let c = Replica::start("replica-c");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!c.is_leader());
    standby.signal("-TERM");
    let stopped = Instant::now();
    until(
        "the new replica to lead",
        Duration::from_secs(30),
        || async {
            if c.is_leader() {
                Ok(())
            } else {
                Err("still standby".to_string())
            }
        },
    )
    .await;
    let handover = stopped.elapsed();
    eprintln!("handover after SIGTERM: {:.1}s", handover.as_secs_f64());
    assert!(
        standby.log().contains("leadership released"),
        "{}",
        standby.log()
    );
    assert!(handover < Duration::from_secs(10), "took {handover:?}");
    drop(leader);
}

/// Expiry is judged by this replica's own clock, from when it last saw the
/// Lease change, never by comparing another replica's renewTime with the local clock. A live
/// leader whose clock runs an hour behind (its renewTimes look an hour old here) keeps the
/// Lease while it renews; once it stops, the replica takes over after the lease duration.
#[tokio::test]
async fn a_live_leader_with_a_skewed_clock_keeps_the_lease() {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    use kube::api::{Api, ObjectMeta, PostParams};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let _turn = TURN.lock().await;
    cluster::use_audit_log();
    let client = client().await;
    install_crd(&client).await;
    let leases = Api::<Lease>::namespaced(client.clone(), "default");
    let name = "skew-test";
    let an_hour_ago = || MicroTime(Timestamp::now() - SignedDuration::from_hours(1));
    leases
        .create(
            &PostParams::default(),
            &Lease {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some("ghost".into()),
                    lease_duration_seconds: Some(15),
                    acquire_time: Some(an_hour_ago()),
                    renew_time: Some(an_hour_ago()),
                    ..LeaseSpec::default()
                }),
            },
        )
        .await
        .unwrap();
    let renewing = Arc::new(AtomicBool::new(true));
    let ghost = {
        let (leases, renewing) = (leases.clone(), renewing.clone());
        tokio::spawn(async move {
            while renewing.load(Ordering::SeqCst) {
                if let Ok(mut lease) = leases.get(name).await
                    && lease
                        .spec
                        .as_ref()
                        .and_then(|s| s.holder_identity.as_deref())
                        == Some("ghost")
                {
                    lease.spec.as_mut().unwrap().renew_time = Some(an_hour_ago());
                    let _ = leases.replace(name, &PostParams::default(), &lease).await;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };
    let replica = Replica::start_with_lease("replica-skew", name);
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(
        !replica.is_leader(),
        "took the Lease from a leader that renews it:\n{}",
        replica.log()
    );
    renewing.store(false, Ordering::SeqCst);
    ghost.await.unwrap();
    let stopped = Instant::now();
    until(
        "the replica to take over",
        Duration::from_secs(60),
        || async {
            if replica.is_leader() {
                Ok(())
            } else {
                Err("standby")
            }
        },
    )
    .await;
    let waited = stopped.elapsed();
    eprintln!(
        "takeover after the skewed leader stopped: {:.1}s",
        waited.as_secs_f64()
    );
    assert!(
        waited >= Duration::from_secs(10),
        "took over after {waited:?}: before the lease duration"
    );
}

/// The writes the API server received from replicas whose identity starts with `prefix`,
/// from its audit log, in the order it received them: (time, replica, verb and object).
/// The Lease's own requests are how replicas compete, not writes of the fleet.
fn writes_received(prefix: &str) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(cluster::audit_log()).expect("the audit log");
    let mut writes: Vec<_> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|e| e["stage"] == "ResponseComplete" && e["objectRef"]["resource"] != "leases")
        .filter_map(|e| {
            let agent = e["userAgent"].as_str()?;
            let replica = agent
                .strip_prefix("healthsystem-operator/")?
                .split_once('(')?
                .1
                .trim_end_matches(')');
            replica.starts_with(prefix).then(|| {
                (
                    e["requestReceivedTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    replica.to_string(),
                    format!(
                        "{} {}/{}/{}",
                        e["verb"].as_str().unwrap_or(""),
                        e["objectRef"]["resource"].as_str().unwrap_or(""),
                        e["objectRef"]["namespace"].as_str().unwrap_or(""),
                        e["objectRef"]["name"].as_str().unwrap_or("")
                    ),
                )
            })
        })
        .collect();
    // Fixed-width UTC microsecond timestamps: their text order is their time order.
    writes.sort();
    writes
}

/// One leader paused longer than the Lease (SIGSTOP, then SIGCONT), then leaders
/// killed (SIGKILL), each while a batch of systems converges. A paused leader wakes with reconciles mid-flight
/// after a standby took over: it must not send one more write. Proven from the API server's
/// audit log: each replica's writes form one unbroken run in the order the server received
/// them, so no two replicas ever wrote at once.
#[tokio::test]
async fn failover_under_load_never_has_two_writers() {
    let _turn = TURN.lock().await;
    cluster::use_audit_log();
    let systems_count = setting("LEADER_SYSTEMS", 30);
    let kills = setting("LEADER_KILLS", 3);
    let client = client().await;
    install_crd(&client).await;
    let lease = "failover-test";
    let mut replicas: Vec<Replica> = (0..2)
        .map(|i| Replica::start_with_lease(&format!("failover-{i}"), lease))
        .collect();
    let mut started = replicas.len();
    until("one leader", Duration::from_secs(60), || async {
        match replicas.iter().filter(|r| r.is_leader()).count() {
            1 => Ok(()),
            n => Err(format!("{n} leaders")),
        }
    })
    .await;
    // Each fault strikes while a new batch of systems converges; the first is the pause.
    let mut names = Vec::new();
    let mut takeovers = Vec::new();
    for round in 0..=kills {
        let batch = systems_count / (kills + 1) + u64::from(round < systems_count % (kills + 1));
        for _ in 0..batch {
            names.push(systems::create(&client, "failover", "lab-biomedica.yaml", |_| {}).await);
        }
        tokio::time::sleep(Duration::from_millis(500 + (round * 700) % 1500)).await;
        let leader = replicas.iter().position(Replica::is_leader).unwrap();
        let pause = round == 0;
        replicas[leader].signal(if pause { "-STOP" } else { "-KILL" });
        let at = Instant::now();
        until(
            "a standby to take over",
            Duration::from_secs(60),
            || async {
                let leaders = replicas
                    .iter()
                    .enumerate()
                    .filter(|(i, r)| *i != leader && r.is_leader())
                    .count();
                if leaders == 1 {
                    Ok(())
                } else {
                    Err(format!("{leaders} new leaders"))
                }
            },
        )
        .await;
        takeovers.push(at.elapsed().as_secs_f64());
        if pause {
            // The new leader writes for a while; then the old one wakes up.
            tokio::time::sleep(Duration::from_secs(3)).await;
            replicas[leader].signal("-CONT");
            let old = &mut replicas[leader];
            until("the woken leader to stop", Duration::from_secs(30), || {
                let exited = old.exited();
                async move { if exited { Ok(()) } else { Err("still running") } }
            })
            .await;
            assert!(
                old.log().contains("leadership lost"),
                "the woken leader did not stop for a lost Lease:\n{}",
                old.log()
            );
        }
        replicas.remove(leader);
        replicas.push(Replica::start_with_lease(
            &format!("failover-{started}"),
            lease,
        ));
        started += 1;
    }
    for name in &names {
        systems::wait_ready(&client, name).await;
    }
    drop(replicas);

    let writes = writes_received("failover-");
    let mut runs: Vec<(String, usize)> = Vec::new();
    for (_, replica, _) in &writes {
        match runs.last_mut() {
            Some((last, count)) if last == replica => *count += 1,
            _ => runs.push((replica.clone(), 1)),
        }
    }
    eprintln!(
        "failover: {systems_count} systems, {kills} leaders killed and 1 paused; takeovers after {takeovers:.1?} s; writes per leader in the server's order: {runs:?}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for (replica, _) in &runs {
        assert!(
            seen.insert(replica.clone()),
            "{replica} wrote again after another replica had written: two writers at once. Runs: {runs:?}; the writes around it: {:?}",
            writes
                .iter()
                .filter(|(_, r, _)| r == replica)
                .map(|(t, _, w)| format!("{t} {w}"))
                .collect::<Vec<_>>()
        );
    }
    assert!(
        runs.len() >= 2,
        "the writes came from fewer than two leaders: {runs:?}"
    );
    for takeover in &takeovers {
        assert!(*takeover <= 20.0, "a takeover took {takeover:.1} s");
    }
}
