//! Writes leave this replica only while it surely holds the leader Lease. A leader that was
//! paused (SIGSTOP, a frozen VM, a starved node) wakes up with its reconciles mid-flight
//! while a standby may already have taken the Lease; its renewal loop would notice only on
//! its next tick, after those reconciles wrote. So every mutating request is checked in the
//! client itself, by this replica's monotonic clock: a write goes out only before the Lease,
//! as last renewed, could have been judged expired by another replica.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::leader::LEASE_DURATION;

/// Kept free at the end of each lease term: a write checked just in time still has to reach
/// the API server before a standby can judge the Lease expired.
pub const MARGIN: Duration = Duration::from_secs(5);

/// Until when this replica may write; shared by the client and the elector.
#[derive(Clone, Debug, Default)]
pub struct Fence {
    /// `None`: no leader election, always open. `Some(None)`: the Lease is not held.
    until: Option<Arc<Mutex<Option<Instant>>>>,
}

/// A write refused because the Lease may be held by another replica.
#[derive(Debug, thiserror::Error)]
#[error("not sent: this replica cannot be sure it still holds the leader Lease")]
pub struct NotLeader;

impl Fence {
    /// No leader election: every write goes out.
    pub fn open() -> Self {
        Self { until: None }
    }

    /// Leader election: closed until the Lease is held.
    pub fn closed() -> Self {
        Self {
            until: Some(Arc::new(Mutex::new(None))),
        }
    }

    /// The Lease was taken or renewed by a request sent at `sent`: no other replica can judge
    /// it expired before `sent + LEASE_DURATION`, by its own clock, from when it saw it.
    pub fn renewed(&self, sent: Instant) {
        if let Some(until) = &self.until {
            let mut until = until.lock().unwrap_or_else(|e| e.into_inner());
            let new = sent + LEASE_DURATION - MARGIN;
            *until = Some(until.map_or(new, |old| old.max(new)));
        }
    }

    /// The Lease was given up or lost: nothing more is written.
    pub fn close(&self) {
        if let Some(until) = &self.until {
            *until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Whether a write may go out at `now`.
    pub fn allows(&self, now: Instant) -> bool {
        match &self.until {
            None => true,
            Some(until) => until
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|until| now < until),
        }
    }

    /// Passes reads, the Lease's own requests (how it is taken, renewed and given up) and,
    /// while the Lease is surely held, writes.
    pub fn check<B>(&self, request: hyper::Request<B>) -> Result<hyper::Request<B>, NotLeader> {
        let read = matches!(
            *request.method(),
            hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
        );
        let lease = request
            .uri()
            .path()
            .starts_with("/apis/coordination.k8s.io/");
        if read || lease || self.allows(Instant::now()) {
            Ok(request)
        } else {
            Err(NotLeader)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str) -> hyper::Request<()> {
        hyper::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    }

    const SECRET: &str = "/api/v1/namespaces/hs-a/secrets/db";
    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/healthsystem-operator";

    #[test]
    fn without_leader_election_everything_goes_out() {
        let fence = Fence::open();
        assert!(fence.check(request("PATCH", SECRET)).is_ok());
        assert!(fence.check(request("DELETE", SECRET)).is_ok());
    }

    #[test]
    fn a_standby_reads_and_competes_for_the_lease_but_never_writes() {
        let fence = Fence::closed();
        assert!(fence.check(request("GET", SECRET)).is_ok());
        assert!(fence.check(request("PUT", LEASE)).is_ok());
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert!(fence.check(request(method, SECRET)).is_err(), "{method}");
        }
    }

    #[test]
    fn a_leader_writes_until_its_last_renewal_could_have_expired_by_another_clock() {
        let fence = Fence::closed();
        let sent = Instant::now();
        fence.renewed(sent);
        assert!(fence.allows(sent + Duration::from_secs(9)));
        assert!(!fence.allows(sent + LEASE_DURATION - MARGIN));
        // A late answer to an older renewal does not shorten the term.
        fence.renewed(sent - Duration::from_secs(4));
        assert!(fence.allows(sent + Duration::from_secs(9)));
        // Woken after a pause longer than the term: closed, whatever the tasks think.
        assert!(!fence.allows(sent + Duration::from_secs(30)));
        fence.close();
        assert!(!fence.allows(sent));
    }
}
