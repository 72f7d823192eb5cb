//! Queues. A queue's mutable state (`QueueState`: ready messages, consumers, counters) sits
//! behind one mutex that is never held across `.await`: publishers, acks and consumers'
//! connections take it briefly and synchronously. Deliveries are pushed to the consumer's
//! connection task over an unbounded channel whose depth is bounded by consumer credit
//! (prefetch, plus a transit window for deliveries not yet encoded onto the socket).
//!
//! Operations that drop messages for a reason RabbitMQ dead-letters (`expired`, `maxlen`,
//! `rejected`, `delivery_limit`) never route them while the lock is held: they hand back
//! [`DeadLetter`]s, which the vhost routes after the lock is released (no lock ordering
//! between queues, no recursion through dead-letter chains).

pub mod args;
mod credit;
mod ready;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::clock;
use crate::message::Message;
use crate::protocol::FieldTable;
use crate::stats::MessageStats;
use crate::store::{IDLE_SEGMENT_MS, Location, LogReader, MessageRef, QueueLog, Recovered};
use crate::timer::Timers;
use crate::vhost::Vhost;
pub use args::{Overflow, QueueArgs, QueueType};
pub use credit::{ChannelCredit, ConsumerCredit};
use ready::Ready;

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
    /// The store's fsync number `generation` asked by this connection completed (`ok`) or
    /// failed: send the confirms waiting for it.
    Synced { generation: u64, ok: bool },
    /// An operator closes the connection (management API): `320 CONNECTION_FORCED - reason`.
    Close { reason: String },
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

/// A message in a queue: the index entry, with the message itself while it is in memory.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Position in the queue's publish order; requeued messages go back in this order. Also
    /// the message's id in the queue log.
    pub seq: u64,
    /// The message, unless it was paged out (or recovered) and lives only in the log.
    pub message: Option<Arc<Message>>,
    /// Where the message is in the queue log, for persistent messages in durable queues.
    pub location: Option<Location>,
    /// Deadline on [`clock::monotonic_ms`] (0 = never).
    pub expires_at: u64,
    /// Body size (for `x-max-length-bytes` and accounting without the message).
    pub size: u32,
    /// Times this message was delivered from this queue (for `x-delivery-limit`).
    pub deliveries: u16,
    /// Message priority (for priority queues).
    pub priority: u8,
    pub redelivered: bool,
}

/// In-memory persistent messages a queue keeps ahead of its consumers; past this depth, or
/// past [`PAGE_OUT_AFTER_BYTES`] of ready bodies, new persistent messages live only in the
/// log (read back on delivery), so memory does not grow with queue depth or message size.
const PAGE_OUT_AFTER: usize = 4096;
/// See [`PAGE_OUT_AFTER`]: 4096 messages of 1 MiB would otherwise be 4 GiB.
const PAGE_OUT_AFTER_BYTES: u64 = 16 * 1024 * 1024;

/// Why a message leaves a queue for its dead-letter exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeathReason {
    Rejected,
    Expired,
    MaxLen,
    DeliveryLimit,
}

