//! `consumer`: prints every event published to an exchange (the course document's generic
//! `consumer.py`), for debugging.
//!
//! Binds a temporary, exclusive, server-named queue to the exchange, so it sees every sale
//! without taking any away from the email and loyalty queues. The queue disappears when the
//! program stops; events published while it is disconnected are not seen.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clients::connection::{ConnectError, ConnectOptions, connect};
use clients::settings::{BrokerArgs, TopologyArgs};
use clients::{SaleCompleted, exit, runtime};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Print every event published to the sales exchange.
#[derive(Parser, Debug)]
#[command(name = "consumer", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    broker: BrokerArgs,

    #[command(flatten)]
    topology: TopologyArgs,

    /// Print each event as one line of JSON, exactly as received.
    #[arg(long)]
    json: bool,

    /// Binding key (ignored by fanout exchanges; `#` taps everything on a topic exchange).
    #[arg(long, default_value = "")]
    binding_key: String,

    /// Do not declare anything: bind to an exchange that already exists, of any type.
    #[arg(long)]
    no_declare: bool,

    /// Unacknowledged deliveries in flight.
    #[arg(long, default_value_t = 50)]
    prefetch: u16,

    /// Stop after printing this many events.
    #[arg(long)]
    max: Option<u64>,
}

const AFTER_HELP: &str = "\
Output: one line per event on stdout; invalid events are logged on stderr with their raw body.
Exit codes: 0 stopped by SIGINT/SIGTERM (or after --max), 69 broker unreachable, 78 topology
conflict or access refused.";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::init_logging();
    match run(cli).await {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            error!("{e:#}");
            exit::code_for(e.as_ref())
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let topology = cli.topology.topology()?;
    let opts = ConnectOptions::new(
        &cli.broker.amqp_url,
        &format!("consumer (pid {})", std::process::id()),
        cli.broker.connect_timeout.filter(|d| !d.is_zero()),
    );
    let shutdown = runtime::shutdown_on_signals();
    let mut printed = 0u64;
    loop {
        let conn = match connect(&opts, &shutdown).await {
            Ok(conn) => conn,
            Err(ConnectError::Cancelled) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let result = tap(&conn, &cli, &topology, &shutdown, &mut printed).await;
        let _ = conn.close(200, "consumer done".into()).await;
        match result {
            Ok(()) => return Ok(()),
            Err(TapError::Topology(e)) if e.is_fatal() => return Err(e.into()),
            Err(e) => warn!(error = %e, "connection lost; reconnecting with a new temporary queue"),
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum TapError {
    #[error(transparent)]
    Topology(#[from] clients::topology::TopologyError),
    #[error("{0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker cancelled the consumer")]
    Cancelled,
}

async fn tap(
    conn: &lapin::Connection,
    cli: &Cli,
    topology: &clients::topology::Topology,
    shutdown: &CancellationToken,
    printed: &mut u64,
) -> Result<(), TapError> {
    let channel = conn.create_channel().await?;
    if !cli.no_declare {
        topology.declare(&channel).await?;
    }
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            topology.exchange.as_str().into(),
            cli.binding_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .basic_qos(cli.prefetch.max(1), BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    info!(exchange = %topology.exchange, queue = %queue.name(), "listening");
    // Tests and scripts wait for this line before publishing.
    eprintln!("listening on exchange '{}'", topology.exchange);
    loop {
        if cli.max.is_some_and(|max| *printed >= max) {
            return Ok(());
        }
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(TapError::Cancelled),
        };
        match SaleCompleted::from_json(&delivery.data) {
            Ok(sale) => {
                let line = if cli.json {
                    String::from_utf8_lossy(&delivery.data).replace('\n', " ")
                } else {
                    sale.to_string()
                };
                let mut out = std::io::stdout().lock();
                // A closed stdout (e.g. `| head`) ends the program like a signal would.
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return Ok(());
                }
            }
            Err(e) => warn!(
                error = %e,
                body = %String::from_utf8_lossy(&delivery.data),
                "not a valid sale_completed event"
            ),
        }
        *printed += 1;
        delivery.acker.ack(BasicAckOptions::default()).await?;
    }
}
