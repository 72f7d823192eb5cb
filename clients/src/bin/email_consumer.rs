//! `email_consumer`: sends a purchase confirmation for every sale (the course document's
//! `email_consumer.py`).
//!
//! Consumes `email_notifications`. With `SMTP_URL` set the email goes out over SMTP; otherwise
//! it is written as `<sale id>.eml` into the outbox folder. A sale is acknowledged only after its
//! email was sent or written; failures are retried through `email_notifications.retry` and
//! parked in `email_notifications.dead` after `--max-attempts`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clients::connection::ConnectOptions;
use clients::email::{Mailer, parse_from};
use clients::retry::HandlerError;
use clients::settings::{
    BrokerArgs, ConsumerArgs, TopologyArgs, parse_duration, redact_url, stall_before_ack_from_env,
};
use clients::worker::{DeliveryInfo, SaleHandler, WorkerConfig};
use clients::{SaleCompleted, exit, runtime, worker};
use lettre::message::Mailbox;
use tracing::{error, info};

/// Send a purchase confirmation email for every sale.
#[derive(Parser, Debug)]
#[command(name = "email_consumer", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    broker: BrokerArgs,

    #[command(flatten)]
    topology: TopologyArgs,

    #[command(flatten)]
    consumer: ConsumerArgs,

    /// Folder for `.eml` files when SMTP_URL is not set.
    #[arg(long, env = "OUTBOX_DIR", default_value = "outbox")]
    outbox_dir: PathBuf,

    /// SMTP server, e.g. `smtp://localhost:1025` (plain), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://host:465`. Unset or empty: write to the outbox instead.
    #[arg(long, env = "SMTP_URL")]
    smtp_url: Option<String>,

    /// Limit for one SMTP conversation.
    #[arg(long, env = "SMTP_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    smtp_timeout: Duration,

    /// Sender of the confirmations.
    #[arg(long, env = "MAIL_FROM", default_value = "Tienda <ventas@example.com>")]
    from: String,
}

const AFTER_HELP: &str = "\
Exit codes: 0 stopped by SIGINT/SIGTERM after finishing the sale in hand, 69 broker unreachable
within --connect-timeout, 78 configuration problem (queue arguments, SMTP_URL, outbox, sender).";

struct EmailHandler {
    mailer: Mailer,
    from: Mailbox,
}

impl SaleHandler for EmailHandler {
    async fn handle(
        &mut self,
        sale: &SaleCompleted,
        delivery: &DeliveryInfo,
    ) -> Result<(), HandlerError> {
        let via = self.mailer.deliver(sale, &self.from).await?;
        info!(
            to = %sale.customer_email(),
            redelivered = delivery.redelivered,
            %via,
            "purchase confirmation sent"
        );
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
    let topology = cli.topology.topology()?;
    let mailer = match cli
        .smtp_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        Some(url) => {
            info!(smtp = %redact_url(url), "delivering over SMTP");
            Mailer::smtp(url, cli.smtp_timeout)?
        }
        None => {
            info!(outbox = %cli.outbox_dir.display(), "SMTP_URL not set; writing .eml files to the outbox");
            Mailer::outbox(&cli.outbox_dir)?
        }
    };
    let mut handler = EmailHandler {
        mailer,
        from: parse_from(&cli.from)?,
    };
    let config = WorkerConfig {
        connect: ConnectOptions::new(
            &cli.broker.amqp_url,
            &format!("email_consumer (pid {})", std::process::id()),
            cli.broker.connect_timeout.filter(|d| !d.is_zero()),
        ),
        queue: topology.email_queue.clone(),
        topology,
        prefetch: cli.consumer.prefetch,
        retry: cli.consumer.retry_policy()?,
        stall_before_ack: stall_before_ack_from_env()?,
    };
    let shutdown = runtime::shutdown_on_signals();
    worker::run(&config, &mut handler, &shutdown).await?;
    Ok(())
}
