//! Integration tests against a real Kubernetes control plane (see `tests/support/cluster.rs`). One
//! test binary, so one local cluster serves every test; each test works in names of its own.

mod api;
use healthsystem_test_support::cluster;
use healthsystem_test_support::corpus;
mod dry_run;
use healthsystem_test_support::fuzzing;
use healthsystem_test_support::settings;
mod smoke;
use healthsystem_test_support::wait;
