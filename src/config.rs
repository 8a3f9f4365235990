//! The operator's configuration: what the platform team owns rather than each manifest.
//! Today: the sizing of each tier. Every value has a default, so no file is needed to start.

use serde::{Deserialize, Serialize};

use crate::api::Tier;

/// The operator's configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Sizing presets, one per tier.
    #[serde(default)]
    pub tiers: Tiers,
}

/// The sizing preset of every tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tiers {
    /// A clinic or a laboratory.
    pub small: TierPreset,
    /// A health centre or a general hospital.
    pub standard: TierPreset,
    /// A clinical centre or a large hospital.
    pub large: TierPreset,
}

impl Tiers {
    /// The preset of `tier`.
    pub fn get(&self, tier: Tier) -> &TierPreset {
        match tier {
            Tier::Small => &self.small,
            Tier::Standard => &self.standard,
            Tier::Large => &self.large,
        }
    }
}

/// Namespace quota and default container resources of one tier (Kubernetes quantities).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierPreset {
    /// Total CPU requests allowed in the namespace.
    pub cpu: String,
    /// Total memory requests allowed in the namespace.
    pub memory: String,
    /// Total storage requested by volume claims (database and backups).
    pub storage: String,
    /// Maximum number of pods.
    pub pods: i32,
    /// Default CPU request of a container that sets none.
    pub default_cpu_request: String,
    /// Default memory request of a container that sets none.
    pub default_memory_request: String,
    /// Default memory limit of a container that sets none.
    pub default_memory_limit: String,
}

impl Default for Tiers {
    fn default() -> Self {
        let preset = |cpu: &str,
                      memory: &str,
                      storage: &str,
                      pods,
                      req_cpu: &str,
                      req_mem: &str,
                      lim_mem: &str| TierPreset {
            cpu: cpu.into(),
            memory: memory.into(),
            storage: storage.into(),
            pods,
            default_cpu_request: req_cpu.into(),
            default_memory_request: req_mem.into(),
            default_memory_limit: lim_mem.into(),
        };
        Self {
            small: preset("2", "4Gi", "100Gi", 20, "100m", "128Mi", "512Mi"),
            standard: preset("8", "16Gi", "1Ti", 50, "250m", "256Mi", "1Gi"),
            large: preset("32", "64Gi", "20Ti", 150, "500m", "512Mi", "2Gi"),
        }
    }
}
