//! Kubernetes plumbing that knows nothing of HealthSystems: the operator's client (in-flight
//! limit, write fence, user agent), leader election and its Lease timings, the API server
//! probe behind `/readyz`, events, and what is read of Jobs and their pods.

pub mod api_health;
pub mod client;
pub mod events;
pub mod fence;
pub mod in_flight;
pub mod job_state;
pub mod leader;
pub mod lease;
