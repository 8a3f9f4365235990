//! Which namespace a HealthSystem may write into. The operator creates each system's
//! namespace itself and records the system's UID on it; it writes only into a namespace
//! that carries that UID. Names can be reused, UIDs cannot: a HealthSystem naming another
//! system's namespace, or one the operator never created, gets `NamespaceNotOwned` and
//! nothing is written.
//!
//! Adoption: a HealthSystem deleted with `Retain` leaves its namespace (claim, credentials)
//! labelled with its name and annotated with its old UID. A HealthSystem of the same name
//! created later adopts it (names are unique, so the old owner is gone), and the namespace
//! records the old UID in `sdc.gov.rs/adopted-from`. Nothing else is adopted, except the
//! namespaces made by operator versions that did not record UIDs: managed by us and
//! labelled with this system's name.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::info;

use crate::controller::cache::kinds::Stores;
use crate::error::{AtStep, Error, Result, Step};
use crate::resources::labels::{ADOPTED_FROM, HEALTHSYSTEM, MANAGED_BY, MANAGER, OWNER_UID};

/// How a HealthSystem stands towards the namespace it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// No such namespace: the operator creates it.
    Absent,
    /// Created for this HealthSystem (its UID is recorded).
    Owned,
    /// Kept from a deleted HealthSystem of the same name (its UID, if it was recorded).
    Adoptable { previous: Option<String> },
    /// Someone else's: the reason, for status and the event.
    NotOwned(String),
}

/// Judges `namespace` (as it is in the cluster, if it exists) for the HealthSystem named
/// `name` with UID `uid`.
pub fn judge(namespace: Option<&Namespace>, name: &str, uid: &str) -> Standing {
    let Some(namespace) = namespace else {
        return Standing::Absent;
    };
    let ns_name = namespace.name_any();
    let recorded = namespace.annotations().get(OWNER_UID).map(String::as_str);
    let labels = namespace.labels();
    let ours = labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGER);
    let owner_name = labels.get(HEALTHSYSTEM).map(String::as_str);
    match recorded {
        Some(recorded) if recorded == uid => Standing::Owned,
        Some(recorded) if ours && owner_name == Some(name) => Standing::Adoptable {
            previous: Some(recorded.to_string()),
        },
        None if ours && owner_name == Some(name) => Standing::Adoptable { previous: None },
        _ if ours => Standing::NotOwned(format!(
            "namespace {ns_name} belongs to HealthSystem {}; name a namespace of its own",
            owner_name.unwrap_or("(unknown)")
        )),
        _ => Standing::NotOwned(format!(
            "namespace {ns_name} was not created by the operator for this HealthSystem; \
             name a namespace that does not exist yet"
        )),
    }
}

/// Makes sure `desired` (the system's namespace) is this HealthSystem's before anything is
/// written: creates it when absent, adopts it when it was kept for this name, and refuses
/// with [`Error::NamespaceNotOwned`] otherwise. True when this call created it: it is then
/// exactly as it is applied and needs no apply.
pub async fn ensure_namespace(
    client: &Client,
    stores: &Stores,
    name: &str,
    uid: &str,
    desired: &Namespace,
) -> Result<bool> {
    let ns_name = desired.name_any();
    let api = Api::<Namespace>::all(client.clone());
    let mut live = stores
        .get("v1", "Namespace", None, &ns_name)
        .and_then(|o| serde_json::to_value(&o.object).ok())
        .and_then(|v| serde_json::from_value::<Namespace>(v).ok());
    if live.is_none() {
        // The store only sees namespaces we labelled. Creating it is what onboarding needs
        // (no GET first); AlreadyExists means it has to be judged as it is.
        match create(&api, desired).await {
            Ok(_) => {
                info!(namespace = ns_name, "namespace created");
                return Ok(true);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                live = api.get_opt(&ns_name).await.at(Step::Namespace, &ns_name)?;
            }
            Err(e) => return Err(e).at(Step::Namespace, &ns_name),
        }
    }
    match judge(live.as_ref(), name, uid) {
        Standing::Owned => Ok(false),
        Standing::Absent => {
            match create(&api, desired).await {
                Ok(_) => {
                    info!(namespace = ns_name, "namespace created");
                    Ok(true)
                }
                // Someone created it meanwhile: judged again on the next pass.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    Err(Error::NamespaceNotOwned(format!(
                        "namespace {ns_name} appeared while it was being created"
                    )))
                }
                Err(e) => Err(e).at(Step::Namespace, &ns_name),
            }
        }
        Standing::Adoptable { previous } => {
            let live = live.expect("an adoptable namespace exists");
            let mut annotations = json!({ OWNER_UID: uid });
            if let Some(previous) = &previous {
                annotations[ADOPTED_FROM] = json!(previous);
            }
            // The resourceVersion makes the adoption fail if the namespace changed since it
            // was judged.
            let patch = json!({ "metadata": {
                "resourceVersion": live.resource_version(),
                "annotations": annotations,
            } });
            api.patch(&ns_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .at(Step::Namespace, &ns_name)?;
            info!(namespace = ns_name, previous = ?previous, "namespace adopted");
            Ok(false)
        }
        Standing::NotOwned(reason) => Err(Error::NamespaceNotOwned(reason)),
    }
}

