//! `x-queue-type`: `classic` is the default and equivalent to no argument; `quorum` requires a
//! durable, named, non-exclusive, non-auto-delete queue and refuses arguments it does not
//! support; unknown types are refused. A quorum queue serves messages like any queue, with
//! redeliveries counted in `x-delivery-count` and dead lettering.

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicRejectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use tests::{Broker, parity, unique};

use crate::support::{
    Death, assert_amqp_error, assert_x_death, body_of, cleanup, confirm_channel, drain,
    field_table, get_eventually, header, long_str, message_count, next_delivery, publish_confirmed,
};

fn opts(durable: bool, exclusive: bool, auto_delete: bool) -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable,
        exclusive,
        auto_delete,
        ..QueueDeclareOptions::default()
    }
}

fn of_type(t: &str) -> FieldTable {
    field_table(&[("x-queue-type", long_str(t))])
}

async fn declare(ch: &Channel, name: &str, options: QueueDeclareOptions, args: FieldTable) {
    ch.queue_declare(name.into(), options, args)
        .await
        .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

/// `x-queue-type: classic` is accepted with any flags and is equivalent to no argument both
/// ways; the queue behaves as a plain queue.
async fn classic_type_is_the_default(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (plain, typed) = (unique("qt-plain"), unique("qt-classic"));
    declare(
        &ch,
        &plain,
        opts(false, false, false),
        FieldTable::default(),
    )
    .await;
    declare(&ch, &plain, opts(false, false, false), of_type("classic")).await;
    declare(&ch, &typed, opts(false, false, false), of_type("classic")).await;
    declare(
        &ch,
        &typed,
        opts(false, false, false),
        FieldTable::default(),
    )
    .await;
    for (i, flags) in [
        opts(true, false, false),
        opts(false, true, false),
        opts(false, false, true),
    ]
    .into_iter()
    .enumerate()
    {
        let q = unique(&format!("qt-classic-flags{i}"));
        declare(&ch, &q, flags, of_type("classic")).await;
        cleanup(&conn, &[&q], &[]).await;
    }
    publish_confirmed(&ch, "", &typed, b"one", BasicProperties::default()).await;
    publish_confirmed(&ch, "", &typed, b"two", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &typed).await, ["one", "two"]);
    cleanup(&conn, &[&plain, &typed], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// What a quorum queue declaration requires, and the unknown-type error.
async fn quorum_queue_requirements(b: &Broker) {
    let conn = b.connect().await;
    let q = unique("qt-qq-bad");
    let invalid = |what: &str| {
        format!("PRECONDITION_FAILED - invalid property '{what}' for queue '{q}' in vhost '/'")
    };
    let cases: [(&str, QueueDeclareOptions, FieldTable, String); 6] = [
        (
            q.as_str(),
            opts(false, false, false),
            of_type("quorum"),
            invalid("non-durable"),
        ),
        (
            q.as_str(),
            opts(true, true, false),
            of_type("quorum"),
            invalid("exclusive-owner"),
        ),
        (
            q.as_str(),
            opts(true, false, true),
            of_type("quorum"),
            invalid("auto-delete"),
        ),
        (
            "",
            opts(true, false, false),
            of_type("quorum"),
            "PRECONDITION_FAILED - Cannot declare a server-named queue for type \
             rabbit_quorum_queue"
                .to_owned(),
        ),
        (
            q.as_str(),
            opts(true, false, false),
            field_table(&[
                ("x-queue-type", long_str("quorum")),
                ("x-max-priority", AMQPValue::LongInt(5)),
            ]),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/' \
                 of queue type rabbit_quorum_queue"
            ),
        ),
        (
            q.as_str(),
            opts(true, false, false),
            of_type("bogus"),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{q}' in vhost '/': \
                 \"unsupported queue type 'bogus'\""
            ),
        ),
    ];
    for (name, options, args, text) in cases {
        let ch = conn.create_channel().await.expect("channel");
        assert_amqp_error(
            ch.queue_declare(name.into(), options, args).await,
            406,
            &text,
        );
    }
    conn.close(200, "bye".into()).await.expect("close");
}

