//! The reconciler against a real control plane (API server, controller-manager, scheduler and
//! kwok): one cluster and one operator process for this test binary; each test works on a
//! HealthSystem of its own.

#[path = "../support/cluster.rs"]
mod cluster;
#[path = "../support/corpus.rs"]
mod corpus;
mod credentials;
mod identity;
mod lifecycle;
mod objects;
mod observability;
#[path = "../support/operator.rs"]
mod operator;
mod reasons;
#[path = "../support/systems.rs"]
mod systems;
mod unreadable;
#[path = "../support/wait.rs"]
mod wait;
