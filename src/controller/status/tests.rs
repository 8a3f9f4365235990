//! Status rules on inline manifests.

use super::*;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::runtime::events::EventType;
use serde_json::json;

use crate::api::validation::validate;
use crate::controller::status::condition::VERSION_REFUSED;

fn system(rpo: &str, created: Timestamp) -> HealthSystem {
    let mut system = validate(&json!({
        "apiVersion": "sdc.gov.rs/v1alpha1",
        "kind": "HealthSystem",
        "metadata": { "name": "dz-test" },
        "spec": {
            "institution": { "displayName": "DZ", "registryId": "07151950", "ownership": "Public" },
            "database": { "version": "16", "storage": "10Gi" },
            "backup": { "rpo": rpo }
        }
    }))
    .unwrap();
    system.metadata.creation_timestamp = Some(Time(created));
    system.metadata.generation = Some(3);
    system
}

fn healthy() -> Observed {
    Observed {
        namespace_phase: Some("Active".into()),
        database_ready_replicas: 1,
        claim_phase: Some("Bound".into()),
        credentials_exist: true,
        credentials_complete: true,
        monitoring_api: true,
        ..Observed::default()
    }
}

fn get<'a>(status: &'a HealthSystemStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

const HOUR: i64 = 3600;

#[test]
fn a_healthy_new_system_is_ready_awaiting_its_first_backup() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let status = evaluate(&system("24h", now), &healthy(), now);
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(get(&status, types::READY).status, "True");
    assert_eq!(get(&status, types::BACKUP).reason, "AwaitingFirstBackup");
    assert_eq!(status.observed_generation, Some(3));
}

#[test]
fn a_backup_older_than_the_rpo_makes_the_system_degraded() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let created = Timestamp::from_second(10 * HOUR).unwrap();
    let mut observed = healthy();
    observed.last_success = Some(Timestamp::from_second(100 * HOUR - 9 * HOUR).unwrap());
    let status = evaluate(&system("8h", created), &observed, now);
    assert_eq!(get(&status, types::BACKUP).reason, "BackupStale");
    assert_eq!(get(&status, types::READY).status, "False");
    assert_eq!(status.phase, Some(Phase::Degraded));

    observed.last_success = Some(Timestamp::from_second(100 * HOUR - 7 * HOUR).unwrap());
    let status = evaluate(&system("8h", created), &observed, now);
    assert_eq!(get(&status, types::BACKUP).reason, "BackupFresh");
    assert_eq!(
        next_backup_deadline(&system("8h", created), &observed, now),
        Some(Duration::from_secs(HOUR as u64 + 1))
    );
}

#[test]
fn an_unknown_storage_class_is_explained() {
    let now = Timestamp::from_second(HOUR).unwrap();
    let mut observed = healthy();
    observed.claim_phase = Some("Pending".into());
    observed.missing_storage_class = Some("gold".into());
    let status = evaluate(&system("24h", now), &observed, now);
    let db = get(&status, types::DATABASE);
    assert_eq!(db.reason, "StorageClassNotFound");
    assert!(db.message.contains("\"gold\""));
    assert_eq!(get(&status, types::READY).reason, "StorageClassNotFound");
    assert_eq!(status.phase, Some(Phase::Degraded));
}

#[test]
fn missing_monitoring_api_is_reported_but_does_not_block_readiness() {
    let now = Timestamp::from_second(HOUR).unwrap();
    let mut observed = healthy();
    observed.monitoring_api = false;
    let status = evaluate(&system("24h", now), &observed, now);
    assert_eq!(
        get(&status, types::MONITORING).reason,
        "MonitoringAPIUnavailable"
    );
    assert_eq!(status.phase, Some(Phase::Ready));
}

#[test]
fn merge_keeps_transition_times_unless_the_status_flips() {
    let t1 = Timestamp::from_second(HOUR).unwrap();
    let t2 = Timestamp::from_second(2 * HOUR).unwrap();
    let system = system("24h", t1);
    let first = evaluate(&system, &healthy(), t1);
    let again = merge(Some(&first), evaluate(&system, &healthy(), t2));
    assert_eq!(
        again, first,
        "nothing changed: identical status, so no write"
    );

    let mut down = healthy();
    down.database_ready_replicas = 0;
    let flipped = merge(Some(&first), evaluate(&system, &down, t2));
    assert_eq!(get(&flipped, types::DATABASE).last_transition_time.0, t2);
    assert_eq!(get(&flipped, types::NAMESPACE).last_transition_time.0, t1);
}

