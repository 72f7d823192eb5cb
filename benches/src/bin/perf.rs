//! `perf`: a load tool in the spirit of RabbitMQ's PerfTest, built on lapin, that runs the same
//! way against our broker and a real RabbitMQ.
//!
//! Producers publish to a fresh queue through the default exchange; consumers consume from it.
//! With `--exchange` and `--queues a,b` they publish to that exchange instead, every queue is
//! bound to it with the same routing key (so each gets every message) and `--consumers`
//! consumers take each queue. Every body starts with the send time (8 bytes, nanoseconds on
//! this process's monotonic clock), so consumers measure end-to-end latency; bodies of 16 bytes
//! or more then carry the producer's index and a sequence number, so a lone consumer can tell
//! lost messages from late ones (reported when messages are missing after the run). With
//! `--broker-pid` the broker's CPU time (utime + stime from /proc) is read before and after the
//! measured window, which gives its CPU cost per message: on a small machine the load client is
//! usually the throughput limit, so that is the figure that shows the broker's own cost.
//!
//! The window lasts `--duration` seconds, or with `--count N` until every producer has
//! published (and, with `--confirm`, had confirmed) N messages and the consumers have them all.
//! `--producers 0` drains: consumers take the messages ready at the start (`--no-declare`
//! keeps an existing queue) and the run reports when the first one arrived. `--keep-queue`
//! leaves the queues and their messages for a later run; `--delete` only deletes them.
//!
//! Output: progress per second on stderr, then one `key=value` summary line starting with
//! `RESULT` and a human-readable table on stdout.
//!
//! ```text
//! perf --url amqp://guest:guest@127.0.0.1:5673/%2f --size 1024 --prefetch 1000 \
//!      --duration 10 --max-backlog 10000 --broker-pid "$(pgrep -f 'broker --port 5673')"
//! # fill a durable queue with 1M persistent messages, then drain it in another run
//! perf --persistent --confirm 1000 --consumers 0 --count 1000000 --queue fill --keep-queue
//! perf --producers 0 --prefetch 1000 --no-declare --queue fill
//! ```
//!
//! Client efficiency (the client is the bottleneck on 2 cores):
//! - publishes are not awaited one by one. lapin's `basic_publish` queues the frames on its first
//!   poll and then only waits for its I/O loop to write them; we poll it once and drop it,
//!   so lapin writes many messages per syscall. Every `CHECKPOINT` messages one publish is kept
//!   and awaited later, which bounds what lapin buffers. With `--confirm`, every publish is
//!   kept (publish, then its confirm, as one future polled once) and the oldest is awaited
//!   once N are outstanding: awaiting each publish before the next one made lapin write one
//!   message per syscall and capped the rate at what the client could do, not the broker.
//! - consumers take every delivery that is ready, then send one `basic.ack multiple=true` for
//!   the batch (`--multi-ack-every` changes that; 1 = one ack per message like PerfTest).
//! - the body buffer is reused; counters are per-role atomics; the latency histogram is a fixed
//!   array.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use benches::cpu::{cpu_seconds, machine_busy_seconds};
use benches::histogram::Histogram;
use clap::Parser;
use futures_lite::StreamExt;
use futures_lite::future::poll_once;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Publishes between two kept (awaited) publishes.
const CHECKPOINT: u64 = 128;
/// Kept publishes not yet awaited; bounds lapin's send queue to about
/// `CHECKPOINT * MAX_CHECKPOINTS` messages.
const MAX_CHECKPOINTS: usize = 4;
/// Messages published per turn before yielding to the runtime.
const TURN: u64 = 64;
/// Deliveries taken without waiting before acking.
const DRAIN: usize = 1024;
/// Bodies of 16 bytes or more carry `producer << SEQ_BITS | sequence` in bytes 8..16, so a
/// single consumer can tell lost messages from late ones.
const SEQ_BITS: u32 = 48;
/// Longest wait for the queue to drain after the measured window.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// With `--count` or `--producers 0`: give up when nothing was sent or received for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the end of a `--count` or drain window is checked.
const POLL: Duration = Duration::from_millis(5);
/// Routing key of publishes and bindings when publishing to `--exchange`.
const BINDING_KEY: &str = "perf";

