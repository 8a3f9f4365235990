//! Integration tests against a real Kubernetes control plane (see `cluster.rs`). One test
//! binary, so one local cluster serves every test; each test works in names of its own.

mod cluster;
mod smoke;
mod wait;
