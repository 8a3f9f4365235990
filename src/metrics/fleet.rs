//! The fleet's series: for each HealthSystem its readiness, phase, conditions, backups,
//! drills, what it is and its migration. Each system is one small record, turned into series
//! when Prometheus scrapes. As prometheus' labelled vectors they held a copy of each metric's
//! name and help text per series (5.7 KB per system in heaptrack, most of what the operator
//! kept per system after its caches), and replacing a system's info or migration series
//! went through every system's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

use crate::api::{MigrationPhase, Phase};
use crate::metrics::names::PREFIX;

/// Every phase as exposed, each with a series (1 for the current one).
const PHASES: [(Phase, &str); 5] = [
    (Phase::Pending, "Pending"),
    (Phase::Provisioning, "Provisioning"),
    (Phase::Ready, "Ready"),
    (Phase::Degraded, "Degraded"),
    (Phase::Deleting, "Deleting"),
];

/// What is exposed of one system. A value that was seen once stays until a newer one (a
/// status without it does not take the series away); a system's series go with the system.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub ready: bool,
    pub phase: Option<Phase>,
    /// Condition type and whether it is True.
    pub conditions: Vec<(Box<str>, bool)>,
    pub backup_last_success: Option<f64>,
    pub backup_rpo: f64,
    pub backup_last_size: Option<f64>,
    /// How long the newest backup in the store took.
    pub backup_last_duration: Option<f64>,
    /// When the backup that is running started (none while none runs).
    pub backup_running_since: Option<f64>,
    /// The earliest time the WAL archive can recover to (none without an archive).
    pub archive_recoverable_from: Option<f64>,
    pub drill_last_success: Option<f64>,
    pub drill_passed: Option<bool>,
    pub drill_duration: Option<f64>,
    /// The physical drills' (WAL archive), as the logical drills' above.
    pub physical_drill_last_success: Option<f64>,
    pub physical_drill_passed: Option<bool>,
    pub physical_drill_duration: Option<f64>,
    /// BackupReady is False for want of a recent proof only.
    pub backup_unverified: bool,
    pub namespace: Box<str>,
    pub tier: Box<str>,
    pub ownership: Box<str>,
    pub migration: Option<Migration>,
    /// When the HealthSystem was created (Unix seconds).
    pub created: Option<f64>,
    /// PostgreSQL instances wanted and ready (CloudNativePG engine).
    pub instances: Option<(i32, i32)>,
    /// The current primary's pod (CloudNativePG engine).
    pub primary: Option<Box<str>>,
    /// Changes of primary this process has seen (failovers and switchovers).
    pub primary_changes: u64,
}

/// A system's migration as exposed.
#[derive(Clone, Debug, PartialEq)]
pub struct Migration {
    /// Its wave (from the onboarding label; empty without one).
    pub wave: Box<str>,
    pub phase: MigrationPhase,
    /// When it entered this phase (Unix seconds).
    pub since: f64,
}

impl Record {
    /// Sets a condition's state, keeping the others.
    pub fn condition(&mut self, type_: &str, status: bool) {
        match self.conditions.iter_mut().find(|(t, _)| &**t == type_) {
            Some(slot) => slot.1 = status,
            None => self.conditions.push((type_.into(), status)),
        }
    }
}