/// Load test for AMQP 0-9-1 brokers (RabbitMQ PerfTest-like).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Broker URI.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// Producer connections (one channel each); 0 = drain: consumers take the messages ready
    /// at the start (or --count in all), then the run ends.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumer connections per queue (one channel, one consumer each).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Body size in bytes (at least 8: the send timestamp).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(8..))]
    size: u32,
    /// Length of the measured window, in seconds (ignored with --count or --producers 0).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Each producer publishes exactly N messages; the window ends once they are all confirmed
    /// (with --confirm) and consumed (with consumers). With --producers 0: consumers stop after
    /// N messages in all.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Messages per second per producer; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Consume with no-ack (auto-ack); otherwise consumers ack manually.
    #[arg(long)]
    autoack: bool,
    /// basic.qos prefetch count per consumer with manual ack (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    prefetch: u16,
    /// With manual ack: ack (multiple=true) every N messages; 0 = once per batch of ready
    /// deliveries; 1 = one basic.ack per message.
    #[arg(long, default_value_t = 0)]
    multi_ack_every: u64,
    /// Publisher confirms, with at most N unconfirmed messages per producer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    confirm: Option<u64>,
    /// Publish with delivery_mode=2 (and declare the queues and exchange durable).
    #[arg(long)]
    persistent: bool,
    /// Queue name (deleted first if it exists, declared fresh, deleted at the end).
    #[arg(long, conflicts_with = "queues")]
    queue: Option<String>,
    /// Several queues, comma-separated, all bound to --exchange (which it needs) with the same
    /// routing key, so each gets every message; --consumers consumers on each.
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    queues: Vec<String>,
    /// Publish to this exchange (deleted first, declared fresh, deleted at the end) instead of
    /// the default exchange.
    #[arg(long, value_name = "NAME")]
    exchange: Option<String>,
    /// Type of --exchange: direct, fanout, topic, headers or a plugin's type.
    #[arg(long, default_value = "direct")]
    exchange_type: String,
    /// Leave the queues (with their messages) and the exchange in place at the end.
    #[arg(long)]
    keep_queue: bool,
    /// Use the queues (and exchange) as they are: no delete and declare at the start.
    #[arg(long)]
    no_declare: bool,
    /// Only delete the queues and the exchange named by --queue, --queues and --exchange (for
    /// cleaning up after --keep-queue), then exit.
    #[arg(long)]
    delete: bool,
    /// Queue argument `KEY=VALUE` for the declare (repeatable); integers are sent as long,
    /// anything else as a string (e.g. `x-message-ttl=1000`, `x-dead-letter-exchange=dlx`).
    #[arg(long = "queue-arg", value_name = "KEY=VALUE")]
    queue_args: Vec<String>,
    /// Give messages priorities 0..N-1 in turn (for `x-max-priority` queues); 0 = none.
    #[arg(long, default_value_t = 0)]
    priorities: u8,
    /// PID of the broker process, to report its CPU time per message.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Producers pause while more than N messages are published but not yet consumed
    /// (0 = never), so a fast publisher cannot grow the queue without bound.
    #[arg(long, default_value_t = 0)]
    max_backlog: u64,
    /// Free-form label copied into the summary line (e.g. the broker's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Tokio worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// No per-second progress on stderr.
    #[arg(long)]
    quiet: bool,
}

/// A counter on its own cache line, written by one role and read by the reporter.
#[derive(Default)]
#[repr(align(64))]
struct Counter(AtomicU64);

impl Counter {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Shared {
    sent: Counter,
    received: Counter,
    nacked: Counter,
    /// When the first delivery arrived (monotonic, and Unix time in ms for scripts that
    /// compare it with a broker's start).
    first_received: OnceLock<(Instant, u128)>,
}

/// The monotonic clock whose readings are stamped into bodies.
fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn now_nanos() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _ = epoch();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = args.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await
    .with_context(|| format!("cannot connect to {url}"))
}

struct ConsumerOutcome {
    latency: Histogram,
    /// Per producer: the last sequence number seen, and messages skipped over (sequence
    /// numbers jumped past) while receiving. Meaningful with one consumer only.
    last_seq: Vec<u64>,
    skipped: Vec<u64>,
    first_skip: Option<(u64, u64)>,
}

/// One consumer's connection, kept until the end.
struct ConsumerConn {
    conn: Connection,
    ch: Channel,
    queue: String,
    tag: String,
}

