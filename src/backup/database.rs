//! Connections to PostgreSQL from a Job's pod. A new pod's address reaches the NetworkPolicy
//! agent a moment after the pod starts, so the first connections may be refused: they are
//! tried again for up to a minute before the run fails.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, Config, NoTls};

/// How long a refused connection is tried again.
const PATIENCE: Duration = Duration::from_secs(60);

/// Connects, trying again on failure for up to a minute; the connection runs in a task.
pub async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let started = Instant::now();
    loop {
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return Ok(client);
            }
            Err(e) if started.elapsed() < PATIENCE => {
                tracing::info!(error = %e, "database not reachable yet; trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
