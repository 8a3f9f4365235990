use serde_json::json;

use super::*;
use crate::api::MovePhase::*;

const ID: &str = "0a1b2c3d";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn spec(attempt: i32) -> DatabaseMove {
    serde_json::from_value(
        json!({ "to": "CloudNativePG", "approvedBy": "ana", "attempt": attempt }),
    )
    .unwrap()
}

fn seen(cluster_ready: bool, job: JobState) -> Observed {
    Observed {
        engine: Engine::StatefulSet,
        refusal: None,
        cluster_ready,
        job,
    }
}

const PASSED: &str =
    r#"{"tables":3,"rows":1250,"checksummed":3,"mismatches":[],"moreMismatches":0}"#;

/// Runs `advance` through (observation, time) steps from `start`; every status.
fn run(
    spec: &DatabaseMove,
    start: Option<MoveStatus>,
    steps: &[(Observed, &str)],
) -> Vec<MoveStatus> {
    let mut status = start;
    let mut out = Vec::new();
    for (observed, time) in steps {
        status = advance(Some(spec), status.as_ref(), observed, at(time), ID);
        out.push(status.clone().unwrap());
    }
    out
}

#[test]
fn a_move_stops_the_application_copies_verifies_and_switches_with_its_downtime() {
    let done = at("2026-12-07T10:04:00Z");
    let steps = run(
        &spec(1),
        None,
        &[
            (seen(false, JobState::Absent), "2026-12-07T10:00:00Z"),
            (seen(true, JobState::Absent), "2026-12-07T10:00:30Z"),
            (seen(true, JobState::Running(None)), "2026-12-07T10:01:00Z"),
            (
                seen(
                    true,
                    JobState::Succeeded(at("2026-12-07T10:02:00Z"), "imported".into()),
                ),
                "2026-12-07T10:02:05Z",
            ),
            (
                seen(true, JobState::Succeeded(done, PASSED.into())),
                "2026-12-07T10:04:00Z",
            ),
        ],
    );
    let phases: Vec<MovePhase> = steps.iter().map(|s| s.phase).collect();
    assert_eq!(phases, [Preparing, Copying, Copying, Verifying, Switched]);
    // The application runs while the Cluster is made, and stops from the copy on.
    assert!(!steps[0].phase.holds_application());
    assert!(steps[1..4].iter().all(|s| s.phase.holds_application()));
    assert_eq!(steps[1].stopped, Some(Time(at("2026-12-07T10:00:30Z"))));
    assert!(
        steps[1].message.contains("move-0a1b2c3d-copy-1"),
        "{}",
        steps[1].message
    );
    assert!(
        steps[3].message.contains("move-0a1b2c3d-verify-1"),
        "{}",
        steps[3].message
    );
    let switched = &steps[4];
    assert_eq!(switched.copies, 1);
    assert_eq!(switched.downtime_seconds, Some(210));
    assert_eq!(switched.switched, Some(Time(done)));
    let evidence = switched.verification.as_ref().unwrap();
    assert!(evidence.passed);
    assert_eq!(evidence.rows, 1250);
    assert!(!switched.phase.holds_application());
}

#[test]
fn a_difference_fails_the_move_naming_the_table_and_a_new_attempt_copies_again() {
    let differ = r#"{"tables":2,"rows":10,"checksummed":2,"mismatches":[{"table":"public.patients","difference":"checksum","sourceRows":5,"targetRows":5}],"moreMismatches":0}"#;
    let steps = run(
        &spec(1),
        None,
        &[
            (seen(true, JobState::Absent), "2026-12-07T10:00:00Z"),
            (seen(true, JobState::Absent), "2026-12-07T10:00:01Z"),
            (
                seen(
                    true,
                    JobState::Succeeded(at("2026-12-07T10:01:00Z"), String::new()),
                ),
                "2026-12-07T10:01:00Z",
            ),
            (
                seen(
                    true,
                    JobState::Succeeded(at("2026-12-07T10:02:00Z"), differ.into()),
                ),
                "2026-12-07T10:02:00Z",
            ),
        ],
    );
    let failed = steps.last().unwrap();
    assert_eq!(
        (failed.phase, failed.reason.as_str()),
        (Failed, "VerificationFailed")
    );
    assert!(
        failed.message.contains("public.patients (checksum"),
        "{}",
        failed.message
    );
    assert!(
        !failed.phase.holds_application(),
        "the application runs on the old database again"
    );
    // Stays failed for this attempt, whatever is seen.
    let again = advance(
        Some(&spec(1)),
        Some(failed),
        &seen(true, JobState::Absent),
        at("2026-12-07T10:03:00Z"),
        ID,
    )
    .unwrap();
    assert_eq!(again.phase, Failed);
    // Attempt 2 stops the application again (the Cluster is ready: its copy starts at
    // once); the earlier copy may be replaced.
    let retry = advance(
        Some(&spec(2)),
        Some(failed),
        &seen(true, JobState::Absent),
        at("2026-12-07T10:05:00Z"),
        ID,
    )
    .unwrap();
    assert_eq!((retry.phase, retry.attempt, retry.copies), (Copying, 2, 1));
    assert_eq!(retry.stopped, Some(Time(at("2026-12-07T10:05:00Z"))));
}