async fn run(args: Args) -> anyhow::Result<()> {
    if !args.duration.is_finite() || args.duration <= 0.0 {
        bail!("--duration must be positive");
    }
    if !args.delete && args.producers == 0 && args.consumers == 0 {
        bail!("nothing to do: no producers and no consumers");
    }
    let topology = Topology::from_args(&args)?;
    let admin = connect(&args.url, "perf-admin").await?;
    let admin_ch = admin.create_channel().await?;
    if args.delete {
        topology.delete(&admin_ch).await?;
        let _ = admin.close(200, "bye".into()).await;
        return Ok(());
    }
    if !args.no_declare {
        topology
            .declare(&admin_ch, args.persistent, &args.queue_args)
            .await?;
    }
    let fanout = topology.fanout();
    // With --count or --producers 0 the window ends on a number of deliveries, not a time.
    let counted = args.count.is_some() || args.producers == 0;
    let target = if args.consumers == 0 {
        None
    } else if args.producers == 0 {
        Some(match args.count {
            Some(n) => n,
            None => topology.ready_messages(&admin_ch).await?,
        })
    } else {
        args.count.map(|n| {
            n.saturating_mul(args.producers as u64)
                .saturating_mul(fanout)
        })
    };

    let shared = Arc::new(Shared::default());
    let stop = CancellationToken::new();

    // Consumers connect first and subscribe at the start of the window, before any publish.
    let mut consumers = Vec::new();
    for (qi, queue) in topology.queues.iter().enumerate() {
        for i in 0..args.consumers {
            let tag = if topology.queues.len() == 1 {
                format!("perf-consumer-{i}")
            } else {
                format!("perf-consumer-{qi}-{i}")
            };
            let conn = connect(&args.url, &tag).await?;
            let ch = conn.create_channel().await?;
            if !args.autoack && args.prefetch > 0 {
                ch.basic_qos(args.prefetch, BasicQosOptions::default())
                    .await?;
            }
            consumers.push(ConsumerConn {
                conn,
                ch,
                queue: queue.clone(),
                tag,
            });
        }
    }
    let mut ack_every = args.multi_ack_every;
    if args.prefetch > 0 && ack_every > u64::from(args.prefetch) {
        // Never wait for more deliveries than the prefetch window lets through.
        ack_every = u64::from(args.prefetch).div_ceil(2);
    }

    let mut producer_conns = Vec::new();
    let mut producer_channels = Vec::new();
    for i in 0..args.producers {
        let conn = connect(&args.url, &format!("perf-producer-{i}")).await?;
        let ch = conn.create_channel().await?;
        if args.confirm.is_some() {
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
        }
        producer_channels.push(ch);
        producer_conns.push(conn);
    }

    // The measured window.
    let duration = Duration::from_secs_f64(args.duration);
    let broker_pid = args.broker_pid.map(|p| p.to_string());
    let broker_cpu0 = broker_pid.as_deref().map(cpu_seconds).transpose()?;
    let client_cpu0 = cpu_seconds("self")?;
    let machine0 = machine_busy_seconds()?;
    let start = Instant::now();
    let end = start + duration;
    let mut consumer_tasks = Vec::new();
    for c in &consumers {
        let consumer =
            c.ch.basic_consume(
                c.queue.as_str().into(),
                c.tag.as_str().into(),
                BasicConsumeOptions {
                    no_ack: args.autoack,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("consuming from '{}'", c.queue))?;
        let cfg = ConsumeCfg {
            producers: args.producers,
            autoack: args.autoack,
            ack_every,
        };
        consumer_tasks.push(tokio::spawn(consume(
            c.ch.clone(),
            consumer,
            cfg,
            Arc::clone(&shared),
            stop.clone(),
        )));
    }
    let mut producer_tasks = Vec::new();
    // Held until the end: dropping a channel's last handle closes it.
    let producer_keep = producer_channels.clone();
    for (id, ch) in producer_channels.into_iter().enumerate() {
        let cfg = PublishCfg {
            id: id as u64,
            exchange: topology.exchange.as_str().into(),
            routing_key: topology.routing_key.as_str().into(),
            size: args.size as usize,
            rate: args.rate,
            confirm: args.confirm,
            persistent: args.persistent,
            priorities: args.priorities,
            max_backlog: args.max_backlog,
            fanout,
            count: args.count,
            start,
            end: (!counted).then_some(end),
        };
        producer_tasks.push(tokio::spawn(publish(ch, cfg, Arc::clone(&shared))));
    }

    let mut last = (start, 0u64, 0u64);
    let mut last_change = last;
    let mut next_report = start + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        let (s, r) = (shared.sent.get(), shared.received.get());
        if counted {
            let published = producer_tasks.iter().all(JoinHandle::is_finished);
            if published && target.is_none_or(|t| r >= t) {
                break;
            }
            if consumer_tasks.iter().any(JoinHandle::is_finished) {
                break; // one failed: its error is reported below
            }
            if (s, r) != (last_change.1, last_change.2) {
                last_change = (now, s, r);
            } else if now.duration_since(last_change.0) >= STALL_TIMEOUT {
                bail!(
                    "nothing sent or received for {STALL_TIMEOUT:?} ({s} sent, {r} received{}); {}",
                    target.map(|t| format!(" of {t}")).unwrap_or_default(),
                    queue_state(&admin_ch, &topology.queues).await
                );
            }
        } else if now >= end {
            break;
        }
        if now >= next_report {
            next_report += Duration::from_secs(1);
            if !args.quiet {
                let dt = now.duration_since(last.0).as_secs_f64().max(1e-9);
                eprintln!(
                    "time {:5.1}s  sent {:>9.0} msg/s  received {:>9.0} msg/s  backlog {}",
                    now.duration_since(start).as_secs_f64(),
                    (s - last.1) as f64 / dt,
                    (r - last.2) as f64 / dt,
                    (s * fanout).saturating_sub(r),
                );
                last = (now, s, r);
            }
        }
        let wake = if counted { now + POLL } else { end };
        tokio::time::sleep_until(wake.min(next_report)).await;
    }
    let window = Instant::now().duration_since(start).as_secs_f64();
    let sent_in_window = shared.sent.get();
    let received_in_window = shared.received.get();
    let broker_cpu1 = broker_pid.as_deref().map(cpu_seconds).transpose()?;
    let client_cpu = cpu_seconds("self")? - client_cpu0;
    let machine_cpu = machine_busy_seconds()? - machine0;

    if let Some(i) = consumer_tasks.iter().position(JoinHandle::is_finished) {
        consumer_tasks
            .swap_remove(i)
            .await
            .context("consumer task")??;
        bail!("a consumer stopped before the end (its queue deleted?)");
    }
    for t in producer_tasks {
        t.await.context("producer task")??;
    }
    let sent_total = shared.sent.get();
    let expected = match target {
        Some(t) if args.producers == 0 => t,
        _ => sent_total * fanout,
    };
    // Let consumers take what is still queued (their latencies count too).
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    while args.consumers > 0 && shared.received.get() < expected && Instant::now() < drain_deadline
    {
        tokio::time::sleep(POLL).await;
    }
    let elapsed = Instant::now().duration_since(start).as_secs_f64();
    let stalled = args.consumers > 0 && shared.received.get() < expected;
    if stalled {
        eprintln!(
            "warning: {} deliveries did not arrive within {DRAIN_TIMEOUT:?} after the window; {}",
            expected - shared.received.get(),
            queue_state(&admin_ch, &topology.queues).await
        );
    }
    stop.cancel();
    let mut latency = Histogram::new();
    let mut outcomes = Vec::new();
    for t in consumer_tasks {
        let outcome = t.await.context("consumer task")??;
        latency.merge(&outcome.latency);
        outcomes.push(outcome);
    }
    if stalled && outcomes.len() == 1 && args.size >= 16 {
        let o = &outcomes[0];
        for (p, (last, skipped)) in o.last_seq.iter().zip(&o.skipped).enumerate() {
            eprintln!(
                "warning: producer {p}: last sequence number received {last}, {skipped} skipped \
                 over mid-stream{}",
                match o.first_skip {
                    Some((fp, after)) if fp == p as u64 => format!(" (first gap after {after})"),
                    _ => String::new(),
                }
            );
        }
    }
    let received_total = shared.received.get();

    for c in consumers {
        let _ =
            c.ch.basic_cancel(c.tag.as_str().into(), BasicCancelOptions::default())
                .await;
        let _ = c.conn.close(200, "bye".into()).await;
    }
    drop(producer_keep);
    for conn in producer_conns {
        let _ = conn.close(200, "bye".into()).await;
    }
    if stalled {
        // Closing the consumers requeues what the broker still counted as unacked.
        eprintln!(
            "warning: after closing every client but this one, {}",
            queue_state(&admin_ch, &topology.queues).await
        );
    }
    if !args.keep_queue {
        let _ = topology.delete(&admin_ch).await;
    }
    let _ = admin.close(200, "bye".into()).await;

    let report = Report {
        args: &args,
        topology: &topology,
        window,
        elapsed,
        sent: sent_in_window,
        received: received_in_window,
        sent_total,
        received_total,
        nacked: shared.nacked.get(),
        first_received: shared
            .first_received
            .get()
            .map(|&(at, unix_ms)| (at.saturating_duration_since(start), unix_ms)),
        broker_cpu: broker_cpu0.zip(broker_cpu1).map(|(a, b)| b - a),
        client_cpu,
        machine_cpu,
        latency,
    };
    report.print();
    Ok(())
}

