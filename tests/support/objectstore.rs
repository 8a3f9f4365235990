//! The backup tests' object store: versitygw (pinned in testenv, built from the Go module
//! proxy) over a directory of this run, listening on the real node's bridge address so pods
//! reach it and nothing outside the machine does, run under `testenv/owned.sh` so it stops
//! with the test binary. Provisioned as a platform team would: a bucket, a user per system,
//! and a bucket policy giving each user its own prefix only.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use healthsystem_operator::backup::store::Settings;
use serde_json::{Value, json};

use crate::cluster;

/// The real node's address on its bridge.
pub const NODE_IP: &str = "10.244.0.1";
/// The bucket of every system's backups.
pub const BUCKET: &str = "healthsystem-backups";
const ROOT_ACCESS: &str = "platform-root";

/// A running store.
pub struct Store {
    /// Its URL.
    pub endpoint: String,
    /// Its port on the node's address.
    pub port: u16,
    root_secret: String,
    /// Users with their prefix (None: read access to the whole bucket) and what they may do
    /// there, for the policy.
    users: Mutex<Vec<(String, Option<String>, Rights)>>,
    /// Where the store keeps objects: `data/BUCKET/KEY` is the object KEY.
    pub data: std::path::PathBuf,
    /// Where its data, IAM and log are.
    dir: std::path::PathBuf,
    /// owned.sh running versitygw (it stops the store when this test binary exits); none
    /// while stopped ([`Store::stop`]).
    process: Mutex<Option<std::process::Child>>,
}

/// What a user with a prefix may do besides reading and listing it.
#[derive(Clone, Copy)]
struct Rights {
    /// Write and delete there.
    write: bool,
    /// HEAD the bucket (see [`Store::add_archiving_user`]).
    head: bool,
}

fn random_secret() -> String {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs versitygw over `dir` on the node's address and `port` until it listens.
fn serve(dir: &Path, port: u16, root_secret: &str) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("versitygw.log"))
        .unwrap();
    let process = Command::new("bash")
        .arg(crate::repo_root().join("testenv/owned.sh"))
        .arg(std::process::id().to_string())
        .arg(cluster::testenv_bin().join("versitygw"))
        .arg("--port")
        .arg(format!("{NODE_IP}:{port}"))
        .args(["--access", ROOT_ACCESS, "--secret", root_secret, "--quiet"])
        .arg("--iam-dir")
        .arg(dir.join("iam"))
        .arg("posix")
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("versitygw starts");
    let started = Instant::now();
    while std::net::TcpStream::connect((NODE_IP, port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "versitygw did not listen on {NODE_IP}:{port}: see {}",
            dir.join("versitygw.log").display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    process
}

/// The test binary's store, started on first use once its cluster's real node is up, in
/// `target/tmp/objectstore-PID`.
pub fn shared() -> &'static Store {
    static STORE: std::sync::OnceLock<Store> = std::sync::OnceLock::new();
    STORE.get_or_init(|| {
        cluster::kubeconfig();
        Store::start(&crate::target_tmpdir().join(format!("objectstore-{}", std::process::id())))
    })
}

impl Store {
    /// Stops the store (clients then find nothing listening), keeping its data and users.
    pub fn stop(&self) {
        if let Some(mut process) = self.process.lock().unwrap().take() {
            // owned.sh stops versitygw on SIGTERM and waits for it.
            let _ = Command::new("kill")
                .args(["-TERM", &process.id().to_string()])
                .status();
            let _ = process.wait();
        }
    }

    /// Starts the stopped store again, on the same address, with the same data and users.
    pub fn start_again(&self) {
        let mut process = self.process.lock().unwrap();
        if process.is_none() {
            *process = Some(serve(&self.dir, self.port, &self.root_secret));
        }
    }

