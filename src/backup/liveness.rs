//! How a backup notices that its database went away instead of waiting on a dead connection.
//! A database pod force-deleted in the middle of a dump left `pg_dump` waiting on a socket
//! whose peer was gone: no RST ever comes, and Linux's default keepalive would have noticed
//! after about two hours, with every scheduled run queued behind it (`concurrencyPolicy:
//! Forbid`). Every connection gets TCP keepalives and a user timeout (about a minute to
//! notice), and the dump a progress watchdog for whatever else stops it.

use std::time::Duration;

/// Idle time before the first keepalive probe.
pub const KEEPALIVES_IDLE: Duration = Duration::from_secs(15);
/// Between probes.
pub const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the connection is dropped.
pub const KEEPALIVES_COUNT: u32 = 4;
/// How long sent data may stay unacknowledged before the connection is dropped (a peer gone
/// while the client writes, where keepalives do not apply).
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest `pg_dump` may go without writing a byte before the run is stopped: it writes
/// as it reads, so silence this long is a connection or a lock that will not come back.
pub const PROGRESS_TIMEOUT: Duration = Duration::from_secs(300);

/// The connection options libpq's clients (`pg_dump`, `pg_restore`, `psql`) take as a
/// connection string; with no host or database in it, those still come from the PG*
/// environment variables.
pub fn libpq_options() -> String {
    format!(
        "keepalives=1 keepalives_idle={} keepalives_interval={} keepalives_count={KEEPALIVES_COUNT} tcp_user_timeout={}",
        KEEPALIVES_IDLE.as_secs(),
        KEEPALIVES_INTERVAL.as_secs(),
        TCP_USER_TIMEOUT.as_millis()
    )
}

/// The name of the libpq service the shell clients of the migration Jobs connect through.
pub const SERVICE: &str = "healthsystem";

/// A libpq connection service file (`PGSERVICEFILE`) holding [`libpq_options`] as service
/// [`SERVICE`]: shell scripts that run several clients, against two servers, get the options
/// from `PGSERVICE` without quoting them into every command.
pub fn libpq_service_file() -> String {
    let mut file = format!("[{SERVICE}]\n");
    for option in libpq_options().split(' ') {
        file.push_str(option);
        file.push('\n');
    }
    file
}

/// The same for a tokio-postgres connection.
pub fn apply(config: &mut tokio_postgres::Config) {
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVES_IDLE)
        .keepalives_interval(KEEPALIVES_INTERVAL)
        .keepalives_retries(KEEPALIVES_COUNT)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dead peer is noticed within about a minute, well before the two hours of Linux's
    /// defaults, and the options are ones libpq reads.
    #[test]
    fn a_dead_peer_is_noticed_within_about_a_minute() {
        let probing = KEEPALIVES_IDLE + KEEPALIVES_INTERVAL * KEEPALIVES_COUNT;
        assert!(probing <= Duration::from_secs(60), "{probing:?}");
        assert_eq!(
            libpq_options(),
            "keepalives=1 keepalives_idle=15 keepalives_interval=5 keepalives_count=4 tcp_user_timeout=60000"
        );
        assert_eq!(
            libpq_service_file(),
            "[healthsystem]\nkeepalives=1\nkeepalives_idle=15\nkeepalives_interval=5\nkeepalives_count=4\ntcp_user_timeout=60000\n"
        );
        let mut config = tokio_postgres::Config::new();
        apply(&mut config);
        assert_eq!(config.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
    }
}