/// The queues (and exchange) a run publishes to and consumes from.
struct Topology {
    /// `""`: the default exchange.
    exchange: String,
    exchange_kind: ExchangeKind,
    queues: Vec<String>,
    /// Of every publish, and of every binding to `exchange`.
    routing_key: String,
}

impl Topology {
    fn from_args(args: &Args) -> anyhow::Result<Self> {
        let mut queues: Vec<String> = args
            .queues
            .iter()
            .filter(|q| !q.is_empty())
            .cloned()
            .collect();
        if queues.is_empty() {
            queues.push(
                args.queue
                    .clone()
                    .unwrap_or_else(|| format!("perf-{}-{}", std::process::id(), now_nanos())),
            );
        }
        let exchange = args.exchange.clone().unwrap_or_default();
        let routing_key = match (exchange.is_empty(), queues.as_slice()) {
            (true, [queue]) => queue.clone(),
            (true, _) => bail!(
                "--queues with more than one queue needs --exchange (the default exchange routes \
                 each message to one queue)"
            ),
            (false, _) => BINDING_KEY.to_string(),
        };
        let exchange_kind = match args.exchange_type.as_str() {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            other => ExchangeKind::Custom(other.to_string()),
        };
        Ok(Self {
            exchange,
            exchange_kind,
            queues,
            routing_key,
        })
    }

