//! The finalizer's work when a HealthSystem is deleted. `Retain` (the default) deletes
//! nothing: namespace, volumes, data and credentials stay, and a HealthSystem re-created
//! under the same name takes them over as they are. `Delete` removes the namespace, and the
//! finalizer is released only once the namespace is gone; a namespace that does not carry
//! this HealthSystem's UID is never deleted. With an object store, `Delete` first takes a
//! final backup (`final_backup`) unless spec.backup.skipFinalBackup.

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use tracing::info;

use crate::api::{DeletionPolicy, HealthSystem};
use crate::controller::context::Context;
use crate::error::{AtStep, Error, Result, Step};
use crate::resources::labels::{self, OWNER_UID};

/// Runs the deletion policy of `system`. Tolerates an apply that never ran.
pub async fn cleanup(system: &HealthSystem, ctx: &Context) -> Result<Action> {
    let namespace = labels::namespace(system);
    ctx.restarts.forget(&namespace);
    ctx.store_reads.forget(&namespace);
    ctx.credentials.forget(&namespace);
    match system.spec.deletion_policy {
        DeletionPolicy::Retain => {
            info!(
                namespace,
                "deleted with Retain: namespace, data and credentials kept"
            );
            Ok(Action::await_change())
        }
        DeletionPolicy::Delete => {
            let api = Api::<Namespace>::all(ctx.client.clone());
            let Some(existing) = api
                .get_opt(&namespace)
                .await
                .at(Step::Cleanup, &namespace)?
            else {
                info!(namespace, "deleted with Delete: namespace gone");
                return Ok(Action::await_change());
            };
            // Only the namespace created for (or adopted by) this very HealthSystem, judged
            // by its UID: never one that merely has the same name or our labels.
            let ours = existing.annotations().get(OWNER_UID).is_some()
                && existing.annotations().get(OWNER_UID) == system.metadata.uid.as_ref();
            if !ours {
                info!(
                    namespace,
                    "deleted with Delete: namespace is not ours, left alone"
                );
                return Ok(Action::await_change());
            }
            if existing.metadata.deletion_timestamp.is_none() {
                // An Err keeps the finalizer (an Ok would release it with the namespace
                // still there).
                if crate::controller::backup::final_backup::pending(system, ctx).await? {
                    return Err(Error::FinalBackupPending(namespace));
                }
                info!(namespace, "deleted with Delete: deleting the namespace");
                api.delete(&namespace, &DeleteParams::foreground())
                    .await
                    .at(Step::Cleanup, &namespace)?;
            }
            Err(Error::NamespaceTerminating(namespace))
        }
    }
}
