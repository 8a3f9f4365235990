//! The `backup` section: the S3-compatible object store the backup agent writes to, the
//! public keys every dump is encrypted to, and the deadline of a run. Without an object store
//! the systems keep the dumps on a volume claim beside the database (the older layout).

use serde::{Deserialize, Serialize};

use crate::config::archiving::Archiving;
use crate::config::checks::is_dns_label;
use crate::config::network::{PlatformService, check_peer};

/// Where and how backups are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupConfig {
    /// The object store; absent, backups go to a volume claim in each system's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<ObjectStore>,
    /// Age public keys (`age1...`) every dump is encrypted to. The private keys live only
    /// where restores run. Required with an object store.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// A backup run is stopped after this long (the dump, the upload and its verification).
    #[serde(default = "default_deadline_seconds")]
    pub deadline_seconds: u32,
    /// Restore drills of every system's latest backup, with an object store.
    #[serde(default)]
    pub drills: Drills,
    /// Continuous WAL archiving and base backups of the CloudNativePG systems, with an
    /// object store.
    #[serde(default)]
    pub archiving: Archiving,
}

/// Restore drills: where they run (the only namespace holding the private key and read
/// access to every prefix), how often, how many at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Drills {
    /// Drills run (with an object store).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The platform's restore namespace, made by the platform with the two Secrets below.
    #[serde(default = "default_drill_namespace")]
    pub namespace: String,
    /// Secret there with key `identity`: the age private key (AGE-SECRET-KEY-1...).
    #[serde(default = "default_identity_secret")]
    pub identity_secret: String,
    /// Secret there with `accessKeyId` and `secretAccessKey`: read access to the bucket.
    #[serde(default = "default_restore_credentials")]
    pub credentials_secret: String,
    /// A system's next drill is due this long after its last one (and once its first
    /// backup exists).
    #[serde(default = "default_interval_hours")]
    pub interval_hours: u32,
    /// Drills running at once across the fleet (each runs a PostgreSQL).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// A drill is stopped after this long.
    #[serde(default = "default_drill_deadline_seconds")]
    pub deadline_seconds: u32,
    /// The alert HealthSystemBackupDrillOverdue fires when a system's last successful drill
    /// is older than this (or, none having passed, the system itself).
    #[serde(default = "default_max_age_hours")]
    pub max_age_hours: u32,
}