/// A NetworkPolicy or RoleBinding the operator did not make is named in status and the
/// system is not Ready: an allow-all policy made by a tenant left a system Ready with
/// NetworkIsolated=True while its database was open to the cluster.
#[test]
fn foreign_policies_and_bindings_are_named_and_the_system_is_degraded() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let mut system = system("24h", now);
    let healthy_status = evaluate(&system, &healthy(), now);
    assert_eq!(get(&healthy_status, types::ACCESS).status, "True");
    system.status = Some(healthy_status);
    let observed = Observed {
        foreign_policies: vec!["allow-all".into()],
        foreign_bindings: vec!["break-glass".into()],
        ..healthy()
    };
    let status = evaluate(&system, &observed, now);
    let network = get(&status, types::NETWORK);
    assert_eq!(
        (network.status.as_str(), network.reason.as_str()),
        ("False", FOREIGN_NETWORK_POLICY)
    );
    assert!(network.message.contains("allow-all"), "{network:?}");
    let access = get(&status, types::ACCESS);
    assert_eq!(
        (access.status.as_str(), access.reason.as_str()),
        ("False", FOREIGN_ROLE_BINDING)
    );
    assert!(access.message.contains("break-glass"), "{access:?}");
    assert_eq!(get(&status, types::READY).status, "False");
    assert_eq!(status.phase, Some(Phase::Degraded));
    let warned: Vec<_> = events(system.status.as_ref(), &status)
        .into_iter()
        .map(|(_, reason, _)| reason)
        .collect();
    assert!(
        warned.contains(&FOREIGN_NETWORK_POLICY.to_string()),
        "{warned:?}"
    );
}

#[test]
fn a_missing_network_policy_means_not_isolated() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let observed = Observed {
        missing_policies: vec!["default-deny".into()],
        ..healthy()
    };
    let status = evaluate(&system("24h", now), &observed, now);
    let network = get(&status, types::NETWORK);
    assert_eq!(
        (network.status.as_str(), network.reason.as_str()),
        ("False", "PolicyMissing")
    );
    assert!(network.message.contains("default-deny"));
    assert_eq!(get(&status, types::READY).status, "False");
}

#[test]
fn a_namespace_of_someone_else_is_reported_before_anything_else() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let observed = Observed {
        namespace_not_owned: Some("namespace hs-x belongs to HealthSystem x".into()),
        ..Observed::default()
    };
    let status = evaluate(&system("24h", now), &observed, now);
    let namespace = get(&status, types::NAMESPACE);
    assert_eq!(namespace.reason, NAMESPACE_NOT_OWNED);
    assert_eq!(
        namespace.message,
        "namespace hs-x belongs to HealthSystem x"
    );
    let ready = get(&status, types::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", NAMESPACE_NOT_OWNED)
    );
}

#[test]
fn a_missing_secret_beside_the_data_is_reported_with_what_to_do() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let observed = Observed {
        credentials_exist: false,
        credentials_complete: false,
        ..healthy()
    };
    let status = evaluate(&system("24h", now), &observed, now);
    let database = get(&status, types::DATABASE);
    assert_eq!(
        (database.status.as_str(), database.reason.as_str()),
        ("False", CREDENTIALS_MISSING)
    );
    assert!(
        database.message.contains("Restore the Secret"),
        "{}",
        database.message
    );
    assert_eq!(status.phase, Some(Phase::Degraded));
}

/// Credentials the operator could not read are not blamed on the Secret (they may well be
/// there): status says what it is waiting for instead.
#[test]
fn credentials_the_operator_cannot_read_are_reported_as_such_not_as_missing() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let observed = Observed {
        credentials_unreadable: true,
        ..healthy()
    };
    let status = evaluate(&system("24h", now), &observed, now);
    let database = get(&status, types::DATABASE);
    assert_eq!(
        (database.status.as_str(), database.reason.as_str()),
        ("False", CREDENTIALS_NOT_READABLE)
    );
    assert!(
        database
            .message
            .contains("healthsystem-operator-credentials"),
        "{}",
        database.message
    );
}

