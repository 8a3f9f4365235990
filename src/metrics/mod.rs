//! The operator's Prometheus metrics, in one registry: what the operator does (reconciles,
//! errors by category, durations, work in flight, objects written) and the state of the fleet
//! (one series per HealthSystem: readiness, phase, conditions, backups against the RPO).
//! Label values are bounded: a system's name, a phase, a condition type, an error category;
//! never an error's text.

use std::time::Instant;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::api::{HealthSystem, HealthSystemStatus};

mod fleet;
pub mod names;

pub use names::{MIGRATION_WAVE, PREFIX};

/// The operator's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles started.
    pub reconciliations: IntCounter,
    /// Failed reconciles by error category.
    pub errors: IntCounterVec,
    /// Duration of reconciles.
    pub duration: Histogram,
    /// Reconciles running now.
    pub in_flight: IntGauge,
    /// Objects created or changed on the API server, by kind.
    pub writes: IntCounterVec,
    /// Whether the operator has loaded its caches and reconciles.
    pub up: Gauge,
    /// Whether the API server answered the last probe.
    pub api_reachable: Gauge,
    /// Requests the operator sent to the API server, by verb.
    pub api_requests: IntCounterVec,
    /// 1 while this replica holds the leader Lease (always 1 without leader election).
    pub leader: IntGauge,
    /// One record per system (`fleet.rs`).
    fleet: fleet::Fleet,
    /// How long an import may run before the fleet's alert calls it stuck (from the
    /// operator's configuration).
    pub migration_import_stuck_after: Gauge,
    database_restarts: IntGaugeVec,
    /// The bound on restarts under way (operator configuration).
    pub database_restarts_max: IntGauge,
    /// How old a system's last successful restore drill may be (operator configuration;
    /// +Inf when no drills run: no object store, or drills disabled).
    pub drill_max_age: Gauge,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("{PREFIX}_{name}"), help)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciliations = must(IntCounter::with_opts(opts(
            "operator_reconciliations_total",
            "Reconciles started.",
        )));
        let errors = must(IntCounterVec::new(
            opts(
                "operator_reconcile_errors_total",
                "Failed reconciles by error category.",
            ),
            &["category"],
        ));
        let duration = must(Histogram::with_opts(
            HistogramOpts::new(
                format!("{PREFIX}_operator_reconcile_duration_seconds"),
                "Duration of reconciles.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        ));
        let in_flight = must(IntGauge::with_opts(opts(
            "operator_reconciles_in_flight",
            "Reconciles running now.",
        )));
        let writes = must(IntCounterVec::new(
            opts(
                "operator_object_writes_total",
                "Objects created or changed on the API server, by kind.",
            ),
            &["kind"],
        ));
        let api_requests = must(IntCounterVec::new(
            opts(
                "operator_api_requests_total",
                "Requests sent to the Kubernetes API server, by verb (get, list, watch, create, patch, update, delete).",
            ),
            &["verb"],
        ));
        let leader = must(IntGauge::with_opts(opts(
            "operator_leader",
            "1 while this replica reconciles (holds the leader Lease, or runs without leader election).",
        )));
        let up = must(Gauge::with_opts(opts(
            "operator_ready",
            "1 when the operator serves its role: the leader once its caches are loaded, or a standby waiting for leadership.",
        )));
        let api_reachable = must(Gauge::with_opts(opts(
            "operator_api_server_reachable",
            "1 when the API server answered the operator's last readiness probe (every 3 s), 0 while it is unreachable.",
        )));
        let migration_import_stuck_after = must(Gauge::with_opts(opts(
            "migration_import_stuck_after_seconds",
            "How long an import may run before it is reported stuck (operator configuration).",
        )));
        let database_restarts = must(IntGaugeVec::new(
            opts(
                "database_restarts",
                "Databases being restarted onto a new pod template (state in_progress) and waiting for a restart slot (state pending), across the fleet.",
            ),
            &["state"],
        ));
        let database_restarts_max = must(IntGauge::with_opts(opts(
            "database_restarts_max",
            "How many databases may restart at once (operator configuration rollout.maxDatabaseRestarts).",
        )));
        let drill_max_age = must(Gauge::with_opts(opts(
            "backup_drill_max_age_seconds",
            "How old a last successful restore drill may be (operator configuration backup.drills.maxAgeHours).",
        )));
        let metrics = Self {
            fleet: fleet::Fleet::default(),
            drill_max_age,
            registry,
            reconciliations,
            errors,
            duration,
            in_flight,
            writes,
            up,
            api_reachable,
            api_requests,
            leader,
            migration_import_stuck_after,
            database_restarts,
            database_restarts_max,
        };
        metrics.register();
        metrics
    }

    fn register(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.reconciliations.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.duration.clone()),
            Box::new(self.in_flight.clone()),
            Box::new(self.writes.clone()),
            Box::new(self.up.clone()),
            Box::new(self.api_reachable.clone()),
            Box::new(self.api_requests.clone()),
            Box::new(self.leader.clone()),
            Box::new(self.migration_import_stuck_after.clone()),
            Box::new(self.database_restarts.clone()),
            Box::new(self.database_restarts_max.clone()),
            Box::new(self.drill_max_age.clone()),
            Box::new(self.fleet.clone()),
        ];
        for collector in collectors {
            // Names are unique constants: registration cannot collide.
            let _ = self.registry.register(collector);
        }
        let _ = self.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
    }

    /// Counts one request to the API server.
    pub fn count_request(&self, method: &str, query: Option<&str>) {
        let query = query.unwrap_or_default();
        let verb = match method {
            "GET" if crate::controller::runtime::in_flight::is_watch(Some(query)) => "watch",
            "GET"
                if query.contains("labelSelector=")
                    || query.contains("limit=")
                    || query.contains("fieldSelector=") =>
            {
                "list"
            }
            "GET" => "get",
            "POST" => "create",
            "PATCH" => "patch",
            "PUT" => "update",
            "DELETE" => "delete",
            _ => "other",
        };
        self.api_requests.with_label_values(&[verb]).inc();
    }

    /// Starts timing a reconcile; the guard records its duration when dropped.
    pub fn reconcile_started(&self) -> ReconcileTimer {
        self.reconciliations.inc();
        self.in_flight.inc();
        ReconcileTimer {
            metrics: self.clone(),
            start: Instant::now(),
        }
    }

    /// Publishes the fleet's database restarts under way and waiting.
    pub fn set_restarts(&self, in_progress: usize, pending: usize) {
        for (state, count) in [("in_progress", in_progress), ("pending", pending)] {
            self.database_restarts
                .with_label_values(&[state])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Publishes the state of one system.
    pub fn set_system(&self, system: &HealthSystem, status: &HealthSystemStatus, rpo_seconds: f64) {
        let name = system.metadata.name.as_deref().unwrap_or_default();
        let backup = status.backup.as_ref();
        let wave = system
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MIGRATION_WAVE))
            .map(String::as_str)
            .unwrap_or_default();
        self.fleet.update(name, |record| {
            record.ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            record.phase = status.phase;
            for condition in &status.conditions {
                record.condition(&condition.type_, condition.status == "True");
            }
            record.backup_unverified = status.conditions.iter().any(|c| {
                c.type_ == "BackupReady" && c.reason == crate::controller::status::BACKUP_UNVERIFIED
            });
            if let Some(time) = backup.and_then(|b| b.last_successful_time.as_ref()) {
                record.backup_last_success = Some(time.0.as_second() as f64);
            }
            record.backup_rpo = rpo_seconds;
            if let Some(last) = backup.and_then(|b| b.last_backup.as_ref()) {
                record.backup_last_size = Some(last.size as f64);
                if let Some(seconds) = last.duration_seconds {
                    record.backup_last_duration = Some(seconds as f64);
                }
            }
            // Unlike the others, these go with what they describe.
            record.archive_recoverable_from = backup
                .and_then(|b| b.archive.as_ref())
                .and_then(|a| a.first_recoverability_point.as_ref())
                .map(|t| t.0.as_second() as f64);
            record.backup_running_since = backup
                .and_then(|b| b.running_since.as_ref())
                .map(|t| t.0.as_second() as f64);
            if let Some(time) = backup.and_then(|b| b.last_successful_drill_time.as_ref()) {
                record.drill_last_success = Some(time.0.as_second() as f64);
            }
            if let Some(drill) = backup.and_then(|b| b.last_drill.as_ref()) {
                record.drill_passed = Some(drill.result == "Passed");
                record.drill_duration = Some(drill.duration_seconds as f64);
            }
            record.physical_drill_last_success = backup
                .and_then(|b| b.last_successful_physical_drill_time.as_ref())
                .map(|t| t.0.as_second() as f64);
            if let Some(drill) = backup.and_then(|b| b.last_physical_drill.as_ref()) {
                record.physical_drill_passed = Some(drill.result == "Passed");
                record.physical_drill_duration = Some(drill.duration_seconds as f64);
            }
            record.namespace = status.namespace.as_deref().unwrap_or_default().into();
            record.tier = format!("{:?}", system.spec.tier).into();
            record.ownership = format!("{:?}", system.spec.institution.ownership).into();
            record.migration = status.migration.as_ref().map(|m| fleet::Migration {
                wave: wave.into(),
                phase: m.phase,
                since: m.last_transition_time.0.as_second() as f64,
            });
            record.created = system
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second() as f64);
            if let Some(database) = &status.database {
                if let (Some(wanted), Some(ready)) = (database.instances, database.ready_instances)
                {
                    record.instances = Some((wanted, ready));
                }
                if let Some(primary) = database.primary.as_deref() {
                    if record.primary.as_deref().is_some_and(|old| old != primary) {
                        record.primary_changes += 1;
                    }
                    record.primary = Some(primary.into());
                }
            }
        });
    }

    /// Removes every series of a deleted system.
    pub fn remove_system(&self, name: &str) {
        self.fleet.remove(name);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if encoder
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Metric construction only fails on invalid names and labels, which are constants here (and
/// a unit test builds them all).
fn must<T>(metric: Result<T, prometheus::Error>) -> T {
    match metric {
        Ok(metric) => metric,
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

/// Records a reconcile's duration and ends its in-flight count when dropped.
pub struct ReconcileTimer {
    metrics: Metrics,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
        self.metrics
            .duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposed_names_are_the_documented_ones() {
        let metrics = Metrics::new();
        metrics.errors.with_label_values(&["api_error"]).inc();
        metrics.writes.with_label_values(&["Namespace"]).inc();
        let text = metrics.render();
        for name in [
            "healthsystem_operator_reconciliations_total",
            "healthsystem_operator_reconcile_errors_total",
            "healthsystem_operator_reconcile_duration_seconds_bucket",
            "healthsystem_operator_reconciles_in_flight",
            "healthsystem_operator_object_writes_total",
            "healthsystem_operator_ready",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    fn system(name: &str, tier: &str, wave: &str) -> HealthSystem {
        crate::api::validation::validate(&serde_json::json!({
            "apiVersion": "sdc.gov.rs/v1alpha1",
            "kind": "HealthSystem",
            "metadata": { "name": name, "labels": { MIGRATION_WAVE: wave },
                          "creationTimestamp": "2026-01-01T00:00:00Z" },
            "spec": {
                "tier": tier,
                "institution": { "displayName": "A", "registryId": "07151950", "ownership": "Private" },
                "database": { "version": "16", "storage": "10Gi" },
                "backup": { "rpo": "24h" }
            }
        }))
        .unwrap()
    }

    fn status(phase: &str, migration: &str) -> HealthSystemStatus {
        serde_json::from_value(serde_json::json!({
            "phase": phase,
            "namespace": "hs-a",
            "conditions": [
                { "type": "Ready", "status": "True", "reason": "R", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" },
                { "type": "BackupReady", "status": "False", "reason": "R", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" }
            ],
            "backup": {
                "lastSuccessfulTime": "2026-01-01T00:00:10Z",
                "lastBackup": { "id": "b", "finishedAt": "2026-01-01T00:00:10Z", "size": 2048, "tables": 1, "rows": 1, "durationSeconds": 600 },
                "lastSuccessfulDrillTime": "2026-01-01T00:00:20Z",
                "lastDrill": { "time": "2026-01-01T00:00:20Z", "durationSeconds": 42, "result": "Passed" },
                "lastSuccessfulPhysicalDrillTime": "2026-01-01T00:00:40Z",
                "lastPhysicalDrill": { "time": "2026-01-01T00:01:40Z", "durationSeconds": 95, "result": "Failed", "reason": "RecoveryEndedEarly" }
            },
            "migration": { "phase": migration, "attempt": 1, "reason": "R", "lastTransitionTime": "2026-01-01T00:00:30Z" }
        }))
        .unwrap()
    }

    /// The series of the system `name`, as exposed, in order.
    fn series(metrics: &Metrics, name: &str) -> Vec<String> {
        let label = format!("healthsystem=\"{name}\"");
        let mut lines: Vec<String> = metrics
            .render()
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(&label))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    /// What a dashboard reads of one system, exactly; a second system's series stay apart,
    /// a changed tier or migration phase replaces its series, and a deleted system leaves none.
    #[test]
    fn a_system_is_exposed_as_its_status_says() {
        let metrics = Metrics::new();
        let a = system("a", "Standard", "2");
        metrics.set_system(&a, &status("Ready", "Importing"), 86400.0);
        metrics.set_system(
            &system("b", "Large", "1"),
            &status("Degraded", "Pending"),
            3600.0,
        );
        assert_eq!(
            series(&metrics, "a"),
            [
                r#"healthsystem_backup_drill_duration_seconds{healthsystem="a"} 42"#,
                r#"healthsystem_backup_drill_last_success_timestamp_seconds{healthsystem="a"} 1767225620"#,
                r#"healthsystem_backup_drill_passed{healthsystem="a"} 1"#,
                r#"healthsystem_backup_last_duration_seconds{healthsystem="a"} 600"#,
                r#"healthsystem_backup_last_size_bytes{healthsystem="a"} 2048"#,
                r#"healthsystem_backup_last_success_timestamp_seconds{healthsystem="a"} 1767225610"#,
                r#"healthsystem_backup_physical_drill_duration_seconds{healthsystem="a"} 95"#,
                r#"healthsystem_backup_physical_drill_last_success_timestamp_seconds{healthsystem="a"} 1767225640"#,
                r#"healthsystem_backup_physical_drill_passed{healthsystem="a"} 0"#,
                r#"healthsystem_backup_rpo_seconds{healthsystem="a"} 86400"#,
                r#"healthsystem_backup_unverified{healthsystem="a"} 0"#,
                r#"healthsystem_condition{condition="BackupReady",healthsystem="a"} 0"#,
                r#"healthsystem_condition{condition="Ready",healthsystem="a"} 1"#,
                r#"healthsystem_created_timestamp_seconds{healthsystem="a"} 1767225600"#,
                r#"healthsystem_info{healthsystem="a",namespace="hs-a",ownership="Private",tier="Standard"} 1"#,
                r#"healthsystem_migration_phase_since_timestamp_seconds{healthsystem="a",phase="Importing"} 1767225630"#,
                r#"healthsystem_migration_phase{healthsystem="a",phase="AwaitingCutover",wave="2"} 0"#,
                r#"healthsystem_migration_phase{healthsystem="a",phase="CutOver",wave="2"} 0"#,
                r#"healthsystem_migration_phase{healthsystem="a",phase="Failed",wave="2"} 0"#,
                r#"healthsystem_migration_phase{healthsystem="a",phase="Importing",wave="2"} 1"#,
                r#"healthsystem_migration_phase{healthsystem="a",phase="Pending",wave="2"} 0"#,
                r#"healthsystem_migration_phase{healthsystem="a",phase="Verifying",wave="2"} 0"#,
                r#"healthsystem_phase{healthsystem="a",phase="Degraded"} 0"#,
                r#"healthsystem_phase{healthsystem="a",phase="Deleting"} 0"#,
                r#"healthsystem_phase{healthsystem="a",phase="Pending"} 0"#,
                r#"healthsystem_phase{healthsystem="a",phase="Provisioning"} 0"#,
                r#"healthsystem_phase{healthsystem="a",phase="Ready"} 1"#,
                r#"healthsystem_ready{healthsystem="a"} 1"#,
            ]
        );

        let moved = system("a", "Large", "2");
        metrics.set_system(&moved, &status("Ready", "Verifying"), 86400.0);
        let now = series(&metrics, "a");
        let of = |family: &str| -> Vec<&String> {
            now.iter()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .collect()
        };
        assert_eq!(
            of("healthsystem_info"),
            [
                r#"healthsystem_info{healthsystem="a",namespace="hs-a",ownership="Private",tier="Large"} 1"#
            ]
        );
        assert_eq!(
            of("healthsystem_migration_phase_since_timestamp_seconds"),
            [
                r#"healthsystem_migration_phase_since_timestamp_seconds{healthsystem="a",phase="Verifying"} 1767225630"#
            ]
        );

        metrics.remove_system("a");
        assert_eq!(series(&metrics, "a"), Vec::<String>::new());
        assert_eq!(
            series(&metrics, "b").len(),
            28,
            "the other system is untouched"
        );
    }

    /// A backup that is running shows when it started, for the alert on a run far longer than
    /// the last good one; its series goes when the run ends.
    #[test]
    fn a_running_backup_is_exposed_until_it_ends() {
        let metrics = Metrics::new();
        let a = system("a", "Standard", "2");
        let mut running = status("Ready", "Importing");
        running.backup.as_mut().unwrap().running_since =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T02:00:00Z".parse().unwrap(),
            ));
        metrics.set_system(&a, &running, 86400.0);
        let since = |metrics: &Metrics| {
            series(metrics, "a")
                .into_iter()
                .filter(|l| l.starts_with("healthsystem_backup_running_since"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            since(&metrics),
            [r#"healthsystem_backup_running_since_timestamp_seconds{healthsystem="a"} 1767232800"#]
        );
        metrics.set_system(&a, &status("Ready", "Importing"), 86400.0);
        assert_eq!(since(&metrics), Vec::<String>::new());
    }

    /// Backups that only wait for a drill to prove them are told apart from missing ones, so
    /// the critical alert leaves them to the drills' own.
    #[test]
    fn backups_waiting_for_their_proof_are_exposed_as_unverified() {
        let metrics = Metrics::new();
        let a = system("a", "Standard", "2");
        let mut unproven = status("Ready", "Importing");
        unproven.conditions[1].reason = crate::controller::status::BACKUP_UNVERIFIED.into();
        metrics.set_system(&a, &unproven, 86400.0);
        let unverified = |metrics: &Metrics| {
            series(metrics, "a")
                .into_iter()
                .filter(|l| l.starts_with("healthsystem_backup_unverified"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            unverified(&metrics),
            [r#"healthsystem_backup_unverified{healthsystem="a"} 1"#]
        );
        metrics.set_system(&a, &status("Ready", "Importing"), 86400.0);
        assert_eq!(
            unverified(&metrics),
            [r#"healthsystem_backup_unverified{healthsystem="a"} 0"#]
        );
    }

    /// A system on CloudNativePG: its instances, and each change of primary counted.
    #[test]
    fn instances_and_primary_changes_are_exposed() {
        let metrics = Metrics::new();
        let a = system("a", "Standard", "");
        let on = |primary: &str, ready: i32| {
            let mut status = status("Ready", "Importing");
            status.migration = None;
            status.database = Some(crate::api::DatabaseStatus {
                instances: Some(2),
                ready_instances: Some(ready),
                primary: Some(primary.into()),
                ..Default::default()
            });
            status
        };
        metrics.set_system(&a, &on("postgres-1", 2), 86400.0);
        metrics.set_system(&a, &on("postgres-1", 2), 86400.0);
        let families = |metrics: &Metrics| -> Vec<String> {
            series(metrics, "a")
                .into_iter()
                .filter(|l| l.starts_with("healthsystem_database_"))
                .collect()
        };
        assert_eq!(
            families(&metrics),
            [
                r#"healthsystem_database_instances{healthsystem="a"} 2"#,
                r#"healthsystem_database_primary_changes_total{healthsystem="a"} 0"#,
                r#"healthsystem_database_ready_instances{healthsystem="a"} 2"#,
            ]
        );
        metrics.set_system(&a, &on("postgres-2", 1), 86400.0);
        assert_eq!(
            families(&metrics),
            [
                r#"healthsystem_database_instances{healthsystem="a"} 2"#,
                r#"healthsystem_database_primary_changes_total{healthsystem="a"} 1"#,
                r#"healthsystem_database_ready_instances{healthsystem="a"} 1"#,
            ]
        );
        assert!(
            metrics
                .render()
                .contains("# TYPE healthsystem_database_primary_changes_total counter")
        );
    }

    #[test]
    fn a_timer_counts_in_flight_and_duration() {
        let metrics = Metrics::new();
        {
            let _timer = metrics.reconcile_started();
            assert_eq!(metrics.in_flight.get(), 1);
        }
        assert_eq!(metrics.in_flight.get(), 0);
        assert_eq!(metrics.duration.get_sample_count(), 1);
    }
}
