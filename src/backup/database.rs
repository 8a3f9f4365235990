//! Connections to PostgreSQL from a Job's pod. A new pod's address reaches the NetworkPolicy
//! agent a moment after the pod starts, so the first connections may be refused: they are
//! tried again for up to a minute before the run fails.
//!
//! Where the server presents a certificate (the CloudNativePG engine) the connection is TLS,
//! verified as libpq's `sslmode=verify-full` does: signed by the CA in `PGSSLROOTCERT`, for the
//! host connected to. `pg_dump` and `pg_restore`, started from the same environment, do the same.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a refused connection is tried again.
const PATIENCE: Duration = Duration::from_secs(60);

/// Where a database is and how its server is verified.
#[derive(Clone, Debug)]
pub struct Database {
    /// Host, port, role, password, database.
    pub config: Config,
    /// The CA file the server's certificate must chain to (`PGSSLMODE=verify-full`); none for
    /// a server without TLS (the StatefulSet engine, or the drills' own scratch server).
    pub verify_with: Option<PathBuf>,
}

impl Database {
    /// A server reached without TLS.
    pub fn plain(config: Config) -> Self {
        Self {
            config,
            verify_with: None,
        }
    }
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// The CA file is missing or holds no certificate.
    #[error("PGSSLROOTCERT {0}: {1}")]
    Authority(String, String),
}

/// The TLS client that accepts only a server certified by the CA in `file`.
fn verifying(file: &Path) -> Result<MakeRustlsConnect, ConnectError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let shown = file.display().to_string();
    let bad = |e: String| ConnectError::Authority(shown.clone(), e);
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(file).map_err(|e| bad(e.to_string()))? {
        roots
            .add(certificate.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate".into()));
    }
    // rustls needs its process-wide provider chosen once; ring, as the Kubernetes client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Connects, trying again on failure for up to a minute; the connection runs in a task.
pub async fn connect(database: &Database) -> Result<Client, ConnectError> {
    let tls = database.verify_with.as_deref().map(verifying).transpose()?;
    let mut config = database.config.clone();
    if tls.is_some() {
        config.ssl_mode(SslMode::Require);
    }
    let started = Instant::now();
    loop {
        let attempt = match &tls {
            Some(tls) => config
                .connect(tls.clone())
                .await
                .map(|(client, connection)| {
                    tokio::spawn(connection);
                    client
                }),
            None => config.connect(NoTls).await.map(|(client, connection)| {
                tokio::spawn(connection);
                client
            }),
        };
        match attempt {
            Ok(client) => return Ok(client),
            Err(e) if started.elapsed() < PATIENCE => {
                tracing::info!(error = %e, "database not reachable yet; trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_authority_is_an_error_naming_the_file() {
        let missing = verifying(Path::new("/nonexistent/ca.crt")).err().unwrap();
        assert!(
            missing.to_string().contains("/nonexistent/ca.crt"),
            "{missing}"
        );
        let dir = std::env::temp_dir().join(format!("hs-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("ca.crt");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = verifying(&empty).err().unwrap();
        assert!(error.to_string().contains("no certificate"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
