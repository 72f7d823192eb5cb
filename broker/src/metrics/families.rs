//! RabbitMQ 3.10's metric families (`rabbitmq_prometheus`: the core, global-counters, alarm
//! and process collectors), written from a [`Snapshot`] taken at scrape time. Names, types,
//! help texts, label names and family order are RabbitMQ's; what we cannot measure the way
//! RabbitMQ does is marked "approximation" where the value is computed. Families RabbitMQ
//! serves that we have no data for (Erlang VM, Mnesia, Raft, I/O, auth attempts,
//! dead-lettering counters, `_ram`/`_paged_out` queue gauges) are left out rather than
//! served as zeros.
//!
//! Pure: no locks, no I/O; `snapshot.rs` copies the node out first.

use super::snapshot::{
    ChannelRow, ChurnCounts, ConnectionRow, ExchangeRow, NodeFacts, QueueRow, Snapshot,
};
use super::text::{Encoder, Kind, Label, Value};

/// Which endpoint is scraped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/metrics`: one sample per family, summed over objects.
    Aggregated,
    /// `/metrics/per-object`: one sample per queue, channel, connection.
    PerObject,
    /// `/metrics/detailed`: only the families asked for, per object, `rabbitmq_detailed_`
    /// prefix; queue families optionally limited to some vhosts.
    Detailed(Selection),
}

/// `/metrics/detailed?family=…&vhost=…`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// RabbitMQ's family (ETS table) names, e.g. `queue_coarse_metrics`.
    pub families: Vec<String>,
    /// Existing vhosts named by `vhost=`; `None` when the parameter was absent.
    pub vhosts: Option<Vec<String>>,
}

impl Endpoint {
    /// The `rabbitmq_endpoint` label of `rabbitmq_identity_info` (RabbitMQ ≥ 4.2 sets it so
    /// dashboards can tell the endpoints apart when a node is scraped on several).
    fn label(&self) -> &'static str {
        match self {
            Self::Aggregated => "aggregated",
            Self::PerObject => "per-object",
            Self::Detailed(_) => "detailed",
        }
    }
}

/// The scrape's text.
pub fn render(snap: &Snapshot, endpoint: &Endpoint) -> String {
    let mut enc = Encoder::default();
    match endpoint {
        Endpoint::Aggregated => {
            process_and_alarms(&mut enc, snap);
            core(&mut enc, snap, "rabbitmq_", false, &|_| true, None);
            totals(&mut enc, snap);
            identity(&mut enc, snap, endpoint);
            global(&mut enc, snap);
        }
        Endpoint::PerObject => {
            core(&mut enc, snap, "rabbitmq_", true, &|_| true, None);
            totals(&mut enc, snap);
            identity(&mut enc, snap, endpoint);
            global(&mut enc, snap);
        }
        Endpoint::Detailed(sel) => {
            let wanted = |f: &str| sel.families.iter().any(|s| s == f);
            core(
                &mut enc,
                snap,
                "rabbitmq_detailed_",
                true,
                &wanted,
                sel.vhosts.as_deref(),
            );
            cluster(&mut enc, snap, &wanted);
            identity(&mut enc, snap, endpoint);
        }
    }
    enc.finish()
}

/// One metric of a group: how to read it from a row.
struct Metric<R> {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&R) -> Value,
    /// False when the aggregated endpoint has no sample for it (RabbitMQ does not sum it).
    aggregate: bool,
}

const fn gauge<R>(name: &'static str, help: &'static str, value: fn(&R) -> Value) -> Metric<R> {
    Metric {
        name,
        kind: Kind::Gauge,
        help,
        value,
        aggregate: true,
    }
}

const fn counter<R>(name: &'static str, help: &'static str, value: fn(&R) -> Value) -> Metric<R> {
    Metric {
        name,
        kind: Kind::Counter,
        help,
        value,
        aggregate: true,
    }
}

fn int(v: u64) -> Value {
    Value::Int(v)
}

