//! `healthsystem-operator backup run`: the backup Job's entry point. Everything comes from the
//! environment the Job sets (the database's PG* variables, the store's settings, the system's
//! store credentials from its Secret), so no secret is ever on a command line.

use std::time::Duration;

use anyhow::Context;

use super::agent::{self, Run};
use super::retention::Policy;
use super::store::Settings;

/// Where the store is, which prefix, and whose credentials: what every agent command needs.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The object store's URL.
    #[arg(long, env = "HS_BACKUP_ENDPOINT")]
    endpoint: String,
    /// The bucket.
    #[arg(long, env = "HS_BACKUP_BUCKET")]
    bucket: String,
    /// The region requests are signed for.
    #[arg(long, env = "HS_BACKUP_REGION", default_value = "us-east-1")]
    region: String,
    /// PEM certificates the store's TLS certificate is checked against.
    #[arg(long, env = "HS_BACKUP_CA_BUNDLE")]
    ca_bundle: Option<String>,
    /// A system's prefix in the bucket (its namespace name).
    #[arg(long, env = "HS_BACKUP_PREFIX")]
    prefix: String,
    /// The store access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    access_key_id: String,
    /// The store secret key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: String,
}

impl StoreArgs {
    fn settings(self) -> (Settings, String) {
        (
            Settings {
                endpoint: self.endpoint,
                bucket: self.bucket,
                region: self.region,
                ca_bundle: self.ca_bundle.map(String::into_bytes),
                access_key_id: self.access_key_id,
                secret_access_key: self.secret_access_key,
            },
            self.prefix,
        )
    }
}

/// Settings of one backup run.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Age public keys, comma-separated.
    #[arg(long, env = "HS_BACKUP_RECIPIENTS")]
    recipients: String,
    /// Every backup younger than this many days is kept.
    #[arg(long, env = "HS_BACKUP_KEEP_DAYS")]
    keep_days: u32,
    /// The newest backup of each of this many weeks is kept.
    #[arg(long, env = "HS_BACKUP_KEEP_WEEKS")]
    keep_weeks: u32,
    /// The newest backup of each of this many months is kept.
    #[arg(long, env = "HS_BACKUP_KEEP_MONTHS")]
    keep_months: u32,
    /// The run is stopped after this many seconds.
    #[arg(long, env = "HS_BACKUP_DEADLINE_SECONDS", default_value_t = 21600)]
    deadline_seconds: u64,
    /// The system's final backup (it is being deleted): stored as ID-final, never pruned.
    #[arg(long, env = "HS_BACKUP_FINAL")]
    final_backup: bool,
}

/// How long a drill (either kind) may take and where its evidence goes.
#[derive(Debug, clap::Args)]
pub struct DrillRunArgs {
    /// The drill is stopped after this many seconds.
    #[arg(long, env = "HS_DRILL_DEADLINE_SECONDS", default_value_t = 7200)]
    deadline_seconds: u64,
    /// Where the evidence is written besides stdout (the pod's termination message).
    #[arg(
        long,
        env = "HS_DRILL_EVIDENCE",
        default_value = "/dev/termination-log"
    )]
    evidence: std::path::PathBuf,
}

/// Settings of one restore drill.
#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The backup to restore (its id); the latest when absent.
    #[arg(long, env = "HS_DRILL_BACKUP")]
    backup: Option<String>,
    /// An empty directory for the throwaway PostgreSQL.
    #[arg(long, env = "HS_DRILL_SCRATCH", default_value = "/scratch")]
    scratch: std::path::PathBuf,
    /// Restore into the (empty) database of the PG* environment instead, in one transaction:
    /// a new system's bootstrap.
    #[arg(long, env = "HS_RESTORE_INTO_DATABASE")]
    into_database: bool,
    #[command(flatten)]
    run: DrillRunArgs,
    /// The platform's age private key (AGE-SECRET-KEY-1...).
    #[arg(long, env = "HS_RESTORE_IDENTITY", hide_env_values = true)]
    identity: String,
}

