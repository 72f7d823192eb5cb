//! Priorities: priority queues (`x-max-priority`, message `priority`), consumer priorities
//! (`x-priority` on basic.consume) and single active consumer (`x-single-active-consumer`).

use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Consumer};
use tests::{Broker, parity, unique};

use crate::support::{
    assert_amqp_error, body_of, cancel_and_collect, cleanup, confirm_channel, field_table,
    long_str, next_delivery, publish_confirmed,
};

async fn declare(ch: &Channel, name: &str, args: FieldTable) -> lapin::Queue {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap_or_else(|e| panic!("declare queue {name}: {e}"))
}

async fn publish(ch: &Channel, queue: &str, body: &str, priority: Option<u8>) {
    let props = match priority {
        Some(p) => BasicProperties::default().with_priority(p),
        None => BasicProperties::default(),
    };
    publish_confirmed(ch, "", queue, body.as_bytes(), props).await;
}

/// Takes every message with `basic.get` and returns (body, priority property).
async fn drain_with_priority(ch: &Channel, queue: &str) -> Vec<(String, Option<u8>)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(
            queue.into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get")
    {
        out.push((body_of(&m.delivery), *m.delivery.properties.priority()));
    }
    out
}

async fn consume(ch: &Channel, queue: &str, tag: &str, no_ack: bool, args: FieldTable) -> Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions {
            no_ack,
            ..BasicConsumeOptions::default()
        },
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("consume {queue}: {e}"))
}

fn max_priority(n: i32) -> (&'static str, AMQPValue) {
    ("x-max-priority", AMQPValue::LongInt(n))
}