#[test]
fn the_data_claim_is_recorded_and_its_loss_holds_until_accepted() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let mut system = system("24h", now);
    let mut observed = healthy();
    observed.claim_uid = Some("uid-1".into());
    let status = evaluate(&system, &observed, now);
    assert_eq!(
        status.database.as_ref().unwrap().data_claim_uid.as_deref(),
        Some("uid-1"),
        "recorded once bound"
    );
    system.status = Some(status);

    // The claim is replaced by a new one (the StatefulSet made it): data missing.
    observed.claim_uid = Some("uid-2".into());
    assert_eq!(
        lost_data_claim(&system, Some("uid-2")).as_deref(),
        Some("uid-1")
    );
    assert_eq!(lost_data_claim(&system, None).as_deref(), Some("uid-1"));
    assert_eq!(lost_data_claim(&system, Some("uid-1")), None);
    let lost = evaluate(&system, &observed, now);
    let database = get(&lost, types::DATABASE);
    assert_eq!(database.reason, DATA_MISSING);
    assert!(
        database.message.contains("acceptDataLoss: uid-1"),
        "{}",
        database.message
    );
    assert_eq!(lost.phase, Some(Phase::Degraded));
    assert_eq!(
        lost.database.as_ref().unwrap().data_claim_uid.as_deref(),
        Some("uid-1"),
        "the lost claim stays recorded until the loss is accepted"
    );

    // A person accepts the loss of uid-1 (and only that claim).
    system.spec.database.accept_data_loss = Some("uid-1".into());
    assert_eq!(lost_data_claim(&system, Some("uid-2")), None);
    let accepted = evaluate(&system, &observed, now);
    assert_eq!(get(&accepted, types::DATABASE).status, "True");
    assert_eq!(
        accepted
            .database
            .as_ref()
            .unwrap()
            .data_claim_uid
            .as_deref(),
        Some("uid-2")
    );
}

#[test]
fn a_system_with_nothing_recorded_loses_nothing() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    assert_eq!(lost_data_claim(&system("24h", now), None), None);
}

#[test]
fn an_application_refused_by_the_quota_says_so() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let mut observed = healthy();
    observed.application = Some((18, 50));
    observed.application_failure = Some((
        QUOTA_EXCEEDED.into(),
        "pods \"application-x\" is forbidden: exceeded quota: quota, requested: pods=1".into(),
    ));
    let mut system = system("24h", now);
    system.spec.application = Some(
        serde_json::from_value(json!({ "image": "app:1", "replicas": 50, "port": 8080 })).unwrap(),
    );
    let status = evaluate(&system, &observed, now);
    let application = get(&status, types::APPLICATION);
    assert_eq!(application.reason, QUOTA_EXCEEDED);
    assert!(
        application
            .message
            .starts_with("18 of 50 pods available: pods")
    );
    assert_eq!(status.phase, Some(Phase::Degraded));
    // Once every pod is there, an old failure condition does not matter.
    observed.application = Some((50, 50));
    let status = evaluate(&system, &observed, now);
    assert_eq!(get(&status, types::APPLICATION).status, "True");
}

#[test]
fn a_refused_child_lands_in_its_subsystem_and_blocks_ready() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let mut observed = healthy();
    observed.refused = vec![crate::controller::apply::Refusal {
        kind: "NetworkPolicy".into(),
        name: "application-ingress".into(),
        message: "spec.ingress[0].from[0].podSelector.matchLabels: Invalid value: \"bad key!\""
            .into(),
    }];
    let status = evaluate(&system("24h", now), &observed, now);
    let network = get(&status, types::NETWORK);
    assert_eq!(
        (network.status.as_str(), network.reason.as_str()),
        ("False", "NetworkPolicyRefused")
    );
    assert!(
        network.message.starts_with(
            "NetworkPolicy application-ingress refused by the API server: spec.ingress"
        )
    );
    assert_eq!(get(&status, types::READY).reason, "NetworkPolicyRefused");
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(
        get(&status, types::DATABASE).status,
        "True",
        "the other subsystems stand"
    );
}

