//! A RabbitMQ-compatible AMQP 0-9-1 broker.
//!
//! See ARCHITECTURE.md at the repository root for the bird's-eye view and the code map.
//! The entry point is [`run`]: it serves AMQP on an already bound listener until the
//! shutdown token is cancelled.

pub mod channel;
pub mod clock;
pub mod config;
pub mod connection;
pub mod dead_letter;
pub mod definitions;
pub mod error;
pub mod exchange;
pub mod management;
pub mod message;
pub mod metrics;
mod naming;
pub mod node;
pub mod password;
pub mod protocol;
pub mod queue;
pub mod registry;
pub mod server;
pub mod stats;
pub mod store;
pub mod timer;
pub mod vhost;

use std::sync::Arc;

pub use config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The sockets a node serves, bound by the caller (so tests can bind port 0).
#[derive(Debug)]
pub struct Listeners {
    /// AMQP 0-9-1.
    pub amqp: TcpListener,
    /// The management HTTP API and web UI (RabbitMQ: 15672), if enabled.
    pub management: Option<TcpListener>,
    /// The Prometheus endpoint (RabbitMQ: 15692), if enabled.
    pub prometheus: Option<TcpListener>,
}

/// Serves AMQP 0-9-1 on `listener` until `shutdown` is cancelled, then closes every
/// connection with `320 CONNECTION_FORCED` and returns. No management API or metrics.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listeners = Listeners {
        amqp: listener,
        management: None,
        prometheus: None,
    };
    serve(config, listeners, shutdown).await
}

/// Serves AMQP, and the management API and Prometheus endpoint when their listeners are
/// given, until `shutdown` is cancelled.
pub async fn serve(
    mut config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    config.listeners = vec![("amqp".to_owned(), listeners.amqp.local_addr()?)];
    if let Some(l) = &listeners.management {
        config.listeners.push(("http".to_owned(), l.local_addr()?));
    }
    if let Some(l) = &listeners.prometheus {
        config
            .listeners
            .push(("http/prometheus".to_owned(), l.local_addr()?));
    }
    let stats_interval = config.stats_interval;
    let options = store::StoreOptions {
        segment_size: config.segment_size,
        fail_fsync_after: config.fail_fsync_after,
        ..store::StoreOptions::default()
    };
    let store = store::Store::open(&config.data_dir, options)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let durability = definitions::Durability::new(Arc::clone(&store));
    let (timers, timer_task) = timer::start(shutdown.clone());
    let timer_task = tokio::spawn(timer_task);
    let node = node::Node::new(config, timers, Some(durability));
    let started = std::time::Instant::now();
    match &node.config.load_definitions {
        None => node
            .restore()
            .map_err(|e| std::io::Error::other(e.to_string()))?,
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| {
                std::io::Error::other(format!(
                    "cannot read the definitions file {}: {e}",
                    path.display()
                ))
            })?;
            let doc: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
                std::io::Error::other(format!(
                    "the definitions file {} is not JSON: {e}",
                    path.display()
                ))
            })?;
            node.restore_and_import(&doc).map_err(|e| {
                std::io::Error::other(format!(
                    "the definitions file {} was refused (nothing imported): {e}",
                    path.display()
                ))
            })?;
            tracing::info!(file = %path.display(), "definitions imported");
        }
    }
    tracing::info!(elapsed = ?started.elapsed(), data_dir = %store.dir().display(), "definitions and messages recovered");
    let rates = Arc::new(management::Rates::default());
    let mut side_tasks = Vec::new();
    if listeners.management.is_some() || listeners.prometheus.is_some() {
        side_tasks.push(tokio::spawn(management::rates::run(
            Arc::clone(&rates),
            Arc::downgrade(&node),
            stats_interval,
            shutdown.clone(),
        )));
    }
    if let Some(l) = listeners.management {
        let (node, rates, shutdown) = (Arc::clone(&node), Arc::clone(&rates), shutdown.clone());
        side_tasks.push(tokio::spawn(async move {
            if let Err(e) = management::serve(node, rates, l, shutdown).await {
                tracing::error!(error = %e, "management API stopped");
            }
        }));
    }
    if let Some(l) = listeners.prometheus {
        let (node, shutdown) = (Arc::clone(&node), shutdown.clone());
        side_tasks.push(tokio::spawn(async move {
            if let Err(e) = metrics::serve(node, l, shutdown).await {
                tracing::error!(error = %e, "prometheus endpoint stopped");
            }
        }));
    }
    let result = server::serve(Arc::clone(&node), listeners.amqp, shutdown).await;
    for t in side_tasks {
        let _ = t.await;
    }
    let _ = timer_task.await;
    drop(node);
    if let Err(e) = store.close() {
        tracing::error!(error = %e, "store not closed cleanly");
    }
    // Cumulative since start; benches/storage.sh reads fsyncs per second from this line.
    let stats = store.stats();
    tracing::info!(
        message_records = stats.message_records,
        fsyncs = stats.fsyncs,
        sync_batches = stats.sync_batches,
        sync_requests = stats.sync_requests,
        corrupt_records = stats.corrupt_records,
        truncated_tails = stats.truncated_tails,
        "message store closed"
    );
    result
}