/// Writes each metric of a group: per object, one sample per row with its labels;
/// aggregated, one unlabelled sample summing the rows (0 when there are none).
fn group<R>(
    enc: &mut Encoder,
    prefix: &str,
    per_object: bool,
    metrics: &[Metric<R>],
    rows: &[&R],
    labels: fn(&R) -> Vec<Label>,
) {
    let labelled: Vec<Vec<Label>> = if per_object {
        rows.iter().map(|r| labels(r)).collect()
    } else {
        Vec::new()
    };
    for m in metrics {
        enc.family(&format!("{prefix}{}", m.name), m.kind, m.help);
        if per_object {
            for (r, l) in rows.iter().zip(&labelled) {
                enc.sample(l, (m.value)(r));
            }
        } else if m.aggregate {
            let sum = rows
                .iter()
                .fold(Value::Int(0), |acc, r| acc.plus((m.value)(r)));
            enc.sample(&[], sum);
        }
    }
}

fn no_labels<R>(_: &R) -> Vec<Label> {
    Vec::new()
}

fn queue_labels(q: &QueueRow) -> Vec<Label> {
    vec![("vhost", q.vhost.clone()), ("queue", q.name.clone())]
}

fn channel_labels(c: &ChannelRow) -> Vec<Label> {
    vec![("channel", c.name.clone())]
}

/// RabbitMQ labels these per channel *and* exchange (or queue); we count per channel only,
/// so the series carry the channel's vhost and no exchange/queue label.
fn channel_vhost_labels(c: &ChannelRow) -> Vec<Label> {
    vec![("channel", c.name.clone()), ("vhost", c.vhost.clone())]
}

/// RabbitMQ 3.10 labels connection series `channel` too (with the connection's pid).
fn connection_labels(c: &ConnectionRow) -> Vec<Label> {
    vec![("channel", c.name.clone())]
}

const CHURN: &[Metric<ChurnCounts>] = &[
    counter(
        "connections_opened_total",
        "Total number of connections opened",
        |c| int(c.connections_opened),
    ),
    counter(
        "connections_closed_total",
        "Total number of connections closed or terminated",
        |c| int(c.connections_closed),
    ),
    counter(
        "channels_opened_total",
        "Total number of channels opened",
        |c| int(c.channels_opened),
    ),
    counter(
        "channels_closed_total",
        "Total number of channels closed",
        |c| int(c.channels_closed),
    ),
    counter(
        "queues_declared_total",
        "Total number of queues declared",
        |c| int(c.queues_declared),
    ),
    counter(
        "queues_created_total",
        "Total number of queues created",
        |c| int(c.queues_created),
    ),
    counter(
        "queues_deleted_total",
        "Total number of queues deleted",
        |c| int(c.queues_deleted),
    ),
];

const NODE_COARSE: &[Metric<NodeFacts>] = &[
    gauge("process_open_fds", "Open file descriptors", |n| {
        int(n.open_fds)
    }),
    gauge("process_open_tcp_sockets", "Open TCP sockets", |n| {
        int(n.open_tcp_sockets)
    }),
    gauge(
        "process_resident_memory_bytes",
        "Memory used in bytes",
        |n| int(n.resident_memory),
    ),
    gauge(
        "disk_space_available_bytes",
        "Disk space available in bytes",
        |n| int(n.disk_free),
    ),
];

const NODE: &[Metric<NodeFacts>] = &[
    gauge("process_max_fds", "Open file descriptors limit", |n| {
        int(n.max_fds)
    }),
    // Approximation: every socket is a descriptor, so the descriptor limit.
    gauge("process_max_tcp_sockets", "Open TCP sockets limit", |n| {
        int(n.max_fds)
    }),
    gauge(
        "resident_memory_limit_bytes",
        "Memory high watermark in bytes",
        |n| int(n.memory_limit),
    ),
    gauge(
        "disk_space_available_limit_bytes",
        "Free disk space low watermark in bytes",
        |n| int(n.disk_free_limit),
    ),
    gauge("erlang_uptime_seconds", "Node uptime", |n| {
        Value::Float(n.uptime_seconds)
    }),
];

