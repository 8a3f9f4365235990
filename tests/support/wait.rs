//! Polling helpers: wait until something observed on the cluster holds, or fail the test
//! with what was last seen.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` every 250 ms until it returns `Ok(value)`; panics after `timeout` with the
/// last `Err` it returned, which should say what was seen instead.
pub async fn until<T, E, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if started.elapsed() > timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Waits until the Deployment `namespace/name` has an available replica; `what` names it in
/// the timeout's message.
pub async fn deployment_available(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    what: &str,
    timeout: Duration,
) {
    let deployments =
        kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), namespace);
    until(what, timeout, || async {
        let deployment = deployments.get(name).await.map_err(|e| e.to_string())?;
        let status = deployment.status.unwrap_or_default();
        if status.available_replicas.unwrap_or(0) >= 1 {
            Ok(())
        } else {
            Err(format!("{:?}", status.conditions))
        }
    })
    .await;
}
