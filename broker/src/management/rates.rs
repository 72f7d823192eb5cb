//! Message rates, computed when sampled rather than on the message path. A task takes a
//! snapshot of every counter each `stats_interval` (RabbitMQ: 5 s); a rate is the difference
//! between the last two snapshots over the time between them. The node's totals also keep a
//! history (10 minutes at the default interval) for the overview's chart and for RabbitMQ's
//! `msg_rates_age` / `lengths_age` samples.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use crate::queue::ConnectionId;
use crate::stats::MessageCounts;

/// Samples of the node's totals kept for the overview (120 × 5 s = 10 minutes).
const HISTORY: usize = 120;

/// Two consecutive snapshots of a set of counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pair<T> {
    prev: Option<(u64, T)>,
    last: Option<(u64, T)>,
}

impl<T: Copy> Pair<T> {
    fn push(&mut self, at_ms: u64, v: T) {
        self.prev = self.last.take();
        self.last = Some((at_ms, v));
    }

    /// `f(last) - f(prev)` per second, 0 until two samples exist.
    pub fn rate(&self, f: impl Fn(&T) -> u64) -> f64 {
        match (self.prev, self.last) {
            (Some((t0, a)), Some((t1, b))) if t1 > t0 => {
                f(&b).saturating_sub(f(&a)) as f64 * 1000.0 / (t1 - t0) as f64
            }
            _ => 0.0,
        }
    }

    /// Like [`Pair::rate`] for a gauge that may go down.
    pub fn gauge_rate(&self, f: impl Fn(&T) -> u64) -> f64 {
        match (self.prev, self.last) {
            (Some((t0, a)), Some((t1, b))) if t1 > t0 => {
                (f(&b) as f64 - f(&a) as f64) * 1000.0 / (t1 - t0) as f64
            }
            _ => 0.0,
        }
    }
}

/// Queue depth at a sample (for `messages_details` rates).
#[derive(Clone, Copy, Debug, Default)]
pub struct Depth {
    pub ready: u64,
    pub unacked: u64,
}

impl Depth {
    pub fn total(&self) -> u64 {
        self.ready + self.unacked
    }
}

/// Bytes through a connection at a sample.
#[derive(Clone, Copy, Debug, Default)]
pub struct Octets {
    pub recv: u64,
    pub send: u64,
}

/// One sample of the node's totals.
#[derive(Clone, Copy, Debug)]
pub struct NodeSample {
    /// Unix time in milliseconds.
    pub at: u64,
    pub messages: MessageCounts,
    pub depth: Depth,
}

/// Messages in and out of an exchange at a sample.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flow {
    pub publish_in: u64,
    pub publish_out: u64,
}

#[derive(Debug, Default)]
struct State {
    node: VecDeque<NodeSample>,
    queues: HashMap<(String, String), (Pair<MessageCounts>, Pair<Depth>)>,
    exchanges: HashMap<(String, String), Pair<Flow>>,
    channels: HashMap<(ConnectionId, u16), Pair<MessageCounts>>,
    connections: HashMap<ConnectionId, Pair<Octets>>,
}

/// The sampler's results.
#[derive(Debug, Default)]
pub struct Rates {
    state: Mutex<State>,
}

