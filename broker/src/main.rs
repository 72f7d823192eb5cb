//! `cargo run -p broker`: parses flags (with RabbitMQ's environment variable names as
//! fallbacks), sets up logging, binds the AMQP port and serves until SIGINT or SIGTERM.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// A RabbitMQ-compatible AMQP 0-9-1 broker.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on for AMQP.
    #[arg(long, env = "RABBITMQ_NODE_IP_ADDRESS", default_value = "0.0.0.0")]
    bind: String,
    /// AMQP port.
    #[arg(long, env = "RABBITMQ_NODE_PORT", default_value_t = 5672)]
    port: u16,
    /// User created on first start (a new data directory), with access to the default vhost.
    /// Later starts keep the saved users: changing this, or the password, has no effect then.
    #[arg(long, env = "RABBITMQ_DEFAULT_USER", default_value = "guest")]
    default_user: String,
    /// Password of the default user (only its salted hash is saved).
    #[arg(
        long,
        env = "RABBITMQ_DEFAULT_PASS",
        default_value = "guest",
        hide_env_values = true
    )]
    default_pass: String,
    /// Virtual host created on first start.
    #[arg(long, env = "RABBITMQ_DEFAULT_VHOST", default_value = "/")]
    default_vhost: String,
    /// Directory for durable state (definitions and message store).
    #[arg(long, env = "RABBITMQ_MNESIA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Heartbeat interval offered to clients, in seconds (0 disables).
    #[arg(long, default_value_t = 60)]
    heartbeat: u16,
    /// Largest frame offered to clients, in bytes (at least 8192).
    #[arg(long, default_value_t = 131_072, value_parser = clap::value_parser!(u32).range(8192..))]
    frame_max: u32,
    /// Size of the message-log segment files, in bytes (a segment is deleted once all its
    /// messages are acked; a larger message gets a segment of its own).
    #[arg(long, default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u32).range(4096..))]
    segment_size: u32,
    /// Port of the management HTTP API and web UI, on the same address as AMQP (0 turns it
    /// off).
    #[arg(long, env = "RABBITMQ_MANAGEMENT_PORT", default_value_t = 15672)]
    management_port: u16,
    /// Port of the Prometheus endpoint (`/metrics`), on the same address as AMQP (0 turns
    /// it off).
    #[arg(long, env = "RABBITMQ_PROMETHEUS_PORT", default_value_t = 15692)]
    prometheus_port: u16,
    /// Definitions file (RabbitMQ's JSON export) imported at every start, as RabbitMQ's
    /// `load_definitions`; on a new data directory its users and vhosts replace the default
    /// ones. An invalid file stops the broker and changes nothing.
    #[arg(long, value_name = "FILE")]
    load_definitions: Option<PathBuf>,
    /// The node's name in the management API and metrics (default `rabbit@<hostname>`).
    #[arg(long, env = "RABBITMQ_NODENAME")]
    node_name: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colours only on a terminal: logs redirected to a file stay greppable.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    let config = broker::Config {
        default_user: args.default_user,
        default_pass: args.default_pass,
        default_vhost: args.default_vhost,
        data_dir: args.data_dir,
        heartbeat: args.heartbeat,
        frame_max: args.frame_max,
        segment_size: args.segment_size,
        load_definitions: args.load_definitions,
        node_name: args
            .node_name
            .unwrap_or_else(|| format!("rabbit@{}", hostname())),
        ..broker::Config::default()
    };
    let listener = bind(&args.bind, args.port, "--port").await?;
    info!("AMQP 0-9-1 listening on {}", listener.local_addr()?);
    let management = match args.management_port {
        0 => None,
        port => Some(bind(&args.bind, port, "--management-port").await?),
    };
    if let Some(l) = &management {
        info!("management API and UI on http://{}", l.local_addr()?);
    }
    let prometheus = match args.prometheus_port {
        0 => None,
        port => Some(bind(&args.bind, port, "--prometheus-port").await?),
    };
    if let Some(l) = &prometheus {
        info!("Prometheus metrics on http://{}/metrics", l.local_addr()?);
    }
    let listeners = broker::Listeners {
        amqp: listener,
        management,
        prometheus,
    };
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("signal received, shutting down");
        signal.cancel();
    });
    broker::serve(config, listeners, shutdown).await?;
    info!("stopped");
    Ok(())
}

/// Binds `bind:port`; a port in use is one clear line naming the flag to change.
async fn bind(bind: &str, port: u16, flag: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = format!("{bind}:{port}");
    match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let off = if flag == "--port" {
                String::new()
            } else {
                format!(" ({flag} 0 turns it off)")
            };
            anyhow::bail!(
                "port {port} is in use on {bind}; stop the other broker (RabbitMQ?) or pass {flag}{off}"
            );
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr}")),
    }
}

/// This machine's host name, for the default node name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
