//! Whether the API server answers, so that `/readyz` is honest while the operator is cut off
//! (an API server restart, an etcd outage behind it): the caches may be loaded, but nothing
//! converges. Probed actively because an idle operator sends no other request for minutes:
//! its watches would only notice on their next reconnect.

use std::time::Duration;

use kube::Client;
use tracing::{info, warn};

use crate::metrics::Metrics;

/// How often the API server's `/readyz` is asked.
pub const PERIOD: Duration = Duration::from_secs(3);
/// How long one answer may take before the API server counts as unreachable.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Probes the API server every `PERIOD` for as long as the runtime runs, keeping
/// `metrics.api_reachable` current and logging each change.
pub async fn probe(client: Client, metrics: Metrics) {
    let mut ticks = tokio::time::interval(PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was = None;
    loop {
        ticks.tick().await;
        let answer = tokio::time::timeout(TIMEOUT, ready(&client)).await;
        let reachable = matches!(answer, Ok(Ok(())));
        metrics.api_reachable.set(if reachable { 1.0 } else { 0.0 });
        match (was, reachable) {
            (Some(false), true) => info!("the API server answers again"),
            (Some(true) | None, false) => {
                let why = match answer {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {TIMEOUT:?}"),
                };
                warn!(error = %why, "the API server is unreachable: reporting not ready");
            }
            _ => {}
        }
        was = Some(reachable);
    }
}

/// The API server's own readiness (its storage included), readable by every client
/// (`system:public-info-viewer`).
async fn ready(client: &Client) -> Result<(), kube::Error> {
    let request = hyper::Request::get("/readyz")
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    client.request_text(request).await.map(|_| ())
}
