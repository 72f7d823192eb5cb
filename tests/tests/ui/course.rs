//! The course's flow (`../shared/seed/semana-3-mensajeria.md`) watched in the UI: the real
//! `producer` publishes `sale_completed` events to the fanout exchange `sales_events` (it
//! declares the exchange, both work queues and their bindings), the real `email_consumer` and
//! `loyalty_consumer` take them from `email_notifications` and `loyalty_points`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::broker;
use crate::support::{Ui, eventually};

const QUEUES: [&str; 2] = ["email_notifications", "loyalty_points"];

/// One of the `clients` binaries, pointed at broker `url`, working in `dir`.
fn program(bins: &Path, name: &str, url: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(bins.join(name));
    cmd.env("AMQP_URL", url)
        .env("RUST_LOG", "info")
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `producer --count n` to the end and returns the sale ids it printed.
async fn produce(bins: &Path, url: &str, dir: &Path, n: u32) -> Vec<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        program(bins, "producer", url, dir)
            .args(["--count", &n.to_string()])
            .output(),
    )
    .await
    .expect("producer finished in time")
    .expect("producer ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "producer failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

/// Starts a consumer with its log in `dir/<name>.log`.
fn start(cmd: &mut Command, dir: &Path, name: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
    cmd.stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
}

/// SIGTERM (the consumers finish the sale in hand, ack it and exit 0), and wait.
async fn terminate(mut child: Child, name: &str, dir: &Path) {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap_or_else(|_| panic!("{name} ignored SIGTERM; log in {}", dir.display()))
        .expect("wait");
    assert!(
        status.success(),
        "{name} exited with {status}; log in {}",
        dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn course_flow() {
    let b = broker("course");
    let Some(ui) = Ui::start("course_flow", &b).await else {
        return;
    };
    let bins = tests::cargo_build(&["-p", "clients", "--bins"]);
    // Kept after the test (consumer logs, outbox, ledger) so a failure can be read.
    let dir: PathBuf = tests::fresh_data_dir("ui-course-work");
    std::fs::create_dir_all(&dir).expect("work dir");

    // 1. Five sales before any consumer runs: the producer declares the topology.
    let sales = produce(&bins, &b.url, &dir, 5).await;
    assert_eq!(sales.len(), 5, "the producer prints each confirmed sale id");

    ui.open("#/exchanges").await;
    ui.login("guest", "guest").await;
    ui.wait_route("exchanges").await;
    ui.wait_text("tr[data-exchange=sales_events] td[data-col=type]", |t| {
        t == "fanout"
    })
    .await;
    ui.click("tr[data-exchange=sales_events] td[data-col=name] a")
        .await;
    ui.wait_text("[data-testid=exchange-name]", |t| t == "sales_events")
        .await;
    ui.wait_text("[data-testid=exchange-type]", |t| t == "fanout")
        .await;
    for q in QUEUES {
        ui.wait_text(
            &format!("[data-testid=exchange-bindings] tr[data-destination={q}] td[data-col=destination_type]"),
            |t| t == "queue",
        )
        .await;
    }
    let rows = ui
        .find_all("[data-testid=exchange-bindings] tr[data-destination]")
        .await;
    assert_eq!(rows.len(), 2, "sales_events has exactly the two bindings");
    ui.screenshot("exchange").await;

    ui.click("[data-testid=nav-queues]").await;
    ui.wait_route("queues").await;
    let cell = |q: &str, col: &str| format!("tr[data-queue={q}] td[data-col={col}]");
    for q in QUEUES {
        ui.wait_number(&cell(q, "ready"), |n| n == 5.0).await;
        ui.wait_number(&cell(q, "messages"), |n| n == 5.0).await;
    }
    ui.screenshot("queues-ready").await;

    // 2. The consumers take them.
    let email = start(
        program(&bins, "email_consumer", &b.url, &dir)
            .arg("--outbox-dir")
            .arg(dir.join("outbox")),
        &dir,
        "email_consumer",
    );
    let loyalty = start(
        program(&bins, "loyalty_consumer", &b.url, &dir)
            .arg("--ledger")
            .arg(dir.join("loyalty.db")),
        &dir,
        "loyalty_consumer",
    );
    for q in QUEUES {
        ui.wait_number(&cell(q, "messages"), |n| n == 0.0).await;
    }
    ui.screenshot("queues-drained").await;

    // 3. Sales keep coming while the consumers run (as in the shop): their deliver and ack
    // rates show. A rate is the difference of the last two samples (1 s apart here), so a
    // single burst of five would show for about a second between two refreshes of the page.
    let selling = Arc::new(AtomicBool::new(true));
    let seller = {
        let (selling, bins, url, dir) = (selling.clone(), bins.clone(), b.url.clone(), dir.clone());
        tokio::spawn(async move {
            let mut sold = 0;
            while selling.load(Ordering::Relaxed) {
                sold += produce(&bins, &url, &dir, 5).await.len();
            }
            sold
        })
    };
    for q in QUEUES {
        ui.wait_number(&cell(q, "deliver_get"), |r| r > 0.0).await;
        ui.wait_number(&cell(q, "ack"), |r| r > 0.0).await;
        ui.wait_number(&cell(q, "incoming"), |r| r > 0.0).await;
    }
    ui.screenshot("queues-rates").await;

    ui.click(&format!("{} a", cell("email_notifications", "name")))
        .await;
    ui.wait_text("[data-testid=queue-name]", |t| t == "email_notifications")
        .await;
    ui.wait_number("[data-testid=queue-consumer-count]", |n| n == 1.0)
        .await;
    ui.find("[data-testid=queue-consumers] tr[data-consumer-tag]")
        .await;
    ui.wait_text(
        "[data-testid=queue-bindings] tr[data-source=sales_events] td[data-col=source]",
        |t| t == "sales_events",
    )
    .await;
    ui.wait_number("[data-testid=queue-rate-deliver_get]", |r| r > 0.0)
        .await;
    ui.wait_number("[data-testid=queue-rate-ack]", |r| r > 0.0)
        .await;
    ui.screenshot("queue-email").await;

    ui.click("[data-testid=nav-overview]").await;
    ui.wait_route("overview").await;
    ui.wait_number("[data-testid=total-consumers]", |n| n >= 2.0)
        .await;
    for rate in ["publish", "deliver_get", "ack", "confirm"] {
        ui.wait_number(&format!("[data-testid=rate-{rate}]"), |r| r > 0.0)
            .await;
    }
    ui.screenshot("overview").await;

    selling.store(false, Ordering::Relaxed);
    let sold = seller.await.expect("seller task");
    // Every sale reaches the email consumer's outbox.
    let outbox = dir.join("outbox");
    eventually("one .eml per sale in the outbox", || async {
        let n = std::fs::read_dir(&outbox).map_or(0, |d| d.count());
        if n == 5 + sold {
            Ok(())
        } else {
            Err(format!("{n} of {}", 5 + sold))
        }
    })
    .await;
    terminate(email, "email_consumer", &dir).await;
    terminate(loyalty, "loyalty_consumer", &dir).await;

    ui.click("[data-testid=nav-queues]").await;
    ui.wait_route("queues").await;
    for q in QUEUES {
        ui.wait_number(&cell(q, "messages"), |n| n == 0.0).await;
    }
    ui.close().await;
}
