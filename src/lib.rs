//! The HealthSystem operator: hosts health information systems in the State Data Centre.
//! `api` holds the custom resource, `resources` the pure builders of its children, `render`
//! the offline preview and `cli` the subcommands.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod config;
pub mod render;
pub mod resources;
