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
pub mod error;
pub mod exchange;
pub mod message;
mod naming;
pub mod node;
pub mod protocol;
pub mod queue;
pub mod server;
pub mod store;
pub mod timer;
pub mod vhost;

use std::sync::Arc;

pub use config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves AMQP 0-9-1 on `listener` until `shutdown` is cancelled, then closes every
/// connection with `320 CONNECTION_FORCED` and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let (timers, timer_task) = timer::start(shutdown.clone());
    let timer_task = tokio::spawn(timer_task);
    let node = Arc::new(node::Node::new(config, timers));
    let result = server::serve(node, listener, shutdown).await;
    let _ = timer_task.await;
    result
}
