//! The operator's configuration file: what the platform team owns rather than each manifest
//! (tier sizing, the national platform services' addresses, the monitoring namespace, every
//! container image). Every key has a default, so the operator starts without a file; a file
//! with an unknown key or a bad value stops it at start with a message naming the key.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use crate::api::Tier;

mod archiving;
mod backup;
pub mod checks;
mod engine;
mod images;
pub mod network;
pub mod onboarding;

pub use archiving::{Archiving, setting_seconds};
pub use backup::{BackupConfig, Drills, ObjectStore};
use checks::{is_cidr, is_dns_label, looks_like_quantity};
pub use engine::{CloudNativePg, DatabaseConfig, Engine, PrimaryLease};
pub use images::Images;
pub use network::{PlatformService, ServicePort};
use network::{check_peer, default_platform_services};

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read configuration {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML does not match the configuration's shape (the message names the key).
    #[error("configuration {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with the key and position.
        message: String,
    },
    /// A value is out of range.
    #[error("configuration {path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Dotted path of the key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The operator's configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Sizing presets, one per tier.
    #[serde(default)]
    pub tiers: Tiers,
    /// National platform services a system may name in spec.network.platformServices.
    #[serde(default = "default_platform_services")]
    pub platform_services: BTreeMap<String, PlatformService>,
    /// Where Prometheus runs: allowed to scrape the metrics ports.
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// Where the systems' pods resolve names.
    #[serde(default)]
    pub dns: DnsConfig,
    /// Every container image the operator runs, from the data centre's registry mirror.
    #[serde(default)]
    pub images: Images,
    /// How `onboard` turns inventory rows into HealthSystems.
    #[serde(default)]
    pub onboarding: onboarding::OnboardingConfig,
    /// Deadlines and freshness of spec.migration's import and verification.
    #[serde(default)]
    pub migration: MigrationConfig,
    /// How a new database pod template reaches the fleet's running databases.
    #[serde(default)]
    pub rollout: RolloutConfig,
    /// Where backups are kept and how they are encrypted.
    #[serde(default)]
    pub backup: BackupConfig,
    /// Which engine runs new systems' databases.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// The ServiceAccount the operator runs as (`run --service-account`, not this file):
    /// bound in each namespace it manages to read its credentials Secrets there.
    #[serde(skip)]
    pub operator_account: Option<OperatorAccount>,
}

