//! The operator under test: the real `healthsystem-operator run` binary, one per test binary,
//! against the cluster of `cluster.rs`, run under `testenv/owned.sh` so it stops when the
//! test binary exits. Its log is kept to a file so tests can see what it did.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::cluster;

struct Operator {
    child: Child,
    log: PathBuf,
    port: u16,
}

static OPERATOR: OnceLock<Mutex<Operator>> = OnceLock::new();

/// The operator configuration file of this binary's operator, when not the defaults.
static CONFIG: OnceLock<PathBuf> = OnceLock::new();

/// Runs this binary's operator with `--config PATH`. Call it before `ensure_running`.
pub fn use_config(path: PathBuf) {
    let _ = CONFIG.set(path);
}

/// Who this binary's operator runs as, when not the cluster's administrator.
struct RunAs {
    kubeconfig: PathBuf,
    namespace: String,
    service_account: String,
}

static RUN_AS: OnceLock<RunAs> = OnceLock::new();

/// Runs this binary's operator as the ServiceAccount `namespace/service_account` whose token
/// the kubeconfig at `kubeconfig` holds (for example the chart's, `chart::install_access`), as
/// the chart's pod would. Call it before `ensure_running`.
pub fn run_as(kubeconfig: PathBuf, namespace: &str, service_account: &str) {
    let _ = RUN_AS.set(RunAs {
        kubeconfig,
        namespace: namespace.to_string(),
        service_account: service_account.to_string(),
    });
}

fn spawn(log: &Path, port: u16) -> Child {
    let root = crate::repo_root();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("operator log");
    Command::new("bash")
        .arg(root.join("testenv/owned.sh"))
        .arg(std::process::id().to_string())
        .arg(crate::operator_binary())
        .args(["run", "--concurrency", "8", "--http-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .args(
            CONFIG
                .get()
                .map(|path| format!("--config={}", path.display())),
        )
        .env(
            "KUBECONFIG",
            RUN_AS.get().map_or_else(
                || cluster::kubeconfig().to_path_buf(),
                |r| r.kubeconfig.clone(),
            ),
        )
        .envs(RUN_AS.get().iter().flat_map(|r| {
            [
                ("POD_NAMESPACE", r.namespace.clone()),
                ("HS_SERVICE_ACCOUNT", r.service_account.clone()),
            ]
        }))
        .env("RUST_LOG", "info,healthsystem_operator=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file)
        .spawn()
        .expect("the operator starts")
}

/// Starts the operator once (after the CRD is installed) and returns its log file.
pub async fn ensure_running(client: &kube::Client) -> PathBuf {
    cluster::install_crd(client).await;
    let operator = OPERATOR.get_or_init(|| {
        let log = crate::target_tmpdir().join(format!("operator-{}.log", std::process::id()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Mutex::new(Operator {
            child: spawn(&log, port),
            log,
            port,
        })
    });
    operator.lock().unwrap().log.clone()
}

/// Stops the operator (SIGTERM, as Kubernetes would) and starts a new one. Returns the log
/// length before the restart, so callers can read only what the new process logged.
pub fn restart() -> u64 {
    restart_after("-TERM")
}

/// Kills the operator outright (SIGKILL: nothing it was doing finishes) and starts a new one.
pub fn kill_and_restart() -> u64 {
    restart_after("-KILL")
}

fn restart_after(signal: &str) -> u64 {
    let operator = OPERATOR.get().expect("operator started");
    let mut operator = operator.lock().unwrap();
    let wrapper = operator.child.id().to_string();
    if signal == "-KILL" {
        // The operator is a child of testenv/owned.sh: it is the one killed outright; the
        // wrapper then sees it gone and exits.
        let _ = Command::new("pkill")
            .args([signal, "-P", &wrapper])
            .status();
    } else {
        // owned.sh passes SIGTERM on to the operator and waits for it.
        let _ = Command::new("kill").args([signal, &wrapper]).status();
    }
    for _ in 0..100 {
        if operator.child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = operator.child.kill();
    let _ = operator.child.wait();
    let offset = std::fs::metadata(&operator.log)
        .map(|m| m.len())
        .unwrap_or(0);
    operator.child = spawn(&operator.log, operator.port);
    offset
}

/// Whether the operator started by this binary still runs (it never exited by itself since
/// its last start: no crash, no exit on lost contact).
pub fn still_running() -> bool {
    let operator = OPERATOR.get().expect("operator started");
    let mut operator = operator.lock().unwrap();
    matches!(operator.child.try_wait(), Ok(None))
}

/// What the operator logged from byte `offset` on.
pub fn log_since(offset: u64) -> String {
    let operator = OPERATOR.get().expect("operator started");
    let path = operator.lock().unwrap().log.clone();
    let text = std::fs::read(&path).unwrap_or_default();
    String::from_utf8_lossy(&text[(offset as usize).min(text.len())..]).into_owned()
}

/// GETs `path` from the operator's HTTP endpoint: (status code, body).
pub fn http_get(path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let port = OPERATOR
        .get()
        .expect("operator started")
        .lock()
        .unwrap()
        .port;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}
