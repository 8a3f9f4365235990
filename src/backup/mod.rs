//! The backup agent: the `backup run` subcommand the backup Jobs run in the database's own
//! image (its pg_dump matches the server). It dumps in PostgreSQL's custom format, encrypts on
//! the client to the platform's age public keys, streams the result to the object store under
//! the system's prefix, verifies what landed, writes the manifest (`manifest`), and prunes by
//! age (`retention`). `drill` restores a backup into a throwaway PostgreSQL and checks it
//! against its manifest. Nothing here talks to the Kubernetes API.

pub mod agent;
pub mod archive_drill;
pub mod command;
pub mod database;
pub mod drill;
pub mod encryption;
pub mod liveness;
pub mod manifest;
pub mod retention;
pub mod store;
