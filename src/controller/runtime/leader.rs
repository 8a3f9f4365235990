//! Leader election with a `coordination.k8s.io` Lease, so that of several replicas only one
//! reconciles. A replica takes the Lease when it is free or expired, renews it every few
//! seconds with optimistic concurrency (the Lease's resourceVersion) from the moment it has
//! it (its caches may take long to load), and gives it up on shutdown so a standby takes
//! over at once. A leader that cannot renew before its write fence closes (the lease duration
//! less a margin, `fence.rs`) stops: it may no longer be the only writer.
//!
//! Expiry is judged as client-go does: by this replica's own monotonic clock, from when it
//! last saw the Lease change. Another replica's renewTime is never compared with the local
//! clock, so clocks that disagree cannot make two leaders.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tracing::{info, warn};

use crate::controller::runtime::fence::Fence;
use crate::controller::runtime::lease::{LEASE_DURATION, RETRY};

/// One replica's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// The Lease as last seen held by another replica, and when (by our clock).
    observed: Mutex<Option<Observation>>,
    /// Opened for a term by each renewal; what the client checks before every write.
    fence: Fence,
}

/// A version of the Lease another replica holds, and when this replica first saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// What changes whenever the holder renews: holder, renewTime and resourceVersion.
    pub version: String,
    /// When this replica first saw that version, by its own monotonic clock.
    pub seen: Instant,
}

/// Whether the Lease another replica holds has expired: it has not changed for its whole
/// duration by this replica's clock. Returns the observation to keep.
pub fn judge(
    previous: Option<&Observation>,
    version: &str,
    duration: Duration,
    now: Instant,
) -> (Observation, bool) {
    match previous {
        Some(seen) if seen.version == version => {
            (seen.clone(), now.duration_since(seen.seen) > duration)
        }
        // A change (or a first look): the holder is alive as of now.
        _ => (
            Observation {
                version: version.to_string(),
                seen: now,
            },
            false,
        ),
    }
}

/// What a renewal found.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// This replica holds the Lease.
    Yes,
    /// Another replica holds it and it has not expired.
    No,
}

impl Elector {
    /// An elector for the Lease `name` in `namespace`, as `identity`, opening `fence` for as
    /// long as each renewal holds.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, fence: Fence) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            observed: Mutex::new(None),
            fence,
        }
    }

    /// Judges the Lease another replica holds by what this replica saw of it.
    fn expired(&self, lease: &Lease, spec: &LeaseSpec) -> bool {
        let version = format!(
            "{}|{:?}|{}",
            spec.holder_identity.as_deref().unwrap_or_default(),
            spec.renew_time.as_ref().map(|t| t.0),
            lease
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or_default()
        );
        let duration = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        );
        let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        let (observation, expired) = judge(observed.as_ref(), &version, duration, Instant::now());
        *observed = Some(observation);
        expired
    }

    /// Takes or renews the Lease if this replica may hold it.
    pub async fn try_acquire(&self) -> Result<Held, kube::Error> {
        // The term is counted from before the first request: another replica sees the
        // renewal only after it was sent.
        let sent = Instant::now();
        let held = self.take_or_renew().await;
        if let Ok(Held::Yes) = held {
            self.fence.renewed(sent);
        }
        held
    }

    async fn take_or_renew(&self) -> Result<Held, kube::Error> {
        let now = Timestamp::now();
        let duration = LEASE_DURATION.as_secs() as i32;
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Held::Yes),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Held::No),
                Err(e) => Err(e),
            };
        };
        let snapshot = lease.clone();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let free = spec
            .holder_identity
            .as_deref()
            .unwrap_or_default()
            .is_empty();
        if !mine && !free && !self.expired(&snapshot, spec) {
            return Ok(Held::No);
        }
        if !mine {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(duration);
        spec.renew_time = Some(MicroTime(now));
        // replace carries the resourceVersion: a concurrent taker makes this a 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Held::Yes),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Held::No),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        info!(
            lease = self.name,
            identity = self.identity,
            "waiting for leadership"
        );
        loop {
            match self.try_acquire().await {
                Ok(Held::Yes) => {
                    info!(lease = self.name, identity = self.identity, "became leader");
                    return;
                }
                Ok(Held::No) => {}
                Err(e) => warn!(error = %e, "cannot read the lease"),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Renews the Lease until it is lost; returns when it is, or when the fence (opened by
    /// each renewal) would be closed before the next attempt: this replica writes nothing
    /// more then, so it stops rather than linger as a leader that cannot lead.
    pub async fn hold(&self) {
        loop {
            tokio::time::sleep(RETRY).await;
            match self.try_acquire().await {
                Ok(Held::Yes) => {}
                Ok(Held::No) => {
                    self.fence.close();
                    warn!(lease = self.name, "leadership lost to another replica");
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "lease renewal failed");
                    if !self.fence.allows(Instant::now() + RETRY) {
                        self.fence.close();
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up so that a standby takes over without waiting for it to expire.
    pub async fn release(&self) {
        self.fence.close();
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = self.name, "leadership released"),
            Err(e) => warn!(error = %e, "leadership not released; it expires by itself"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_only_after_it_stayed_unchanged_for_its_duration_by_our_clock() {
        let start = Instant::now();
        let duration = Duration::from_secs(15);
        let at = |s: u64| start + Duration::from_secs(s);
        // First look: alive, whatever its renewTime says.
        let (seen, expired) = judge(None, "ghost|1h-ago|7", duration, at(0));
        assert!(!expired);
        let (seen, expired) = judge(Some(&seen), "ghost|1h-ago|7", duration, at(10));
        assert!(!expired, "unchanged for 10 s of a 15 s lease");
        // Renewed (a new version): the clock starts again.
        let (seen, expired) = judge(Some(&seen), "ghost|1h-ago|8", duration, at(14));
        assert!(!expired);
        let (seen, expired) = judge(Some(&seen), "ghost|1h-ago|8", duration, at(28));
        assert!(!expired, "14 s since the change");
        let (_, expired) = judge(Some(&seen), "ghost|1h-ago|8", duration, at(30));
        assert!(expired, "16 s without a change");
    }
}
