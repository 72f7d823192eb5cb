//! What a scrape reports, copied out of the node at once: each queue's lock is taken once,
//! briefly, by `Queue::snapshot`; channel and connection counters are relaxed atomic loads;
//! node figures come from `/proc`. Rendering (`families.rs`) works on this copy only.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::management::{RABBITMQ_VERSION, open_fds, resident_memory};
use crate::node::Node;
use crate::stats::MessageCounts;

/// RabbitMQ's default `disk_free_limit` (50 MB); we raise no disk alarm, so it is only shown.
const DISK_FREE_LIMIT: u64 = 50_000_000;

/// RabbitMQ's default `vm_memory_high_watermark` (a share of the machine's memory).
const MEMORY_HIGH_WATERMARK: f64 = 0.4;

/// Everything a scrape reports, copied out of the node.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub identity: Identity,
    pub node: NodeFacts,
    pub churn: ChurnCounts,
    /// Sorted by vhost, then name.
    pub queues: Vec<QueueRow>,
    pub channels: Vec<ChannelRow>,
    pub connections: Vec<ConnectionRow>,
    /// Without the default exchange and internal ones (RabbitMQ leaves them out too).
    pub exchanges: Vec<ExchangeRow>,
    pub vhosts: Vec<String>,
    pub global: GlobalCounts,
}

/// `rabbitmq_identity_info` and `rabbitmq_build_info`.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub node: String,
    pub cluster: String,
    pub cluster_permanent_id: String,
    pub rabbitmq_version: String,
    pub broker_version: String,
}

/// Process and resource figures.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    pub open_fds: u64,
    pub max_fds: u64,
    pub open_tcp_sockets: u64,
    pub resident_memory: u64,
    pub memory_limit: u64,
    pub disk_free: u64,
    pub disk_free_limit: u64,
    pub uptime_seconds: f64,
    /// Unix seconds.
    pub start_time: u64,
}

/// Node-wide object churn.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChurnCounts {
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub channels_opened: u64,
    pub channels_closed: u64,
    pub queues_declared: u64,
    pub queues_created: u64,
    pub queues_deleted: u64,
}

/// One queue.
#[derive(Clone, Debug, Default)]
pub struct QueueRow {
    pub vhost: String,
    pub name: String,
    pub ready: u64,
    pub ready_bytes: u64,
    pub unacked: u64,
    pub consumers: u64,
    pub stats: MessageCounts,
}

/// One open channel.
#[derive(Clone, Debug, Default)]
pub struct ChannelRow {
    /// RabbitMQ's channel name, `"<connection name> (<number>)"` (RabbitMQ labels with the
    /// channel's Erlang pid, which we do not have).
    pub name: String,
    pub vhost: String,
    pub consumers: u64,
    pub unacked: u64,
    pub unconfirmed: u64,
    pub uncommitted: u64,
    pub prefetch: u64,
    pub global_prefetch: u64,
    pub stats: MessageCounts,
}

/// One open connection.
#[derive(Clone, Debug, Default)]
pub struct ConnectionRow {
    pub name: String,
    pub recv_oct: u64,
    pub send_oct: u64,
    /// Socket reads and writes: RabbitMQ's `recv_cnt`/`send_cnt` ("packets").
    pub recv_cnt: u64,
    pub send_cnt: u64,
    pub channels: u64,
}

/// One exchange (`/metrics/detailed` cluster families).
#[derive(Clone, Debug, Default)]
pub struct ExchangeRow {
    pub vhost: String,
    pub name: String,
    pub kind: &'static str,
    pub bindings: u64,
}

/// RabbitMQ's `rabbit_global_counters` for protocol `amqp091`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalCounts {
    /// Node totals, closed channels included.
    pub messages: MessageCounts,
    /// Approximation, see [`take`].
    pub received_confirm: u64,
    /// Open channels that have published.
    pub publishers: u64,
    pub consumers: u64,
}

