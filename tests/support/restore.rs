//! The platform's restore namespace, where drills and bootstrap restores run and nowhere
//! else: the private key of the backups and read access to every prefix of the store.

use std::sync::OnceLock;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::objectstore::Store;

/// Its name, the configuration's default (`backup.drills.namespace`).
pub const NAMESPACE: &str = "healthsystem-restore";

/// A Secret named `name` with `data`.
pub fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// Creates `object` unless it exists.
pub async fn create<K>(api: &Api<K>, object: &K)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create: {e}"),
    }
}

/// The restore namespace's read credentials of `store` (every prefix; made once per test
/// binary): access key id and secret.
pub fn reader(store: &Store) -> &'static (String, String) {
    static READER: OnceLock<(String, String)> = OnceLock::new();
    READER.get_or_init(|| store.add_reader("platform-restore"))
}

/// Makes the restore namespace with the private key `identity` (an age identity, as text) and
/// the read credentials of `store`.
pub async fn prepare(client: &Client, store: &Store, identity: &str) {
    let (access, secret_key) = reader(store);
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    create(&Api::all(client.clone()), &namespace).await;
    let secrets = Api::<Secret>::namespaced(client.clone(), NAMESPACE);
    create(
        &secrets,
        &secret("backup-restore-identity", &[("identity", identity)]),
    )
    .await;
    create(
        &secrets,
        &secret(
            "backup-restore-credentials",
            &[("accessKeyId", access), ("secretAccessKey", secret_key)],
        ),
    )
    .await;
}
