//! `mgmtbench`: latency of the management API and the Prometheus endpoint with many queues,
//! the same way against our broker and RabbitMQ.
//!
//! Declares `--queues` queues over AMQP (pipelined, `nowait`), waits until the API counts them
//! (RabbitMQ's statistics lag by up to 5 s), then times `--reps` requests of each endpoint
//! and prints one `RESULT` line per endpoint (p50, p95, mean in ms, response bytes). Deletes
//! the queues at the end unless `--keep`.
//!
//!   mgmtbench --amqp amqp://guest:guest@127.0.0.1:5672/%2f --http http://127.0.0.1:15672 \
//!             --metrics http://127.0.0.1:15692 --queues 10000 --label rabbitmq

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

#[derive(Debug, Parser)]
struct Args {
    /// AMQP URL of the broker.
    #[arg(long)]
    amqp: String,
    /// Base URL of its management API.
    #[arg(long)]
    http: String,
    /// Base URL of its Prometheus endpoint (skipped when absent).
    #[arg(long)]
    metrics: Option<String>,
    /// Queues to declare.
    #[arg(long, default_value_t = 10_000)]
    queues: usize,
    /// Requests per endpoint.
    #[arg(long, default_value_t = 30)]
    reps: usize,
    /// Label printed in the RESULT lines.
    #[arg(long, default_value = "broker")]
    label: String,
    /// Management user.
    #[arg(long, default_value = "guest")]
    user: String,
    /// Management password.
    #[arg(long, default_value = "guest")]
    password: String,
    /// Leave the queues in place.
    #[arg(long)]
    keep: bool,
}

const PREFIX: &str = "mgmtbench-";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::new();
    let conn = Connection::connect(&args.amqp, ConnectionProperties::default())
        .await
        .with_context(|| format!("connect to {}", args.amqp))?;
    let ch = conn.create_channel().await?;
    let started = Instant::now();
    for i in 0..args.queues {
        ch.queue_declare(
            format!("{PREFIX}{i:06}").as_str().into(),
            QueueDeclareOptions {
                nowait: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    }
    // A synchronous declare after the nowait ones: when it answers, all are there.
    ch.queue_declare(
        format!("{PREFIX}{:06}", args.queues).as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    eprintln!(
        "{}: declared {} queues in {:.1} s",
        args.label,
        args.queues + 1,
        started.elapsed().as_secs_f64()
    );
    wait_for_count(&http, &args).await?;

    let mut endpoints = vec![
        (
            "queues page",
            format!("{}/api/queues?page=1&page_size=100", args.http),
        ),
        ("overview", format!("{}/api/overview", args.http)),
    ];
    if let Some(m) = &args.metrics {
        endpoints.push(("metrics per-object", format!("{m}/metrics/per-object")));
        endpoints.push(("metrics aggregated", format!("{m}/metrics")));
    }
    for (name, url) in endpoints {
        let mut times = Vec::with_capacity(args.reps);
        let mut bytes = 0;
        for _ in 0..args.reps {
            let t = Instant::now();
            let resp = http
                .get(&url)
                .basic_auth(&args.user, Some(&args.password))
                .send()
                .await?;
            if !resp.status().is_success() {
                bail!("{url}: {}", resp.status());
            }
            bytes = resp.bytes().await?.len();
            times.push(t.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
        println!(
            "RESULT label={} endpoint=\"{name}\" queues={} p50_ms={:.2} p95_ms={:.2} mean_ms={:.2} bytes={bytes}",
            args.label,
            args.queues + 1,
            ms(times[times.len() / 2]),
            ms(times[(times.len() * 95 / 100).min(times.len() - 1)]),
            mean
        );
    }

    if !args.keep {
        for i in 0..=args.queues {
            ch.queue_delete(
                format!("{PREFIX}{i:06}").as_str().into(),
                QueueDeleteOptions {
                    nowait: true,
                    ..QueueDeleteOptions::default()
                },
            )
            .await?;
        }
        // Answered once every delete before it is done.
        ch.queue_delete(
            format!("{PREFIX}{:06}", args.queues).as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await?;
    }
    conn.close(200, "done".into()).await?;
    Ok(())
}

/// Waits (up to a minute) until the API lists every queue we declared.
async fn wait_for_count(http: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let url = format!(
        "{}/api/queues?page=1&page_size=1&name={PREFIX}&columns=name",
        args.http
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: serde_json::Value = http
            .get(&url)
            .basic_auth(&args.user, Some(&args.password))
            .send()
            .await?
            .json()
            .await?;
        let n = v["filtered_count"].as_u64().unwrap_or(0) as usize;
        if n > args.queues {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the API lists {n} of {} queues after a minute",
                args.queues + 1
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