    /// For the human-readable report.
    fn describe(&self) -> String {
        let queues = self.queues.join(", ");
        if self.exchange.is_empty() {
            queues
        } else {
            format!("{queues} (bound to '{}')", self.exchange)
        }
    }

    /// Deliveries per published message.
    fn fanout(&self) -> u64 {
        self.queues.len() as u64
    }

    /// Deletes old queues and exchange of these names, declares them fresh and binds them.
    async fn declare(
        &self,
        ch: &Channel,
        durable: bool,
        queue_args: &[String],
    ) -> anyhow::Result<()> {
        self.delete(ch).await.context("deleting old ones")?;
        if !self.exchange.is_empty() {
            ch.exchange_declare(
                self.exchange.as_str().into(),
                self.exchange_kind.clone(),
                ExchangeDeclareOptions {
                    durable,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("declaring the exchange '{}'", self.exchange))?;
        }
        for queue in &self.queues {
            ch.queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable,
                    ..QueueDeclareOptions::default()
                },
                queue_arguments(queue_args)?,
            )
            .await
            .with_context(|| format!("declaring the queue '{queue}'"))?;
            if !self.exchange.is_empty() {
                ch.queue_bind(
                    queue.as_str().into(),
                    self.exchange.as_str().into(),
                    self.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("binding '{queue}' to '{}'", self.exchange))?;
            }
        }
        Ok(())
    }

    /// Deletes the queues and the exchange (missing ones are fine).
    async fn delete(&self, ch: &Channel) -> anyhow::Result<()> {
        for queue in &self.queues {
            ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .with_context(|| format!("deleting the queue '{queue}'"))?;
        }
        if !self.exchange.is_empty() {
            ch.exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .with_context(|| format!("deleting the exchange '{}'", self.exchange))?;
        }
        Ok(())
    }

    /// Messages ready in all the queues (passive declares).
    async fn ready_messages(&self, ch: &Channel) -> anyhow::Result<u64> {
        let mut n = 0;
        for queue in &self.queues {
            let q = ch
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("no queue '{queue}' to drain"))?;
            n += u64::from(q.message_count());
        }
        Ok(n)
    }
}

/// What passive declares say about the queues, for diagnostics.
async fn queue_state(ch: &Channel, queues: &[String]) -> String {
    let mut states = Vec::new();
    for queue in queues {
        let seen = ch
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        states.push(match seen {
            Ok(q) => format!(
                "the broker reports {} ready messages and {} consumers in '{queue}'",
                q.message_count(),
                q.consumer_count()
            ),
            Err(e) => format!("passive queue.declare of '{queue}' failed: {e}"),
        });
    }
    states.join("; ")
}

struct PublishCfg {
    /// Producer index (stamped into bodies with the sequence number).
    id: u64,
    exchange: ShortString,
    routing_key: ShortString,
    size: usize,
    rate: u64,
    confirm: Option<u64>,
    persistent: bool,
    priorities: u8,
    max_backlog: u64,
    /// Deliveries per publish (for `max_backlog`).
    fanout: u64,
    /// Publish exactly this many messages.
    count: Option<u64>,
    start: Instant,
    /// End of the window; `None` with `count`.
    end: Option<Instant>,
}
/// `KEY=VALUE` pairs as a field table (integers as long, the rest as strings).
fn queue_arguments(pairs: &[String]) -> anyhow::Result<FieldTable> {
    let mut t = FieldTable::default();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--queue-arg {p}: expected KEY=VALUE"))?;
        let value = match v.parse::<i64>() {
            Ok(n) => lapin::types::AMQPValue::LongLongInt(n),
            Err(_) => lapin::types::AMQPValue::LongString(v.into()),
        };
        t.insert(k.into(), value);
    }
    Ok(t)
}

type Pending = Pin<Box<dyn Future<Output = lapin::Result<PublisherConfirm>> + Send>>;
/// A publish and then its confirm; `true` if the broker nacked it.
type Confirming = Pin<Box<dyn Future<Output = lapin::Result<bool>> + Send>>;

fn with_priority(props: &BasicProperties, priorities: u8, n: u64) -> BasicProperties {
    if priorities == 0 {
        props.clone()
    } else {
        props
            .clone()
            .with_priority((n % u64::from(priorities)) as u8)
    }
}