const QUEUE_COARSE: &[Metric<QueueRow>] = &[
    gauge(
        "queue_messages_ready",
        "Messages ready to be delivered to consumers",
        |q| int(q.ready),
    ),
    gauge(
        "queue_messages_unacked",
        "Messages delivered to consumers but not yet acknowledged",
        |q| int(q.unacked),
    ),
    gauge(
        "queue_messages",
        "Sum of ready and unacknowledged messages - total queue depth",
        |q| int(q.ready + q.unacked),
    ),
];

/// Bytes a ready message costs the queue itself (`queue/ready.rs`: one slot).
const READY_SLOT_BYTES: u64 = 32;

/// RabbitMQ's consumer capacity is the share of time the queue could deliver at once. We take
/// it at the scrape (approximation): no consumers, 0; consumers and an empty queue, 1; ready
/// messages beside consumers mean they are all out of credit, 0.
fn consumer_capacity(q: &QueueRow) -> Value {
    Value::Float(if q.consumers > 0 && q.ready == 0 {
        1.0
    } else {
        0.0
    })
}

const QUEUE_CONSUMER_COUNT: &[Metric<QueueRow>] =
    &[gauge("queue_consumers", "Consumers on a queue", |q| {
        int(q.consumers)
    })];

const QUEUE: &[Metric<QueueRow>] = &[
    gauge("queue_consumers", "Consumers on a queue", |q| {
        int(q.consumers)
    }),
    // RabbitMQ 3.10 sums utilisation but writes no aggregated capacity sample.
    Metric {
        name: "queue_consumer_capacity",
        kind: Kind::Gauge,
        help: "Consumer capacity",
        value: consumer_capacity,
        aggregate: false,
    },
    gauge(
        "queue_consumer_utilisation",
        "Same as consumer capacity",
        consumer_capacity,
    ),
    // Approximation: the queue's own bookkeeping (one slot per ready message); bodies are
    // shared buffers, as Erlang's off-heap binaries are not in RabbitMQ's figure either.
    gauge(
        "queue_process_memory_bytes",
        "Memory in bytes used by the Erlang queue process",
        |q| int(q.ready * READY_SLOT_BYTES),
    ),
    // TODO: queues do not count their persistent messages yet; 0 until they do.
    gauge("queue_messages_persistent", "Persistent messages", |_| {
        int(0)
    }),
    // Unacked bytes are not tracked yet (TODO: `Queue` counts unacked messages, not their
    // bytes), so ready bytes only.
    gauge(
        "queue_messages_bytes",
        "Size in bytes of ready and unacknowledged messages",
        |q| int(q.ready_bytes),
    ),
    gauge(
        "queue_messages_ready_bytes",
        "Size in bytes of ready messages",
        |q| int(q.ready_bytes),
    ),
    gauge(
        "queue_messages_unacked_bytes",
        "Size in bytes of all unacknowledged messages",
        |_| int(0),
    ),
    // NaN is RabbitMQ's "no timestamp" (TODO: read the head message's `timestamp` property).
    Metric {
        name: "queue_head_message_timestamp",
        kind: Kind::Gauge,
        help: "Timestamp of the first message in the queue, if any",
        value: |_| Value::Float(f64::NAN),
        aggregate: false,
    },
    counter(
        "queue_disk_reads_total",
        "Total number of times queue read messages from disk",
        |q| int(q.stats.disk_reads),
    ),
    counter(
        "queue_disk_writes_total",
        "Total number of times queue wrote messages to disk",
        |q| int(q.stats.disk_writes),
    ),
];

