//! `/api/overview`, `/api/nodes`, `/api/whoami` and the small endpoints the UI and tools
//! read at start (`/api/cluster-name`, `/api/extensions`, `/api/version`, …).
//!
//! `/api/overview` always carries `message_stats`, `queue_totals` and `object_totals`:
//! telegraf rejects an overview without them.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::listing::ListQuery;
use super::rates::{Depth, NodeSample};
use super::views::{details, message_stats, node_name};
use super::{Api, views};

/// The RabbitMQ version whose behaviour we follow (also in `connection.start`).
pub const RABBITMQ_VERSION: &str = "3.10.0";

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/nodes", get(nodes))
        .route("/api/nodes/{name}", get(node))
        .route("/api/whoami", get(whoami))
        .route("/api/cluster-name", get(cluster_name))
        .route("/api/extensions", get(extensions))
        .route("/api/version", get(version))
        .route("/api/auth", get(auth_settings))
        .route("/api/feature-flags", get(feature_flags))
}

const EXCHANGE_TYPES: [(&str, &str); 4] = [
    (
        "direct",
        "AMQP direct exchange, as per the AMQP specification",
    ),
    (
        "fanout",
        "AMQP fanout exchange, as per the AMQP specification",
    ),
    (
        "headers",
        "AMQP headers exchange, as per the AMQP specification",
    ),
    (
        "topic",
        "AMQP topic exchange, as per the AMQP specification",
    ),
];

async fn overview(
    State(api): State<Api>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let node = &api.node;
    let visible: Vec<_> = node
        .vhosts()
        .into_iter()
        .filter(|v| auth.sees(&v.name))
        .collect();
    let mut queues = 0u64;
    let mut exchanges = 0u64;
    let mut consumers = 0u64;
    let mut depth = Depth::default();
    for v in &visible {
        exchanges += v.exchanges().len() as u64;
        for q in v.queues() {
            let s = q.snapshot();
            queues += 1;
            consumers += s.consumers;
            depth.ready += s.ready;
            depth.unacked += s.unacked;
        }
    }
    let connections: Vec<_> = node
        .registry
        .connections()
        .into_iter()
        .filter(|c| auth.sees(&c.vhost))
        .collect();
    let channels: usize = connections.iter().map(|c| c.channel_count()).sum();
    let (msg_pair, depth_pair) = api.rates.node_pair();
    let totals = node.registry.message_totals();
    let mut stats = message_stats(&totals, &msg_pair);
    let mut queue_totals = json!({
        "messages": depth.total(),
        "messages_details": details(depth_pair.gauge_rate(Depth::total)),
        "messages_ready": depth.ready,
        "messages_ready_details": details(depth_pair.gauge_rate(|d| d.ready)),
        "messages_unacknowledged": depth.unacked,
        "messages_unacknowledged_details": details(depth_pair.gauge_rate(|d| d.unacked)),
    });
    add_samples(&api, &q, &mut stats, &mut queue_totals)?;
    let churn = &node.registry.churn;
    let listeners: Vec<Value> = node
        .config
        .listeners
        .iter()
        .map(|(protocol, addr)| {
            json!({
                "node": node_name(&api),
                "protocol": protocol,
                "ip_address": addr.ip().to_string(),
                "port": addr.port(),
                "socket_opts": {},
            })
        })
        .collect();
    let contexts: Vec<Value> = node
        .config
        .listeners
        .iter()
        .filter(|(p, _)| p == "http")
        .map(|(_, addr)| {
            json!({
                "node": node_name(&api),
                "description": "RabbitMQ Management",
                "path": "/",
                "port": addr.port().to_string(),
            })
        })
        .collect();
    Ok(Json(json!({
        "management_version": RABBITMQ_VERSION,
        "rates_mode": "basic",
        "sample_retention_policies": {"global": [600, 3600], "basic": [600, 3600], "detailed": [600]},
        "exchange_types": EXCHANGE_TYPES.iter().map(|(name, description)| json!({"name": name, "description": description, "enabled": true})).collect::<Vec<_>>(),
        "product_version": RABBITMQ_VERSION,
        "product_name": "RabbitMQ",
        "rabbitmq_version": RABBITMQ_VERSION,
        "cluster_name": node_name(&api),
        "erlang_version": "none (Rust)",
        "erlang_full_version": concat!("broker ", env!("CARGO_PKG_VERSION"), " (Rust)"),
        "release_series_support_status": "supported",
        "disable_stats": false,
        "is_op_policy_updating_enabled": false,
        "enable_queue_totals": false,
        "message_stats": stats,
        "churn_rates": {
            "channel_closed": churn.channel_closed.get(),
            "channel_closed_details": details(0.0),
            "channel_created": churn.channel_created.get(),
            "channel_created_details": details(0.0),
            "connection_closed": churn.connection_closed.get(),
            "connection_closed_details": details(0.0),
            "connection_created": churn.connection_created.get(),
            "connection_created_details": details(0.0),
            "queue_created": churn.queue_created.get(),
            "queue_created_details": details(0.0),
            "queue_declared": churn.queue_declared.get(),
            "queue_declared_details": details(0.0),
            "queue_deleted": churn.queue_deleted.get(),
            "queue_deleted_details": details(0.0),
        },
        "queue_totals": queue_totals,
        "object_totals": {
            "channels": channels,
            "connections": connections.len(),
            "consumers": consumers,
            "exchanges": exchanges,
            "queues": queues,
        },
        "statistics_db_event_queue": 0,
        "node": node_name(&api),
        "listeners": listeners,
        "contexts": contexts,
    })))
}

