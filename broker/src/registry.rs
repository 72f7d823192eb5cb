//! Live connections and their channels as the management API and the metrics see them. A
//! connection registers itself once its handshake is done and unregisters when it ends; its
//! channels register their [`ChannelStats`] as they open and close. Nothing here is on the
//! per-message path: the hot path only bumps the counters it already holds.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::protocol::FieldTable;
use crate::queue::{ConnMsg, ConnSender, ConnectionId};
use crate::stats::{ChannelStats, Churn, ConnectionStats, MessageCounts, MessageStats};

/// What is known of an open connection.
#[derive(Debug)]
pub struct ConnectionInfo {
    pub id: ConnectionId,
    /// RabbitMQ's connection name: `"127.0.0.1:54321 -> 127.0.0.1:5672"`.
    pub name: String,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: String,
    pub vhost: String,
    pub auth_mechanism: String,
    pub client_properties: FieldTable,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
    /// Unix time in milliseconds.
    pub connected_at: u64,
    pub stats: ConnectionStats,
    channels: Mutex<BTreeMap<u16, Arc<ChannelStats>>>,
    /// The connection task's inbox, to close it from the API.
    control: ConnSender,
}

/// Fields of a [`ConnectionInfo`] settled by the handshake.
#[derive(Debug)]
pub struct ConnectionDetails {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: String,
    pub vhost: String,
    pub auth_mechanism: String,
    pub client_properties: FieldTable,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}

impl ConnectionInfo {
    /// A connection's record, named as RabbitMQ names it.
    pub fn new(id: ConnectionId, d: ConnectionDetails, control: ConnSender) -> Arc<Self> {
        Arc::new(Self {
            id,
            name: format!("{} -> {}", d.peer, d.local),
            peer: d.peer,
            local: d.local,
            user: d.user,
            vhost: d.vhost,
            auth_mechanism: d.auth_mechanism,
            client_properties: d.client_properties,
            channel_max: d.channel_max,
            frame_max: d.frame_max,
            heartbeat: d.heartbeat,
            connected_at: crate::clock::unix_ms(),
            stats: ConnectionStats::default(),
            channels: Mutex::default(),
            control,
        })
    }

    /// The open channels' statistics, by channel number.
    pub fn channels(&self) -> Vec<(u16, Arc<ChannelStats>)> {
        self.channels
            .lock()
            .iter()
            .map(|(n, s)| (*n, Arc::clone(s)))
            .collect()
    }

    /// Number of open channels.
    pub fn channel_count(&self) -> usize {
        self.channels.lock().len()
    }

    /// Asks the connection task to close the connection with `320 CONNECTION_FORCED - reason`.
    /// False when the connection is already gone.
    pub fn force_close(&self, reason: String) -> bool {
        self.control.send(ConnMsg::Close { reason }).is_ok()
    }

    /// The channel's `name` as RabbitMQ shows it: `"<connection name> (1)"`.
    pub fn channel_name(&self, number: u16) -> String {
        format!("{} ({number})", self.name)
    }
}

/// Every open connection, and the totals of those that closed.
#[derive(Debug, Default)]
pub struct Registry {
    connections: RwLock<HashMap<ConnectionId, Arc<ConnectionInfo>>>,
    /// Message counters of channels that closed, so node totals never go back.
    retired: MessageStats,
    pub churn: Churn,
}

impl Registry {
    /// Adds a connection that finished its handshake.
    pub fn register(&self, info: Arc<ConnectionInfo>) {
        self.churn.connection_created.incr();
        self.connections.write().insert(info.id, info);
    }

    /// Removes a connection (and the channels it left registered).
    pub fn unregister(&self, id: ConnectionId) {
        let Some(info) = self.connections.write().remove(&id) else {
            return;
        };
        self.churn.connection_closed.incr();
        let numbers: Vec<u16> = info.channels.lock().keys().copied().collect();
        for n in numbers {
            self.close_channel(&info, n);
        }
    }

    /// Registers channel `number` of `conn`; its connection task keeps the returned stats.
    pub fn open_channel(&self, conn: &ConnectionInfo, number: u16) -> Arc<ChannelStats> {
        self.churn.channel_created.incr();
        let stats = Arc::new(ChannelStats::default());
        conn.channels.lock().insert(number, Arc::clone(&stats));
        stats
    }

    /// Unregisters a channel; its message counters move to the node's totals.
    pub fn close_channel(&self, conn: &ConnectionInfo, number: u16) {
        let mut channels = conn.channels.lock();
        if let Some(stats) = channels.remove(&number) {
            self.retired.absorb(&stats.messages.snapshot());
            self.churn.channel_closed.incr();
        }
    }

    /// All open connections, oldest first.
    pub fn connections(&self) -> Vec<Arc<ConnectionInfo>> {
        let mut all: Vec<_> = self.connections.read().values().cloned().collect();
        all.sort_by_key(|c| c.id);
        all
    }

    /// A connection by its RabbitMQ name.
    pub fn connection(&self, name: &str) -> Option<Arc<ConnectionInfo>> {
        self.connections
            .read()
            .values()
            .find(|c| c.name == name)
            .cloned()
    }

    /// A connection by id.
    pub fn connection_by_id(&self, id: ConnectionId) -> Option<Arc<ConnectionInfo>> {
        self.connections.read().get(&id).cloned()
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.connections.read().len()
    }

    /// Node-wide message counters: closed channels plus open ones.
    pub fn message_totals(&self) -> MessageCounts {
        let mut total = self.retired.snapshot();
        for c in self.connections() {
            for (_, ch) in c.channels() {
                total.add(&ch.messages.snapshot());
            }
        }
        total
    }
}
