//! End to end over loopback: an in-process broker (`broker::run` on 127.0.0.1:0, on its own
//! runtime thread as the parity tests start it) and lapin clients. One iteration publishes a
//! batch of 10,000 messages of 1 KiB to a queue and consumes all of them (auto-ack, and manual
//! ack with prefetch 1000); criterion reports the batch time and messages per second.
//!
//! The client uses the same techniques as the `perf` tool: publishes are queued without
//! waiting for each write, and manual acks are sent once per batch of ready deliveries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_lite::StreamExt;
use futures_lite::future::poll_once;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use tokio_util::sync::CancellationToken;

const BATCH: u64 = 10_000;
const SIZE: usize = 1024;
/// A publish is awaited every this many, bounding lapin's send queue.
const CHECKPOINT: u64 = 256;

/// Starts the broker on a dedicated 2-worker runtime thread; returns its AMQP URL.
fn start_broker() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("bench-broker".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("broker runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                let data =
                    std::env::temp_dir().join(format!("broker-bench-{}", std::process::id()));
                tx.send(listener.local_addr().expect("local addr"))
                    .expect("report address");
                let config = broker::Config {
                    data_dir: data,
                    ..broker::Config::default()
                };
                broker::run(config, listener, CancellationToken::new())
                    .await
                    .expect("bench broker failed");
            });
        })
        .expect("spawn broker thread");
    let addr = rx.recv().expect("broker started");
    format!("amqp://guest:guest@{addr}/%2f")
}

struct Pair {
    publisher: Channel,
    consumer_channel: Channel,
    consumer: Consumer,
    queue: ShortString,
    _conns: (Connection, Connection),
}

async fn pair(url: &str, queue: &str, prefetch: Option<u16>) -> Pair {
    let pc = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect publisher");
    let cc = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect consumer");
    let publisher = pc.create_channel().await.expect("channel");
    let consumer_channel = cc.create_channel().await.expect("channel");
    consumer_channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    if let Some(n) = prefetch {
        consumer_channel
            .basic_qos(n, BasicQosOptions::default())
            .await
            .expect("qos");
    }
    let consumer = consumer_channel
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions {
                no_ack: prefetch.is_none(),
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    Pair {
        publisher,
        consumer_channel,
        consumer,
        queue: queue.into(),
        _conns: (pc, cc),
    }
}

async fn publish_batch(ch: Channel, queue: ShortString) {
    let body = vec![0x5A; SIZE];
    let opts = BasicPublishOptions::default();
    let props = BasicProperties::default();
    let exchange = ShortString::from("");
    for n in 1..=BATCH {
        let fut = ch.basic_publish(exchange.clone(), queue.clone(), opts, &body, props.clone());
        if n % CHECKPOINT == 0 || n == BATCH {
            fut.await.expect("publish");
        } else if let Some(r) = poll_once(fut).await {
            // Queued on the first poll; dropping the future only stops waiting for the write.
            r.expect("publish");
        }
        if n % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

async fn consume_batch(p: &mut Pair, manual_ack: bool) {
    let mut got = 0;
    while got < BATCH {
        let mut next = Some(p.consumer.next().await.expect("consumer open"));
        let mut last = 0;
        while let Some(d) = next {
            last = d.expect("delivery").delivery_tag;
            got += 1;
            next = if got < BATCH {
                poll_once(p.consumer.next()).await.flatten()
            } else {
                None
            };
        }
        if manual_ack {
            p.consumer_channel
                .basic_ack(last, BasicAckOptions { multiple: true })
                .await
                .expect("ack");
        }
    }
}

fn e2e(c: &mut Criterion) {
    let url = start_broker();
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("client runtime"),
    );
    let mut g = c.benchmark_group("e2e_loopback_1k");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for (name, prefetch) in [("autoack", None), ("ack_prefetch_1000", Some(1000u16))] {
        let mut p = rt.block_on(pair(&url, &format!("bench-e2e-{name}"), prefetch));
        g.bench_function(BenchmarkId::new("publish_consume_10k", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(async {
                        let start = Instant::now();
                        let publisher =
                            tokio::spawn(publish_batch(p.publisher.clone(), p.queue.clone()));
                        consume_batch(&mut p, prefetch.is_some()).await;
                        publisher.await.expect("publisher task");
                        start.elapsed()
                    });
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
