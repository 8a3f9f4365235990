//! The leader Lease's timings, shared by the election (`leader`) and the write fence
//! (`fence`), which must agree on how long a renewal holds.

use std::time::Duration;

/// How long a Lease holds without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews, and a standby retries.
pub const RETRY: Duration = Duration::from_secs(2);