/// A ServiceAccount, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorAccount {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tiers: Tiers::default(),
            platform_services: default_platform_services(),
            monitoring: MonitoringConfig::default(),
            dns: DnsConfig::default(),
            images: Images::default(),
            onboarding: onboarding::OnboardingConfig::default(),
            migration: MigrationConfig::default(),
            rollout: RolloutConfig::default(),
            backup: BackupConfig::default(),
            database: DatabaseConfig::default(),
            operator_account: None,
        }
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and checks configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let config: Self = if text.trim().is_empty() {
            Self::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_string(),
                message: e.to_string(),
            })?
        };
        config
            .check()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: path.to_string(),
                key,
                message,
            })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), (String, String)> {
        for (name, preset) in [
            ("small", &self.tiers.small),
            ("standard", &self.tiers.standard),
            ("large", &self.tiers.large),
        ] {
            if preset.pods < 1 {
                return Err((format!("tiers.{name}.pods"), "must be at least 1".into()));
            }
            if !(1..=9).contains(&preset.max_instances) {
                return Err((
                    format!("tiers.{name}.maxInstances"),
                    "must be between 1 and 9".into(),
                ));
            }
            if !(1..=preset.max_instances).contains(&preset.instances) {
                return Err((
                    format!("tiers.{name}.instances"),
                    format!(
                        "must be between 1 and maxInstances ({})",
                        preset.max_instances
                    ),
                ));
            }
            for (key, value) in [
                ("cpu", &preset.cpu),
                ("memory", &preset.memory),
                ("storage", &preset.storage),
                ("defaultCpuRequest", &preset.default_cpu_request),
                ("defaultMemoryRequest", &preset.default_memory_request),
                ("defaultMemoryLimit", &preset.default_memory_limit),
                ("databaseCpu", &preset.database_cpu),
                ("databaseMemory", &preset.database_memory),
            ] {
                if !looks_like_quantity(value) {
                    return Err((
                        format!("tiers.{name}.{key}"),
                        format!("{value:?} is not a Kubernetes quantity"),
                    ));
                }
            }
        }
        for (name, service) in &self.platform_services {
            let key = format!("platformServices.{name}");
            if !is_dns_label(name) {
                return Err((key, "the name must be a DNS label".into()));
            }
            check_peer(&key, service)?;
        }
        self.backup.check()?;
        self.database.check()?;
        for (key, seconds) in [
            (
                "migration.verificationMaxAgeSeconds",
                self.migration.verification_max_age_seconds,
            ),
            (
                "migration.importDeadlineSeconds",
                self.migration.import_deadline_seconds,
            ),
            (
                "migration.verifyDeadlineSeconds",
                self.migration.verify_deadline_seconds,
            ),
            (
                "migration.importStuckAfterSeconds",
                self.migration.import_stuck_after_seconds,
            ),
        ] {
            if seconds < 1 {
                return Err((key.into(), "must be at least 1 second".into()));
            }
        }
        if !is_dns_label(&self.dns.namespace) {
            return Err(("dns.namespace".into(), "must be a namespace name".into()));
        }
        if let Some(cidr) = self.dns.addresses.iter().find(|c| !is_cidr(c)) {
            return Err(("dns.addresses".into(), format!("{cidr:?} is not a CIDR")));
        }
        if self.rollout.max_database_restarts < 1 {
            return Err((
                "rollout.maxDatabaseRestarts".into(),
                "must be at least 1".into(),
            ));
        }
        if self.dns.ports.is_empty() {
            return Err(("dns.ports".into(), "at least one port is required".into()));
        }
        if let Some(port) = self.dns.ports.iter().find(|p| !(1..=65535).contains(*p)) {
            return Err(("dns.ports".into(), format!("{port} is not a port")));
        }
        if let Some(key) = self
            .monitoring
            .resource_labels
            .keys()
            .find(|k| k.is_empty() || k.len() > 253)
        {
            return Err((
                "monitoring.resourceLabels".into(),
                format!("{key:?} is not a label key"),
            ));
        }
        if !is_dns_label(&self.monitoring.namespace) {
            return Err((
                "monitoring.namespace".into(),
                "must be a namespace name".into(),
            ));
        }
        self.images.check()?;
        Ok(())
    }
}

/// The sizing preset of every tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tiers {
    /// A clinic or a laboratory.
    pub small: TierPreset,
    /// A health centre or a general hospital.
    pub standard: TierPreset,
    /// A clinical centre or a large hospital.
    pub large: TierPreset,
}

impl Tiers {
    /// The preset of `tier`.
    pub fn get(&self, tier: Tier) -> &TierPreset {
        match tier {
            Tier::Small => &self.small,
            Tier::Standard => &self.standard,
            Tier::Large => &self.large,
        }
    }
}

/// Namespace quota and default container resources of one tier (Kubernetes quantities).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierPreset {
    /// Total CPU requests allowed in the namespace.
    pub cpu: String,
    /// Total memory requests allowed in the namespace.
    pub memory: String,
    /// Total storage requested by volume claims (database and backups).
    pub storage: String,
    /// Maximum number of pods.
    pub pods: i32,
    /// Default CPU request of a container that sets none.
    pub default_cpu_request: String,
    /// Default memory request of a container that sets none.
    pub default_memory_request: String,
    /// Default memory limit of a container that sets none.
    pub default_memory_limit: String,
    /// CPU requested by the PostgreSQL server (no CPU limit: it may use what is idle).
    pub database_cpu: String,
    /// Memory requested by the PostgreSQL server, also its limit (a database is never
    /// overcommitted: the kernel's OOM killer must not pick it under pressure).
    pub database_memory: String,
    /// PostgreSQL instances (one primary, the rest replicas) of a system on the
    /// CloudNativePG engine; the StatefulSet engine always runs one.
    pub instances: i32,
    /// The most instances a system of this tier may ask for (`spec.database.instances`):
    /// each is a server with the tier's database requests and a copy of the data.
    pub max_instances: i32,
}

