//! The cluster every integration test talks to: the local control plane (one per test
//! binary, started on first use by `testenv/cluster.sh`) or an existing cluster named by
//! `HS_TEST_KUBECONFIG`. It never skips: when no cluster can be had, the tests fail loudly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use healthsystem_operator::api::HealthSystem;

/// Names a kubeconfig of an existing cluster to test against instead of the local one.
pub const KUBECONFIG_ENV: &str = "HS_TEST_KUBECONFIG";

/// The first start may have to build the control plane (several minutes on a fresh machine).
const START_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The outcome of the one start attempt, shared by every test of the binary: a failed start
/// fails every test with the same message instead of starting a cluster per test.
static KUBECONFIG: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Whether the local cluster of this binary is started with the real node.
static REAL_NODE: AtomicBool = AtomicBool::new(false);

/// Makes the local cluster of this test binary one with a real node (`cluster.sh
/// --real-node`): pods really run. Call it before anything else touches the cluster.
pub fn use_real_node() {
    REAL_NODE.store(true, Ordering::SeqCst);
}

/// Whether the local cluster of this binary writes an audit log of writes.
static AUDIT_LOG: AtomicBool = AtomicBool::new(false);

/// Makes the API server of this binary's local cluster log every write (`cluster.sh
/// --audit`). Call it before anything else touches the cluster.
pub fn use_audit_log() {
    AUDIT_LOG.store(true, Ordering::SeqCst);
}

/// Simulated nodes of the clusters this process starts (0: cluster.sh's default, 3).
static NODES: AtomicU32 = AtomicU32::new(0);

/// Gives the clusters this process starts `n` simulated nodes (each holds 1 TiB of memory
/// requests: a large fleet needs more than three). Call it before starting one.
pub fn use_nodes(n: u32) {
    NODES.store(n, Ordering::SeqCst);
}

/// The API server's audit log of this binary's local cluster: one JSON event per write.
pub fn audit_log() -> PathBuf {
    kubeconfig().parent().unwrap().join("logs/audit.log")
}

