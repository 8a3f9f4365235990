//! The statuses this replica has just written, until its HealthSystem cache shows them. A
//! reconcile woken by a child's event may still see its system as it was before its own last
//! status write (that write's watch event has not arrived yet): compared with that stale
//! copy, the same status looked new and was written again (the fleet benchmark's log showed a
//! second write 67 ms after the first), and its Ready event told twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::{HealthSystem, HealthSystemStatus};

/// How long a written status is trusted over the cache's copy (which normally catches up
/// within milliseconds); after that the cache is the truth again, whoever wrote it.
const TRUSTED: Duration = Duration::from_secs(10);

/// By system UID: the status written last and when, while the cache may not show it.
#[derive(Default)]
pub struct WrittenStatus {
    recent: Mutex<HashMap<String, (Instant, HealthSystemStatus)>>,
}

impl WrittenStatus {
    /// The status the system `uid` has at `now`: the one this replica wrote last while the
    /// cache (`cached`) does not show it yet, else the cache's.
    pub fn current(
        &self,
        uid: &str,
        cached: Option<&HealthSystemStatus>,
        now: Instant,
    ) -> Option<HealthSystemStatus> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        match recent.get(uid) {
            Some((at, written)) if now.duration_since(*at) < TRUSTED && Some(written) != cached => {
                Some(written.clone())
            }
            Some(_) => {
                recent.remove(uid);
                cached.cloned()
            }
            None => cached.cloned(),
        }
    }

    /// `system` with the status it has at `now` (see [`Self::current`]).
    pub fn view(&self, system: &HealthSystem, now: Instant) -> HealthSystem {
        let uid = system.metadata.uid.as_deref().unwrap_or_default();
        let status = self.current(uid, system.status.as_ref(), now);
        HealthSystem {
            metadata: system.metadata.clone(),
            spec: system.spec.clone(),
            status,
        }
    }

    /// `status` was written for the system `uid` at `now`. Copies older than [`TRUSTED`] go
    /// (the cache is the truth for them): a system that settled is not read again for
    /// minutes, and its copy would stay that long.
    pub fn wrote(&self, uid: &str, status: HealthSystemStatus, now: Instant) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|_, (at, _)| now.duration_since(*at) < TRUSTED);
        recent.insert(uid.to_string(), (now, status));
    }

    /// The system `uid` is gone.
    pub fn forget(&self, uid: &str) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.remove(uid);
    }

    /// Systems whose written status the cache may not show yet.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;

    fn status(phase: Phase) -> HealthSystemStatus {
        HealthSystemStatus {
            phase: Some(phase),
            ..HealthSystemStatus::default()
        }
    }

    #[test]
    fn a_status_just_written_is_current_while_the_cache_shows_the_older_one() {
        let written = WrittenStatus::default();
        let now = Instant::now();
        let provisioning = status(Phase::Provisioning);
        written.wrote("uid-a", provisioning.clone(), now);
        // The reconcile woken by a child's event still sees the system without a status.
        assert_eq!(
            written.current("uid-a", None, now),
            Some(provisioning.clone())
        );
        // Another system is not affected.
        assert_eq!(written.current("uid-b", None, now), None);
        // Once the cache shows it, the cache is the truth and nothing is kept.
        let ready = status(Phase::Ready);
        assert_eq!(
            written.current("uid-a", Some(&provisioning), now),
            Some(provisioning.clone())
        );
        assert_eq!(written.kept(), 0);
        assert_eq!(written.current("uid-a", Some(&ready), now), Some(ready));
    }

    #[test]
    fn a_reconcile_sees_its_system_with_the_status_just_written() {
        let written = WrittenStatus::default();
        let now = Instant::now();
        let mut system = HealthSystem::new(
            "dz-a",
            serde_json::from_value(serde_json::json!({
                "institution": { "displayName": "DZ", "registryId": "07151950", "ownership": "Public" },
                "database": { "version": "16", "storage": "10Gi" },
                "backup": { "rpo": "24h" }
            }))
            .unwrap(),
        );
        system.metadata.uid = Some("uid-a".into());
        written.wrote("uid-a", status(Phase::Provisioning), now);
        let view = written.view(&system, now);
        assert_eq!(view.status, Some(status(Phase::Provisioning)));
        assert_eq!(view.metadata, system.metadata);
        assert_eq!(view.spec, system.spec);
    }

    #[test]
    fn after_a_while_the_cache_is_the_truth_again() {
        let written = WrittenStatus::default();
        let then = Instant::now();
        written.wrote("uid-a", status(Phase::Provisioning), then);
        let ready = status(Phase::Ready);
        assert_eq!(
            written.current("uid-a", Some(&ready), then + TRUSTED),
            Some(ready)
        );
        assert_eq!(written.kept(), 0);
        written.wrote("uid-a", status(Phase::Provisioning), then);
        written.forget("uid-a");
        assert_eq!(written.current("uid-a", None, then), None);
    }

    /// A written status was let go only when its system was reconciled again, so
    /// every system that settled kept a copy of its last status (at 1,000 systems, until
    /// each one's resync ten minutes later). Past TRUSTED the cache is the truth anyway: the
    /// next write lets every such copy go.
    #[test]
    fn a_settled_system_keeps_no_copy_of_its_status() {
        let written = WrittenStatus::default();
        let then = Instant::now();
        written.wrote("uid-a", status(Phase::Ready), then);
        written.wrote("uid-b", status(Phase::Ready), then + TRUSTED / 2);
        assert_eq!(written.kept(), 2, "both may still be ahead of the cache");
        written.wrote(
            "uid-c",
            status(Phase::Provisioning),
            then + TRUSTED + TRUSTED / 4,
        );
        assert_eq!(written.kept(), 2, "uid-a's copy is stale: let go");
        assert_eq!(
            written.current("uid-b", None, then + TRUSTED / 2),
            Some(status(Phase::Ready))
        );
    }
}
