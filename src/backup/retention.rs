//! Which backups are kept, by age rather than by count, whatever the schedule: every backup of
//! the last `days` days, the newest of each of the last `weeks` ISO weeks and of each of the
//! last `months` calendar months (UTC), and always the newest of all. Times are the backups'
//! start times (their ids), so pruning needs no manifest read.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// How long backups are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Every backup younger than this many days.
    pub days: u32,
    /// The newest of each of this many ISO weeks, the current one included.
    pub weeks: u32,
    /// The newest of each of this many calendar months, the current one included.
    pub months: u32,
}

/// Weeks since an epoch Monday (1970-01-05), in UTC.
fn week(t: Timestamp) -> i64 {
    let monday = Timestamp::from_second(4 * 86_400).expect("a valid timestamp");
    t.duration_since(monday).as_secs().div_euclid(7 * 86_400)
}

/// Months since year 0, in UTC.
fn month(t: Timestamp) -> i64 {
    let date = t.to_zoned(TimeZone::UTC).date();
    i64::from(date.year()) * 12 + i64::from(date.month()) - 1
}

/// The backups of `times` to keep at `now`.
pub fn keep(times: &[Timestamp], now: Timestamp, policy: Policy) -> BTreeSet<Timestamp> {
    let mut kept = BTreeSet::new();
    if let Some(newest) = times.iter().max() {
        kept.insert(*newest);
    }
    let window = SignedDuration::from_hours(24 * i64::from(policy.days));
    kept.extend(times.iter().filter(|t| now.duration_since(**t) < window));
    let mut newest_of = |period: fn(Timestamp) -> i64, count: u32| {
        let mut newest: BTreeMap<i64, Timestamp> = BTreeMap::new();
        for t in times {
            let age = period(now) - period(*t);
            if (0..i64::from(count)).contains(&age) {
                let slot = newest.entry(period(*t)).or_insert(*t);
                *slot = (*slot).max(*t);
            }
        }
        kept.extend(newest.into_values());
    };
    newest_of(week, policy.weeks);
    newest_of(month, policy.months);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    const POLICY: Policy = Policy {
        days: 7,
        weeks: 4,
        months: 12,
    };
    /// Sunday noon, UTC.
    const NOW: &str = "2026-11-29T12:00:00Z";

    /// Runs the schedule (`every` hours from `first_hour`, on the weekdays where `runs`
    /// holds) from June 2025 to NOW, pruning after each run as the agent does, and returns
    /// what is left.
    fn survivors(every: i64, first_hour: i64, runs: fn(Timestamp) -> bool) -> Vec<Timestamp> {
        let mut stored: Vec<Timestamp> = Vec::new();
        let mut t = at("2025-06-01T00:00:00Z") + SignedDuration::from_hours(first_hour);
        while t <= at(NOW) {
            if runs(t) {
                stored.push(t);
                let kept = keep(&stored, t, POLICY);
                stored.retain(|s| kept.contains(s));
            }
            t += SignedDuration::from_hours(every);
        }
        stored
    }

    fn any_day(_: Timestamp) -> bool {
        true
    }

    fn weekdays(t: Timestamp) -> bool {
        t.to_zoned(TimeZone::UTC)
            .date()
            .weekday()
            .to_monday_one_offset()
            <= 5
    }

    /// Everything of the last seven days (after 2026-11-22T12:00), then these.
    fn expected(recent: Vec<Timestamp>, older: &[&str]) -> Vec<Timestamp> {
        let mut all: Vec<Timestamp> = older.iter().map(|t| at(t)).collect();
        all.extend(recent);
        all.sort();
        all
    }

    fn hourly_from(start: &str, every: i64) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = at(start);
        while t <= at(NOW) {
            out.push(t);
            t += SignedDuration::from_hours(every);
        }
        out
    }

    /// The newest backup of each of the eleven months before November 2026 at `time` on
    /// their last day.
    fn month_ends(time: &str) -> Vec<String> {
        [
            "2025-12-31",
            "2026-01-31",
            "2026-02-28",
            "2026-03-31",
            "2026-04-30",
            "2026-05-31",
            "2026-06-30",
            "2026-07-31",
            "2026-08-31",
            "2026-09-30",
            "2026-10-31",
        ]
        .iter()
        .map(|d| format!("{d}T{time}Z"))
        .collect()
    }

    #[test]
    fn hourly_backups_keep_seven_days_then_the_last_of_each_week_and_month() {
        let mut older = vec![
            "2026-11-08T23:00:00Z".to_string(),
            "2026-11-15T23:00:00Z".into(),
        ];
        older.extend(month_ends("23:00:00"));
        let older: Vec<&str> = older.iter().map(String::as_str).collect();
        let want = expected(hourly_from("2026-11-22T13:00:00Z", 1), &older);
        assert_eq!(want.len(), 168 + 2 + 11);
        assert_eq!(survivors(1, 0, any_day), want);
    }

    #[test]
    fn six_hourly_backups_keep_the_same_days_weeks_and_months() {
        let mut older = vec![
            "2026-11-08T18:00:00Z".to_string(),
            "2026-11-15T18:00:00Z".into(),
        ];
        older.extend(month_ends("18:00:00"));
        let older: Vec<&str> = older.iter().map(String::as_str).collect();
        let want = expected(hourly_from("2026-11-22T18:00:00Z", 6), &older);
        assert_eq!(want.len(), 28 + 2 + 11);
        assert_eq!(survivors(6, 0, any_day), want);
    }

    #[test]
    fn daily_backups_keep_a_week_then_each_sunday_and_each_month_end() {
        let mut older: Vec<String> = ["2026-11-08", "2026-11-15", "2026-11-22"]
            .iter()
            .map(|d| format!("{d}T02:00:00Z"))
            .collect();
        older.extend(month_ends("02:00:00"));
        let older: Vec<&str> = older.iter().map(String::as_str).collect();
        let want = expected(hourly_from("2026-11-23T02:00:00Z", 24), &older);
        assert_eq!(want.len(), 7 + 3 + 11);
        assert_eq!(survivors(24, 2, any_day), want);
    }

    #[test]
    fn weekday_backups_keep_each_friday_and_each_months_last_weekday() {
        let older = [
            "2026-11-06T02:00:00Z",
            "2026-11-13T02:00:00Z",
            "2026-11-20T02:00:00Z",
            "2025-12-31T02:00:00Z",
            "2026-01-30T02:00:00Z",
            "2026-02-27T02:00:00Z",
            "2026-03-31T02:00:00Z",
            "2026-04-30T02:00:00Z",
            "2026-05-29T02:00:00Z",
            "2026-06-30T02:00:00Z",
            "2026-07-31T02:00:00Z",
            "2026-08-31T02:00:00Z",
            "2026-09-30T02:00:00Z",
            "2026-10-30T02:00:00Z",
        ];
        let recent: Vec<Timestamp> = hourly_from("2026-11-23T02:00:00Z", 24)
            .into_iter()
            .filter(|t| weekdays(*t))
            .collect();
        let want = expected(recent, &older);
        assert_eq!(want.len(), 5 + 3 + 11);
        assert_eq!(survivors(24, 2, weekdays), want);
    }

    #[test]
    fn the_newest_backup_is_kept_however_old() {
        let old = at("2020-01-01T00:00:00Z");
        let kept = keep(&[old], at(NOW), POLICY);
        assert!(kept.contains(&old));
        assert!(keep(&[], at(NOW), POLICY).is_empty());
    }
}
