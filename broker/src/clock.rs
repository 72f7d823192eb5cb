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

/// Seconds since the Unix epoch (AMQP timestamps).
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
