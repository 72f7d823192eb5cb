//! RabbitMQ's Prometheus endpoint (`rabbitmq_prometheus`, port 15692 by default):
//! `GET /metrics` (aggregated), `/metrics/per-object` and `/metrics/detailed?family=…`, in the
//! text format 0.0.4 with RabbitMQ 3.10's names, so its Grafana dashboards (10991) and alert
//! rules work unchanged.
//!
//! Every scrape copies the node's state into a [`snapshot::Snapshot`] and renders that
//! (`families.rs`, with the encoder in `text.rs`). Nothing is registered or kept between
//! scrapes, so the series of a deleted queue, closed channel or connection vanish with it.
//! Nothing here is on the message path.

mod families;
mod snapshot;

pub use snapshot::{disk_free, max_fds, memory_limit};
mod text;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use families::{Endpoint, Selection};

/// Serves the Prometheus endpoint on `listener` until `shutdown` is cancelled.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(node))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// The endpoint's routes.
pub fn router(node: Arc<Node>) -> Router {
    let state = Arc::new(Metrics {
        node,
        received_confirm: AtomicU64::new(0),
    });
    Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/{registry}", get(registry))
        .with_state(state)
}

/// What the handlers share.
#[derive(Debug)]
struct Metrics {
    node: Arc<Node>,
    /// Highest `rabbitmq_global_messages_received_confirm_total` reported (an estimate that
    /// must not go back; see [`snapshot::take`]).
    received_confirm: AtomicU64,
}

async fn aggregated(State(m): State<Arc<Metrics>>) -> Response {
    scrape(m, Endpoint::Aggregated).await
}

/// `/metrics/per-object`, `/metrics/detailed`; anything else is RabbitMQ's 404.
async fn registry(
    State(m): State<Arc<Metrics>>,
    Path(registry): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let endpoint = match registry.as_str() {
        "per-object" => Endpoint::PerObject,
        "detailed" => Endpoint::Detailed(selection(&m.node, query.as_deref().unwrap_or(""))),
        _ => return (StatusCode::NOT_FOUND, "Unknown Registry").into_response(),
    };
    scrape(m, endpoint).await
}

/// Snapshots and renders off the async workers: a node with many queues takes a while.
async fn scrape(m: Arc<Metrics>, endpoint: Endpoint) -> Response {
    let rendered = tokio::task::spawn_blocking(move || {
        let snap = snapshot::take(&m.node, &m.received_confirm);
        families::render(&snap, &endpoint)
    })
    .await;
    match rendered {
        Ok(body) => ([(header::CONTENT_TYPE, text::CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics scrape failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `family=…&vhost=…` (each may repeat). Like RabbitMQ, vhosts that do not exist are
/// dropped, and unknown families simply match nothing.
fn selection(node: &Node, query: &str) -> Selection {
    let mut sel = Selection::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = value.replace('+', " ");
        let value = percent_encoding::percent_decode_str(&value)
            .decode_utf8_lossy()
            .into_owned();
        match key {
            "family" => sel.families.push(value),
            "vhost" => {
                let vhosts = sel.vhosts.get_or_insert_with(Vec::new);
                if node.vhost(&value).is_some() {
                    vhosts.push(value);
                }
            }
            _ => {}
        }
    }
    sel
}
