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
