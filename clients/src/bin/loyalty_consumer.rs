//! `loyalty_consumer`: credits loyalty points for every sale (the course document's
//! `loyalty_consumer.py`), and `loyalty_consumer balance EMAIL` prints a customer's points.
//!
//! Consumes `loyalty_points` into a SQLite ledger keyed by sale id, so a redelivered sale is
//! never credited twice. The points rule is documented in `clients::loyalty`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};
use clients::connection::ConnectOptions;
use clients::loyalty::{Credit, Ledger};
use clients::retry::HandlerError;
use clients::settings::{BrokerArgs, ConsumerArgs, TopologyArgs, stall_before_ack_from_env};
use clients::worker::{DeliveryInfo, SaleHandler, WorkerConfig};
use clients::{SaleCompleted, exit, runtime, worker};
use tracing::{error, info};

/// Credit loyalty points for every sale, or print a customer's balance.
#[derive(Parser, Debug)]
#[command(name = "loyalty_consumer", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// SQLite ledger file (created if missing).
    #[arg(long, env = "LOYALTY_DB", default_value = "loyalty.db", global = true)]
    ledger: PathBuf,

    #[command(flatten)]
    broker: BrokerArgs,

    #[command(flatten)]
    topology: TopologyArgs,

    #[command(flatten)]
    consumer: ConsumerArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Consume sales and credit points (what runs without a subcommand).
    Run,
    /// Print the points of a customer.
    Balance {
        /// The customer's email (case-insensitive).
        email: String,
        /// Print only the number.
        #[arg(long, short)]
        quiet: bool,
    },
}

const AFTER_HELP: &str = "\
Points: 1 per whole euro of the sale's total; x1.25 from 100 EUR, x1.5 from 500 EUR (rounded down).
Exit codes: 0 stopped by SIGINT/SIGTERM after finishing the sale in hand, 69 broker unreachable
within --connect-timeout, 78 configuration problem (queue arguments, ledger file).";

/// The ledger behind a mutex so each credit can run on the blocking pool.
struct LoyaltyHandler {
    ledger: Arc<Mutex<Ledger>>,
}

impl SaleHandler for LoyaltyHandler {
    async fn handle(
        &mut self,
        sale: &SaleCompleted,
        delivery: &DeliveryInfo,
    ) -> Result<(), HandlerError> {
        let ledger = Arc::clone(&self.ledger);
        let owned = sale.clone();
        let credit = tokio::task::spawn_blocking(move || {
            let mut ledger = ledger
                .lock()
                .map_err(|_| HandlerError::Transient("ledger lock poisoned".into()))?;
            ledger
                .credit(&owned)
                .map_err(|e| HandlerError::Transient(e.to_string()))
        })
        .await
        .map_err(|e| HandlerError::Transient(format!("ledger task failed: {e}")))??;
        match credit {
            Credit::Applied(points) => info!(
                customer = %sale.customer_email(),
                points,
                redelivered = delivery.redelivered,
                "points credited"
            ),
            Credit::AlreadyCredited(points) => info!(
                customer = %sale.customer_email(),
                points,
                redelivered = delivery.redelivered,
                "sale already credited; not crediting again"
            ),
        }
        Ok(())
    }
}

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
    let ledger = Ledger::open(&cli.ledger)?;
    if let Some(Command::Balance { email, quiet }) = &cli.command {
        let balance = ledger.balance(email)?;
        if *quiet {
            println!("{}", balance.points);
        } else {
            let plural = if balance.sales == 1 { "" } else { "s" };
            println!(
                "{}: {} points from {} sale{plural}",
                email.trim().to_lowercase(),
                balance.points,
                balance.sales
            );
        }
        return Ok(());
    }
    let topology = cli.topology.topology()?;
    let config = WorkerConfig {
        connect: ConnectOptions::new(
            &cli.broker.amqp_url,
            &format!("loyalty_consumer (pid {})", std::process::id()),
            cli.broker.connect_timeout.filter(|d| !d.is_zero()),
        ),
        queue: topology.loyalty_queue.clone(),
        topology,
        prefetch: cli.consumer.prefetch,
        retry: cli.consumer.retry_policy()?,
        stall_before_ack: stall_before_ack_from_env()?,
    };
    info!(ledger = %cli.ledger.display(), "crediting points into the ledger");
    let mut handler = LoyaltyHandler {
        ledger: Arc::new(Mutex::new(ledger)),
    };
    let shutdown = runtime::shutdown_on_signals();
    worker::run(&config, &mut handler, &shutdown).await?;
    Ok(())
}
