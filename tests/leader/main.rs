//! Leader election between two replicas of the real operator on the local control plane:
//! only the leader reconciles; when it is killed the standby takes over within the lease
//! duration; a replica stopped with SIGTERM gives the Lease up at once.

#[path = "../support/cluster.rs"]
mod cluster;
#[path = "../support/corpus.rs"]
mod corpus;
#[path = "../support/systems.rs"]
mod systems;
#[path = "../support/wait.rs"]
mod wait;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::Client;

use cluster::{client, install_crd};
use corpus::root;
use wait::until;

/// One replica, run under testenv/owned.sh so it never outlives the test binary.
struct Replica {
    wrapper: Child,
    log: PathBuf,
}

impl Replica {
    fn start(name: &str) -> Self {
        let log = Path::new(env!("CARGO_TARGET_TMPDIR"))
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
            .env("HS_LEASE_NAME", "leader-test")
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

async fn create_and_wait_ready(client: &Client) -> String {
    let name = systems::create(client, "leader", "lab-biomedica.yaml", |_| {}).await;
    systems::wait_ready(client, &name).await;
    name
}

#[tokio::test]
async fn one_leader_reconciles_and_a_standby_takes_over() {
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