async fn publish(ch: Channel, cfg: PublishCfg, shared: Arc<Shared>) -> anyhow::Result<()> {
    let props = if cfg.persistent {
        BasicProperties::default().with_delivery_mode(2)
    } else {
        BasicProperties::default()
    };
    let opts = BasicPublishOptions::default();
    let exchange = cfg.exchange.clone();
    let mut body = vec![0u8; cfg.size];
    let mut checkpoints: VecDeque<Pending> = VecDeque::with_capacity(MAX_CHECKPOINTS + 1);
    let mut confirms: VecDeque<Confirming> = VecDeque::new();
    let mut n: u64 = 0;
    loop {
        let now = Instant::now();
        if cfg.end.is_some_and(|end| now >= end) || cfg.count.is_some_and(|c| n >= c) {
            break;
        }
        let mut quota = TURN;
        if let Some(c) = cfg.count {
            quota = quota.min(c - n);
        }
        if cfg.rate > 0 {
            let elapsed = now.duration_since(cfg.start).as_secs_f64();
            let due = (elapsed * cfg.rate as f64) as u64 + 1;
            if due <= n {
                let next = cfg.start + Duration::from_secs_f64(n as f64 / cfg.rate as f64);
                tokio::time::sleep_until(cfg.end.map_or(next, |end| next.min(end))).await;
                continue;
            }
            quota = quota.min(due - n);
        }
        if cfg.max_backlog > 0
            && shared
                .sent
                .get()
                .saturating_sub(shared.received.get() / cfg.fanout)
                > cfg.max_backlog
        {
            tokio::time::sleep(Duration::from_micros(200)).await;
            continue;
        }
        for _ in 0..quota {
            body[..8].copy_from_slice(&now_nanos().to_le_bytes());
            n += 1;
            if let Some(seq) = body.get_mut(8..16) {
                seq.copy_from_slice(&((cfg.id << SEQ_BITS) | n).to_le_bytes());
            }
            if let Some(max_unconfirmed) = cfg.confirm {
                while confirms.len() as u64 >= max_unconfirmed {
                    if let Some(c) = confirms.pop_front()
                        && c.await?
                    {
                        shared.nacked.add(1);
                    }
                }
                let (c, b, rk, pr, ex) = (
                    ch.clone(),
                    body.clone(),
                    cfg.routing_key.clone(),
                    with_priority(&props, cfg.priorities, n),
                    exchange.clone(),
                );
                let mut fut: Confirming = Box::pin(async move {
                    Ok(c.basic_publish(ex, rk, opts, &b, pr)
                        .await?
                        .await?
                        .is_nack())
                });
                match poll_once(fut.as_mut()).await {
                    Some(nacked) => {
                        if nacked? {
                            shared.nacked.add(1);
                        }
                    }
                    None => confirms.push_back(fut),
                }
            } else if n.is_multiple_of(CHECKPOINT) || cfg.count == Some(n) {
                // Keep this publish (and the last of a count) (it owns a copy of the body) and await it later.
                let (c, b, rk, pr, ex) = (
                    ch.clone(),
                    body.clone(),
                    cfg.routing_key.clone(),
                    with_priority(&props, cfg.priorities, n),
                    exchange.clone(),
                );
                let mut fut: Pending =
                    Box::pin(async move { c.basic_publish(ex, rk, opts, &b, pr).await });
                match poll_once(fut.as_mut()).await {
                    Some(r) => drop(r?),
                    None => checkpoints.push_back(fut),
                }
                while checkpoints.len() > MAX_CHECKPOINTS {
                    if let Some(f) = checkpoints.pop_front() {
                        drop(f.await?);
                    }
                }
            } else {
                // The frames are queued on this first poll; dropping the future afterwards
                // only gives up waiting for lapin to write them.
                if let Some(r) = poll_once(ch.basic_publish(
                    exchange.clone(),
                    cfg.routing_key.clone(),
                    opts,
                    &body,
                    with_priority(&props, cfg.priorities, n),
                ))
                .await
                {
                    drop(r?);
                }
            }
            shared.sent.add(1);
        }
        tokio::task::yield_now().await;
    }
    if cfg.confirm.is_none() && n > 0 && cfg.count.is_none() {
        // One last kept publish: once lapin has written it, it has written every earlier one.
        // (Publishes still queued in lapin when the last handle of their channel is dropped
        // are lost: the channel's close frame overtakes them.)
        body[..8].copy_from_slice(&now_nanos().to_le_bytes());
        n += 1;
        if let Some(seq) = body.get_mut(8..16) {
            seq.copy_from_slice(&((cfg.id << SEQ_BITS) | n).to_le_bytes());
        }
        let (c, b, rk, pr, ex) = (
            ch.clone(),
            body.clone(),
            cfg.routing_key.clone(),
            with_priority(&props, cfg.priorities, n),
            exchange.clone(),
        );
        checkpoints.push_back(Box::pin(async move {
            c.basic_publish(ex, rk, opts, &b, pr).await
        }));
        shared.sent.add(1);
    }
    for f in checkpoints {
        drop(f.await?);
    }
    for c in confirms {
        if c.await? {
            shared.nacked.add(1);
        }
    }
    Ok(())
}

