//! Fleet-scale benchmark on the local control plane (not a timed test: it reports, it does not
//! assert). For each size N it measures, on fresh clusters:
//!
//! 1. the floor: server-side applying the very objects `render` builds for N systems with a
//!    tight client (32 requests in flight), on a cluster of its own, and the time until their
//!    pods are ready (`fleet/ready.rs`), the floor of the operator's time to all Ready;
//! 2. the operator: N HealthSystems created (varied tiers, with and without application): the
//!    time until every child exists (metadata watches, `fleet/applied.rs`) and until all are
//!    Ready, its API requests by verb (its own request counter), and the API server's and its
//!    own CPU seconds meanwhile (`fleet/apiserver.rs`);
//! 3. idle: mutating requests from the operator over the idle period (target zero);
//! 4. change latency: p50 and p99 over repeated one-field changes until the child shows them;
//! 5. restart: time until the restarted operator is idle again, and its writes;
//! 6. the operator's peak and settled resident memory.
//!
//! With `--peers`, the same objects for N systems are also installed by one Helm release per
//! system (`fleet/helm.rs`) and by kro (`fleet/kro.rs`, built once by testenv/kro/build.sh),
//! each on a cluster of its own, and a second table sets the floor, Helm, kro and the
//! operator side by side: time until every object exists, the API server's requests
//! and CPU seconds per system, the client's peak memory.
//!
//! Run: `cargo bench --bench fleet -- [--sizes 100,500,1000] [--idle-seconds 300]
//! [--changes 50] [--peers] [--json target/fleet.json] [--check]`
//!
//! `--check` (what `.ci/run` uses, at N = 100) exits non-zero on a regression of what must
//! never change with the machine's speed: more than 3 mutating requests while idle, or a
//! restarted operator that writes.
//!
//! `--inventory tests/data/sdc-inventory.csv` measures something else: the migration
//! inventory onboarded (`onboard`, the configuration's default rules), every manifest applied
//! to a fresh cluster with the operator running, the time until all are Ready, and the
//! migration phases by wave from the operator's metrics.

use healthsystem_test_support::cluster;
use healthsystem_test_support::wait;

#[path = "fleet/apiserver.rs"]
mod apiserver;
#[path = "fleet/applied.rs"]
mod applied;
#[path = "fleet/helm.rs"]
mod helm;
#[path = "fleet/kro.rs"]
mod kro;
#[path = "fleet/ready.rs"]
mod ready;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::{Client, Resource};
use serde_json::{Value, json};

use healthsystem_operator::api::HealthSystem;
use healthsystem_operator::api::validation::validate;
use healthsystem_operator::config::Config;
use healthsystem_operator::resources::Desired;
use healthsystem_operator::resources::labels::{MANAGED_BY, MANAGER};

const IN_FLIGHT: usize = 32;

struct Args {
    sizes: Vec<usize>,
    idle: Duration,
    changes: usize,
    json: Option<PathBuf>,
    inventory: Option<PathBuf>,
    check: bool,
    peers: bool,
}

fn args() -> Args {
    let mut args = Args {
        sizes: vec![100, 500, 1000],
        idle: Duration::from_secs(300),
        changes: 50,
        json: None,
        inventory: None,
        check: false,
        peers: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sizes" => {
                args.sizes = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .collect()
            }
            "--idle-seconds" => {
                args.idle =
                    Duration::from_secs(it.next().and_then(|s| s.parse().ok()).unwrap_or(300))
            }
            "--changes" => args.changes = it.next().and_then(|s| s.parse().ok()).unwrap_or(50),
            "--json" => args.json = it.next().map(PathBuf::from),
            "--inventory" => args.inventory = it.next().map(PathBuf::from),
            "--check" => args.check = true,
            "--peers" => args.peers = true,
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

async fn client_for(kubeconfig: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).expect("kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("kubeconfig usable");
    Client::try_from(config).expect("client")
}

/// The manifests of system `i`: the three examples in turn (Large with application, Small with
/// application, Standard without), under the name bench-i.
fn manifest(i: usize) -> Value {
    let examples = [
        "kc-kragujevac.yaml",
        "poliklinika-medicus.yaml",
        "lab-biomedica.yaml",
    ];
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(examples[i % 3]);
    let mut manifest: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    manifest["metadata"]["name"] = json!(format!("bench-{i:04}"));
    manifest
}

async fn apply_value(client: &Client, object: &Value, manager: &str) {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
    let resource = kube::core::ApiResource::from_gvk(&gvk);
    let name = object["metadata"]["name"].as_str().unwrap();
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("{} {name}: {e}", gvk.kind));
}