impl Default for Tiers {
    fn default() -> Self {
        let preset = |cpu: &str,
                      memory: &str,
                      storage: &str,
                      pods,
                      request: [&str; 3],
                      db: [&str; 2],
                      [instances, max_instances]: [i32; 2]| {
            TierPreset {
                cpu: cpu.into(),
                memory: memory.into(),
                storage: storage.into(),
                pods,
                default_cpu_request: request[0].into(),
                default_memory_request: request[1].into(),
                default_memory_limit: request[2].into(),
                database_cpu: db[0].into(),
                database_memory: db[1].into(),
                instances,
                max_instances,
            }
        };
        Self {
            small: preset(
                "2",
                "4Gi",
                "200Gi",
                20,
                ["100m", "128Mi", "512Mi"],
                ["500m", "1Gi"],
                [1, 2],
            ),
            standard: preset(
                "8",
                "16Gi",
                "2Ti",
                50,
                ["250m", "256Mi", "1Gi"],
                ["2", "4Gi"],
                [2, 3],
            ),
            large: preset(
                "32",
                "64Gi",
                "40Ti",
                150,
                ["500m", "512Mi", "2Gi"],
                ["8", "16Gi"],
                [3, 5],
            ),
        }
    }
}

/// Database restarts for a new pod template (an image changed here, an operator upgrade, a
/// new tier): the operator restarts at most this many databases at a time across the fleet,
/// each holding its slot until its new pod is ready.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutConfig {
    /// Databases restarting at once, at least 1.
    #[serde(default = "default_max_database_restarts")]
    pub max_database_restarts: usize,
}

fn default_max_database_restarts() -> usize {
    10
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            max_database_restarts: default_max_database_restarts(),
        }
    }
}

/// How migrations (spec.migration) run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationConfig {
    /// How old the latest passed verification may be when a cutover is approved; an older
    /// one is run again first (the source may have changed since).
    #[serde(default = "default_verification_max_age")]
    pub verification_max_age_seconds: i64,
    /// How long an import Job may run before it is stopped and reported failed.
    #[serde(default = "default_import_deadline")]
    pub import_deadline_seconds: i64,
    /// How long a verification Job may run.
    #[serde(default = "default_verify_deadline")]
    pub verify_deadline_seconds: i64,
    /// How long an import may run before the fleet alert HealthSystemMigrationImportStuck
    /// fires (published as healthsystem_migration_import_stuck_after_seconds).
    #[serde(default = "default_import_stuck_after")]
    pub import_stuck_after_seconds: i64,
}

fn default_import_stuck_after() -> i64 {
    6 * 3600
}

fn default_verification_max_age() -> i64 {
    24 * 3600
}

fn default_import_deadline() -> i64 {
    24 * 3600
}

fn default_verify_deadline() -> i64 {
    6 * 3600
}

impl Default for MigrationConfig {
    fn default() -> Self {
        Self {
            verification_max_age_seconds: default_verification_max_age(),
            import_deadline_seconds: default_import_deadline(),
            verify_deadline_seconds: default_verify_deadline(),
            import_stuck_after_seconds: default_import_stuck_after(),
        }
    }
}

/// The monitoring stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Namespace where Prometheus runs; its pods may scrape the systems' metrics ports.
    pub namespace: String,
    /// Labels put on every system's PodMonitor and PrometheusRule: what the platform's
    /// Prometheus selects them by (its podMonitorSelector and ruleSelector), for example
    /// `release: kube-prometheus-stack`. The operator's own labels are never replaced.
    #[serde(default)]
    pub resource_labels: BTreeMap<String, String>,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            namespace: "monitoring".into(),
            resource_labels: BTreeMap::new(),
        }
    }
}

/// The cluster DNS, for the egress rule that lets every pod resolve names (UDP and TCP on
/// the DNS ports): the DNS pods, and resolver addresses that are not pods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsConfig {
    /// Namespace of the DNS pods.
    pub namespace: String,
    /// Which pods of that namespace answer DNS (CoreDNS and kube-dns carry
    /// `k8s-app: kube-dns`): no other pod there is reachable.
    #[serde(default = "kube_dns_pods")]
    pub pod_selector: LabelSelector,
    /// The ports the DNS pods (or resolver addresses) listen on: 53, or e.g. 5353 where the
    /// DNS Service forwards to an unprivileged port (policies see the pod's port).
    #[serde(default = "dns_ports")]
    pub ports: Vec<i32>,
    /// Addresses of a resolver that is not a pod of that namespace, as CIDRs: a node-local
    /// DNS cache (NodeLocal DNSCache's 169.254.20.10/32) or a resolver on the node itself.
    #[serde(default)]
    pub addresses: Vec<String>,
}

fn kube_dns_pods() -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "k8s-app".to_string(),
            "kube-dns".to_string(),
        )])),
        ..LabelSelector::default()
    }
}

fn dns_ports() -> Vec<i32> {
    vec![53]
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            namespace: "kube-system".into(),
            pod_selector: kube_dns_pods(),
            ports: dns_ports(),
            addresses: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
