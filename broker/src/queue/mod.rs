//! Queues. A queue's mutable state (`QueueState`: ready messages, consumers, counters) sits
//! behind one mutex that is never held across `.await`: publishers, acks and consumers'
//! connections take it briefly and synchronously. Deliveries are pushed to the consumer's
//! connection task over an unbounded channel whose depth is bounded by consumer credit
//! (prefetch, plus a transit window for deliveries not yet encoded onto the socket).

mod credit;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::message::Message;
use crate::protocol::FieldTable;
pub use credit::{ChannelCredit, ConsumerCredit};

/// Identifies a connection (for exclusive queues and consumer bookkeeping).
pub type ConnectionId = u64;

/// What queues (and the server) send to a connection task.
#[derive(Debug)]
pub enum ConnMsg {
    /// A message for one of the connection's consumers.
    Deliver(Delivery),
    /// The queue a consumer consumed from was deleted: send `basic.cancel`.
    ConsumerCancelled {
        channel: u16,
        consumer_tag: Arc<str>,
    },
}

/// A handle to a connection task.
pub type ConnSender = mpsc::UnboundedSender<ConnMsg>;

/// A message on its way to a consumer.
#[derive(Debug)]
pub struct Delivery {
    pub channel: u16,
    pub consumer_tag: Arc<str>,
    pub queue: Arc<Queue>,
    pub entry: Entry,
    pub credit: Arc<ConsumerCredit>,
    pub no_ack: bool,
}

/// A message in a queue.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Position in the queue's publish order; requeued messages go back in this order.
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
}

/// A consumer as the queue sees it.
#[derive(Debug)]
pub struct Consumer {
    pub tag: Arc<str>,
    pub channel: u16,
    pub connection: ConnectionId,
    pub sender: ConnSender,
    pub no_ack: bool,
    pub exclusive: bool,
    pub priority: i32,
    pub credit: Arc<ConsumerCredit>,
}

/// Settings fixed at declaration.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    pub durable: bool,
    pub exclusive_owner: Option<ConnectionId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// A queue.
#[derive(Debug)]
pub struct Queue {
    pub name: String,
    pub vhost: String,
    pub settings: QueueSettings,
    state: Mutex<QueueState>,
    deleted: AtomicBool,
    /// Messages delivered to consumers with manual ack and not yet settled.
    unacked: AtomicU64,
}

#[derive(Debug, Default)]
struct QueueState {
    ready: VecDeque<Entry>,
    ready_bytes: u64,
    consumers: Vec<Consumer>,
    /// Round-robin position among consumers.
    next_consumer: usize,
    next_seq: u64,
    ever_consumed: bool,
}

/// Why a consume was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsumeError {
    /// The queue has an exclusive consumer, or exclusivity was asked and consumers exist.
    ExclusiveInUse,
}

/// Result of removing a consumer.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    NotFound,
    Removed,
    /// Removed, and the queue is auto-delete with no consumers left: the caller deletes it.
    RemovedLast,
}

impl Queue {
    /// A new empty queue.
    pub fn new(name: String, vhost: String, settings: QueueSettings) -> Self {
        Self {
            name,
            vhost,
            settings,
            state: Mutex::new(QueueState::default()),
            deleted: AtomicBool::new(false),
            unacked: AtomicU64::new(0),
        }
    }

    /// Whether the queue was deleted (handles may outlive it).
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Ready message count.
    pub fn message_count(&self) -> u32 {
        u32::try_from(self.state.lock().ready.len()).unwrap_or(u32::MAX)
    }

    /// Consumer count.
    pub fn consumer_count(&self) -> u32 {
        u32::try_from(self.state.lock().consumers.len()).unwrap_or(u32::MAX)
    }

    /// Unacknowledged deliveries.
    pub fn unacked_count(&self) -> u64 {
        self.unacked.load(Ordering::Relaxed)
    }

