//! Network isolation: deny all ingress and egress in the namespace, then allow only what the
//! system needs: DNS; the application and the backup Jobs to the database; the monitoring
//! namespace to the metrics port; the declared sources to the application; the application to
//! the national platform services it names (addresses from the operator's configuration).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels;
use super::labels::{COMPONENT, HEALTHSYSTEM};
use super::metadata::meta;
use super::{application, backup, database, migration};
use crate::api::HealthSystem;
use crate::config::{Config, PlatformService};

pub(crate) fn policy(
    system: &HealthSystem,
    name: &str,
    pods: LabelSelector,
    ingress: Option<Vec<NetworkPolicyIngressRule>>,
    egress: Option<Vec<NetworkPolicyEgressRule>>,
) -> NetworkPolicy {
    let mut types = Vec::new();
    if ingress.is_some() {
        types.push("Ingress".to_string());
    }
    if egress.is_some() {
        types.push("Egress".to_string());
    }
    NetworkPolicy {
        metadata: meta(system, name),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods),
            policy_types: Some(types),
            ingress,
            egress,
        }),
    }
}

pub(crate) fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

pub(crate) fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    }
}

pub(crate) fn pods_of(selector: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(selector),
        ..NetworkPolicyPeer::default()
    }
}

/// Every pod of the namespace named `name`.
pub(crate) fn namespace_peer(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(match_labels(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_string(),
            name.to_string(),
        )]))),
        ..NetworkPolicyPeer::default()
    }
}

/// Every address in `cidr`.
fn cidr_peer(cidr: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_string(),
            except: None,
        }),
        ..NetworkPolicyPeer::default()
    }
}

/// The application and backup pods (and the migration's, while a migration or a move is
/// declared: a move's Jobs are migration pods): the database's only clients.
fn database_clients(system: &HealthSystem) -> LabelSelector {
    let mut clients = vec![
        application::COMPONENT_NAME.to_string(),
        backup::COMPONENT_NAME.to_string(),
    ];
    if system.spec.migration.is_some() || system.spec.database.engine_move.is_some() {
        clients.push(migration::COMPONENT_NAME.into());
    }
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            HEALTHSYSTEM.to_string(),
            super::labels::name(system).to_string(),
        )])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: COMPONENT.into(),
            operator: "In".into(),
            values: Some(clients),
        }]),
    }
}

/// The database's clients; and, while spec.database.bootstrap restores it, the restore pod.
fn database_clients_and_restore(system: &HealthSystem, config: &Config) -> Vec<NetworkPolicyPeer> {
    let mut from = vec![pods_of(database_clients(system))];
    if super::restore_pods::pending(system) && config.backup.object_store.is_some() {
        from.push(super::restore_pods::database_peer(system, config));
    }
    from
}

/// Every NetworkPolicy of `system`, the default deny first.
pub fn policies(system: &HealthSystem, config: &Config) -> Vec<NetworkPolicy> {
    let mut out = vec![default_deny(system), allow_dns(system, config)];

    let monitoring = namespace_peer(&config.monitoring.namespace);
    out.push(policy(
        system,
        "database-ingress",
        match_labels(labels::selector(system, database::COMPONENT_NAME)),
        Some(vec![
            NetworkPolicyIngressRule {
                from: Some(database_clients_and_restore(system, config)),
                ports: Some(vec![tcp(database::PORT)]),
            },
            NetworkPolicyIngressRule {
                from: Some(vec![monitoring]),
                ports: Some(vec![tcp(database::METRICS_PORT)]),
            },
        ]),
        None,
    ));
    out.push(policy(
        system,
        "database-clients-egress",
        database_clients(system),
        None,
        Some(vec![NetworkPolicyEgressRule {
            to: Some(vec![pods_of(match_labels(labels::selector(
                system,
                database::COMPONENT_NAME,
            )))]),
            ports: Some(vec![tcp(database::PORT)]),
        }]),
    ));

    if let Some(app) = &system.spec.application {
        let sources: Vec<NetworkPolicyPeer> = system
            .spec
            .network
            .allow_from
            .iter()
            .map(|source| NetworkPolicyPeer {
                namespace_selector: source.namespace_selector.clone(),
                pod_selector: source.pod_selector.clone(),
                ..NetworkPolicyPeer::default()
            })
            .collect();
        if !sources.is_empty() {
            out.push(policy(
                system,
                "application-ingress",
                match_labels(labels::selector(system, application::COMPONENT_NAME)),
                Some(vec![NetworkPolicyIngressRule {
                    from: Some(sources),
                    ports: Some(vec![tcp(app.port)]),
                }]),
                None,
            ));
        }
        let services: Vec<NetworkPolicyEgressRule> = system
            .spec
            .network
            .platform_services
            .iter()
            .filter_map(|name| config.platform_services.get(name))
            .map(egress_rule)
            .collect();
        if !services.is_empty() {
            out.push(policy(
                system,
                "platform-services-egress",
                match_labels(labels::selector(system, application::COMPONENT_NAME)),
                None,
                Some(services),
            ));
        }
    }
    if let Some(store) = &config.backup.object_store {
        out.push(policy(
            system,
            "backup-store-egress",
            match_labels(labels::selector(system, backup::COMPONENT_NAME)),
            None,
            Some(vec![egress_rule(&store.network)]),
        ));
    }
    out
}

