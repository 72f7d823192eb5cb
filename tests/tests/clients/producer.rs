//! The producer's promises: confirmed means stored; anything else is reported and fails the
//! run. And every program's exit codes mean something.

use std::time::Duration;

use lapin::ExchangeKind;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use tests::Broker;

use crate::against_brokers;
use crate::support::World;

against_brokers!(producer_reports_unroutable_sales, exit_codes_mean_something);
against_brokers!(producer_reports_sales_the_broker_refused);

async fn producer_reports_sales_the_broker_refused(b: &Broker) {
    let w = World::new(b, "refused");
    // A queue that holds one message and refuses the rest: the broker nacks those publishes.
    let (conn, ch) = w.channel().await;
    ch.exchange_declare(
        w.exchange.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    ch.queue_declare(
        w.email_queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
    .expect("bounded queue");
    ch.queue_bind(
        w.email_queue.as_str().into(),
        w.exchange.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let _ = conn.close(200, "ok".into()).await;

    let out = w
        .produce(&["--exchange-only", "--count", "3", "--seed", "42"])
        .await;
    assert_eq!(out.code(), Some(3), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 1, "one sale confirmed: {out:?}");
    assert!(
        out.stderr
            .contains("2 of 3 sales were NOT confirmed by the broker"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr
            .matches("rejected by the broker (basic.nack)")
            .count(),
        2,
        "{}",
        out.stderr
    );
    // The confirmed one is in the queue, the refused ones are not.
    assert_eq!(w.queue_len(&w.email_queue).await, 1);
    w.cleanup().await;
}

async fn producer_reports_unroutable_sales(b: &Broker) {
    let w = World::new(b, "unroutable");
    // Only the exchange exists: the sale would reach nobody.
    let out = w.produce(&["--exchange-only", "--sale-id", "U-1"]).await;
    assert_eq!(out.code(), Some(3), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        out.stderr
            .contains("U-1: returned as unroutable (312 NO_ROUTE)"),
        "{}",
        out.stderr
    );
    w.cleanup().await;
}

async fn exit_codes_mean_something(b: &Broker) {
    let w = World::new(b, "exits");

    // 2: an invalid sale on the command line, with the field named.
    let out = w.produce(&["--quantity", "0"]).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("invalid quantity: must be at least 1"),
        "{}",
        out.stderr
    );
    let out = w.produce(&["--email", "not-an-email"]).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("invalid customer_email"),
        "{}",
        out.stderr
    );

    // 69: nothing listens at the broker address, and the password is never printed.
    let mut cmd = w.command("producer");
    cmd.env("AMQP_URL", "amqp://guest:s3cret@127.0.0.1:1/%2f")
        .args(["--connect-timeout", "1s"]);
    let out = w.run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code(), Some(69), "{out:?}");
    assert!(out.stderr.contains("unreachable"), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);

    // 78: the work queue exists with other arguments; the message says how to fix it.
    let (conn, ch) = w.channel().await;
    ch.queue_declare(
        w.loyalty_queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("plain queue");
    let _ = conn.close(200, "ok".into()).await;
    let mut cmd = w.command("loyalty_consumer");
    cmd.arg("--ledger").arg(w.path("loyalty.db"));
    let out = w.run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code(), Some(78), "{out:?}");
    assert!(
        out.stderr
            .contains("already exists with different settings"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&w.loyalty_queue), "{}", out.stderr);

    // 78: an unusable SMTP_URL.
    let mut cmd = w.command("email_consumer");
    cmd.env("SMTP_URL", "not a url");
    let out = w.run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code(), Some(78), "{out:?}");
    assert!(out.stderr.contains("invalid SMTP_URL"), "{}", out.stderr);
    w.cleanup().await;
}
