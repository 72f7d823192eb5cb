//! Publishing sales with publisher confirms, the producer's core.
//!
//! Each sale is published persistent (`delivery_mode` 2), as `application/json`, with
//! `message_id` = sale id and `mandatory` set, on a channel in confirm mode. Confirms are
//! pipelined up to a window and settled in order. A sale counts as delivered only when the
//! broker acked it and did not return it. If the connection drops, every unsettled sale is
//! published again after reconnecting (consumers are idempotent, so a duplicate is harmless).

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel};
use lapin::{Confirmation, PublisherConfirm};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::connection::{ConnectError, ConnectOptions, connect};
use crate::event::{EVENT_TYPE, SaleCompleted};
use crate::topology::{Topology, TopologyError};

/// How to publish.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// How to reach the broker.
    pub connect: ConnectOptions,
    /// Exchange and queues to declare.
    pub topology: Topology,
    /// Declare the work queues and bindings too (the default), or only the exchange.
    pub declare_queues: bool,
    /// How long the broker has to confirm a sale after it was published.
    pub confirm_timeout: Duration,
    /// Most sales awaiting a confirm at once.
    pub window: usize,
    /// Sent as the `app_id` property.
    pub app_id: String,
}

/// How one sale ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acked by the broker: stored in every bound queue.
    Confirmed,
    /// Nacked: the broker refused to store it (e.g. a full queue with `reject-publish`).
    Nacked,
    /// Returned: no queue is bound to the exchange, so nobody would have received it.
    Unroutable(String),
    /// No confirm within the timeout: the sale may or may not be stored.
    TimedOut,
    /// The connection was lost and could not be re-established: the sale may or may not be
    /// stored.
    ConnectionLost(String),
}

impl Outcome {
    /// Short text for reports.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Confirmed => "confirmed".into(),
            Outcome::Nacked => "rejected by the broker (basic.nack)".into(),
            Outcome::Unroutable(why) => format!("returned as unroutable ({why})"),
            Outcome::TimedOut => "no confirm before the timeout".into(),
            Outcome::ConnectionLost(why) => format!("connection lost ({why})"),
        }
    }
}

/// What happened to a batch.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Sales confirmed.
    pub confirmed: u64,
    /// Sales not confirmed, with why, in the order they settled.
    pub unconfirmed: Vec<(String, Outcome)>,
    /// Sales never published (shutdown, or the broker went away for good).
    pub not_sent: u64,
}

impl Report {
    /// True when every sale was confirmed.
    pub fn all_confirmed(&self) -> bool {
        self.unconfirmed.is_empty() && self.not_sent == 0
    }
}

/// Publishing could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The topology cannot be declared as configured.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The channel could not be set up.
    #[error("cannot open a confirm-mode channel: {0}")]
    Channel(#[from] lapin::Error),
}

