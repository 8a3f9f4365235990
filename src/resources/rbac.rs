//! Access for the system's own team only: RoleBindings of the access groups to the built-in
//! `admin` and `view` ClusterRoles, inside the system's namespace.

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};

use super::namespace::meta;
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