struct ConsumeCfg {
    producers: usize,
    autoack: bool,
    ack_every: u64,
}

async fn consume(
    ch: Channel,
    mut consumer: lapin::Consumer,
    cfg: ConsumeCfg,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> anyhow::Result<ConsumerOutcome> {
    let mut latency = Histogram::new();
    let mut last_seq = vec![0u64; cfg.producers];
    let mut skipped = vec![0u64; cfg.producers];
    let mut first_skip = None;
    let mut unacked: u64 = 0;
    let mut last_tag: u64 = 0;
    loop {
        let first = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            d = consumer.next() => d,
        };
        let Some(first) = first else { break };
        shared
            .first_received
            .get_or_init(|| (Instant::now(), unix_millis()));
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(d) = next {
            let d = d.context("consumer")?;
            // A drain's bodies were stamped by another process's clock.
            if let Some(stamp) = d.data.get(..8).filter(|_| cfg.producers > 0) {
                let mut b = [0u8; 8];
                b.copy_from_slice(stamp);
                latency.record(now_nanos().saturating_sub(u64::from_le_bytes(b)));
            }
            if let Some(seq) = d.data.get(8..16) {
                let mut b = [0u8; 8];
                b.copy_from_slice(seq);
                let v = u64::from_le_bytes(b);
                let (p, n) = ((v >> SEQ_BITS) as usize, v & ((1 << SEQ_BITS) - 1));
                if let (Some(last), Some(skip)) = (last_seq.get_mut(p), skipped.get_mut(p)) {
                    if n > *last + 1 {
                        *skip += n - *last - 1;
                        first_skip.get_or_insert((p as u64, *last));
                    }
                    *last = (*last).max(n);
                }
            }
            shared.received.add(1);
            taken += 1;
            if !cfg.autoack {
                last_tag = d.delivery_tag;
                unacked += 1;
                if cfg.ack_every > 0 && unacked >= cfg.ack_every {
                    ack(&ch, last_tag, cfg.ack_every > 1).await?;
                    unacked = 0;
                }
            }
            next = if taken < DRAIN {
                poll_once(consumer.next()).await.flatten()
            } else {
                None
            };
        }
        if !cfg.autoack && cfg.ack_every == 0 && unacked > 0 {
            ack(&ch, last_tag, true).await?;
            unacked = 0;
        }
    }
    Ok(ConsumerOutcome {
        latency,
        last_seq,
        skipped,
        first_skip,
    })
}

/// Queues a `basic.ack` without waiting for lapin to write it.
async fn ack(ch: &Channel, tag: u64, multiple: bool) -> anyhow::Result<()> {
    if let Some(r) = poll_once(ch.basic_ack(tag, BasicAckOptions { multiple })).await {
        r?;
    }
    Ok(())
}

struct Report<'a> {
    args: &'a Args,
    topology: &'a Topology,
    window: f64,
    /// From the start of the window until the consumers had everything or gave up (the
    /// broker's work for the run, for rates of its own counters).
    elapsed: f64,
    sent: u64,
    received: u64,
    sent_total: u64,
    received_total: u64,
    nacked: u64,
    /// Since the start of the window, and as Unix time in ms.
    first_received: Option<(Duration, u128)>,
    broker_cpu: Option<f64>,
    client_cpu: f64,
    /// CPU seconds used by everything on the machine during the window.
    machine_cpu: f64,
    latency: Histogram,
}