/// Onboarding 1,000 systems published 1,000 Warning events ("not Ready") for
/// systems that were only being provisioned. A first look that finds a system provisioning
/// says nothing; one that finds it Degraded warns; Ready flipping later is still told.
#[test]
fn a_new_system_being_provisioned_publishes_no_warning() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let new = system("24h", now);
    let mut starting = healthy();
    starting.database_ready_replicas = 0;
    let provisioning = evaluate(&new, &starting, now);
    assert_eq!(provisioning.phase, Some(Phase::Provisioning));
    assert!(events(None, &provisioning).is_empty());

    let ready = evaluate(&new, &healthy(), now);
    let told = events(Some(&provisioning), &ready);
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].0, EventType::Normal);

    let mut missing_class = starting.clone();
    missing_class.claim_phase = Some("Pending".into());
    missing_class.missing_storage_class = Some("gold".into());
    let degraded = evaluate(&new, &missing_class, now);
    let warned = events(None, &degraded);
    assert_eq!(warned.len(), 1);
    assert_eq!(warned[0].0, EventType::Warning);
    assert_eq!(warned[0].1, "StorageClassNotFound");
}

/// A system being provisioned steps through its conditions within seconds (volume,
/// database starting, running); at fleet scale each step written is one more request per
/// system. A step is written at most once per PROGRESS_INTERVAL; Ready, a new generation and
/// a reason that needs a person are written at once.
#[test]
fn steps_of_provisioning_are_written_at_most_once_per_interval() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let new = system("24h", now);
    let at = |seconds: i64| Timestamp::from_second(100 * HOUR + seconds).unwrap();
    let mut volume = healthy();
    volume.database_ready_replicas = 0;
    volume.claim_phase = Some("Pending".into());
    let first = evaluate(&new, &volume, now);
    assert_eq!(first.phase, Some(Phase::Provisioning));
    let mut starting = healthy();
    starting.database_ready_replicas = 0;
    let step = |when| merge(Some(&first), evaluate(&new, &starting, when));
    assert_ne!(step(at(2)), first);
    assert_eq!(
        progress_hold(Some(&first), &step(at(2)), at(2)),
        Some(Duration::from_secs(3))
    );
    assert_eq!(progress_hold(Some(&first), &step(at(5)), at(5)), None);

    let ready = merge(Some(&first), evaluate(&new, &healthy(), at(1)));
    assert_eq!(ready.phase, Some(Phase::Ready));
    assert_eq!(progress_hold(Some(&first), &ready, at(1)), None);

    let mut edited = new.clone();
    edited.metadata.generation = Some(4);
    let next_generation = merge(Some(&first), evaluate(&edited, &starting, at(1)));
    assert_eq!(progress_hold(Some(&first), &next_generation, at(1)), None);

    let mut missing_class = volume.clone();
    missing_class.missing_storage_class = Some("gold".into());
    let needs_a_person = merge(Some(&first), evaluate(&new, &missing_class, at(1)));
    assert_eq!(progress_hold(Some(&first), &needs_a_person, at(1)), None);

    // The first status of a system is written at once.
    assert_eq!(progress_hold(None, &first, now), None);
}

/// A data claim being deleted is lost already: the database must be held stopped before it
/// goes, or the StatefulSet makes a new, empty claim and starts an empty database on it the
/// moment the old pod lets go (`tests/node` lost-volume test, CI: the hold came 300 ms late).
#[test]
fn a_data_claim_being_deleted_is_lost_already() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let mut system = system("24h", now);
    system.status = Some(HealthSystemStatus {
        database: Some(DatabaseStatus {
            data_claim_uid: Some("uid-1".into()),
            ..DatabaseStatus::default()
        }),
        ..HealthSystemStatus::default()
    });
    let mut claim = ObjectMeta {
        name: Some("data-database-0".into()),
        uid: Some("uid-1".into()),
        ..ObjectMeta::default()
    };
    let live = data_claim_uid(Some(&claim));
    assert_eq!(lost_data_claim(&system, live.as_deref()), None);
    claim.deletion_timestamp = Some(Time(now));
    let live = data_claim_uid(Some(&claim));
    assert_eq!(
        lost_data_claim(&system, live.as_deref()),
        Some("uid-1".to_string())
    );
}

