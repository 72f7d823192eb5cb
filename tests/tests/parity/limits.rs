//! Queue length limits: `x-max-length`, `x-max-length-bytes`, and `x-overflow` = `drop-head`
//! (the default; dead-letters with reason `maxlen` when a DLX is set), `reject-publish`
//! (`basic.nack` under confirms, message not enqueued) and `reject-publish-dlx`.

use lapin::options::{BasicAckOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};
use tests::{Broker, parity, unique};

use crate::support::{
    Death, assert_amqp_error, assert_first_death, assert_x_death, body_of, cleanup,
    confirm_channel, drain, eventually, field_table, get_eventually, long_str, message_count,
    publish_confirmation, publish_confirmed,
};

async fn declare(ch: &Channel, name: &str, args: FieldTable) {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

async fn publish(ch: &Channel, queue: &str, body: &str) {
    publish_confirmed(ch, "", queue, body.as_bytes(), BasicProperties::default()).await;
}

/// "ack" or "nack" for a confirmation without a returned message.
fn outcome(c: &Confirmation) -> &'static str {
    match c {
        Confirmation::Ack(None) => "ack",
        Confirmation::Nack(None) => "nack",
        other => panic!("unexpected confirmation {other:?}"),
    }
}

async fn outcome_of(ch: &Channel, exchange: &str, key: &str, body: &str) -> &'static str {
    outcome(
        &publish_confirmation(
            ch,
            exchange,
            key,
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await,
    )
}

fn max_len(n: i32) -> (&'static str, AMQPValue) {
    ("x-max-length", AMQPValue::LongInt(n))
}

fn overflow(mode: &str) -> (&'static str, AMQPValue) {
    ("x-overflow", long_str(mode))
}

