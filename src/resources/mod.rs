//! Pure builders: a HealthSystem and the operator's configuration in, every desired child
//! out. No client, no I/O: `render` prints this set and the controller applies it.

pub mod labels;
pub mod namespace;
pub mod network;
pub mod rbac;

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Resource;
use serde::Serialize;
use serde_json::Value;

use crate::api::HealthSystem;
use crate::config::Config;

/// Every child object one HealthSystem should have. Consumers destructure it without `..`,
/// so a new kind of child that nobody applies or prints fails to compile.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The system's namespace.
    pub namespace: Namespace,
    /// The namespace quota.
    pub quota: ResourceQuota,
    /// Default container requests and limits.
    pub limits: LimitRange,
    /// Access groups bound to roles.
    pub role_bindings: Vec<RoleBinding>,
    /// Default deny, then what the system needs.
    pub network_policies: Vec<NetworkPolicy>,
}

impl Desired {
    /// Builds every child of `system`.
    pub fn build(system: &HealthSystem, config: &Config) -> Self {
        Self {
            namespace: namespace::namespace(system),
            quota: namespace::resource_quota(system, config),
            limits: namespace::limit_range(system, config),
            role_bindings: rbac::role_bindings(system),
            network_policies: vec![network::default_deny(system), network::allow_dns(system)],
        }
    }

    /// The children as complete manifests (apiVersion and kind set), namespace first, in the
    /// order they should be created.
    pub fn manifests(&self) -> Vec<Value> {
        let Self {
            namespace,
            quota,
            limits,
            role_bindings,
            network_policies,
        } = self;
        let mut out = vec![manifest(namespace), manifest(quota), manifest(limits)];
        out.extend(role_bindings.iter().map(manifest));
        out.extend(network_policies.iter().map(manifest));
        out
    }
}

/// An object as JSON with its apiVersion and kind, which k8s-openapi types leave implicit.
fn manifest<K>(object: &K) -> Value
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert(
            "apiVersion".into(),
            Value::String(K::api_version(&()).into_owned()),
        );
        map.insert("kind".into(), Value::String(K::kind(&()).into_owned()));
    }
    value
}
