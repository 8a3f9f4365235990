//! The operator's HTTP endpoint, one port: `/metrics` (Prometheus text format), `/healthz`
//! (the process serves) and `/readyz` (caches loaded, reconciling, and the API server
//! reachable).

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::metrics::Metrics;

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn route(metrics: &Metrics, path: &str) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if metrics.up.get() < 1.0 => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "loading caches\n".into(),
        ),
        "/readyz" if metrics.api_reachable.get() < 1.0 => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the API server is unreachable\n".into(),
        ),
        "/readyz" => respond(StatusCode::OK, "text/plain", "ready\n".into()),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Binds `addr` (port 0 picks a free one) and returns the bound address; serves in the
/// background for as long as the runtime runs.
pub async fn serve(addr: SocketAddr, metrics: Metrics) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    info!(address = %bound, "serving /metrics, /healthz and /readyz");
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let response = route(&metrics, request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_caches_and_the_api_server() {
        let metrics = Metrics::new();
        metrics.api_reachable.set(1.0);
        assert_eq!(
            route(&metrics, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        metrics.up.set(1.0);
        assert_eq!(route(&metrics, "/readyz").status(), StatusCode::OK);
        metrics.api_reachable.set(0.0);
        assert_eq!(
            route(&metrics, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        metrics.api_reachable.set(1.0);
        assert_eq!(route(&metrics, "/healthz").status(), StatusCode::OK);
        assert_eq!(route(&metrics, "/nope").status(), StatusCode::NOT_FOUND);
    }
}
