//! Dead lettering: `x-dead-letter-exchange` / `-routing-key`, the reasons `rejected` (reject
//! and nack without requeue), `expired` and `maxlen`, the `x-death` header field by field and
//! its aggregation, `x-first-death-*`, the `expiration` property removed, dead-letter cycles,
//! and the seed's retry loop (reject → `.retry` with a TTL → back → parked after N attempts).

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    BasicRejectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use tests::{Broker, parity, unique};

use crate::support::{
    Death, assert_amqp_error, assert_first_death, assert_x_death, body_of, cleanup,
    confirm_channel, drain, eventually, field_table, get_eventually, header, long_str,
    message_count, next_delivery, publish_confirmed, str_array,
};

async fn declare(ch: &Channel, name: &str, args: FieldTable) {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

async fn fanout(ch: &Channel, name: &str) {
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("declare exchange {name}: {e}"));
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange}: {e}"));
}

fn dlx(exchange: &str) -> (&'static str, AMQPValue) {
    ("x-dead-letter-exchange", long_str(exchange))
}

fn dlrk(key: &str) -> (&'static str, AMQPValue) {
    ("x-dead-letter-routing-key", long_str(key))
}

async fn publish(ch: &Channel, queue: &str, body: &str) {
    publish_confirmed(ch, "", queue, body.as_bytes(), BasicProperties::default()).await;
}

