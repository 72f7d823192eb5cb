//! The course document's flow: a sale published once reaches the email and loyalty consumers
//! (and the debugging consumer), survives a consumer crash without double credit, and survives
//! the broker going away.

use std::time::Duration;

use tests::Broker;

use crate::against_brokers;
use crate::support::{ChildBroker, Proxy, World, decode_quoted_printable, eventually};

against_brokers!(
    sale_reaches_both_consumers,
    redelivered_sale_is_credited_once,
    consumers_reconnect_and_lose_nothing
);

const WAIT: Duration = Duration::from_secs(20);

async fn sale_reaches_both_consumers(b: &Broker) {
    let w = World::new(b, "flow");
    let email = w.start_email("email", &[], &[]).await;
    let loyalty = w.start_loyalty("loyalty", &[], &[]).await;
    let mut tap_cmd = w.command("consumer");
    tap_cmd.arg("--json");
    let tap = w.spawn("tap", tap_cmd);
    tap.wait_log("listening on exchange", WAIT).await;

    let sale_id = format!("S-{}", tests::unique("flow"));
    let out = w
        .produce(&["--sale-id", &sale_id, "--email", "Cliente@Example.com"])
        .await;
    assert_eq!(out.code(), Some(0), "producer failed: {out:?}");
    assert_eq!(
        out.stdout.trim(),
        sale_id,
        "producer prints the confirmed sale id"
    );

    // The email consumer wrote the rendered confirmation to the outbox.
    let eml_path = w.path("outbox").join(format!("{sale_id}.eml"));
    let eml = eventually("the .eml in the outbox", WAIT, || {
        let p = eml_path.clone();
        async move { std::fs::read_to_string(p).ok() }
    })
    .await;
    let (headers, body) = eml.split_once("\r\n\r\n").expect("headers and body");
    assert!(headers.contains("To: Cliente@Example.com"), "{headers}");
    assert!(
        headers.contains("From: Tienda <ventas@example.com>"),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("Message-ID: <sale-{sale_id}@")),
        "{headers}"
    );
    assert!(headers.contains("Subject: "), "{headers}");
    assert!(
        headers.contains("Content-Transfer-Encoding: quoted-printable"),
        "{headers}"
    );
    let body = decode_quoted_printable(body);
    for expected in [
        "¡Gracias por tu compra!",
        &sale_id,
        "Manzana Orgánica (ref. 1)",
        "Cantidad:  5",
        "75,00 €",
        "-- English version --",
        "Thank you for your purchase!",
        "€75.00",
    ] {
        assert!(
            body.contains(expected),
            "{expected:?} missing from the email:\n{body}"
        );
    }

    // The loyalty consumer credited 75 points (1 per euro, under 100 €: no bonus).
    let points = eventually("the ledger credit", WAIT, || {
        let p = w.credited(&sale_id);
        async move { p }
    })
    .await;
    assert_eq!(points, 75);
    let mut balance = w.command("loyalty_consumer");
    balance
        .arg("--ledger")
        .arg(w.path("loyalty.db"))
        .args(["balance", "cliente@example.com"]);
    let out = w.run(balance, WAIT).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        "cliente@example.com: 75 points from 1 sale"
    );

    // The debugging consumer printed the event exactly as published.
    eventually("the tap to print the sale", WAIT, || {
        let seen = tap.stdout().contains(&sale_id);
        async move { seen.then_some(()) }
    })
    .await;
    let line = tap.stdout();
    let event: serde_json::Value =
        serde_json::from_str(line.lines().next().expect("a line")).expect("tap prints JSON");
    assert_eq!(event["event_type"], "sale_completed");
    assert_eq!(event["product_name"], "Manzana Orgánica");
    assert_eq!(event["quantity"], 5);
    assert_eq!(event["total"], 75.0);

    // Graceful stops, with nothing left behind in the queues.
    for p in [email, loyalty, tap] {
        let label = p.label.clone();
        let status = p.terminate().await;
        assert_eq!(status.code(), Some(0), "{label} exit status after SIGTERM");
    }
    assert_eq!(w.queue_len(&w.email_queue).await, 0);
    assert_eq!(w.queue_len(&w.loyalty_queue).await, 0);
    w.cleanup().await;
}

