//! The HealthSystem API, group `sdc.gov.rs`: the custom resource's types, its status and the
//! client-side validation `render` shares with admission. The ground floor: it imports
//! nothing else of this crate.

mod bounds;
mod engine_move;
mod migration;
mod selector;
mod spec;
mod status;
pub mod validation;

pub use engine_move::*;
pub use migration::*;
pub use spec::*;
pub use status::*;
