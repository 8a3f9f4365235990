use serde_json::json;

use super::*;
use crate::api::{CutoverApproval, MigrationPhase::*};

const HOUR: Duration = Duration::from_secs(3600);

fn advance(
    spec: Option<&Migration>,
    old: Option<&MigrationStatus>,
    observed: &Observed,
    now: Timestamp,
    max_age: Duration,
) -> Option<MigrationStatus> {
    let step = Step {
        now,
        max_age,
        incarnation: "0a1b2c3d",
    };
    super::advance(spec, old, observed, &step)
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn spec(attempt: i32, approval: Option<(&str, &str)>) -> Migration {
    let mut migration: Migration = serde_json::from_value(json!({
        "source": { "host": "legacy.example", "database": "his", "secretName": "legacy",
                    "network": { "cidr": "10.20.30.40/32" } },
        "attempt": attempt,
    }))
    .unwrap();
    migration.cutover = approval.map(|(by, time)| CutoverApproval {
        approved_by: by.into(),
        approved_at: Time(at(time)),
    });
    migration
}

fn observed(database_ready: bool, job: JobState) -> Observed {
    Observed {
        database_ready,
        job,
    }
}

const PASSED: &str =
    r#"{"tables":3,"rows":1250,"checksummed":3,"mismatches":[],"moreMismatches":0}"#;

/// Runs `advance` through a sequence of (observation, time) and returns every status.
fn run(
    migration: &Migration,
    start: Option<MigrationStatus>,
    steps: &[(Observed, &str)],
) -> Vec<MigrationStatus> {
    let mut status = start;
    let mut out = Vec::new();
    for (seen, time) in steps {
        status = advance(Some(migration), status.as_ref(), seen, at(time), HOUR);
        out.push(status.clone().unwrap());
    }
    out
}

#[test]
fn a_migration_imports_verifies_and_waits_for_approval() {
    let m = spec(1, None);
    let steps = run(
        &m,
        None,
        &[
            (observed(false, JobState::Absent), "2026-11-29T10:00:00Z"),
            (observed(true, JobState::Absent), "2026-11-29T10:01:00Z"),
            (
                observed(true, JobState::Running(None)),
                "2026-11-29T10:02:00Z",
            ),
            (
                observed(
                    true,
                    JobState::Succeeded(
                        at("2026-11-29T10:05:00Z"),
                        "imported his: 3 tables".into(),
                    ),
                ),
                "2026-11-29T10:05:01Z",
            ),
            (
                observed(
                    true,
                    JobState::Succeeded(at("2026-11-29T10:06:00Z"), PASSED.into()),
                ),
                "2026-11-29T10:06:01Z",
            ),
        ],
    );
    let phases: Vec<_> = steps.iter().map(|s| s.phase).collect();
    assert_eq!(
        phases,
        [Pending, Importing, Importing, Verifying, AwaitingCutover]
    );
    let last = steps.last().unwrap();
    assert_eq!(last.imports, 1);
    assert_eq!(last.verification_runs, 1);
    assert_eq!(last.first_verified, Some(Time(at("2026-11-29T10:06:00Z"))));
    let evidence = last.verification.as_ref().unwrap();
    assert!(evidence.passed);
    assert_eq!(
        (evidence.tables, evidence.rows, evidence.checksummed),
        (3, 1250, 3)
    );
    assert_eq!(last.reason, "AwaitingApproval");
    assert_eq!(
        steps[1].last_transition_time,
        Time(at("2026-11-29T10:01:00Z"))
    );
    assert_eq!(
        steps[2].last_transition_time, steps[1].last_transition_time,
        "the time of the last phase change is kept while the phase stays"
    );
}

fn awaiting(verified: &str) -> MigrationStatus {
    let m = spec(1, None);
    let steps = run(
        &m,
        None,
        &[
            (observed(true, JobState::Absent), "2026-11-29T09:00:00Z"),
            (
                observed(
                    true,
                    JobState::Succeeded(at("2026-11-29T09:30:00Z"), "ok".into()),
                ),
                "2026-11-29T09:30:00Z",
            ),
            (
                observed(true, JobState::Succeeded(at(verified), PASSED.into())),
                verified,
            ),
        ],
    );
    steps.last().unwrap().clone()
}

#[test]
fn an_approval_after_a_fresh_verification_cuts_over() {
    let m = spec(1, Some(("ana.petrovic", "2026-11-29T10:10:00Z")));
    let status = awaiting("2026-11-29T10:00:00Z");
    let next = advance(
        Some(&m),
        Some(&status),
        &observed(true, JobState::Absent),
        at("2026-11-29T10:10:05Z"),
        HOUR,
    )
    .unwrap();
    assert_eq!(next.phase, CutOver);
    assert_eq!(next.approved_by.as_deref(), Some("ana.petrovic"));
    assert_eq!(next.cut_over, Some(Time(at("2026-11-29T10:10:05Z"))));
}

#[test]
fn a_stale_verification_is_run_again_before_the_cutover() {
    let m = spec(1, Some(("ana.petrovic", "2026-11-29T12:00:00Z")));
    let status = awaiting("2026-11-29T10:00:00Z");
    let next = advance(
        Some(&m),
        Some(&status),
        &observed(true, JobState::Absent),
        at("2026-11-29T12:00:05Z"),
        HOUR,
    )
    .unwrap();
    assert_eq!(
        (next.phase, next.reason.as_str()),
        (Verifying, "Reverifying")
    );
    assert_eq!(next.verification_runs, 2);
    // The second run passes: the standing approval cuts over at once.
    let done = advance(
        Some(&m),
        Some(&next),
        &observed(
            true,
            JobState::Succeeded(at("2026-11-29T12:03:00Z"), PASSED.into()),
        ),
        at("2026-11-29T12:03:01Z"),
        HOUR,
    )
    .unwrap();
    assert_eq!(done.phase, CutOver);
    assert_eq!(
        done.first_verified,
        Some(Time(at("2026-11-29T10:00:00Z"))),
        "the first verification of the attempt is what approvals are judged by"
    );
}

#[test]
fn an_approval_given_before_the_evidence_does_not_count() {
    let m = spec(1, Some(("ana.petrovic", "2026-11-29T08:00:00Z")));
    let status = awaiting("2026-11-29T10:00:00Z");
    let next = advance(
        Some(&m),
        Some(&status),
        &observed(true, JobState::Absent),
        at("2026-11-29T10:00:30Z"),
        HOUR,
    )
    .unwrap();
    assert_eq!(
        (next.phase, next.reason.as_str()),
        (AwaitingCutover, "ApprovalPredatesVerification")
    );
}

#[test]
fn a_changed_table_fails_verification_and_is_named() {
    let m = spec(1, None);
    let mut status = awaiting("2026-11-29T10:00:00Z");
    status.phase = Verifying;
    status.verification_runs = 2;
    let report = r#"{"tables":3,"rows":1250,"checksummed":3,"mismatches":[{"table":"public.patients","difference":"checksum","sourceRows":1000,"targetRows":1000}],"moreMismatches":0}"#;
    let next = advance(
        Some(&m),
        Some(&status),
        &observed(
            true,
            JobState::Succeeded(at("2026-11-29T11:00:00Z"), report.into()),
        ),
        at("2026-11-29T11:00:01Z"),
        HOUR,
    )
    .unwrap();
    assert_eq!(
        (next.phase, next.reason.as_str()),
        (Failed, "VerificationFailed")
    );
    assert!(
        next.message.contains("public.patients (checksum"),
        "{}",
        next.message
    );
    assert!(!next.verification.unwrap().passed);
}

#[test]
fn a_failed_import_says_why_and_a_new_attempt_starts_over() {
    let m = spec(1, None);
    let importing = run(
        &m,
        None,
        &[(observed(true, JobState::Absent), "2026-11-29T10:00:00Z")],
    );
    let failed = advance(
        Some(&m),
        importing.last(),
        &observed(
            true,
            JobState::Failed(
                at("2026-11-29T10:01:00Z"),
                "pg_dump: error: connection refused".into(),
            ),
        ),
        at("2026-11-29T10:01:01Z"),
        HOUR,
    )
    .unwrap();
    assert_eq!(
        (failed.phase, failed.reason.as_str()),
        (Failed, "ImportFailed")
    );
    assert!(failed.message.contains("connection refused"));
    let again = advance(
        Some(&spec(2, None)),
        Some(&failed),
        &observed(true, JobState::Absent),
        at("2026-11-29T10:05:00Z"),
        HOUR,
    )
    .unwrap();
    assert_eq!((again.phase, again.attempt), (Importing, 2));
}

#[test]
fn a_new_attempt_after_the_cutover_is_refused() {
    let m = spec(1, Some(("ana.petrovic", "2026-11-29T10:10:00Z")));
    let status = awaiting("2026-11-29T10:00:00Z");
    let live = advance(
        Some(&m),
        Some(&status),
        &observed(true, JobState::Absent),
        at("2026-11-29T10:10:05Z"),
        HOUR,
    )
    .unwrap();
    let refused = advance(
        Some(&spec(2, None)),
        Some(&live),
        &observed(true, JobState::Absent),
        at("2026-11-29T11:00:00Z"),
        HOUR,
    )
    .unwrap();
    assert_eq!((refused.phase, refused.attempt), (CutOver, 1));
    assert_eq!(refused.reason, "ReimportRefused");
    // Removing spec.migration keeps the record of the cutover.
    let kept = advance(
        None,
        Some(&live),
        &observed(true, JobState::Absent),
        at("2026-11-29T12:00:00Z"),
        HOUR,
    );
    assert_eq!(kept.map(|k| k.phase), Some(CutOver));
}

#[test]
fn imports_are_counted_across_attempts() {
    let m = spec(1, None);
    let steps = run(
        &m,
        None,
        &[
            (observed(true, JobState::Absent), "2026-11-29T10:00:00Z"),
            (
                observed(
                    true,
                    JobState::Succeeded(at("2026-11-29T10:01:00Z"), "ok".into()),
                ),
                "2026-11-29T10:01:00Z",
            ),
        ],
    );
    let next = advance(
        Some(&spec(2, None)),
        steps.last(),
        &observed(true, JobState::Absent),
        at("2026-11-29T10:02:00Z"),
        HOUR,
    )
    .unwrap();
    assert_eq!(
        next.imports, 1,
        "attempt 2 may replace what attempt 1 imported"
    );
}

#[test]
fn an_unreadable_report_is_a_verification_error() {
    let m = spec(1, None);
    let mut status = awaiting("2026-11-29T10:00:00Z");
    status.phase = Verifying;
    let next = advance(
        Some(&m),
        Some(&status),
        &observed(
            true,
            JobState::Succeeded(at("2026-11-29T11:00:00Z"), "psql: garbage".into()),
        ),
        at("2026-11-29T11:00:01Z"),
        HOUR,
    )
    .unwrap();
    assert_eq!(
        (next.phase, next.reason.as_str()),
        (Failed, "VerificationError")
    );
}

#[test]
fn long_logs_are_cut_to_their_last_lines() {
    let log: String = (1..=50).map(|i| format!("line {i}\n")).collect();
    assert_eq!(
        last_lines(&log),
        "line 46 | line 47 | line 48 | line 49 | line 50"
    );
    let long = "x".repeat(5000);
    assert_eq!(last_lines(&long).chars().count(), 1003);
}