/// The families, in the order of [`Fleet::descs`]: name, help, label names (sorted, as the
/// exposition writes them).
const FAMILIES: [(&str, &str, &[&str]); 23] = [
    (
        "ready",
        "1 when the HealthSystem is Ready, 0 otherwise.",
        &["healthsystem"],
    ),
    (
        "phase",
        "1 for the HealthSystem's current phase, 0 for the others.",
        &["healthsystem", "phase"],
    ),
    (
        "condition",
        "1 when the condition is True, 0 otherwise.",
        &["condition", "healthsystem"],
    ),
    (
        "backup_last_success_timestamp_seconds",
        "Completion time of the last successful backup (Unix seconds).",
        &["healthsystem"],
    ),
    (
        "backup_rpo_seconds",
        "The recovery point objective: the oldest a last successful backup may be.",
        &["healthsystem"],
    ),
    (
        "backup_last_size_bytes",
        "Bytes stored of the newest backup in the object store (encrypted), from its manifest.",
        &["healthsystem"],
    ),
    (
        "backup_drill_last_success_timestamp_seconds",
        "Start of the last restore drill that passed (Unix seconds).",
        &["healthsystem"],
    ),
    (
        "backup_drill_passed",
        "1 when the last restore drill passed, 0 when it failed (no series before the first drill).",
        &["healthsystem"],
    ),
    (
        "backup_drill_duration_seconds",
        "How long the last restore drill took.",
        &["healthsystem"],
    ),
    (
        "info",
        "Always 1: where a HealthSystem lives and what it is (namespace, tier, ownership).",
        &["healthsystem", "namespace", "ownership", "tier"],
    ),
    (
        "migration_phase",
        "1 for the current phase of a HealthSystem's migration, 0 for the others; wave from its sdc.gov.rs/migration-wave label.",
        &["healthsystem", "phase", "wave"],
    ),
    (
        "migration_phase_since_timestamp_seconds",
        "When the migration entered its current phase (Unix seconds); one series, for the current phase.",
        &["healthsystem", "phase"],
    ),
    (
        "created_timestamp_seconds",
        "When the HealthSystem was created (Unix seconds): a system none of whose drills passed is overdue from then.",
        &["healthsystem"],
    ),
    (
        "database_instances",
        "PostgreSQL instances a system's CloudNativePG Cluster wants.",
        &["healthsystem"],
    ),
    (
        "database_ready_instances",
        "PostgreSQL instances of a system's CloudNativePG Cluster that are ready.",
        &["healthsystem"],
    ),
    (
        "database_primary_changes_total",
        "Changes of a system's primary (failovers and switchovers) seen since the operator started.",
        &["healthsystem"],
    ),
    (
        "backup_last_duration_seconds",
        "How long the newest backup in the object store took, from its start to its verified upload.",
        &["healthsystem"],
    ),
    (
        "backup_running_since_timestamp_seconds",
        "When the backup that is running started (Unix seconds); no series while none runs.",
        &["healthsystem"],
    ),
    (
        "backup_archive_first_recoverability_timestamp_seconds",
        "The earliest time a system's WAL archive recovers to (Unix seconds); no series without an archive holding a base backup.",
        &["healthsystem"],
    ),
    (
        "backup_physical_drill_last_success_timestamp_seconds",
        "Start of the last physical drill that passed (Unix seconds): its latest base backup and WAL recovered to the archive's end.",
        &["healthsystem"],
    ),
    (
        "backup_physical_drill_passed",
        "1 when the last physical drill passed, 0 when it failed (no series before the first).",
        &["healthsystem"],
    ),
    (
        "backup_physical_drill_duration_seconds",
        "How long the last physical drill took, from its Cluster's creation to its check's end.",
        &["healthsystem"],
    ),
    (
        "backup_unverified",
        "1 while BackupReady is False only because no restore drill has proven the backups recently (BackupUnverified), 0 otherwise.",
        &["healthsystem"],
    ),
];

/// The families that count (the others are gauges).
const COUNTERS: [&str; 1] = ["database_primary_changes_total"];

/// The record of every system, shared by the reconciles that write it and the scrapes that
/// read it.
#[derive(Clone)]
pub struct Fleet {
    systems: Arc<RwLock<BTreeMap<Box<str>, Record>>>,
    descs: Arc<Vec<Desc>>,
}

impl Default for Fleet {
    fn default() -> Self {
        let descs = FAMILIES
            .iter()
            .map(|(name, help, labels)| {
                // Names and labels are constants (a unit test exposes them all).
                Desc::new(
                    format!("{PREFIX}_{name}"),
                    (*help).to_string(),
                    labels.iter().map(|l| (*l).to_string()).collect(),
                    HashMap::new(),
                )
                .unwrap_or_else(|e| panic!("invalid metric definition {name}: {e}"))
            })
            .collect();
        Self {
            systems: Arc::default(),
            descs: Arc::new(descs),
        }
    }
}

