//! The exchange, queues and bindings of the sales system, declared idempotently.
//!
//! ```text
//!                       +--> email_notifications --(reject)--> email_notifications.retry
//! sales_events (fanout) |        ^                                   | (TTL expires)
//!                       |        +-----------------------------------+
//!                       +--> loyalty_points ... same shape ...
//!
//! after N attempts, or when the body is not a valid sale:  <queue>.dead  (parked, with reason)
//! ```
//!
//! Every program declares the exchange, both work queues and their bindings, so whichever
//! starts first, nothing published is lost. A consumer also declares its own `.retry` and `.dead`
//! queues. Work and retry queues dead-letter through the default exchange straight to one queue,
//! so a retried sale goes back only to the consumer that failed, never to the whole fanout.
//! This module must not consume or publish.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::retry::RetryPolicy;

/// Longest work-queue name: AMQP names are at most 255 bytes and `.retry` is appended.
const MAX_WORK_QUEUE_LEN: usize = 255 - ".retry".len();

/// A validated exchange or queue name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueueName(String);

impl QueueName {
    /// Accepts a non-empty name short enough to take the `.retry` suffix, without the `amq.`
    /// prefix that brokers reserve.
    pub fn new(name: &str) -> Result<Self, TopologyError> {
        let bad = |reason: &str| TopologyError::BadName {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if name.is_empty() {
            return Err(bad("must not be empty"));
        }
        if name.len() > MAX_WORK_QUEUE_LEN {
            return Err(bad("is too long (at most 249 bytes)"));
        }
        if name.starts_with("amq.") {
            return Err(bad("the amq. prefix is reserved by the broker"));
        }
        if name.chars().any(char::is_control) {
            return Err(bad("must not contain control characters"));
        }
        Ok(Self(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where failed deliveries wait before going back to this queue.
    pub fn retry(&self) -> String {
        format!("{}.retry", self.0)
    }

    /// Where deliveries that cannot be processed are parked for a human.
    pub fn dead(&self) -> String {
        format!("{}.dead", self.0)
    }
}

impl std::fmt::Display for QueueName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The names of the sales system's exchange and work queues.
#[derive(Clone, Debug)]
pub struct Topology {
    /// The fanout exchange sales are published to.
    pub exchange: QueueName,
    /// Feeds the email consumer.
    pub email_queue: QueueName,
    /// Feeds the loyalty consumer.
    pub loyalty_queue: QueueName,
}

/// Declaring the topology failed.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A name from the settings is unusable.
    #[error("invalid name {name:?}: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The broker has an object of that name with other properties (406 PRECONDITION_FAILED).
    #[error(
        "{what} '{name}' already exists with different settings ({detail}); delete it \
         (rabbitmqadmin delete {kind} name={name}) or choose another name"
    )]
    Conflict {
        /// "queue" or "exchange", with context.
        what: &'static str,
        /// The management-API kind, for the hint.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The broker's reply text.
        detail: String,
    },
    /// The broker refused access (403).
    #[error("access to {what} '{name}' refused: {detail}")]
    AccessRefused {
        /// "queue" or "exchange".
        what: &'static str,
        /// Its name.
        name: String,
        /// The broker's reply text.
        detail: String,
    },
    /// Any other broker or connection error; usually worth a reconnect.
    #[error("declaring {what} '{name}' failed: {source}")]
    Broker {
        /// "queue", "exchange" or "binding".
        what: &'static str,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: lapin::Error,
    },
}

impl TopologyError {
    /// True when retrying cannot help: the settings or the broker's state must change first.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, TopologyError::Broker { .. })
    }
}

impl Topology {
    /// Validates the three names.
    pub fn new(
        exchange: &str,
        email_queue: &str,
        loyalty_queue: &str,
    ) -> Result<Self, TopologyError> {
        Ok(Self {
            exchange: QueueName::new(exchange)?,
            email_queue: QueueName::new(email_queue)?,
            loyalty_queue: QueueName::new(loyalty_queue)?,
        })
    }