impl Report<'_> {
    fn print(&self) {
        use std::io::Write as _;
        let mut text = String::new();
        self.render(&mut text);
        // A closed stdout (e.g. piped into `head`) is not an error worth a panic.
        let _ = std::io::stdout().write_all(text.as_bytes());
    }

    fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let a = self.args;
        let us = |ns: u64| ns as f64 / 1000.0;
        let sent_rate = self.sent as f64 / self.window;
        let recv_rate = self.received as f64 / self.window;
        // Each message costs the broker an inbound and an outbound half (its deliveries, when
        // it goes to several queues); when the two rates differ (the queue grows or drains)
        // divide by their mean. A pure fill or drain counts the messages of its one side.
        let fanout = self.topology.fanout();
        let (sent, received) = (self.sent as f64, self.received as f64 / fanout as f64);
        let handled = match (self.sent, self.received) {
            (0, _) => received,
            (_, 0) => sent,
            _ => (sent + received) / 2.0,
        };
        let cpu_per_msg = self.broker_cpu.map(|c| {
            if handled > 0.0 {
                c * 1e6 / handled
            } else {
                0.0
            }
        });
        let h = &self.latency;
        let opt = |v: Option<f64>, prec: usize| match v {
            Some(v) => format!("{v:.prec$}"),
            None => "na".to_string(),
        };
        let label = if a.label.is_empty() { "-" } else { &a.label };
        let _ = writeln!(
            out,
            "RESULT label={label} producers={} consumers={} size={} autoack={} prefetch={} \
             multi_ack_every={} confirm={} persistent={} rate={} duration_s={:.2} sent={} \
             received={} sent_rate={:.0} recv_rate={:.0} backlog_end={} lat_n={} lat_p50_us={:.1} \
             lat_p95_us={:.1} lat_p99_us={:.1} lat_max_us={:.1} broker_cpu_s={} \
             broker_cpu_pct={} broker_cpu_us_per_msg={} client_cpu_s={:.2} other_cpu_s={:.2} \
             cores={} nacked={} queues={} exchange={} count={} sent_total={} received_total={} \
             elapsed_s={:.2} first_recv_ms={} first_recv_unix_ms={}",
            a.producers,
            a.consumers,
            a.size,
            a.autoack,
            a.prefetch,
            a.multi_ack_every,
            a.confirm.unwrap_or(0),
            a.persistent,
            a.rate,
            self.window,
            self.sent,
            self.received,
            sent_rate,
            recv_rate,
            (self.sent_total * fanout).saturating_sub(self.received_total),
            h.len(),
            us(h.quantile(0.5)),
            us(h.quantile(0.95)),
            us(h.quantile(0.99)),
            us(h.max()),
            opt(self.broker_cpu, 2),
            opt(self.broker_cpu.map(|c| c * 100.0 / self.window), 1),
            opt(cpu_per_msg, 2),
            self.client_cpu,
            self.other_cpu(),
            cores(),
            self.nacked,
            fanout,
            if self.topology.exchange.is_empty() {
                "-"
            } else {
                &self.topology.exchange
            },
            a.count.unwrap_or(0),
            self.sent_total,
            self.received_total,
            self.elapsed,
            opt(self.first_received.map(|f| f.0.as_secs_f64() * 1e3), 1),
            self.first_received
                .map_or_else(|| "na".to_string(), |f| f.1.to_string()),
        );
        let mode = if a.autoack {
            "autoack".to_string()
        } else {
            format!("manual ack, prefetch {}", a.prefetch)
        };
        let rows: Vec<(&str, String)> = vec![
            ("broker", format!("{label} ({})", redact(&a.url))),
            ("queues", self.topology.describe()),
            (
                "load",
                format!(
                    "{}p/{}c{}, {} B, {mode}{}{}{}",
                    a.producers,
                    a.consumers,
                    if fanout > 1 { " per queue" } else { "" },
                    a.size,
                    a.confirm
                        .map(|n| format!(", confirm {n}"))
                        .unwrap_or_default(),
                    if a.persistent { ", persistent" } else { "" },
                    if a.rate > 0 {
                        format!(", {} msg/s per producer", a.rate)
                    } else {
                        String::new()
                    }
                ),
            ),
            ("window", format!("{:.2} s", self.window)),
            (
                "first delivery",
                self.first_received.map_or_else(
                    || "none".to_string(),
                    |f| format!("{:.1} ms into the window", f.0.as_secs_f64() * 1e3),
                ),
            ),
            ("sent", format!("{} ({sent_rate:.0} msg/s)", self.sent)),
            (
                "received",
                format!("{} ({recv_rate:.0} msg/s)", self.received),
            ),
            (
                "latency p50/p95/p99/max",
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} µs ({} samples)",
                    us(h.quantile(0.5)),
                    us(h.quantile(0.95)),
                    us(h.quantile(0.99)),
                    us(h.max()),
                    h.len()
                ),
            ),
            (
                "broker CPU",
                match (self.broker_cpu, cpu_per_msg) {
                    (Some(c), Some(per)) => format!(
                        "{c:.2} s ({:.0} % of one core), {per:.2} µs/msg",
                        c * 100.0 / self.window
                    ),
                    _ => "not measured (pass --broker-pid)".to_string(),
                },
            ),
            (
                "client CPU",
                format!(
                    "{:.2} s ({:.0} % of one core)",
                    self.client_cpu,
                    self.client_cpu * 100.0 / self.window
                ),
            ),
            (
                "other CPU on machine",
                format!(
                    "{:.2} s ({:.0} % of one core; {} cores)",
                    self.other_cpu(),
                    self.other_cpu() * 100.0 / self.window,
                    cores()
                ),
            ),
        ];
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (k, v) in rows {
            let _ = writeln!(out, "  {k:<w$}  {v}");
        }
    }
}

impl Report<'_> {
    /// CPU used during the window by processes other than the broker and this client.
    fn other_cpu(&self) -> f64 {
        (self.machine_cpu - self.client_cpu - self.broker_cpu.unwrap_or(0.0)).max(0.0)
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}