const CHANNEL: &[Metric<ChannelRow>] = &[
    gauge("channel_consumers", "Consumers on a channel", |c| {
        int(c.consumers)
    }),
    gauge(
        "channel_messages_unacked",
        "Delivered but not yet acknowledged messages",
        |c| int(c.unacked),
    ),
    gauge(
        "channel_messages_unconfirmed",
        "Published but not yet confirmed messages",
        |c| int(c.unconfirmed),
    ),
    gauge(
        "channel_messages_uncommitted",
        "Messages received in a transaction but not yet committed",
        |c| int(c.uncommitted),
    ),
    gauge(
        "consumer_prefetch",
        "Limit of unacknowledged messages for each consumer",
        |c| int(c.prefetch),
    ),
    gauge(
        "channel_prefetch",
        "Total limit of unacknowledged messages for all consumers on a channel",
        |c| int(c.global_prefetch),
    ),
];

const CHANNEL_EXCHANGE: &[Metric<ChannelRow>] = &[
    counter(
        "channel_messages_published_total",
        "Total number of messages published into an exchange on a channel",
        |c| int(c.stats.publish),
    ),
    counter(
        "channel_messages_confirmed_total",
        "Total number of messages published into an exchange and confirmed on the channel",
        |c| int(c.stats.confirm),
    ),
    counter(
        "channel_messages_unroutable_returned_total",
        "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        |c| int(c.stats.return_unroutable),
    ),
    counter(
        "channel_messages_unroutable_dropped_total",
        "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        |c| int(c.stats.drop_unroutable),
    ),
];

const CHANNEL_QUEUE: &[Metric<ChannelRow>] = &[
    counter(
        "channel_get_ack_total",
        "Total number of messages fetched with basic.get in manual acknowledgement mode",
        |c| int(c.stats.get),
    ),
    counter(
        "channel_get_total",
        "Total number of messages fetched with basic.get in automatic acknowledgement mode",
        |c| int(c.stats.get_no_ack),
    ),
    counter(
        "channel_messages_delivered_ack_total",
        "Total number of messages delivered to consumers in manual acknowledgement mode",
        |c| int(c.stats.deliver),
    ),
    counter(
        "channel_messages_delivered_total",
        "Total number of messages delivered to consumers in automatic acknowledgement mode",
        |c| int(c.stats.deliver_no_ack),
    ),
    counter(
        "channel_messages_redelivered_total",
        "Total number of messages redelivered to consumers",
        |c| int(c.stats.redeliver),
    ),
    counter(
        "channel_messages_acked_total",
        "Total number of messages acknowledged by consumers",
        |c| int(c.stats.ack),
    ),
    counter(
        "channel_get_empty_total",
        "Total number of times basic.get operations fetched no message",
        |c| int(c.stats.get_empty),
    ),
];

const CONNECTION_COARSE: &[Metric<ConnectionRow>] = &[
    counter(
        "connection_incoming_bytes_total",
        "Total number of bytes received on a connection",
        |c| int(c.recv_oct),
    ),
    counter(
        "connection_outgoing_bytes_total",
        "Total number of bytes sent on a connection",
        |c| int(c.send_oct),
    ),
];

const CONNECTION: &[Metric<ConnectionRow>] = &[
    counter(
        "connection_incoming_packets_total",
        "Total number of packets received on a connection",
        |c| int(c.recv_cnt),
    ),
    counter(
        "connection_outgoing_packets_total",
        "Total number of packets sent on a connection",
        |c| int(c.send_cnt),
    ),
    gauge("connection_channels", "Channels on a connection", |c| {
        int(c.channels)
    }),
];