/// A rejected message goes to the dead-letter exchange with its routing key, body and
/// properties, minus `expiration`, plus `x-death` and `x-first-death-*`. `CC` stays; the
/// `routing-keys` of the death list the publish key and the `CC` keys.
async fn rejected_message_gets_x_death(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (x, dlq, src) = (unique("dlx"), unique("dlq"), unique("dl-src"));
    fanout(&ch, &x).await;
    declare(&ch, &dlq, FieldTable::default()).await;
    bind(&ch, &dlq, &x, "").await;
    declare(&ch, &src, field_table(&[dlx(&x)])).await;
    bind(&ch, &src, "amq.direct", "k").await;
    let props = BasicProperties::default()
        .with_expiration("60000".into())
        .with_priority(3)
        .with_delivery_mode(2)
        .with_message_id("mid-7".into())
        .with_content_type("text/plain".into())
        .with_headers(field_table(&[
            ("CC", str_array(&["cc-a", "cc-b"])),
            ("mine", long_str("v")),
        ]));
    publish_confirmed(&ch, "amq.direct", "k", b"payload", props.clone()).await;
    let d = get_eventually(&ch, &src, false).await;
    assert_eq!(d.properties, props, "delivered as published");
    ch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: false })
        .await
        .expect("reject");

    let dead = get_eventually(&ch, &dlq, true).await;
    assert_eq!(body_of(&dead), "payload");
    assert_eq!(dead.exchange.as_str(), x, "delivered from the DLX");
    assert_eq!(dead.routing_key.as_str(), "k", "original routing key");
    assert!(!dead.redelivered);
    let p = &dead.properties;
    assert_eq!(p.expiration(), &None, "expiration removed");
    assert_eq!(p.priority(), &Some(3));
    assert_eq!(p.delivery_mode(), &Some(2));
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("mid-7"));
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(header(p, "mine"), Some(&long_str("v")));
    assert_eq!(header(p, "CC"), Some(&str_array(&["cc-a", "cc-b"])));
    assert_x_death(
        p,
        &[Death {
            queue: &src,
            reason: "rejected",
            count: 1,
            exchange: "amq.direct",
            routing_keys: &["k", "cc-a", "cc-b"],
            original_expiration: Some("60000"),
        }],
    );
    assert_first_death(p, &src, "rejected", "amq.direct");
    let mut keys: Vec<&str> = p
        .headers()
        .as_ref()
        .expect("headers")
        .inner()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "CC",
            "mine",
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason"
        ]
    );
    assert_eq!(message_count(&ch, &src).await, 0);
    cleanup(&conn, &[&src, &dlq], &[&x]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `basic.nack` with requeue=false dead-letters too (also `multiple`), in order; requeue=true
/// and channel closure requeue instead of dead-lettering.
async fn nack_and_requeue_rules(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (dlq, src) = (unique("dlq"), unique("dl-nack"));
    declare(&ch, &dlq, FieldTable::default()).await;
    declare(&ch, &src, field_table(&[dlx(""), dlrk(&dlq)])).await;
    for body in ["a", "b", "c"] {
        publish(&ch, &src, body).await;
    }
    let cch = conn.create_channel().await.expect("channel");
    assert_eq!(body_of(&get_eventually(&cch, &src, false).await), "a");
    let b2 = get_eventually(&cch, &src, false).await;
    let c = get_eventually(&cch, &src, false).await;
    // requeue=true: back in the queue, not dead-lettered.
    cch.basic_reject(c.delivery_tag, BasicRejectOptions { requeue: true })
        .await
        .expect("reject requeue");
    cch.basic_nack(
        b2.delivery_tag,
        BasicNackOptions {
            multiple: true,
            requeue: false,
        },
    )
    .await
    .expect("nack multiple");
    let first = get_eventually(&ch, &dlq, true).await;
    let second = get_eventually(&ch, &dlq, true).await;
    assert_eq!(
        (body_of(&first), body_of(&second)),
        ("a".into(), "b".into())
    );
    for d in [&first, &second] {
        assert_eq!(
            d.routing_key.as_str(),
            dlq,
            "x-dead-letter-routing-key replaces the key"
        );
        assert_eq!(d.exchange.as_str(), "");
        assert_x_death(
            &d.properties,
            &[Death {
                queue: &src,
                reason: "rejected",
                count: 1,
                exchange: "",
                routing_keys: &[&src],
                original_expiration: None,
            }],
        );
        assert_first_death(&d.properties, &src, "rejected", "");
    }

    // Unacked deliveries requeued by closing the channel are not dead-lettered.
    let c_again = get_eventually(&cch, &src, false).await;
    assert_eq!(body_of(&c_again), "c");
    assert!(c_again.redelivered);
    assert_eq!(header(&c_again.properties, "x-death"), None);
    cch.close(200, "bye".into()).await.expect("close channel");
    assert_eq!(drain(&ch, &src).await, ["c"]);
    assert!(drain(&ch, &dlq).await.is_empty());
    cleanup(&conn, &[&src, &dlq], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Expired messages are dead-lettered with reason `expired`; `original-expiration` appears
/// only when the message had its own `expiration`.
async fn expired_message_gets_x_death(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (x, dlq, src) = (unique("dlx"), unique("dlq"), unique("dl-ttl"));
    fanout(&ch, &x).await;
    declare(&ch, &dlq, FieldTable::default()).await;
    bind(&ch, &dlq, &x, "").await;
    declare(
        &ch,
        &src,
        field_table(&[dlx(&x), ("x-message-ttl", AMQPValue::LongInt(100))]),
    )
    .await;
    publish(&ch, &src, "queue-ttl").await;
    let d = get_eventually(&ch, &dlq, true).await;
    assert_eq!(body_of(&d), "queue-ttl");
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        (x.as_str(), src.as_str())
    );
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

    publish_confirmed(
        &ch,
        "",
        &src,
        b"message-ttl",
        BasicProperties::default().with_expiration("50".into()),
    )
    .await;
    let d = get_eventually(&ch, &dlq, true).await;
    assert_eq!(body_of(&d), "message-ttl");
    assert_eq!(d.properties.expiration(), &None);
    assert_x_death(
        &d.properties,
        &[Death {
            queue: &src,
            reason: "expired",
            count: 1,
            exchange: "",
            routing_keys: &[&src],
            original_expiration: Some("50"),
        }],
    );
    cleanup(&conn, &[&src, &dlq], &[&x]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// With `x-dead-letter-routing-key` the dead-lettered message is routed with that key and its
/// `CC` header is removed; `routing-keys` in `x-death` still lists the original keys.
async fn dead_letter_routing_key_drops_cc(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (dlq, src) = (unique("dlq"), unique("dl-rk"));
    declare(&ch, &dlq, FieldTable::default()).await;
    declare(&ch, &src, field_table(&[dlx(""), dlrk(&dlq)])).await;
    publish_confirmed(
        &ch,
        "",
        &src,
        b"cc",
        BasicProperties::default().with_headers(field_table(&[
            ("CC", str_array(&["nowhere"])),
            ("BCC", str_array(&["hidden"])),
        ])),
    )
    .await;
    let d = get_eventually(&ch, &src, false).await;
    assert_eq!(header(&d.properties, "CC"), Some(&str_array(&["nowhere"])));
    assert_eq!(header(&d.properties, "BCC"), None);
    ch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    let dead = get_eventually(&ch, &dlq, true).await;
    assert_eq!(dead.routing_key.as_str(), dlq);
    assert_eq!(header(&dead.properties, "CC"), None, "CC removed");
    assert_eq!(header(&dead.properties, "BCC"), None);
    assert_x_death(
        &dead.properties,
        &[Death {
            queue: &src,
            reason: "rejected",
            count: 1,
            exchange: "",
            routing_keys: &[&src, "nowhere"],
            original_expiration: None,
        }],
    );
    cleanup(&conn, &[&src, &dlq], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Dead-lettering to an exchange that does not exist, or that routes nowhere, drops the
/// message silently.
async fn dead_letter_to_nowhere_drops(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let src = unique("dl-missing");
    let missing = unique("no-such-dlx");
    declare(&ch, &src, field_table(&[dlx(&missing)])).await;
    publish(&ch, &src, "lost").await;
    let d = get_eventually(&ch, &src, false).await;
    ch.basic_nack(
        d.delivery_tag,
        BasicNackOptions {
            multiple: false,
            requeue: false,
        },
    )
    .await
    .expect("nack");
    assert_eq!(message_count(&ch, &src).await, 0);
    assert!(drain(&ch, &src).await.is_empty());
    cleanup(&conn, &[&src], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Counts aggregate per (queue, reason): a message rejected back into its own queue three times
/// has one entry with count 3 (rejection cycles are allowed). Deaths in different queues get
/// their own entries, the most recent first; a repeated (queue, reason) has its entry's count
/// incremented and moved to the front; `x-first-death-*` keeps the first death. The order of
/// the older entries follows RabbitMQ 3.10 exactly (see the quirk below).
async fn x_death_aggregation_and_order(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    // DLX "" without a routing key: dead-letters back to the queue by its original key.
    let own = unique("dl-self");
    declare(&ch, &own, field_table(&[dlx("")])).await;
    publish(&ch, &own, "boomerang").await;
    for _ in 0..3 {
        let d = get_eventually(&ch, &own, false).await;
        assert!(!d.redelivered, "a dead-lettered message is a new message");
        ch.basic_nack(
            d.delivery_tag,
            BasicNackOptions {
                multiple: false,
                requeue: false,
            },
        )
        .await
        .expect("nack");
    }
    let d = get_eventually(&ch, &own, true).await;
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        ("", own.as_str())
    );
    assert_x_death(
        &d.properties,
        &[Death {
            queue: &own,
            reason: "rejected",
            count: 3,
            exchange: "",
            routing_keys: &[&own],
            original_expiration: None,
        }],
    );
    assert_first_death(&d.properties, &own, "rejected", "");

    // The aggregated entry keeps the fields of the first death: only `count` changes. Here
    // the first death has exchange amq.direct, routing keys [key, CC] and an expiration; the
    // later ones come through "" with the dead-letter routing key and no expiration.
    let (own2, key) = (unique("dl-self2"), unique("dl-self2-key"));
    declare(&ch, &own2, field_table(&[dlx(""), dlrk(&own2)])).await;
    bind(&ch, &own2, "amq.direct", &key).await;
    publish_confirmed(
        &ch,
        "amq.direct",
        &key,
        b"boomerang",
        BasicProperties::default()
            .with_expiration("60000".into())
            .with_headers(field_table(&[("CC", str_array(&["elsewhere"]))])),
    )
    .await;
    for _ in 0..3 {
        let d = get_eventually(&ch, &own2, false).await;
        ch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: false })
            .await
            .expect("reject");
    }
    let d = get_eventually(&ch, &own2, true).await;
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        ("", own2.as_str())
    );
    assert_x_death(
        &d.properties,
        &[Death {
            queue: &own2,
            reason: "rejected",
            count: 3,
            exchange: "amq.direct",
            routing_keys: &[&key, "elsewhere"],
            original_expiration: Some("60000"),
        }],
    );
    assert_first_death(&d.properties, &own2, "rejected", "amq.direct");

    // a --rejected--> b --maxlen--> c --rejected--> a --rejected--> b
    let (qa, qb, qc) = (unique("dl-a"), unique("dl-b"), unique("dl-c"));
    declare(&ch, &qc, field_table(&[dlx(""), dlrk(&qa)])).await;
    declare(
        &ch,
        &qb,
        field_table(&[dlx(""), dlrk(&qc), ("x-max-length", AMQPValue::LongInt(1))]),
    )
    .await;
    declare(&ch, &qa, field_table(&[dlx(""), dlrk(&qb)])).await;
    publish(&ch, &qa, "traveller").await;
    let d = get_eventually(&ch, &qa, false).await;
    ch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: false })
        .await
        .expect("reject");
    eventually("b holds the rejected message", || async {
        message_count(&ch, &qb).await == 1
    })
    .await;
    publish(&ch, &qb, "pusher").await;
    let d = get_eventually(&ch, &qc, false).await;
    assert_eq!(body_of(&d), "traveller");
    assert_eq!(d.routing_key.as_str(), qc);
    assert_x_death(
        &d.properties,
        &[
            Death {
                queue: &qb,
                reason: "maxlen",
                count: 1,
                exchange: "",
                routing_keys: &[&qb],
                original_expiration: None,
            },
            Death {
                queue: &qa,
                reason: "rejected",
                count: 1,
                exchange: "",
                routing_keys: &[&qa],
                original_expiration: None,
            },
        ],
    );
    assert_first_death(&d.properties, &qa, "rejected", "");
    assert_eq!(drain(&ch, &qb).await, ["pusher"]);
    ch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: false })
        .await
        .expect("reject in c");
    // RabbitMQ 3.10 quirk (rabbit_dead_letter:group_by_queue_and_reason/1 folds the existing
    // entries into a list in reverse): the new or updated entry goes first, and when the
    // message already had two or more entries, the *other* entries come in the reverse of
    // their previous order. So "most recent first" holds for the first entry only.
    let d = get_eventually(&ch, &qa, false).await;
    assert_eq!(body_of(&d), "traveller");
    assert_x_death(
        &d.properties,
        &[
            Death {
                queue: &qc,
                reason: "rejected",
                count: 1,
                exchange: "",
                routing_keys: &[&qc],
                original_expiration: None,
            },
            Death {
                queue: &qa,
                reason: "rejected",
                count: 1,
                exchange: "",
                routing_keys: &[&qa],
                original_expiration: None,
            },
            Death {
                queue: &qb,
                reason: "maxlen",
                count: 1,
                exchange: "",
                routing_keys: &[&qb],
                original_expiration: None,
            },
        ],
    );
    ch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: false })
        .await
        .expect("reject in a again");
    // The (a, rejected) entry gets count 2 and moves to the front.
    let d = get_eventually(&ch, &qb, true).await;
    assert_eq!(body_of(&d), "traveller");
    assert_x_death(
        &d.properties,
        &[
            Death {
                queue: &qa,
                reason: "rejected",
                count: 2,
                exchange: "",
                routing_keys: &[&qa],
                original_expiration: None,
            },
            Death {
                queue: &qb,
                reason: "maxlen",
                count: 1,
                exchange: "",
                routing_keys: &[&qb],
                original_expiration: None,
            },
            Death {
                queue: &qc,
                reason: "rejected",
                count: 1,
                exchange: "",
                routing_keys: &[&qc],
                original_expiration: None,
            },
        ],
    );
    assert_first_death(&d.properties, &qa, "rejected", "");
    cleanup(&conn, &[&own, &own2, &qa, &qb, &qc], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// A message that would dead-letter back into a queue it already died in, with no rejection
/// anywhere in that cycle (here: expiry), is dropped for that queue; other queues the DLX
/// routes to still get it.
async fn expiry_cycle_is_broken(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (x, looping, witness) = (unique("dlx-cycle"), unique("dl-loop"), unique("dl-witness"));
    fanout(&ch, &x).await;
    declare(&ch, &witness, FieldTable::default()).await;
    declare(
        &ch,
        &looping,
        field_table(&[dlx(&x), ("x-message-ttl", AMQPValue::LongInt(100))]),
    )
    .await;
    bind(&ch, &looping, &x, "").await;
    bind(&ch, &witness, &x, "").await;
    publish(&ch, &looping, "round").await;
    eventually("the witness queue gets the expired message", || async {
        message_count(&ch, &witness).await == 1
    })
    .await;
    // Had the loop queue taken it back it would expire again and reach the witness again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(message_count(&ch, &looping).await, 0);
    let d = get_eventually(&ch, &witness, true).await;
    assert_eq!(body_of(&d), "round");
    assert_x_death(
        &d.properties,
        &[Death {
            queue: &looping,
            reason: "expired",
            count: 1,
            exchange: "",
            routing_keys: &[&looping],
            original_expiration: None,
        }],
    );
    assert!(drain(&ch, &witness).await.is_empty());
    cleanup(&conn, &[&looping, &witness], &[&x]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Invalid dead-letter arguments are refused with 406.
async fn invalid_dead_letter_args(b: &Broker) {
    let conn = b.connect().await;
    let q = unique("dl-bad");
    let cases: [(FieldTable, String); 2] = [
        (
            field_table(&[dlrk("rk")]),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' \
                 in vhost '/': routing_key_but_no_dlx_defined"
            ),
        ),
        (
            field_table(&[("x-dead-letter-exchange", AMQPValue::LongInt(1))]),
            format!(
                "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' \
                 in queue '{q}' in vhost '/'"
            ),
        ),
    ];
    for (args, text) in cases {
        let ch = conn.create_channel().await.expect("channel");
        assert_amqp_error(
            ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), args)
                .await,
            406,
            &text,
        );
    }
    conn.close(200, "bye".into()).await.expect("close");
}