async fn redelivered_sale_is_credited_once(b: &Broker) {
    let w = World::new(b, "redeliver");
    // The first consumer credits the sale, then stalls before acking: killed there, the broker
    // still holds the delivery and gives it to the next consumer.
    let first = w
        .start_loyalty(
            "loyalty-1",
            &["--prefetch", "1"],
            &[("SALES_TEST_STALL_BEFORE_ACK", "120s")],
        )
        .await;
    let sale_id = format!("R-{}", tests::unique("redeliver"));
    let out = w
        .produce(&["--sale-id", &sale_id, "--total", "120.50"])
        .await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    first.wait_log("stalling before ack", WAIT).await;
    assert_eq!(w.credited(&sale_id), Some(150), "120.50 € earns 120 x 1.25");
    first.kill().await;

    let second = w.start_loyalty("loyalty-2", &[], &[]).await;
    second
        .wait_log("sale already credited; not crediting again", WAIT)
        .await;
    assert!(
        second.log().contains("redelivered=true"),
        "{}",
        second.log()
    );
    let status = second.terminate().await;
    assert_eq!(status.code(), Some(0));

    let ledger = clients::loyalty::Ledger::open(&w.path("loyalty.db")).expect("ledger");
    let balance = ledger.balance("cliente@example.com").expect("balance");
    assert_eq!(
        (balance.points, balance.sales),
        (150, 1),
        "credited exactly once"
    );
    // The second consumer acked it: nothing is waiting any more.
    assert_eq!(w.queue_len(&w.loyalty_queue).await, 0);
    w.cleanup().await;
}

async fn consumers_reconnect_and_lose_nothing(b: &Broker) {
    let mut w = World::new(b, "reconnect");
    let proxy = Proxy::start(b.addr).await;
    let producer_url = w.url.clone();
    // The consumers reach the broker only through the proxy; the producer goes direct.
    w.url = proxy.url();
    let loyalty = w.start_loyalty("loyalty", &[], &[]).await;
    let email = w.start_email("email", &[], &[]).await;
    w.url = producer_url;

    let before = format!("B-{}", tests::unique("reconnect"));
    assert_eq!(w.produce(&["--sale-id", &before]).await.code(), Some(0));
    eventually("first credit", WAIT, || {
        let p = w.credited(&before);
        async move { p }
    })
    .await;

    // The broker "goes away" for the consumers; sales keep coming in meanwhile.
    proxy.set_up(false);
    loyalty.wait_log("connection lost", WAIT).await;
    email.wait_log("connection lost", WAIT).await;
    loyalty.wait_log("broker not reachable", WAIT).await;
    let during = format!("D-{}", tests::unique("reconnect"));
    assert_eq!(w.produce(&["--sale-id", &during]).await.code(), Some(0));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.credited(&during), None, "consumer is cut off");

    proxy.set_up(true);
    let points = eventually("credit after reconnecting", Duration::from_secs(40), || {
        let p = w.credited(&during);
        async move { p }
    })
    .await;
    assert_eq!(points, 75);
    let eml = w.path("outbox").join(format!("{during}.eml"));
    eventually("email after reconnecting", Duration::from_secs(40), || {
        let exists = eml.exists();
        async move { exists.then_some(()) }
    })
    .await;
    loyalty.wait_log_count("connected to broker", 2, WAIT).await;

    for p in [loyalty, email] {
        assert_eq!(p.terminate().await.code(), Some(0));
    }
    let ledger = clients::loyalty::Ledger::open(&w.path("loyalty.db")).expect("ledger");
    assert_eq!(
        ledger
            .balance("cliente@example.com")
            .expect("balance")
            .sales,
        2
    );
    w.cleanup().await;
}

/// The broker itself restarts (RabbitMQ on this machine is shared and never restarted, so this
/// runs against our broker as a child process): a sale credited but not yet acknowledged and a
/// sale still waiting in the queue both come through after the restart, each credited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_survive_a_broker_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut broker = ChildBroker::start(dir.path()).await;
    let w = World::new(&broker.broker(), "restart");
    // Each sale stays unacknowledged for 3 s after being credited: the restart lands there.
    let loyalty = w
        .start_loyalty(
            "loyalty",
            &["--prefetch", "1"],
            &[("SALES_TEST_STALL_BEFORE_ACK", "3s")],
        )
        .await;
    let first = format!("A-{}", tests::unique("restart"));
    let second = format!("B-{}", tests::unique("restart"));
    assert_eq!(w.produce(&["--sale-id", &first]).await.code(), Some(0));
    assert_eq!(w.produce(&["--sale-id", &second]).await.code(), Some(0));
    loyalty.wait_log("stalling before ack", WAIT).await;
    assert_eq!(w.credited(&first), Some(75));

    broker.stop().await;
    loyalty.wait_log("connection lost", WAIT).await;
    broker.restart().await;

    let points = eventually(
        "the waiting sale after the restart",
        Duration::from_secs(60),
        || {
            let p = w.credited(&second);
            async move { p }
        },
    )
    .await;
    assert_eq!(points, 75);
    loyalty
        .wait_log("sale already credited; not crediting again", WAIT)
        .await;
    assert_eq!(loyalty.terminate().await.code(), Some(0));
    let ledger = clients::loyalty::Ledger::open(&w.path("loyalty.db")).expect("ledger");
    let balance = ledger.balance("cliente@example.com").expect("balance");
    assert_eq!((balance.points, balance.sales), (150, 2));
    broker.stop().await;
}
