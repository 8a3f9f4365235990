//! Where the national platform services are (address ranges or selectors, and ports): what
//! the systems' egress policies allow, and how each entry is checked.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use crate::config::checks::is_cidr;

/// Checks where a peer is on the network: address ranges or selectors, and valid ports.
pub fn check_peer(key: &str, service: &PlatformService) -> Result<(), (String, String)> {
    if service.cidrs.is_empty()
        && service.namespace_selector.is_none()
        && service.pod_selector.is_none()
    {
        return Err((
            key.into(),
            "needs cidrs, a namespaceSelector or a podSelector".into(),
        ));
    }
    if let Some(cidr) = service.cidrs.iter().find(|c| !is_cidr(c)) {
        return Err((format!("{key}.cidrs"), format!("{cidr:?} is not a CIDR")));
    }
    if service.ports.is_empty() {
        return Err((
            format!("{key}.ports"),
            "at least one port is required".into(),
        ));
    }
    if let Some(port) = service
        .ports
        .iter()
        .find(|p| !(1..=65535).contains(&p.port))
    {
        return Err((
            format!("{key}.ports"),
            format!("{} is not a port", port.port),
        ));
    }
    Ok(())
}

/// Where a national platform service is, for egress rules: address ranges, or selectors of
/// its pods when it runs in this cluster, and its ports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlatformService {
    /// Address ranges of the service, e.g. 10.20.0.0/24.
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// Namespaces of the service, when it runs in this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods of the service, when it runs in this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Ports the service listens on.
    pub ports: Vec<ServicePort>,
}

/// A port of a platform service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// The port number.
    pub port: i32,
    /// TCP (default) or UDP.
    #[serde(default = "tcp")]
    pub protocol: String,
}

pub fn tcp() -> String {
    "TCP".into()
}

pub fn default_platform_services() -> BTreeMap<String, PlatformService> {
    let service = |cidr: &str| PlatformService {
        cidrs: vec![cidr.into()],
        namespace_selector: None,
        pod_selector: None,
        ports: vec![ServicePort {
            port: 443,
            protocol: tcp(),
        }],
    };
    BTreeMap::from([
        ("e-health-record".into(), service("10.210.1.0/24")),
        ("e-referral".into(), service("10.210.2.0/24")),
        ("e-sick-leave".into(), service("10.210.3.0/24")),
        ("e-prescription".into(), service("10.210.4.0/24")),
        ("e-health-card".into(), service("10.210.5.0/24")),
    ])
}
