//! The mapping rules from an inventory row to a HealthSystem, in the operator configuration
//! (`onboarding:` in config/operator.yaml), with defaults a migration team starts from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::Tier;

/// How inventory rows become HealthSystems.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnboardingConfig {
    /// The tier of each institution kind; a database too large for that tier's storage moves
    /// the system up (the backup volume is added to the quota on top).
    pub tier_by_kind: BTreeMap<String, Tier>,
    /// The database volume is the source database's size times this factor (room to grow)...
    pub storage_factor: f64,
    /// ...and at least this many GiB.
    pub minimum_storage_gi: u64,
    /// The backup schedule of a system: the first entry whose `maxRpoHours` is at least the
    /// system's RPO (dumps at least twice per RPO).
    pub backup_schedules: Vec<BackupSchedule>,
    /// The platform service (a name of `platformServices`) of each national service named in
    /// the inventory.
    pub national_services: BTreeMap<String, String>,
    /// Groups given read-only access to every onboarded system (the data centre's SREs).
    pub viewers: Vec<String>,
    /// The spec.migration of every system not migrated yet (state other than Migrated):
    /// where its source database is reached. The inventory's columns source_host,
    /// source_port, source_database and source_cidr, when it has them, come first. None:
    /// manifests without spec.migration.
    #[serde(default = "default_migration")]
    pub migration: Option<MigrationSource>,
}

/// Where onboarded systems' source databases are, as templates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationSource {
    /// Host of the source server; `{id}` is replaced with the system id.
    pub host: String,
    /// Port of the source server.
    pub port: i32,
    /// Database to import.
    pub database: String,
    /// Secret the migration team puts in each system's namespace (username, password).
    pub secret_name: String,
    /// Address block through which the institutions' servers are reached (the national
    /// health network): the egress allowance of the import and verification pods.
    pub cidr: String,
}

fn default_migration() -> Option<MigrationSource> {
    Some(MigrationSource {
        host: "{id}.his.zdravlje.local".into(),
        port: 5432,
        database: "his".into(),
        secret_name: "legacy-credentials".into(),
        cidr: "10.40.0.0/16".into(),
    })
}

/// One row of the RPO-to-schedule table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSchedule {
    /// The largest RPO, in hours, this schedule serves.
    pub max_rpo_hours: u32,
    /// A five-field cron expression.
    pub schedule: String,
}

impl Default for OnboardingConfig {
    fn default() -> Self {
        let kinds = [
            ("ClinicalCentre", Tier::Large),
            ("GeneralHospital", Tier::Large),
            ("SpecialHospital", Tier::Standard),
            ("Institute", Tier::Standard),
            ("PrimaryCare", Tier::Standard),
            ("EmergencyCare", Tier::Standard),
            ("OccupationalHealth", Tier::Small),
            ("Polyclinic", Tier::Small),
            ("Laboratory", Tier::Small),
            ("Pharmacy", Tier::Small),
            ("DentalPractice", Tier::Small),
        ];
        let schedules = [
            (2, "0 * * * *"),
            (4, "0 */2 * * *"),
            (8, "0 */4 * * *"),
            (12, "0 */6 * * *"),
            (24, "0 */12 * * *"),
            (168, "0 2 * * *"),
        ];
        let services = [
            ("e-recept", "e-prescription"),
            ("e-uput", "e-referral"),
            ("e-bolovanje", "e-sick-leave"),
            ("e-zk", "e-health-card"),
            ("izis", "e-health-record"),
        ];
        Self {
            tier_by_kind: kinds.iter().map(|(k, t)| (k.to_string(), *t)).collect(),
            storage_factor: 1.5,
            minimum_storage_gi: 10,
            backup_schedules: schedules
                .iter()
                .map(|(hours, schedule)| BackupSchedule {
                    max_rpo_hours: *hours,
                    schedule: schedule.to_string(),
                })
                .collect(),
            national_services: services
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            viewers: vec!["sdc-sre".into()],
            migration: default_migration(),
        }
    }
}
