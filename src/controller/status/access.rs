//! AccessControlled: who may act in the namespace is only what the operator bound there (the
//! tenant roles for spec.access); a RoleBinding anyone else made (break-glass, or one from
//! before) is named until it is removed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::controller::status::condition::{FOREIGN_ROLE_BINDING, Stamp, types};
use crate::controller::status::observed::Observed;

/// The AccessControlled condition.
pub fn condition(observed: &Observed, stamp: Stamp) -> Condition {
    if observed.foreign_bindings.is_empty() {
        stamp.condition(
            types::ACCESS,
            true,
            "TenantRolesOnly",
            "access is the tenant roles bound to spec.access".into(),
        )
    } else {
        stamp.condition(
            types::ACCESS,
            false,
            FOREIGN_ROLE_BINDING,
            format!(
                "RoleBindings the operator did not make: {}. Grant access through spec.access; remove them once a break-glass session is over",
                observed.foreign_bindings.join(", ")
            ),
        )
    }
}
