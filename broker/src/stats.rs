//! Statistics counters for the management API and Prometheus: plain atomics bumped on the
//! hot path (one relaxed add, no lock, no allocation) and read when sampled. Rates are not
//! computed here: the sampler (`management/rates.rs`) diffs two snapshots.
//!
//! Each counter has one writer in practice (a queue's counters are bumped under its lock, a
//! channel's by its connection task), so the adds never contend.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A monotonic counter or a gauge.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A flag shown in statistics (confirm mode, transactional).
#[derive(Debug, Default)]
pub struct Flag(AtomicBool);

impl Flag {
    pub fn set(&self, v: bool) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! message_stats {
    ($($(#[$doc:meta])* $field:ident),+ $(,)?) => {
        /// RabbitMQ's `message_stats` counters, kept by queues (their share of each) and by
        /// channels (what their clients did).
        #[derive(Debug, Default)]
        pub struct MessageStats {
            $($(#[$doc])* pub $field: Counter,)+
        }

        /// A snapshot of [`MessageStats`].
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct MessageCounts {
            $($(#[$doc])* pub $field: u64,)+
        }

        impl MessageStats {
            /// The counters now.
            pub fn snapshot(&self) -> MessageCounts {
                MessageCounts { $($field: self.$field.get(),)+ }
            }

            /// Adds a snapshot (a closed channel's totals go to the node's).
            pub fn absorb(&self, c: &MessageCounts) {
                $(self.$field.add(c.$field);)+
            }
        }

        impl MessageCounts {
            /// Field-wise sum.
            pub fn add(&mut self, o: &MessageCounts) {
                $(self.$field += o.$field;)+
            }

            /// Field-wise difference (`self` is the later snapshot), for rates.
            pub fn since(&self, earlier: &MessageCounts) -> MessageCounts {
                MessageCounts { $($field: self.$field.saturating_sub(earlier.$field),)+ }
            }

            /// `(name, value)` of every field, in declaration order (RabbitMQ's names).
            pub fn fields(&self) -> [(&'static str, u64); message_stats!(@count $($field)+)] {
                [$((stringify!($field), self.$field),)+]
            }
        }
    };
    (@count $($x:ident)+) => { <[()]>::len(&[$(message_stats!(@unit $x)),+]) };
    (@unit $x:ident) => { () };
}

message_stats! {
    /// Messages published (by a channel) or enqueued (into a queue).
    publish,
    /// Publisher confirms sent (basic.ack to the publisher).
    confirm,
    /// Mandatory messages that were returned unroutable.
    return_unroutable,
    /// Messages dropped as unroutable.
    drop_unroutable,
    /// Deliveries to consumers in manual-ack mode.
    deliver,
    /// Deliveries to consumers in automatic-ack mode.
    deliver_no_ack,
    /// `basic.get` in manual-ack mode that returned a message.
    get,
    /// `basic.get` in automatic-ack mode that returned a message.
    get_no_ack,
    /// `basic.get` that found the queue empty.
    get_empty,
    /// Deliveries (or gets) of messages delivered before.
    redeliver,
    /// Messages acknowledged by consumers.
    ack,
    /// Messages read back from disk (paged out or recovered).
    disk_reads,
    /// Messages written to disk.
    disk_writes,
}

impl MessageCounts {
    /// RabbitMQ's `deliver_get`: deliveries and gets of both ack modes.
    pub fn deliver_get(&self) -> u64 {
        self.deliver + self.deliver_no_ack + self.get + self.get_no_ack
    }
}

/// A channel's statistics, shared between its connection task (the writer) and the registry.
#[derive(Debug, Default)]
pub struct ChannelStats {
    pub messages: MessageStats,
    /// Deliveries waiting for an ack.
    pub unacked: Counter,
    /// Publishes waiting for a confirm.
    pub unconfirmed: Counter,
    /// Publishes held by an open transaction.
    pub uncommitted: Counter,
    pub consumers: Counter,
    /// `basic.qos global=false` prefetch.
    pub prefetch_count: Counter,
    /// `basic.qos global=true` prefetch.
    pub global_prefetch_count: Counter,
    pub confirm: Flag,
    pub transactional: Flag,
}

/// Bytes and frames through a connection's socket.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub recv_oct: Counter,
    pub recv_cnt: Counter,
    pub send_oct: Counter,
    pub send_cnt: Counter,
}

/// Node-wide object churn (RabbitMQ's `churn_rates` and `rabbitmq_*_opened_total`).
#[derive(Debug, Default)]
pub struct Churn {
    pub connection_created: Counter,
    pub connection_closed: Counter,
    pub channel_created: Counter,
    pub channel_closed: Counter,
    pub queue_declared: Counter,
    pub queue_created: Counter,
    pub queue_deleted: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_add_and_diff() {
        let s = MessageStats::default();
        s.publish.add(5);
        s.deliver.incr();
        s.get_no_ack.incr();
        let a = s.snapshot();
        s.publish.add(3);
        let b = s.snapshot();
        assert_eq!(b.since(&a).publish, 3);
        assert_eq!(a.deliver_get(), 2);
        let node = MessageStats::default();
        node.absorb(&b);
        assert_eq!(node.snapshot(), b);
        assert_eq!(b.fields()[0], ("publish", 8));
        assert_eq!(b.fields().len(), 13);
    }
}
