//! Integration tests against a real Kubernetes control plane (see `support/cluster.rs`). One
//! test binary, so one local cluster serves every test; each test works in names of its own.

mod api;
#[path = "../support/cluster.rs"]
mod cluster;
#[path = "../support/corpus.rs"]
mod corpus;
mod dry_run;
#[path = "../support/fuzzing.rs"]
mod fuzzing;
#[path = "../support/settings.rs"]
mod settings;
mod smoke;
#[path = "../support/wait.rs"]
mod wait;