/// A quorum queue accepts TTL, length, overflow, single-active-consumer, delivery-limit and
/// dead-letter arguments; the type takes part in redeclare equivalence.
async fn quorum_queue_arguments_and_equivalence(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("qt-qq-args");
    let args = field_table(&[
        ("x-queue-type", long_str("quorum")),
        ("x-message-ttl", AMQPValue::LongInt(60_000)),
        ("x-expires", AMQPValue::LongInt(600_000)),
        ("x-max-length", AMQPValue::LongInt(100)),
        ("x-overflow", long_str("reject-publish")),
        ("x-single-active-consumer", AMQPValue::Boolean(true)),
        ("x-delivery-limit", AMQPValue::LongInt(5)),
        ("x-dead-letter-exchange", long_str("")),
    ]);
    declare(&ch, &q, opts(true, false, false), args.clone()).await;
    declare(&ch, &q, opts(true, false, false), args).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    declare(&ch, &q, passive, FieldTable::default()).await;
    cleanup(&conn, &[&q], &[]).await;

    let (classic, quorum) = (unique("qt-eq-classic"), unique("qt-eq-quorum"));
    declare(
        &ch,
        &classic,
        opts(true, false, false),
        FieldTable::default(),
    )
    .await;
    declare(&ch, &quorum, opts(true, false, false), of_type("quorum")).await;
    let cases: [(&str, FieldTable, String); 3] = [
        (
            classic.as_str(),
            of_type("quorum"),
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{classic}' in \
                 vhost '/': received the value 'quorum' of type 'longstr' but current is none"
            ),
        ),
        (
            quorum.as_str(),
            FieldTable::default(),
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{quorum}' in \
                 vhost '/': received none but current is the value 'quorum' of type 'longstr'"
            ),
        ),
        (
            quorum.as_str(),
            of_type("classic"),
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{quorum}' in \
                 vhost '/': received 'classic' but current is 'quorum'"
            ),
        ),
    ];
    for (name, args, text) in cases {
        let doomed = conn.create_channel().await.expect("channel");
        assert_amqp_error(
            doomed
                .queue_declare(name.into(), opts(true, false, false), args)
                .await,
            406,
            &text,
        );
    }
    cleanup(&conn, &[&classic, &quorum], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// A quorum queue round trip: FIFO delivery, ack, a requeued delivery comes back redelivered
/// with `x-delivery-count` 1 (no limit set), and a rejection dead-letters with `x-death`.
async fn quorum_queue_round_trip(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (q, dlq) = (unique("qt-qq"), unique("qt-qq-dlq"));
    declare(&ch, &dlq, opts(false, false, false), FieldTable::default()).await;
    declare(
        &ch,
        &q,
        opts(true, false, false),
        field_table(&[
            ("x-queue-type", long_str("quorum")),
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str(&dlq)),
        ]),
    )
    .await;
    for body in ["a", "b", "c"] {
        publish_confirmed(
            &ch,
            "",
            &q,
            body.as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await;
    }
    assert_eq!(message_count(&ch, &q).await, 3);
    let cch = conn.create_channel().await.expect("channel");
    let mut consumer = cch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let a = next_delivery(&mut consumer).await;
    let bb = next_delivery(&mut consumer).await;
    let c = next_delivery(&mut consumer).await;
    assert_eq!([body_of(&a), body_of(&bb), body_of(&c)], ["a", "b", "c"]);
    assert!(!a.redelivered && header(&a.properties, "x-delivery-count").is_none());
    cch.basic_ack(a.delivery_tag, BasicAckOptions::default())
        .await
        .expect("ack");
    cch.basic_nack(
        bb.delivery_tag,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .expect("nack requeue");
    let again = next_delivery(&mut consumer).await;
    assert_eq!(body_of(&again), "b");
    assert!(again.redelivered);
    assert_eq!(
        header(&again.properties, "x-delivery-count"),
        Some(&AMQPValue::LongLongInt(1))
    );
    cch.basic_ack(again.delivery_tag, BasicAckOptions::default())
        .await
        .expect("ack");
    cch.basic_reject(c.delivery_tag, BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let dead = get_eventually(&ch, &dlq, true).await;
    assert_eq!(body_of(&dead), "c");
    assert_eq!(dead.properties.delivery_mode(), &Some(2));
    assert_x_death(
        &dead.properties,
        &[Death {
            queue: &q,
            reason: "rejected",
            count: 1,
            exchange: "",
            routing_keys: &[&q],
            original_expiration: None,
        }],
    );
    assert_eq!(message_count(&ch, &q).await, 0);
    cleanup(&conn, &[&q, &dlq], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    classic_type_is_the_default,
    quorum_queue_requirements,
    quorum_queue_arguments_and_equivalence,
    quorum_queue_round_trip,
);