/// Copies out everything a scrape reports. `received_confirm` keeps the highest
/// `rabbitmq_global_messages_received_confirm_total` reported, so that estimate never goes
/// back (a channel may close with publishes still unconfirmed).
pub fn take(node: &Node, received_confirm: &AtomicU64) -> Snapshot {
    let registry = &node.registry;
    let mut queues = Vec::new();
    let mut exchanges = Vec::new();
    let mut vhosts = Vec::new();
    for v in node.vhosts() {
        for q in v.queues() {
            let s = q.snapshot();
            queues.push(QueueRow {
                vhost: v.name.clone(),
                name: q.name.clone(),
                ready: s.ready,
                ready_bytes: s.ready_bytes,
                unacked: s.unacked,
                consumers: s.consumers,
                stats: q.stats.snapshot(),
            });
        }
        for e in v.exchanges() {
            if e.internal || e.name.is_empty() {
                continue;
            }
            exchanges.push(ExchangeRow {
                vhost: v.name.clone(),
                name: e.name.clone(),
                kind: e.kind.as_str(),
                bindings: e.binding_count() as u64,
            });
        }
        vhosts.push(v.name.clone());
    }
    queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    exchanges.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    vhosts.sort();

    let mut connections = Vec::new();
    let mut channels = Vec::new();
    for c in registry.connections() {
        let open = c.channels();
        for (number, s) in &open {
            channels.push(ChannelRow {
                name: c.channel_name(*number),
                vhost: c.vhost.clone(),
                consumers: s.consumers.get(),
                unacked: s.unacked.get(),
                unconfirmed: s.unconfirmed.get(),
                uncommitted: s.uncommitted.get(),
                prefetch: s.prefetch_count.get(),
                global_prefetch: s.global_prefetch_count.get(),
                stats: s.messages.snapshot(),
            });
        }
        connections.push(ConnectionRow {
            name: c.name.clone(),
            recv_oct: c.stats.recv_oct.get(),
            send_oct: c.stats.send_oct.get(),
            recv_cnt: c.stats.recv_cnt.get(),
            send_cnt: c.stats.send_cnt.get(),
            channels: open.len() as u64,
        });
    }

    let messages = registry.message_totals();
    // Approximation: channels do not count publishes made in confirm mode, so take those
    // confirmed plus those still waiting (nacked ones are missed), never going back.
    let estimate = messages.confirm + channels.iter().map(|c| c.unconfirmed).sum::<u64>();
    let received_confirm = received_confirm
        .fetch_max(estimate, Ordering::Relaxed)
        .max(estimate);
    let global = GlobalCounts {
        messages,
        received_confirm,
        // A channel is a publisher once it has published (RabbitMQ's `publishing_mode`).
        publishers: channels.iter().filter(|c| c.stats.publish > 0).count() as u64,
        consumers: channels.iter().map(|c| c.consumers).sum(),
    };

    let churn = &registry.churn;
    let uptime = node.started_at.elapsed();
    let now_s = crate::clock::unix_ms() / 1000;
    Snapshot {
        identity: identity(node),
        node: NodeFacts {
            open_fds: open_fds(),
            max_fds: max_fds(),
            open_tcp_sockets: connections.len() as u64,
            resident_memory: resident_memory(),
            memory_limit: memory_limit(),
            disk_free: disk_free(&node.config.data_dir),
            disk_free_limit: DISK_FREE_LIMIT,
            // Milliseconds, as RabbitMQ reports it.
            uptime_seconds: uptime.as_millis() as f64 / 1000.0,
            start_time: now_s.saturating_sub(uptime.as_secs()),
        },
        churn: ChurnCounts {
            connections_opened: churn.connection_created.get(),
            connections_closed: churn.connection_closed.get(),
            channels_opened: churn.channel_created.get(),
            channels_closed: churn.channel_closed.get(),
            queues_declared: churn.queue_declared.get(),
            queues_created: churn.queue_created.get(),
            queues_deleted: churn.queue_deleted.get(),
        },
        queues,
        channels,
        connections,
        exchanges,
        vhosts,
        global,
    }
}

/// The node's identity. The cluster is the node itself (as `/api/overview` says); its
/// permanent id, which RabbitMQ draws at random and stores, is derived from the node name
/// and data directory so it is stable across restarts without a file of its own.
fn identity(node: &Node) -> Identity {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let config = &node.config;
    let digest = Sha256::new()
        .chain_update(config.node_name.as_bytes())
        .chain_update([0])
        .chain_update(config.data_dir.to_string_lossy().as_bytes())
        .finalize();
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    Identity {
        node: config.node_name.clone(),
        cluster: config.node_name.clone(),
        cluster_permanent_id: format!("rabbitmq-cluster-id-{id}"),
        rabbitmq_version: RABBITMQ_VERSION.to_owned(),
        broker_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// The soft limit on open files (Linux `/proc/self/limits`), 0 elsewhere.
pub fn max_fds() -> u64 {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return 0;
    };
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// RabbitMQ's default memory high watermark: 0.4 of the machine's memory (Linux
/// `/proc/meminfo`), 0 elsewhere. Shown for dashboards; no memory alarm is raised.
pub fn memory_limit() -> u64 {
    let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    let total_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (total_kib as f64 * 1024.0 * MEMORY_HIGH_WATERMARK) as u64
}

/// Free space on the data directory's file system (0 if it cannot be read).
pub fn disk_free(dir: &std::path::Path) -> u64 {
    fs4::available_space(dir).unwrap_or(0)
}