#[test]
fn a_new_primary_is_told_once_as_a_warning() {
    let with_primary = |primary: Option<&str>| HealthSystemStatus {
        database: Some(DatabaseStatus {
            primary: primary.map(String::from),
            ..DatabaseStatus::default()
        }),
        ..HealthSystemStatus::default()
    };
    let (first, second) = (
        with_primary(Some("postgres-1")),
        with_primary(Some("postgres-2")),
    );
    let told = events(Some(&first), &second);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0, EventType::Warning);
    assert_eq!(told[0].1, write::PRIMARY_CHANGED);
    assert!(
        told[0].2.contains("from postgres-1 to postgres-2"),
        "{}",
        told[0].2
    );
    assert!(events(Some(&second), &second).is_empty());
    // The first primary elected is no change.
    assert!(events(Some(&with_primary(None)), &first).is_empty());
}

/// A Cluster the API server (CloudNativePG's webhook) refuses is the database's problem:
/// DatabaseReady says so, not NamespaceReady.
#[test]
fn a_refused_cluster_lands_in_database_ready() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let mut observed = healthy();
    observed.refused = vec![crate::controller::apply::Refusal {
        kind: "Cluster".into(),
        name: "postgres".into(),
        message: "admission webhook \"vcluster.cnpg.io\" denied the request".into(),
    }];
    let status = evaluate(&system("24h", now), &observed, now);
    let database = get(&status, types::DATABASE);
    assert_eq!(
        (database.status.as_str(), database.reason.as_str()),
        ("False", "ClusterRefused")
    );
    assert_eq!(get(&status, types::NAMESPACE).status, "True");
}

/// A Cluster that runs but whose restore from a backup has not succeeded is not ready: its
/// clients would find it empty (it said DatabaseRunning while the restore ran).
#[test]
fn a_cluster_being_restored_into_is_not_ready_until_restored() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let mut observed = healthy();
    observed.engine = crate::api::Engine::CloudNativePg;
    observed.engine_api = true;
    observed.cluster = Some(cluster::ClusterState::read(&json!({
        "spec": { "instances": 1 },
        "status": { "readyInstances": 1, "currentPrimary": "postgres-1",
                    "phase": "Cluster in healthy state" }
    })));
    let restore = |phase: &str| {
        Some(crate::api::BootstrapStatus {
            phase: phase.into(),
            message: format!("restore {phase}"),
            ..Default::default()
        })
    };
    for (phase, reason, ready) in [
        ("Restoring", "Restoring", "False"),
        ("Failed", BOOTSTRAP_FAILED, "False"),
        ("Restored", "DatabaseRunning", "True"),
    ] {
        observed.bootstrap = restore(phase);
        let status = evaluate(&system("24h", now), &observed, now);
        let database = get(&status, types::DATABASE);
        assert_eq!(
            (database.status.as_str(), database.reason.as_str()),
            (ready, reason),
            "{phase}"
        );
    }
}

/// More instances than the tier allows: the bound runs, and DatabaseReady says what was
/// asked, the bound and where it is set, with the Cluster's own state.
#[test]
fn instances_above_the_tiers_bound_are_reported_with_the_clusters_state() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let mut observed = healthy();
    observed.engine = crate::api::Engine::CloudNativePg;
    observed.engine_api = true;
    observed.cluster = Some(cluster::ClusterState::read(&json!({
        "spec": { "instances": 3 },
        "status": { "readyInstances": 3, "currentPrimary": "postgres-1",
                    "phase": "Cluster in healthy state" }
    })));
    let running = evaluate(&system("24h", now), &observed, now);
    assert_eq!(get(&running, types::DATABASE).reason, "DatabaseRunning");

    observed.instances_above_tier = Some((5, 3));
    let status = evaluate(&system("24h", now), &observed, now);
    let database = get(&status, types::DATABASE);
    assert_eq!(
        (database.status.as_str(), database.reason.as_str()),
        ("False", INSTANCES_ABOVE_TIER)
    );
    assert!(
        database.message.starts_with(
            "spec.database.instances asks for 5, above the Standard tier's bound of 3 (the operator's tiers.standard.maxInstances): 3 run"
        ) && database.message.contains("3 of 3 instances ready"),
        "{}",
        database.message
    );
    assert_eq!(status.phase, Some(Phase::Degraded));
}

