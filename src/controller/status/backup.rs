//! BackupReady: the last backup within the RPO and its last restore drill passed; and when
//! that verdict can next change by the passage of time alone. A system that archives its WAL
//! meets its RPO through the archive, its daily logical dumps being the second line.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::api::{ArchiveStatus, DrillStatus, HealthSystem};
use crate::controller::status::condition::{RESTORE_DRILL_FAILED, Stamp, types};
use crate::controller::status::observed::Observed;

/// The BackupReady condition: what the backups' age says, and, where drills run, only while
/// a restore of them was proven recently ([`unproven`]).
pub fn condition(system: &HealthSystem, observed: &Observed, stamp: Stamp) -> Condition {
    let verdict = by_age(system, observed, stamp);
    unproven(observed, &verdict, stamp).unwrap_or(verdict)
}

/// BackupReady's reason where drills run and none that passed is recent enough.
pub const BACKUP_UNVERIFIED: &str = "BackupUnverified";

/// When the system's backups were last proven: the start of the newest drill of either line
/// that passed.
pub fn last_proven(observed: &Observed) -> Option<Timestamp> {
    observed.drill_success.max(observed.physical_drill_success)
}

/// BackupUnverified in place of a True `verdict` that rests on a backup (not one that merely
/// awaits the first), where drills run and the newest that passed is missing or older than
/// their maximum age: a backup counts only once a restore of it has been proven.
fn unproven(observed: &Observed, verdict: &Condition, stamp: Stamp) -> Option<Condition> {
    let max_age = observed.drill_max_age?;
    if verdict.status != "True"
        || matches!(
            verdict.reason.as_str(),
            "AwaitingFirstBackup" | AWAITING_BASE_BACKUP
        )
    {
        return None;
    }
    let hours = max_age.as_secs() / 3600;
    let message = match last_proven(observed) {
        Some(t)
            if Duration::try_from(stamp.now.duration_since(t)).unwrap_or_default() <= max_age =>
        {
            return None;
        }
        Some(t) => format!(
            "the newest restore drill that passed, at {t}, is older than the drills' maximum age ({hours}h): the backups are not proven recently ({})",
            verdict.message
        ),
        None => format!(
            "no restore drill has passed yet: a backup counts once a restore of it is proven (the first drill starts after the first backup; status.backup.lastDrill and lastPhysicalDrill say how it went) ({})",
            verdict.message
        ),
    };
    Some(stamp.condition(types::BACKUP, false, BACKUP_UNVERIFIED, message))
}

/// BackupReady by the backups' age and the drills' failures.
fn by_age(system: &HealthSystem, observed: &Observed, stamp: Stamp) -> Condition {
    let now = stamp.now;
    let rpo = rpo(system);
    let rpo_text = &system.spec.backup.rpo;
    let age = |t: Timestamp| Duration::try_from(now.duration_since(t)).unwrap_or_default();
    let created = created(system, now);
    let failed_drill = failed_drill(observed);
    // WAL not reaching the archive: what can be lost grows by the minute.
    if let Some(archive) = observed
        .archive
        .as_ref()
        .filter(|a| a.wal_archiving == Some(false))
    {
        return stamp.condition(
            types::BACKUP,
            false,
            ARCHIVING_FAILING,
            format!(
                "WAL is not being archived to {}: {} (the plugin-barman-cloud container's log in \
                 the primary's pod says why: credentials, the bucket policy, the store's address)",
                archive.destination,
                archive.message.as_deref().unwrap_or("no reason given")
            ),
        );
    }
    if let Some(archive) = observed.archive.as_ref() {
        return with_archive(system, observed, archive, stamp);
    }
    match observed.last_success {
        Some(_) if let Some(drill) = failed_drill => drill_failed(drill, stamp),
        Some(t) if age(t) <= rpo => stamp.condition(
            types::BACKUP,
            true,
            "BackupFresh",
            format!("last successful backup at {t}"),
        ),
        Some(t) => stamp.condition(
            types::BACKUP,
            false,
            "BackupStale",
            format!("last successful backup at {t} is older than the RPO of {rpo_text}"),
        ),
        None if age(created) <= rpo => stamp.condition(
            types::BACKUP,
            true,
            "AwaitingFirstBackup",
            format!("no backup yet; the first is due within the RPO of {rpo_text}"),
        ),
        None => stamp.condition(
            types::BACKUP,
            false,
            "NoSuccessfulBackup",
            format!("no successful backup within the RPO of {rpo_text}"),
        ),
    }
}

/// BackupReady's reason while WAL archiving fails.
pub const ARCHIVING_FAILING: &str = "ArchivingFailing";
/// ...while WAL is archived, a base backup exists and the logical dumps are fresh.
pub const ARCHIVE_CURRENT: &str = "ArchiveCurrent";
/// ...while a new system's archive awaits its first base backup, within the RPO.
pub const AWAITING_BASE_BACKUP: &str = "AwaitingFirstBaseBackup";
/// ...when the archive has no base backup an RPO after the system's creation.
pub const NO_BASE_BACKUP: &str = "NoBaseBackup";

/// With an archive the logical dumps are the second line, run daily whatever the RPO: one
/// counts as stale once older than a day and the slack of a late or long run (or than the
/// RPO, when that is longer).
const SECOND_LINE_AGE: Duration = Duration::from_secs(26 * 3600);

fn second_line_age(rpo: Duration) -> Duration {
    rpo.max(SECOND_LINE_AGE)
}

