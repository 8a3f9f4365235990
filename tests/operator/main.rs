//! The reconciler against a real control plane (API server, controller-manager, scheduler and
//! kwok): one cluster and one operator process for this test binary; each test works on a
//! HealthSystem of its own.

use healthsystem_test_support::cluster;
use healthsystem_test_support::corpus;
mod credentials;
mod identity;
mod lifecycle;
mod objects;
mod observability;
use healthsystem_test_support::operator;
mod reasons;
use healthsystem_test_support::systems;
mod unreadable;
use healthsystem_test_support::wait;