/// The core collector's groups, in RabbitMQ's order. `vhosts` limits the queue groups.
fn core(
    enc: &mut Encoder,
    snap: &Snapshot,
    prefix: &str,
    per_object: bool,
    wanted: &dyn Fn(&str) -> bool,
    vhosts: Option<&[String]>,
) {
    let queues: Vec<&QueueRow> = snap
        .queues
        .iter()
        .filter(|q| vhosts.is_none_or(|v| v.contains(&q.vhost)))
        .collect();
    let channels: Vec<&ChannelRow> = snap.channels.iter().collect();
    let connections: Vec<&ConnectionRow> = snap.connections.iter().collect();
    let p = per_object;
    if wanted("connection_churn_metrics") {
        group(enc, prefix, p, CHURN, &[&snap.churn], no_labels);
    }
    if wanted("node_coarse_metrics") {
        group(enc, prefix, p, NODE_COARSE, &[&snap.node], no_labels);
    }
    if wanted("node_metrics") {
        group(enc, prefix, p, NODE, &[&snap.node], no_labels);
    }
    if wanted("queue_coarse_metrics") {
        group(enc, prefix, p, QUEUE_COARSE, &queues, queue_labels);
    }
    // A subset of `queue_metrics`, served only without it.
    if wanted("queue_consumer_count") && !wanted("queue_metrics") {
        group(enc, prefix, p, QUEUE_CONSUMER_COUNT, &queues, queue_labels);
    }
    if wanted("queue_metrics") {
        group(enc, prefix, p, QUEUE, &queues, queue_labels);
    }
    if wanted("channel_metrics") {
        group(enc, prefix, p, CHANNEL, &channels, channel_labels);
    }
    if wanted("channel_exchange_metrics") {
        group(
            enc,
            prefix,
            p,
            CHANNEL_EXCHANGE,
            &channels,
            channel_vhost_labels,
        );
    }
    if wanted("channel_queue_metrics") {
        group(
            enc,
            prefix,
            p,
            CHANNEL_QUEUE,
            &channels,
            channel_vhost_labels,
        );
    }
    if wanted("connection_coarse_metrics") {
        group(
            enc,
            prefix,
            p,
            CONNECTION_COARSE,
            &connections,
            connection_labels,
        );
    }
    if wanted("connection_metrics") {
        group(enc, prefix, p, CONNECTION, &connections, connection_labels);
    }
}

/// `/metrics/detailed` only: vhosts and exchanges (`rabbitmq_cluster_` prefix).
fn cluster(enc: &mut Encoder, snap: &Snapshot, wanted: &dyn Fn(&str) -> bool) {
    if wanted("vhost_status") {
        enc.family(
            "rabbitmq_cluster_vhost_status",
            Kind::Gauge,
            "Whether a given vhost is running",
        );
        for v in &snap.vhosts {
            enc.sample(&[("vhost", v.clone())], int(1));
        }
    }
    let exchange_labels = |e: &ExchangeRow| -> Vec<Label> {
        vec![
            ("vhost", e.vhost.clone()),
            ("exchange", e.name.clone()),
            ("type", e.kind.to_owned()),
        ]
    };
    if wanted("exchange_bindings") {
        enc.family(
            "rabbitmq_cluster_exchange_bindings",
            Kind::Gauge,
            "Number of bindings for an exchange. This value is cluster-wide.",
        );
        for e in &snap.exchanges {
            enc.sample(&exchange_labels(e), int(e.bindings));
        }
    }
    if wanted("exchange_names") {
        enc.family(
            "rabbitmq_cluster_exchange_name",
            Kind::Gauge,
            "Enumerates exchanges without any additional info. This value is cluster-wide. A cheaper alternative to `exchange_bindings`",
        );
        for e in &snap.exchanges {
            enc.sample(&exchange_labels(e), int(1));
        }
    }
}

/// `process_start_time_seconds` and the alarm gauges: the aggregated endpoint only, as in
/// RabbitMQ (their collectors sit in the default registry only).
fn process_and_alarms(enc: &mut Encoder, snap: &Snapshot) {
    enc.family(
        "process_start_time_seconds",
        Kind::Gauge,
        "Start time of the process since unix epoch in seconds.",
    );
    enc.sample(&[], int(snap.node.start_time));
    // No resource alarms exist here yet: never in effect.
    for (name, help) in [
        (
            "rabbitmq_alarms_file_descriptor_limit",
            "is 1 if file descriptor limit alarm is in effect",
        ),
        (
            "rabbitmq_alarms_free_disk_space_watermark",
            "is 1 if free disk space watermark alarm is in effect",
        ),
        (
            "rabbitmq_alarms_memory_used_watermark",
            "is 1 if VM memory watermark alarm is in effect",
        ),
    ] {
        enc.family(name, Kind::Untyped, help);
        enc.sample(&[], int(0));
    }
}