/// Creates the namespace as it is applied (fingerprint included), as the operator's field
/// manager: no apply has to follow.
async fn create(api: &Api<Namespace>, desired: &Namespace) -> kube::Result<Namespace> {
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    api.create(
        &params,
        &crate::controller::apply::fingerprint::as_applied(desired),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(labels: serde_json::Value, annotations: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({ "metadata": {
            "name": "hs-lab", "labels": labels, "annotations": annotations,
        } }))
        .unwrap()
    }

    fn ours(name: &str) -> serde_json::Value {
        json!({ MANAGED_BY: MANAGER, HEALTHSYSTEM: name })
    }

    #[test]
    fn a_namespace_with_this_uid_is_owned_and_no_namespace_is_absent() {
        let ns = namespace(ours("lab"), json!({ OWNER_UID: "u1" }));
        assert_eq!(judge(Some(&ns), "lab", "u1"), Standing::Owned);
        assert_eq!(judge(None, "lab", "u1"), Standing::Absent);
    }

    #[test]
    fn another_live_systems_namespace_is_not_owned() {
        let ns = namespace(ours("victim"), json!({ OWNER_UID: "u1" }));
        assert!(matches!(
            judge(Some(&ns), "intruder", "u2"),
            Standing::NotOwned(reason) if reason.contains("belongs to HealthSystem victim")
        ));
    }

    #[test]
    fn a_namespace_the_operator_did_not_create_is_not_owned() {
        let ns = namespace(json!({}), json!({}));
        assert!(matches!(
            judge(Some(&ns), "lab", "u1"),
            Standing::NotOwned(_)
        ));
        // Our name label alone, without our managed-by label, proves nothing.
        let ns = namespace(json!({ HEALTHSYSTEM: "lab" }), json!({}));
        assert!(matches!(
            judge(Some(&ns), "lab", "u1"),
            Standing::NotOwned(_)
        ));
        // Nor does our UID annotation copied onto a namespace labelled for someone else.
        let ns = namespace(ours("other"), json!({ OWNER_UID: "u0" }));
        assert!(matches!(
            judge(Some(&ns), "lab", "u1"),
            Standing::NotOwned(_)
        ));
    }

    #[test]
    fn a_namespace_kept_for_this_name_is_adoptable_recording_the_previous_uid() {
        let ns = namespace(ours("lab"), json!({ OWNER_UID: "u0" }));
        assert_eq!(
            judge(Some(&ns), "lab", "u1"),
            Standing::Adoptable {
                previous: Some("u0".into())
            }
        );
        // Made before UIDs were recorded.
        let ns = namespace(ours("lab"), json!({}));
        assert_eq!(
            judge(Some(&ns), "lab", "u1"),
            Standing::Adoptable { previous: None }
        );
    }
}
