//! The continuous archive in status, from the plugin's ObjectStore (the recovery window it
//! reads from the store) and the Cluster (CloudNativePG's ContinuousArchiving condition, set
//! from PostgreSQL's archiver by the instance manager).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::api::ArchiveStatus;
use crate::resources::cnpg::CLUSTER;

/// CloudNativePG's condition of WAL archiving on a Cluster.
const CONTINUOUS_ARCHIVING: &str = "ContinuousArchiving";

/// The archive's status from the live ObjectStore and Cluster (either may not exist yet).
pub fn read(
    destination: String,
    object_store: Option<&Value>,
    cluster: Option<&Value>,
) -> ArchiveStatus {
    // The window of the Cluster's server (its name: the plugin's default `serverName`).
    let window = object_store.map(|o| &o["status"]["serverRecoveryWindow"][CLUSTER]);
    let time = |key: &str| {
        window
            .and_then(|w| w[key].as_str())
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map(Time)
    };
    let condition = cluster.and_then(|c| {
        c["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == CONTINUOUS_ARCHIVING)
    });
    let wal_archiving = condition.map(|c| c["status"] == "True");
    let message = condition
        .filter(|_| wal_archiving == Some(false))
        .and_then(|c| c["message"].as_str())
        .map(String::from);
    ArchiveStatus {
        destination,
        first_recoverability_point: time("firstRecoverabilityPoint"),
        last_base_backup_time: time("lastSuccessfulBackupTime"),
        last_failed_base_backup_time: time("lastFailedBackupTime"),
        wal_archiving,
        message,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_window_comes_from_the_object_store_and_archiving_from_the_cluster() {
        let store = json!({ "status": { "serverRecoveryWindow": { "postgres": {
            "firstRecoverabilityPoint": "2026-12-07T10:00:00Z",
            "lastSuccessfulBackupTime": "2026-12-07T10:00:05Z"
        } } } });
        let cluster = json!({ "status": { "conditions": [
            { "type": "Ready", "status": "True", "message": "" },
            { "type": "ContinuousArchiving", "status": "False", "message": "unexpected failure invoking barman-cloud-wal-archive: exit status 4" }
        ] } });
        let status = read("s3://b/ns/archive".into(), Some(&store), Some(&cluster));
        assert_eq!(
            status.first_recoverability_point.unwrap().0.to_string(),
            "2026-12-07T10:00:00Z"
        );
        assert!(status.last_base_backup_time.is_some());
        assert!(status.last_failed_base_backup_time.is_none());
        assert_eq!(status.wal_archiving, Some(false));
        assert!(status.message.unwrap().contains("exit status 4"));
    }

    #[test]
    fn nothing_is_claimed_before_the_archive_reports() {
        let status = read(
            "s3://b/ns/archive".into(),
            None,
            Some(&json!({ "status": {} })),
        );
        assert_eq!(
            status,
            ArchiveStatus {
                destination: "s3://b/ns/archive".into(),
                ..ArchiveStatus::default()
            }
        );
        let working = json!({ "status": { "conditions": [
            { "type": "ContinuousArchiving", "status": "True", "message": "Continuous archiving is working" }
        ] } });
        let status = read("d".into(), None, Some(&working));
        assert_eq!((status.wal_archiving, status.message), (Some(true), None));
    }
}
