//! The JSON objects of RabbitMQ's management API, built from the broker's state, counters
//! and rates. Field names are RabbitMQ's (`rabbit_mgmt_format.erl`, and what
//! `rabbitmq_http_client` and rabbitmqadmin read); every rate is `{"rate": x}` under
//! `<field>_details`.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::Api;
use super::rates::{Depth, Pair};
use crate::definitions::table_to_json;
use crate::exchange::{Binding, Destination, Exchange};
use crate::queue::{Queue, QueueType};
use crate::registry::ConnectionInfo;
use crate::stats::{ChannelStats, MessageCounts};

/// `{"rate": r}`.
pub fn details(rate: f64) -> Value {
    json!({ "rate": (rate * 10.0).round() / 10.0 })
}

/// RabbitMQ's `message_stats` object: each count and its `_details` rate.
pub fn message_stats(now: &MessageCounts, pair: &Pair<MessageCounts>) -> Value {
    let mut m = Map::new();
    let rates: Vec<(&str, f64)> = vec![
        ("publish", pair.rate(|c| c.publish)),
        ("confirm", pair.rate(|c| c.confirm)),
        ("return_unroutable", pair.rate(|c| c.return_unroutable)),
        ("drop_unroutable", pair.rate(|c| c.drop_unroutable)),
        ("deliver", pair.rate(|c| c.deliver)),
        ("deliver_no_ack", pair.rate(|c| c.deliver_no_ack)),
        ("get", pair.rate(|c| c.get)),
        ("get_no_ack", pair.rate(|c| c.get_no_ack)),
        ("get_empty", pair.rate(|c| c.get_empty)),
        ("redeliver", pair.rate(|c| c.redeliver)),
        ("ack", pair.rate(|c| c.ack)),
        ("disk_reads", pair.rate(|c| c.disk_reads)),
        ("disk_writes", pair.rate(|c| c.disk_writes)),
    ];
    for ((name, count), (_, rate)) in now.fields().into_iter().zip(rates) {
        m.insert(name.into(), count.into());
        m.insert(format!("{name}_details"), details(rate));
    }
    m.insert("deliver_get".into(), now.deliver_get().into());
    m.insert(
        "deliver_get_details".into(),
        details(pair.rate(MessageCounts::deliver_get)),
    );
    Value::Object(m)
}

/// The node's name (`rabbit@<host>`).
pub fn node_name(api: &Api) -> String {
    api.node.config.node_name.clone()
}

/// RabbitMQ's queue type name.
pub fn queue_type(q: &Queue) -> &'static str {
    match q.settings.args.queue_type {
        QueueType::Classic => "classic",
        QueueType::Quorum => "quorum",
    }
}

/// A queue as `/api/queues` shows it.
pub fn queue(api: &Api, q: &Queue) -> Value {
    let snap = q.snapshot();
    let (pair, depth) = api.rates.queue(&q.vhost, &q.name);
    let counts = q.stats.snapshot();
    let total = snap.ready + snap.unacked;
    let utilisation = if snap.consumers > 0 { 1.0 } else { 0.0 };
    json!({
        "name": q.name,
        "vhost": q.vhost,
        "type": queue_type(q),
        "durable": q.settings.durable,
        "auto_delete": q.settings.auto_delete,
        "exclusive": q.settings.exclusive_owner.is_some(),
        "arguments": table_to_json(&q.settings.arguments),
        "node": node_name(api),
        "state": "running",
        "policy": null,
        "operator_policy": null,
        "effective_policy_definition": {},
        "consumers": snap.consumers,
        "consumer_capacity": utilisation,
        "consumer_utilisation": utilisation,
        "exclusive_consumer_tag": snap.exclusive_consumer_tag.as_deref(),
        "single_active_consumer_tag": null,
        "head_message_timestamp": null,
        "messages": total,
        "messages_details": details(depth.gauge_rate(Depth::total)),
        "messages_ready": snap.ready,
        "messages_ready_details": details(depth.gauge_rate(|d| d.ready)),
        "messages_unacknowledged": snap.unacked,
        "messages_unacknowledged_details": details(depth.gauge_rate(|d| d.unacked)),
        "messages_ram": snap.ready,
        "messages_ready_ram": snap.ready,
        "messages_unacknowledged_ram": snap.unacked,
        "messages_persistent": 0,
        "messages_paged_out": 0,
        "message_bytes": snap.ready_bytes,
        "message_bytes_ready": snap.ready_bytes,
        "message_bytes_unacknowledged": 0,
        "message_bytes_ram": snap.ready_bytes,
        "message_bytes_persistent": 0,
        "message_bytes_paged_out": 0,
        "memory": 1024 + 32 * total,
        "message_stats": message_stats(&counts, &pair),
    })
}