/// Pods waiting on an image that cannot be pulled: ApplicationReady says so, the system is
/// Degraded (a person must act), not Provisioning.
#[test]
fn an_application_waiting_on_its_image_is_degraded_and_says_why() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let mut observed = healthy();
    observed.application = Some((0, 1));
    observed.application_failure = Some((
        crate::controller::application::image_pull::IMAGE_PULL_FAILING.into(),
        "1 pod cannot pull image registry.sdc.gov.rs/his/app:9; check".into(),
    ));
    let status = evaluate(&system("24h", now), &observed, now);
    let application = get(&status, types::APPLICATION);
    assert_eq!(
        (application.status.as_str(), application.reason.as_str()),
        ("False", "ImagePullFailing")
    );
    assert!(application.message.starts_with(
        "0 of 1 pods available: 1 pod cannot pull image registry.sdc.gov.rs/his/app:9"
    ));
    assert_eq!(status.phase, Some(Phase::Degraded));
}

/// A new system asking for a version the platform has no image for: nothing exists yet, and
/// Ready names the refusal (a person must change the spec), not the namespace it waits for.
#[test]
fn a_version_without_an_image_is_the_reason_a_new_system_is_not_ready() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let observed = Observed {
        version_refused: Some("spec.database.version: PostgreSQL 16 is not offered".into()),
        ..Observed::default()
    };
    let status = evaluate(&system("24h", now), &observed, now);
    let database = get(&status, types::DATABASE);
    assert_eq!(
        (database.status.as_str(), database.reason.as_str()),
        ("False", VERSION_REFUSED)
    );
    assert!(
        database
            .message
            .starts_with("spec.database.version: PostgreSQL 16 is not offered. Nothing"),
        "{}",
        database.message
    );
    assert_eq!(get(&status, types::READY).reason, VERSION_REFUSED);
    assert_eq!(status.phase, Some(Phase::Degraded));
}

/// A system asking to start from an archive the platform cannot recover: nothing is applied
/// (an empty database would start in its place), and Ready names the refusal.
#[test]
fn an_archive_the_platform_cannot_recover_is_the_reason_a_new_system_is_not_ready() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let observed = Observed {
        bootstrap_refused: Some("spec.database.bootstrap.fromArchive: no archives".into()),
        ..Observed::default()
    };
    let status = evaluate(&system("24h", now), &observed, now);
    let database = get(&status, types::DATABASE);
    assert_eq!(
        (database.status.as_str(), database.reason.as_str()),
        ("False", condition::BOOTSTRAP_REFUSED)
    );
    assert!(
        database
            .message
            .contains("Nothing of this system is applied")
    );
    assert_eq!(
        get(&status, types::READY).reason,
        condition::BOOTSTRAP_REFUSED
    );
    assert_eq!(status.phase, Some(Phase::Degraded));
}

/// WAL not reaching the archive is a backup that is not ready, whatever the dumps say: what
/// can be lost grows from then on. The archive's window is in status either way.
#[test]
fn failing_wal_archiving_makes_backups_not_ready_and_says_why() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let archive = crate::api::ArchiveStatus {
        destination: "s3://b/dz-test/archive".into(),
        first_recoverability_point: Some(Time(now)),
        wal_archiving: Some(false),
        message: Some("barman-cloud-wal-archive: connection refused".into()),
        ..crate::api::ArchiveStatus::default()
    };
    let observed = Observed {
        last_success: Some(now),
        archive: Some(archive.clone()),
        ..healthy()
    };
    let status = evaluate(&system("24h", now), &observed, now);
    let backup = get(&status, types::BACKUP);
    assert_eq!(
        (backup.status.as_str(), backup.reason.as_str()),
        ("False", backup::ARCHIVING_FAILING)
    );
    assert!(backup.message.contains("connection refused"), "{backup:?}");
    assert!(
        backup.message.contains("s3://b/dz-test/archive"),
        "{backup:?}"
    );
    assert_eq!(status.backup.unwrap().archive, Some(archive.clone()));

    let working = Observed {
        archive: Some(crate::api::ArchiveStatus {
            wal_archiving: Some(true),
            message: None,
            ..archive
        }),
        ..observed
    };
    let status = evaluate(&system("24h", now), &working, now);
    assert_eq!(get(&status, types::BACKUP).status, "True");
}

fn archiving(wal: Option<bool>, recoverable_from: Option<Timestamp>) -> crate::api::ArchiveStatus {
    crate::api::ArchiveStatus {
        destination: "s3://b/dz-test/archive".into(),
        first_recoverability_point: recoverable_from.map(Time),
        wal_archiving: wal,
        ..crate::api::ArchiveStatus::default()
    }
}