/// Higher priority first, FIFO within a priority. A missing priority counts as 0; a priority
/// above `x-max-priority` counts as the maximum (but is delivered unchanged).
async fn priority_queue_order(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("prio");
    declare(&ch, &q, field_table(&[max_priority(5)])).await;
    for (body, p) in [
        ("n1", None),
        ("p1", Some(1)),
        ("p5a", Some(5)),
        ("p9", Some(9)),
        ("p3", Some(3)),
        ("p5b", Some(5)),
        ("n2", None),
        ("p0", Some(0)),
        ("p255", Some(255)),
    ] {
        publish(&ch, &q, body, p).await;
    }
    let got = drain_with_priority(&ch, &q).await;
    let want: Vec<(String, Option<u8>)> = [
        ("p5a", Some(5)),
        ("p9", Some(9)),
        ("p5b", Some(5)),
        ("p255", Some(255)),
        ("p3", Some(3)),
        ("p1", Some(1)),
        ("n1", None),
        ("n2", None),
        ("p0", Some(0)),
    ]
    .into_iter()
    .map(|(b, p)| (b.to_owned(), p))
    .collect();
    assert_eq!(got, want);
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// A consumer whose prefetch is full lets messages pile up; when it acks, the highest priority
/// waiting message comes next.
async fn priority_queue_with_busy_consumer(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("prio-busy");
    declare(&ch, &q, field_table(&[max_priority(10)])).await;
    let cch = conn.create_channel().await.expect("channel");
    cch.basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consume(&cch, &q, "", false, FieldTable::default()).await;
    publish(&ch, &q, "first", Some(1)).await;
    let first = next_delivery(&mut consumer).await;
    assert_eq!(body_of(&first), "first");
    publish(&ch, &q, "low", Some(1)).await;
    publish(&ch, &q, "mid", Some(5)).await;
    publish(&ch, &q, "high", Some(10)).await;
    let mut tag = first.delivery_tag;
    let mut got = Vec::new();
    for _ in 0..3 {
        cch.basic_ack(tag, BasicAckOptions::default())
            .await
            .expect("ack");
        let d = next_delivery(&mut consumer).await;
        got.push(body_of(&d));
        tag = d.delivery_tag;
    }
    cch.basic_ack(tag, BasicAckOptions::default())
        .await
        .expect("ack");
    assert_eq!(got, ["high", "mid", "low"]);
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `x-max-priority` 0 is accepted and the queue is plain FIFO, as is a queue without the
/// argument; any integer type is accepted.
async fn priority_zero_and_plain_queues_are_fifo(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (zero, plain) = (unique("prio-0"), unique("prio-none"));
    declare(&ch, &zero, field_table(&[max_priority(0)])).await;
    declare(&ch, &plain, FieldTable::default()).await;
    for q in [&zero, &plain] {
        for (body, p) in [("a", 0), ("b", 5), ("c", 1)] {
            publish(&ch, q, body, Some(p)).await;
        }
        let bodies: Vec<String> = drain_with_priority(&ch, q)
            .await
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        assert_eq!(bodies, ["a", "b", "c"], "{q}");
    }
    for value in [
        AMQPValue::ShortShortUInt(3),
        AMQPValue::ShortInt(3),
        AMQPValue::LongLongInt(3),
        AMQPValue::LongInt(255),
    ] {
        let q = unique("prio-type");
        declare(&ch, &q, field_table(&[("x-max-priority", value)])).await;
        cleanup(&conn, &[&q], &[]).await;
    }
    cleanup(&conn, &[&zero, &plain], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Out-of-range or mistyped `x-max-priority`, `x-priority` and `x-single-active-consumer`
/// values are refused with 406.
async fn invalid_priority_args(b: &Broker) {
    let conn = b.connect().await;
    let q = unique("prio-bad");
    let cases: [((&str, AMQPValue), String); 4] = [
        (
            max_priority(256),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/': \
                 {{max_value_exceeded,256}}"
            ),
        ),
        (
            max_priority(-1),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/': \
                 {{value_negative,-1}}"
            ),
        ),
        (
            ("x-max-priority", long_str("5")),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/': \
                 \"expected integer, got longstr\""
            ),
        ),
        (
            ("x-single-active-consumer", long_str("yes")),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{q}' in \
                 vhost '/': {{unacceptable_type,longstr}}"
            ),
        ),
    ];
    for (arg, text) in cases {
        let ch = conn.create_channel().await.expect("channel");
        assert_amqp_error(
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions::default(),
                field_table(&[arg]),
            )
            .await,
            406,
            &text,
        );
    }
    let ch = conn.create_channel().await.expect("channel");
    declare(&ch, &q, FieldTable::default()).await;
    let bad = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        bad.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            field_table(&[("x-priority", long_str("high"))]),
        )
        .await
        .map(|c| c.tag()),
        406,
        &format!(
            "PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost '/': \
             \"expected integer, got longstr\""
        ),
    );
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Consumer priorities: the highest-priority consumer gets every message while it has
/// prefetch credit; the lower one (negative priorities are fine) gets the overflow; once the
/// high one acks it is served first again.
async fn consumer_priority_with_credit(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("consumer-prio");
    declare(&ch, &q, FieldTable::default()).await;
    let hch = conn.create_channel().await.expect("channel");
    hch.basic_qos(2, BasicQosOptions::default())
        .await
        .expect("qos");
    let lch = conn.create_channel().await.expect("channel");
    let mut high = consume(
        &hch,
        &q,
        "high",
        false,
        field_table(&[("x-priority", AMQPValue::LongInt(10))]),
    )
    .await;
    let mut low = consume(
        &lch,
        &q,
        "low",
        false,
        field_table(&[("x-priority", AMQPValue::LongInt(-5))]),
    )
    .await;
    for i in 0..5 {
        publish(&ch, &q, &format!("m{i}"), None).await;
    }
    let h0 = next_delivery(&mut high).await;
    let h1 = next_delivery(&mut high).await;
    assert_eq!((body_of(&h0), body_of(&h1)), ("m0".into(), "m1".into()));
    let mut low_got = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut low).await;
        low_got.push(body_of(&d));
        lch.basic_ack(d.delivery_tag, BasicAckOptions::default())
            .await
            .expect("ack");
    }
    assert_eq!(low_got, ["m2", "m3", "m4"]);
    hch.basic_ack(h1.delivery_tag, BasicAckOptions { multiple: true })
        .await
        .expect("ack both");
    for i in 5..7 {
        publish(&ch, &q, &format!("m{i}"), None).await;
    }
    let h5 = next_delivery(&mut high).await;
    let h6 = next_delivery(&mut high).await;
    assert_eq!((body_of(&h5), body_of(&h6)), ("m5".into(), "m6".into()));
    assert!(cancel_and_collect(&lch, low).await.is_empty());
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Single active consumer: of several consumers only the first registered gets messages; when
/// it cancels, the next one takes over. declare-ok counts every consumer. A later consumer
/// with a higher `x-priority` does not take over (RabbitMQ 3.10 classic queues).
async fn single_active_consumer(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("sac");
    let sac = field_table(&[("x-single-active-consumer", AMQPValue::Boolean(true))]);
    declare(&ch, &q, sac.clone()).await;
    let c1ch = conn.create_channel().await.expect("channel");
    let c2ch = conn.create_channel().await.expect("channel");
    let mut c1 = consume(&c1ch, &q, "c1", true, FieldTable::default()).await;
    let c2 = consume(&c2ch, &q, "c2", true, FieldTable::default()).await;
    assert_eq!(declare(&ch, &q, sac.clone()).await.consumer_count(), 2);
    for i in 0..4 {
        publish(&ch, &q, &format!("s{i}"), None).await;
    }
    for i in 0..4 {
        assert_eq!(body_of(&next_delivery(&mut c1).await), format!("s{i}"));
    }
    assert!(cancel_and_collect(&c1ch, c1).await.is_empty());
    assert_eq!(declare(&ch, &q, sac.clone()).await.consumer_count(), 1);
    // c2 is active now; a late higher-priority consumer does not displace it.
    let c3ch = conn.create_channel().await.expect("channel");
    let c3 = consume(
        &c3ch,
        &q,
        "c3",
        true,
        field_table(&[("x-priority", AMQPValue::LongInt(10))]),
    )
    .await;
    for i in 4..7 {
        publish(&ch, &q, &format!("s{i}"), None).await;
    }
    let mut c2 = c2;
    for i in 4..7 {
        assert_eq!(body_of(&next_delivery(&mut c2).await), format!("s{i}"));
    }
    assert!(cancel_and_collect(&c3ch, c3).await.is_empty());
    assert!(cancel_and_collect(&c2ch, c2).await.is_empty());

    // The flag is part of queue equivalence.
    let other = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        other
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions::default(),
                field_table(&[("x-single-active-consumer", AMQPValue::Boolean(false))]),
            )
            .await,
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer' for queue '{q}' in \
             vhost '/': received 'false' but current is 'true'"
        ),
    );
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    priority_queue_order,
    priority_queue_with_busy_consumer,
    priority_zero_and_plain_queues_are_fifo,
    invalid_priority_args,
    consumer_priority_with_credit,
    single_active_consumer,
);