    /// Starts the store in `dir` (after the real node is up: the address is its bridge's) and
    /// makes the bucket.
    pub fn start(dir: &Path) -> Store {
        let data = dir.join("data");
        let iam = dir.join("iam");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&iam).unwrap();
        let port = std::net::TcpListener::bind((NODE_IP, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port on the node's address")
            .port();
        let root_secret = random_secret();
        let process = serve(dir, port, &root_secret);
        let store = Store {
            endpoint: format!("http://{NODE_IP}:{port}"),
            port,
            root_secret,
            users: Mutex::new(Vec::new()),
            data: data.clone(),
            dir: dir.to_path_buf(),
            process: Mutex::new(Some(process)),
        };
        store.setup(None);
        store
    }

    /// Runs s3setup: the bucket, and the policy when given.
    fn setup(&self, policy: Option<&Path>) {
        let mut command = Command::new(cluster::testenv_bin().join("s3setup"));
        command
            .args(["-endpoint", &self.endpoint, "-access", ROOT_ACCESS])
            .args(["-secret", &self.root_secret, "-bucket", BUCKET]);
        if let Some(policy) = policy {
            command.arg("-policy").arg(policy);
        }
        let output = command.output().expect("s3setup runs");
        assert!(
            output.status.success(),
            "s3setup: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The store's settings for `access` with `secret`, as the agent uses them.
    pub fn settings(&self, access: &str, secret: &str) -> Settings {
        Settings {
            endpoint: self.endpoint.clone(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            ca_bundle: None,
            access_key_id: access.into(),
            secret_access_key: secret.into(),
        }
    }

    /// A user that reaches `prefix` only (list, read, write, delete there): its access key
    /// and secret. Replaces the bucket policy with the statements of every user.
    pub fn add_user(&self, prefix: &str) -> (String, String) {
        let rights = Rights {
            write: true,
            head: false,
        };
        self.add(&format!("backup-{prefix}"), Some(prefix), rights)
    }

    /// [`Store::add_user`] for a system whose WAL is archived: Barman Cloud checks the bucket
    /// with HeadBucket before each upload, which S3 authorizes as `s3:ListBucket` without a
    /// prefix. So its listing right holds when the prefix is its own or absent: it may list
    /// the names of the whole bucket's objects (never read, write or delete outside its own).
    pub fn add_archiving_user(&self, prefix: &str) -> (String, String) {
        let rights = Rights {
            write: true,
            head: true,
        };
        self.add(&format!("backup-{prefix}"), Some(prefix), rights)
    }

    /// A user `name` that reads `prefix` only (and may HEAD the bucket, as Barman Cloud
    /// does): what a system recovered from another's archive is given to read it with.
    pub fn add_archive_reader(&self, name: &str, prefix: &str) -> (String, String) {
        let rights = Rights {
            write: false,
            head: true,
        };
        self.add(name, Some(prefix), rights)
    }

    /// A user that reads every prefix (the restore namespace's credentials).
    pub fn add_reader(&self, name: &str) -> (String, String) {
        self.add(
            name,
            None,
            Rights {
                write: false,
                head: false,
            },
        )
    }

    fn add(&self, access: &str, prefix: Option<&str>, rights: Rights) -> (String, String) {
        // With HEAD of the bucket, a listing without a prefix passes too (see above).
        let operator = |head: bool| {
            if head {
                "StringLikeIfExists"
            } else {
                "StringLike"
            }
        };
        let secret = random_secret();
        let output = Command::new(cluster::testenv_bin().join("versitygw"))
            .arg("admin")
            .args(["--access", ROOT_ACCESS, "--secret", &self.root_secret])
            .args(["--endpoint-url", &self.endpoint])
            .args([
                "create-user",
                "--access",
                access,
                "--secret",
                &secret,
                "--role",
                "user",
            ])
            .output()
            .expect("versitygw admin runs");
        assert!(
            output.status.success(),
            "create-user {access}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut users = self.users.lock().unwrap();
        users.push((access.to_string(), prefix.map(String::from), rights));
        let statements: Vec<Value> = users
            .iter()
            .flat_map(|(user, prefix, rights)| match prefix {
                Some(prefix) => [
                    json!({
                        "Effect": "Allow",
                        "Principal": { "AWS": [user] },
                        "Action": if rights.write {
                            json!(["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                   "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"])
                        } else {
                            json!(["s3:GetObject"])
                        },
                        "Resource": format!("arn:aws:s3:::{BUCKET}/{prefix}/*"),
                    }),
                    json!({
                        "Effect": "Allow",
                        "Principal": { "AWS": [user] },
                        "Action": ["s3:ListBucket"],
                        "Resource": format!("arn:aws:s3:::{BUCKET}"),
                        "Condition": { (operator(rights.head)): { "s3:prefix": [format!("{prefix}/*")] } },
                    }),
                ],
                None => [
                    json!({
                        "Effect": "Allow",
                        "Principal": { "AWS": [user] },
                        "Action": ["s3:GetObject"],
                        "Resource": format!("arn:aws:s3:::{BUCKET}/*"),
                    }),
                    json!({
                        "Effect": "Allow",
                        "Principal": { "AWS": [user] },
                        "Action": ["s3:ListBucket"],
                        "Resource": format!("arn:aws:s3:::{BUCKET}"),
                    }),
                ],
            })
            .collect();
        let path = std::env::temp_dir().join(format!("hs-policy-{}.json", std::process::id()));
        let policy = json!({ "Version": "2012-10-17", "Statement": statements });
        std::fs::write(&path, policy.to_string()).unwrap();
        self.setup(Some(&path));
        (access.to_string(), secret)
    }

    /// The `backup.objectStore` section of the operator's configuration for this store.
    pub fn config(&self) -> Value {
        json!({
            "endpoint": self.endpoint,
            "bucket": BUCKET,
            "network": { "cidrs": [format!("{NODE_IP}/32")], "ports": [{ "port": self.port }] },
        })
    }
}
