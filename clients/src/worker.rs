//! The consume loop shared by the email and loyalty consumers.
//!
//! Owns the delivery lifecycle: connect (and reconnect), declare the topology, set the prefetch,
//! decode each body, call the [`SaleHandler`], then ack, retry or park according to the
//! [`RetryPolicy`]. Handlers only process sales; they never see AMQP.
//!
//! Guarantees: a delivery is acknowledged only after its handler succeeded or after it was
//! safely (confirmed) copied to the dead queue; on SIGINT/SIGTERM the sale in hand is finished
//! and acknowledged before the connection closes, and prefetched but unstarted deliveries go
//! back to the queue.

use std::future::Future;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::connection::{ConnectError, ConnectOptions, connect};
use crate::event::{SaleCompleted, Timestamp};
use crate::retry::{Disposition, HandlerError, RetryPolicy, attempt_number};
use crate::topology::{QueueName, Topology, TopologyError};

/// Processes one sale. Implemented by the email sender and the loyalty ledger.
pub trait SaleHandler {
    /// Does the work for `sale`. Must be idempotent: after a crash the same sale can come again.
    fn handle(
        &mut self,
        sale: &SaleCompleted,
        delivery: &DeliveryInfo,
    ) -> impl Future<Output = Result<(), HandlerError>>;
}

/// What a handler may want to know about the delivery besides the sale.
#[derive(Clone, Debug)]
pub struct DeliveryInfo {
    /// 1 for a first try, counted from `x-death`.
    pub attempt: u32,
    /// The broker delivered it before (to a consumer that did not acknowledge it).
    pub redelivered: bool,
}

/// Everything the loop needs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// How to reach the broker.
    pub connect: ConnectOptions,
    /// Names of the exchange and work queues.
    pub topology: Topology,
    /// The work queue this worker consumes (one of the topology's).
    pub queue: QueueName,
    /// `basic.qos` prefetch count for this consumer.
    pub prefetch: u16,
    /// Attempts and delay.
    pub retry: RetryPolicy,
    /// Test-only: wait this long between finishing a sale and acknowledging it.
    pub stall_before_ack: Option<Duration>,
}

/// Why the loop stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The broker cannot be reached, or refuses us.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The topology cannot be declared as configured.
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

/// How one connection's session ended, when it did not fail.
enum SessionEnd {
    /// Shutdown requested and done.
    Shutdown,
    /// The connection or the consumer went away: connect again.
    Lost(String),
}