/// An exchange as `/api/exchanges` shows it (`""` is the default exchange).
pub fn exchange(api: &Api, vhost: &str, e: &Exchange) -> Value {
    let flow = api.rates.exchange(vhost, &e.name);
    let (publish_in, publish_out) = (e.publish_in.get(), e.publish_out.get());
    let mut v = json!({
        "name": e.name,
        "vhost": vhost,
        "type": e.kind.as_str(),
        "durable": e.durable,
        "auto_delete": e.auto_delete,
        "internal": e.internal,
        "arguments": table_to_json(&e.arguments),
        "user_who_performed_action": if e.name.is_empty() || e.name.starts_with("amq.") { "rmq-internal" } else { "" },
        "policy": null,
        "node": node_name(api),
    });
    // RabbitMQ shows `message_stats` once an exchange has seen traffic.
    if publish_in > 0 {
        v["message_stats"] = json!({
            "publish_in": publish_in,
            "publish_in_details": details(flow.rate(|f| f.publish_in)),
            "publish_out": publish_out,
            "publish_out_details": details(flow.rate(|f| f.publish_out)),
        });
    }
    v
}

/// RabbitMQ's `properties_key` of a binding (`rabbit_mgmt_format:pack_binding_props`): the
/// routing key form-quoted (`~` when empty), and when the binding has arguments, `~` and a
/// hash of them. Clients put it into a path percent-encoded once more.
pub fn properties_key(routing_key: &str, arguments: &Map<String, Value>) -> String {
    if arguments.is_empty() {
        if routing_key.is_empty() {
            "~".to_owned()
        } else {
            quote_binding(routing_key)
        }
    } else {
        format!(
            "{}~{}",
            quote_binding(routing_key),
            quote_binding(&arguments_hash(arguments))
        )
    }
}

/// The hash of a binding's arguments in its properties key: 4 bytes, base64url. RabbitMQ
/// hashes the Erlang term (`erlang:phash2`); any stable hash serves, as clients only echo it.
pub fn arguments_hash(arguments: &Map<String, Value>) -> String {
    use sha2::Digest as _;
    let text = Value::Object(arguments.clone()).to_string();
    let digest = sha2::Sha256::digest(text.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..4])
}

/// `quote_plus` with `~` escaped too: `~` separates a key from its arguments' hash.
fn quote_binding(s: &str) -> String {
    quote_plus(s).replace('~', "%7E")
}

/// Form quoting as RabbitMQ's `rabbit_http_util:quote_plus` does it: letters, digits and
/// `.-~_` stay, a space becomes `+`, every other byte `%XX`.
pub fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'~' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The reverse of [`quote_plus`]: `+` is a space, `%XX` a byte (invalid UTF-8 is replaced).
pub fn unquote_plus(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// A binding as `/api/bindings` shows it.
pub fn binding(vhost: &str, source: &str, b: &Binding) -> Value {
    let (destination, kind) = match &b.destination {
        Destination::Queue(q) => (q.name.as_str(), "queue"),
        Destination::Exchange(e) => (e.name.as_str(), "exchange"),
    };
    let arguments = table_to_json(&b.arguments);
    json!({
        "source": source,
        "vhost": vhost,
        "destination": destination,
        "destination_type": kind,
        "routing_key": b.routing_key,
        "properties_key": properties_key(&b.routing_key, &arguments),
        "arguments": arguments,
    })
}

/// The default exchange's implicit binding to a queue (RabbitMQ lists it first).
pub fn default_binding(vhost: &str, queue: &str) -> Value {
    json!({
        "source": "",
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": queue,
        "properties_key": properties_key(queue, &Map::new()),
        "arguments": {},
    })
}

/// A connection as `/api/connections` shows it.
pub fn connection(api: &Api, c: &ConnectionInfo) -> Value {
    let octets = api.rates.connection(c.id);
    json!({
        "name": c.name,
        "node": node_name(api),
        "type": "network",
        "state": "running",
        "protocol": "AMQP 0-9-1",
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
        "connected_at": c.connected_at,
        "host": c.local.ip().to_string(),
        "port": c.local.port(),
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "channel_max": c.channel_max,
        "frame_max": c.frame_max,
        "timeout": c.heartbeat,
        "channels": c.channel_count(),
        "ssl": false,
        "ssl_protocol": null,
        "ssl_key_exchange": null,
        "ssl_cipher": null,
        "ssl_hash": null,
        "peer_cert_subject": null,
        "peer_cert_issuer": null,
        "peer_cert_validity": null,
        "auth_mechanism": c.auth_mechanism,
        "client_properties": table_to_json(&c.client_properties),
        "recv_oct": c.stats.recv_oct.get(),
        "recv_oct_details": details(octets.rate(|o| o.recv)),
        "recv_cnt": c.stats.recv_cnt.get(),
        "send_oct": c.stats.send_oct.get(),
        "send_oct_details": details(octets.rate(|o| o.send)),
        "send_cnt": c.stats.send_cnt.get(),
        "send_pend": 0,
        "reductions": 0,
        "garbage_collection": {},
    })
}

/// `connection_details` as channels and consumers show it.
pub fn connection_details(c: &ConnectionInfo) -> Value {
    json!({
        "name": c.name,
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
    })
}

/// A channel as `/api/channels` shows it.
pub fn channel(api: &Api, c: &ConnectionInfo, number: u16, s: &ChannelStats) -> Value {
    let pair = api.rates.channel(c.id, number);
    let state = "running";
    json!({
        "name": c.channel_name(number),
        "number": number,
        "node": node_name(api),
        "vhost": c.vhost,
        "user": c.user,
        "user_who_performed_action": c.user,
        "connection_details": connection_details(c),
        "state": state,
        "consumer_count": s.consumers.get(),
        "confirm": s.confirm.get(),
        "transactional": s.transactional.get(),
        "prefetch_count": s.prefetch_count.get(),
        "global_prefetch_count": s.global_prefetch_count.get(),
        "messages_unacknowledged": s.unacked.get(),
        "messages_unconfirmed": s.unconfirmed.get(),
        "messages_uncommitted": s.uncommitted.get(),
        "acks_uncommitted": 0,
        "pending_raft_commands": 0,
        "idle_since": null,
        "reductions": 0,
        "garbage_collection": {},
        "message_stats": message_stats(&s.messages.snapshot(), &pair),
    })
}

/// Message properties as RabbitMQ's `/get` shows them (`[]` when there are none: that is
/// how RabbitMQ renders an empty Erlang proplist, and tools expect it).
pub fn properties(p: &crate::protocol::AMQPProperties) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    let s = |v: &Option<crate::protocol::ShortString>| v.as_ref().map(|s| json!(s.as_str()));
    put("content_type", s(p.content_type()));
    put("content_encoding", s(p.content_encoding()));
    put(
        "headers",
        p.headers()
            .as_ref()
            .map(|h| Value::Object(table_to_json(h))),
    );
    put("delivery_mode", p.delivery_mode().map(|v| json!(v)));
    put("priority", p.priority().map(|v| json!(v)));
    put("correlation_id", s(p.correlation_id()));
    put("reply_to", s(p.reply_to()));
    put("expiration", s(p.expiration()));
    put("message_id", s(p.message_id()));
    put("timestamp", p.timestamp().map(|v| json!(v)));
    put("type", s(p.kind()));
    put("user_id", s(p.user_id()));
    put("app_id", s(p.app_id()));
    put("cluster_id", s(p.cluster_id()));
    if m.is_empty() {
        json!([])
    } else {
        Value::Object(m)
    }
}

