//! Deleting what the desired set no longer has (a feature switched off): only objects of this
//! system's UID in its namespace, and only kinds that hold no data or credentials.

use std::collections::HashSet;

use kube::api::DeleteParams;
use kube::{Client, ResourceExt};
use tracing::info;

use crate::controller::cache::kinds::Stores;
use crate::error::{AtStep, Result, Step};
use crate::resources::labels::OWNER_UID;

/// Deletes our objects in the system's namespace that the desired set no longer has (a
/// feature switched off): only those that carry this system's UID, and only prunable kinds:
/// never the namespace, a claim, a Secret or a Job.
pub async fn prune(
    client: &Client,
    stores: &Stores,
    system_name: &str,
    uid: &str,
    namespace: &str,
    wanted: &HashSet<(String, String)>,
) -> Result<usize> {
    let mut pruned = 0;
    for (kind, cache) in stores.all() {
        if !kind.prunable {
            continue;
        }
        let key = format!("{}/{}", kind.resource.api_version, kind.resource.kind);
        for object in cache.of_system(system_name) {
            let ours = object.annotations().get(OWNER_UID).map(String::as_str) == Some(uid);
            let here = object.namespace().as_deref() == Some(namespace);
            if !ours || !here || wanted.contains(&(key.clone(), object.name_any())) {
                continue;
            }
            let api = kind.api(client, namespace);
            match api
                .delete(&object.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    info!(
                        namespace,
                        kind = kind.resource.kind,
                        name = object.name_any(),
                        "pruned"
                    );
                    pruned += 1;
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => {
                    return Err(e).at(
                        Step::Prune,
                        format!("{} {}", kind.resource.kind, object.name_any()),
                    );
                }
            }
        }
    }
    Ok(pruned)
}
