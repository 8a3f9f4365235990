//! The HealthSystem operator: hosts health information systems in the State Data Centre.
//! `api` holds the custom resource, `resources` the pure builders of its children,
//! `controller` the only code that talks to the API server, `backup` the backup agent the
//! backup Jobs run, `render` the offline preview and
//! `cli` the subcommands.
#![forbid(unsafe_code)]

pub mod api;
pub mod backup;
pub mod cli;
pub mod config;
pub mod controller;
pub mod error;
pub mod http;
pub mod metrics;
pub mod onboard;
pub mod render;
pub mod resources;
