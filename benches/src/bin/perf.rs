//! `perf`: a load tool in the spirit of RabbitMQ's PerfTest, built on lapin, that runs the same
//! way against our broker and a real RabbitMQ.
//!
//! Producers publish to a fresh queue through the default exchange; consumers consume from it.
//! Every body starts with the send time (8 bytes, nanoseconds on this process's monotonic
//! clock), so consumers measure end-to-end latency; bodies of 16 bytes or more then carry the
//! producer's index and a sequence number, so a lone consumer can tell lost messages from late
//! ones (reported when messages are missing after the run). With `--broker-pid` the broker's CPU time
//! (utime + stime from /proc) is read before and after the measured window, which gives its
//! CPU cost per message: on a small machine the load client is usually the throughput limit,
//! so that is the figure that shows the broker's own cost.
//!
//! Output: progress per second on stderr, then one `key=value` summary line starting with
//! `RESULT` and a human-readable table on stdout.
//!
//! ```text
//! perf --url amqp://guest:guest@127.0.0.1:5673/%2f --size 1024 --prefetch 1000 \
//!      --duration 10 --max-backlog 10000 --broker-pid "$(pgrep -f 'broker --port 5673')"
//! ```
//!
//! Client efficiency (the client is the bottleneck on 2 cores):
//! - publishes are not awaited one by one. lapin's `basic_publish` queues the frames on its first
//!   poll and then only waits for its I/O loop to write them; we poll it once and drop it,
//!   so lapin writes many messages per syscall. Every `CHECKPOINT` messages one publish is kept
//!   and awaited later, which bounds what lapin buffers. (With `--confirm`, each publish is
//!   awaited to get its confirm future, and at most N confirms are outstanding.)
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
use std::time::Duration;

use anyhow::{Context, bail};
use benches::cpu::{cpu_seconds, machine_busy_seconds};
use benches::histogram::Histogram;
use clap::Parser;
use futures_lite::StreamExt;
use futures_lite::future::poll_once;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};
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

/// Load test for AMQP 0-9-1 brokers (RabbitMQ PerfTest-like).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Broker URI.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// Producer connections (one channel each).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumer connections (one channel, one consumer each).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Body size in bytes (at least 8: the send timestamp).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(8..))]
    size: u32,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
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
    /// Publish with delivery_mode=2 (and declare the queue durable).
    #[arg(long)]
    persistent: bool,
    /// Queue name (deleted first if it exists, declared fresh, deleted at the end).
    #[arg(long)]
    queue: Option<String>,
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
}