/// The children `render` builds for each of `n` systems (no monitoring kinds: the benchmark
/// clusters do not serve them), labelled as managed by `manager` so that no operator picks
/// them up; the Secret gets a fixed password (the operator generates its own).
fn rendered(n: usize, manager: &str) -> Vec<Vec<Value>> {
    let config = Config::default();
    (0..n)
        .map(|i| {
            let system = validate(&manifest(i)).unwrap();
            Desired::build(&system, &config)
                .manifests()
                .into_iter()
                .filter(|m| {
                    !m["apiVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("monitoring.coreos.com")
                })
                .map(|mut m| {
                    m["metadata"]["labels"][MANAGED_BY] = json!(manager);
                    if m["kind"] == "Secret" {
                        m["stringData"]["password"] = json!("benchmark-password");
                    }
                    m
                })
                .collect()
        })
        .collect()
}

/// One way of getting every object to exist: its time and what it cost.
#[derive(Default, Debug, Clone)]
struct PeerRun {
    name: &'static str,
    seconds: f64,
    apiserver: apiserver::Usage,
    peak_rss_mib: f64,
}

/// The floor: the same children, applied by a tight client, on a cluster of their own; and
/// then the time until the cluster has made their pods ready.
struct Floor {
    /// Until the last apply returned.
    run: PeerRun,
    /// Until the last StatefulSet and Deployment was ready (from the first apply).
    ready_s: f64,
    /// The API server until then.
    ready_apiserver: apiserver::Usage,
}

/// The floor's field manager and managed-by label.
const FLOOR_MANAGER: &str = "benchmark-floor";

async fn floor(n: usize, dir: &Path) -> Floor {
    let cluster = cluster::start_in(dir).expect("cluster");
    let client = client_for(&cluster.kubeconfig).await;
    let systems = rendered(n, FLOOR_MANAGER);
    let before = apiserver::usage(&client, dir).await;
    let started = Instant::now();
    let ready = ready::watch_until_all_ready(
        &client,
        systems.iter().flatten(),
        &format!("{MANAGED_BY}={FLOOR_MANAGER}"),
        started,
        Duration::from_secs(1800),
    );
    // Each system in order (namespace first); 32 requests in flight across systems.
    let namespaces = futures::stream::iter(systems.iter().map(|objects| {
        let client = client.clone();
        async move { apply_value(&client, &objects[0], FLOOR_MANAGER).await }
    }))
    .buffer_unordered(IN_FLIGHT)
    .collect::<Vec<()>>();
    namespaces.await;
    let rest = futures::stream::iter(systems.iter().flat_map(|objects| objects[1..].iter()).map(
        |object| {
            let client = client.clone();
            async move { apply_value(&client, object, FLOOR_MANAGER).await }
        },
    ))
    .buffer_unordered(IN_FLIGHT)
    .collect::<Vec<()>>();
    rest.await;
    let seconds = started.elapsed().as_secs_f64();
    let apiserver = apiserver::usage(&client, dir).await - before;
    let ready_s = ready.await.expect("every workload ready").as_secs_f64();
    let ready_apiserver = apiserver::usage(&client, dir).await - before;
    cluster.stop();
    Floor {
        run: PeerRun {
            name: "floor (server-side apply, 32 in flight)",
            seconds,
            apiserver,
            peak_rss_mib: 0.0,
        },
        ready_s,
        ready_apiserver,
    }
}

/// The Helm peer: one release per system, on a cluster of its own.
async fn helm_peer(n: usize, dir: &Path) -> PeerRun {
    let cluster = cluster::start_in(dir).expect("cluster");
    let client = client_for(&cluster.kubeconfig).await;
    let systems = rendered(n, "benchmark-helm");
    let before = apiserver::usage(&client, dir).await;
    let helm = cluster::testenv_bin().join("helm");
    let run = helm::install_all(&helm, &cluster.kubeconfig, dir, &systems, IN_FLIGHT).await;
    let apiserver = apiserver::usage(&client, dir).await - before;
    cluster.stop();
    PeerRun {
        name: "Helm, one release per system (32 in flight)",
        seconds: run.seconds,
        apiserver,
        peak_rss_mib: run.peak_rss_bytes as f64 / 1048576.0,
    }
}

/// The kro peer: one ResourceGraphDefinition per kind of system, one instance per system,
/// on a cluster of its own.
async fn kro_peer(n: usize, dir: &Path) -> PeerRun {
    let kro_dir = kro::build();
    let cluster = cluster::start_in(dir).expect("cluster");
    let client = client_for(&cluster.kubeconfig).await;
    for entry in std::fs::read_dir(kro_dir.join("crds")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let crd: Value = serde_saphyr::from_str(&text).unwrap();
        apply_value(&client, &crd, "benchmark").await;
    }
    let _controller = kro::Controller::start(&kro_dir, &cluster.kubeconfig, &dir.join("kro.log"));
    let controller_pid = _controller.pid();
    let systems = rendered(n, "kro");
    for (variant, kind) in kro::KINDS.iter().enumerate().take(n) {
        let graph = kro::graph(kind, &format!("bench-{variant:04}"), &systems[variant]);
        wait::until("kro's CRDs served", Duration::from_secs(60), || async {
            let object = graph.clone();
            let api: Api<DynamicObject> = Api::all_with(
                client.clone(),
                &kube::core::ApiResource::from_gvk(&GroupVersionKind::gvk(
                    "kro.run",
                    "v1alpha1",
                    "ResourceGraphDefinition",
                )),
            );
            let name = object["metadata"]["name"].as_str().unwrap().to_string();
            api.patch(
                &name,
                &PatchParams::apply("benchmark").force(),
                &Patch::Apply(&object),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
        })
        .await;
        kro::wait_active(&client, graph["metadata"]["name"].as_str().unwrap(), kind).await;
    }
    let expected = applied::expected(systems.iter().flatten());
    let before = apiserver::usage(&client, dir).await;
    let started = Instant::now();
    let all_exist = applied::watch_until_all_exist(
        &client,
        expected,
        "app.kubernetes.io/managed-by=kro",
        started,
        Duration::from_secs(3600),
    );
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(
                    resident(controller_pid),
                    std::sync::atomic::Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    futures::stream::iter((0..n).map(|i| {
        let client = client.clone();
        async move {
            let instance = kro::instance(i, &format!("bench-{i:04}"));
            apply_value(&client, &instance, "benchmark").await
        }
    }))
    .buffer_unordered(IN_FLIGHT)
    .collect::<Vec<()>>()
    .await;
    let seconds = all_exist.await.expect("every object exists").as_secs_f64();
    let apiserver = apiserver::usage(&client, dir).await - before;
    sampler.abort();
    drop(_controller);
    cluster.stop();
    PeerRun {
        name: "kro, one instance per system (16 at once)",
        seconds,
        apiserver,
        peak_rss_mib: peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1048576.0,
    }
}

/// Resident memory of `pid` in bytes.
fn resident(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// The operator process, killed when dropped.
struct Operator {
    child: Child,
    port: u16,
}

impl Operator {
    fn start(kubeconfig: &Path, log: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_healthsystem-operator"))
            .args(["run", "--http-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("operator");
        Self { child, port }
    }

    /// Waits until the operator has loaded its caches.
    async fn wait_ready(&self) {
        wait::until("operator ready", Duration::from_secs(60), || async {
            match self.metrics().get("healthsystem_operator_ready") {
                Some(v) if *v >= 1.0 => Ok(()),
                _ => Err("not ready"),
            }
        })
        .await;
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// (peak, current) resident memory in bytes.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// CPU seconds the operator has used, user and system.
    fn cpu_seconds(&self) -> f64 {
        apiserver::cpu_seconds(self.child.id())
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        use std::io::{Read, Write};
        let mut out = BTreeMap::new();
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return out;
        };
        let _ = write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        for line in text.lines().filter(|l| l.starts_with("healthsystem_")) {
            if let Some((key, value)) = line.rsplit_once(' ') {
                out.insert(key.to_string(), value.parse().unwrap_or(0.0));
            }
        }
        out
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn requests(metrics: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    metrics
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("healthsystem_operator_api_requests_total{verb=\"")
                .and_then(|rest| rest.strip_suffix("\"}"))
                .map(|verb| (verb.to_string(), *v))
        })
        .collect()
}

fn mutating(requests: &BTreeMap<String, f64>) -> f64 {
    ["create", "patch", "update", "delete"]
        .iter()
        .map(|v| requests.get(*v).copied().unwrap_or(0.0))
        .sum()
}

/// Applies the HealthSystems `manifests` as `manager`, IN_FLIGHT at a time.
async fn apply_systems(systems: &Api<HealthSystem>, manifests: &[Value], manager: &str) {
    futures::stream::iter(manifests.iter().map(|m| {
        let systems = systems.clone();
        async move {
            let name = m["metadata"]["name"].as_str().unwrap().to_string();
            systems
                .patch(&name, &PatchParams::apply(manager), &Patch::Apply(m))
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }))
    .buffer_unordered(IN_FLIGHT)
    .collect::<Vec<()>>()
    .await;
}

/// Waits until `n` HealthSystems are Ready, at most 30 minutes after `started`.
async fn wait_all_ready(client: &Client, n: usize, started: Instant) {
    loop {
        let ready = count_ready(client).await;
        if ready >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "only {ready} of {n} Ready after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn count_ready(client: &Client) -> usize {
    let systems = Api::<HealthSystem>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    systems
        .iter()
        .filter(|s| {
            s.status
                .iter()
                .flat_map(|st| &st.conditions)
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
        .count()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[derive(Default, Debug)]
struct Row {
    n: usize,
    floor_s: f64,
    /// Until the last child existed.
    applied_s: f64,
    ready_s: f64,
    ratio: f64,
    /// Until the floor's workloads were ready, and the API server until then.
    floor_ready_s: f64,
    floor_ready_apiserver: apiserver::Usage,
    /// Children of one system (on average), for requests per system.
    children_per_system: f64,
    requests_per_system: BTreeMap<String, f64>,
    /// The API server during the convergence (until all Ready).
    apiserver: apiserver::Usage,
    /// The operator's CPU seconds during the convergence.
    operator_cpu_s: f64,
    /// The floor, the operator and the peers (with `--peers`), to all objects existing.
    peers: Vec<PeerRun>,
    idle_mutating: f64,
    idle_s: f64,
    change_p50_ms: f64,
    change_p99_ms: f64,
    restart_idle_s: f64,
    restart_writes: f64,
    peak_rss_mib: f64,
    settled_rss_mib: f64,
}

async fn measure(n: usize, args: &Args, base: &Path) -> Row {
    let mut row = Row {
        n,
        ..Row::default()
    };
    // The three examples request about 10 GiB of memory per system on average, and a
    // simulated node holds 1 TiB: room for all, so that no pod waits for capacity.
    cluster::use_nodes(3.max(n.div_ceil(50)) as u32);
    eprintln!("== N = {n}: floor");
    let floor = floor(n, &base.join(format!("floor-{n}"))).await;
    row.floor_s = floor.run.seconds;
    row.floor_ready_s = floor.ready_s;
    row.floor_ready_apiserver = floor.ready_apiserver;
    row.peers.push(floor.run);
    if args.peers {
        eprintln!("== N = {n}: Helm, one release per system");
        row.peers
            .push(helm_peer(n, &base.join(format!("helm-{n}"))).await);
        eprintln!("== N = {n}: kro, one instance per system");
        row.peers
            .push(kro_peer(n, &base.join(format!("kro-{n}"))).await);
    }

    eprintln!("== N = {n}: operator convergence");
    let dir = base.join(format!("operator-{n}"));
    let cluster = cluster::start_in(&dir).expect("cluster");
    let client = client_for(&cluster.kubeconfig).await;
    cluster::install_crd(&client).await;
    let mut operator =
        Operator::start(&cluster.kubeconfig, &base.join(format!("operator-{n}.log")));
    operator.wait_ready().await;
    let systems = Api::<HealthSystem>::all(client.clone());
    let manifests: Vec<Value> = (0..n).map(manifest).collect();
    let children = applied::expected(rendered(n, MANAGER).iter().flatten());
    row.children_per_system =
        children.values().map(|names| names.len()).sum::<usize>() as f64 / n as f64;
    let before = apiserver::usage(&client, &dir).await;
    let cpu_before = operator.cpu_seconds();
    let started = Instant::now();
    let all_applied = applied::watch_until_all_exist(
        &client,
        children,
        &healthsystem_operator::controller::cache::kinds::selector(),
        started,
        Duration::from_secs(1800),
    );
    apply_systems(&systems, &manifests, "benchmark").await;
    wait_all_ready(&client, n, started).await;
    row.ready_s = started.elapsed().as_secs_f64();
    row.apiserver = apiserver::usage(&client, &dir).await - before;
    row.operator_cpu_s = operator.cpu_seconds() - cpu_before;
    row.applied_s = all_applied.await.expect("every child exists").as_secs_f64();
    row.ratio = row.applied_s / row.floor_s;
    let after_converge = requests(&operator.metrics());
    row.requests_per_system = after_converge
        .iter()
        .map(|(k, v)| (k.clone(), v / n as f64))
        .collect();
    row.peak_rss_mib = operator.memory().0 as f64 / 1048576.0;
    row.peers.push(PeerRun {
        name: "this operator",
        seconds: row.applied_s,
        apiserver: row.apiserver,
        peak_rss_mib: row.peak_rss_mib,
    });

    eprintln!("== N = {n}: idle for {:?}", args.idle);
    // Let the last status writes of the convergence land before counting.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before_idle = requests(&operator.metrics());
    tokio::time::sleep(args.idle).await;
    let after_idle = requests(&operator.metrics());
    row.idle_s = args.idle.as_secs_f64();
    row.idle_mutating = mutating(&after_idle) - mutating(&before_idle);
    row.settled_rss_mib = operator.memory().1 as f64 / 1048576.0;

    eprintln!("== N = {n}: {} changes", args.changes);
    let crons = |i: usize| {
        Api::<k8s_openapi::api::batch::v1::CronJob>::namespaced(
            client.clone(),
            &format!("hs-bench-{i:04}"),
        )
    };
    let mut latencies = Vec::new();
    for c in 0..args.changes {
        let i = (c * 7919) % n;
        let schedule = format!("{} {} * * *", c % 60, 1 + c % 5);
        let patch = json!({ "spec": { "backup": { "schedule": schedule } } });
        let started = Instant::now();
        systems
            .patch(
                &format!("bench-{i:04}"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .unwrap();
        let api = crons(i);
        loop {
            let cron = api.get("backup").await.unwrap();
            if cron.spec.schedule == schedule {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "change {c} not applied"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    row.change_p50_ms = percentile(&latencies, 0.5).as_secs_f64() * 1000.0;
    row.change_p99_ms = percentile(&latencies, 0.99).as_secs_f64() * 1000.0;

    eprintln!("== N = {n}: restart");
    operator.stop();
    let restarted = Instant::now();
    let operator = Operator::start(
        &cluster.kubeconfig,
        &base.join(format!("operator-{n}-restart.log")),
    );
    let mut stable_since: Option<(f64, Instant)> = None;
    loop {
        let metrics = operator.metrics();
        let reconciles = metrics
            .get("healthsystem_operator_reconciliations_total")
            .copied()
            .unwrap_or(0.0);
        let in_flight = metrics
            .get("healthsystem_operator_reconciles_in_flight")
            .copied()
            .unwrap_or(1.0);
        let idle = reconciles >= n as f64 && in_flight == 0.0;
        match stable_since {
            Some((count, since)) if idle && count == reconciles => {
                if since.elapsed() >= Duration::from_secs(2) {
                    row.restart_idle_s = (since - restarted).as_secs_f64();
                    break;
                }
            }
            _ if idle => stable_since = Some((reconciles, Instant::now())),
            _ => stable_since = None,
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(600),
            "restart did not settle"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    row.restart_writes = mutating(&requests(&operator.metrics()));
    drop(operator);
    cluster.stop();
    row
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "|     N | floor s | all applied s | applied/floor | floor Ready s | all Ready s | Ready/floor Ready | children/system | req/system (verb) | API server CPU s/system (floor to Ready) | operator CPU s/system | idle mutating | change p50 ms | change p99 ms | restart->idle s | restart writes | peak MiB | settled MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let per: Vec<String> = r
            .requests_per_system
            .iter()
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect();
        let total: f64 = r.requests_per_system.values().sum();
        out.push_str(&format!(
            "| {:5} | {:7.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} | {:.1} | {total:.1} ({}) | {:.3} ({:.3}) | {:.3} | {} in {:.0}s | {:.0} | {:.0} | {:.1} | {} | {:.0} | {:.0} |\n",
            r.n, r.floor_s, r.applied_s, r.ratio, r.floor_ready_s, r.ready_s, r.ready_s / r.floor_ready_s,
            r.children_per_system, per.join(", "), r.apiserver.cpu_seconds / r.n as f64,
            r.floor_ready_apiserver.cpu_seconds / r.n as f64, r.operator_cpu_s / r.n as f64, r.idle_mutating, r.idle_s, r.change_p50_ms,
            r.change_p99_ms, r.restart_idle_s, r.restart_writes, r.peak_rss_mib, r.settled_rss_mib
        ));
    }
    out
}

/// Every way of getting the objects to exist, side by side, as ratios to the floor.
fn peers_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "|     N | how | all objects exist s | x floor | API server requests/system | API server CPU s/system | peak MiB of the client |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        for p in &r.peers {
            out.push_str(&format!(
                "| {:5} | {} | {:.1} | {:.2} | {:.1} | {:.3} | {:.0} |\n",
                r.n,
                p.name,
                p.seconds,
                p.seconds / r.floor_s,
                p.apiserver.requests / r.n as f64,
                p.apiserver.cpu_seconds / r.n as f64,
                p.peak_rss_mib
            ));
        }
    }
    out
}

/// Systems by migration wave and phase, from `healthsystem_migration_phase` series at 1.
fn migration_phases(metrics: &BTreeMap<String, f64>) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for (key, value) in metrics {
        let Some(labels) = key.strip_prefix("healthsystem_migration_phase{") else {
            continue;
        };
        if *value < 1.0 {
            continue;
        }
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches(['}', '"']).to_string())
                .unwrap_or_default()
        };
        *out.entry((label("wave"), label("phase"))).or_default() += 1;
    }
    out
}

/// The inventory onboarded and applied: time to all Ready, and the migration phases.
async fn onboarded(path: &Path, base: &Path) {
    use healthsystem_operator::onboard::{Selection, onboard};
    let bytes = std::fs::read(path).expect("inventory");
    let started = Instant::now();
    let report = onboard(
        &bytes,
        &path.display().to_string(),
        &Config::default(),
        &Selection::default(),
    )
    .expect("inventory readable");
    let onboard_s = started.elapsed().as_secs_f64();
    let manifests: Vec<Value> = report.manifests().map(|(_, m)| m.clone()).collect();
    let n = manifests.len();
    let with_migration = manifests
        .iter()
        .filter(|m| m["spec"].get("migration").is_some())
        .count();
    eprintln!(
        "== inventory: {} rows, {n} manifests ({with_migration} with spec.migration), onboarded in {onboard_s:.2}s",
        report.rows.len()
    );
    let cluster = cluster::start_in(&base.join("inventory")).expect("cluster");
    let client = client_for(&cluster.kubeconfig).await;
    cluster::install_crd(&client).await;
    let operator = Operator::start(&cluster.kubeconfig, &base.join("inventory-operator.log"));
    operator.wait_ready().await;
    let systems = Api::<HealthSystem>::all(client.clone());
    let started = Instant::now();
    apply_systems(&systems, &manifests, "onboarding").await;
    let applied_s = started.elapsed().as_secs_f64();
    wait_all_ready(&client, n, started).await;
    let ready_s = started.elapsed().as_secs_f64();
    let at_ready = operator.metrics();
    let at_ready_phases = migration_phases(&at_ready);
    // Let the migrations run their course (on kwok's simulated node Jobs succeed without
    // doing anything, so verifications find no report).
    let settled = wait::until("migrations settled", Duration::from_secs(600), || async {
        let metrics = operator.metrics();
        let phases = migration_phases(&metrics);
        let moving: usize = phases
            .iter()
            .filter(|((_, phase), _)| {
                matches!(phase.as_str(), "Pending" | "Importing" | "Verifying")
            })
            .map(|(_, count)| count)
            .sum();
        if moving == 0 {
            Ok((phases, started.elapsed()))
        } else {
            Err(moving)
        }
    })
    .await;
    let requests = requests(&operator.metrics());
    let (peak, current) = operator.memory();
    println!(
        "| inventory rows | manifests | with migration | onboard s | applied s | all Ready s | migrations settled s | requests/system | peak MiB | RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let per: Vec<String> = requests
        .iter()
        .map(|(k, v)| format!("{k} {:.1}", v / n as f64))
        .collect();
    println!(
        "| {} | {n} | {with_migration} | {onboard_s:.2} | {applied_s:.1} | {ready_s:.1} | {:.1} | {} | {:.0} | {:.0} |",
        report.rows.len(),
        settled.1.as_secs_f64(),
        per.join(", "),
        peak as f64 / 1048576.0,
        current as f64 / 1048576.0
    );
    println!("\n| wave | phase | systems at all Ready | systems settled |\n|---|---|---|---|");
    let keys: std::collections::BTreeSet<_> = at_ready_phases
        .keys()
        .chain(settled.0.keys())
        .cloned()
        .collect();
    for key in keys {
        println!(
            "| {} | {} | {} | {} |",
            key.0,
            key.1,
            at_ready_phases.get(&key).copied().unwrap_or(0),
            settled.0.get(&key).copied().unwrap_or(0)
        );
    }
    drop(operator);
    cluster.stop();
}

fn main() {
    let args = args();
    let base =
        healthsystem_test_support::target_tmpdir().join(format!("bench-{}", std::process::id()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let Some(path) = &args.inventory {
        runtime.block_on(onboarded(path, &base));
        return;
    }
    let mut rows = Vec::new();
    for &n in &args.sizes {
        let row = runtime.block_on(measure(n, &args, &base));
        eprintln!("{}", table(std::slice::from_ref(&row)));
        eprintln!("{}", peers_table(std::slice::from_ref(&row)));
        rows.push(row);
    }
    println!("{}", table(&rows));
    println!("{}", peers_table(&rows));
    if let Some(path) = &args.json {
        let json: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "n": r.n, "floor_seconds": r.floor_s, "applied_seconds": r.applied_s,
                    "ready_seconds": r.ready_s, "applied_to_floor": r.ratio,
                    "floor_ready_seconds": r.floor_ready_s,
                    "floor_ready_apiserver_cpu_seconds": r.floor_ready_apiserver.cpu_seconds,
                    "floor_ready_apiserver_requests": r.floor_ready_apiserver.requests,
                    "children_per_system": r.children_per_system,
                    "apiserver_cpu_seconds": r.apiserver.cpu_seconds,
                    "apiserver_requests": r.apiserver.requests,
                    "operator_cpu_seconds": r.operator_cpu_s,
                    "peers": r.peers.iter().map(|p| json!({
                        "name": p.name, "seconds": p.seconds,
                        "apiserver_requests": p.apiserver.requests,
                        "apiserver_cpu_seconds": p.apiserver.cpu_seconds,
                        "peak_rss_mib": p.peak_rss_mib,
                    })).collect::<Vec<_>>(),
                    "requests_per_system": r.requests_per_system, "idle_mutating_requests": r.idle_mutating,
                    "idle_seconds": r.idle_s, "change_p50_ms": r.change_p50_ms, "change_p99_ms": r.change_p99_ms,
                    "restart_to_idle_seconds": r.restart_idle_s, "restart_writes": r.restart_writes,
                    "peak_rss_mib": r.peak_rss_mib, "settled_rss_mib": r.settled_rss_mib,
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    }
    let _ = HealthSystem::kind(&());
    if args.check {
        let failed: Vec<String> = rows.iter().flat_map(regressions).collect();
        for failure in &failed {
            eprintln!("regression: {failure}");
        }
        if !failed.is_empty() {
            std::process::exit(1);
        }
        eprintln!("check: no regression (idle writes at most 3, a restart writes nothing)");
    }
}

/// What `--check` refuses in a row: the targets that do not depend on the machine's speed.
fn regressions(row: &Row) -> Vec<String> {
    let mut failed = Vec::new();
    if row.idle_mutating > 3.0 {
        failed.push(format!(
            "N = {}: {} mutating requests while idle for {} s (at most 3)",
            row.n, row.idle_mutating, row.idle_s
        ));
    }
    if row.restart_writes > 0.0 {
        failed.push(format!(
            "N = {}: the restarted operator wrote {} times (none allowed)",
            row.n, row.restart_writes
        ));
    }
    failed
}