/// Egress to a peer outside the namespace: its address ranges, or its pods, on its ports.
pub(crate) fn egress_rule(service: &PlatformService) -> NetworkPolicyEgressRule {
    let mut to: Vec<NetworkPolicyPeer> = service.cidrs.iter().map(|cidr| cidr_peer(cidr)).collect();
    if service.namespace_selector.is_some() || service.pod_selector.is_some() {
        to.push(NetworkPolicyPeer {
            namespace_selector: service.namespace_selector.clone(),
            pod_selector: service.pod_selector.clone(),
            ..NetworkPolicyPeer::default()
        });
    }
    NetworkPolicyEgressRule {
        to: Some(to),
        ports: Some(
            service
                .ports
                .iter()
                .map(|p| NetworkPolicyPort {
                    port: Some(IntOrString::Int(p.port)),
                    protocol: Some(p.protocol.clone()),
                    ..NetworkPolicyPort::default()
                })
                .collect(),
        ),
    }
}

/// Names in spec.network.platformServices that the configuration does not know.
pub fn unknown_platform_services(system: &HealthSystem, config: &Config) -> Vec<String> {
    system
        .spec
        .network
        .platform_services
        .iter()
        .filter(|name| !config.platform_services.contains_key(*name))
        .cloned()
        .collect()
}

/// Every pod of the namespace: no ingress, no egress, unless another policy allows it.
fn default_deny(system: &HealthSystem) -> NetworkPolicy {
    policy(
        system,
        "default-deny",
        LabelSelector::default(),
        Some(vec![]),
        Some(vec![]),
    )
}

/// Egress to the cluster DNS, UDP and TCP on its ports: its pods (namespace and labels),
/// and the resolver addresses the configuration names (a node-local cache).
fn allow_dns(system: &HealthSystem, config: &Config) -> NetworkPolicy {
    policy(
        system,
        "allow-dns",
        LabelSelector::default(),
        None,
        Some(vec![dns_rule(config)]),
    )
}

/// Egress to the cluster DNS: its pods (and resolver addresses) on its ports, UDP and TCP.
pub(crate) fn dns_rule(config: &Config) -> NetworkPolicyEgressRule {
    let dns = &config.dns;
    let ports = ["UDP", "TCP"]
        .into_iter()
        .flat_map(|protocol| {
            dns.ports.iter().map(move |port| NetworkPolicyPort {
                port: Some(IntOrString::Int(*port)),
                protocol: Some(protocol.into()),
                ..NetworkPolicyPort::default()
            })
        })
        .collect();
    let mut to = vec![NetworkPolicyPeer {
        pod_selector: Some(dns.pod_selector.clone()),
        ..namespace_peer(&dns.namespace)
    }];
    to.extend(dns.addresses.iter().map(|cidr| cidr_peer(cidr)));
    NetworkPolicyEgressRule {
        to: Some(to),
        ports: Some(ports),
    }
}
