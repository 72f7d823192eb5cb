//! Time as the broker needs it: a monotonic millisecond clock for expiries and wall-clock
//! seconds for `x-death` timestamps.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds on a monotonic clock; never 0 (0 means "no deadline" in entries).
pub fn monotonic_ms() -> u64 {
    u64::try_from(origin().elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The `Instant` of a [`monotonic_ms`] reading.
pub fn instant_of(ms: u64) -> Instant {
    origin() + std::time::Duration::from_millis(ms.saturating_sub(1))
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A [`monotonic_ms`] deadline as milliseconds since the Unix epoch (0 stays 0: no deadline),
/// so it keeps its meaning across a restart.
pub fn deadline_to_unix(deadline: u64) -> u64 {
    if deadline == 0 {
        return 0;
    }
    let now = monotonic_ms();
    let unix = unix_ms();
    if deadline >= now {
        unix.saturating_add(deadline - now)
    } else {
        unix.saturating_sub(now - deadline).max(1)
    }
}

/// The [`monotonic_ms`] deadline of a [`deadline_to_unix`] value (a past one is now).
pub fn deadline_from_unix(unix_deadline: u64) -> u64 {
    if unix_deadline == 0 {
        return 0;
    }
    monotonic_ms().saturating_add(unix_deadline.saturating_sub(unix_ms()))
}

/// Seconds since the Unix epoch (AMQP timestamps).
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
