//! The `backup.archiving` section: continuous WAL archiving and base backups of the systems on
//! the CloudNativePG engine, by CloudNativePG's Barman Cloud plugin, into the same object
//! store as the logical dumps (each system's own prefix, its own credentials).

use serde::{Deserialize, Serialize};

/// How the CloudNativePG systems' WAL and base backups are archived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Archiving {
    /// Archive (with an object store, on the CloudNativePG engine). The platform installs the
    /// plugin first (docs/archiving.md): a Cluster naming a plugin that is not there does not
    /// start.
    #[serde(default)]
    pub enabled: bool,
    /// The plugin's name, as it registers with CloudNativePG.
    #[serde(default = "default_plugin")]
    pub plugin: String,
    /// PostgreSQL's `archive_timeout`: a quiet database still switches to a new WAL segment
    /// (and archives the last one) this often, which bounds what can be lost when nothing
    /// else fills a segment. A busy database archives each 16 MiB segment as it fills.
    #[serde(default = "default_archive_timeout")]
    pub archive_timeout: String,
    /// Base backups: a six-field cron schedule (seconds first, as CloudNativePG reads it),
    /// and one right after a system's archive is set up.
    #[serde(default = "default_base_backup_schedule")]
    pub base_backup_schedule: String,
    /// Base backups and the WAL to recover them are kept so that any time within this many
    /// days can be recovered (the plugin removes what is older).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

impl Default for Archiving {
    fn default() -> Self {
        Self {
            enabled: false,
            plugin: default_plugin(),
            archive_timeout: default_archive_timeout(),
            base_backup_schedule: default_base_backup_schedule(),
            retention_days: default_retention_days(),
        }
    }
}

fn default_plugin() -> String {
    "barman-cloud.cloudnative-pg.io".into()
}

fn default_archive_timeout() -> String {
    "5min".into()
}

fn default_base_backup_schedule() -> String {
    "0 0 1 * * *".into()
}

fn default_retention_days() -> u32 {
    30
}

/// Seconds of a PostgreSQL time setting such as `5min`, `300s` or `1h` (the units PostgreSQL
/// accepts for `archive_timeout`; a bare number is seconds).
pub fn setting_seconds(value: &str) -> Option<u64> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let factor = match unit {
        "" | "s" => 1,
        "min" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    Some(number * factor)
}

impl Archiving {
    /// The first key that is wrong and why.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        match setting_seconds(&self.archive_timeout) {
            Some(1..=3600) => {}
            _ => {
                return Err((
                    "backup.archiving.archiveTimeout".into(),
                    "must be a time of 1s to 1h in PostgreSQL's units (for example 60s, 5min)"
                        .into(),
                ));
            }
        }
        let fields = self.base_backup_schedule.split_whitespace().count();
        if fields != 6 {
            return Err((
                "backup.archiving.baseBackupSchedule".into(),
                format!(
                    "must have six fields (seconds first, as CloudNativePG reads it), not {fields}"
                ),
            ));
        }
        if self.retention_days < 1 {
            return Err((
                "backup.archiving.retentionDays".into(),
                "must be at least 1".into(),
            ));
        }
        if self.plugin.is_empty() {
            return Err((
                "backup.archiving.plugin".into(),
                "must name the plugin".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_timeouts_read_in_postgresql_units() {
        assert_eq!(setting_seconds("5min"), Some(300));
        assert_eq!(setting_seconds("60s"), Some(60));
        assert_eq!(setting_seconds("90"), Some(90));
        assert_eq!(setting_seconds("1h"), Some(3600));
        assert_eq!(setting_seconds("5m"), None);
        assert_eq!(setting_seconds("min"), None);
    }

    #[test]
    fn bad_archiving_settings_name_their_key() {
        let bad = |change: fn(&mut Archiving)| {
            let mut archiving = Archiving::default();
            change(&mut archiving);
            archiving.check().unwrap_err().0
        };
        assert!(Archiving::default().check().is_ok());
        assert_eq!(
            bad(|a| a.archive_timeout = "0s".into()),
            "backup.archiving.archiveTimeout"
        );
        assert_eq!(
            bad(|a| a.archive_timeout = "2h".into()),
            "backup.archiving.archiveTimeout"
        );
        assert_eq!(
            bad(|a| a.base_backup_schedule = "0 1 * * *".into()),
            "backup.archiving.baseBackupSchedule"
        );
        assert_eq!(
            bad(|a| a.retention_days = 0),
            "backup.archiving.retentionDays"
        );
    }
}
