//! The command line: `run` reconciles HealthSystems, `crd` prints the
//! CustomResourceDefinition, `render` prints what the operator would create for given
//! manifests, `onboard` turns a migration inventory into HealthSystem manifests, `backup run`
//! is the backup agent.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kube::CustomResourceExt;

use crate::api::HealthSystem;
use crate::config::Config;
use crate::render::{Source, render};

/// The HealthSystem operator: hosts health information systems in the State Data Centre.
#[derive(Debug, Parser)]
#[command(name = "healthsystem-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator against the cluster of $KUBECONFIG (or the in-cluster service
    /// account).
    Run {
        /// The operator's configuration file (tiers, platform services, monitoring, images);
        /// built-in defaults when absent.
        #[arg(long, env = "HS_CONFIG")]
        config: Option<PathBuf>,
        /// HealthSystems reconciled at once.
        #[arg(long, env = "HS_CONCURRENCY", default_value_t = 16)]
        concurrency: u16,
        /// API requests in flight at once, besides watches, the Lease and the API server probe
        /// (more only waits at the API server, holding a connection each).
        #[arg(long, env = "HS_API_IN_FLIGHT", default_value_t = crate::controller::runtime::in_flight::DEFAULT)]
        api_in_flight: usize,
        /// Log format.
        #[arg(long, env = "HS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Address of /metrics, /healthz and /readyz (port 0 picks a free port).
        #[arg(long, env = "HS_HTTP_ADDR", default_value = "0.0.0.0:8080")]
        http_addr: std::net::SocketAddr,
        /// Elect a leader among replicas through a coordination.k8s.io Lease; only the
        /// leader reconciles.
        #[arg(long, env = "HS_LEADER_ELECT")]
        leader_elect: bool,
        /// Namespace of the Lease (the operator's own namespace).
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        lease_namespace: String,
        /// Name of the Lease.
        #[arg(long, env = "HS_LEASE_NAME", default_value = "healthsystem-operator")]
        lease_name: String,
        /// The ServiceAccount the operator runs as, in its own namespace (POD_NAMESPACE; the
        /// chart sets both from the pod): bound in each namespace it manages to read its
        /// credentials Secrets there, as it may read no Secret elsewhere. Unset when it runs
        /// with other credentials (a person's, an administrator's): no binding is made.
        #[arg(long, env = "HS_SERVICE_ACCOUNT")]
        service_account: Option<String>,
    },
    /// Print the HealthSystem CustomResourceDefinition as YAML.
    Crd,
    /// Print, as multi-document YAML, every object the operator would create for the given
    /// HealthSystem manifests. Reads stdin when no file is given (or for "-"). Invalid input
    /// exits non-zero naming the file, the document and the field, and prints nothing.
    Render {
        /// Manifest files, each with one or more YAML documents.
        files: Vec<PathBuf>,
        /// The operator's configuration file, as for `run`.
        #[arg(long, env = "HS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Turn a migration inventory (CSV as spreadsheets export it) into one validated
    /// HealthSystem manifest per importable system: to stdout as YAML documents, or one file
    /// per system with --out. Every other row is reported on stderr as
    /// FILE:LINE (INSTITUTION): COLUMN: MESSAGE, or as needing a conversion (not
    /// PostgreSQL); then a summary by wave and ownership. Exits non-zero if any row is
    /// invalid; nothing is written for a bad row.
    Onboard {
        /// The inventory file.
        inventory: PathBuf,
        /// Write `<system-id>.yaml` files into this directory instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only the systems of this migration wave (repeatable).
        #[arg(long = "wave")]
        waves: Vec<u32>,
        /// Only this system id (repeatable).
        #[arg(long = "only")]
        only: Vec<String>,
        /// The operator's configuration file, whose `onboarding` section holds the mapping
        /// rules.
        #[arg(long, env = "HS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The backup agent the backup Jobs run (settings from the environment they set).
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Dump the database, encrypt, upload, verify, write the manifest, prune by age.
    Run(crate::backup::command::RunArgs),
    /// Restore a backup into a throwaway PostgreSQL in this pod and check it against its
    /// manifest (a restore drill); prints the evidence.
    Drill(crate::backup::command::DrillArgs),
    /// Check a physical drill's recovered Cluster (the PG* environment): recovery reached the
    /// newest WAL segment archived before the drill, and every table's rows; prints the
    /// evidence.
    ArchiveDrill(crate::backup::command::ArchiveDrillArgs),
    /// Print a new age key pair for the platform: the private key (AGE-SECRET-KEY-1..., for
    /// the restore namespace) and, as a comment, its public key (for backup.recipients).
    Keygen,
    /// Copy this binary into a directory (the backup pod's init container: the operator's
    /// image has no shell or cp).
    Install {
        /// Where the binary is copied to.
        dir: PathBuf,
    },
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    })
}

/// This replica's identity for leader election: its pod name, or host and process id.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