/// The images the real node holds, by variable name of `testenv/images.sh`'s images.env
/// (`HS_IMAGE_POSTGRES15`, `HS_IMAGE_POSTGRES17`, `HS_IMAGE_EXPORTER`, `HS_IMAGE_APP`, `HS_IMAGE_PAUSE`).
pub fn node_images() -> std::collections::BTreeMap<String, String> {
    let script = crate::repo_root().join("testenv/images.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("testenv/images.sh runs");
    assert!(output.status.success(), "testenv/images.sh failed");
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let env = std::fs::read_to_string(dir.join("images.env")).expect("images.env");
    env.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Path of the admin kubeconfig of the cluster under test, starting it if needed.
pub fn kubeconfig() -> &'static Path {
    let started = KUBECONFIG.get_or_init(|| match std::env::var_os(KUBECONFIG_ENV) {
        Some(path) => Ok(PathBuf::from(path)),
        None => start_local(),
    });
    match started {
        Ok(path) => path,
        Err(why) => panic!("{why}"),
    }
}

/// A client for the cluster under test. Each test gets its own: a client is bound to the
/// runtime of the test that made it.
pub async fn client() -> kube::Client {
    let path = kubeconfig();
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {}: {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client from kubeconfig")
}

/// A client that acts as `user`, a member of `groups` (impersonation): requests are answered
/// as that person's would be, by RBAC and admission alike.
pub async fn client_as(user: &str, groups: &[&str]) -> kube::Client {
    let path = kubeconfig();
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {}: {e}", path.display()));
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig is usable");
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    kube::Client::try_from(config).expect("client from kubeconfig")
}

/// A name no other test of this run uses, so tests can run in parallel: `prefix-N-PID`.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{n}-{}", std::process::id() % 100_000)
}

/// A local control plane started by this process.
pub struct LocalCluster {
    child: std::process::Child,
    /// Its admin kubeconfig.
    pub kubeconfig: PathBuf,
}

impl LocalCluster {
    /// Stops every component (SIGTERM to the script, which stops them in order) and waits.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Starts `testenv/cluster.sh` in `dir`, owned by this process: when this process exits
/// (passing, panicking or killed) the script notices within a second and stops every
/// component.
pub fn start_in(dir: &Path) -> Result<LocalCluster, String> {
    let root = crate::repo_root();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log_path = dir.join("cluster.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut child = Command::new("bash")
        .arg(root.join("testenv/cluster.sh"))
        .arg("--dir")
        .arg(dir)
        .arg("--owner")
        .arg(std::process::id().to_string())
        .args(REAL_NODE.load(Ordering::SeqCst).then_some("--real-node"))
        .args(AUDIT_LOG.load(Ordering::SeqCst).then_some("--audit"))
        .args(match NODES.load(Ordering::SeqCst) {
            0 => vec![],
            n => vec!["--nodes".to_string(), n.to_string()],
        })
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start testenv/cluster.sh: {e}"))?;
    eprintln!("starting the local control plane in {}", dir.display());

    let ready = dir.join("ready");
    let started = Instant::now();
    loop {
        if ready.exists() {
            eprintln!(
                "local control plane ready in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(LocalCluster {
                child,
                kubeconfig: dir.join("kubeconfig"),
            });
        }
        let failure = match child.try_wait() {
            Ok(Some(status)) => Some(format!("cluster.sh exited with {status}")),
            Ok(None) if started.elapsed() > START_TIMEOUT => Some("timed out".to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("cannot watch cluster.sh: {e}")),
        };
        if let Some(why) = failure {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "the local control plane did not start ({why}); set {KUBECONFIG_ENV} to use an \
                 existing cluster. Last lines of {}:\n{}",
                log_path.display(),
                tail.join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The cluster of this test binary: started once and left running; it stops by itself when
/// the binary exits.
fn start_local() -> Result<PathBuf, String> {
    let dir = crate::target_tmpdir().join(format!("cluster-{}", std::process::id()));
    let cluster = start_in(&dir)?;
    let kubeconfig = cluster.kubeconfig.clone();
    // Deliberately never stopped here: it outlives every test of the binary.
    std::mem::forget(cluster);
    Ok(kubeconfig)
}

/// Installs the committed CRD (idempotent) and waits until it is served.
pub async fn install_crd(client: &kube::Client) {
    let text = std::fs::read_to_string(crate::repo_root().join("crds/healthsystem.yaml")).unwrap();
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(
        &name,
        &PatchParams::apply("tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("the committed CRD is accepted");
    crate::wait::until(
        "the HealthSystem CRD to be served",
        Duration::from_secs(60),
        || async {
            let crd = crds.get(&name).await.map_err(|e| e.to_string())?;
            let established = crd.status.and_then(|s| s.conditions).is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if !established {
                return Err("not established".to_string());
            }
            // Discovery of a new CRD can lag behind Established.
            Api::<HealthSystem>::all(client.clone())
                .list(&Default::default())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
}

/// The directory of the pinned control-plane binaries (kubectl, helm, ...), built if missing.
pub fn testenv_bin() -> PathBuf {
    let script = crate::repo_root().join("testenv/build.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Installs the Prometheus Operator's PodMonitor, PrometheusRule and ServiceMonitor CRDs.
pub async fn install_monitoring_crds(client: &kube::Client) {
    let dir = testenv_bin().join("../crds");
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for kind in ["podmonitors", "prometheusrules", "servicemonitors"] {
        let text = std::fs::read_to_string(dir.join(format!("monitoring.coreos.com_{kind}.yaml")))
            .unwrap();
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).unwrap();
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        crate::wait::until(
            &format!("{name} established"),
            Duration::from_secs(60),
            || async {
                let crd = crds.get(&name).await.map_err(|e| e.to_string())?;
                let ok = crd.status.and_then(|s| s.conditions).is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
                if ok {
                    Ok(())
                } else {
                    Err("not established".to_string())
                }
            },
        )
        .await;
    }
}

/// Runs the image script `script` (a testenv script taking the bin directory, printing the
/// directory of `NAME.tar` and `NAME.env`), imports `NAME.tar` into the node and returns the
/// variables of `NAME.env`.
pub fn import_built_images(script: &str, name: &str) -> std::collections::BTreeMap<String, String> {
    let output = Command::new("bash")
        .arg(crate::repo_root().join(script))
        .arg(testenv_bin())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{script} runs: {e}"));
    assert!(output.status.success(), "{script} failed");
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    import_node_image(&dir.join(format!("{name}.tar")));
    std::fs::read_to_string(dir.join(format!("{name}.env")))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Imports an OCI archive into the real node's containerd (the `k8s.io` namespace the kubelet
/// uses), as `ctr images import` does for the node's own images at its start.
pub fn import_node_image(archive: &Path) {
    let dir = kubeconfig().parent().expect("the cluster directory");
    let socket = dir.join("node/containerd/containerd.sock");
    let output = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["-n", "k8s.io", "images", "import", "--all-platforms"])
        .arg(archive)
        .output()
        .expect("ctr runs");
    assert!(
        output.status.success(),
        "ctr images import {}: {}{}",
        archive.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
