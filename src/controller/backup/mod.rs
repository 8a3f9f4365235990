//! Backups as the controller sees them: the last backup read from the object store, restore
//! drills (logical and physical) and their fleet-wide slots, the final backup of a deleted system, and a new
//! system's restore from another's backup (bootstrap).

pub mod bootstrap;
pub mod drill_slots;
pub mod drills;
pub mod final_backup;
pub mod physical_drills;
pub mod store_reads;
pub mod store_status;