/// Publishes `sales`, calling `on_settled` as each one is confirmed or given up on.
///
/// Returns `Err` only if nothing could be done (first connection or declaration failed);
/// otherwise the report says which sales were not confirmed.
pub async fn publish_all<I, F>(
    opts: &PublishOptions,
    sales: I,
    shutdown: &CancellationToken,
    mut on_settled: F,
) -> Result<Report, PublishError>
where
    I: IntoIterator<Item = SaleCompleted>,
    F: FnMut(&SaleCompleted, &Outcome),
{
    let mut source = sales.into_iter();
    let mut resend: VecDeque<SaleCompleted> = VecDeque::new();
    let mut report = Report::default();
    let mut first = true;
    let window = opts.window.max(1);
    'session: loop {
        let conn = match connect(&opts.connect, shutdown).await {
            Ok(conn) => conn,
            Err(e) if first => return Err(e.into()),
            Err(e) => {
                let why = e.to_string();
                for sale in resend.drain(..) {
                    let outcome = Outcome::ConnectionLost(why.clone());
                    on_settled(&sale, &outcome);
                    report
                        .unconfirmed
                        .push((sale.sale_id().to_string(), outcome));
                }
                report.not_sent += source.count() as u64;
                return Ok(report);
            }
        };
        let channel = match open_channel(&conn, opts).await {
            Ok(ch) => ch,
            Err(e) if first || is_fatal(&e) => {
                let _ = conn.close(200, "producer failed".into()).await;
                return Err(e);
            }
            Err(e) => {
                warn!(error = %e, "channel setup failed; reconnecting");
                continue 'session;
            }
        };
        first = false;
        let mut inflight: VecDeque<(SaleCompleted, PublisherConfirm, Instant)> = VecDeque::new();
        loop {
            while inflight.len() < window && !shutdown.is_cancelled() {
                let Some(sale) = resend.pop_front().or_else(|| source.next()) else {
                    break;
                };
                match publish_one(&channel, opts, &sale).await {
                    Ok(confirm) => {
                        inflight.push_back((sale, confirm, Instant::now() + opts.confirm_timeout));
                    }
                    Err(e) => {
                        warn!(error = %e, "publish failed; reconnecting to resend unconfirmed sales");
                        resend.push_front(sale);
                        requeue(&mut resend, inflight);
                        continue 'session;
                    }
                }
            }
            let Some((sale, confirm, deadline)) = inflight.pop_front() else {
                break;
            };
            let outcome = match tokio::time::timeout_at(deadline, confirm).await {
                Ok(Ok(Confirmation::Ack(None))) => Outcome::Confirmed,
                Ok(Ok(Confirmation::Ack(Some(returned)))) => {
                    Outcome::Unroutable(format!("{} {}", returned.reply_code, returned.reply_text))
                }
                Ok(Ok(Confirmation::Nack(_))) => Outcome::Nacked,
                Ok(Ok(Confirmation::NotRequested)) => Outcome::TimedOut,
                Ok(Err(e)) => {
                    warn!(error = %e, "connection lost while waiting for confirms; reconnecting");
                    resend.push_front(sale);
                    requeue(&mut resend, inflight);
                    continue 'session;
                }
                Err(_) => Outcome::TimedOut,
            };
            on_settled(&sale, &outcome);
            if outcome == Outcome::Confirmed {
                report.confirmed += 1;
            } else {
                report
                    .unconfirmed
                    .push((sale.sale_id().to_string(), outcome));
            }
        }
        if shutdown.is_cancelled() {
            report.not_sent += (resend.len() + source.count()) as u64;
            info!(
                not_sent = report.not_sent,
                "shutdown requested; stopped publishing"
            );
        }
        let _ = conn.close(200, "producer done".into()).await;
        return Ok(report);
    }
}

async fn open_channel(
    conn: &lapin::Connection,
    opts: &PublishOptions,
) -> Result<Channel, PublishError> {
    let channel = conn.create_channel().await?;
    if opts.declare_queues {
        opts.topology.declare(&channel).await?;
    } else {
        opts.topology.declare_exchange(&channel).await?;
    }
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

fn is_fatal(e: &PublishError) -> bool {
    matches!(e, PublishError::Topology(t) if t.is_fatal())
}

/// Puts in-flight sales back at the front of `resend`, oldest first.
fn requeue(
    resend: &mut VecDeque<SaleCompleted>,
    inflight: VecDeque<(SaleCompleted, PublisherConfirm, Instant)>,
) {
    for (sale, _, _) in inflight.into_iter().rev() {
        resend.push_front(sale);
    }
}

async fn publish_one(
    channel: &Channel,
    opts: &PublishOptions,
    sale: &SaleCompleted,
) -> Result<PublisherConfirm, lapin::Error> {
    channel
        .basic_publish(
            opts.topology.exchange.as_str().into(),
            "".into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &sale.to_json(),
            properties(sale, &opts.app_id),
        )
        .await
}

/// The AMQP properties of a sale message.
pub fn properties(sale: &SaleCompleted, app_id: &str) -> BasicProperties {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        // SaleCompleted bounds sale_id to MAX_SALE_ID_LEN (128) bytes, under the 255 limit.
        .with_message_id(sale.sale_id().into())
        .with_type(EVENT_TYPE.into())
        .with_timestamp(now)
        .with_app_id(app_id.into())
}
