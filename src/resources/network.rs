//! Network isolation: deny all ingress and egress in the namespace, then allow what the system
//! needs. Today: DNS. (Database, monitoring and platform-service rules come with the
//! reconciler and the operator's configuration.)

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::namespace::meta;
use crate::api::HealthSystem;

/// Every pod of the namespace: no ingress, no egress, unless another policy allows it.
pub fn default_deny(system: &HealthSystem) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(system, "default-deny"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Egress to the cluster DNS in kube-system, UDP and TCP 53.
pub fn allow_dns(system: &HealthSystem) -> NetworkPolicy {
    let port = |protocol: &str| NetworkPolicyPort {
        port: Some(IntOrString::Int(53)),
        protocol: Some(protocol.into()),
        ..NetworkPolicyPort::default()
    };
    NetworkPolicy {
        metadata: meta(system, "allow-dns"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            "kubernetes.io/metadata.name".to_string(),
                            "kube-system".to_string(),
                        )])),
                        ..LabelSelector::default()
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![port("UDP"), port("TCP")]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}