/// Object counts (`rabbitmq_connections`, …).
fn totals(enc: &mut Encoder, snap: &Snapshot) {
    let consumers = snap.queues.iter().map(|q| q.consumers).sum();
    for (name, help, v) in [
        (
            "rabbitmq_connections",
            "Connections currently open",
            snap.connections.len() as u64,
        ),
        (
            "rabbitmq_channels",
            "Channels currently open",
            snap.channels.len() as u64,
        ),
        (
            "rabbitmq_consumers",
            "Consumers currently connected",
            consumers,
        ),
        (
            "rabbitmq_queues",
            "Queues available",
            snap.queues.len() as u64,
        ),
    ] {
        enc.family(name, Kind::Gauge, help);
        enc.sample(&[], int(v));
    }
}

/// `rabbitmq_build_info` and `rabbitmq_identity_info`, which dashboards join every series
/// with (`on(instance, job)`).
fn identity(enc: &mut Encoder, snap: &Snapshot, endpoint: &Endpoint) {
    let id = &snap.identity;
    enc.family(
        "rabbitmq_build_info",
        Kind::Untyped,
        "RabbitMQ & Erlang/OTP version info",
    );
    enc.sample(
        &[
            ("rabbitmq_version", id.rabbitmq_version.clone()),
            ("prometheus_plugin_version", id.rabbitmq_version.clone()),
            ("prometheus_client_version", id.broker_version.clone()),
            ("erlang_version", "none (Rust)".to_owned()),
        ],
        int(1),
    );
    enc.family(
        "rabbitmq_identity_info",
        Kind::Untyped,
        "RabbitMQ node & cluster identity info",
    );
    enc.sample(
        &[
            ("rabbitmq_node", id.node.clone()),
            ("rabbitmq_cluster", id.cluster.clone()),
            (
                "rabbitmq_cluster_permanent_id",
                id.cluster_permanent_id.clone(),
            ),
            ("rabbitmq_endpoint", endpoint.label().to_owned()),
        ],
        int(1),
    );
}

/// RabbitMQ's queue types, as the global counters label them.
const QUEUE_TYPES: [&str; 3] = [
    "rabbit_classic_queue",
    "rabbit_quorum_queue",
    "rabbit_stream_queue",
];