    /// Declares the fanout exchange (durable).
    pub async fn declare_exchange(&self, channel: &Channel) -> Result<(), TopologyError> {
        let name = self.exchange.as_str();
        channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| classify(e, "exchange", "exchange", name))
    }

    /// Declares the exchange, both work queues and their bindings. Safe to run any number of
    /// times from any number of programs.
    pub async fn declare(&self, channel: &Channel) -> Result<(), TopologyError> {
        self.declare_exchange(channel).await?;
        for queue in [&self.email_queue, &self.loyalty_queue] {
            declare_queue(channel, queue.as_str(), work_queue_args(queue)).await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.exchange.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| classify(e, "binding of queue", "queue", queue.as_str()))?;
        }
        Ok(())
    }

    /// Declares `<queue>.retry` (holding failed deliveries for the retry delay) and
    /// `<queue>.dead` (parked deliveries) for the consumer of `queue`.
    pub async fn declare_retry_queues(
        &self,
        channel: &Channel,
        queue: &QueueName,
        policy: &RetryPolicy,
    ) -> Result<(), TopologyError> {
        declare_queue(
            channel,
            &queue.retry(),
            retry_queue_args(queue, policy.delay),
        )
        .await?;
        declare_queue(channel, &queue.dead(), FieldTable::default()).await
    }
}

/// Arguments of a work queue: a rejected delivery goes to `<queue>.retry` through the default
/// exchange. Independent of any setting, so every program declares it identically.
pub fn work_queue_args(queue: &QueueName) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), long_string(""));
    args.insert(
        "x-dead-letter-routing-key".into(),
        long_string(&queue.retry()),
    );
    args
}

/// Arguments of a retry queue: deliveries expire after `delay` and go back to `queue`.
pub fn retry_queue_args(queue: &QueueName, delay: Duration) -> FieldTable {
    let mut args = FieldTable::default();
    // RetryPolicy::new bounds the delay to what fits a signed 32-bit TTL.
    let ttl = i32::try_from(delay.as_millis()).unwrap_or(i32::MAX);
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(ttl));
    args.insert("x-dead-letter-exchange".into(), long_string(""));
    args.insert(
        "x-dead-letter-routing-key".into(),
        long_string(queue.as_str()),
    );
    args
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

async fn declare_queue(
    channel: &Channel,
    name: &str,
    args: FieldTable,
) -> Result<(), TopologyError> {
    channel
        .queue_declare(
            ShortString::from(name),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .map(|_| ())
        .map_err(|e| classify(e, "queue", "queue", name))
}

fn classify(
    source: lapin::Error,
    what: &'static str,
    kind: &'static str,
    name: &str,
) -> TopologyError {
    if let lapin::ErrorKind::ProtocolError(amqp) = source.kind() {
        let detail = amqp.get_message().to_string();
        match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => {
                return TopologyError::Conflict {
                    what,
                    kind,
                    name: name.to_string(),
                    detail,
                };
            }
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => {
                return TopologyError::AccessRefused {
                    what,
                    name: name.to_string(),
                    detail,
                };
            }
            _ => {}
        }
    }
    TopologyError::Broker {
        what,
        name: name.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let q = QueueName::new("email_notifications").unwrap();
        assert_eq!(q.retry(), "email_notifications.retry");
        assert_eq!(q.dead(), "email_notifications.dead");
        assert!(QueueName::new("").is_err());
        assert!(QueueName::new("amq.mine").is_err());
        assert!(QueueName::new(&"q".repeat(250)).is_err());
        assert!(QueueName::new(&"q".repeat(249)).is_ok());
    }

    #[test]
    fn dead_letter_arguments() {
        let q = QueueName::new("loyalty_points").unwrap();
        let work = work_queue_args(&q);
        assert_eq!(
            work.inner().get("x-dead-letter-routing-key"),
            Some(&long_string("loyalty_points.retry"))
        );
        let retry = retry_queue_args(&q, Duration::from_secs(10));
        assert_eq!(
            retry.inner().get("x-message-ttl"),
            Some(&AMQPValue::LongInt(10_000))
        );
        assert_eq!(
            retry.inner().get("x-dead-letter-routing-key"),
            Some(&long_string("loyalty_points"))
        );
    }
}
