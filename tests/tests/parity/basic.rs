//! The basic class: qos, consume/cancel, publish (mandatory, immediate, user-id, missing
//! exchange), get, ack/nack/reject/recover, requeue on channel and connection close, property
//! round-trips and body framing.

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRecoverOptions, BasicRejectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::protocol::AMQPClass;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Consumer};
use tests::{Broker, parity, unique};

use crate::support::{
    RawConn, WAIT, assert_amqp_error, confirm_channel, eventually, message_count, next_amqp_error,
    publish_confirmed,
};

// ---------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------

/// Declares a fresh, non-durable, non-exclusive queue and returns its name.
async fn declare(ch: &Channel, prefix: &str) -> String {
    let q = unique(prefix);
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
    q
}

async fn delete(ch: &Channel, q: &str) {
    ch.queue_delete(q.into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
}

/// Publishes `m0`..`m{n-1}` to `q` through the default exchange on a confirm channel, each
/// confirmed, so all of them are enqueued when this returns.
async fn publish_n(confirm_ch: &Channel, q: &str, n: usize) {
    for i in 0..n {
        publish_confirmed(
            confirm_ch,
            "",
            q,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

async fn consume(ch: &Channel, q: &str, tag: &str, options: BasicConsumeOptions) -> Consumer {
    ch.basic_consume(q.into(), tag.into(), options, FieldTable::default())
        .await
        .expect("basic.consume")
}

async fn consume_manual(ch: &Channel, q: &str) -> Consumer {
    consume(ch, q, "", BasicConsumeOptions::default()).await
}

/// The next delivery of `c`, bounded by [`WAIT`].
async fn next(c: &mut Consumer) -> Delivery {
    tokio::time::timeout(WAIT, c.next())
        .await
        .expect("timed out waiting for a delivery")
        .expect("consumer stream ended")
        .expect("consumer delivered an error")
}

/// Whichever of two consumers delivers next, tagged 1 or 2.
async fn next_of_two(c1: &mut Consumer, c2: &mut Consumer) -> (u8, Delivery) {
    futures_lite::future::or(async { (1, next(c1).await) }, async { (2, next(c2).await) }).await
}

/// Gets one message with manual ack, panicking when the queue is empty.
async fn get(ch: &Channel, q: &str) -> lapin::message::BasicGetMessage {
    ch.basic_get(q.into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
        .expect("basic.get returned get-empty")
}

/// Gets everything in the queue (no-ack) as (body, redelivered) pairs.
async fn drain_flags(ch: &Channel, q: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(q.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        out.push((body(&m.delivery), m.delivery.redelivered));
    }
    out
}

fn flagged(bodies: &[&str], redelivered: bool) -> Vec<(String, bool)> {
    bodies
        .iter()
        .map(|b| ((*b).to_owned(), redelivered))
        .collect()
}

fn ack() -> BasicAckOptions {
    BasicAckOptions { multiple: false }
}

// ---------------------------------------------------------------------------------------------
// basic.qos
// ---------------------------------------------------------------------------------------------

/// `global=false` limits each consumer separately: two consumers on one channel with
/// prefetch 2 hold two unacked deliveries each; an ack frees exactly one slot for its consumer.
async fn qos_per_consumer_prefetch(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "qos-per-consumer").await;
    publish_n(&pubch, &q, 10).await;

    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(2, BasicQosOptions { global: false })
        .await
        .expect("basic.qos");
    let mut c1 = consume_manual(&ch, &q).await;
    let mut c2 = consume_manual(&ch, &q).await;
    let a = [next(&mut c1).await, next(&mut c1).await];
    let z = [next(&mut c2).await, next(&mut c2).await];
    let mut seen: Vec<String> = a.iter().chain(z.iter()).map(body).collect();
    seen.sort();
    assert_eq!(seen, names(0..4));
    // 2 + 2 in flight, nothing more may leave the queue.
    assert_eq!(message_count(&pubch, &q).await, 6);

    ch.basic_ack(a[0].delivery_tag, ack()).await.expect("ack");
    let a3 = next(&mut c1).await;
    assert_eq!(body(&a3), "m4");
    assert_eq!(message_count(&pubch, &q).await, 5);

    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `global=true` limits the whole channel: two consumers share a prefetch of 3.
async fn qos_global_per_channel(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "qos-global").await;
    publish_n(&pubch, &q, 10).await;

    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(3, BasicQosOptions { global: true })
        .await
        .expect("basic.qos");
    let mut c1 = consume_manual(&ch, &q).await;
    let mut c2 = consume_manual(&ch, &q).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_of_two(&mut c1, &mut c2).await);
    }
    let mut seen: Vec<String> = got.iter().map(|(_, d)| body(d)).collect();
    seen.sort();
    assert_eq!(seen, names(0..3));
    assert_eq!(message_count(&pubch, &q).await, 7);

    ch.basic_ack(got[0].1.delivery_tag, ack())
        .await
        .expect("ack");
    let (_, fourth) = next_of_two(&mut c1, &mut c2).await;
    assert_eq!(body(&fourth), "m3");
    assert_eq!(message_count(&pubch, &q).await, 6);

    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// With prefetch N exactly N deliveries are outstanding; each ack (single or multiple) lets
/// exactly as many new ones through, in queue order.
async fn qos_prefetch_exact_until_ack(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "qos-exact").await;
    publish_n(&pubch, &q, 10).await;

    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(3, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    assert_eq!(ch.status().qos().prefetch_count, Some(3));
    let mut c = consume_manual(&ch, &q).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next(&mut c).await);
    }
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), names(0..3));
    assert_eq!(
        got.iter().map(|d| d.delivery_tag).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(message_count(&pubch, &q).await, 7);

    ch.basic_ack(1, ack()).await.expect("ack 1");
    let d4 = next(&mut c).await;
    assert_eq!((body(&d4), d4.delivery_tag), ("m3".to_owned(), 4));
    assert_eq!(message_count(&pubch, &q).await, 6);

    // multiple=true up to 4 releases 2, 3 and 4: three more deliveries.
    ch.basic_ack(4, BasicAckOptions { multiple: true })
        .await
        .expect("ack multiple");
    let more = [next(&mut c).await, next(&mut c).await, next(&mut c).await];
    assert_eq!(more.iter().map(body).collect::<Vec<_>>(), names(4..7));
    assert_eq!(message_count(&pubch, &q).await, 3);

    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// basic.qos with prefetch_size != 0 is a hard 540 NOT_IMPLEMENTED. lapin cannot send a
/// prefetch size, so this goes over a raw connection.
async fn qos_prefetch_size_not_implemented(b: &Broker) {
    use lapin::protocol::channel::{AMQPMethod, Open};
    let (mut raw, _) = RawConn::open(b.addr).await;
    raw.send_method(1, &AMQPClass::Channel(AMQPMethod::Open(Open {})))
        .await;
    match raw.read_method().await {
        (1, AMQPClass::Channel(AMQPMethod::OpenOk(_))) => {}
        other => panic!("expected channel.open-ok, got {other:?}"),
    }
    // basic.qos: class 60, method 10, prefetch-size 4096, prefetch-count 10, global false.
    let mut qos = vec![0, 60, 0, 10];
    qos.extend_from_slice(&4096u32.to_be_bytes());
    qos.extend_from_slice(&10u16.to_be_bytes());
    qos.push(0);
    raw.send_frame(1, 1, &qos).await;
    let (code, text, class, method) = raw.expect_connection_close().await;
    assert_eq!(code, 540);
    assert_eq!(text, "NOT_IMPLEMENTED - prefetch_size!=0 (4096)");
    assert_eq!((class, method), (60, 10));
}

parity!(
    qos_per_consumer_prefetch,
    qos_global_per_channel,
    qos_prefetch_exact_until_ack,
    qos_prefetch_size_not_implemented,
);

// ---------------------------------------------------------------------------------------------
// basic.consume / basic.cancel
// ---------------------------------------------------------------------------------------------

/// An exclusive consumer locks out every other consumer, and cannot be added to a queue that
/// already has one.
async fn consume_exclusive(b: &Broker) {
    let conn = b.connect().await;
    let ch1 = conn.create_channel().await.expect("channel");
    let q = declare(&ch1, "consume-exclusive").await;
    let exclusive = BasicConsumeOptions {
        exclusive: true,
        ..BasicConsumeOptions::default()
    };
    let c1 = consume(&ch1, &q, "", exclusive).await;

    let other = b.connect().await;
    let ch2 = other.create_channel().await.expect("channel");
    assert_amqp_error(
        ch2.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await,
        403,
        &format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"),
    );
    // Same connection, another channel: equally refused.
    let ch3 = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        ch3.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await,
        403,
        &format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"),
    );

    // Once the exclusive consumer is cancelled, an ordinary one is fine; an exclusive one on
    // a queue that already has a consumer is refused.
    ch1.basic_cancel(c1.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    let ch4 = other.create_channel().await.expect("channel");
    let _plain = consume_manual(&ch4, &q).await;
    let ch5 = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        ch5.basic_consume(
            q.as_str().into(),
            "".into(),
            exclusive,
            FieldTable::default(),
        )
        .await,
        403,
        &format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"),
    );

    delete(&ch1, &q).await;
    other.close(200, "bye".into()).await.expect("close");
    conn.close(200, "bye".into()).await.expect("close");
}

