//! `producer`: publishes `sale_completed` events (the course document's `send_sale.py`).
//!
//! One sale from flags (the course's example by default, with a fresh sale id and the current
//! time), or `--count N` generated sales. Every sale must be confirmed by the broker; the exit
//! code is 3 and the unconfirmed sales are listed when one is not.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clients::catalog::{PRODUCTS, random_sale};
use clients::connection::ConnectOptions;
use clients::event::{EVENT_TYPE, EventError, SaleDraft, Timestamp};
use clients::publish::{Outcome, PublishOptions, publish_all};
use clients::settings::{BrokerArgs, TopologyArgs, parse_duration};
use clients::{SaleCompleted, exit, runtime};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tracing::{error, info};

/// Publish sale_completed events to the sales exchange, with publisher confirms.
#[derive(Parser, Debug)]
#[command(name = "producer", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    broker: BrokerArgs,

    #[command(flatten)]
    topology: TopologyArgs,

    /// Publish N generated sales (random products and customers) instead of one.
    #[arg(long, short = 'n', conflicts_with_all = ["sale_id", "product_id", "product_name", "quantity", "total", "email", "timestamp"])]
    count: Option<u64>,

    /// Seed for the generated sales, for reproducible runs.
    #[arg(long, requires = "count")]
    seed: Option<u64>,

    /// Sale id of the single sale (default: a fresh random id).
    #[arg(long)]
    sale_id: Option<String>,

    /// Product id of the single sale.
    #[arg(long, default_value_t = 1)]
    product_id: u64,

    /// Product name of the single sale (default: the catalogue name of --product-id).
    #[arg(long)]
    product_name: Option<String>,

    /// Units sold.
    #[arg(long, default_value_t = 5)]
    quantity: u32,

    /// Amount paid in euros (default: catalogue price of --product-id times --quantity).
    #[arg(long)]
    total: Option<f64>,

    /// Customer email.
    #[arg(long, default_value = "cliente@example.com")]
    email: String,

    /// ISO 8601 time of the sale (default: now, UTC).
    #[arg(long)]
    timestamp: Option<String>,

    /// Declare only the exchange, not the work queues (when another team owns the queues).
    #[arg(long)]
    exchange_only: bool,

    /// How long the broker has to confirm each sale.
    #[arg(long, env = "CONFIRM_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    confirm_timeout: Duration,

    /// Most sales awaiting a confirm at once.
    #[arg(long, default_value_t = 256)]
    window: usize,

    /// Print each confirmed sale as its JSON event instead of its id.
    #[arg(long)]
    json: bool,

    /// Never show the progress bar.
    #[arg(long)]
    no_progress: bool,
}

const AFTER_HELP: &str = "\
Output: one line per confirmed sale on stdout (its id, or its JSON with --json); logs on stderr.
Exit codes: 0 all confirmed, 2 bad flags, 3 some sales not confirmed (listed on stderr),
69 broker unreachable, 78 topology conflict or access refused.";

/// Generated runs at least this long get a progress bar (when stderr is a terminal).
const PROGRESS_FROM: u64 = 100;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::init_logging();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            exit::code_for(e.as_ref())
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let topology = cli.topology.topology()?;
    let opts = PublishOptions {
        connect: ConnectOptions::new(
            &cli.broker.amqp_url,
            &format!("producer (pid {})", std::process::id()),
            Some(
                cli.broker
                    .connect_timeout
                    .unwrap_or(Duration::from_secs(30)),
            )
            .filter(|d| !d.is_zero()),
        ),
        topology,
        declare_queues: !cli.exchange_only,
        confirm_timeout: cli.confirm_timeout,
        window: cli.window,
        app_id: "producer".into(),
    };
    let shutdown = runtime::shutdown_on_signals();

    let (sales, total): (Box<dyn Iterator<Item = SaleCompleted>>, u64) = match cli.count {
        Some(n) => {
            let mut rng = match cli.seed {
                Some(seed) => StdRng::seed_from_u64(seed),
                None => StdRng::from_os_rng(),
            };
            (Box::new((0..n).map(move |_| random_sale(&mut rng))), n)
        }
        None => (Box::new(std::iter::once(single_sale(&cli)?)), 1),
    };

    let bar = if total >= PROGRESS_FROM && !cli.no_progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} confirmed ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let json = cli.json;
    let report = publish_all(&opts, sales, &shutdown, |sale, outcome| {
        if *outcome == Outcome::Confirmed {
            let line = if json {
                String::from_utf8_lossy(&sale.to_json()).into_owned()
            } else {
                sale.sale_id().to_string()
            };
            bar.suspend(|| println!("{line}"));
        }
        bar.inc(1);
    })
    .await?;
    bar.finish_and_clear();

    info!(
        exchange = %opts.topology.exchange,
        confirmed = report.confirmed,
        unconfirmed = report.unconfirmed.len(),
        not_sent = report.not_sent,
        "done"
    );
    if report.all_confirmed() {
        return Ok(ExitCode::from(exit::OK));
    }
    let failed = report.unconfirmed.len() as u64 + report.not_sent;
    eprintln!(
        "{failed} of {} sales were NOT confirmed by the broker:",
        report.confirmed + failed
    );
    for (sale_id, outcome) in &report.unconfirmed {
        eprintln!("  {sale_id}: {}", outcome.describe());
    }
    if report.not_sent > 0 {
        eprintln!("  {} more were never published", report.not_sent);
    }
    Ok(ExitCode::from(exit::UNCONFIRMED))
}

/// The sale described by the single-sale flags.
fn single_sale(cli: &Cli) -> anyhow::Result<SaleCompleted> {
    let catalogue = PRODUCTS.iter().find(|p| p.id == cli.product_id);
    let product_name = match (&cli.product_name, catalogue) {
        (Some(name), _) => name.clone(),
        (None, Some(p)) => p.name.to_string(),
        (None, None) => {
            return Err(usage(format!(
                "product {} is not in the catalogue; pass --product-name and --total",
                cli.product_id
            )));
        }
    };
    let total = match (cli.total, catalogue) {
        (Some(total), _) => total,
        (None, Some(p)) => (p.price_cents * u64::from(cli.quantity)) as f64 / 100.0,
        (None, None) => {
            return Err(usage(format!(
                "product {} has no catalogue price; pass --total",
                cli.product_id
            )));
        }
    };
    let draft = SaleDraft {
        event_type: EVENT_TYPE.into(),
        sale_id: cli
            .sale_id
            .clone()
            .unwrap_or_else(|| format!("V-{:016x}", rand::random::<u64>())),
        product_id: cli.product_id,
        product_name,
        quantity: cli.quantity,
        total,
        customer_email: cli.email.clone(),
        timestamp: cli
            .timestamp
            .clone()
            .unwrap_or_else(|| Timestamp::now_utc().as_str().to_string()),
    };
    SaleCompleted::try_from(draft).context("the sale given by the flags is invalid")
}

fn usage(reason: String) -> anyhow::Error {
    EventError::Invalid {
        field: "product_id",
        reason,
    }
    .into()
}