impl Rates {
    /// Takes one sample of every counter now.
    pub fn sample(&self, node: &Node) {
        let at = crate::clock::unix_ms();
        let mut messages = node.registry.message_totals();
        let mut depth = Depth::default();
        let mut queues = HashMap::new();
        let mut queue_messages = MessageCounts::default();
        let mut exchanges = HashMap::new();
        for vhost in node.vhosts() {
            for e in vhost.exchanges() {
                let flow = Flow {
                    publish_in: e.publish_in.get(),
                    publish_out: e.publish_out.get(),
                };
                exchanges.insert((vhost.name.clone(), e.name.clone()), flow);
            }
            for q in vhost.queues() {
                let snap = q.snapshot();
                let d = Depth {
                    ready: snap.ready,
                    unacked: snap.unacked,
                };
                depth.ready += d.ready;
                depth.unacked += d.unacked;
                let counts = q.stats.snapshot();
                queue_messages.disk_reads += counts.disk_reads;
                queue_messages.disk_writes += counts.disk_writes;
                queues.insert((vhost.name.clone(), q.name.clone()), (counts, d));
            }
        }
        // Disk reads and writes are counted by queues, not channels.
        messages.disk_reads = queue_messages.disk_reads;
        messages.disk_writes = queue_messages.disk_writes;
        let mut channels = HashMap::new();
        let mut connections = HashMap::new();
        for c in node.registry.connections() {
            connections.insert(
                c.id,
                Octets {
                    recv: c.stats.recv_oct.get(),
                    send: c.stats.send_oct.get(),
                },
            );
            for (n, ch) in c.channels() {
                channels.insert((c.id, n), ch.messages.snapshot());
            }
        }

        let mut st = self.state.lock();
        st.node.push_back(NodeSample {
            at,
            messages,
            depth,
        });
        while st.node.len() > HISTORY {
            st.node.pop_front();
        }
        let mut old = std::mem::take(&mut st.queues);
        for (key, (counts, d)) in queues {
            let mut entry = old.remove(&key).unwrap_or_default();
            entry.0.push(at, counts);
            entry.1.push(at, d);
            st.queues.insert(key, entry);
        }
        let mut old = std::mem::take(&mut st.exchanges);
        for (key, flow) in exchanges {
            let mut entry = old.remove(&key).unwrap_or_default();
            entry.push(at, flow);
            st.exchanges.insert(key, entry);
        }
        let mut old = std::mem::take(&mut st.channels);
        for (key, counts) in channels {
            let mut entry = old.remove(&key).unwrap_or_default();
            entry.push(at, counts);
            st.channels.insert(key, entry);
        }
        let mut old = std::mem::take(&mut st.connections);
        for (key, o) in connections {
            let mut entry = old.remove(&key).unwrap_or_default();
            entry.push(at, o);
            st.connections.insert(key, entry);
        }
    }

    /// The node's samples, oldest first.
    pub fn node_history(&self) -> Vec<NodeSample> {
        self.state.lock().node.iter().copied().collect()
    }

    /// The node's message counters over the last interval.
    pub fn node_pair(&self) -> (Pair<MessageCounts>, Pair<Depth>) {
        let st = self.state.lock();
        let mut m = Pair::default();
        let mut d = Pair::default();
        let n = st.node.len();
        for s in st.node.iter().skip(n.saturating_sub(2)) {
            m.push(s.at, s.messages);
            d.push(s.at, s.depth);
        }
        (m, d)
    }

    /// A queue's counters over the last interval.
    pub fn queue(&self, vhost: &str, name: &str) -> (Pair<MessageCounts>, Pair<Depth>) {
        self.state
            .lock()
            .queues
            .get(&(vhost.to_owned(), name.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// An exchange's flow over the last interval.
    pub fn exchange(&self, vhost: &str, name: &str) -> Pair<Flow> {
        self.state
            .lock()
            .exchanges
            .get(&(vhost.to_owned(), name.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// A channel's counters over the last interval.
    pub fn channel(&self, connection: ConnectionId, number: u16) -> Pair<MessageCounts> {
        self.state
            .lock()
            .channels
            .get(&(connection, number))
            .copied()
            .unwrap_or_default()
    }

    /// A connection's octets over the last interval.
    pub fn connection(&self, connection: ConnectionId) -> Pair<Octets> {
        self.state
            .lock()
            .connections
            .get(&connection)
            .copied()
            .unwrap_or_default()
    }
}

/// Samples every `interval` until `shutdown`.
pub async fn run(
    rates: Arc<Rates>,
    node: std::sync::Weak<Node>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let Some(node) = node.upgrade() else { return };
        let rates = Arc::clone(&rates);
        // Walks every queue and connection: keep it off the async workers' hot loop.
        let _ = tokio::task::spawn_blocking(move || rates.sample(&node)).await;
    }
}
