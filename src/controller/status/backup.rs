//! BackupReady: the last backup within the RPO and its last restore drill passed; and when
//! that verdict can next change by the passage of time alone.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::api::HealthSystem;
use crate::controller::status::condition::{RESTORE_DRILL_FAILED, Stamp, types};
use crate::controller::status::observed::Observed;

/// The BackupReady condition.
pub fn condition(system: &HealthSystem, observed: &Observed, stamp: Stamp) -> Condition {
    let now = stamp.now;
    let rpo = parse_rpo(&system.spec.backup.rpo).unwrap_or(Duration::from_secs(24 * 3600));
    let rpo_text = &system.spec.backup.rpo;
    let age = |t: Timestamp| Duration::try_from(now.duration_since(t)).unwrap_or_default();
    let created = system
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let failed_drill = observed.drill.as_ref().filter(|d| d.result != "Passed");
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
    match observed.last_success {
        Some(_) if let Some(drill) = failed_drill => stamp.condition(
            types::BACKUP,
            false,
            RESTORE_DRILL_FAILED,
            format!(
                "the restore drill of backup {} ({}) failed: {}: {}",
                drill.backup,
                drill.job,
                drill.reason.as_deref().unwrap_or("Failed"),
                drill.message
            ),
        ),
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
    let since = observed
        .last_success
        .or_else(|| system.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or_default();
    rpo.checked_sub(elapsed).map(|d| d + Duration::from_secs(1))
}