/// An empty consumer tag gets a server-generated `amq.ctag-` tag; an explicit one is kept;
/// deliveries carry it.
async fn consume_tags(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = declare(&ch, "consume-tags").await;
    let generated = consume_manual(&ch, &q).await;
    assert!(
        generated.tag().as_str().starts_with("amq.ctag-"),
        "server-generated tag {:?}",
        generated.tag()
    );
    let explicit_tag = unique("my-tag");
    let explicit = consume(&ch, &q, &explicit_tag, BasicConsumeOptions::default()).await;
    assert_eq!(explicit.tag().as_str(), explicit_tag);
    assert_ne!(generated.tag(), explicit.tag());
    delete(&ch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Reusing a consumer tag on the same channel is a hard 530 NOT_ALLOWED.
async fn consume_duplicate_tag(b: &Broker) {
    let conn = b.connect().await;
    let admin = b.connect().await;
    let ach = admin.create_channel().await.expect("channel");
    let q = declare(&ach, "consume-dup-tag").await;
    let ch = conn.create_channel().await.expect("channel");
    let tag = unique("dup");
    let _first = consume(&ch, &q, &tag, BasicConsumeOptions::default()).await;
    assert_amqp_error(
        ch.basic_consume(
            q.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await,
        530,
        &format!("NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"),
    );
    eventually("connection closed by the server", || {
        let closed = !conn.status().connected();
        async move { closed }
    })
    .await;
    delete(&ach, &q).await;
    admin.close(200, "bye".into()).await.expect("close");
}

/// A no-ack consumer gets every message with no ack expected: the queue is empty afterwards
/// and acking such a delivery tag is an unknown-tag error.
async fn consume_no_ack(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "consume-noack").await;
    publish_n(&pubch, &q, 3).await;
    let ch = conn.create_channel().await.expect("channel");
    let mut c = consume(
        &ch,
        &q,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        },
    )
    .await;
    let got = [next(&mut c).await, next(&mut c).await, next(&mut c).await];
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), names(0..3));
    assert_eq!(
        got.iter().map(|d| d.delivery_tag).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(got.iter().all(|d| !d.redelivered));
    assert_eq!(message_count(&pubch, &q).await, 0);

    let mut events = Box::pin(conn.events_listener());
    ch.basic_ack(2, ack()).await.expect("send ack");
    assert_eq!(
        next_amqp_error(&mut events).await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 2".to_owned()
        )
    );
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// The `x-priority` consumer argument is accepted; while the high-priority consumer has
/// capacity it gets every message.
async fn consume_x_priority(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "consume-prio").await;
    let ch = conn.create_channel().await.expect("channel");
    let mut low_args = FieldTable::default();
    low_args.insert("x-priority".into(), AMQPValue::LongInt(1));
    let mut low = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            low_args,
        )
        .await
        .expect("consume with x-priority 1");
    let mut high_args = FieldTable::default();
    high_args.insert("x-priority".into(), AMQPValue::LongInt(10));
    let mut high = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            high_args,
        )
        .await
        .expect("consume with x-priority 10");
    publish_n(&pubch, &q, 4).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(body(&next(&mut high).await));
    }
    assert_eq!(got, names(0..4));
    // Cancel-ok follows every delivery made to `low`; its stream must hold none.
    ch.basic_cancel(low.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel low");
    let rest = tokio::time::timeout(WAIT, low.next())
        .await
        .expect("cancelled consumer stream ends");
    assert!(rest.is_none(), "low-priority consumer got {rest:?}");
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// basic.cancel ends the consumer's stream and later messages stay in the queue.
async fn cancel_stops_deliveries(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "cancel").await;
    let ch = conn.create_channel().await.expect("channel");
    let mut c = consume(
        &ch,
        &q,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        },
    )
    .await;
    publish_n(&pubch, &q, 1).await;
    assert_eq!(body(&next(&mut c).await), "m0");
    ch.basic_cancel(c.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    let end = tokio::time::timeout(WAIT, c.next())
        .await
        .expect("cancelled stream ends");
    assert!(end.is_none(), "after cancel got {end:?}");
    publish_n(&pubch, &q, 3).await;
    assert_eq!(message_count(&pubch, &q).await, 3);
    let consumers = pubch
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare")
        .consumer_count();
    assert_eq!(consumers, 0);
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Consumers of one queue take turns: messages alternate strictly between two consumers.
async fn consume_round_robin(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "round-robin").await;
    let ch1 = conn.create_channel().await.expect("channel");
    let ch2 = conn.create_channel().await.expect("channel");
    let mut c1 = consume_manual(&ch1, &q).await;
    let mut c2 = consume_manual(&ch2, &q).await;
    publish_n(&pubch, &q, 6).await;
    let mut first = Vec::new();
    let mut second = Vec::new();
    for _ in 0..3 {
        first.push(body(&next(&mut c1).await));
        second.push(body(&next(&mut c2).await));
    }
    let (even, odd): (Vec<String>, Vec<String>) = (
        ["m0", "m2", "m4"].map(String::from).into(),
        ["m1", "m3", "m5"].map(String::from).into(),
    );
    assert!(
        (first == even && second == odd) || (first == odd && second == even),
        "not round-robin: {first:?} / {second:?}"
    );
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// basic.get and basic.consume on a missing queue close the channel with 404.
async fn get_consume_missing_queue(b: &Broker) {
    let conn = b.connect().await;
    let q = unique("no-such-queue");
    let ch = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        ch.basic_get(q.as_str().into(), BasicGetOptions::default())
            .await,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    let ch = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        ch.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    conn.close(200, "bye".into()).await.expect("close");
}

/// Cancelling an unknown consumer tag is answered with cancel-ok. Cancelling a consumer does not
/// requeue its unacked deliveries: they can still be acked, and the rest come back when the
/// channel closes.
async fn cancel_keeps_unacked(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "cancel-unacked").await;
    publish_n(&pubch, &q, 3).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_cancel(
        unique("never-used").as_str().into(),
        BasicCancelOptions::default(),
    )
    .await
    .expect("cancel of an unknown tag is fine");
    let mut c = consume_manual(&ch, &q).await;
    let got = [next(&mut c).await, next(&mut c).await, next(&mut c).await];
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), names(0..3));
    ch.basic_cancel(c.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    assert_eq!(message_count(&pubch, &q).await, 0);
    ch.basic_ack(got[1].delivery_tag, ack())
        .await
        .expect("ack after cancel");
    ch.close(200, "bye".into()).await.expect("close channel");
    // Had the ack failed (unknown tag), the channel error would have requeued all three.
    let (pc, qn) = (&pubch, q.as_str());
    eventually("unacked deliveries requeued", move || async move {
        message_count(pc, qn).await > 0
    })
    .await;
    assert_eq!(drain_flags(&pubch, &q).await, flagged(&["m0", "m2"], true));
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    get_consume_missing_queue,
    cancel_keeps_unacked,
    consume_exclusive,
    consume_tags,
    consume_duplicate_tag,
    consume_no_ack,
    consume_x_priority,
    cancel_stops_deliveries,
    consume_round_robin,
);

