//! RabbitMQ's management HTTP API (and the web UI's assets) on its own listener, 15672 by
//! default. Paths, JSON field names, status codes and error bodies follow RabbitMQ's
//! `rabbitmq_management` plugin, so rabbitmqadmin, `rabbitmq_http_client`, Terraform,
//! telegraf and our own UI work unchanged. Handlers read the node's state and statistics and
//! call the same operations AMQP methods call (`Vhost::declare_queue`, …): no second copy of
//! broker rules lives here. DTOs are built as JSON values at this boundary; domain types are
//! not `Serialize`.
//!
//! Nothing here is on the message path: statistics come from counters the hot path bumps
//! (`stats.rs`) and rates from the sampler (`rates.rs`).

mod admin;
mod auth;
mod bindings;
mod connections;
mod definitions;
mod error;
mod exchanges;
mod health;
mod listing;
mod overview;
mod queues;
pub mod rates;
mod ui;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
pub use rates::Rates;
// The Prometheus endpoint (`crate::metrics`) reports the same figures.
pub use overview::{RABBITMQ_VERSION, open_fds, resident_memory};

/// Largest request body accepted (definitions imports are the big ones).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct Api {
    pub node: Arc<Node>,
    pub rates: Arc<Rates>,
}

/// Serves the management API and UI on `listener` until `shutdown` is cancelled.
pub async fn serve(
    node: Arc<Node>,
    rates: Arc<Rates>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(Api { node, rates });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Every route of the API and the UI.
pub fn router(api: Api) -> Router {
    Router::new()
        .merge(overview::routes())
        .merge(queues::routes())
        .merge(exchanges::routes())
        .merge(bindings::routes())
        .merge(connections::routes())
        .merge(admin::routes())
        .merge(definitions::routes())
        .merge(health::routes())
        .merge(ui::routes())
        .fallback(ui::fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}
