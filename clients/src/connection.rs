//! Connecting to the broker with retry and exponential backoff.
//!
//! Programs call [`connect`] at start and again whenever their connection is lost, so a broker
//! that starts late, restarts or is briefly unreachable only delays work. Wrong credentials or
//! a missing vhost end the retries at once: waiting cannot fix them.

use std::time::Duration;

use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::{Connection, ConnectionProperties};
use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::settings::redact_url;

/// How a program connects.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// AMQP URI.
    pub url: String,
    /// Shown in the management UI's connection list.
    pub connection_name: String,
    /// Stop retrying after this long; `None` retries until shutdown.
    pub give_up_after: Option<Duration>,
    /// First wait after a failure; doubles up to `max_delay`.
    pub initial_delay: Duration,
    /// Longest wait between two tries.
    pub max_delay: Duration,
    /// Limit for one try (TCP connect plus AMQP handshake); a broker that accepts TCP but never
    /// answers must not hang the program.
    pub attempt_timeout: Duration,
}

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The broker never answered within the time allowed.
    #[error(
        "broker at {url} unreachable after {attempts} attempts over {waited:?}: {last}; \
         is it running? (start RabbitMQ or our broker, or set AMQP_URL)"
    )]
    Unreachable {
        /// Redacted URL.
        url: String,
        /// Tries made.
        attempts: u32,
        /// Time spent.
        waited: Duration,
        /// The last error seen.
        last: String,
    },
    /// The broker answered and refused: bad credentials, unknown vhost, or a bad URI.
    #[error("broker at {url} refused the connection: {detail}")]
    Refused {
        /// Redacted URL.
        url: String,
        /// The broker's reply text.
        detail: String,
    },
    /// Shutdown was requested while connecting.
    #[error("shutdown requested while connecting")]
    Cancelled,
}

impl ConnectOptions {
    /// Defaults for `url`: first retry after 250 ms, then doubling up to 10 s.
    pub fn new(url: &str, connection_name: &str, give_up_after: Option<Duration>) -> Self {
        Self {
            url: url.to_string(),
            connection_name: connection_name.to_string(),
            give_up_after,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(15),
        }
    }
}

/// Connects, retrying with exponential backoff and jitter until it works, the time allowed runs
/// out, the broker refuses for good, or `shutdown` is cancelled.
pub async fn connect(
    opts: &ConnectOptions,
    shutdown: &CancellationToken,
) -> Result<Connection, ConnectError> {
    let url = redact_url(&opts.url);
    let started = Instant::now();
    let mut delay = opts.initial_delay;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let props = ConnectionProperties::default()
            .with_connection_name(opts.connection_name.clone().into());
        let attempt =
            tokio::time::timeout(opts.attempt_timeout, Connection::connect(&opts.url, props));
        let result = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Err(ConnectError::Cancelled),
            r = attempt => r,
        };
        let last = match result {
            Ok(Ok(conn)) => {
                if attempts > 1 {
                    info!(%url, attempts, "connected to broker");
                } else {
                    info!(%url, "connected to broker");
                }
                return Ok(conn);
            }
            Ok(Err(e)) => {
                if let Some(detail) = refusal(&e) {
                    return Err(ConnectError::Refused { url, detail });
                }
                e.to_string()
            }
            Err(_) => format!("no AMQP handshake within {:?}", opts.attempt_timeout),
        };
        let waited = started.elapsed();
        if let Some(limit) = opts.give_up_after
            && waited + delay > limit
        {
            return Err(ConnectError::Unreachable {
                url,
                attempts,
                waited,
                last,
            });
        }
        let jittered = jitter(delay);
        warn!(%url, error = %last, retry_in = ?jittered, attempts, "broker not reachable");
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Err(ConnectError::Cancelled),
            _ = tokio::time::sleep(jittered) => {}
        }
        delay = (delay * 2).min(opts.max_delay);
    }
}

/// ±20% so that many consumers restarted together do not reconnect in lockstep.
fn jitter(delay: Duration) -> Duration {
    let factor = rand::rng().random_range(0.8..1.2);
    delay.mul_f64(factor)
}

/// The broker's reason when `error` means "this will never work": access refused (bad
/// credentials, or guest from a non-local host), vhost not allowed, or an unparsable URI.
fn refusal(error: &lapin::Error) -> Option<String> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
            | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
            | AMQPErrorKind::Hard(AMQPHardError::INVALIDPATH) => {
                Some(amqp.get_message().to_string())
            }
            _ => None,
        },
        lapin::ErrorKind::IOError(io) if io.kind() == std::io::ErrorKind::InvalidInput => {
            Some(io.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gives_up_when_nothing_listens() {
        // Port 1 on loopback is closed on any sane machine: connection refused at once.
        let mut opts = ConnectOptions::new(
            "amqp://guest:secret@127.0.0.1:1/%2f",
            "test",
            Some(Duration::from_millis(300)),
        );
        opts.initial_delay = Duration::from_millis(50);
        let err = connect(&opts, &CancellationToken::new()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ConnectError::Unreachable { attempts, .. } if attempts >= 2),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }

    #[tokio::test]
    async fn shutdown_stops_retrying() {
        let opts = ConnectOptions::new("amqp://127.0.0.1:1/%2f", "test", None);
        let token = CancellationToken::new();
        token.cancel();
        assert!(matches!(
            connect(&opts, &token).await,
            Err(ConnectError::Cancelled)
        ));
    }
}