    /// Appends a message and delivers what consumer credit allows.
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) {
        let mut st = self.state.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.ready_bytes += message.size() as u64;
        st.ready.push_back(Entry {
            seq,
            message,
            redelivered: false,
        });
        self.dispatch_locked(&mut st);
    }

    /// Delivers ready messages to consumers while they have credit.
    pub fn dispatch(self: &Arc<Self>) {
        let mut st = self.state.lock();
        self.dispatch_locked(&mut st);
    }

    fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState) {
        while !st.ready.is_empty() && !st.consumers.is_empty() {
            let Some(idx) = st.pick_consumer() else { break };
            let Some(entry) = st.ready.pop_front() else {
                break;
            };
            st.ready_bytes -= entry.message.size() as u64;
            let c = &st.consumers[idx];
            if !c.no_ack {
                self.unacked.fetch_add(1, Ordering::Relaxed);
            }
            let delivery = Delivery {
                channel: c.channel,
                consumer_tag: Arc::clone(&c.tag),
                queue: Arc::clone(self),
                entry,
                credit: Arc::clone(&c.credit),
                no_ack: c.no_ack,
            };
            if let Err(mpsc::error::SendError(ConnMsg::Deliver(d))) =
                c.sender.send(ConnMsg::Deliver(delivery))
            {
                // The connection is gone; it will remove its consumers. Take the message back.
                if !d.no_ack {
                    self.unacked.fetch_sub(1, Ordering::Relaxed);
                }
                d.credit.release_unsent(d.no_ack);
                st.ready_bytes += d.entry.message.size() as u64;
                st.ready.push_front(d.entry);
                st.consumers.remove(idx);
            }
        }
    }

    /// Takes the head message for `basic.get`; returns it and the count left.
    pub fn get(&self, no_ack: bool) -> Option<(Entry, u32)> {
        let mut st = self.state.lock();
        let entry = st.ready.pop_front()?;
        st.ready_bytes -= entry.message.size() as u64;
        if !no_ack {
            self.unacked.fetch_add(1, Ordering::Relaxed);
        }
        Some((entry, u32::try_from(st.ready.len()).unwrap_or(u32::MAX)))
    }

    /// Settles deliveries that were acked (or rejected without requeue).
    pub fn settle(&self, count: u64) {
        self.unacked.fetch_sub(count, Ordering::Relaxed);
    }

    /// Puts unacked entries back in publish order at their original place (the head), marked
    /// redelivered, then delivers what credit allows.
    pub fn requeue(self: &Arc<Self>, entries: impl IntoIterator<Item = Entry>) {
        let mut st = self.state.lock();
        let mut n = 0;
        for mut e in entries {
            n += 1;
            e.redelivered = true;
            st.ready_bytes += e.message.size() as u64;
            let at = st.ready.partition_point(|x| x.seq < e.seq);
            st.ready.insert(at, e);
        }
        self.unacked.fetch_sub(n, Ordering::Relaxed);
        if !self.is_deleted() {
            self.dispatch_locked(&mut st);
        }
    }

    /// Takes back a delivery that never reached its consumer (cancelled or closed in the
    /// meantime): same place, redelivered flag unchanged.
    pub fn return_unsent(self: &Arc<Self>, entry: Entry, counted_unacked: bool) {
        let mut st = self.state.lock();
        if counted_unacked {
            self.unacked.fetch_sub(1, Ordering::Relaxed);
        }
        st.ready_bytes += entry.message.size() as u64;
        let at = st.ready.partition_point(|x| x.seq < entry.seq);
        st.ready.insert(at, entry);
    }

    /// Adds a consumer and starts delivering to it.
    pub fn consume(self: &Arc<Self>, consumer: Consumer) -> Result<(), ConsumeError> {
        let mut st = self.state.lock();
        if st.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && !st.consumers.is_empty())
        {
            return Err(ConsumeError::ExclusiveInUse);
        }
        st.ever_consumed = true;
        // Highest priority first; equal priorities keep arrival order for round-robin.
        let at = st
            .consumers
            .partition_point(|c| c.priority >= consumer.priority);
        st.consumers.insert(at, consumer);
        self.dispatch_locked(&mut st);
        Ok(())
    }

    /// Removes a consumer.
    pub fn cancel(&self, connection: ConnectionId, channel: u16, tag: &str) -> CancelOutcome {
        let mut st = self.state.lock();
        let before = st.consumers.len();
        st.consumers
            .retain(|c| !(c.connection == connection && c.channel == channel && &*c.tag == tag));
        if st.consumers.len() == before {
            CancelOutcome::NotFound
        } else if st.consumers.is_empty() && self.settings.auto_delete && st.ever_consumed {
            CancelOutcome::RemovedLast
        } else {
            CancelOutcome::Removed
        }
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let n = st.ready.len();
        st.ready.clear();
        st.ready_bytes = 0;
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Marks the queue deleted, drops its messages and returns its consumers (so their
    /// connections can be told) and the number of ready messages it held.
    pub fn mark_deleted(&self) -> (Vec<Consumer>, u32) {
        self.deleted.store(true, Ordering::Release);
        let mut st = self.state.lock();
        let n = u32::try_from(st.ready.len()).unwrap_or(u32::MAX);
        st.ready.clear();
        st.ready_bytes = 0;
        (std::mem::take(&mut st.consumers), n)
    }
}

impl QueueState {
    /// Chooses the next consumer with credit: highest priority first, round-robin among
    /// equals. Acquires one credit from the chosen consumer.
    fn pick_consumer(&mut self) -> Option<usize> {
        let n = self.consumers.len();
        let mut i = 0;
        while i < n {
            let priority = self.consumers[i].priority;
            let group_end = i + self.consumers[i..]
                .iter()
                .take_while(|c| c.priority == priority)
                .count();
            let len = group_end - i;
            let start = if (i..group_end).contains(&self.next_consumer) {
                self.next_consumer - i
            } else {
                0
            };
            for k in 0..len {
                let idx = i + (start + k) % len;
                let c = &self.consumers[idx];
                if c.credit.try_acquire(c.no_ack) {
                    self.next_consumer = if idx + 1 < group_end { idx + 1 } else { i };
                    return Some(idx);
                }
            }
            i = group_end;
        }
        None
    }
}