/// The monotonic clock whose readings are stamped into bodies.
fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn now_nanos() -> u64 {
    epoch().elapsed().as_nanos() as u64
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

async fn run(args: Args) -> anyhow::Result<()> {
    if !args.duration.is_finite() || args.duration <= 0.0 {
        bail!("--duration must be positive");
    }
    if args.producers == 0 && args.consumers == 0 {
        bail!("nothing to do: no producers and no consumers");
    }
    let queue = args
        .queue
        .clone()
        .unwrap_or_else(|| format!("perf-{}-{}", std::process::id(), now_nanos()));

    // A fresh queue.
    let admin = connect(&args.url, "perf-admin").await?;
    let admin_ch = admin.create_channel().await?;
    admin_ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .context("deleting an old queue of that name")?;
    admin_ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: args.persistent,
                ..QueueDeclareOptions::default()
            },
            queue_arguments(&args.queue_args)?,
        )
        .await
        .context("declaring the queue")?;

    let shared = Arc::new(Shared::default());
    let stop = CancellationToken::new();

    // Consumers first, so nothing is published before someone listens.
    let mut consumer_conns = Vec::new();
    let mut consumer_tasks = Vec::new();
    for i in 0..args.consumers {
        let conn = connect(&args.url, &format!("perf-consumer-{i}")).await?;
        let ch = conn.create_channel().await?;
        if !args.autoack && args.prefetch > 0 {
            ch.basic_qos(args.prefetch, BasicQosOptions::default())
                .await?;
        }
        let tag = format!("perf-consumer-{i}");
        let consumer = ch
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions {
                    no_ack: args.autoack,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let mut ack_every = args.multi_ack_every;
        if args.prefetch > 0 && ack_every > u64::from(args.prefetch) {
            // Never wait for more deliveries than the prefetch window lets through.
            ack_every = u64::from(args.prefetch).div_ceil(2);
        }
        let cfg = ConsumeCfg {
            producers: args.producers,
            autoack: args.autoack,
            ack_every,
        };
        consumer_tasks.push(tokio::spawn(consume(
            ch.clone(),
            consumer,
            cfg,
            Arc::clone(&shared),
            stop.clone(),
        )));
        consumer_conns.push((conn, ch, tag));
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
    let mut producer_tasks = Vec::new();
    // Held until the end: dropping a channel's last handle closes it.
    let producer_keep = producer_channels.clone();
    for (id, ch) in producer_channels.into_iter().enumerate() {
        let cfg = PublishCfg {
            id: id as u64,
            routing_key: queue.as_str().into(),
            size: args.size as usize,
            rate: args.rate,
            confirm: args.confirm,
            persistent: args.persistent,
            priorities: args.priorities,
            max_backlog: args.max_backlog,
            start,
            end,
        };
        producer_tasks.push(tokio::spawn(publish(ch, cfg, Arc::clone(&shared))));
    }

    let mut last = (start, 0u64, 0u64);
    let mut tick = start;
    while tick < end {
        tick = (tick + Duration::from_secs(1)).min(end);
        tokio::time::sleep_until(tick).await;
        if !args.quiet {
            let now = Instant::now();
            let (s, r) = (shared.sent.get(), shared.received.get());
            let dt = now.duration_since(last.0).as_secs_f64().max(1e-9);
            eprintln!(
                "time {:5.1}s  sent {:>9.0} msg/s  received {:>9.0} msg/s  backlog {}",
                now.duration_since(start).as_secs_f64(),
                (s - last.1) as f64 / dt,
                (r - last.2) as f64 / dt,
                s.saturating_sub(r),
            );
            last = (now, s, r);
        }
    }
    let window = Instant::now().duration_since(start).as_secs_f64();
    let sent_in_window = shared.sent.get();
    let received_in_window = shared.received.get();
    let broker_cpu1 = broker_pid.as_deref().map(cpu_seconds).transpose()?;
    let client_cpu = cpu_seconds("self")? - client_cpu0;
    let machine_cpu = machine_busy_seconds()? - machine0;

    for t in producer_tasks {
        t.await.context("producer task")??;
    }
    let sent_total = shared.sent.get();
    // Let consumers take what is still queued (their latencies count too).
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    while args.consumers > 0
        && shared.received.get() < sent_total
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stalled = args.consumers > 0 && shared.received.get() < sent_total;
    if stalled {
        eprintln!(
            "warning: {} messages were not received within {DRAIN_TIMEOUT:?} after the window; {}",
            sent_total - shared.received.get(),
            queue_state(&admin_ch, &queue).await
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
    if stalled && args.consumers == 1 && args.size >= 16 {
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

    for (conn, ch, tag) in consumer_conns {
        let _ = ch
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
        let _ = conn.close(200, "bye".into()).await;
    }
    drop(producer_keep);
    for conn in producer_conns {
        let _ = conn.close(200, "bye".into()).await;
    }
    if stalled {
        // Closing the consumers requeues what the broker still counted as unacked.
        eprintln!(
            "warning: after closing every client but this one, {}",
            queue_state(&admin_ch, &queue).await
        );
    }
    let _ = admin_ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = admin.close(200, "bye".into()).await;

    let report = Report {
        args: &args,
        queue: &queue,
        window,
        sent: sent_in_window,
        received: received_in_window,
        sent_total,
        received_total,
        nacked: shared.nacked.get(),
        broker_cpu: broker_cpu0.zip(broker_cpu1).map(|(a, b)| b - a),
        client_cpu,
        machine_cpu,
        latency,
    };
    report.print();
    Ok(())
}

/// What a passive declare says about the queue, for diagnostics.
async fn queue_state(ch: &Channel, queue: &str) -> String {
    let seen = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match seen {
        Ok(q) => format!(
            "the broker reports {} ready messages and {} consumers",
            q.message_count(),
            q.consumer_count()
        ),
        Err(e) => format!("passive queue.declare failed: {e}"),
    }
}

struct PublishCfg {
    /// Producer index (stamped into bodies with the sequence number).
    id: u64,
    routing_key: ShortString,
    size: usize,
    rate: u64,
    confirm: Option<u64>,
    persistent: bool,
    priorities: u8,
    max_backlog: u64,
    start: Instant,
    end: Instant,
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
    let exchange = ShortString::from("");
    let mut body = vec![0u8; cfg.size];
    let mut checkpoints: VecDeque<Pending> = VecDeque::with_capacity(MAX_CHECKPOINTS + 1);
    let mut confirms: VecDeque<PublisherConfirm> = VecDeque::new();
    let mut n: u64 = 0;
    loop {
        let now = Instant::now();
        if now >= cfg.end {
            break;
        }
        let mut quota = TURN;
        if cfg.rate > 0 {
            let elapsed = now.duration_since(cfg.start).as_secs_f64();
            let due = (elapsed * cfg.rate as f64) as u64 + 1;
            if due <= n {
                let next = cfg.start + Duration::from_secs_f64(n as f64 / cfg.rate as f64);
                tokio::time::sleep_until(next.min(cfg.end)).await;
                continue;
            }
            quota = quota.min(due - n);
        }
        if cfg.max_backlog > 0
            && shared.sent.get().saturating_sub(shared.received.get()) > cfg.max_backlog
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
                        && c.await?.is_nack()
                    {
                        shared.nacked.add(1);
                    }
                }
                let confirm = ch
                    .basic_publish(
                        exchange.clone(),
                        cfg.routing_key.clone(),
                        opts,
                        &body,
                        with_priority(&props, cfg.priorities, n),
                    )
                    .await?;
                confirms.push_back(confirm);
            } else if n.is_multiple_of(CHECKPOINT) {
                // Keep this publish (it owns a copy of the body) and await it later.
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
    if cfg.confirm.is_none() && n > 0 {
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
        if c.await?.is_nack() {
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
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(d) = next {
            let d = d.context("consumer")?;
            if let Some(stamp) = d.data.get(..8) {
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
    queue: &'a str,
    window: f64,
    sent: u64,
    received: u64,
    sent_total: u64,
    received_total: u64,
    nacked: u64,
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
        // Each message costs the broker an inbound and an outbound half; when the two rates
        // differ (the queue grows or drains) divide by their mean.
        let handled = (self.sent + self.received) as f64 / 2.0;
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
             cores={} nacked={}",
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
            self.sent_total.saturating_sub(self.received_total),
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
        );
        let mode = if a.autoack {
            "autoack".to_string()
        } else {
            format!("manual ack, prefetch {}", a.prefetch)
        };
        let rows: Vec<(&str, String)> = vec![
            ("broker", format!("{label} ({})", redact(&a.url))),
            ("queue", self.queue.to_string()),
            (
                "load",
                format!(
                    "{}p/{}c, {} B, {mode}{}{}{}",
                    a.producers,
                    a.consumers,
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
