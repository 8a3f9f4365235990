//! The object store client: S3 requests signed by the maintained `object_store` crate, path
//! style (what S3-compatible stores in a data centre serve), TLS checked against the
//! platform's CA bundle when one is given, and the system's own credentials.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{Certificate, ClientOptions};

/// Where the store is and who is asking.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The store's URL.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The signing region.
    pub region: String,
    /// PEM certificates to trust, if any.
    pub ca_bundle: Option<Vec<u8>>,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

/// A client of the bucket.
pub fn connect(settings: &Settings) -> object_store::Result<AmazonS3> {
    // rustls needs its process-wide provider chosen once; ring, as the Kubernetes client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut options =
        ClientOptions::new().with_allow_http(settings.endpoint.starts_with("http://"));
    if let Some(pem) = &settings.ca_bundle {
        for certificate in Certificate::from_pem_bundle(pem)? {
            options = options.with_root_certificate(certificate);
        }
    }
    AmazonS3Builder::new()
        .with_endpoint(&settings.endpoint)
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region)
        .with_access_key_id(&settings.access_key_id)
        .with_secret_access_key(&settings.secret_access_key)
        .with_virtual_hosted_style_request(false)
        .with_client_options(options)
        .build()
}

/// The id of the newest complete backup (one with a manifest, final ones included) under
/// `prefix`; `None` when there is none.
pub async fn newest_backup(
    client: &AmazonS3,
    prefix: &str,
) -> object_store::Result<Option<String>> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    use object_store::path::Path;

    use super::manifest::{self, MANIFEST};

    let root = Path::from(prefix);
    let mut newest: Option<(k8s_openapi::jiff::Timestamp, String)> = None;
    let mut listing = client.list(Some(&root));
    while let Some(object) = listing.try_next().await? {
        let parts: Vec<_> = object
            .location
            .prefix_match(&root)
            .into_iter()
            .flatten()
            .collect();
        if let [id, name] = parts.as_slice()
            && name.as_ref() == MANIFEST
            && let Some(time) = manifest::time_of_any(id.as_ref())
            && newest.as_ref().is_none_or(|(t, _)| *t < time)
        {
            newest = Some((time, id.as_ref().to_string()));
        }
    }
    Ok(newest.map(|(_, id)| id))
}