/// Consumes `config.queue` until `shutdown` is cancelled, reconnecting whenever the connection
/// is lost. Returns `Ok` after a graceful shutdown.
pub async fn run<H: SaleHandler>(
    config: &WorkerConfig,
    handler: &mut H,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    loop {
        let conn = match connect(&config.connect, shutdown).await {
            Ok(conn) => conn,
            Err(ConnectError::Cancelled) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let span = info_span!("session", queue = %config.queue);
        let outcome = session(&conn, config, handler, shutdown)
            .instrument(span)
            .await;
        match outcome {
            Ok(SessionEnd::Shutdown) => {
                // Best effort: the broker requeues anything unacknowledged either way.
                let _ = conn.close(200, "consumer shutting down".into()).await;
                info!(queue = %config.queue, "stopped");
                return Ok(());
            }
            Ok(SessionEnd::Lost(why)) => {
                warn!(queue = %config.queue, reason = %why, "connection lost, reconnecting");
            }
            Err(SessionError::Topology(e)) if e.is_fatal() => {
                let _ = conn.close(200, "topology conflict".into()).await;
                return Err(e.into());
            }
            Err(e) => {
                warn!(queue = %config.queue, error = %e, "session failed, reconnecting");
                let _ = conn.close(200, "reconnecting".into()).await;
            }
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("{0}")]
    Amqp(#[from] lapin::Error),
}

async fn session<H: SaleHandler>(
    conn: &Connection,
    config: &WorkerConfig,
    handler: &mut H,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, SessionError> {
    let channel = conn.create_channel().await?;
    config.topology.declare(&channel).await?;
    config
        .topology
        .declare_retry_queues(&channel, &config.queue, &config.retry)
        .await?;
    // Confirms make parking safe: the original is acknowledged only once the copy is stored.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            config.queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    info!(
        queue = %config.queue,
        prefetch = config.prefetch,
        max_attempts = config.retry.max_attempts,
        retry_delay = ?config.retry.delay,
        "waiting for sales"
    );
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => None,
            next = consumer.next() => Some(next),
        };
        let delivery = match next {
            None => {
                info!("shutdown requested; no sale in hand");
                let _ = channel
                    .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                    .await;
                let _ = channel.close(200, "shutting down".into()).await;
                return Ok(SessionEnd::Shutdown);
            }
            Some(Some(Ok(delivery))) => delivery,
            Some(Some(Err(e))) => return Ok(SessionEnd::Lost(e.to_string())),
            Some(None) => return Ok(SessionEnd::Lost("the broker cancelled the consumer".into())),
        };
        if let Err(e) = process(&channel, config, handler, delivery).await {
            return Ok(SessionEnd::Lost(e.to_string()));
        }
    }
}

/// Handles one delivery to the end: ack, reject for retry, or park then ack.
async fn process<H: SaleHandler>(
    channel: &Channel,
    config: &WorkerConfig,
    handler: &mut H,
    delivery: Delivery,
) -> Result<(), lapin::Error> {
    let headers = delivery.properties.headers().as_ref();
    let info = DeliveryInfo {
        attempt: attempt_number(headers, config.queue.as_str()),
        redelivered: delivery.redelivered,
    };
    let sale = match SaleCompleted::from_json(&delivery.data) {
        Ok(sale) => sale,
        Err(e) => {
            let reason = format!("poison message: {e}");
            warn!(
                queue = %config.queue,
                message_id = ?delivery.properties.message_id(),
                bytes = delivery.data.len(),
                %reason,
                "not a valid sale; parking it without retry"
            );
            return park(channel, config, &delivery, &info, &reason).await;
        }
    };
    let span = info_span!("sale", sale_id = %sale.sale_id(), attempt = info.attempt);
    let result = handler.handle(&sale, &info).instrument(span).await;
    match config.retry.decide(info.attempt, &result) {
        Disposition::Ack => {
            if let Some(stall) = config.stall_before_ack {
                warn!(sale_id = %sale.sale_id(), ?stall, "test hook: stalling before ack");
                tokio::time::sleep(stall).await;
            }
            delivery.acker.ack(BasicAckOptions::default()).await?;
            debug!(sale_id = %sale.sale_id(), "acknowledged");
            Ok(())
        }
        Disposition::Retry { reason } => {
            warn!(
                sale_id = %sale.sale_id(),
                attempt = info.attempt,
                max_attempts = config.retry.max_attempts,
                retry_in = ?config.retry.delay,
                error = %reason,
                "processing failed; will retry"
            );
            delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await?;
            Ok(())
        }
        Disposition::Park { reason } => {
            error!(sale_id = %sale.sale_id(), %reason, dead_queue = %config.queue.dead(), "parking sale");
            park(channel, config, &delivery, &info, &reason).await
        }
    }
}

/// Copies the delivery to `<queue>.dead` with the reason in its headers (its `x-death` history
/// kept), waits for the broker's confirm, then acknowledges the original. If the copy is not
/// confirmed the original is rejected into the retry cycle instead, so nothing is ever dropped.
async fn park(
    channel: &Channel,
    config: &WorkerConfig,
    delivery: &Delivery,
    info: &DeliveryInfo,
    reason: &str,
) -> Result<(), lapin::Error> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert("parked-reason".into(), long_string(reason));
    headers.insert("parked-from".into(), long_string(config.queue.as_str()));
    headers.insert(
        "parked-at".into(),
        long_string(Timestamp::now_utc().as_str()),
    );
    headers.insert(
        "attempts".into(),
        AMQPValue::LongLongInt(i64::from(info.attempt)),
    );
    let properties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    let dead = config.queue.dead();
    let confirm = channel
        .basic_publish(
            "".into(),
            dead.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &delivery.data,
            properties,
        )
        .await?
        .await?;
    if confirm.is_ack() && confirm.take_message().is_none() {
        delivery.acker.ack(BasicAckOptions::default()).await?;
        info!(dead_queue = %dead, "parked");
    } else {
        error!(dead_queue = %dead, "the broker did not store the parked copy; sending it round the retry queue instead");
        delivery
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await?;
    }
    Ok(())
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}