#[test]
fn a_failed_copy_says_why_and_releases_the_application() {
    let steps = run(
        &spec(1),
        None,
        &[
            (seen(true, JobState::Absent), "2026-12-07T10:00:00Z"),
            (seen(true, JobState::Absent), "2026-12-07T10:00:01Z"),
            (
                seen(
                    true,
                    JobState::Failed(
                        at("2026-12-07T10:10:00Z"),
                        "copy refused: the application's role still has 2 sessions".into(),
                    ),
                ),
                "2026-12-07T10:10:00Z",
            ),
        ],
    );
    let failed = steps.last().unwrap();
    assert_eq!(
        (failed.phase, failed.reason.as_str()),
        (Failed, "CopyFailed")
    );
    assert!(
        failed.message.contains("still has 2 sessions"),
        "{}",
        failed.message
    );
    assert!(
        failed.message.contains("raise spec.database.move.attempt"),
        "{}",
        failed.message
    );
}

#[test]
fn a_cluster_that_never_becomes_ready_gives_the_application_back() {
    let steps = run(
        &spec(1),
        None,
        &[
            (seen(false, JobState::Absent), "2026-12-07T10:00:00Z"),
            (seen(false, JobState::Absent), "2026-12-07T10:09:59Z"),
            (seen(false, JobState::Absent), "2026-12-07T10:10:01Z"),
        ],
    );
    assert_eq!(steps[1].phase, Preparing);
    assert_eq!(
        (steps[2].phase, steps[2].reason.as_str()),
        (Failed, "ClusterNotReady")
    );
    assert!(
        steps.iter().all(|s| s.stopped.is_none()),
        "nothing was stopped"
    );
}

#[test]
fn a_move_that_cannot_run_here_stops_nothing() {
    let mut observed = seen(false, JobState::Absent);
    observed.refusal = Some("database.cloudNativePG.apiServer is not configured".into());
    let status = advance(
        Some(&spec(1)),
        None,
        &observed,
        at("2026-12-07T10:00:00Z"),
        ID,
    )
    .unwrap();
    assert_eq!(
        (status.phase, status.reason.as_str()),
        (Failed, "MoveRefused")
    );
    assert_eq!(status.stopped, None);
    assert!(status.message.contains("apiServer"), "{}", status.message);
}

#[test]
fn a_database_already_on_cloudnativepg_has_nothing_to_move() {
    let observed = Observed {
        engine: Engine::CloudNativePg,
        ..seen(true, JobState::Absent)
    };
    let status = advance(
        Some(&spec(1)),
        None,
        &observed,
        at("2026-12-07T10:00:00Z"),
        ID,
    )
    .unwrap();
    assert_eq!(
        (status.phase, status.reason.as_str()),
        (Failed, "NothingToMove")
    );
}

#[test]
fn withdrawing_a_move_under_way_releases_the_application_and_a_switch_stays_recorded() {
    let copying = run(
        &spec(1),
        None,
        &[
            (seen(true, JobState::Absent), "2026-12-07T10:00:00Z"),
            (seen(true, JobState::Absent), "2026-12-07T10:00:01Z"),
        ],
    )
    .pop()
    .unwrap();
    assert_eq!(copying.phase, Copying);
    let withdrawn = advance(
        None,
        Some(&copying),
        &seen(true, JobState::Absent),
        at("2026-12-07T10:01:00Z"),
        ID,
    )
    .unwrap();
    assert_eq!(
        (withdrawn.phase, withdrawn.reason.as_str()),
        (Failed, "Withdrawn")
    );

    let switched = MoveStatus {
        phase: Switched,
        ..copying
    };
    let kept = advance(
        None,
        Some(&switched),
        &seen(true, JobState::Absent),
        at("2026-12-07T11:00:00Z"),
        ID,
    );
    assert_eq!(kept, Some(switched.clone()));
    // A new attempt after the switch copies nothing over the live Cluster.
    let later = advance(
        Some(&spec(5)),
        Some(&switched),
        &seen(true, JobState::Absent),
        at("2026-12-07T11:00:00Z"),
        ID,
    );
    assert_eq!(later, Some(switched));
}

#[test]
fn a_database_still_being_filled_is_not_moved() {
    let base = || -> HealthSystem {
        crate::api::validation::validate(&json!({
            "apiVersion": "sdc.gov.rs/v1alpha1", "kind": "HealthSystem",
            "metadata": { "name": "lab" },
            "spec": {
                "institution": { "displayName": "Lab", "registryId": "07151950", "ownership": "Private" },
                "database": { "version": "15", "storage": "10Gi" }
            }
        }))
        .unwrap()
    };
    assert_eq!(busy(&base()), None);
    let mut migrating = base();
    migrating.spec.migration = Some(
        serde_json::from_value(json!({
            "source": { "host": "legacy", "database": "his", "secretName": "legacy",
                        "network": { "cidr": "10.0.0.1/32" } }
        }))
        .unwrap(),
    );
    assert!(busy(&migrating).unwrap().contains("spec.migration"));
    migrating.status = Some(
        serde_json::from_value(json!({ "migration": { "phase": "CutOver", "attempt": 1,
            "reason": "CutOver", "lastTransitionTime": "2026-12-07T10:00:00Z" } }))
        .unwrap(),
    );
    assert_eq!(busy(&migrating), None, "after its cutover");
    let mut restoring = base();
    restoring.spec.database.bootstrap =
        Some(serde_json::from_value(json!({ "fromBackup": { "namespace": "hs-old" } })).unwrap());
    assert!(busy(&restoring).unwrap().contains("restored"));
}