impl DeathReason {
    /// The name in `x-death`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::MaxLen => "maxlen",
            Self::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message dropped from a queue that has a dead-letter exchange.
#[derive(Debug)]
pub struct DeadLetter {
    pub queue: String,
    pub reason: DeathReason,
    pub message: Arc<Message>,
    pub exchange: String,
    pub routing_key: Option<String>,
    /// The source queue's log record, acked only once the dead-lettered copies are fsynced,
    /// so a crash in between leaves the message in one place or both, never in neither.
    pub source: Option<(Arc<Queue>, u64, Location)>,
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

/// A queue's counts at one moment (management API, metrics).
#[derive(Clone, Debug, Default)]
pub struct QueueSnapshot {
    pub ready: u64,
    pub ready_bytes: u64,
    pub unacked: u64,
    pub consumers: u64,
    pub exclusive_consumer_tag: Option<Arc<str>>,
}

/// A consumer as the management API shows it.
#[derive(Clone, Debug)]
pub struct ConsumerView {
    pub tag: Arc<str>,
    pub channel: u16,
    pub connection: ConnectionId,
    pub no_ack: bool,
    pub exclusive: bool,
    pub priority: i32,
    pub prefetch: u32,
    pub active: bool,
}

/// Settings fixed at declaration.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    pub durable: bool,
    pub exclusive_owner: Option<ConnectionId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    pub args: QueueArgs,
}

/// A queue.
#[derive(Debug)]
pub struct Queue {
    pub name: String,
    pub vhost: String,
    pub settings: QueueSettings,
    state: Mutex<QueueState>,
    deleted: AtomicBool,
    /// Messages delivered with manual ack (or fetched by `basic.get`) and not yet settled.
    unacked: AtomicU64,
    owner: Weak<Vhost>,
    timers: Timers,
    me: Weak<Queue>,
    /// Reads paged-out messages back from the log without the queue lock.
    reader: Option<LogReader>,
    /// Counters for the management API and metrics (bumped under the queue lock or by the
    /// reader; read without it).
    pub stats: MessageStats,
}

#[derive(Debug)]
struct QueueState {
    ready: Ready,
    consumers: Vec<Consumer>,
    /// Round-robin position among consumers.
    next_consumer: usize,
    next_seq: u64,
    ever_consumed: bool,
    /// Last time the queue was used (consumer, get, declare), for `x-expires`.
    last_used: u64,
    /// Earliest wake-up already asked of the timer task (0 = none).
    timer_at: u64,
    /// When to delete the log's emptied current segment if it stayed idle (0 = no check due).
    idle_segment_at: u64,
    /// The queue log (durable queues only).
    log: Option<QueueLog>,
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

/// What became of a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    Enqueued,
    /// Enqueued and written to the queue log: its confirm waits for the next fsync.
    Persisted,
    /// Refused by `x-overflow = reject-publish(-dlx)`: the publisher gets `basic.nack`.
    Rejected,
}

impl Queue {
    /// A new empty queue belonging to `owner`.
    pub fn new(
        name: String,
        vhost: String,
        settings: QueueSettings,
        owner: Weak<Vhost>,
        timers: Timers,
        log: Option<(QueueLog, Vec<Recovered>)>,
    ) -> Arc<Self> {
        let max_priority = settings.args.max_priority.unwrap_or(0);
        let mut ready = Ready::new(max_priority);
        let mut next_seq = 0;
        let (log, reader) = match log {
            Some((log, recovered)) => {
                next_seq = log.next_seq();
                for r in recovered {
                    ready.push_back(Entry {
                        seq: r.seq,
                        message: None,
                        location: Some(r.location),
                        expires_at: clock::deadline_from_unix(r.expires_unix_ms),
                        size: r.body_len,
                        deliveries: u16::from(r.delivered),
                        priority: r.priority,
                        redelivered: r.delivered,
                    });
                }
                let reader = log.reader();
                (Some(log), Some(reader))
            }
            None => (None, None),
        };
        let q = Arc::new_cyclic(|me| Self {
            name,
            vhost,
            settings,
            state: Mutex::new(QueueState {
                ready,
                consumers: Vec::new(),
                next_consumer: 0,
                next_seq,
                ever_consumed: false,
                last_used: clock::monotonic_ms(),
                timer_at: 0,
                idle_segment_at: 0,
                log,
            }),
            deleted: AtomicBool::new(false),
            unacked: AtomicU64::new(0),
            owner,
            timers,
            me: me.clone(),
            reader,
            stats: MessageStats::default(),
        });
        if let Some(expires) = q.settings.args.expires {
            q.timers
                .schedule(clock::monotonic_ms() + expires, Weak::clone(&q.me));
        }
        // Recovered messages may have deadlines.
        q.schedule_locked(&mut q.state.lock());
        q
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

    /// Counts for the management API and metrics, taken under the lock at once.
    pub fn snapshot(&self) -> QueueSnapshot {
        let st = self.state.lock();
        QueueSnapshot {
            ready: st.ready.len() as u64,
            ready_bytes: st.ready.bytes(),
            unacked: self.unacked.load(Ordering::Relaxed),
            consumers: st.consumers.len() as u64,
            exclusive_consumer_tag: st
                .consumers
                .iter()
                .find(|c| c.exclusive)
                .map(|c| Arc::clone(&c.tag)),
        }
    }

    /// The queue's consumers, for the management API.
    pub fn consumers(&self) -> Vec<ConsumerView> {
        let st = self.state.lock();
        let single = self.settings.args.single_active_consumer;
        st.consumers
            .iter()
            .enumerate()
            .map(|(i, c)| ConsumerView {
                tag: Arc::clone(&c.tag),
                channel: c.channel,
                connection: c.connection,
                no_ack: c.no_ack,
                exclusive: c.exclusive,
                priority: c.priority,
                prefetch: c.credit.prefetch(),
                // With a single active consumer only the first one receives.
                active: !single || i == 0,
            })
            .collect()
    }

    /// Unacknowledged deliveries.
    pub fn unacked_count(&self) -> u64 {
        self.unacked.load(Ordering::Relaxed)
    }

    /// Marks the queue used (a redeclare), postponing `x-expires`.
    pub fn touch(&self) {
        self.state.lock().last_used = clock::monotonic_ms();
    }

    /// Appends a message and delivers what consumer credit allows. Messages the queue drops
    /// for a dead-letter reason are appended to `dead`.
    pub fn publish(
        self: &Arc<Self>,
        message: Arc<Message>,
        dead: &mut Vec<DeadLetter>,
    ) -> PublishOutcome {
        let args = &self.settings.args;
        let now = clock::monotonic_ms();
        let mut st = self.state.lock();
        self.expire_locked(&mut st, now, dead);
        if matches!(
            args.overflow,
            Overflow::RejectPublish | Overflow::RejectPublishDlx
        ) && self.over_limit(&st.ready, 1, message.size() as u64)
        {
            if args.overflow == Overflow::RejectPublishDlx {
                self.dead_letter(DeathReason::MaxLen, message, dead);
            }
            return PublishOutcome::Rejected;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let expires_at = self.expiry_of(&message, now);
        let mut location = None;
        if self.settings.durable && message.is_persistent() {
            let Some(log) = st.log.as_mut() else {
                return PublishOutcome::Rejected;
            };
            let stored = MessageRef {
                priority: message.properties.priority().unwrap_or(0),
                expires_unix_ms: clock::deadline_to_unix(expires_at),
                exchange: message.exchange.as_str(),
                routing_key: message.routing_key.as_str(),
                raw_properties: &message.raw_properties,
                body: &message.body,
            };
            match log.append(seq, stored) {
                Ok(l) => {
                    location = Some(l);
                    self.stats.disk_writes.incr();
                }
                Err(e) => {
                    tracing::error!(queue = %self.name, error = %e, "message not stored; the publisher gets basic.nack");
                    return PublishOutcome::Rejected;
                }
            }
        }
        let persisted = location.is_some();
        self.stats.publish.incr();
        let keep_in_memory = !persisted
            || (st.ready.len() < PAGE_OUT_AFTER && st.ready.bytes() < PAGE_OUT_AFTER_BYTES);
        st.ready.push_back(Entry {
            seq,
            size: u32::try_from(message.size()).unwrap_or(u32::MAX),
            priority: message.properties.priority().unwrap_or(0),
            message: keep_in_memory.then_some(message),
            location,
            expires_at,
            deliveries: 0,
            redelivered: false,
        });
        if args.overflow == Overflow::DropHead {
            while self.over_limit(&st.ready, 0, 0) {
                let Some(head) = st.ready.pop_front() else {
                    break;
                };
                self.drop_entry(&mut st, DeathReason::MaxLen, head, dead);
            }
        }
        self.dispatch_locked(&mut st, now, dead);
        // TTL 0: what no consumer took at once expires now.
        self.expire_locked(&mut st, now, dead);
        self.schedule_locked(&mut st);
        if persisted {
            PublishOutcome::Persisted
        } else {
            PublishOutcome::Enqueued
        }
    }

    /// Whether adding `count` messages of `bytes` would exceed (or, with 0, exceeds) a limit.
    fn over_limit(&self, ready: &Ready, count: u64, bytes: u64) -> bool {
        let args = &self.settings.args;
        let len = ready.len() as u64 + count;
        let total = ready.bytes() + bytes;
        let by_len = args.max_length.is_some_and(|max| len > max);
        let by_bytes = args.max_length_bytes.is_some_and(|max| total > max);
        // With count 0 we ask whether the queue as it is exceeds a limit.
        by_len || by_bytes
    }

    /// The deadline of a message entering the queue now.
    fn expiry_of(&self, message: &Message, now: u64) -> u64 {
        let per_message = message
            .properties
            .expiration()
            .as_ref()
            .and_then(|e| args::parse_expiration(e.as_str()).ok());
        match (self.settings.args.message_ttl, per_message) {
            (None, None) => 0,
            (a, b) => now + a.unwrap_or(u64::MAX).min(b.unwrap_or(u64::MAX)),
        }
    }

    /// Drops expired messages at the head.
    fn expire_locked(&self, st: &mut QueueState, now: u64, dead: &mut Vec<DeadLetter>) {
        let mut expired = Vec::new();
        st.ready.pop_expired(now, &mut expired);
        for e in expired {
            self.drop_entry(st, DeathReason::Expired, e, dead);
        }
    }

    /// Asks the timer task to wake us for the earliest head expiry.
    fn schedule_locked(&self, st: &mut QueueState) {
        let next = st.ready.next_expiry();
        if next != 0 && (st.timer_at == 0 || next < st.timer_at) {
            st.timer_at = next;
            self.timers.schedule(next, Weak::clone(&self.me));
        }
        self.schedule_idle_segment_check(st);
    }

    /// Acks may have emptied the log's current segment: look again once it has been idle.
    fn schedule_idle_segment_check(&self, st: &mut QueueState) {
        if st.log.as_mut().is_some_and(QueueLog::wants_idle_check) {
            let at = clock::monotonic_ms() + IDLE_SEGMENT_MS;
            st.idle_segment_at = at;
            self.timers.schedule(at, Weak::clone(&self.me));
        }
    }

    /// Deletes the log's current segment if it stayed empty and idle since it emptied.
    fn delete_idle_segment_locked(&self, st: &mut QueueState, now: u64) {
        if st.idle_segment_at == 0 || now < st.idle_segment_at {
            return;
        }
        st.idle_segment_at = 0;
        if st.log.as_mut().is_some_and(QueueLog::delete_idle_segment) {
            let at = now + IDLE_SEGMENT_MS;
            st.idle_segment_at = at;
            self.timers.schedule(at, Weak::clone(&self.me));
        }
    }

    /// Queues `message` for dead-lettering if the queue has a dead-letter exchange.
    fn dead_letter(&self, reason: DeathReason, message: Arc<Message>, dead: &mut Vec<DeadLetter>) {
        if let Some(exchange) = &self.settings.args.dead_letter_exchange {
            dead.push(DeadLetter {
                queue: self.name.clone(),
                reason,
                message,
                exchange: exchange.clone(),
                routing_key: self.settings.args.dead_letter_routing_key.clone(),
                source: None,
            });
        }
    }

    /// An entry leaves the queue for good for `reason`: dead-letter it (if the queue has a
    /// dead-letter exchange) and forget it in the log.
    fn drop_entry(
        &self,
        st: &mut QueueState,
        reason: DeathReason,
        entry: Entry,
        dead: &mut Vec<DeadLetter>,
    ) {
        if self.settings.args.dead_letter_exchange.is_some()
            && let Some(message) = self.materialize(&entry)
        {
            self.dead_letter(reason, message, dead);
            if let (Some(dl), Some(location), Some(me)) =
                (dead.last_mut(), entry.location, self.me.upgrade())
            {
                // Forgotten in our log after the dead-letter copies are synced.
                dl.source = Some((me, entry.seq, location));
                return;
            }
        }
        forget(st, &entry);
    }

    /// The entry's message, read back from the log if it was paged out. `None` only if the
    /// log cannot produce it (logged).
    pub fn materialize(&self, entry: &Entry) -> Option<Arc<Message>> {
        if let Some(m) = &entry.message {
            return Some(Arc::clone(m));
        }
        let (reader, location) = (self.reader.as_ref()?, entry.location?);
        self.stats.disk_reads.incr();
        match reader.read(location) {
            Ok(stored) => match crate::protocol::decode_properties(&stored.raw_properties) {
                Ok(properties) => Some(Arc::new(Message {
                    exchange: stored.exchange.as_str().into(),
                    routing_key: stored.routing_key.as_str().into(),
                    raw_properties: stored.raw_properties,
                    properties,
                    body: stored.body,
                })),
                Err(e) => {
                    tracing::error!(queue = %self.name, seq = entry.seq, error = %e, "stored properties unreadable; message dropped");
                    None
                }
            },
            Err(e) => {
                tracing::error!(queue = %self.name, seq = entry.seq, error = %e, "stored message unreadable; message dropped");
                None
            }
        }
    }

    /// Acks a dead-lettered record in the log, once its copies are durable.
    pub fn forget_dead_lettered(&self, seq: u64, location: Location) {
        let mut st = self.state.lock();
        if let Some(log) = st.log.as_mut()
            && let Err(e) = log.ack(seq, location)
        {
            tracing::debug!(error = %e, "ack not recorded in the queue log");
        }
        self.schedule_idle_segment_check(&mut st);
    }

    /// Routes dead letters produced outside a publish (timer, dispatch, acks).
    fn route_dead(&self, dead: Vec<DeadLetter>) {
        if dead.is_empty() {
            return;
        }
        if let Some(vhost) = self.owner.upgrade() {
            vhost.route_dead_letters(dead);
        }
    }

    /// The timer fired: expire head messages, and delete the queue if `x-expires` passed.
    pub fn on_timer(self: &Arc<Self>) {
        let now = clock::monotonic_ms();
        let mut dead = Vec::new();
        let expire_queue = {
            let mut st = self.state.lock();
            st.timer_at = 0;
            self.delete_idle_segment_locked(&mut st, now);
            self.expire_locked(&mut st, now, &mut dead);
            self.dispatch_locked(&mut st, now, &mut dead);
            self.schedule_locked(&mut st);
            match self.settings.args.expires {
                Some(expires) if st.consumers.is_empty() => {
                    let due = st.last_used + expires;
                    if due <= now {
                        true
                    } else {
                        self.timers.schedule(due, Weak::clone(&self.me));
                        false
                    }
                }
                _ => false,
            }
        };
        self.route_dead(dead);
        if expire_queue && let Some(vhost) = self.owner.upgrade() {
            vhost.delete_queue(self);
        }
    }

    /// Delivers ready messages to consumers while they have credit.
    pub fn dispatch(self: &Arc<Self>) {
        let mut dead = Vec::new();
        {
            let mut st = self.state.lock();
            self.dispatch_locked(&mut st, clock::monotonic_ms(), &mut dead);
            self.schedule_locked(&mut st);
        }
        self.route_dead(dead);
    }

    fn dispatch_locked(
        self: &Arc<Self>,
        st: &mut QueueState,
        now: u64,
        dead: &mut Vec<DeadLetter>,
    ) {
        while !st.ready.is_empty() && !st.consumers.is_empty() {
            // Never deliver an expired message (one at its deadline still goes: TTL 0 means
            // "deliver now or never").
            if (1..now).contains(&st.ready.front_deadline()) {
                self.expire_locked(st, now - 1, dead);
                continue;
            }
            let single = self.settings.args.single_active_consumer;
            let Some(idx) = st.pick_consumer(single) else {
                break;
            };
            let Some(mut entry) = st.ready.pop_front() else {
                break;
            };
            entry.deliveries = entry.deliveries.saturating_add(1);
            let no_ack = st.consumers[idx].no_ack;
            if entry.redelivered {
                self.stats.redeliver.incr();
            }
            if no_ack {
                self.stats.deliver_no_ack.incr();
                // Settled now: read it back before its log record may go with the ack.
                if entry.message.is_none() {
                    entry.message = self.materialize(&entry);
                }
                forget(st, &entry);
            } else {
                self.stats.deliver.incr();
                self.unacked.fetch_add(1, Ordering::Relaxed);
                mark_delivered(st, &entry);
            }
            let c = &st.consumers[idx];
            let delivery = Delivery {
                channel: c.channel,
                consumer_tag: Arc::clone(&c.tag),
                queue: Arc::clone(self),
                entry,
                credit: Arc::clone(&c.credit),
                no_ack: c.no_ack,
            };
            if let Err(mpsc::error::SendError(ConnMsg::Deliver(mut d))) =
                c.sender.send(ConnMsg::Deliver(delivery))
            {
                // The connection is gone; it will remove its consumers. Take the message back.
                if !d.no_ack {
                    self.unacked.fetch_sub(1, Ordering::Relaxed);
                }
                d.credit.release_unsent(d.no_ack);
                d.entry.deliveries -= 1;
                if !d.no_ack {
                    st.ready.insert(d.entry);
                }
                st.consumers.remove(idx);
            }
        }
    }

    /// Takes the head message for `basic.get`; returns it and the count left.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<(Entry, u32)> {
        let now = clock::monotonic_ms();
        let mut dead = Vec::new();
        let got = {
            let mut st = self.state.lock();
            st.last_used = now;
            self.expire_locked(&mut st, now, &mut dead);
            let got = st.ready.pop_front().map(|mut entry| {
                entry.deliveries = entry.deliveries.saturating_add(1);
                if entry.redelivered {
                    self.stats.redeliver.incr();
                }
                if no_ack {
                    self.stats.get_no_ack.incr();
                    if entry.message.is_none() {
                        entry.message = self.materialize(&entry);
                    }
                    forget(&mut st, &entry);
                } else {
                    self.stats.get.incr();
                    self.unacked.fetch_add(1, Ordering::Relaxed);
                    mark_delivered(&mut st, &entry);
                }
                (entry, u32::try_from(st.ready.len()).unwrap_or(u32::MAX))
            });
            if got.is_none() {
                self.stats.get_empty.incr();
            }
            self.schedule_locked(&mut st);
            got
        };
        self.route_dead(dead);
        got
    }

    /// Settles deliveries that were acked.
    pub fn ack(&self, entries: &[Entry]) {
        self.stats.ack.add(entries.len() as u64);
        self.unacked
            .fetch_sub(entries.len() as u64, Ordering::Relaxed);
        if self.settings.durable {
            let mut st = self.state.lock();
            for e in entries {
                forget(&mut st, e);
            }
            self.schedule_idle_segment_check(&mut st);
        }
    }

    /// Settles deliveries rejected without requeue: they are dead-lettered (`rejected`).
    pub fn reject(&self, entries: Vec<Entry>) {
        self.unacked
            .fetch_sub(entries.len() as u64, Ordering::Relaxed);
        let mut dead = Vec::new();
        {
            let mut st = self.state.lock();
            for e in entries {
                self.drop_entry(&mut st, DeathReason::Rejected, e, &mut dead);
            }
            self.schedule_idle_segment_check(&mut st);
        }
        self.route_dead(dead);
    }

    /// Puts unacked entries back at their original place, marked redelivered, then delivers
    /// what credit allows. Entries past `x-delivery-limit` are dead-lettered instead.
    pub fn requeue(self: &Arc<Self>, entries: impl IntoIterator<Item = Entry>) {
        let now = clock::monotonic_ms();
        let mut dead = Vec::new();
        {
            let mut st = self.state.lock();
            let mut n = 0;
            for mut e in entries {
                n += 1;
                if self
                    .settings
                    .args
                    .delivery_limit
                    .is_some_and(|limit| u64::from(e.deliveries) > limit)
                {
                    self.drop_entry(&mut st, DeathReason::DeliveryLimit, e, &mut dead);
                    continue;
                }
                e.redelivered = true;
                st.ready.insert(e);
            }
            self.unacked.fetch_sub(n, Ordering::Relaxed);
            if !self.is_deleted() {
                self.dispatch_locked(&mut st, now, &mut dead);
            }
            self.schedule_locked(&mut st);
        }
        self.route_dead(dead);
    }

    /// Takes back a delivery that never reached its consumer (cancelled or closed in the
    /// meantime): same place, redelivered flag unchanged.
    pub fn return_unsent(self: &Arc<Self>, mut entry: Entry, counted_unacked: bool) {
        let mut st = self.state.lock();
        if counted_unacked {
            self.unacked.fetch_sub(1, Ordering::Relaxed);
        }
        entry.deliveries = entry.deliveries.saturating_sub(1);
        if counted_unacked {
            st.ready.insert(entry);
        }
    }

    /// Adds a consumer and starts delivering to it.
    pub fn consume(self: &Arc<Self>, consumer: Consumer) -> Result<(), ConsumeError> {
        let now = clock::monotonic_ms();
        let mut dead = Vec::new();
        {
            let mut st = self.state.lock();
            if st.consumers.iter().any(|c| c.exclusive)
                || (consumer.exclusive && !st.consumers.is_empty())
            {
                return Err(ConsumeError::ExclusiveInUse);
            }
            st.ever_consumed = true;
            st.last_used = now;
            if self.settings.args.single_active_consumer {
                // The first consumer stays active; later ones wait in arrival order.
                st.consumers.push(consumer);
            } else {
                // Highest priority first; equal priorities keep arrival order for round-robin.
                let at = st
                    .consumers
                    .partition_point(|c| c.priority >= consumer.priority);
                st.consumers.insert(at, consumer);
            }
            self.dispatch_locked(&mut st, now, &mut dead);
            self.schedule_locked(&mut st);
        }
        self.route_dead(dead);
        Ok(())
    }

    /// Removes a consumer.
    pub fn cancel(&self, connection: ConnectionId, channel: u16, tag: &str) -> CancelOutcome {
        let mut st = self.state.lock();
        let before = st.consumers.len();
        st.consumers
            .retain(|c| !(c.connection == connection && c.channel == channel && &*c.tag == tag));
        if st.consumers.len() == before {
            return CancelOutcome::NotFound;
        }
        st.last_used = clock::monotonic_ms();
        if st.consumers.is_empty() {
            if let Some(expires) = self.settings.args.expires {
                self.timers
                    .schedule(st.last_used + expires, Weak::clone(&self.me));
            }
            if self.settings.auto_delete && st.ever_consumed {
                return CancelOutcome::RemovedLast;
            }
        }
        CancelOutcome::Removed
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let purged = st.ready.clear();
        for e in &purged {
            forget(&mut st, e);
        }
        self.schedule_idle_segment_check(&mut st);
        u32::try_from(purged.len()).unwrap_or(u32::MAX)
    }

    /// Marks the queue deleted, drops its messages and returns its consumers (so their
    /// connections can be told) and the number of ready messages it held.
    pub fn mark_deleted(&self) -> (Vec<Consumer>, u32) {
        self.deleted.store(true, Ordering::Release);
        let mut st = self.state.lock();
        let n = u32::try_from(st.ready.clear().len()).unwrap_or(u32::MAX);
        if let Some(log) = st.log.take()
            && let Err(e) = log.delete()
        {
            tracing::warn!(queue = %self.name, error = %e, "could not delete the queue log");
        }
        (std::mem::take(&mut st.consumers), n)
    }
}

/// Records in the log that a persistent entry left the queue (acked, dropped, purged).
fn forget(st: &mut QueueState, entry: &Entry) {
    if let (Some(log), Some(location)) = (st.log.as_mut(), entry.location)
        && let Err(e) = log.ack(entry.seq, location)
    {
        tracing::debug!(error = %e, "ack not recorded in the queue log");
    }
}

/// Records the first delivery of a persistent entry (it comes back redelivered after a crash).
fn mark_delivered(st: &mut QueueState, entry: &Entry) {
    if entry.deliveries == 1
        && !entry.redelivered
        && let (Some(log), Some(location)) = (st.log.as_mut(), entry.location)
        && let Err(e) = log.delivered(entry.seq, location)
    {
        tracing::debug!(error = %e, "delivery not recorded in the queue log");
    }
}

impl QueueState {
    /// Chooses the next consumer with credit: highest priority first, round-robin among
    /// equals (or only the first consumer, for a single-active-consumer queue). Acquires one
    /// credit from the chosen consumer.
    fn pick_consumer(&mut self, single_active: bool) -> Option<usize> {
        if single_active {
            let c = self.consumers.first()?;
            return c.credit.try_acquire(c.no_ack).then_some(0);
        }
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::AMQPProperties;

    #[derive(Clone, Debug)]
    enum Op {
        /// Publish with a priority and, optionally, `expiration = "0"` (expires unless taken
        /// at once; nobody consumes here, so it never stays).
        Publish {
            priority: u8,
            expire_now: bool,
        },
        /// `basic.get` with manual ack, then ack or requeue.
        Get {
            requeue: bool,
        },
        Purge,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..12, prop::bool::weighted(0.2)).prop_map(|(priority, expire_now)| Op::Publish { priority, expire_now }),
            3 => any::<bool>().prop_map(|requeue| Op::Get { requeue }),
            1 => Just(Op::Purge),
        ]
    }

