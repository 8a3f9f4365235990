//! Database credentials, created once: a Secret that does not exist yet gets a password of 32
//! characters from the operating system's cryptographic random source; one that exists is
//! never written again.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use crate::controller::cache::kinds::Stores;
use crate::controller::database::credentials_seen::Seen;
use crate::error::{AtStep, Error, Result, Step};
use crate::resources::labels::MANAGER;
use crate::resources::{database, roles};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LENGTH: usize = 32;

/// A new random password (about 190 bits), safe in URIs and shell variables.
pub fn password() -> Result<String> {
    // Bytes of 248 and above are dropped so that every character is equally likely
    // (248 is the largest multiple of 62 that fits in a byte).
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut out = String::with_capacity(LENGTH);
    while out.len() < LENGTH {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).map_err(|e| Error::Random(e.to_string()))?;
        for byte in buf.into_iter().filter(|b| *b < limit) {
            out.push(ALPHABET[usize::from(byte) % ALPHABET.len()] as char);
            if out.len() == LENGTH {
                break;
            }
        }
    }
    Ok(out)
}

/// What [`ensure_credentials`] did about one Secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    /// It exists: nothing written.
    Existing,
    /// Missing beside the data: not generated (status says `CredentialsMissing`).
    Withheld,
    /// Created with these keys.
    Created(Vec<String>),
    /// Created meanwhile by someone else (an earlier pass): kept, assumed to hold these keys
    /// until the next read says otherwise.
    FoundOnCreate(Vec<String>),
}

/// Creates a credentials Secret with a freshly generated password when it does not exist
/// (`seen`: what is known of the namespace's credentials). An existing Secret is never
/// written: not after a restart, a crash mid-reconcile, nor when the HealthSystem is
/// re-created. The application's Secret is created only for a database never initialised (no
/// data claim): one missing beside the data is never replaced, as the database was made with
/// the old password (status says `CredentialsMissing`). The other roles' Secrets are created
/// whenever missing: the database takes their passwords on every start
/// ([`crate::resources::roles`]).
pub async fn ensure_credentials(
    client: &Client,
    stores: &Stores,
    seen: &Seen,
    template: &Secret,
) -> Result<Ensured> {
    let namespace = template.namespace().unwrap_or_default();
    let name = template.name_any();
    if seen.exists(&name) {
        return Ok(Ensured::Existing);
    }
    let data_claim = database::data_claim_name();
    let regenerable = roles::ALL
        .iter()
        .any(|role| role.secret == name && role.regenerable());
    if !regenerable
        && stores
            .get("v1", "PersistentVolumeClaim", Some(&namespace), &data_claim)
            .is_some()
    {
        warn!(
            namespace,
            claim = data_claim,
            "credentials Secret missing beside the data: no new password is generated"
        );
        return Ok(Ensured::Withheld);
    }
    let mut secret = template.clone();
    let mut data: BTreeMap<String, ByteString> = secret
        .string_data
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, ByteString(v.into_bytes())))
        .collect();
    data.insert(
        database::PASSWORD_KEY.to_string(),
        ByteString(password()?.into_bytes()),
    );
    let keys: Vec<String> = data.keys().cloned().collect();
    secret.data = Some(data);
    let api = Api::<Secret>::namespaced(client.clone(), &namespace);
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&params, &secret).await {
        Ok(_) => {
            info!(namespace, secret = name, "database credentials generated");
            Ok(Ensured::Created(keys))
        }
        // Created by an earlier pass that this one did not know of: keep it.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Ensured::FoundOnCreate(keys)),
        Err(e) => Err(e).at(Step::Credentials, format!("Secret {name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_alphanumeric_and_different() {
        let a = password().unwrap();
        let b = password().unwrap();
        assert_eq!(a.len(), LENGTH);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }
}