/// The reverse of [`properties`], for `POST /api/exchanges/{v}/{x}/publish`. Unknown keys
/// are ignored, as in RabbitMQ.
pub fn properties_from_json(
    v: &Value,
) -> Result<crate::protocol::AMQPProperties, super::error::ApiError> {
    use super::error::ApiError;
    use crate::protocol::{AMQPProperties, ShortString};
    let obj = match v {
        Value::Object(m) => m.clone(),
        Value::Array(a) if a.is_empty() => Map::new(),
        Value::Null => Map::new(),
        _ => return Err(ApiError::bad_request("properties must be an object")),
    };
    let text = |k: &str, v: &Value| -> Result<ShortString, ApiError> {
        match v {
            Value::String(s) if s.len() <= 255 => Ok(s.as_str().into()),
            Value::Number(n) => Ok(n.to_string().as_str().into()),
            _ => Err(ApiError::bad_request(format!(
                "property '{k}' must be a string of at most 255 bytes"
            ))),
        }
    };
    let int = |k: &str, v: &Value| -> Result<u64, ApiError> {
        match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| ApiError::bad_request(format!("property '{k}' must be an integer")))
    };
    let mut p = AMQPProperties::default();
    for (k, v) in &obj {
        p = match k.as_str() {
            "content_type" => p.with_content_type(text(k, v)?),
            "content_encoding" => p.with_content_encoding(text(k, v)?),
            "headers" => match v {
                Value::Object(h) => p.with_headers(crate::definitions::json_to_table(h)),
                _ => return Err(ApiError::bad_request("headers must be an object")),
            },
            "delivery_mode" => p.with_delivery_mode(
                u8::try_from(int(k, v)?)
                    .map_err(|_| ApiError::bad_request("delivery_mode must be 1 or 2"))?,
            ),
            "priority" => p.with_priority(
                u8::try_from(int(k, v)?)
                    .map_err(|_| ApiError::bad_request("priority must be 0 to 255"))?,
            ),
            "correlation_id" => p.with_correlation_id(text(k, v)?),
            "reply_to" => p.with_reply_to(text(k, v)?),
            "expiration" => p.with_expiration(text(k, v)?),
            "message_id" => p.with_message_id(text(k, v)?),
            "timestamp" => p.with_timestamp(int(k, v)?),
            "type" => p.with_type(text(k, v)?),
            "user_id" => p.with_user_id(text(k, v)?),
            "app_id" => p.with_app_id(text(k, v)?),
            "cluster_id" => p.with_cluster_id(text(k, v)?),
            _ => p,
        };
    }
    Ok(p)
}