/// The seed's retry loop end to end, with the clients' own topology and retry code: a failing
/// delivery is rejected, waits in `<queue>.retry` for the TTL, comes back with `x-death`
/// counting the attempts, and after `max_attempts` is parked in `<queue>.dead`.
async fn retry_loop_parks_after_max_attempts(b: &Broker) {
    use clients::retry::{Disposition, HandlerError, RetryPolicy, attempt_number};
    use clients::topology::{QueueName, retry_queue_args, work_queue_args};

    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let work = QueueName::new(&unique("sales-work")).expect("queue name");
    let policy = RetryPolicy::new(3, Duration::from_millis(200)).expect("policy");
    let (retry, dead) = (work.retry(), work.dead());
    declare(&ch, work.as_str(), work_queue_args(&work)).await;
    declare(&ch, &retry, retry_queue_args(&work, policy.delay)).await;
    declare(&ch, &dead, FieldTable::default()).await;

    publish_confirmed(
        &ch,
        "",
        work.as_str(),
        b"sale-42",
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id("sale-42".into()),
    )
    .await;
    let cch = conn.create_channel().await.expect("consumer channel");
    let mut consumer = cch
        .basic_consume(
            work.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let w = work.as_str();
    for attempt in 1..=3u32 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body_of(&d), "sale-42");
        assert_eq!(d.routing_key.as_str(), w);
        assert!(!d.redelivered);
        let headers = d.properties.headers().as_ref();
        assert_eq!(attempt_number(headers, w), attempt);
        let n = i64::from(attempt) - 1;
        if attempt == 1 {
            assert_eq!(header(&d.properties, "x-death"), None);
        } else {
            // Most recent first: the expiry in the retry queue, then the rejection here.
            assert_x_death(
                &d.properties,
                &[
                    Death {
                        queue: &retry,
                        reason: "expired",
                        count: n,
                        exchange: "",
                        routing_keys: &[&retry],
                        original_expiration: None,
                    },
                    Death {
                        queue: w,
                        reason: "rejected",
                        count: n,
                        exchange: "",
                        routing_keys: &[w],
                        original_expiration: None,
                    },
                ],
            );
            assert_first_death(&d.properties, w, "rejected", "");
        }
        let failed: Result<(), HandlerError> = Err(HandlerError::Transient("smtp down".into()));
        match policy.decide(attempt, &failed) {
            Disposition::Retry { .. } => {
                assert!(attempt < 3);
                cch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: false })
                    .await
                    .expect("reject for retry");
            }
            Disposition::Park { reason } => {
                assert_eq!(attempt, 3);
                assert_eq!(reason, "gave up after 3 attempts: smtp down");
                let mut headers = d.properties.headers().clone().unwrap_or_default();
                headers.insert("parked-reason".into(), long_str(&reason));
                cch.basic_publish(
                    "".into(),
                    dead.as_str().into(),
                    BasicPublishOptions::default(),
                    &d.data,
                    d.properties.clone().with_headers(headers),
                )
                .await
                .expect("park");
                cch.basic_ack(d.delivery_tag, BasicAckOptions::default())
                    .await
                    .expect("ack");
            }
            Disposition::Ack => panic!("a failure is never acked"),
        }
    }
    let parked = get_eventually(&ch, &dead, true).await;
    assert_eq!(body_of(&parked), "sale-42");
    assert_eq!(
        header(&parked.properties, "parked-reason"),
        Some(&long_str("gave up after 3 attempts: smtp down"))
    );
    assert_eq!(attempt_number(parked.properties.headers().as_ref(), w), 3);
    for q in [w, retry.as_str(), dead.as_str()] {
        assert_eq!(message_count(&ch, q).await, 0, "{q} is empty at the end");
    }
    cleanup(&conn, &[w, &retry, &dead], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    rejected_message_gets_x_death,
    nack_and_requeue_rules,
    expired_message_gets_x_death,
    dead_letter_routing_key_drops_cc,
    dead_letter_to_nowhere_drops,
    x_death_aggregation_and_order,
    expiry_cycle_is_broken,
    invalid_dead_letter_args,
    retry_loop_parks_after_max_attempts,
);
