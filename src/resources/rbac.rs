//! Access for the system's own team only: RoleBindings of the access groups to the built-in
//! `admin` and `view` ClusterRoles inside the system's namespace, and a ServiceAccount per
//! workload.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};

use super::metadata::meta;
use crate::api::HealthSystem;

/// One RoleBinding per role that has groups; none for an empty list.
pub fn role_bindings(system: &HealthSystem) -> Vec<RoleBinding> {
    let access = &system.spec.access;
    [
        ("admins", "admin", &access.admins),
        ("viewers", "view", &access.viewers),
    ]
    .into_iter()
    .filter(|(_, _, groups)| !groups.is_empty())
    .map(|(name, role, groups)| RoleBinding {
        metadata: meta(system, &format!("hs-{name}")),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(
            groups
                .iter()
                .map(|group| Subject {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Group".into(),
                    name: group.clone(),
                    namespace: None,
                })
                .collect(),
        ),
    })
    .collect()
}

/// A ServiceAccount per workload (database, backup, application), with no API token mounted:
/// none of them talks to the Kubernetes API.
pub fn service_accounts(system: &HealthSystem) -> Vec<ServiceAccount> {
    let mut names = vec![super::database::NAME, super::backup::NAME];
    if system.spec.application.is_some() {
        names.push(super::application::NAME);
    }
    names
        .into_iter()
        .map(|name| ServiceAccount {
            metadata: meta(system, name),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        })
        .collect()
}