// ---------------------------------------------------------------------------------------------
// basic.publish
// ---------------------------------------------------------------------------------------------

/// A mandatory publish nobody can take comes back as basic.return 312 NO_ROUTE, before the
/// confirm ack (lapin attaches the return to the ack only when it arrived first).
async fn publish_mandatory_unroutable(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let rk = unique("nobody-home");
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_message_id("mid-1".into());
    let confirm = ch
        .basic_publish(
            "".into(),
            rk.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            b"returned body",
            props.clone(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let Confirmation::Ack(Some(ret)) = confirm else {
        panic!("expected an ack carrying the returned message, got {confirm:?}");
    };
    assert_eq!(ret.reply_code, 312);
    assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(ret.delivery.exchange.as_str(), "");
    assert_eq!(ret.delivery.routing_key.as_str(), rk);
    assert_eq!(ret.delivery.data, b"returned body");
    assert_eq!(ret.delivery.properties, props);

    // Through a named exchange with no binding for the key: same.
    let confirm = ch
        .basic_publish(
            "amq.direct".into(),
            rk.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            b"again",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let Confirmation::Ack(Some(ret)) = confirm else {
        panic!("expected an ack carrying the returned message, got {confirm:?}");
    };
    assert_eq!((ret.reply_code, ret.reply_text.as_str()), (312, "NO_ROUTE"));
    assert_eq!(ret.delivery.exchange.as_str(), "amq.direct");

    // Not mandatory: silently dropped, still acked.
    let confirm = ch
        .basic_publish(
            "".into(),
            rk.as_str().into(),
            BasicPublishOptions::default(),
            b"dropped",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert_eq!(confirm, Confirmation::Ack(None));

    // Mandatory and routable: no return.
    let q = declare(&ch, "mandatory-ok").await;
    let confirm = ch
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            b"kept",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert_eq!(confirm, Confirmation::Ack(None));
    assert!(ch.wait_for_confirms().await.expect("wait").is_empty());
    delete(&ch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// immediate=true is not supported: hard 540 NOT_IMPLEMENTED closing the connection.
async fn publish_immediate_not_implemented(b: &Broker) {
    let conn = b.connect().await;
    let mut events = Box::pin(conn.events_listener());
    let ch = conn.create_channel().await.expect("channel");
    let q = declare(&ch, "immediate").await;
    ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions {
            mandatory: false,
            immediate: true,
        },
        b"now",
        BasicProperties::default(),
    )
    .await
    .expect("publish is sent");
    assert_eq!(
        next_amqp_error(&mut events).await,
        (540, "NOT_IMPLEMENTED - immediate=true".to_owned())
    );
    eventually("connection closed by the server", || {
        let closed = !conn.status().connected();
        async move { closed }
    })
    .await;
    let admin = b.connect().await;
    let ach = admin.create_channel().await.expect("channel");
    assert_eq!(message_count(&ach, &q).await, 0);
    delete(&ach, &q).await;
    admin.close(200, "bye".into()).await.expect("close");
}

/// Publishing to an exchange that does not exist closes the channel with 404; the connection
/// and its other channels carry on.
async fn publish_missing_exchange(b: &Broker) {
    let conn = b.connect().await;
    let mut events = Box::pin(conn.events_listener());
    let ch = conn.create_channel().await.expect("channel");
    let x = unique("no-such-exchange");
    ch.basic_publish(
        x.as_str().into(),
        "rk".into(),
        BasicPublishOptions::default(),
        b"lost",
        BasicProperties::default(),
    )
    .await
    .expect("publish is sent");
    assert_eq!(
        next_amqp_error(&mut events).await,
        (404, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"))
    );
    let ch2 = conn
        .create_channel()
        .await
        .expect("connection still usable");
    let q = declare(&ch2, "after-404").await;

    // `amq.default` names the default exchange only in the management API; over AMQP it is
    // just another missing exchange.
    ch2.basic_publish(
        "amq.default".into(),
        q.as_str().into(),
        BasicPublishOptions::default(),
        b"lost",
        BasicProperties::default(),
    )
    .await
    .expect("publish is sent");
    assert_eq!(
        next_amqp_error(&mut events).await,
        (
            404,
            "NOT_FOUND - no exchange 'amq.default' in vhost '/'".to_owned()
        )
    );
    let ch3 = conn
        .create_channel()
        .await
        .expect("connection still usable");
    assert_eq!(message_count(&ch3, &q).await, 0);
    delete(&ch3, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// A user_id property must match the authenticated user: a mismatch is 406 on the channel,
/// the matching one is accepted and delivered as is.
async fn publish_user_id_checked(b: &Broker) {
    let conn = b.connect().await;
    let mut events = Box::pin(conn.events_listener());
    let ch = confirm_channel(&conn).await;
    let q = declare(&ch, "user-id").await;
    publish_confirmed(
        &ch,
        "",
        &q,
        b"me",
        BasicProperties::default().with_user_id("guest".into()),
    )
    .await;
    let m = get(&ch, &q).await;
    assert_eq!(
        m.delivery.properties.user_id().as_ref().map(|s| s.as_str()),
        Some("guest")
    );

    let bad = conn.create_channel().await.expect("channel");
    bad.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions::default(),
        b"mallory",
        BasicProperties::default().with_user_id("mallory".into()),
    )
    .await
    .expect("publish is sent");
    assert_eq!(
        next_amqp_error(&mut events).await,
        (
            406,
            "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user \
             was 'guest'"
                .to_owned()
        )
    );
    delete(&ch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// The default exchange routes by queue name; deliveries report exchange "" and the queue name
/// as routing key.
async fn publish_default_exchange(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = declare(&ch, "default-x").await;
    let other = declare(&ch, "default-x-other").await;
    publish_confirmed(&ch, "", &q, b"to q", BasicProperties::default()).await;
    let m = get(&ch, &q).await;
    assert_eq!(m.delivery.data, b"to q");
    assert_eq!(m.delivery.exchange.as_str(), "");
    assert_eq!(m.delivery.routing_key.as_str(), q);
    assert_eq!(m.message_count, 0);
    assert_eq!(message_count(&ch, &other).await, 0);
    delete(&ch, &q).await;
    delete(&ch, &other).await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    publish_mandatory_unroutable,
    publish_immediate_not_implemented,
    publish_missing_exchange,
    publish_user_id_checked,
    publish_default_exchange,
);

// ---------------------------------------------------------------------------------------------
// Properties and bodies
// ---------------------------------------------------------------------------------------------

fn all_properties() -> BasicProperties {
    let mut level3 = FieldTable::default();
    level3.insert("leaf".into(), AMQPValue::LongString("deep".into()));
    level3.insert(
        "arr".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::Void,
            AMQPValue::Boolean(false),
        ])),
    );
    let mut level2 = FieldTable::default();
    level2.insert("level3".into(), AMQPValue::FieldTable(level3));
    level2.insert("n".into(), AMQPValue::LongLongInt(-1));
    let mut in_array = FieldTable::default();
    in_array.insert("three".into(), AMQPValue::Boolean(false));

    let mut headers = FieldTable::default();
    headers.insert("bool".into(), AMQPValue::Boolean(true));
    headers.insert("i8".into(), AMQPValue::ShortShortInt(-5));
    headers.insert("u8".into(), AMQPValue::ShortShortUInt(200));
    headers.insert("i16".into(), AMQPValue::ShortInt(-300));
    headers.insert("u16".into(), AMQPValue::ShortUInt(60_000));
    headers.insert("i32".into(), AMQPValue::LongInt(-70_000));
    headers.insert("u32".into(), AMQPValue::LongUInt(4_000_000_000));
    headers.insert("i64".into(), AMQPValue::LongLongInt(-5_000_000_000));
    headers.insert("f32".into(), AMQPValue::Float(1.5));
    headers.insert("f64".into(), AMQPValue::Double(-2.25));
    headers.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 12_345,
        }),
    );
    headers.insert(
        "string".into(),
        AMQPValue::LongString(LongString::from("héllo wörld")),
    );
    headers.insert(
        "bytes".into(),
        AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 0xCE, 255])),
    );
    headers.insert("ts".into(), AMQPValue::Timestamp(1_700_000_000));
    headers.insert("void".into(), AMQPValue::Void);
    headers.insert(
        "array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            AMQPValue::LongString("two".into()),
            AMQPValue::FieldTable(in_array),
            AMQPValue::FieldArray(FieldArray::default()),
        ])),
    );
    headers.insert("nested".into(), AMQPValue::FieldTable(level2));
    headers.insert(
        "empty-table".into(),
        AMQPValue::FieldTable(FieldTable::default()),
    );

    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-42".into())
        .with_reply_to("reply-queue".into())
        .with_expiration("600000".into())
        .with_message_id("msg-42".into())
        .with_timestamp(1_600_000_000)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("parity-tests".into())
        .with_cluster_id("cluster-x".into())
}

