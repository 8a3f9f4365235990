//! Isolation of a system: its namespace (Pod Security `restricted` enforced, institution
//! labels), the ResourceQuota from its tier and overrides, and the LimitRange that gives
//! containers default requests and limits.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::labels;
use super::metadata::meta;
use super::quantity;
use crate::api::{HealthSystem, Ownership};
use crate::config::Config;

/// Pod Security level enforced, audited and warned about in every system namespace.
pub const POD_SECURITY_LEVEL: &str = "restricted";

/// The system's namespace.
pub fn namespace(system: &HealthSystem) -> Namespace {
    let mut labels = labels::common(system);
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            POD_SECURITY_LEVEL.to_string(),
        );
    }
    let institution = &system.spec.institution;
    labels.insert(
        "sdc.gov.rs/registry-id".into(),
        institution.registry_id.clone(),
    );
    let ownership = match institution.ownership {
        Ownership::Public => "public",
        Ownership::Private => "private",
    };
    labels.insert("sdc.gov.rs/ownership".into(), ownership.into());
    labels.insert(
        "sdc.gov.rs/tier".into(),
        format!("{:?}", system.spec.tier).to_lowercase(),
    );
    let mut metadata = meta(system, &labels::namespace(system));
    metadata.namespace = None;
    metadata.labels = Some(labels);
    metadata.annotations.get_or_insert_default().insert(
        "sdc.gov.rs/display-name".to_string(),
        institution.display_name.clone(),
    );
    Namespace {
        metadata,
        ..Namespace::default()
    }
}

/// Name of the namespace's ResourceQuota.
pub const QUOTA: &str = "quota";

/// The namespace's quota: the tier's preset (its storage plus the backup claim), with the
/// manifest's overrides on top.
pub fn resource_quota(system: &HealthSystem, config: &Config) -> ResourceQuota {
    let preset = config.tiers.get(system.spec.tier);
    let sizing = system.spec.sizing.clone().unwrap_or_default();
    let cpu = sizing.cpu.unwrap_or_else(|| preset.cpu.clone());
    let memory = sizing.memory.unwrap_or_else(|| preset.memory.clone());
    let pods = sizing.pods.unwrap_or(preset.pods);
    let hard = BTreeMap::from([
        ("requests.cpu".to_string(), Quantity(cpu)),
        ("requests.memory".to_string(), Quantity(memory)),
        (
            "requests.storage".to_string(),
            Quantity(storage_quota(system, &preset.storage)),
        ),
        ("pods".to_string(), Quantity(pods.to_string())),
    ]);
    ResourceQuota {
        metadata: meta(system, QUOTA),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    }
}

/// The tier's storage for what the system keeps, plus the backup claim the operator adds
/// beside it (as large as the database): backups never make a database that fits its tier
/// unconvergeable.
fn storage_quota(system: &HealthSystem, tier_storage: &str) -> String {
    let sum = quantity::bytes(tier_storage)
        .zip(quantity::bytes(&system.spec.database.storage))
        .and_then(|(tier, backup)| tier.checked_add(backup));
    sum.map_or_else(|| tier_storage.to_string(), quantity::from_bytes)
}

/// Default requests and limits for containers that set none, so the quota never blocks a pod
/// for lack of requests.
pub fn limit_range(system: &HealthSystem, config: &Config) -> LimitRange {
    let preset = config.tiers.get(system.spec.tier);
    LimitRange {
        metadata: meta(system, "limits"),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default_request: Some(BTreeMap::from([
                    (
                        "cpu".to_string(),
                        Quantity(preset.default_cpu_request.clone()),
                    ),
                    (
                        "memory".to_string(),
                        Quantity(preset.default_memory_request.clone()),
                    ),
                ])),
                default: Some(BTreeMap::from([(
                    "memory".to_string(),
                    Quantity(preset.default_memory_limit.clone()),
                )])),
                ..LimitRangeItem::default()
            }],
        }),
    }
}