/// With an archive, the RPO is the archive's: a 1-hour RPO is met by WAL reaching the store,
/// not by an hourly dump. The daily logical dump, the second line, is stale only after a
/// day and the slack of a long run (or the RPO, when longer).
#[test]
fn with_an_archive_the_rpo_is_met_by_wal_archiving_and_the_dumps_may_be_daily() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let created = Timestamp::from_second(10 * HOUR).unwrap();
    let observed = Observed {
        last_success: Some(Timestamp::from_second(100 * HOUR - 20 * HOUR).unwrap()),
        archive: Some(archiving(
            Some(true),
            Some(Timestamp::from_second(50 * HOUR).unwrap()),
        )),
        ..healthy()
    };
    let status = evaluate(&system("1h", created), &observed, now);
    let backup = get(&status, types::BACKUP);
    assert_eq!(
        (backup.status.as_str(), backup.reason.as_str()),
        ("True", backup::ARCHIVE_CURRENT),
        "{backup:?}"
    );
    assert!(
        backup.message.contains("s3://b/dz-test/archive"),
        "{backup:?}"
    );
    // The verdict changes by time alone only when the dump turns 26 hours old.
    assert_eq!(
        next_backup_deadline(&system("1h", created), &observed, now),
        Some(Duration::from_secs(6 * HOUR as u64 + 1))
    );

    let old_dump = Observed {
        last_success: Some(Timestamp::from_second(100 * HOUR - 27 * HOUR).unwrap()),
        ..observed.clone()
    };
    let status = evaluate(&system("1h", created), &old_dump, now);
    let backup = get(&status, types::BACKUP);
    assert_eq!(
        (backup.status.as_str(), backup.reason.as_str()),
        ("False", "BackupStale")
    );
    assert!(backup.message.contains("logical"), "{backup:?}");
}

/// An archive that never got its first base backup recovers nothing: within the RPO of the
/// system's creation it is awaited, after that it is the reason.
#[test]
fn an_archive_without_a_base_backup_is_awaited_within_the_rpo_then_the_reason() {
    let created = Timestamp::from_second(10 * HOUR).unwrap();
    let observed = Observed {
        last_success: Some(created),
        archive: Some(archiving(Some(true), None)),
        ..healthy()
    };
    let soon = Timestamp::from_second(10 * HOUR + 600).unwrap();
    let status = evaluate(&system("1h", created), &observed, soon);
    let backup = get(&status, types::BACKUP);
    assert_eq!(
        (backup.status.as_str(), backup.reason.as_str()),
        ("True", backup::AWAITING_BASE_BACKUP)
    );
    let later = Timestamp::from_second(12 * HOUR).unwrap();
    let status = evaluate(&system("1h", created), &observed, later);
    let backup = get(&status, types::BACKUP);
    assert_eq!(
        (backup.status.as_str(), backup.reason.as_str()),
        ("False", backup::NO_BASE_BACKUP)
    );
}

/// A physical drill that failed (a WAL segment or base backup the archive cannot restore)
/// leaves the archive unproven: BackupReady is false, saying which drill and why.
#[test]
fn a_failed_physical_drill_makes_an_archiving_system_not_backup_ready() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let created = Timestamp::from_second(10 * HOUR).unwrap();
    let failed: crate::api::DrillStatus = serde_json::from_value(serde_json::json!({
        "time": "1970-01-05T03:00:00Z", "backup": "archive", "durationSeconds": 48,
        "result": "Failed", "reason": "RecoveryEndedEarly",
        "message": "recovery ended at 0/4000000, before the archive's newest segment",
        "job": "pdrill-dz-test-7001030300-check"
    }))
    .unwrap();
    let observed = Observed {
        last_success: Some(Timestamp::from_second(100 * HOUR - 20 * HOUR).unwrap()),
        archive: Some(archiving(
            Some(true),
            Some(Timestamp::from_second(50 * HOUR).unwrap()),
        )),
        physical_drill: Some(failed),
        ..healthy()
    };
    let status = evaluate(&system("1h", created), &observed, now);
    let backup = get(&status, types::BACKUP);
    assert_eq!(
        (backup.status.as_str(), backup.reason.as_str()),
        ("False", RESTORE_DRILL_FAILED),
        "{backup:?}"
    );
    assert!(backup.message.contains("physical drill"), "{backup:?}");
    assert!(backup.message.contains("RecoveryEndedEarly"), "{backup:?}");
    assert!(backup.message.contains("pdrill-dz-test"), "{backup:?}");
}

