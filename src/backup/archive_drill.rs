//! The check of a physical drill (`resources::physical_drill`): CloudNativePG has recovered a
//! system's latest base backup and the WAL archived after it into a throwaway Cluster; this
//! reads where recovery ended (the new timeline's history file: its last switch point) and
//! compares it with the newest WAL segment the archive held when the drill started. Recovery
//! replays every segment it can restore and stops at the first it cannot, so a segment that is
//! missing or corrupted ends it early, before that newest segment. Then every table's rows
//! are counted. The outcome is evidence, as a logical drill's.

use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::jiff::Timestamp;
use object_store::ObjectStore;
use object_store::path::Path;

use super::database::{self, Database};
use super::drill::{Evidence, Outcome};
use super::store::{self, Settings};

/// PostgreSQL's WAL segment size (CloudNativePG's default, which we never change).
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// What the check needs.
pub struct ArchiveDrill {
    /// The store and read credentials.
    pub store: Settings,
    /// The system's prefix (its namespace).
    pub prefix: String,
    /// The archive's server name (the system's Cluster).
    pub server: String,
    /// The recovered Cluster, as the check's role.
    pub database: Database,
    /// The drill's start: segments archived before it were there for recovery to restore.
    pub archived_before: Timestamp,
    /// The check is stopped after this long.
    pub deadline: Duration,
}

/// A WAL segment's name: timeline, log and segment number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    /// The timeline.
    pub timeline: u32,
    /// The position's high 32 bits.
    pub log: u32,
    /// The segment within the log.
    pub segment: u32,
}

impl Segment {
    /// A segment from an archived file name (`000000010000000000000003`, compressed or
    /// not); `None` for history, backup-label and partial files.
    pub fn parse(file: &str) -> Option<Self> {
        let stem = file
            .strip_suffix(".gz")
            .or_else(|| file.strip_suffix(".bz2"))
            .or_else(|| file.strip_suffix(".snappy"))
            .or_else(|| file.strip_suffix(".xz"))
            .or_else(|| file.strip_suffix(".zst"))
            .or_else(|| file.strip_suffix(".lz4"))
            .unwrap_or(file);
        if stem.len() != 24 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let part = |i: usize| u32::from_str_radix(&stem[i..i + 8], 16).ok();
        Some(Self {
            timeline: part(0)?,
            log: part(8)?,
            segment: part(16)?,
        })
    }

    /// Where the segment starts.
    pub fn start(&self) -> u64 {
        (u64::from(self.log) << 32) + u64::from(self.segment) * SEGMENT_BYTES
    }

    fn name(&self) -> String {
        format!("{:08X}{:08X}{:08X}", self.timeline, self.log, self.segment)
    }
}

/// The newest segment of the newest timeline that has any.
pub fn newest(segments: impl IntoIterator<Item = Segment>) -> Option<Segment> {
    segments.into_iter().max()
}

/// A position (`X/Y`) as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) + u64::from_str_radix(low, 16).ok()?)
}

fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Where recovery ended: the switch point of the last line of a timeline history file
/// (`<parent timeline>\t<switch point>\t<reason>`).
pub fn switch_point(history: &[String]) -> Option<u64> {
    history
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_whitespace().nth(1).and_then(parse_lsn))
        .next_back()
}

/// Judges a recovery that ended at `ended` against the newest segment archived before the
/// drill: passed when recovery replayed into it. An archived segment holds records from its
/// start, so a recovery that ended exactly there restored none of it.
pub fn judge(ended: u64, newest: Segment) -> Result<String, (&'static str, String)> {
    if ended > newest.start() {
        Ok(format!(
            "recovered to {} on the archive's timeline {}, into or past its newest segment {}",
            format_lsn(ended),
            newest.timeline,
            newest.name()
        ))
    } else {
        Err((
            "RecoveryEndedEarly",
            format!(
                "recovery ended at {}, before the archive's newest segment {} (at {}): a \
                 segment between could not be restored",
                format_lsn(ended),
                newest.name(),
                format_lsn(newest.start())
            ),
        ))
    }
}

/// Runs the check within its deadline; whatever happens, evidence comes back.
/// Its time and duration are the whole drill's, from the drill's start (its Cluster's
/// creation): the recovery is most of it.
pub async fn run(drill: &ArchiveDrill) -> Evidence {
    let started_at = drill.archived_before;
    let result = match tokio::time::timeout(drill.deadline, check(drill)).await {
        Ok(result) => result,
        Err(_) => Err(("Deadline", format!("stopped after {:?}", drill.deadline))),
    };
    let duration_seconds =
        u64::try_from(Timestamp::now().duration_since(started_at).as_secs()).unwrap_or(0);
    match result {
        Ok((what, tables, rows)) => Evidence {
            backup: crate::resources::physical_drill::EVIDENCE_BACKUP.into(),
            started_at,
            duration_seconds,
            tables,
            rows,
            result: Outcome::Passed,
            reason: None,
            message: format!("latest base backup and WAL {what}: {tables} tables, {rows} rows"),
        },
        Err((reason, message)) => Evidence {
            backup: crate::resources::physical_drill::EVIDENCE_BACKUP.into(),
            started_at,
            duration_seconds,
            tables: 0,
            rows: 0,
            result: Outcome::Failed,
            reason: Some(reason.into()),
            message,
        },
    }
}

