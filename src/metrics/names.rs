//! The names every series shares: the one prefix of the operator's metrics, and the label a
//! system's migration wave is read from.

/// The label `onboard` gives each system: its migration wave.
pub const MIGRATION_WAVE: &str = "sdc.gov.rs/migration-wave";

/// Every metric name starts with this.
pub const PREFIX: &str = "healthsystem";