fn dead_letter_to(queue: &str) -> [(&'static str, AMQPValue); 2] {
    [
        ("x-dead-letter-exchange", long_str("")),
        ("x-dead-letter-routing-key", long_str(queue)),
    ]
}

/// `x-max-length` drops from the head (oldest first). Only ready messages count: a delivered,
/// unacked message does not take a place.
async fn max_length_drops_head(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("maxlen");
    declare(&ch, &q, field_table(&[max_len(2)])).await;
    for body in ["m0", "m1", "m2", "m3"] {
        // drop-head never refuses a publish.
        assert_eq!(outcome_of(&ch, "", &q, body).await, "ack");
    }
    assert_eq!(message_count(&ch, &q).await, 2);
    assert_eq!(drain(&ch, &q).await, ["m2", "m3"]);

    publish(&ch, &q, "a").await;
    publish(&ch, &q, "b").await;
    let held = get_eventually(&ch, &q, false).await;
    assert_eq!(body_of(&held), "a");
    publish(&ch, &q, "c").await;
    assert_eq!(message_count(&ch, &q).await, 2, "b and c ready, a unacked");
    publish(&ch, &q, "d").await;
    ch.basic_ack(held.delivery_tag, BasicAckOptions::default())
        .await
        .expect("ack");
    assert_eq!(drain(&ch, &q).await, ["c", "d"]);
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `x-max-length-bytes` counts body bytes only (not headers or properties). A single message
/// larger than the limit is accepted and then dropped at once.
async fn max_length_bytes_counts_bodies(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (q, dlq) = (unique("maxbytes"), unique("maxbytes-dlq"));
    declare(&ch, &dlq, FieldTable::default()).await;
    let mut args = field_table(&[("x-max-length-bytes", AMQPValue::LongInt(10))]);
    for (k, v) in dead_letter_to(&dlq) {
        args.insert(k.into(), v);
    }
    declare(&ch, &q, args).await;
    let bulky = BasicProperties::default()
        .with_headers(field_table(&[("padding", long_str(&"x".repeat(100)))]));
    for body in ["aaaa", "bbbb", "cccc", "dd"] {
        let c = publish_confirmation(&ch, "", &q, body.as_bytes(), bulky.clone()).await;
        assert_eq!(outcome(&c), "ack");
    }
    assert_eq!(drain(&ch, &q).await, ["bbbb", "cccc", "dd"]);
    assert_eq!(drain(&ch, &dlq).await, ["aaaa"]);

    assert_eq!(outcome_of(&ch, "", &q, "01234567890").await, "ack");
    let d = get_eventually(&ch, &dlq, true).await;
    assert_eq!(body_of(&d), "01234567890");
    assert_x_death(
        &d.properties,
        &[Death {
            queue: &q,
            reason: "maxlen",
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

/// drop-head with a dead-letter exchange: the dropped head is dead-lettered with reason
/// `maxlen`. With `x-max-length` 0 every message is dead-lettered on arrival.
async fn drop_head_dead_letters_maxlen(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (q, dlq, zero) = (
        unique("drophead"),
        unique("drophead-dlq"),
        unique("maxlen-0"),
    );
    declare(&ch, &dlq, FieldTable::default()).await;
    let [a, b2] = dead_letter_to(&dlq);
    declare(
        &ch,
        &q,
        field_table(&[a.clone(), b2.clone(), max_len(1), overflow("drop-head")]),
    )
    .await;
    publish(&ch, &q, "first").await;
    publish(&ch, &q, "second").await;
    let d = get_eventually(&ch, &dlq, true).await;
    assert_eq!(body_of(&d), "first");
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        ("", dlq.as_str())
    );
    assert_x_death(
        &d.properties,
        &[Death {
            queue: &q,
            reason: "maxlen",
            count: 1,
            exchange: "",
            routing_keys: &[&q],
            original_expiration: None,
        }],
    );
    assert_first_death(&d.properties, &q, "maxlen", "");
    assert_eq!(drain(&ch, &q).await, ["second"]);

    declare(&ch, &zero, field_table(&[a, b2, max_len(0)])).await;
    assert_eq!(outcome_of(&ch, "", &zero, "z").await, "ack");
    let d = get_eventually(&ch, &dlq, true).await;
    assert_eq!(body_of(&d), "z");
    assert_eq!(message_count(&ch, &zero).await, 0);
    cleanup(&conn, &[&q, &dlq, &zero], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `reject-publish`: once full, publishes are nacked and not enqueued, and nothing is
/// dead-lettered even with a DLX. When a message goes to several queues and one of them is
/// full, it is nacked but the other queues keep it. Without confirms the publish is dropped
/// silently and the channel stays open.
async fn reject_publish_nacks(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (q, dlq, free, zero) = (
        unique("rejpub"),
        unique("rejpub-dlq"),
        unique("rejpub-free"),
        unique("rejpub-0"),
    );
    declare(&ch, &dlq, FieldTable::default()).await;
    let [a, b2] = dead_letter_to(&dlq);
    declare(
        &ch,
        &q,
        field_table(&[a, b2, max_len(2), overflow("reject-publish")]),
    )
    .await;
    let got: Vec<_> = {
        let mut v = Vec::new();
        for body in ["1", "2", "3", "4"] {
            v.push(outcome_of(&ch, "", &q, body).await);
        }
        v
    };
    assert_eq!(got, ["ack", "ack", "nack", "nack"]);
    assert_eq!(message_count(&ch, &q).await, 2);

    // Unacked deliveries do not count: taking one makes room for one more.
    let held = get_eventually(&ch, &q, false).await;
    assert_eq!(outcome_of(&ch, "", &q, "5").await, "ack");
    assert_eq!(outcome_of(&ch, "", &q, "6").await, "nack");
    ch.basic_ack(held.delivery_tag, BasicAckOptions::default())
        .await
        .expect("ack");
    assert_eq!(drain(&ch, &q).await, ["2", "5"]);
    assert!(
        drain(&ch, &dlq).await.is_empty(),
        "reject-publish does not dead-letter"
    );

    // Fan-out to a full queue and a free one.
    declare(&ch, &free, FieldTable::default()).await;
    let x = unique("rejpub-x");
    ch.exchange_declare(
        x.as_str().into(),
        lapin::ExchangeKind::Fanout,
        lapin::options::ExchangeDeclareOptions {
            auto_delete: false,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare fanout");
    for queue in [&q, &free] {
        ch.queue_bind(
            queue.as_str().into(),
            x.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    }
    let got: Vec<_> = {
        let mut v = Vec::new();
        for body in ["f1", "f2", "f3"] {
            v.push(outcome_of(&ch, &x, "", body).await);
        }
        v
    };
    assert_eq!(got, ["ack", "ack", "nack"]);
    assert_eq!(drain(&ch, &free).await, ["f1", "f2", "f3"]);
    assert_eq!(drain(&ch, &q).await, ["f1", "f2"]);

    // x-max-length 0: every publish is refused.
    declare(
        &ch,
        &zero,
        field_table(&[max_len(0), overflow("reject-publish")]),
    )
    .await;
    assert_eq!(outcome_of(&ch, "", &zero, "z").await, "nack");
    assert_eq!(message_count(&ch, &zero).await, 0);

    // Without confirms: silently dropped, the channel stays usable.
    let plain = conn.create_channel().await.expect("channel");
    plain
        .basic_publish(
            "".into(),
            zero.as_str().into(),
            BasicPublishOptions::default(),
            b"nc",
            BasicProperties::default(),
        )
        .await
        .expect("publish without confirms");
    assert_eq!(message_count(&plain, &zero).await, 0);
    assert!(plain.status().connected());
    cleanup(&conn, &[&q, &dlq, &free, &zero], &[&x]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `reject-publish-dlx`: the refused publish is nacked *and* dead-lettered with reason
/// `maxlen`; the queue keeps its oldest messages.
async fn reject_publish_dlx(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (q, dlq) = (unique("rejpubdlx"), unique("rejpubdlx-dlq"));
    declare(&ch, &dlq, FieldTable::default()).await;
    let [a, b2] = dead_letter_to(&dlq);
    declare(
        &ch,
        &q,
        field_table(&[a, b2, max_len(2), overflow("reject-publish-dlx")]),
    )
    .await;
    let mut got = Vec::new();
    for body in ["1", "2", "3", "4"] {
        got.push(outcome_of(&ch, "", &q, body).await);
    }
    assert_eq!(got, ["ack", "ack", "nack", "nack"]);
    assert_eq!(drain(&ch, &q).await, ["1", "2"]);
    let d = get_eventually(&ch, &dlq, true).await;
    assert_eq!(body_of(&d), "3");
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        ("", dlq.as_str())
    );
    assert_x_death(
        &d.properties,
        &[Death {
            queue: &q,
            reason: "maxlen",
            count: 1,
            exchange: "",
            routing_keys: &[&q],
            original_expiration: None,
        }],
    );
    assert_first_death(&d.properties, &q, "maxlen", "");
    eventually("the second refused message is dead-lettered", || async {
        message_count(&ch, &dlq).await == 1
    })
    .await;
    assert_eq!(drain(&ch, &dlq).await, ["4"]);
    cleanup(&conn, &[&q, &dlq], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Invalid length-limit arguments are refused with 406.
async fn invalid_limit_args(b: &Broker) {
    let conn = b.connect().await;
    let q = unique("limits-bad");
    let cases: [((&str, AMQPValue), String); 4] = [
        (
            max_len(-1),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue '{q}' in vhost '/': \
                 {{value_negative,-1}}"
            ),
        ),
        (
            ("x-max-length-bytes", AMQPValue::LongInt(-1)),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-length-bytes' for queue '{q}' in vhost \
                 '/': {{value_negative,-1}}"
            ),
        ),
        (
            overflow("bogus"),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue '{q}' in vhost '/': \
                 invalid_overflow"
            ),
        ),
        (
            ("x-max-length", long_str("10")),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue '{q}' in vhost '/': \
                 \"expected integer, got longstr\""
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
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    max_length_drops_head,
    max_length_bytes_counts_bodies,
    drop_head_dead_letters_maxlen,
    reject_publish_nacks,
    reject_publish_dlx,
    invalid_limit_args,
);
