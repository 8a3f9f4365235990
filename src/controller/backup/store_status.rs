//! Backup status from the store: with an object store, a system's last backup is the newest
//! manifest under its prefix (not a Job that completed), read with the restore namespace's
//! read credentials (the dumps are ciphertext: reading them is harmless without the key).
//! One listing and one small GET per system, cached: again when a backup Job of the system
//! finished since, else every few minutes. When the store cannot be read, the Jobs say it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use tracing::warn;

use crate::api::LastBackup;
use crate::backup::manifest::{MANIFEST, Manifest};
use crate::backup::store::{self, Settings};
use crate::controller::context::Context;

/// How long a system's last backup read from the store is trusted.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// How long a store client that could not be made (no credentials yet) is not tried again.
const CLIENT_RETRY: Duration = Duration::from_secs(60);

/// The newest backup of a prefix from its manifest; `None` when the store has none; `Err`
/// when it cannot be read.
async fn read_latest(client: &AmazonS3, prefix: &str) -> object_store::Result<Option<LastBackup>> {
    let Some(id) = store::newest_backup(client, prefix).await? else {
        return Ok(None);
    };
    let bytes = client
        .get(&Path::from(format!("{prefix}/{id}/{MANIFEST}")))
        .await?
        .bytes()
        .await?;
    let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else {
        return Ok(None);
    };
    Ok(Some(LastBackup {
        id,
        finished_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(manifest.finished_at),
        size: i64::try_from(manifest.size).unwrap_or(i64::MAX),
        tables: i64::try_from(manifest.tables.len()).unwrap_or(i64::MAX),
        rows: manifest.tables.iter().map(|t| t.rows).sum(),
        duration_seconds: Some(
            manifest
                .finished_at
                .duration_since(manifest.started_at)
                .as_secs(),
        ),
    }))
}

/// A client with the restore namespace's read credentials, made once they exist.
async fn client(ctx: &Context, now: Timestamp) -> Option<AmazonS3> {
    let config = &ctx.config.backup;
    let store = config.object_store.as_ref()?;
    let mut cached = ctx.store_reads.client.lock().await;
    if let Some((at, client)) = cached.as_ref()
        && (client.is_some() || now.duration_since(*at).unsigned_abs() < CLIENT_RETRY)
    {
        return client.clone();
    }
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &config.drills.namespace);
    let found = secrets.get_opt(&config.drills.credentials_secret).await;
    let data = match found {
        Ok(secret) => secret.and_then(|s| s.data),
        Err(e) => {
            warn!(error = %e, "cannot read the store's read credentials");
            None
        }
    };
    let key = |name: &str| {
        data.as_ref()
            .and_then(|d| d.get(name))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    let client = match (key("accessKeyId"), key("secretAccessKey")) {
        (Some(access_key_id), Some(secret_access_key)) => store::connect(&Settings {
            endpoint: store.endpoint.clone(),
            bucket: store.bucket.clone(),
            region: store.region.clone(),
            ca_bundle: store.ca_bundle.clone().map(String::into_bytes),
            access_key_id,
            secret_access_key,
        })
        .map_err(|e| warn!(error = %e, "cannot make the store client"))
        .ok(),
        _ => None,
    };
    *cached = Some((now, client.clone()));
    client
}

/// The last backup of `prefix` according to the store: `None` without an object store or
/// when it cannot be read (then the Jobs are the record), `Some(None)` when it holds none.
/// `job_finished`: when a backup Job of the system last finished (a newer one refreshes).
pub async fn last_backup(
    ctx: &Context,
    prefix: &str,
    job_finished: Option<Timestamp>,
    now: Timestamp,
) -> Option<Option<LastBackup>> {
    {
        let latest = ctx
            .store_reads
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((read_at, backup)) = latest.get(prefix)
            && now.duration_since(*read_at).unsigned_abs() < FRESH_FOR
            && job_finished.is_none_or(|finished| finished < *read_at)
        {
            return Some(backup.clone());
        }
    }
    let client = client(ctx, now).await?;
    match read_latest(&client, prefix).await {
        Ok(backup) => {
            ctx.store_reads
                .latest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(prefix.to_string(), (now, backup.clone()));
            Some(backup)
        }
        Err(e) => {
            warn!(error = %e, prefix, "cannot read the store; backup status from the Jobs");
            None
        }
    }
}
