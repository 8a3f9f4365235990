//! Writes leave this replica only while it surely holds the leader Lease. A leader that was
//! paused (SIGSTOP, a frozen VM, a starved node) wakes up with its reconciles mid-flight
//! while a standby may already have taken the Lease; its renewal loop would notice only on
//! its next tick, after those reconciles wrote. So every mutating request is checked in the
//! client itself, by this replica's monotonic clock, as its body is written to the connection
//! (`FencedBody`, in the stack of `client.rs`): a write goes out only before the Lease, as last
//! renewed, could have been judged expired by another replica.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use kube::client::Body;

use crate::controller::runtime::lease::LEASE_DURATION;

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

    /// Whether `request` is a write this fence holds back: reads and the Lease's own requests
    /// (how it is taken, renewed and given up) always go out.
    pub fn guards<B>(&self, request: &hyper::Request<B>) -> bool {
        let read = matches!(
            *request.method(),
            hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
        );
        let lease = request
            .uri()
            .path()
            .starts_with("/apis/coordination.k8s.io/");
        self.until.is_some() && !read && !lease
    }

    /// `request` with its body checked against this fence when it is sent (see `FencedBody`).
    pub fn wrap(&self, request: hyper::Request<Body>) -> hyper::Request<FencedBody> {
        let fence = self.guards(&request).then(|| self.clone());
        request.map(|body| FencedBody { body, fence })
    }
}

/// A request body that a guarded write's connection polls just before writing it out: the
/// fence is checked there, microseconds before the bytes leave, not when the request entered
/// the client (it may wait for a connection, or the process may be paused, in between). A
/// refused body fails the request before any of it is flushed, and hyper closes that
/// connection.
pub struct FencedBody {
    body: Body,
    /// The fence still to check, for a guarded write.
    fence: Option<Fence>,
}

impl http_body::Body for FencedBody {
    type Data = Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(fence) = self.fence.take()
            && !fence.allows(Instant::now())
        {
            return Poll::Ready(Some(Err(NotLeader.into())));
        }
        Pin::new(&mut self.body).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.fence.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.body.size_hint();
        // hyper never polls a body it knows to be empty: an empty guarded write is sent with
        // its length unknown (chunked) so that its check still runs.
        if self.fence.is_some() && hint.exact() == Some(0) {
            SizeHint::default()
        } else {
            hint
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;

    use super::*;

    /// Whether a request would leave: its body as its connection would poll it.
    fn leaves(fence: &Fence, method: &str, path: &str, body: &[u8]) -> bool {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body.to_vec()))
            .unwrap();
        let body = fence.wrap(request).into_body();
        futures::executor::block_on(http_body_util::BodyExt::collect(body)).is_ok()
    }

    const SECRET: &str = "/api/v1/namespaces/hs-a/secrets/db";
    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/healthsystem-operator";

    #[test]
    fn without_leader_election_everything_goes_out() {
        let fence = Fence::open();
        assert!(leaves(&fence, "PATCH", SECRET, b"{}"));
        assert!(leaves(&fence, "DELETE", SECRET, b""));
    }

    #[test]
    fn a_standby_reads_and_competes_for_the_lease_but_never_writes() {
        let fence = Fence::closed();
        assert!(leaves(&fence, "GET", SECRET, b""));
        assert!(leaves(&fence, "PUT", LEASE, b"{}"));
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert!(!leaves(&fence, method, SECRET, b"{}"), "{method}");
        }
    }

    #[test]
    fn an_empty_write_is_still_checked_when_sent() {
        let fence = Fence::closed();
        let request = hyper::Request::builder()
            .method("DELETE")
            .uri(SECRET)
            .body(Body::empty())
            .unwrap();
        let body = fence.wrap(request).into_body();
        // hyper polls a body unless it says it is over or exactly empty.
        assert!(!body.is_end_stream());
        assert_ne!(body.size_hint().exact(), Some(0));
        assert!(!leaves(&fence, "DELETE", SECRET, b""));
    }

    #[test]
    fn a_write_is_judged_when_its_body_is_sent_not_when_it_was_made() {
        let fence = Fence::closed();
        let request = hyper::Request::builder()
            .method("PATCH")
            .uri(SECRET)
            .body(Body::from(b"{}".to_vec()))
            .unwrap();
        let body = fence.wrap(request).into_body();
        fence.renewed(Instant::now());
        assert!(futures::executor::block_on(http_body_util::BodyExt::collect(body)).is_ok());
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
