//! One backup run: row counts and `pg_dump` in one snapshot, the dump encrypted and streamed to
//! the store in parts (never a full copy on disk or in memory), the upload read back and
//! hashed, the manifest written last (a backup without one is incomplete), then pruning by
//! age. The whole run has a deadline.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use ring::digest::{Context, SHA256};
use tokio::io::AsyncReadExt;
use tracing::{info, warn};

use super::encryption;
use super::manifest::{self, DUMP, MANIFEST, Manifest, TableRows};
use super::retention::{self, Policy};
use super::store::{self, Settings};

/// Parts of the multipart upload (S3 wants at least 5 MiB but for the last).
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once: memory stays at a few parts whatever the dump's size.
const PARTS_IN_FLIGHT: usize = 2;

/// What a run needs.
#[derive(Clone, Debug)]
pub struct Run {
    /// The store and the system's credentials.
    pub store: Settings,
    /// The system's prefix in the bucket (its namespace name).
    pub prefix: String,
    /// Age public keys, as given.
    pub recipients: Vec<String>,
    /// How long backups are kept.
    pub policy: Policy,
    /// The whole run's deadline; also how old an incomplete backup must be to be removed.
    pub deadline: Duration,
    /// How to reach the database (libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
    /// and PGSSLROOTCERT with PGSSLMODE=verify-full).
    pub database: super::database::Database,
    /// The system's last backup, taken as it is deleted: kept apart from retention.
    pub final_backup: bool,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The new backup's manifest.
    pub manifest: Manifest,
    /// Backups removed by retention.
    pub pruned: usize,
    /// Incomplete backups (no manifest, older than the deadline) removed.
    pub incomplete_removed: usize,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The database refused or went away.
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// No connection to the database.
    #[error("database: {0}")]
    Connect(#[from] super::database::ConnectError),
    /// pg_dump could not run or failed.
    #[error("pg_dump: {0}")]
    Dump(String),
    /// The store refused or went away.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// Encryption or a local pipe failed.
    #[error("encryption: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is not usable.
    #[error("{0}")]
    Config(String),
    /// What was read back is not what was written.
    #[error("verification: {0}")]
    Verification(String),
    /// The deadline passed.
    #[error("stopped after the deadline of {0:?}")]
    Deadline(Duration),
}

/// Runs one backup within the deadline.
pub async fn run(job: &Run) -> Result<Outcome, AgentError> {
    match tokio::time::timeout(job.deadline, run_unbounded(job)).await {
        Ok(result) => result,
        Err(_) => Err(AgentError::Deadline(job.deadline)),
    }
}

async fn run_unbounded(job: &Run) -> Result<Outcome, AgentError> {
    let keys = encryption::recipients(&job.recipients.join(",")).map_err(AgentError::Config)?;
    let store = store::connect(&job.store)?;
    let started_at = Timestamp::now();
    let id = if job.final_backup {
        manifest::final_id(started_at)
    } else {
        manifest::id(started_at)
    };
    let dump_path = Path::from(format!("{}/{id}/{DUMP}", job.prefix));

    let client = super::database::connect(&job.database).await?;
    // The counts and the dump see the same snapshot: the transaction exporting it stays open
    // until pg_dump is done.
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let snapshot: String = client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await?
        .get(0);
    let server_version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    let tables = row_counts(&client).await?;
    let (size, sha256) = dump_and_upload(&store, &dump_path, &snapshot, &keys).await?;
    client.batch_execute("COMMIT").await?;
    drop(client);

    verify(&store, &dump_path, size, &sha256).await?;
    let manifest = Manifest {
        format: 1,
        system: job.prefix.clone(),
        id: id.clone(),
        started_at,
        finished_at: Timestamp::now(),
        server_version,
        dump: format!("{id}/{DUMP}"),
        size,
        sha256,
        encryption: "age-x25519".into(),
        recipients: job.recipients.clone(),
        tables,
        final_backup: job.final_backup,
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    store
        .put(
            &Path::from(format!("{}/{id}/{MANIFEST}", job.prefix)),
            PutPayload::from(body),
        )
        .await?;
    info!(
        id,
        size,
        tables = manifest.tables.len(),
        "backup uploaded and verified"
    );

    let (pruned, incomplete_removed) = prune(&store, job, Timestamp::now()).await?;
    Ok(Outcome {
        manifest,
        pruned,
        incomplete_removed,
    })
}

/// Every user table's exact row count, in the open transaction's snapshot.
pub(crate) async fn row_counts(
    client: &tokio_postgres::Client,
) -> Result<Vec<TableRows>, AgentError> {
    let tables = client
        .query(
            "SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' \
               AND n.nspname NOT LIKE 'pg\\_%' \
             ORDER BY 1, 2",
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let quoted: String = table.get(2);
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {quoted}"), &[])
            .await?
            .get(0);
        out.push(TableRows {
            schema: table.get(0),
            table: table.get(1),
            rows,
        });
    }
    Ok(out)
}

/// What the encryptor writes, taken out after each write and handed to the upload.
#[derive(Clone, Default)]
struct Pipe(Arc<Mutex<Vec<u8>>>);

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Pipe {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The size and SHA-256 of what was stored.
struct Tally {
    size: u64,
    hash: Context,
}

impl Tally {
    fn add(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        self.hash.update(bytes);
    }

    fn hex(self) -> String {
        self.hash
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Streams `pg_dump` of the snapshot through encryption into a multipart upload; a failure
/// aborts the upload, so no partial object is left under the backup's name.
async fn dump_and_upload(
    store: &AmazonS3,
    path: &Path,
    snapshot: &str,
    keys: &[age::x25519::Recipient],
) -> Result<(u64, String), AgentError> {
    let mut upload =
        WriteMultipart::new_with_chunk_size(store.put_multipart(path).await?, PART_SIZE);
    let mut tally = Tally {
        size: 0,
        hash: Context::new(&SHA256),
    };
    match stream_dump(&mut upload, &mut tally, snapshot, keys).await {
        Ok(()) => {
            upload.finish().await?;
            Ok((tally.size, tally.hex()))
        }
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                warn!(%abort, "could not abort the partial upload");
            }
            Err(e)
        }
    }
}

async fn stream_dump(
    upload: &mut WriteMultipart,
    tally: &mut Tally,
    snapshot: &str,
    keys: &[age::x25519::Recipient],
) -> Result<(), AgentError> {
    let mut child = tokio::process::Command::new("pg_dump")
        .arg("--format=custom")
        .arg(format!("--snapshot={snapshot}"))
        // Host, role and database from the environment; these notice a dead peer.
        .arg(format!("--dbname={}", super::liveness::libpq_options()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| AgentError::Dump(format!("cannot start: {e}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| AgentError::Dump("no output".into()))?;
    let pipe = Pipe::default();
    let mut encrypt = encryption::encrypting_writer(keys, pipe.clone())?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let watchdog = super::liveness::PROGRESS_TIMEOUT;
        let Ok(read) = tokio::time::timeout(watchdog, stdout.read(&mut buf)).await else {
            let _ = child.kill().await;
            return Err(AgentError::Dump(format!(
                "no output for {} s: the database stopped answering; stopped",
                watchdog.as_secs()
            )));
        };
        let n = read?;
        if n == 0 {
            break;
        }
        encrypt.write_all(&buf[..n])?;
        let bytes = pipe.take();
        tally.add(&bytes);
        upload.write(&bytes);
        upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
    }
    encrypt.finish()?;
    let bytes = pipe.take();
    tally.add(&bytes);
    upload.write(&bytes);
    let status = child.wait().await?;
    if !status.success() {
        return Err(AgentError::Dump(format!("exited with {status}")));
    }
    Ok(())
}

/// Reads the stored dump back and checks its size and SHA-256.
async fn verify(store: &AmazonS3, path: &Path, size: u64, sha256: &str) -> Result<(), AgentError> {
    let mut stream = store.get(path).await?.into_stream();
    let mut tally = Tally {
        size: 0,
        hash: Context::new(&SHA256),
    };
    while let Some(chunk) = stream.try_next().await? {
        tally.add(&chunk);
    }
    let stored_size = tally.size;
    let stored = tally.hex();
    if stored_size != size || stored != sha256 {
        return Err(AgentError::Verification(format!(
            "{path} holds {stored_size} bytes with SHA-256 {stored}, {size} bytes with {sha256} \
             were written"
        )));
    }
    Ok(())
}

/// Removes backups retention no longer keeps, and incomplete ones older than the deadline.
/// Anything whose name is not a backup id is left alone; a removal the store refuses (Object
/// Lock) is logged and left for a later run.
async fn prune(store: &AmazonS3, job: &Run, now: Timestamp) -> Result<(usize, usize), AgentError> {
    let prefix = Path::from(job.prefix.as_str());
    let mut backups: BTreeMap<String, (Vec<Path>, bool)> = BTreeMap::new();
    let mut listing = store.list(Some(&prefix));
    while let Some(object) = listing.try_next().await? {
        let parts: Vec<_> = object
            .location
            .prefix_match(&prefix)
            .into_iter()
            .flatten()
            .collect();
        let [id, name] = parts.as_slice() else {
            continue;
        };
        let entry = backups.entry(id.as_ref().to_string()).or_default();
        entry.1 |= name.as_ref() == MANIFEST;
        entry.0.push(object.location.clone());
    }
    let complete: Vec<Timestamp> = backups
        .iter()
        .filter(|(_, (_, has_manifest))| *has_manifest)
        .filter_map(|(id, _)| manifest::time_of(id))
        .collect();
    let kept = retention::keep(&complete, now, job.policy);
    let deadline = SignedDuration::try_from(job.deadline).unwrap_or(SignedDuration::MAX);
    let (mut pruned, mut incomplete) = (0, 0);
    for (id, (mut objects, has_manifest)) in backups {
        let Some(time) = manifest::time_of(&id) else {
            continue;
        };
        let remove = if has_manifest {
            !kept.contains(&time)
        } else {
            now.duration_since(time) > deadline
        };
        if !remove {
            continue;
        }
        // The manifest first: a backup half removed is an incomplete one, never a broken one.
        objects.sort_by_key(|p| p.filename() != Some(MANIFEST));
        let mut removed = true;
        for object in &objects {
            if let Err(e) = store.delete(object).await {
                warn!(%object, error = %e, "cannot remove (Object Lock?); left for a later run");
                removed = false;
                break;
            }
        }
        if removed && has_manifest {
            pruned += 1;
        } else if removed {
            incomplete += 1;
        }
    }
    Ok((pruned, incomplete))
}
