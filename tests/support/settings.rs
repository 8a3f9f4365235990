//! Sizes of the long suites, from the environment (`CHAOS_SYSTEMS=200`, `LEADER_KILLS=10`,
//! `PROPTEST_CASES=1500`): short by default for CI, long when asked.

/// The number in the environment variable `name`, or `default`.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
