//! Command-line flags and environment variables shared by every program, and the validated
//! settings built from them.
//!
//! Every flag has an environment variable, so the same binaries run unchanged from a shell, from
//! docker compose and from the tests. Holds no I/O.

use std::time::Duration;

use clap::Args;

use crate::retry::RetryPolicy;
use crate::topology::{QueueName, Topology, TopologyError};

/// The default broker: RabbitMQ's (and our broker's) defaults on this machine.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@localhost:5672/%2f";

/// Where the broker is and how hard to try reaching it.
#[derive(Args, Clone, Debug)]
pub struct BrokerArgs {
    /// AMQP URI of the broker (vhost percent-encoded: `%2f` is `/`).
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_AMQP_URL)]
    pub amqp_url: String,

    /// Give up connecting after this long (e.g. `30s`, `2m`; `0` retries forever).
    /// Consumers default to retrying forever, the producer to 30s.
    #[arg(long, env = "CONNECT_TIMEOUT", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
}

/// Names of the exchange and queues (the course document's by default). Tests and parallel
/// deployments override them so they never touch each other's data.
#[derive(Args, Clone, Debug)]
pub struct TopologyArgs {
    /// Fanout exchange the sales are published to.
    #[arg(long, env = "SALES_EXCHANGE", default_value = "sales_events")]
    pub exchange: String,

    /// Durable queue feeding the email consumer.
    #[arg(long, env = "EMAIL_QUEUE", default_value = "email_notifications")]
    pub email_queue: String,

    /// Durable queue feeding the loyalty consumer.
    #[arg(long, env = "LOYALTY_QUEUE", default_value = "loyalty_points")]
    pub loyalty_queue: String,
}

impl TopologyArgs {
    /// Validates the names into a [`Topology`].
    pub fn topology(&self) -> Result<Topology, TopologyError> {
        Topology::new(&self.exchange, &self.email_queue, &self.loyalty_queue)
    }
}

/// How a work-queue consumer takes deliveries and retries failures.
#[derive(Args, Clone, Debug)]
pub struct ConsumerArgs {
    /// Unacknowledged deliveries the broker may push ahead of processing (`basic.qos`).
    #[arg(long, env = "PREFETCH", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,

    /// Processing attempts per sale, the first included, before it is parked in `<queue>.dead`.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// Wait between attempts: the TTL of `<queue>.retry` (e.g. `500ms`, `10s`, `1m`). Changing
    /// it for an existing queue needs that retry queue deleted first (RabbitMQ refuses to change
    /// queue arguments).
    #[arg(long, env = "RETRY_DELAY", default_value = "10s", value_parser = parse_duration)]
    pub retry_delay: Duration,
}

impl ConsumerArgs {
    /// The retry policy these flags describe.
    pub fn retry_policy(&self) -> Result<RetryPolicy, SettingsError> {
        RetryPolicy::new(self.max_attempts, self.retry_delay)
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A bad exchange or queue name.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A bad value for a named setting.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The flag or variable at fault.
        setting: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// The test-only hook `SALES_TEST_STALL_BEFORE_ACK`: after a sale is processed, wait this long
/// before acknowledging it, so a test can kill the consumer with the work done but unacked.
pub fn stall_before_ack_from_env() -> Result<Option<Duration>, SettingsError> {
    match std::env::var("SALES_TEST_STALL_BEFORE_ACK") {
        Ok(v) if !v.trim().is_empty() => {
            parse_duration(&v)
                .map(Some)
                .map_err(|reason| SettingsError::Invalid {
                    setting: "SALES_TEST_STALL_BEFORE_ACK",
                    reason,
                })
        }
        _ => Ok(None),
    }
}

/// Checks a work-queue name for this program's own queue.
pub fn queue_name(setting: &'static str, name: &str) -> Result<QueueName, SettingsError> {
    QueueName::new(name).map_err(|e| SettingsError::Invalid {
        setting,
        reason: e.to_string(),
    })
}

/// Parses `250ms`, `10s`, `2m`, `1h`, or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 10s or 2m"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("{text:?} is out of range"))
}

/// `url` with its password replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("amqp://guest:secret@localhost:5672/%2f"),
            "amqp://guest:***@localhost:5672/%2f"
        );
        assert_eq!(redact_url("amqp://localhost"), "amqp://localhost");
    }
}
