//! A restore: the latest backup of a system (or a given one) restored into a throwaway
//! PostgreSQL inside the pod (a drill), or into an empty database (a new system's bootstrap,
//! in one transaction). The dump is streamed once from the store: hashed against the
//! manifest's SHA-256, decrypted with the platform's private key, fed to `pg_restore
//! --exit-on-error`; then every table's row count is compared with the manifest. The outcome
//! is evidence (never an error): what the operator puts in status.

use std::io::Read;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use k8s_openapi::jiff::Timestamp;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use super::database::Database;
use super::manifest::{MANIFEST, Manifest};
use super::store::{self, Settings};

/// What a drill needs.
pub struct Drill {
    /// The store and read credentials.
    pub store: Settings,
    /// The system's prefix.
    pub prefix: String,
    /// The private key the dumps are encrypted to.
    pub identity: age::x25519::Identity,
    /// A backup id; the latest when absent.
    pub backup: Option<String>,
    /// Where the backup is restored.
    pub target: Target,
    /// The drill is stopped after this long.
    pub deadline: Duration,
}

/// Where a backup is restored.
pub enum Target {
    /// A throwaway PostgreSQL started in this empty directory (a drill).
    Scratch(PathBuf),
    /// An empty database, reached with libpq's PG* environment (a bootstrap), as the role
    /// that will own what is restored.
    Database(Box<super::database::Database>),
}

/// Passed or Failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The backup restored and every table has its manifest's rows.
    Passed,
    /// Something did not; `reason` says what.
    Failed,
}

/// What a drill proved, written as its pod's termination message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The backup restored (its id), empty when none could be chosen.
    pub backup: String,
    /// When the drill started.
    pub started_at: Timestamp,
    /// How long it took.
    pub duration_seconds: u64,
    /// Tables compared.
    pub tables: usize,
    /// Rows found in the restored database.
    pub rows: i64,
    /// Passed or Failed.
    pub result: Outcome,
    /// Why it failed: NoBackup, StoreUnreachable, ManifestUnreadable, ChecksumMismatch,
    /// DecryptionFailed, RestoreFailed, RowCountMismatch, ScratchDatabaseFailed, Deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened, in a sentence.
    pub message: String,
}

struct Failure {
    reason: &'static str,
    message: String,
}

fn fail(reason: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        reason,
        message: message.into(),
    }
}

/// Runs the drill within its deadline; whatever happens, evidence comes back.
pub async fn run(drill: &Drill) -> Evidence {
    let started_at = Timestamp::now();
    let clock = Instant::now();
    let mut backup = String::new();
    let result = match tokio::time::timeout(drill.deadline, restore(drill, &mut backup)).await {
        Ok(result) => result,
        Err(_) => Err(fail(
            "Deadline",
            format!("stopped after {:?}", drill.deadline),
        )),
    };
    if let Target::Scratch(scratch) = &drill.target {
        stop_scratch(scratch);
    }
    let duration_seconds = clock.elapsed().as_secs();
    match result {
        Ok((tables, rows)) => Evidence {
            message: format!(
                "backup {backup} restored in {duration_seconds}s: {tables} tables, {rows} rows, \
                 as the manifest says"
            ),
            backup,
            started_at,
            duration_seconds,
            tables,
            rows,
            result: Outcome::Passed,
            reason: None,
        },
        Err(failure) => Evidence {
            backup,
            started_at,
            duration_seconds,
            tables: 0,
            rows: 0,
            result: Outcome::Failed,
            reason: Some(failure.reason.into()),
            message: failure.message,
        },
    }
}

/// The latest complete backup of the prefix (or `wanted`) and its manifest.
async fn choose(
    store: &AmazonS3,
    prefix: &str,
    wanted: Option<&str>,
) -> Result<(String, Manifest), Failure> {
    let unreachable = |e: object_store::Error| fail("StoreUnreachable", e.to_string());
    let id = match wanted {
        Some(id) => id.to_string(),
        None => store::newest_backup(store, prefix)
            .await
            .map_err(unreachable)?
            .ok_or_else(|| fail("NoBackup", format!("no complete backup under {prefix}/")))?,
    };
    let key = Path::from(format!("{prefix}/{id}/{MANIFEST}"));
    let bytes = store
        .get(&key)
        .await
        .map_err(unreachable)?
        .bytes()
        .await
        .map_err(unreachable)?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| fail("ManifestUnreadable", format!("{key}: {e}")))?;
    Ok((id, manifest))
}

