//! The operator's client to the API server: kube's stack (TLS and credentials from the
//! kubeconfig or the pod, timeouts, retries of throttled requests) with this replica's name in
//! the User-Agent (the API server's audit log tells replicas apart), a count of every request
//! (the `apiserver_requests` metrics), the write fence (`fence.rs`) and a limit on requests
//! in flight (`in_flight.rs`).
//!
//! kube's `ClientBuilder::try_from(Config)` builds the same stack; it is assembled here
//! because the fence must be checked where a write leaves the process, and only the request
//! body is polled there (`fence::FencedBody`). A check at the top of the stack passed writes
//! that then waited for a connection, and a leader paused meanwhile sent them on waking.

use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use kube::Client;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt};
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder};

use crate::controller::runtime::fence::{Fence, FencedBody};
use crate::controller::runtime::in_flight::InFlight;
use crate::metrics::Metrics;

/// The client of a controller run, from the kubeconfig or the pod's service account.
pub async fn operator_client(
    metrics: &Metrics,
    identity: &str,
    fence: Fence,
    in_flight: usize,
) -> anyhow::Result<Client> {
    let config = kube::Config::infer().await?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    Ok(build(
        config, connector, metrics, identity, fence, in_flight,
    )?)
}

/// The stack over `connector` (any way of reaching the API server: tests slow it down), with
/// at most `in_flight` requests sent at once (watches, the Lease and the probe aside:
/// `in_flight.rs`).
pub fn build<C>(
    mut config: kube::Config,
    connector: C,
    metrics: &Metrics,
    identity: &str,
    fence: Fence,
    in_flight: usize,
) -> Result<Client, kube::Error>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let agent = format!(
        "healthsystem-operator/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    );
    config.headers.push((
        hyper::header::USER_AGENT,
        agent
            .parse()
            .map_err(|e| kube::Error::Service(Box::new(e)))?,
    ));
    let hyper = hyper_util::client::legacy::Builder::new(TokioExecutor::new())
        .build::<_, FencedBody>(connector);
    let metrics = metrics.clone();
    let service = ServiceBuilder::new()
        .map_request(move |request: hyper::Request<Body>| {
            metrics.count_request(request.method().as_str(), request.uri().query());
            request
        })
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .map_request(move |request| fence.wrap(request))
        // Innermost: a request waiting for its turn has not been sent, and the fence is
        // checked only as its body leaves.
        .layer_fn(|hyper| InFlight::new(hyper, in_flight))
        .service(hyper);
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, Patch, PatchParams};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::controller::runtime::fence::{MARGIN, NotLeader};
    use crate::controller::runtime::lease::LEASE_DURATION;

    /// Connects like `HttpConnector`, `delay` later: a connection the pool waits for.
    #[derive(Clone)]
    struct Slow {
        inner: HttpConnector,
        delay: Duration,
    }

    impl tower::Service<hyper::Uri> for Slow {
        type Response = <HttpConnector as tower::Service<hyper::Uri>>::Response;
        type Error = <HttpConnector as tower::Service<hyper::Uri>>::Error;
        type Future =
            Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, uri: hyper::Uri) -> Self::Future {
            let connect = self.inner.call(uri);
            let delay = self.delay;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                connect.await
            })
        }
    }

    /// A loopback HTTP server that answers a ConfigMap to every request and records each request
    /// line it received in full.
    async fn server() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut bytes = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 {
                            return;
                        }
                        bytes.extend_from_slice(&buffer[..n]);
                        let text = String::from_utf8_lossy(&bytes).to_string();
                        let Some((head, body)) = text.split_once("\r\n\r\n") else {
                            continue;
                        };
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() < length {
                            continue;
                        }
                        log.lock()
                            .unwrap()
                            .push(head.lines().next().unwrap_or("").to_string());
                        bytes.clear();
                        let object =
                            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{object}",
                            object.len()
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, received)
    }

    /// A client of `url` whose connections take `delay`, fenced by `fence`.
    fn client(url: &str, delay: Duration, fence: Fence) -> Client {
        let config = kube::Config::new(url.parse().unwrap());
        let connector = Slow {
            inner: HttpConnector::new(),
            delay,
        };
        build(
            config,
            connector,
            &Metrics::new(),
            "test",
            fence,
            crate::controller::runtime::in_flight::DEFAULT,
        )
        .unwrap()
    }

    fn patch() -> Patch<serde_json::Value> {
        Patch::Apply(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}
        }))
    }

    /// A fence whose term ends `left` from now.
    fn ending_in(left: Duration) -> Fence {
        let fence = Fence::closed();
        fence.renewed(Instant::now() + left + MARGIN - LEASE_DURATION);
        fence
    }

    #[tokio::test]
    async fn a_write_that_waited_for_its_connection_past_the_term_never_leaves() {
        let (url, received) = server().await;
        // The term ends while the write waits for its connection (a paused leader's write).
        let client = client(
            &url,
            Duration::from_millis(600),
            ending_in(Duration::from_millis(200)),
        );
        let api: Api<ConfigMap> = Api::namespaced(client, "hs-a");
        let result = api.patch("x", &PatchParams::apply("t"), &patch()).await;
        let error = result.expect_err("the write was answered");
        assert!(
            std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
                .any(|e| e.is::<NotLeader>()),
            "not refused by the fence: {error:?}"
        );
        // A read on the same client still goes out.
        let read = api.get_opt("x").await;
        assert!(read.is_ok(), "the read failed: {read:?}");
        let received = received.lock().unwrap().clone();
        assert!(
            received.iter().all(|line| line.starts_with("GET ")),
            "the server received a write after the term: {received:?}"
        );
        assert_eq!(received.len(), 1, "the read did not arrive: {received:?}");
    }

    #[tokio::test]
    async fn a_write_within_the_term_leaves_after_waiting_for_its_connection() {
        let (url, received) = server().await;
        let client = client(
            &url,
            Duration::from_millis(200),
            ending_in(Duration::from_secs(30)),
        );
        let api: Api<ConfigMap> = Api::namespaced(client, "hs-a");
        let result = api.patch("x", &PatchParams::apply("t"), &patch()).await;
        assert!(result.is_ok(), "the write failed: {result:?}");
        let received = received.lock().unwrap().clone();
        assert_eq!(received.len(), 1, "{received:?}");
        assert!(
            received[0].starts_with("PATCH /api/v1/namespaces/hs-a/configmaps/x"),
            "{received:?}"
        );
    }
}