/// BackupReady of a system whose WAL is archived (or not yet failing to be): the RPO is the
/// archive's, met while WAL reaches the store, which `condition` checked; a base backup
/// must exist for anything to be recoverable, and the logical dumps must be no older than
/// [`second_line_age`].
fn with_archive(
    system: &HealthSystem,
    observed: &Observed,
    archive: &ArchiveStatus,
    stamp: Stamp,
) -> Condition {
    let now = stamp.now;
    let rpo = rpo(system);
    let age = |t: Timestamp| Duration::try_from(now.duration_since(t)).unwrap_or_default();
    let created = created(system, now);
    if let Some(drill) = failed_drill(observed) {
        return drill_failed(drill, stamp);
    }
    let destination = &archive.destination;
    let Some(recoverable_from) = archive.first_recoverability_point.as_ref() else {
        let rpo_text = &system.spec.backup.rpo;
        return if age(created) <= rpo {
            stamp.condition(
                types::BACKUP,
                true,
                AWAITING_BASE_BACKUP,
                format!(
                    "{destination} awaits its first base backup, due within the RPO of {rpo_text}"
                ),
            )
        } else {
            stamp.condition(
                types::BACKUP,
                false,
                NO_BASE_BACKUP,
                format!(
                    "{destination} holds no base backup an RPO ({rpo_text}) after the system's creation: nothing in it can be recovered (the Backup objects of its namespace say why)"
                ),
            )
        };
    };
    let limit = second_line_age(rpo);
    let hours = limit.as_secs() / 3600;
    let archived = format!(
        "WAL archived continuously to {destination}, recoverable from {}",
        recoverable_from.0
    );
    match observed.last_success {
        Some(t) if age(t) <= limit => stamp.condition(
            types::BACKUP,
            true,
            ARCHIVE_CURRENT,
            format!("{archived}; last logical backup at {t}"),
        ),
        Some(t) => stamp.condition(
            types::BACKUP,
            false,
            "BackupStale",
            format!(
                "{archived}, but the last logical backup (the second line) at {t} is older than {hours}h"
            ),
        ),
        None if age(created) <= limit => stamp.condition(
            types::BACKUP,
            true,
            ARCHIVE_CURRENT,
            format!("{archived}; no logical backup yet (due within {hours}h)"),
        ),
        None => stamp.condition(
            types::BACKUP,
            false,
            "NoSuccessfulBackup",
            format!("{archived}, but no logical backup (the second line) succeeded within {hours}h"),
        ),
    }
}

/// The newest drill of either line that failed: the logical one's first, then the
/// physical one's (the archive's).
fn failed_drill(observed: &Observed) -> Option<&DrillStatus> {
    [observed.drill.as_ref(), observed.physical_drill.as_ref()]
        .into_iter()
        .flatten()
        .find(|d| d.result != "Passed")
}

/// BackupReady when the newest restore drill failed, naming the backup, the Job and why.
fn drill_failed(drill: &DrillStatus, stamp: Stamp) -> Condition {
    let what = if drill.backup == crate::resources::physical_drill::EVIDENCE_BACKUP {
        "the physical drill of the WAL archive".to_string()
    } else {
        format!("the restore drill of backup {}", drill.backup)
    };
    stamp.condition(
        types::BACKUP,
        false,
        RESTORE_DRILL_FAILED,
        format!(
            "{what} ({}) failed: {}: {}",
            drill.job,
            drill.reason.as_deref().unwrap_or("Failed"),
            drill.message
        ),
    )
}

fn created(system: &HealthSystem, now: Timestamp) -> Timestamp {
    system
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now)
}

/// The system's RPO; a day if it cannot be read (admission allows only the forms
/// [`parse_rpo`] reads).
pub fn rpo(system: &HealthSystem) -> Duration {
    parse_rpo(&system.spec.backup.rpo).unwrap_or(Duration::from_secs(24 * 3600))
}

/// Parses an RPO such as "24h" or "90m" (the forms admission allows).
pub fn parse_rpo(rpo: &str) -> Option<Duration> {
    let (number, unit) = rpo.split_at(rpo.len().checked_sub(1)?);
    let number: u64 = number.parse().ok()?;
    match unit {
        "h" => Some(Duration::from_secs(number * 3600)),
        "m" => Some(Duration::from_secs(number * 60)),
        _ => None,
    }
}

/// When the BackupReady verdict can next change by the passage of time alone.
pub fn next_backup_deadline(
    system: &HealthSystem,
    observed: &Observed,
    now: Timestamp,
) -> Option<Duration> {
    let rpo = parse_rpo(&system.spec.backup.rpo)?;
    let created = system.metadata.creation_timestamp.as_ref().map(|t| t.0)?;
    let since = observed.last_success.unwrap_or(created);
    let left = |limit: Duration, since: Timestamp| {
        let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or_default();
        limit
            .checked_sub(elapsed)
            .map(|d| d + Duration::from_secs(1))
    };
    // Where drills run, the newest proof ages out.
    let proof = observed
        .drill_max_age
        .zip(last_proven(observed))
        .and_then(|(max_age, proven)| left(max_age, proven));
    let by_age = match observed.archive.as_ref() {
        None => left(rpo, since),
        Some(archive) => {
            let dumps = left(second_line_age(rpo), since);
            let base_backup = archive
                .first_recoverability_point
                .is_none()
                .then(|| left(rpo, created))
                .flatten();
            dumps.into_iter().chain(base_backup).min()
        }
    };
    by_age.into_iter().chain(proof).min()
}
