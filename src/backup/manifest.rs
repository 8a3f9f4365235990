//! The manifest written beside each dump once it is uploaded and verified: what a restore or a
//! restore drill checks the dump against. A backup without a manifest is not a backup (a
//! failed or interrupted run), and retention removes it once the run's deadline has passed.

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Name of the encrypted dump object in a backup's directory.
pub const DUMP: &str = "dump.age";
/// Name of the manifest object in a backup's directory.
pub const MANIFEST: &str = "manifest.json";

/// One backup: `<prefix>/<id>/dump.age` and `<prefix>/<id>/manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The layout of this file; 1.
    pub format: u32,
    /// The system (its namespace name, also the prefix).
    pub system: String,
    /// The backup's id: its start time, `YYYYMMDDTHHMMSSZ`.
    pub id: String,
    /// When the snapshot was taken.
    pub started_at: Timestamp,
    /// When the upload was verified.
    pub finished_at: Timestamp,
    /// `SHOW server_version` of the database.
    pub server_version: String,
    /// The dump's object key, relative to the prefix.
    pub dump: String,
    /// Bytes of the encrypted dump as stored.
    pub size: u64,
    /// SHA-256 of the encrypted dump as stored, lowercase hex.
    pub sha256: String,
    /// How the dump is encrypted: `age-x25519`.
    pub encryption: String,
    /// The age public keys it is encrypted to.
    pub recipients: Vec<String>,
    /// Exact row counts of every table, taken in the dump's own snapshot.
    pub tables: Vec<TableRows>,
    /// The backup taken when the system was deleted: kept apart from retention.
    #[serde(default, rename = "final")]
    pub final_backup: bool,
}

/// A table's exact row count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Rows.
    pub rows: i64,
}

/// The id of a backup started at `time`: sortable, and a valid path segment.
pub fn id(time: Timestamp) -> String {
    time.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// The id of a system's final backup (taken when it is deleted): never pruned by retention.
pub fn final_id(time: Timestamp) -> String {
    format!("{}-final", id(time))
}

/// The start time of any backup id, final ones included (what restores choose from).
pub fn time_of_any(id: &str) -> Option<Timestamp> {
    time_of(id.strip_suffix("-final").unwrap_or(id))
}

/// The start time a (non-final) id names; `None` for anything else, final backups included:
/// retention never prunes those.
pub fn time_of(id: &str) -> Option<Timestamp> {
    if id.len() != 16 || !id.ends_with('Z') {
        return None;
    }
    let civil = k8s_openapi::jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S", &id[..15]).ok()?;
    civil
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_the_start_time_and_reads_back() {
        let t: Timestamp = "2026-11-29T07:15:03Z".parse().unwrap();
        assert_eq!(id(t), "20261129T071503Z");
        assert_eq!(time_of("20261129T071503Z"), Some(t));
        for other in [
            "20261129T071503",
            "2026112XT071503Z",
            "lost+found",
            "20261399T071503Z",
        ] {
            assert_eq!(time_of(other), None, "{other}");
        }
    }
}
