//! Poison-message protection: `x-delivery-limit` and the `x-delivery-count` header. RabbitMQ
//! 3.10 offers them on quorum queues only (and refuses the argument on classic queues); our
//! broker honours them on classic queues too, with the quorum semantics.

use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Consumer};
use tests::{Broker, Target, parity, unique};

use crate::support::{
    Death, assert_amqp_error, assert_first_death, assert_x_death, body_of, cancel_and_collect,
    cleanup, confirm_channel, eventually, field_table, get_eventually, header, long_str,
    message_count, next_delivery, publish_confirmed,
};

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn limited(queue_type: Option<&str>, limit: i32, dead_letter_queue: Option<&str>) -> FieldTable {
    let mut args = field_table(&[("x-delivery-limit", AMQPValue::LongInt(limit))]);
    if let Some(t) = queue_type {
        args.insert("x-queue-type".into(), long_str(t));
    }
    if let Some(dlq) = dead_letter_queue {
        args.insert("x-dead-letter-exchange".into(), long_str(""));
        args.insert("x-dead-letter-routing-key".into(), long_str(dlq));
    }
    args
}

async fn consume_one_at_a_time(ch: &Channel, queue: &str) -> Consumer {
    ch.basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("consume {queue}: {e}"))
}

/// The quorum-queue semantics with `x-delivery-limit` 2 and a dead-letter queue, through a
/// consumer: the first delivery has no `x-delivery-count`, each redelivery carries the number
/// of earlier returns (long-long 1, 2), and the return beyond the limit dead-letters the message
/// with reason `delivery_limit`, without `x-delivery-count` and without `expiration`. Both
/// `basic.nack` and `basic.reject` with requeue count.
async fn check_limit_through_consumer(ch: &Channel, cch: &Channel, queue: &str, dlq: &str) {
    publish_confirmed(
        ch,
        "",
        queue,
        b"poison",
        BasicProperties::default()
            .with_expiration("60000".into())
            .with_headers(field_table(&[("mine", long_str("v"))])),
    )
    .await;
    let mut consumer = consume_one_at_a_time(cch, queue).await;
    for n in 0..3i64 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body_of(&d), "poison");
        assert_eq!(d.redelivered, n > 0, "delivery {n}");
        assert_eq!(header(&d.properties, "mine"), Some(&long_str("v")));
        assert_eq!(
            header(&d.properties, "x-delivery-count"),
            (n > 0).then_some(&AMQPValue::LongLongInt(n)),
            "delivery {n}"
        );
        if n == 1 {
            cch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: true })
                .await
                .expect("reject requeue");
        } else {
            cch.basic_nack(
                d.delivery_tag,
                BasicNackOptions {
                    multiple: false,
                    requeue: true,
                },
            )
            .await
            .expect("nack requeue");
        }
    }
    let dead = get_eventually(ch, dlq, true).await;
    assert_eq!(body_of(&dead), "poison");
    assert_eq!(
        (dead.exchange.as_str(), dead.routing_key.as_str()),
        ("", dlq)
    );
    assert!(!dead.redelivered);
    assert_eq!(dead.properties.expiration(), &None);
    assert_eq!(header(&dead.properties, "x-delivery-count"), None);
    assert_eq!(header(&dead.properties, "mine"), Some(&long_str("v")));
    assert_x_death(
        &dead.properties,
        &[Death {
            queue,
            reason: "delivery_limit",
            count: 1,
            exchange: "",
            routing_keys: &[queue],
            original_expiration: Some("60000"),
        }],
    );
    assert_first_death(&dead.properties, queue, "delivery_limit", "");
    assert!(cancel_and_collect(cch, consumer).await.is_empty());
    assert_eq!(message_count(ch, queue).await, 0);
}

async fn quorum_delivery_limit_dead_letters(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (q, dlq) = (unique("qq-limit"), unique("qq-limit-dlq"));
    ch.queue_declare(
        dlq.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare dlq");
    ch.queue_declare(
        q.as_str().into(),
        durable(),
        limited(Some("quorum"), 2, Some(&dlq)),
    )
    .await
    .expect("declare quorum queue");
    let cch = conn.create_channel().await.expect("consumer channel");
    check_limit_through_consumer(&ch, &cch, &q, &dlq).await;
    cleanup(&conn, &[&q, &dlq], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `basic.get` on a quorum queue reports `x-delivery-count` from the first delivery on (0,
/// unlike a consumer's first delivery), and without a dead-letter exchange the message over
/// the limit is dropped.
async fn quorum_delivery_limit_via_get_without_dlx(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("qq-limit-get");
    ch.queue_declare(
        q.as_str().into(),
        durable(),
        limited(Some("quorum"), 1, None),
    )
    .await
    .expect("declare quorum queue");
    publish_confirmed(&ch, "", &q, b"p", BasicProperties::default()).await;
    for n in 0..2i64 {
        let d = get_eventually(&ch, &q, false).await;
        assert_eq!(d.redelivered, n > 0);
        assert_eq!(
            header(&d.properties, "x-delivery-count"),
            Some(&AMQPValue::LongLongInt(n)),
            "get {n}"
        );
        ch.basic_nack(
            d.delivery_tag,
            BasicNackOptions {
                multiple: false,
                requeue: true,
            },
        )
        .await
        .expect("nack requeue");
    }
    eventually("the message over the limit is dropped", || async {
        message_count(&ch, &q).await == 0
    })
    .await;
    assert!(
        ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .is_none()
    );
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `x-delivery-limit` on a classic queue.
///
/// Deliberate difference: RabbitMQ 3.10 refuses the argument on classic queues (406, "of queue
/// type rabbit_classic_queue"); our broker accepts it and applies the same semantics as on a
/// quorum queue (issue 5: "x-delivery-limit on any queue"), so that poison messages are bounded
/// whatever the queue type.
async fn classic_delivery_limit(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (q, dlq) = (unique("cq-limit"), unique("cq-limit-dlq"));
    ch.queue_declare(
        dlq.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare dlq");
    match b.target {
        Target::RabbitMq => {
            for value in [2, -1] {
                let doomed = conn.create_channel().await.expect("channel");
                assert_amqp_error(
                    doomed
                        .queue_declare(
                            q.as_str().into(),
                            QueueDeclareOptions::default(),
                            field_table(&[("x-delivery-limit", AMQPValue::LongInt(value))]),
                        )
                        .await,
                    406,
                    &format!(
                        "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '{q}' in \
                         vhost '/' of queue type rabbit_classic_queue"
                    ),
                );
            }
        }
        Target::Ours => {
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions::default(),
                limited(None, 2, Some(&dlq)),
            )
            .await
            .expect("our broker accepts x-delivery-limit on a classic queue");
            let cch = conn.create_channel().await.expect("consumer channel");
            check_limit_through_consumer(&ch, &cch, &q, &dlq).await;
        }
    }
    cleanup(&conn, &[&q, &dlq], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    quorum_delivery_limit_dead_letters,
    quorum_delivery_limit_via_get_without_dlx,
    classic_delivery_limit,
);
