//! Message and queue TTL: per-queue `x-message-ttl`, per-message `expiration`, expiry at the
//! head of the queue (a message is never delivered after it expired), TTL 0, queue expiry
//! (`x-expires`) and the errors for invalid values.

use std::time::Duration;

use lapin::options::{BasicConsumeOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use tests::{Broker, parity, unique};

use crate::support::{
    Death, assert_amqp_error, assert_first_death, assert_x_death, body_of, cancel_and_collect,
    cleanup, confirm_channel, drain, eventually, field_table, get_eventually, long_str,
    message_count, next_delivery, publish_confirmed, routable,
};

async fn declare(ch: &Channel, name: &str, args: FieldTable) {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

fn expiring(ms: &str) -> BasicProperties {
    BasicProperties::default().with_expiration(ms.into())
}

async fn publish(ch: &Channel, queue: &str, body: &str, props: BasicProperties) {
    publish_confirmed(ch, "", queue, body.as_bytes(), props).await;
}

async fn empties(ch: &Channel, queue: &str) {
    eventually(&format!("{queue} is empty"), || async {
        message_count(ch, queue).await == 0
    })
    .await;
}

/// Waits long enough for a 100 ms TTL to have passed several times over; used only before
/// checking that something did *not* happen.
async fn well_past_expiry() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// `x-message-ttl`: messages nobody takes are dropped after the TTL; a waiting consumer gets
/// messages before they expire, and the queue TTL does not show up as an `expiration` property.
async fn queue_ttl_drops_expired_messages(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("ttl-queue");
    declare(
        &ch,
        &q,
        field_table(&[("x-message-ttl", AMQPValue::LongInt(100))]),
    )
    .await;
    for i in 0..3 {
        publish(&ch, &q, &format!("m{i}"), BasicProperties::default()).await;
    }
    empties(&ch, &q).await;
    assert!(drain(&ch, &q).await.is_empty());

    let cch = conn.create_channel().await.expect("consumer channel");
    let mut consumer = cch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    publish(&ch, &q, "live", BasicProperties::default()).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body_of(&d), "live");
    assert_eq!(d.properties.expiration(), &None);
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `expiration`: a message alone in a queue is dropped once it expired; an unexpired one is
/// delivered with its `expiration` property unchanged. With both TTLs the shorter one wins.
async fn per_message_ttl(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("ttl-msg");
    declare(&ch, &q, FieldTable::default()).await;
    publish(&ch, &q, "short", expiring("100")).await;
    empties(&ch, &q).await;

    publish(&ch, &q, "long", expiring("60000")).await;
    let d = get_eventually(&ch, &q, true).await;
    assert_eq!(body_of(&d), "long");
    assert_eq!(
        d.properties.expiration().as_ref().map(|e| e.as_str()),
        Some("60000")
    );

    // Message TTL shorter than the queue's.
    let q2 = unique("ttl-both");
    declare(
        &ch,
        &q2,
        field_table(&[("x-message-ttl", AMQPValue::LongInt(60_000))]),
    )
    .await;
    publish(&ch, &q2, "short", expiring("100")).await;
    empties(&ch, &q2).await;
    // Queue TTL shorter than the message's; the property is still delivered as published.
    let q3 = unique("ttl-both");
    declare(
        &ch,
        &q3,
        field_table(&[("x-message-ttl", AMQPValue::LongInt(100))]),
    )
    .await;
    publish(&ch, &q3, "doomed", expiring("60000")).await;
    empties(&ch, &q3).await;
    let q4 = unique("ttl-both");
    declare(
        &ch,
        &q4,
        field_table(&[("x-message-ttl", AMQPValue::LongInt(60_000))]),
    )
    .await;
    publish(&ch, &q4, "kept", expiring("30000")).await;
    let d = get_eventually(&ch, &q4, true).await;
    assert_eq!(
        d.properties.expiration().as_ref().map(|e| e.as_str()),
        Some("30000")
    );
    cleanup(&conn, &[&q, &q2, &q3, &q4], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Per-message TTL is enforced at the head of the queue: an expired message behind an
/// unexpired one stays counted until it reaches the head, but it is never delivered.
async fn per_message_ttl_expires_at_the_head(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("ttl-head");
    declare(&ch, &q, FieldTable::default()).await;

    publish(&ch, &q, "first", BasicProperties::default()).await;
    publish(&ch, &q, "short", expiring("100")).await;
    publish(&ch, &q, "last", BasicProperties::default()).await;
    well_past_expiry().await;
    // RabbitMQ only looks at the head: the expired message is still counted.
    assert_eq!(message_count(&ch, &q).await, 3);
    // ...but taking the head exposes it, and it is discarded instead of delivered.
    assert_eq!(drain(&ch, &q).await, ["first", "last"]);

    // An expired message at the head goes away by itself.
    publish(&ch, &q, "short", expiring("100")).await;
    publish(&ch, &q, "long", BasicProperties::default()).await;
    eventually("the expired head is dropped", || async {
        message_count(&ch, &q).await == 1
    })
    .await;
    assert_eq!(drain(&ch, &q).await, ["long"]);

    // Taking the head (unacked) makes the expired message behind it the head: it goes, and
    // requeueing the first one brings back only that one.
    publish(&ch, &q, "head", BasicProperties::default()).await;
    publish(&ch, &q, "short", expiring("100")).await;
    let head = get_eventually(&ch, &q, false).await;
    assert_eq!(body_of(&head), "head");
    empties(&ch, &q).await;
    ch.basic_nack(
        head.delivery_tag,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .expect("nack requeue");
    assert_eq!(drain(&ch, &q).await, ["head"]);
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// TTL 0: a message expires at once unless a consumer can take it immediately. Requeued
/// deliveries have expired by then and are dropped (or dead-lettered as `expired`).
async fn ttl_zero(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("ttl-zero");
    declare(
        &ch,
        &q,
        field_table(&[("x-message-ttl", AMQPValue::LongInt(0))]),
    )
    .await;
    publish(&ch, &q, "nobody", BasicProperties::default()).await;
    empties(&ch, &q).await;
    assert!(drain(&ch, &q).await.is_empty());

    let cch = conn.create_channel().await.expect("consumer channel");
    let mut consumer = cch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    for i in 0..3 {
        publish(&ch, &q, &format!("live{i}"), BasicProperties::default()).await;
    }
    for i in 0..3 {
        assert_eq!(
            body_of(&next_delivery(&mut consumer).await),
            format!("live{i}")
        );
    }
    // Closing the channel requeues the three unacked deliveries: they expired meanwhile.
    cch.close(200, "bye".into())
        .await
        .expect("close consumer channel");
    empties(&ch, &q).await;
    assert!(drain(&ch, &q).await.is_empty());

    // expiration "0" on a plain queue: same rule, and a delivered message keeps the property.
    let plain = unique("ttl-zero-msg");
    declare(&ch, &plain, FieldTable::default()).await;
    publish(&ch, &plain, "nobody", expiring("0")).await;
    empties(&ch, &plain).await;
    let cch = conn.create_channel().await.expect("consumer channel");
    let mut consumer = cch
        .basic_consume(
            plain.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    publish(&ch, &plain, "now", expiring("0")).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body_of(&d), "now");
    assert_eq!(
        d.properties.expiration().as_ref().map(|e| e.as_str()),
        Some("0")
    );
    assert!(cancel_and_collect(&cch, consumer).await.is_empty());

    // TTL 0 with a dead-letter exchange: dead-lettered as expired.
    let dlq = unique("ttl-zero-dlq");
    declare(&ch, &dlq, FieldTable::default()).await;
    let src = unique("ttl-zero-dlx");
    declare(
        &ch,
        &src,
        field_table(&[
            ("x-message-ttl", AMQPValue::LongInt(0)),
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str(&dlq)),
        ]),
    )
    .await;
    publish(&ch, &src, "gone", BasicProperties::default()).await;
    let d = get_eventually(&ch, &dlq, true).await;
    assert_eq!(body_of(&d), "gone");
    assert_x_death(
        &d.properties,
        &[Death {
            queue: &src,
            reason: "expired",
            count: 1,
            exchange: "",
            routing_keys: &[&src],
            original_expiration: None,
        }],
    );
    assert_first_death(&d.properties, &src, "expired", "");
    cleanup(&conn, &[&q, &plain, &dlq, &src], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `x-expires`: a queue without consumers (and not declared or polled with `basic.get`) is
/// deleted after the delay, messages or not. A consumer keeps it alive. Publishing does not
/// count as use, which is how this scenario probes for the queue (a passive declare would).
async fn queue_expires_when_unused(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("expires");
    declare(
        &ch,
        &q,
        field_table(&[("x-expires", AMQPValue::LongInt(300))]),
    )
    .await;
    publish(
        &ch,
        &q,
        "kept in a doomed queue",
        BasicProperties::default(),
    )
    .await;
    eventually("the unused queue is deleted", || async {
        !routable(&ch, &q).await
    })
    .await;

    let busy = unique("expires-busy");
    declare(
        &ch,
        &busy,
        field_table(&[("x-expires", AMQPValue::LongInt(300))]),
    )
    .await;
    let cch = conn.create_channel().await.expect("consumer channel");
    let consumer = cch
        .basic_consume(
            busy.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // The probe message goes straight to the (no-ack) consumer.
    assert!(
        routable(&ch, &busy).await,
        "a consumed queue does not expire"
    );
    assert_eq!(cancel_and_collect(&cch, consumer).await, ["probe"]);
    eventually("the queue expires once its consumer is gone", || async {
        !routable(&ch, &busy).await
    })
    .await;
    cleanup(&conn, &[&q, &busy], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Invalid TTL arguments and `expiration` values are refused with 406 (the channel closes).
async fn invalid_ttl_values(b: &Broker) {
    let conn = b.connect().await;
    let q = unique("ttl-bad");
    let cases: [(&str, AMQPValue, String); 5] = [
        (
            "x-message-ttl",
            AMQPValue::LongInt(-1),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': \
                 {{value_negative,-1}}"
            ),
        ),
        (
            "x-message-ttl",
            long_str("abc"),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': \
                 \"expected integer, got longstr\""
            ),
        ),
        (
            "x-expires",
            AMQPValue::LongInt(0),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-expires' for queue '{q}' in vhost '/': \
                 {{value_zero,0}}"
            ),
        ),
        (
            "x-expires",
            AMQPValue::LongInt(-5),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-expires' for queue '{q}' in vhost '/': \
                 {{value_negative,-5}}"
            ),
        ),
        (
            "x-expires",
            long_str("soon"),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-expires' for queue '{q}' in vhost '/': \
                 \"expected integer, got longstr\""
            ),
        ),
    ];
    for (arg, value, text) in cases {
        let ch = conn.create_channel().await.expect("channel");
        assert_amqp_error(
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions::default(),
                field_table(&[(arg, value)]),
            )
            .await,
            406,
            &text,
        );
    }
    // x-message-ttl 0 is valid (see ttl_zero).
    let ch = conn.create_channel().await.expect("channel");
    declare(
        &ch,
        &q,
        field_table(&[("x-message-ttl", AMQPValue::LongInt(0))]),
    )
    .await;
    cleanup(&conn, &[&q], &[]).await;

    let target = unique("ttl-bad-exp");
    let ch = conn.create_channel().await.expect("channel");
    declare(&ch, &target, FieldTable::default()).await;
    for (expiration, detail) in [
        ("abc", "no_integer"),
        ("", "no_integer"),
        (" 5", "no_integer"),
        ("-1", "{value_negative,-1}"),
        ("1.5", "{leftover_string,\".5\"}"),
    ] {
        assert_expiration_refused(&conn, &target, expiration, detail).await;
    }
    cleanup(&conn, &[&target], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

async fn assert_expiration_refused(conn: &Connection, queue: &str, expiration: &str, detail: &str) {
    let ch = confirm_channel(conn).await;
    let result = match ch
        .basic_publish(
            "".into(),
            queue.into(),
            lapin::options::BasicPublishOptions::default(),
            b"x",
            expiring(expiration),
        )
        .await
    {
        Ok(confirm) => confirm.await,
        Err(e) => Err(e),
    };
    assert_amqp_error(
        result,
        406,
        &format!("PRECONDITION_FAILED - invalid expiration '{expiration}': {detail}"),
    );
    // Nothing was enqueued.
    let check = conn.create_channel().await.expect("channel");
    assert!(
        check
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .is_none()
    );
}

parity!(
    queue_ttl_drops_expired_messages,
    per_message_ttl,
    per_message_ttl_expires_at_the_head,
    ttl_zero,
    queue_expires_when_unused,
    invalid_ttl_values,
);