async fn restore(drill: &Drill, backup: &mut String) -> Result<(usize, i64), Failure> {
    let store =
        store::connect(&drill.store).map_err(|e| fail("StoreUnreachable", e.to_string()))?;
    let (id, manifest) = choose(&store, &drill.prefix, drill.backup.as_deref()).await?;
    *backup = id.clone();
    let mut command = Command::new("pg_restore");
    let database = match &drill.target {
        Target::Scratch(scratch) => {
            let socket = start_scratch(scratch)?;
            command
                .arg("--host")
                .arg(&socket)
                .args(["--username=postgres", "--dbname=restored"]);
            let mut config = tokio_postgres::Config::new();
            config.host_path(socket).user("postgres").dbname("restored");
            Database::plain(config)
        }
        Target::Database(database) => {
            refuse_unless_empty(database).await?;
            // Connection settings from the environment (PG*); all or nothing.
            let dbname = database.config.get_dbname().unwrap_or("app");
            command
                .arg(format!("--dbname={dbname}"))
                .arg("--single-transaction");
            database.as_ref().clone()
        }
    };

    // pg_restore reads the plaintext on its stdin, fed by a thread that decrypts what the
    // download hands it; the download hashes every byte on the way.
    let mut restore = command
        .args(["--no-owner", "--no-privileges", "--exit-on-error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(
                "ScratchDatabaseFailed",
                format!("cannot start pg_restore: {e}"),
            )
        })?;
    let stdin = restore.stdin.take();
    let stderr = restore.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    });
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
    let identity = drill.identity.clone();
    // Ok(true): all decrypted and handed over; Ok(false): pg_restore stopped reading
    // (its own error says why); Err: the decryption failed.
    let decrypt = tokio::task::spawn_blocking(move || -> Result<bool, String> {
        let Some(mut stdin) = stdin else {
            return Ok(false);
        };
        let reader = ChannelReader {
            receiver,
            current: Bytes::new(),
        };
        let decryptor = age::Decryptor::new(reader).map_err(|e| e.to_string())?;
        let mut plain = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = plain.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(true);
            }
            if std::io::Write::write_all(&mut stdin, &buf[..n]).is_err() {
                return Ok(false);
            }
        }
    });

    let dump = Path::from(format!("{}/{}", drill.prefix, manifest.dump));
    let mut hash = Context::new(&SHA256);
    let mut size = 0u64;
    let mut stream = store
        .get(&dump)
        .await
        .map_err(|e| fail("StoreUnreachable", e.to_string()))?
        .into_stream();
    let mut feeding = true;
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| fail("StoreUnreachable", e.to_string()))?
    {
        hash.update(&chunk);
        size += chunk.len() as u64;
        // Once decryption has given up, the rest is still hashed: a changed byte is then
        // reported as what it is.
        feeding = feeding && sender.send(chunk).await.is_ok();
    }
    drop(sender);
    let decrypted = decrypt
        .await
        .unwrap_or_else(|e| Err(format!("the decryption thread failed: {e}")));
    // Anything still buffered for a decryptor that gave up is dropped with the task.
    let status = restore
        .wait()
        .map_err(|e| fail("RestoreFailed", e.to_string()))?;
    let restore_errors = errors.join().unwrap_or_default();

    let sha256: String = hash
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if sha256 != manifest.sha256 || size != manifest.size {
        return Err(fail(
            "ChecksumMismatch",
            format!(
                "{dump} is {size} bytes with SHA-256 {sha256}; its manifest says {} bytes with {}",
                manifest.size, manifest.sha256
            ),
        ));
    }
    if let Err(e) = decrypted {
        return Err(fail("DecryptionFailed", format!("{dump}: {e}")));
    }
    if !status.success() {
        return Err(fail(
            "RestoreFailed",
            format!("pg_restore {status}: {}", last_lines(&restore_errors)),
        ));
    }
    compare_rows(&database, &manifest).await
}