impl Fleet {
    /// Changes the record of `name` (a new one starts empty).
    pub fn update(&self, name: &str, change: impl FnOnce(&mut Record)) {
        let mut systems = self.systems.write().unwrap_or_else(|e| e.into_inner());
        match systems.get_mut(name) {
            Some(record) => change(record),
            None => {
                let mut record = Record::default();
                change(&mut record);
                systems.insert(name.into(), record);
            }
        }
    }

    /// Takes every series of `name` away.
    pub fn remove(&self, name: &str) {
        let mut systems = self.systems.write().unwrap_or_else(|e| e.into_inner());
        systems.remove(name);
    }
}

/// One gauge sample with its labels (given in the family's label order).
fn sample(labels: &[&str], values: &[&str], value: f64) -> Metric {
    let pairs = labels
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_string());
            pair.set_value((*value).to_string());
            pair
        })
        .collect();
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::default();
    metric.set_label(pairs);
    metric.set_gauge(gauge);
    metric
}

fn flag(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

impl Collector for Fleet {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut samples: Vec<Vec<Metric>> = vec![Vec::new(); FAMILIES.len()];
        let systems = self.systems.read().unwrap_or_else(|e| e.into_inner());
        for (name, r) in systems.iter() {
            let name: &str = name;
            let mut push = |family: usize, values: &[&str], value: f64| {
                samples[family].push(sample(FAMILIES[family].2, values, value));
            };
            push(0, &[name], flag(r.ready));
            for (phase, label) in PHASES {
                push(1, &[name, label], flag(r.phase == Some(phase)));
            }
            for (type_, status) in &r.conditions {
                push(2, &[type_, name], flag(*status));
            }
            if let Some(time) = r.backup_last_success {
                push(3, &[name], time);
            }
            push(4, &[name], r.backup_rpo);
            if let Some(size) = r.backup_last_size {
                push(5, &[name], size);
            }
            if let Some(time) = r.drill_last_success {
                push(6, &[name], time);
            }
            if let Some(passed) = r.drill_passed {
                push(7, &[name], flag(passed));
            }
            if let Some(seconds) = r.drill_duration {
                push(8, &[name], seconds);
            }
            push(9, &[name, &r.namespace, &r.ownership, &r.tier], 1.0);
            if let Some(migration) = &r.migration {
                for phase in MigrationPhase::ALL {
                    push(
                        10,
                        &[name, phase.as_str(), &migration.wave],
                        flag(phase == migration.phase),
                    );
                }
                push(11, &[name, migration.phase.as_str()], migration.since);
            }
            if let Some(time) = r.created {
                push(12, &[name], time);
            }
            if let Some((wanted, ready)) = r.instances {
                push(13, &[name], f64::from(wanted));
                push(14, &[name], f64::from(ready));
            }
            if r.primary.is_some() {
                push(15, &[name], r.primary_changes as f64);
            }
            if let Some(seconds) = r.backup_last_duration {
                push(16, &[name], seconds);
            }
            if let Some(time) = r.backup_running_since {
                push(17, &[name], time);
            }
            if let Some(time) = r.archive_recoverable_from {
                push(18, &[name], time);
            }
            if let Some(time) = r.physical_drill_last_success {
                push(19, &[name], time);
            }
            if let Some(passed) = r.physical_drill_passed {
                push(20, &[name], flag(passed));
            }
            if let Some(seconds) = r.physical_drill_duration {
                push(21, &[name], seconds);
            }
            push(22, &[name], flag(r.backup_unverified));
        }
        drop(systems);
        self.descs
            .iter()
            .zip(FAMILIES)
            .zip(samples)
            .filter(|(_, samples)| !samples.is_empty())
            .map(|((desc, (name, _, _)), mut samples)| {
                let mut family = MetricFamily::default();
                family.set_name(desc.fq_name.clone());
                family.set_help(desc.help.clone());
                if COUNTERS.contains(&name) {
                    family.set_field_type(MetricType::COUNTER);
                    for metric in &mut samples {
                        let mut counter = prometheus::proto::Counter::default();
                        counter.set_value(metric.get_gauge().get_value());
                        metric.set_counter(counter);
                    }
                } else {
                    family.set_field_type(MetricType::GAUGE);
                }
                *family.mut_metric() = samples;
                family
            })
            .collect()
    }
}