    fn queue(max_length: Option<u64>, max_priority: Option<u8>) -> Arc<Queue> {
        let args = QueueArgs {
            max_length,
            max_priority,
            ..QueueArgs::default()
        };
        let settings = QueueSettings {
            durable: false,
            exclusive_owner: None,
            auto_delete: false,
            arguments: FieldTable::default(),
            args,
        };
        Queue::new(
            "q".into(),
            "/".into(),
            settings,
            Weak::new(),
            Timers::disconnected(),
            None,
        )
    }

    fn message(id: u32, priority: u8, expire_now: bool) -> Arc<Message> {
        let mut properties = AMQPProperties::default().with_priority(priority);
        if expire_now {
            properties = properties.with_expiration("0".into());
        }
        Arc::new(Message {
            exchange: "".into(),
            routing_key: "q".into(),
            raw_properties: Bytes::new(),
            properties,
            body: Bytes::from(id.to_be_bytes().to_vec()),
        })
    }

    /// Large persistent messages in a durable queue are paged out by bytes, not only by count:
    /// 4096 bodies of 1 MiB must not stay in memory.
    #[test]
    fn large_persistent_messages_are_paged_out_by_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path(), crate::store::StoreOptions::default())
            .expect("open store");
        let log = store.open_queue("/", "big").expect("open queue log");
        let settings = QueueSettings {
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            arguments: FieldTable::default(),
            args: QueueArgs::default(),
        };
        let q = Queue::new(
            "big".into(),
            "/".into(),
            settings,
            Weak::new(),
            Timers::disconnected(),
            Some(log),
        );
        let body = Bytes::from(vec![7u8; 1024 * 1024]);
        for _ in 0..40 {
            let message = Arc::new(Message {
                exchange: "".into(),
                routing_key: "big".into(),
                raw_properties: Bytes::new(),
                properties: AMQPProperties::default().with_delivery_mode(2),
                body: body.clone(),
            });
            assert!(matches!(
                q.publish(message, &mut Vec::new()),
                PublishOutcome::Persisted
            ));
        }
        let st = q.state.lock();
        assert_eq!(st.ready.len(), 40);
        let in_memory = st.ready.in_memory();
        assert_eq!(
            in_memory, 16,
            "bodies kept in memory up to 16 MiB of ready bytes, the rest paged out"
        );
    }

    fn id_of(e: &Entry) -> u32 {
        let body = &e.message.as_ref().expect("in memory").body;
        u32::from_be_bytes([body[0], body[1], body[2], body[3]])
    }

    /// The model: ready `(id, expired)` per (capped) priority level, FIFO within a level by
    /// publish order. Expired messages stay until they reach the head of their level, as in
    /// RabbitMQ (per-message TTL is applied at the head only).
    #[derive(Default)]
    struct Model {
        levels: Vec<VecDeque<(u32, bool)>>,
    }

    impl Model {
        fn len(&self) -> usize {
            self.levels.iter().map(VecDeque::len).sum()
        }
        fn pop(&mut self) -> Option<u32> {
            self.levels
                .iter_mut()
                .rev()
                .find_map(VecDeque::pop_front)
                .map(|(id, _)| id)
        }
        fn expire_heads(&mut self) {
            for l in &mut self.levels {
                while l.front().is_some_and(|(_, expired)| *expired) {
                    l.pop_front();
                }
            }
        }
    }

    proptest! {
        /// A queue with priorities, `x-max-length` (drop-head) and per-message TTL behaves like
        /// the model: highest priority first, FIFO within a priority, requeued messages back at
        /// their place, the next-to-deliver dropped when over the limit, expired messages
        /// never delivered, counts always equal.
        #[test]
        fn queue_matches_model(
            ops in proptest::collection::vec(op(), 1..80),
            max_length in proptest::option::of(1u64..6),
            max_priority in proptest::option::of(1u8..10),
        ) {
            let q = queue(max_length, max_priority);
            let levels = usize::from(max_priority.unwrap_or(0)) + 1;
            let mut model = Model { levels: vec![VecDeque::new(); levels] };
            let mut seq_of: Vec<u8> = Vec::new();
            let mut next_id = 0u32;
            for op in ops {
                match op {
                    Op::Publish { priority, expire_now } => {
                        let id = next_id;
                        next_id += 1;
                        seq_of.push(priority);
                        let mut dead = Vec::new();
                        q.publish(message(id, priority, expire_now), &mut dead);
                        model.expire_heads();
                        let level = usize::from(priority).min(levels - 1);
                        model.levels[level].push_back((id, expire_now));
                        if let Some(max) = max_length {
                            while model.len() as u64 > max {
                                model.pop();
                            }
                        }
                        model.expire_heads();
                    }
                    Op::Get { requeue } => {
                        let got = q.get(false).map(|(e, _)| e);
                        model.expire_heads();
                        let want = model.pop();
                        prop_assert_eq!(got.as_ref().map(id_of), want);
                        if let (Some(e), Some(id)) = (got, want) {
                            if requeue {
                                q.requeue([e]);
                                // Back at its place: before later messages of its priority.
                                let level = usize::from(seq_of[id as usize]).min(levels - 1);
                                let l = &mut model.levels[level];
                                let at = l.partition_point(|(x, _)| *x < id);
                                l.insert(at, (id, false));
                            } else {
                                q.ack(&[e]);
                            }
                        }
                    }
                    Op::Purge => {
                        prop_assert_eq!(q.purge() as usize, model.len());
                        model.levels.iter_mut().for_each(VecDeque::clear);
                    }
                }
                prop_assert_eq!(q.message_count() as usize, model.len());
            }
        }
    }
}
