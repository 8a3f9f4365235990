//! Integration tests against a real Kubernetes control plane (see `cluster.rs`). One test
//! binary, so one local cluster serves every test; each test works in names of its own.

mod api;
mod cluster;
#[path = "../support/corpus.rs"]
mod corpus;
mod smoke;
mod wait;
