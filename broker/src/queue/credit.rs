//! Consumer credit: how many more deliveries a consumer may be sent. A delivery needs credit
//! on three counters: the consumer's prefetch (`basic.qos global=false`, manual ack only), the
//! channel's prefetch (`global=true`, manual ack only) and the transit window (deliveries sent
//! to the connection task but not yet encoded onto its socket, for every consumer). The
//! transit window is what bounds a connection's inbound queue for no-ack consumers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Deliveries a consumer may have in flight towards its connection task.
pub const TRANSIT_WINDOW: u32 = 1024;

/// Channel-wide prefetch (`basic.qos global=true`).
#[derive(Debug, Default)]
pub struct ChannelCredit {
    /// 0 = unlimited.
    pub prefetch: AtomicU32,
    pub unacked: AtomicU32,
}

/// Per-consumer credit.
#[derive(Debug)]
pub struct ConsumerCredit {
    /// Per-consumer prefetch fixed at `basic.consume` (0 = unlimited).
    prefetch: u32,
    unacked: AtomicU32,
    in_transit: AtomicU32,
    /// Set when the queue stopped delivering for lack of transit credit; the connection
    /// clears it and wakes the queue when transit credit returns.
    starved: AtomicBool,
    channel: Arc<ChannelCredit>,
}

fn try_increment(counter: &AtomicU32, limit: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (limit == 0 || n < limit).then_some(n + 1)
        })
        .is_ok()
}

impl ConsumerCredit {
    /// The consumer's prefetch (0 = unlimited), for the management API.
    pub fn prefetch(&self) -> u32 {
        self.prefetch
    }

    /// Credit for a new consumer.
    pub fn new(prefetch: u32, channel: Arc<ChannelCredit>) -> Self {
        Self {
            prefetch,
            unacked: AtomicU32::new(0),
            in_transit: AtomicU32::new(0),
            starved: AtomicBool::new(false),
            channel,
        }
    }

    /// Takes one credit for a delivery, or returns false if any limit is reached.
    pub fn try_acquire(&self, no_ack: bool) -> bool {
        if !try_increment(&self.in_transit, TRANSIT_WINDOW) {
            // Ask to be woken, then look again: credit returned between the check and the
            // flag would otherwise wake nobody. A spurious wake-up is harmless.
            self.starved.store(true, Ordering::Release);
            if !try_increment(&self.in_transit, TRANSIT_WINDOW) {
                return false;
            }
        }
        if no_ack {
            return true;
        }
        if !try_increment(&self.unacked, self.prefetch) {
            self.in_transit.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let limit = self.channel.prefetch.load(Ordering::Acquire);
        if !try_increment(&self.channel.unacked, limit) {
            self.in_transit.fetch_sub(1, Ordering::AcqRel);
            self.unacked.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// A delivery was encoded onto the socket. Returns true if the queue had stopped for lack
    /// of transit credit and must be woken.
    pub fn on_sent(&self) -> bool {
        self.in_transit.fetch_sub(1, Ordering::AcqRel);
        self.starved.swap(false, Ordering::AcqRel)
    }

    /// A delivery never reached the socket (connection or channel gone): give back all of it.
    pub fn release_unsent(&self, no_ack: bool) {
        self.in_transit.fetch_sub(1, Ordering::AcqRel);
        if !no_ack {
            self.on_settled(1);
        }
    }

    /// `n` manual-ack deliveries were acked, rejected or requeued.
    pub fn on_settled(&self, n: u32) {
        self.unacked.fetch_sub(n, Ordering::AcqRel);
        self.channel.unacked.fetch_sub(n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_consumer_prefetch_is_exact() {
        let ch = Arc::new(ChannelCredit::default());
        let c = ConsumerCredit::new(2, ch);
        assert!(c.try_acquire(false));
        assert!(c.try_acquire(false));
        assert!(!c.try_acquire(false));
        c.on_sent();
        c.on_sent();
        c.on_settled(1);
        assert!(c.try_acquire(false));
        assert!(!c.try_acquire(false));
    }

    #[test]
    fn channel_prefetch_is_shared() {
        let ch = Arc::new(ChannelCredit::default());
        ch.prefetch.store(3, Ordering::Release);
        let a = ConsumerCredit::new(0, Arc::clone(&ch));
        let b = ConsumerCredit::new(0, Arc::clone(&ch));
        assert!(a.try_acquire(false));
        assert!(b.try_acquire(false));
        assert!(a.try_acquire(false));
        assert!(!b.try_acquire(false));
        b.on_settled(1);
        assert!(b.try_acquire(false));
    }

    #[test]
    fn transit_window_bounds_no_ack_consumers() {
        let c = ConsumerCredit::new(0, Arc::new(ChannelCredit::default()));
        for _ in 0..TRANSIT_WINDOW {
            assert!(c.try_acquire(true));
        }
        assert!(!c.try_acquire(true));
        assert!(c.on_sent(), "the starved queue must be woken");
        assert!(c.try_acquire(true));
    }
}