/// Where drills run, a backup counts once a restore of it is proven: BackupReady waits for
/// the first drill that passes (of either line) and turns false again when the newest that
/// passed is older than the drills' maximum age; nothing to prove yet is no reason.
#[test]
fn with_drills_a_backup_counts_once_a_drill_proved_it_and_while_that_proof_is_recent() {
    const DAY: i64 = 24 * HOUR;
    let now = Timestamp::from_second(100 * DAY).unwrap();
    let created = Timestamp::from_second(90 * DAY).unwrap();
    let mut observed = Observed {
        last_success: Some(Timestamp::from_second(100 * DAY - 2 * HOUR).unwrap()),
        drill_max_age: Some(Duration::from_secs(14 * DAY as u64)),
        ..healthy()
    };
    let verdict = |observed: &Observed| {
        let status = evaluate(&system("24h", created), observed, now);
        let backup = get(&status, types::BACKUP).clone();
        (backup.status, backup.reason, backup.message)
    };
    let (status, reason, message) = verdict(&observed);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", BACKUP_UNVERIFIED)
    );
    assert!(message.contains("no restore drill has passed"), "{message}");

    observed.drill_success = Some(Timestamp::from_second(100 * DAY - HOUR).unwrap());
    let (status, reason, _) = verdict(&observed);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "BackupFresh"));
    // The verdict changes by time alone when the backup leaves the RPO, before the proof
    // ages out.
    assert_eq!(
        next_backup_deadline(&system("24h", created), &observed, now),
        Some(Duration::from_secs(22 * HOUR as u64 + 1))
    );

    observed.drill_success = Some(Timestamp::from_second(100 * DAY - 15 * DAY).unwrap());
    let (status, reason, message) = verdict(&observed);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", BACKUP_UNVERIFIED)
    );
    assert!(message.contains("older than"), "{message}");
    // A physical drill's pass proves the system's backups as well; the verdict then changes
    // when that proof ages out, an hour before the backup would leave the RPO.
    observed.physical_drill_success =
        Some(Timestamp::from_second(100 * DAY - 14 * DAY + 21 * HOUR).unwrap());
    let (status, _, _) = verdict(&observed);
    assert_eq!(status, "True");
    let shown = evaluate(&system("24h", created), &observed, now);
    assert_eq!(
        shown.backup.and_then(|b| b.last_proven_time).map(|t| t.0),
        observed.physical_drill_success,
        "Proven: the newer of the two lines' passes"
    );
    assert_eq!(
        next_backup_deadline(&system("24h", created), &observed, now),
        Some(Duration::from_secs(21 * HOUR as u64 + 1))
    );

    // Nothing backed up yet: nothing to prove.
    let fresh = Observed {
        drill_max_age: Some(Duration::from_secs(14 * DAY as u64)),
        ..healthy()
    };
    let status = evaluate(&system("24h", now), &fresh, now);
    assert_eq!(get(&status, types::BACKUP).reason, "AwaitingFirstBackup");
}

/// Backups that only wait for a drill's proof do not make the system unready: it serves, its
/// backups exist, and a new system's first drill may wait hours for one of the fleet's slots
/// (the drills' overdue alert says when that is too long).
#[test]
fn backups_awaiting_their_proof_leave_the_system_ready() {
    let now = Timestamp::from_second(100 * HOUR).unwrap();
    let created = Timestamp::from_second(90 * HOUR).unwrap();
    let observed = Observed {
        last_success: Some(Timestamp::from_second(99 * HOUR).unwrap()),
        drill_max_age: Some(Duration::from_secs(336 * HOUR as u64)),
        ..healthy()
    };
    let status = evaluate(&system("24h", created), &observed, now);
    assert_eq!(get(&status, types::BACKUP).reason, BACKUP_UNVERIFIED);
    assert_eq!(get(&status, types::READY).status, "True");
    assert_eq!(status.phase, Some(Phase::Ready));
}