/// RabbitMQ's `msg_rates_age`/`msg_rates_incr` and `lengths_age`/`lengths_incr`: each
/// `_details` object also gets `samples` ([{sample, timestamp}], newest first) and averages.
fn add_samples(
    api: &Api,
    q: &ListQuery,
    stats: &mut Value,
    queue_totals: &mut Value,
) -> Result<(), ApiError> {
    let age = |key: &str| -> Result<Option<u64>, ApiError> {
        q.rest
            .get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("{key} must be an integer")))
            })
            .transpose()
    };
    let msg_age = age("msg_rates_age")?;
    let len_age = age("lengths_age")?;
    if msg_age.is_none() && len_age.is_none() {
        return Ok(());
    }
    let history = api.rates.node_history();
    let within = |age_s: u64| -> Vec<NodeSample> {
        let newest = history.last().map_or(0, |s| s.at);
        history
            .iter()
            .rev()
            .take_while(|s| newest.saturating_sub(s.at) <= age_s * 1000)
            .copied()
            .collect()
    };
    if let Some(a) = msg_age {
        let samples = within(a);
        for (name, _) in crate::stats::MessageCounts::default().fields() {
            let series: Vec<Value> = samples
                .iter()
                .map(|s| {
                    let v = s
                        .messages
                        .fields()
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map_or(0, |(_, v)| *v);
                    json!({"sample": v, "timestamp": s.at})
                })
                .collect();
            if let Some(d) = stats.get_mut(format!("{name}_details")) {
                d["samples"] = Value::Array(series);
            }
        }
        let series: Vec<Value> = samples
            .iter()
            .map(|s| json!({"sample": s.messages.deliver_get(), "timestamp": s.at}))
            .collect();
        if let Some(d) = stats.get_mut("deliver_get_details") {
            d["samples"] = Value::Array(series);
        }
    }
    if let Some(a) = len_age {
        let samples = within(a);
        for (name, f) in [
            ("messages", Depth::total as fn(&Depth) -> u64),
            ("messages_ready", |d: &Depth| d.ready),
            ("messages_unacknowledged", |d: &Depth| d.unacked),
        ] {
            let series: Vec<Value> = samples
                .iter()
                .map(|s| json!({"sample": f(&s.depth), "timestamp": s.at}))
                .collect();
            if let Some(d) = queue_totals.get_mut(format!("{name}_details")) {
                d["samples"] = Value::Array(series);
            }
        }
    }
    Ok(())
}

fn node_json(api: &Api) -> Value {
    let started = api.node.started_at;
    json!({
        "name": node_name(api),
        "type": "disc",
        "running": true,
        "being_drained": false,
        "os_pid": std::process::id().to_string(),
        "mem_used": resident_memory(),
        "mem_limit": crate::metrics::memory_limit(),
        "mem_alarm": false,
        "disk_free": crate::metrics::disk_free(&api.node.config.data_dir),
        "disk_free_limit": 50_000_000,
        "disk_free_alarm": false,
        "fd_used": open_fds(),
        "fd_total": crate::metrics::max_fds(),
        "sockets_used": api.node.registry.connection_count(),
        "sockets_total": 943_629,
        "proc_used": 0,
        "proc_total": 1_048_576,
        "run_queue": 0,
        "processors": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "uptime": started.elapsed().as_millis() as u64,
        "rates_mode": "basic",
        "net_ticktime": 60,
        "partitions": [],
        "applications": [],
        "contexts": [],
        "exchange_types": EXCHANGE_TYPES.iter().map(|(name, description)| json!({"name": name, "description": description, "enabled": true})).collect::<Vec<_>>(),
        "enabled_plugins": ["rabbitmq_management", "rabbitmq_prometheus"],
    })
}

/// The broker's resident set size in bytes (Linux `/proc/self/statm`), 0 elsewhere.
pub fn resident_memory() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Open file descriptors (Linux `/proc/self/fd`), 0 elsewhere.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

async fn nodes(State(api): State<Api>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require_monitor()?;
    Ok(Json(json!([node_json(&api)])))
}

async fn node(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_monitor()?;
    if name != node_name(&api) {
        return Err(ApiError::not_found());
    }
    Ok(Json(node_json(&api)))
}

async fn whoami(auth: Auth) -> Json<Value> {
    Json(json!({
        "name": auth.0.name,
        "tags": auth.0.tags,
        "is_internal_user": true,
    }))
}

async fn cluster_name(State(api): State<Api>, _auth: Auth) -> Json<Value> {
    Json(json!({ "name": views::node_name(&api) }))
}

async fn extensions(_auth: Auth) -> Json<Value> {
    Json(json!([]))
}

async fn version(_auth: Auth) -> Json<Value> {
    Json(json!(RABBITMQ_VERSION))
}

/// Read by RabbitMQ's UI before login: no OAuth here.
async fn auth_settings() -> Json<Value> {
    Json(json!({ "oauth_enabled": false }))
}

async fn feature_flags(_auth: Auth) -> Json<Value> {
    Json(json!([]))
}