impl Default for Drills {
    fn default() -> Self {
        Self {
            enabled: true,
            namespace: default_drill_namespace(),
            identity_secret: default_identity_secret(),
            credentials_secret: default_restore_credentials(),
            interval_hours: default_interval_hours(),
            max_concurrent: default_max_concurrent(),
            deadline_seconds: default_drill_deadline_seconds(),
            max_age_hours: default_max_age_hours(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_drill_namespace() -> String {
    "healthsystem-restore".into()
}

fn default_identity_secret() -> String {
    "backup-restore-identity".into()
}

fn default_restore_credentials() -> String {
    "backup-restore-credentials".into()
}

fn default_interval_hours() -> u32 {
    168
}

fn default_max_concurrent() -> usize {
    2
}

fn default_drill_deadline_seconds() -> u32 {
    7200
}

fn default_max_age_hours() -> u32 {
    336
}

/// An S3-compatible object store, one prefix per system (the system's namespace name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectStore {
    /// The store's URL, e.g. https://s3.sdc.gov.rs (path-style requests).
    pub endpoint: String,
    /// The bucket every system's prefix is in.
    pub bucket: String,
    /// The region requests are signed for.
    #[serde(default = "default_region")]
    pub region: String,
    /// PEM certificates the store's TLS certificate is checked against, when not a public CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// The Secret in each system's namespace holding that system's own store credentials
    /// (keys `accessKeyId` and `secretAccessKey`), put there by the platform's provisioning:
    /// a system's credentials reach its own prefix only (a bucket policy on `s3:prefix`).
    #[serde(default = "default_credentials_secret")]
    pub credentials_secret: String,
    /// Where the store is on the network, for the backup pods' egress rule: its address
    /// ranges, or selectors of its pods when it runs in this cluster, and its ports.
    pub network: PlatformService,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            object_store: None,
            recipients: Vec::new(),
            deadline_seconds: default_deadline_seconds(),
            drills: Drills::default(),
            archiving: Archiving::default(),
        }
    }
}

fn default_deadline_seconds() -> u32 {
    6 * 3600
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_credentials_secret() -> String {
    "backup-store-credentials".into()
}

impl BackupConfig {
    /// The store drills restore from, when drills run (an object store, drills enabled).
    pub fn drill_store(&self) -> Option<&ObjectStore> {
        self.object_store.as_ref().filter(|_| self.drills.enabled)
    }

    /// The store WAL and base backups are archived to, when archiving is on (an object store,
    /// archiving enabled); the CloudNativePG systems only.
    pub fn archive_store(&self) -> Option<&ObjectStore> {
        self.object_store
            .as_ref()
            .filter(|_| self.archiving.enabled)
    }

    /// How old a system's last passing drill may be, in seconds; unbounded when no drills
    /// run (the alert HealthSystemBackupDrillOverdue compares against it).
    pub fn drill_max_age_seconds(&self) -> f64 {
        match self.drill_store() {
            Some(_) => f64::from(self.drills.max_age_hours) * 3600.0,
            None => f64::INFINITY,
        }
    }

    /// The first key that is wrong and why.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        if self.deadline_seconds < 60 {
            return Err((
                "backup.deadlineSeconds".into(),
                "must be at least 60 seconds".into(),
            ));
        }
        if let Some(bad) = self
            .recipients
            .iter()
            .find(|r| crate::backup::encryption::recipient(r).is_err())
        {
            return Err((
                "backup.recipients".into(),
                format!("{bad:?} is not an age public key (age1...)"),
            ));
        }
        let drills = &self.drills;
        if drills.interval_hours < 1 || drills.max_age_hours < 1 || drills.max_concurrent < 1 {
            return Err((
                "backup.drills".into(),
                "intervalHours, maxAgeHours and maxConcurrent must be at least 1".into(),
            ));
        }
        if drills.deadline_seconds < 60 {
            return Err((
                "backup.drills.deadlineSeconds".into(),
                "must be at least 60 seconds".into(),
            ));
        }
        if !is_dns_label(&drills.namespace) {
            return Err((
                "backup.drills.namespace".into(),
                "must be a namespace name".into(),
            ));
        }
        self.archiving.check()?;
        let Some(store) = &self.object_store else {
            return Ok(());
        };
        if self.recipients.is_empty() {
            return Err((
                "backup.recipients".into(),
                "at least one public key is required with an object store: no dump leaves the \
                 cluster unencrypted"
                    .into(),
            ));
        }
        if !(store.endpoint.starts_with("https://") || store.endpoint.starts_with("http://"))
            || store.endpoint.chars().any(char::is_whitespace)
        {
            return Err((
                "backup.objectStore.endpoint".into(),
                "must be an http:// or https:// URL".into(),
            ));
        }
        if !is_bucket_name(&store.bucket) {
            return Err((
                "backup.objectStore.bucket".into(),
                "must be an S3 bucket name (3 to 63 lowercase letters, digits, '-' and '.')".into(),
            ));
        }
        if store.credentials_secret.is_empty() {
            return Err((
                "backup.objectStore.credentialsSecret".into(),
                "must name a Secret".into(),
            ));
        }
        if let Some(pem) = &store.ca_bundle
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            return Err((
                "backup.objectStore.caBundle".into(),
                "must hold PEM certificates".into(),
            ));
        }
        check_peer("backup.objectStore.network", &store.network)
    }
}

impl ObjectStore {
    /// A store for tests: s3.sdc.gov.rs, bucket healthsystem-backups, 10.220.0.0/24 on 443.
    #[cfg(test)]
    pub(crate) fn example() -> Self {
        Self {
            endpoint: "https://s3.sdc.gov.rs".into(),
            bucket: "healthsystem-backups".into(),
            region: default_region(),
            ca_bundle: None,
            credentials_secret: default_credentials_secret(),
            network: PlatformService {
                cidrs: vec!["10.220.0.0/24".into()],
                namespace_selector: None,
                pod_selector: None,
                ports: vec![crate::config::network::ServicePort {
                    port: 443,
                    protocol: "TCP".into(),
                }],
            },
        }
    }
}

fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}
