//! Access for the system's own team only: RoleBindings of the access groups to the tenant
//! ClusterRoles the chart ships (`healthsystem-admin`, `healthsystem-viewer`: the team runs
//! its application and cannot weaken isolation, quotas or access, nor read the platform's
//! credentials, as Kubernetes' built-in `admin` could), and a ServiceAccount per workload.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};

use super::metadata::meta;
use crate::api::HealthSystem;
use crate::config::OperatorAccount;

/// The ClusterRole `spec.access.admins` is bound to in the system's namespace.
pub const ADMIN_ROLE: &str = "healthsystem-admin";
/// The ClusterRole `spec.access.viewers` is bound to: read everything but Secrets.
pub const VIEWER_ROLE: &str = "healthsystem-viewer";

/// The ClusterRole (shipped by the chart) that reads the database's credentials Secrets by
/// name, and nothing else: bound to the operator in each namespace it manages, so that it
/// holds no read of Secrets anywhere else.
pub const CREDENTIALS_ROLE: &str = "healthsystem-operator-credentials";
/// The RoleBinding of [`CREDENTIALS_ROLE`] to the operator's own ServiceAccount.
pub const OPERATOR_BINDING: &str = "healthsystem-operator-credentials";

/// The RoleBindings of the system's namespace: one per access role that has groups (none for
/// an empty list), named `tenant-admins` and `tenant-viewers` (a binding's role cannot change,
/// so the bindings of Kubernetes' own roles that systems made before had, `hs-admins` and
/// `hs-viewers`, are pruned once these exist); and, when the operator runs as a
/// ServiceAccount, its own read of the credentials Secrets.
pub fn role_bindings(
    system: &HealthSystem,
    operator: Option<&OperatorAccount>,
) -> Vec<RoleBinding> {
    let access = &system.spec.access;
    let operator = operator.map(|account| RoleBinding {
        metadata: meta(system, OPERATOR_BINDING),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: CREDENTIALS_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            api_group: None,
            kind: "ServiceAccount".into(),
            name: account.name.clone(),
            namespace: Some(account.namespace.clone()),
        }]),
    });
    [
        ("admins", ADMIN_ROLE, &access.admins),
        ("viewers", VIEWER_ROLE, &access.viewers),
    ]
    .into_iter()
    .filter(|(_, _, groups)| !groups.is_empty())
    .map(|(name, role, groups)| RoleBinding {
        metadata: meta(system, &format!("tenant-{name}")),
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
    .chain(operator)
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