impl Cli {
    /// Runs the chosen subcommand, printing its result on stdout.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crd => {
                print!("{}", crd_yaml()?);
                Ok(())
            }
            Command::Run {
                config,
                concurrency,
                api_in_flight,
                log_format,
                http_addr,
                leader_elect,
                lease_namespace,
                lease_name,
                service_account,
            } => {
                init_logging(log_format);
                let mut config = load_config(config.as_ref())?;
                config.operator_account =
                    service_account.map(|name| crate::config::OperatorAccount {
                        namespace: lease_namespace.clone(),
                        name,
                    });
                match &config.operator_account {
                    Some(account) => tracing::info!(
                        namespace = account.namespace,
                        name = account.name,
                        "running as a ServiceAccount: bound to read its credentials Secrets in each namespace it manages"
                    ),
                    None => tracing::info!(
                        "no ServiceAccount given (HS_SERVICE_ACCOUNT): no credentials binding is made"
                    ),
                }
                let runtime = tokio::runtime::Runtime::new()?;
                runtime.block_on(async {
                    let metrics = crate::metrics::Metrics::new();
                    let identity = identity();
                    let fence = if leader_elect {
                        crate::controller::runtime::fence::Fence::closed()
                    } else {
                        crate::controller::runtime::fence::Fence::open()
                    };
                    let client = crate::controller::runtime::client::operator_client(
                        &metrics,
                        &identity,
                        fence.clone(),
                        api_in_flight,
                    )
                    .await?;
                    crate::controller::run(
                        client,
                        config,
                        crate::controller::Settings {
                            concurrency: concurrency.max(1),
                            http_addr,
                            leader: leader_elect.then_some(crate::controller::LeaderElection {
                                namespace: lease_namespace,
                                name: lease_name,
                                identity,
                            }),
                            fence,
                        },
                        metrics,
                    )
                    .await
                })
            }
            Command::Render { files, config } => {
                let config = load_config(config.as_ref())?;
                let sources = read_sources(&files)?;
                let out = render(&sources, &config)?;
                print!("{out}");
                Ok(())
            }
            Command::Onboard {
                inventory,
                out,
                waves,
                only,
                config,
            } => onboard(&inventory, out.as_deref(), waves, only, config.as_ref()),
            Command::Backup {
                command: BackupCommand::Run(args),
            } => {
                init_logging(LogFormat::Json);
                crate::backup::command::run(args)
            }
            Command::Backup {
                command: BackupCommand::Drill(args),
            } => {
                init_logging(LogFormat::Json);
                crate::backup::command::drill(args)
            }
            Command::Backup {
                command: BackupCommand::ArchiveDrill(args),
            } => {
                init_logging(LogFormat::Json);
                crate::backup::command::archive_drill(args)
            }
            Command::Backup {
                command: BackupCommand::Keygen,
            } => {
                print!("{}", crate::backup::encryption::keygen());
                Ok(())
            }
            Command::Backup {
                command: BackupCommand::Install { dir },
            } => crate::backup::command::install(&dir),
        }
    }
}

fn onboard(
    inventory: &std::path::Path,
    out: Option<&std::path::Path>,
    waves: Vec<u32>,
    only: Vec<String>,
    config: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let config = load_config(config)?;
    let bytes =
        std::fs::read(inventory).with_context(|| format!("cannot read {}", inventory.display()))?;
    let selection = crate::onboard::Selection { waves, only };
    let report = crate::onboard::onboard(
        &bytes,
        &inventory.display().to_string(),
        &config,
        &selection,
    )
    .map_err(anyhow::Error::msg)?;
    let mut stdout = String::new();
    for (id, manifest) in report.manifests() {
        let yaml = serde_saphyr::to_string(manifest).context("writing YAML")?;
        match out {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let path = dir.join(format!("{id}.yaml"));
                std::fs::write(&path, format!("---\n{yaml}"))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            None => stdout.push_str(&format!("---\n{yaml}")),
        }
    }
    print!("{stdout}");
    for problem in report.problems() {
        eprintln!("{problem}");
    }
    eprint!("{}", report.summary());
    if report.has_errors() {
        anyhow::bail!(
            "some rows of {} are invalid (listed above)",
            inventory.display()
        );
    }
    Ok(())
}

/// The CRD as YAML, exactly as committed in `crds/healthsystem.yaml`.
pub fn crd_yaml() -> anyhow::Result<String> {
    let yaml = serde_saphyr::to_string(&HealthSystem::crd()).context("serialising the CRD")?;
    Ok(format!("---\n{yaml}"))
}

fn read_sources(files: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    if files.is_empty() {
        return Ok(vec![read_stdin()?]);
    }
    files
        .iter()
        .map(|path| {
            if path.as_os_str() == "-" {
                return read_stdin();
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(Source {
                name: path.display().to_string(),
                text,
            })
        })
        .collect()
}

fn read_stdin() -> anyhow::Result<Source> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read stdin")?;
    Ok(Source {
        name: "<stdin>".into(),
        text,
    })
}