/// The global counters (`rabbit_global_counters`), alphabetical as RabbitMQ writes them.
fn global(enc: &mut Encoder, snap: &Snapshot) {
    let g = &snap.global;
    let m = &g.messages;
    let protocol = || ("protocol", "amqp091".to_owned());
    enc.family(
        "rabbitmq_global_consumers",
        Kind::Gauge,
        "Current number of consumers",
    );
    enc.sample(&[protocol()], int(g.consumers));
    // Counters kept per queue type by RabbitMQ. Ours are kept per channel, which does not
    // know the queue's type: all of it is reported as classic (approximation), the other
    // types as 0 so `sum()` stays right.
    let per_queue_type = |enc: &mut Encoder, name: &str, help: &str, v: u64| {
        enc.family(name, Kind::Counter, help);
        for (i, qt) in QUEUE_TYPES.into_iter().enumerate() {
            let v = if i == 0 { v } else { 0 };
            enc.sample(&[protocol(), ("queue_type", qt.to_owned())], int(v));
        }
    };
    let per_protocol = |enc: &mut Encoder, name: &str, help: &str, v: u64| {
        enc.family(name, Kind::Counter, help);
        enc.sample(&[protocol()], int(v));
    };
    per_queue_type(
        enc,
        "rabbitmq_global_messages_acknowledged_total",
        "Total number of messages acknowledged by consumers",
        m.ack,
    );
    per_protocol(
        enc,
        "rabbitmq_global_messages_confirmed_total",
        "Total number of messages confirmed to publishers",
        m.confirm,
    );
    per_queue_type(
        enc,
        "rabbitmq_global_messages_delivered_consume_auto_ack_total",
        "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
        m.deliver_no_ack,
    );
    per_queue_type(
        enc,
        "rabbitmq_global_messages_delivered_consume_manual_ack_total",
        "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
        m.deliver,
    );
    per_queue_type(
        enc,
        "rabbitmq_global_messages_delivered_get_auto_ack_total",
        "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
        m.get_no_ack,
    );
    per_queue_type(
        enc,
        "rabbitmq_global_messages_delivered_get_manual_ack_total",
        "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
        m.get,
    );
    per_queue_type(
        enc,
        "rabbitmq_global_messages_delivered_total",
        "Total number of messages delivered to consumers",
        m.deliver_get(),
    );
    per_queue_type(
        enc,
        "rabbitmq_global_messages_get_empty_total",
        "Total number of times basic.get operations fetched no message",
        m.get_empty,
    );
    per_protocol(
        enc,
        "rabbitmq_global_messages_received_confirm_total",
        "Total number of messages received from publishers expecting confirmations",
        g.received_confirm,
    );
    per_protocol(
        enc,
        "rabbitmq_global_messages_received_total",
        "Total number of messages received from publishers",
        m.publish,
    );
    per_queue_type(
        enc,
        "rabbitmq_global_messages_redelivered_total",
        "Total number of messages redelivered to consumers",
        m.redeliver,
    );
    // Approximation: RabbitMQ adds one per queue a message reaches; we count messages that
    // reached at least one queue (received minus unroutable).
    per_protocol(
        enc,
        "rabbitmq_global_messages_routed_total",
        "Total number of messages routed to queues or streams",
        m.publish
            .saturating_sub(m.drop_unroutable + m.return_unroutable),
    );
    per_protocol(
        enc,
        "rabbitmq_global_messages_unroutable_dropped_total",
        "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        m.drop_unroutable,
    );
    per_protocol(
        enc,
        "rabbitmq_global_messages_unroutable_returned_total",
        "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        m.return_unroutable,
    );
    enc.family(
        "rabbitmq_global_publishers",
        Kind::Gauge,
        "Current number of publishers",
    );
    enc.sample(&[protocol()], int(g.publishers));
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::{Identity, Snapshot};
    use super::*;
    use crate::stats::MessageCounts;

    fn snapshot() -> Snapshot {
        let queue = |vhost: &str, name: &str, ready| QueueRow {
            vhost: vhost.into(),
            name: name.into(),
            ready,
            ready_bytes: ready * 10,
            unacked: 1,
            consumers: 1,
            stats: MessageCounts::default(),
        };
        Snapshot {
            identity: Identity {
                node: "rabbit@localhost".into(),
                cluster: "rabbit@localhost".into(),
                cluster_permanent_id: "rabbitmq-cluster-id-x".into(),
                rabbitmq_version: "3.10.0".into(),
                broker_version: "0.1.0".into(),
            },
            queues: vec![queue("/", "a", 2), queue("v\"2", "b\nc", 3)],
            channels: vec![ChannelRow {
                name: "127.0.0.1:1 -> 127.0.0.1:5672 (1)".into(),
                vhost: "/".into(),
                consumers: 2,
                ..ChannelRow::default()
            }],
            exchanges: vec![ExchangeRow {
                vhost: "/".into(),
                name: "amq.direct".into(),
                kind: "direct",
                bindings: 4,
            }],
            vhosts: vec!["/".into()],
            ..Snapshot::default()
        }
    }

    /// Lines of family `name` that are samples.
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
            })
            .collect()
    }

    #[test]
    fn aggregated_sums_without_object_labels() {
        let text = render(&snapshot(), &Endpoint::Aggregated);
        assert_eq!(
            samples(&text, "rabbitmq_queue_messages_ready"),
            ["rabbitmq_queue_messages_ready 5"]
        );
        assert_eq!(
            samples(&text, "rabbitmq_queue_messages"),
            ["rabbitmq_queue_messages 7"]
        );
        assert_eq!(
            samples(&text, "rabbitmq_channel_consumers"),
            ["rabbitmq_channel_consumers 2"]
        );
        // RabbitMQ does not sum head timestamps: the family is there, without a sample.
        assert!(text.contains("# TYPE rabbitmq_queue_head_message_timestamp gauge\n"));
        assert!(samples(&text, "rabbitmq_queue_head_message_timestamp").is_empty());
        assert!(!text.contains("queue=\""));
        assert!(!text.contains("channel=\""));
        assert!(text.contains("rabbitmq_endpoint=\"aggregated\""));
        assert!(text.contains("rabbitmq_alarms_memory_used_watermark 0\n"));
    }

    #[test]
    fn per_object_labels_each_queue_and_escapes() {
        let text = render(&snapshot(), &Endpoint::PerObject);
        assert_eq!(
            samples(&text, "rabbitmq_queue_messages_ready"),
            [
                "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"a\"} 2",
                "rabbitmq_queue_messages_ready{vhost=\"v\\\"2\",queue=\"b\\nc\"} 3",
            ]
        );
        assert_eq!(
            samples(&text, "rabbitmq_channel_messages_published_total"),
            [
                "rabbitmq_channel_messages_published_total{channel=\"127.0.0.1:1 -> 127.0.0.1:5672 (1)\",vhost=\"/\"} 0"
            ]
        );
        // Node-wide families carry no labels on either endpoint.
        assert_eq!(samples(&text, "rabbitmq_queues"), ["rabbitmq_queues 2"]);
        assert!(!text.contains("rabbitmq_alarms_"));
        assert!(text.contains("rabbitmq_endpoint=\"per-object\""));
    }

    #[test]
    fn help_and_type_once_per_family() {
        for endpoint in [Endpoint::Aggregated, Endpoint::PerObject] {
            let text = render(&snapshot(), &endpoint);
            let mut types = std::collections::HashSet::new();
            let mut helps = std::collections::HashSet::new();
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("# TYPE ") {
                    let name = rest.split(' ').next().unwrap_or_default();
                    assert!(types.insert(name.to_owned()), "TYPE {name} twice");
                } else if let Some(rest) = line.strip_prefix("# HELP ") {
                    let name = rest.split(' ').next().unwrap_or_default();
                    assert!(helps.insert(name.to_owned()), "HELP {name} twice");
                } else {
                    let name = line.split(['{', ' ']).next().unwrap_or_default();
                    assert!(types.contains(name), "{name} sampled before its TYPE");
                }
            }
            assert_eq!(types, helps);
            // Counters end in _total.
            for line in text.lines().filter(|l| l.ends_with(" counter")) {
                assert!(line.contains("_total "), "{line}");
            }
        }
    }

    #[test]
    fn detailed_serves_only_the_families_asked_for() {
        let snap = snapshot();
        let none = render(&snap, &Endpoint::Detailed(Selection::default()));
        let families: Vec<&str> = none
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            families,
            [
                "rabbitmq_build_info untyped",
                "rabbitmq_identity_info untyped"
            ]
        );
        let sel = Selection {
            families: vec!["queue_coarse_metrics".into(), "exchange_bindings".into()],
            vhosts: Some(vec!["/".into()]),
        };
        let text = render(&snap, &Endpoint::Detailed(sel));
        assert_eq!(
            samples(&text, "rabbitmq_detailed_queue_messages_ready"),
            ["rabbitmq_detailed_queue_messages_ready{vhost=\"/\",queue=\"a\"} 2"]
        );
        assert_eq!(
            samples(&text, "rabbitmq_cluster_exchange_bindings"),
            [
                "rabbitmq_cluster_exchange_bindings{vhost=\"/\",exchange=\"amq.direct\",type=\"direct\"} 4"
            ]
        );
        assert!(!text.contains("rabbitmq_queue_"));
        assert!(!text.contains("rabbitmq_detailed_queue_consumers"));
    }
}
