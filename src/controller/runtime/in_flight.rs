//! At most a set number of the operator's API requests in flight at once, watches, the
//! Lease and the API server probe aside.
//!
//! The API server serves a fleet's writes at its own pace: in the fleet benchmark (N = 300),
//! four times the reconciles at once converged no sooner (38.2 s to every child either way)
//! and each one waited four times as long, while every request waiting at the server held
//! a connection and its buffers in the operator (settled memory 75 MiB instead of 45). Past
//! this limit a request waits here, where it costs nothing. Never counted: watches (long-lived,
//! they would take the limit for good), and what keeps the replica alive and honest, the
//! leader's Lease and the API server probe (queued behind a hundred writes to a slow API
//! server, a renewal would let the Lease expire and a probe would report the operator not
//! ready).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;

/// Requests in flight by default (the fleet benchmark's floor sends 32 at once).
pub const DEFAULT: usize = 32;

/// Whether a request's query asks for a watch.
pub fn is_watch(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1")
}

/// Whether a request goes at once, whatever is in flight: a watch, the Lease, the probe.
fn exempt<B>(request: &hyper::Request<B>) -> bool {
    // Behind a proxy the cluster's URL may carry a path before the API's own.
    let path = request.uri().path();
    is_watch(request.uri().query())
        || path.contains("/apis/coordination.k8s.io/")
        || path.ends_with("/readyz")
}

/// Wraps a service so that at most `limit` requests that are not [`exempt`] are in it at
/// once.
#[derive(Clone)]
pub struct InFlight<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S> InFlight<S> {
    pub fn new(inner: S, limit: usize) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(limit.max(1))),
        }
    }
}

impl<S, B> tower::Service<hyper::Request<B>> for InFlight<S>
where
    S: tower::Service<hyper::Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: hyper::Request<B>) -> Self::Future {
        // The service made ready is the one called; a clone takes its place (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if exempt(&request) {
            return Box::pin(inner.call(request));
        }
        let permits = self.permits.clone();
        Box::pin(async move {
            // The semaphore is never closed: an error cannot happen, and would only lift the
            // limit.
            let _permit = permits.acquire_owned().await.ok();
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;

    /// A service that counts the requests it has taken and answers each when `gate` lets it.
    fn held(
        taken: Arc<AtomicUsize>,
        gate: Arc<Semaphore>,
    ) -> impl tower::Service<
        hyper::Request<()>,
        Response = (),
        Error = Infallible,
        Future = impl Future<Output = Result<(), Infallible>> + Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(move |_request: hyper::Request<()>| {
            let (taken, gate) = (taken.clone(), gate.clone());
            async move {
                taken.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                Ok(())
            }
        })
    }

    /// Waits until `taken` reaches `count`, then a little longer for any more to arrive.
    async fn settled_at(taken: &AtomicUsize, count: usize) -> usize {
        tokio::time::timeout(Duration::from_secs(5), async {
            while taken.load(Ordering::SeqCst) < count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("requests arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
        taken.load(Ordering::SeqCst)
    }

    /// Sends a GET of `uri` through `service` in a task of its own.
    fn send<S>(service: &S, uri: String) -> tokio::task::JoinHandle<Result<(), Infallible>>
    where
        S: tower::Service<hyper::Request<()>, Response = (), Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
    {
        let mut service = service.clone();
        tokio::spawn(async move {
            let request = hyper::Request::get(uri).body(()).unwrap();
            service.ready().await?.call(request).await
        })
    }

    #[tokio::test]
    async fn requests_past_the_limit_wait_and_watches_pass() {
        let taken = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let service = InFlight::new(held(taken.clone(), gate.clone()), 3);
        let sent: Vec<_> = (0..5)
            .map(|i| send(&service, format!("/api/v1/namespaces/a/configmaps/c{i}")))
            .collect();
        assert_eq!(settled_at(&taken, 3).await, 3, "two wait past the limit");

        // A watch is not held back by the writes in flight.
        let watch = send(
            &service,
            "/api/v1/configmaps?labelSelector=a&watch=true&timeoutSeconds=290".into(),
        );
        assert_eq!(settled_at(&taken, 4).await, 4);

        // As answers come back, the waiting requests go.
        gate.add_permits(2);
        assert_eq!(settled_at(&taken, 6).await, 6);
        gate.add_permits(4);
        for request in sent {
            request.await.unwrap().unwrap();
        }
        watch.await.unwrap().unwrap();
    }

    /// While the fleet's writes take every turn, the leader's Lease renewal and the API
    /// server probe must not wait behind them: a renewal queued behind a hundred writes to a
    /// slow API server lets the Lease expire, a probe queued past its timeout reports the
    /// operator not ready.
    #[tokio::test]
    async fn the_lease_and_the_probe_never_wait_behind_the_writes() {
        let taken = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let service = InFlight::new(held(taken.clone(), gate.clone()), 1);
        let sent: Vec<_> = [
            "/api/v1/namespaces/a/configmaps/c",
            "/api/v1/namespaces/a/configmaps/d",
            // Through a proxy whose URL carries a path of its own.
            "https://proxy/k8s/clusters/c-1/apis/coordination.k8s.io/v1/namespaces/ops/leases/healthsystem-operator",
            "https://127.0.0.1:6443/readyz",
        ]
        .into_iter()
        .map(|uri| send(&service, uri.into()))
        .collect();
        assert_eq!(
            settled_at(&taken, 3).await,
            3,
            "one write in flight, the Lease and the probe beside it"
        );
        gate.add_permits(4);
        for request in sent {
            request.await.unwrap().unwrap();
        }
    }

    #[test]
    fn a_watch_is_told_by_its_query() {
        assert!(is_watch(Some("labelSelector=a&watch=true")));
        assert!(is_watch(Some("watch=1")));
        assert!(!is_watch(Some("labelSelector=watch%3Dtrue")));
        assert!(!is_watch(Some("fieldManager=watch")));
        assert!(!is_watch(None));
    }
}