/// A bootstrap restores only into a database without tables: never over live data.
async fn refuse_unless_empty(database: &Database) -> Result<(), Failure> {
    let unreachable = |e: tokio_postgres::Error| fail("TargetUnreachable", e.to_string());
    let client = super::database::connect(database)
        .await
        .map_err(|e| fail("TargetUnreachable", e.to_string()))?;
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' \
               AND n.nspname NOT LIKE 'pg\\_%'",
            &[],
        )
        .await
        .map_err(unreachable)?
        .get(0);
    if tables > 0 {
        return Err(fail(
            "TargetNotEmpty",
            format!("the database already holds {tables} tables: nothing was restored over them"),
        ));
    }
    Ok(())
}

/// Counts every manifest table in the restored database.
async fn compare_rows(database: &Database, manifest: &Manifest) -> Result<(usize, i64), Failure> {
    let scratch = |e: tokio_postgres::Error| fail("ScratchDatabaseFailed", e.to_string());
    let client = super::database::connect(database)
        .await
        .map_err(|e| fail("ScratchDatabaseFailed", e.to_string()))?;
    let mut rows = 0;
    let mut wrong = Vec::new();
    for table in &manifest.tables {
        let quoted: String = client
            .query_one(
                "SELECT format('%I.%I', $1::text, $2::text)",
                &[&table.schema, &table.table],
            )
            .await
            .map_err(scratch)?
            .get(0);
        let found: i64 = match client
            .query_one(&format!("SELECT count(*) FROM {quoted}"), &[])
            .await
        {
            Ok(row) => row.get(0),
            Err(e) => {
                wrong.push(format!("{quoted}: {e}"));
                continue;
            }
        };
        rows += found;
        if found != table.rows {
            wrong.push(format!(
                "{quoted} has {found} rows, the manifest {}",
                table.rows
            ));
        }
    }
    if !wrong.is_empty() {
        return Err(fail("RowCountMismatch", wrong.join("; ")));
    }
    Ok((manifest.tables.len(), rows))
}

/// Feeds downloaded chunks to a synchronous reader (the decryptor).
struct ChannelReader {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// initdb and start a PostgreSQL that listens on a socket in `scratch` only; its socket
/// directory.
fn start_scratch(scratch: &FsPath) -> Result<PathBuf, Failure> {
    let data = scratch.join("pg");
    let run = |command: &mut Command, what: &str| -> Result<(), Failure> {
        let output = command
            .output()
            .map_err(|e| fail("ScratchDatabaseFailed", format!("{what}: {e}")))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(fail(
                "ScratchDatabaseFailed",
                format!(
                    "{what}: {}",
                    last_lines(&String::from_utf8_lossy(&output.stderr))
                ),
            ))
        }
    };
    run(
        Command::new("initdb").arg("--pgdata").arg(&data).args([
            "--username=postgres",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
        ]),
        "initdb",
    )?;
    run(
        Command::new("pg_ctl")
            .arg("--pgdata")
            .arg(&data)
            .arg("--log")
            .arg(scratch.join("postgres.log"))
            .arg("--options")
            .arg(format!(
                "-c listen_addresses= -c unix_socket_directories={} -c fsync=off \
                 -c full_page_writes=off -c synchronous_commit=off",
                scratch.display()
            ))
            .args(["--wait", "start"]),
        "pg_ctl start",
    )?;
    run(
        Command::new("createdb")
            .arg("--host")
            .arg(scratch)
            .args(["--username=postgres", "restored"]),
        "createdb",
    )?;
    Ok(scratch.to_path_buf())
}

/// Stops the throwaway PostgreSQL, if it runs; its data goes with the pod.
fn stop_scratch(scratch: &FsPath) {
    let _ = Command::new("pg_ctl")
        .arg("--pgdata")
        .arg(scratch.join("pg"))
        .args(["--mode=immediate", "stop"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last lines of an error output: at most five, 800 characters.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    match tail.char_indices().rev().nth(799) {
        Some((cut, _)) => format!("...{}", &tail[cut..]),
        None => tail,
    }
}
