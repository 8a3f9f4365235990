//! The database's life beside the apply: credentials generated once (and known without a
//! watch of Secrets), restarts onto a new template bounded across the fleet, the quota's room
//! for its pod, holding it stopped while its data is gone, and moving it onto CloudNativePG.

pub mod claim_growth;
pub mod credentials;
pub mod credentials_seen;
pub mod data_hold;
pub mod engine_move;
pub mod quota_shortfall;
pub mod restarts;