/// Every basic property, including a headers table with every field type and nested
/// tables/arrays, arrives unchanged through basic.get and through a consumer.
async fn properties_round_trip(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = declare(&ch, "props").await;
    let props = all_properties();
    publish_confirmed(&ch, "", &q, b"{\"a\":1}", props.clone()).await;
    publish_confirmed(&ch, "", &q, b"second", props.clone()).await;
    let m = get(&ch, &q).await;
    assert_eq!(m.delivery.properties, props);
    assert_eq!(m.delivery.data, b"{\"a\":1}");

    let mut c = consume(
        &ch,
        &q,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        },
    )
    .await;
    let d = next(&mut c).await;
    assert_eq!(d.properties, props);
    assert_eq!(d.data, b"second");

    // No properties at all: everything absent.
    publish_confirmed(&ch, "", &q, b"bare", BasicProperties::default()).await;
    let d = next(&mut c).await;
    assert_eq!(d.properties, BasicProperties::default());
    delete(&ch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// A 1 MiB body (split over many frames at frame_max 128 KiB), bodies at the single-frame
/// boundary, and an empty body all arrive intact.
async fn body_sizes(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = declare(&ch, "bodies").await;
    let frame_max = conn.configuration().frame_max() as usize;
    let sizes = [
        0,
        1,
        frame_max - 9,
        frame_max - 8,
        frame_max - 7,
        3 * (frame_max - 8) + 1,
        1 << 20,
    ];
    let bodies: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(n, &len)| (0..len).map(|i| ((i * 31 + n * 7) % 251) as u8).collect())
        .collect();
    for body in &bodies {
        publish_confirmed(
            &ch,
            "",
            &q,
            body,
            BasicProperties::default().with_content_type("application/octet-stream".into()),
        )
        .await;
    }
    // Half through basic.get, half through a consumer.
    let (via_get, via_consume) = bodies.split_at(bodies.len() / 2);
    for expected in via_get {
        let m = get(&ch, &q).await;
        assert_eq!(m.delivery.data.len(), expected.len());
        assert!(
            m.delivery.data == *expected,
            "body of {} bytes differs",
            expected.len()
        );
        ch.basic_ack(m.delivery.delivery_tag, ack())
            .await
            .expect("ack");
    }
    let mut c = consume(
        &ch,
        &q,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        },
    )
    .await;
    for expected in via_consume {
        let d = next(&mut c).await;
        assert_eq!(d.data.len(), expected.len());
        assert!(
            d.data == *expected,
            "body of {} bytes differs",
            expected.len()
        );
    }
    delete(&ch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(properties_round_trip, body_sizes);

// ---------------------------------------------------------------------------------------------
// basic.get, ack, nack, reject, recover
// ---------------------------------------------------------------------------------------------

/// get-empty on an empty queue; get-ok reports the messages left behind; delivery tags count
/// up per channel from 1.
async fn get_and_get_empty(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = declare(&ch, "get").await;
    assert!(
        ch.basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .expect("get")
            .is_none()
    );
    publish_n(&ch, &q, 3).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = get(&ch, &q).await;
        seen.push((
            body(&m.delivery),
            m.message_count,
            m.delivery.delivery_tag,
            m.delivery.redelivered,
        ));
    }
    assert_eq!(
        seen,
        [
            ("m0".to_owned(), 2, 1, false),
            ("m1".to_owned(), 1, 2, false),
            ("m2".to_owned(), 0, 3, false),
        ]
    );
    assert!(
        ch.basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .expect("get")
            .is_none()
    );
    ch.basic_ack(3, BasicAckOptions { multiple: true })
        .await
        .expect("ack all");
    delete(&ch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// ack multiple, nack multiple with requeue, reject and nack without requeue: requeued
/// messages return to the head in original order with redelivered=true, dropped ones are gone.
async fn ack_nack_reject(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "ack-nack").await;
    publish_n(&pubch, &q, 8).await;
    let ch = conn.create_channel().await.expect("channel");
    for i in 0..6 {
        let m = get(&ch, &q).await;
        assert_eq!(
            (body(&m.delivery), m.delivery.delivery_tag),
            (format!("m{i}"), i as u64 + 1)
        );
    }
    // tags 1..6 = m0..m5; m6, m7 still ready.
    ch.basic_ack(2, BasicAckOptions { multiple: true })
        .await
        .expect("ack m0, m1");
    ch.basic_reject(3, BasicRejectOptions { requeue: false })
        .await
        .expect("reject m2 (drop)");
    ch.basic_nack(
        4,
        BasicNackOptions {
            multiple: false,
            requeue: false,
        },
    )
    .await
    .expect("nack m3 (drop)");
    ch.basic_nack(
        6,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .expect("nack m4, m5 (requeue)");
    let mut expected = flagged(&["m4", "m5"], true);
    expected.extend(flagged(&["m6", "m7"], false));
    // Fetched on the same channel, so after the requeue.
    assert_eq!(drain_flags(&ch, &q).await, expected);
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Requeued messages go back to their original position, not in reject order.
async fn requeue_keeps_original_order(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "requeue-order").await;
    publish_n(&pubch, &q, 4).await;
    let ch = conn.create_channel().await.expect("channel");
    for _ in 0..3 {
        get(&ch, &q).await;
    }
    ch.basic_reject(3, BasicRejectOptions { requeue: true })
        .await
        .expect("reject m2");
    ch.basic_reject(1, BasicRejectOptions { requeue: true })
        .await
        .expect("reject m0");
    ch.basic_reject(2, BasicRejectOptions { requeue: true })
        .await
        .expect("reject m1");
    let mut expected = flagged(&["m0", "m1", "m2"], true);
    expected.extend(flagged(&["m3"], false));
    // Fetched on the same channel, so after the requeues.
    assert_eq!(drain_flags(&ch, &q).await, expected);
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// basic.recover(requeue=true) puts every unacked message back: fetched again with
/// redelivered=true and fresh delivery tags; a consumer gets its deliveries again.
async fn recover_requeues(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "recover").await;
    publish_n(&pubch, &q, 3).await;

    let ch = conn.create_channel().await.expect("channel");
    for _ in 0..3 {
        get(&ch, &q).await;
    }
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .expect("basic.recover");
    let mut again = Vec::new();
    for _ in 0..3 {
        let m = get(&ch, &q).await;
        again.push((
            body(&m.delivery),
            m.delivery.redelivered,
            m.delivery.delivery_tag,
        ));
    }
    assert_eq!(
        again,
        [
            ("m0".to_owned(), true, 4),
            ("m1".to_owned(), true, 5),
            ("m2".to_owned(), true, 6),
        ]
    );

    // Consumer flavour: the consumer that held them gets them again.
    let ch2 = conn.create_channel().await.expect("channel");
    let mut c = consume_manual(&ch2, &q).await;
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .expect("basic.recover");
    let first = [next(&mut c).await, next(&mut c).await, next(&mut c).await];
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), names(0..3));
    assert!(first.iter().all(|d| d.redelivered));
    ch2.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .expect("basic.recover on the consumer channel");
    let second = [next(&mut c).await, next(&mut c).await, next(&mut c).await];
    assert_eq!(second.iter().map(body).collect::<Vec<_>>(), names(0..3));
    assert!(second.iter().all(|d| d.redelivered));
    assert_eq!(
        second.iter().map(|d| d.delivery_tag).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// ack/nack/reject of a tag never delivered, and a second ack of the same tag, close the
/// channel with 406 PRECONDITION_FAILED "unknown delivery tag N"; the channel's other unacked
/// messages are requeued.
async fn unknown_delivery_tag(b: &Broker) {
    let conn = b.connect().await;
    let mut events = Box::pin(conn.events_listener());
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "unknown-tag").await;

    let ch = conn.create_channel().await.expect("channel");
    ch.basic_ack(99, ack()).await.expect("send ack");
    assert_eq!(
        next_amqp_error(&mut events).await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 99".to_owned()
        )
    );

    let ch = conn.create_channel().await.expect("channel");
    ch.basic_nack(
        5,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .expect("send nack");
    assert_eq!(
        next_amqp_error(&mut events).await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 5".to_owned()
        )
    );

    let ch = conn.create_channel().await.expect("channel");
    ch.basic_reject(7, BasicRejectOptions { requeue: false })
        .await
        .expect("send reject");
    assert_eq!(
        next_amqp_error(&mut events).await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 7".to_owned()
        )
    );

    // Double ack, while another delivery is still unacked on the channel.
    publish_n(&pubch, &q, 2).await;
    let ch = conn.create_channel().await.expect("channel");
    let m0 = get(&ch, &q).await;
    let _m1 = get(&ch, &q).await;
    ch.basic_ack(m0.delivery.delivery_tag, ack())
        .await
        .expect("first ack");
    ch.basic_ack(m0.delivery.delivery_tag, ack())
        .await
        .expect("send second ack");
    assert_eq!(
        next_amqp_error(&mut events).await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1".to_owned()
        )
    );
    // m1 was unacked on the failed channel: requeued.
    let (pc, qn) = (&pubch, q.as_str());
    eventually("m1 requeued after the channel error", move || async move {
        message_count(pc, qn).await == 1
    })
    .await;
    assert_eq!(drain_flags(&pubch, &q).await, flagged(&["m1"], true));
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// multiple=true with delivery tag 0 covers every outstanding delivery of the channel.
async fn multiple_with_tag_zero(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "tag-zero").await;
    publish_n(&pubch, &q, 3).await;
    let ch = conn.create_channel().await.expect("channel");
    for _ in 0..3 {
        get(&ch, &q).await;
    }
    ch.basic_nack(
        0,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .expect("nack everything");
    // Not a direct read: RabbitMQ's queue answers the passive declare's stat call ahead of
    // pending requeues.
    let (c, qn) = (&ch, q.as_str());
    eventually("all three requeued", move || async move {
        message_count(c, qn).await == 3
    })
    .await;
    for _ in 0..3 {
        get(&ch, &q).await;
    }
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .expect("ack everything");
    ch.close(200, "bye".into()).await.expect("close channel");
    // Nothing was left unacked to requeue.
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(message_count(&ch, &q).await, 0);
    delete(&ch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    multiple_with_tag_zero,
    get_and_get_empty,
    ack_nack_reject,
    requeue_keeps_original_order,
    recover_requeues,
    unknown_delivery_tag,
);

// ---------------------------------------------------------------------------------------------
// Requeue on close
// ---------------------------------------------------------------------------------------------

/// Closing a channel requeues its unacked deliveries at the head, in order, redelivered.
async fn requeue_on_channel_close(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "requeue-ch").await;
    publish_n(&pubch, &q, 5).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(3, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut c = consume_manual(&ch, &q).await;
    for i in 0..3 {
        assert_eq!(body(&next(&mut c).await), format!("m{i}"));
    }
    assert_eq!(message_count(&pubch, &q).await, 2);
    ch.close(200, "bye".into()).await.expect("close channel");
    let (pc, qn) = (&pubch, q.as_str());
    eventually("unacked deliveries requeued", move || async move {
        message_count(pc, qn).await == 5
    })
    .await;
    let mut expected = flagged(&["m0", "m1", "m2"], true);
    expected.extend(flagged(&["m3", "m4"], false));
    assert_eq!(drain_flags(&pubch, &q).await, expected);
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Closing a connection requeues the unacked deliveries of all its channels.
async fn requeue_on_connection_close(b: &Broker) {
    let admin = b.connect().await;
    let pubch = confirm_channel(&admin).await;
    let q = declare(&pubch, "requeue-conn").await;
    publish_n(&pubch, &q, 4).await;

    let conn = b.connect().await;
    let ch1 = conn.create_channel().await.expect("channel");
    let ch2 = conn.create_channel().await.expect("channel");
    let m0 = get(&ch1, &q).await;
    let m1 = get(&ch2, &q).await;
    assert_eq!(
        (body(&m0.delivery), body(&m1.delivery)),
        ("m0".into(), "m1".into())
    );
    conn.close(200, "bye".into())
        .await
        .expect("close connection");
    let (pc, qn) = (&pubch, q.as_str());
    eventually("unacked deliveries requeued", move || async move {
        message_count(pc, qn).await == 4
    })
    .await;
    let mut expected = flagged(&["m0", "m1"], true);
    expected.extend(flagged(&["m2", "m3"], false));
    assert_eq!(drain_flags(&pubch, &q).await, expected);
    delete(&pubch, &q).await;
    admin.close(200, "bye".into()).await.expect("close");
}

parity!(requeue_on_channel_close, requeue_on_connection_close);