/// Runs a drill, prints its evidence as one JSON line and writes it to the evidence file;
/// fails when the drill did.
pub fn drill(args: DrillArgs) -> anyhow::Result<()> {
    let identity: age::x25519::Identity =
        args.identity.trim().parse().map_err(|e: &str| {
            anyhow::anyhow!("HS_RESTORE_IDENTITY is not an age private key: {e}")
        })?;
    let (store, prefix) = args.store.settings();
    let drill = super::drill::Drill {
        store,
        prefix,
        identity,
        backup: args.backup,
        target: if args.into_database {
            super::drill::Target::Database(Box::new(database_from_env()?))
        } else {
            super::drill::Target::Scratch(args.scratch)
        },
        deadline: Duration::from_secs(args.run.deadline_seconds),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let evidence = runtime.block_on(super::drill::run(&drill));
    report(&evidence, &args.run.evidence)
}

/// Settings of a physical drill's check.
#[derive(Debug, clap::Args)]
pub struct ArchiveDrillArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The archive's server name (the system's Cluster).
    #[arg(long, env = "HS_ARCHIVE_SERVER", default_value = "postgres")]
    server: String,
    /// When the drill started: recovery must have reached the newest segment archived
    /// before then.
    #[arg(long, env = "HS_DRILL_ARCHIVED_BEFORE")]
    archived_before: k8s_openapi::jiff::Timestamp,
    #[command(flatten)]
    run: DrillRunArgs,
}

/// Checks a physical drill's recovered Cluster, prints its evidence as one JSON line and
/// writes it to the evidence file; fails when the check did.
pub fn archive_drill(args: ArchiveDrillArgs) -> anyhow::Result<()> {
    let (store, prefix) = args.store.settings();
    let drill = super::archive_drill::ArchiveDrill {
        store,
        prefix,
        server: args.server,
        database: database_from_env()?,
        archived_before: args.archived_before,
        deadline: Duration::from_secs(args.run.deadline_seconds),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let evidence = runtime.block_on(super::archive_drill::run(&drill));
    report(&evidence, &args.run.evidence)
}

/// Prints a drill's evidence, writes it to `path` (the termination message), and fails when
/// the drill did.
fn report(evidence: &super::drill::Evidence, path: &std::path::Path) -> anyhow::Result<()> {
    let line = serde_json::to_string(evidence)?;
    println!("{line}");
    if let Err(e) = std::fs::write(path, &line) {
        tracing::warn!(error = %e, path = %path.display(), "cannot write the evidence");
    }
    match evidence.result {
        super::drill::Outcome::Passed => Ok(()),
        super::drill::Outcome::Failed => anyhow::bail!(
            "restore drill failed: {}: {}",
            evidence.reason.clone().unwrap_or_default(),
            evidence.message
        ),
    }
}

/// libpq's environment, read as pg_dump reads it.
fn database_from_env() -> anyhow::Result<super::database::Database> {
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    let mut config = tokio_postgres::Config::new();
    config
        .host(var("PGHOST")?)
        .port(var("PGPORT")?.parse().context("PGPORT is not a port")?)
        .user(var("PGUSER")?)
        .password(var("PGPASSWORD")?)
        .dbname(var("PGDATABASE")?)
        .application_name("healthsystem-backup")
        .connect_timeout(Duration::from_secs(10));
    super::liveness::apply(&mut config);
    // libpq's own variables, which pg_dump and pg_restore read from the same environment.
    let verify_with = match std::env::var("PGSSLMODE").as_deref() {
        Ok("verify-full") => Some(var("PGSSLROOTCERT")?.into()),
        Ok("disable") | Err(_) => None,
        Ok(other) => anyhow::bail!("PGSSLMODE={other}: only verify-full or disable are used here"),
    };
    Ok(super::database::Database {
        config,
        verify_with,
    })
}

/// Runs one backup and prints its outcome as one JSON line.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let (store, prefix) = args.store.settings();
    let job = Run {
        store,
        prefix,
        recipients: args
            .recipients
            .split(',')
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect(),
        policy: Policy {
            days: args.keep_days,
            weeks: args.keep_weeks,
            months: args.keep_months,
        },
        deadline: Duration::from_secs(args.deadline_seconds),
        database: database_from_env()?,
        final_backup: args.final_backup,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(agent::run(&job))?;
    let rows: i64 = outcome.manifest.tables.iter().map(|t| t.rows).sum();
    println!(
        "{}",
        serde_json::json!({
            "backup": outcome.manifest.id,
            "bytes": outcome.manifest.size,
            "sha256": outcome.manifest.sha256,
            "tables": outcome.manifest.tables.len(),
            "rows": rows,
            "pruned": outcome.pruned,
            "incompleteRemoved": outcome.incomplete_removed,
        })
    );
    Ok(())
}

/// Copies the running binary into `dir` as an executable.
pub fn install(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().context("cannot find this binary")?;
    let to = dir.join("healthsystem-operator");
    std::fs::copy(&me, &to).with_context(|| format!("cannot copy to {}", to.display()))?;
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
