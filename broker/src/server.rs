//! The accept loop: one task per connection, all tracked, all told to stop on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use crate::connection;
use crate::node::Node;

/// How long connections get to finish their close handshake at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts connections until `shutdown` is cancelled, then waits for them to close.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tracker.spawn(connection::serve(stream, Arc::clone(&node), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and similar: keep serving the others.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown.cancelled() => break,
        }
    }
    tracker.close();
    info!(
        connections = tracker.len(),
        "shutting down: closing connections"
    );
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        info!("some connections did not close in time");
    }
    Ok(())
}