type Failure = (&'static str, String);

async fn check(drill: &ArchiveDrill) -> Result<(String, usize, i64), Failure> {
    let newest = newest_archived(drill).await?.ok_or_else(|| {
        (
            "NoArchivedWal",
            format!(
                "no WAL segment under {}/archive/{}/wals/ before {}",
                drill.prefix, drill.server, drill.archived_before
            ),
        )
    })?;
    let unreachable = |e: &dyn std::fmt::Display| ("RecoveredDatabaseUnreachable", e.to_string());
    let client = database::connect(&drill.database)
        .await
        .map_err(|e| unreachable(&e))?;
    let history = history(&client).await?;
    let ended = switch_point(&history).ok_or_else(|| {
        (
            "NotRecovered",
            "the recovered database has no timeline history: it did not end a recovery".into(),
        )
    })?;
    let what = judge(ended, newest)?;
    let counts = super::agent::row_counts(&client)
        .await
        .map_err(|e| ("RecoveredDatabaseUnreadable", e.to_string()))?;
    let rows = counts.iter().map(|t| t.rows).sum();
    Ok((what, counts.len(), rows))
}

/// The lines of the current timeline's history file, read with COPY (the check's role may
/// read server files; the path is relative to the data directory).
async fn history(client: &tokio_postgres::Client) -> Result<Vec<String>, Failure> {
    let failed = |e: tokio_postgres::Error| ("RecoveredDatabaseUnreadable", e.to_string());
    let timeline: i32 = client
        .query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[])
        .await
        .map_err(failed)?
        .get(0);
    if timeline <= 1 {
        return Ok(Vec::new());
    }
    let file = format!("pg_wal/{timeline:08X}.history");
    client
        .batch_execute(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS timeline_history (line text); \
             TRUNCATE timeline_history; \
             COPY timeline_history FROM '{file}' WITH (FORMAT text, DELIMITER E'\\x01')"
        ))
        .await
        .map_err(failed)?;
    let rows = client
        .query("SELECT line FROM timeline_history", &[])
        .await
        .map_err(failed)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The newest segment archived before the drill started.
async fn newest_archived(drill: &ArchiveDrill) -> Result<Option<Segment>, Failure> {
    let unreachable = |e: object_store::Error| ("StoreUnreachable", e.to_string());
    let client = store::connect(&drill.store).map_err(unreachable)?;
    let root = Path::from(format!("{}/archive/{}/wals", drill.prefix, drill.server));
    let mut listing = client.list(Some(&root));
    let mut segments = Vec::new();
    while let Some(object) = listing.try_next().await.map_err(unreachable)? {
        let before = Timestamp::from_millisecond(object.last_modified.timestamp_millis())
            .is_ok_and(|t| t < drill.archived_before);
        if let Some(segment) = object.location.filename().and_then(Segment::parse)
            && before
        {
            segments.push(segment);
        }
    }
    Ok(newest(segments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_read_from_archived_names_and_other_files_are_not() {
        let s = Segment::parse("00000002000000010000000A.gz").unwrap();
        assert_eq!((s.timeline, s.log, s.segment), (2, 1, 10));
        assert_eq!(s.start(), (1 << 32) + 10 * SEGMENT_BYTES);
        assert!(Segment::parse("00000002.history.gz").is_none());
        assert!(Segment::parse("000000010000000000000003.00000028.backup.gz").is_none());
        assert!(Segment::parse("000000010000000000000003.partial.gz").is_none());
        let newest = newest(
            [
                "000000010000000000000009.gz",
                "000000020000000000000007.gz",
                "000000020000000000000008",
            ]
            .iter()
            .filter_map(|f| Segment::parse(f)),
        )
        .unwrap();
        assert_eq!(
            newest.name(),
            "000000020000000000000008",
            "the newest timeline's"
        );
    }

    #[test]
    fn recovery_passes_when_it_reached_the_newest_segment_and_fails_naming_where_it_stopped() {
        let history = vec![
            "1\t0/5000060\tno recovery target specified".to_string(),
            "".to_string(),
            "2\t0/9000A28\tno recovery target specified".to_string(),
        ];
        let ended = switch_point(&history).unwrap();
        assert_eq!(ended, 0x9000A28);
        let newest = Segment::parse("000000020000000000000009.gz").unwrap();
        assert!(judge(ended, newest).unwrap().contains("0/9000A28"));

        let early = switch_point(&["1\t0/4FFFFD8\tno recovery target specified".into()]).unwrap();
        let (reason, message) = judge(early, newest).unwrap_err();
        assert_eq!(reason, "RecoveryEndedEarly");
        assert!(message.contains("0/4FFFFD8"), "{message}");
        assert!(message.contains("000000020000000000000009"), "{message}");
        // Ended right where the newest segment starts: nothing of it was replayed.
        let (reason, _) = judge(newest.start(), newest).unwrap_err();
        assert_eq!(reason, "RecoveryEndedEarly");
        assert!(switch_point(&[]).is_none());
        assert_eq!(parse_lsn("1/A"), Some((1 << 32) + 10));
        assert_eq!(parse_lsn("nonsense"), None);
    }
}
