//! Parity restart scenarios: what survives a (graceful) broker restart, on our broker and on
//! RabbitMQ. Each scenario sets things up, calls `b.restart()` exactly once, and checks.
//!
//! Names come from `tests::unique` and everything is deleted at the end: RabbitMQ is shared.

use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, ExchangeKind};
use tests::unique;

use crate::parity_support::{
    assert_amqp_error, cleanup, confirm_channel, exchange_exists, field_table, long_str,
    message_count, next_delivery, publish_confirmed, publish_mandatory, queue_exists, str_array,
};
use crate::support::{
    RestartableBroker, bind, bind_exchange, bodies, durable_queue, exchange, get_all, persistent,
    publish_all, transient, transient_queue,
};

crate::restart_parity!(
    persistent_messages_survive,
    transient_messages_and_non_durable_queues_are_gone,
    unacked_messages_come_back_redelivered,
    durable_topology_survives_with_arguments,
    bindings_to_non_durable_queues_and_exchanges_are_dropped,
    graceful_restart_keeps_every_durable_queue_count,
    priorities_and_deadlines_survive,
);

/// A priority queue's messages come back in priority order, and TTL deadlines (per message and
/// per queue) still run after a restart: expired messages are gone, the others stay.
async fn priorities_and_deadlines_survive(b: &mut RestartableBroker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let pq = unique("rs-priority-q");
    let tq = unique("rs-ttl-q");
    let qttl = unique("rs-queue-ttl-q");
    durable_queue(
        &ch,
        &pq,
        field_table(&[("x-max-priority", AMQPValue::ShortShortUInt(10))]),
    )
    .await;
    durable_queue(&ch, &tq, FieldTable::default()).await;
    durable_queue(
        &ch,
        &qttl,
        field_table(&[("x-message-ttl", AMQPValue::LongInt(1_000))]),
    )
    .await;
    for (body, priority) in [("p1a", 1), ("p5a", 5), ("p9", 9), ("p5b", 5), ("p1b", 1)] {
        publish_confirmed(
            &ch,
            "",
            &pq,
            body.as_bytes(),
            persistent().with_priority(priority),
        )
        .await;
    }
    let published = std::time::Instant::now();
    let ttl = |ms: &str| persistent().with_expiration(ms.into());
    publish_confirmed(&ch, "", &tq, b"short", ttl("1000")).await;
    publish_confirmed(&ch, "", &tq, b"long", ttl("600000")).await;
    publish_confirmed(&ch, "", &tq, b"none", persistent()).await;
    publish_confirmed(&ch, "", &qttl, b"queue-ttl", persistent()).await;
    conn.close(200, "bye".into()).await.expect("close");

    b.restart().await;

    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(
        bodies(&get_all(&ch, &pq).await),
        ["p9", "p5a", "p5b", "p1a", "p1b"],
        "priority order after a restart"
    );
    // Past both 1 s deadlines, however fast the restart was.
    tokio::time::sleep(std::time::Duration::from_millis(1_500).saturating_sub(published.elapsed()))
        .await;
    assert_eq!(
        bodies(&get_all(&ch, &tq).await),
        ["long", "none"],
        "the message whose expiration passed is gone; the others stay"
    );
    assert_eq!(
        message_count(&ch, &qttl).await,
        0,
        "x-message-ttl still applies to a message recovered at restart"
    );
    cleanup(&conn, &[&pq, &tq, &qttl], &[]).await;
    conn.close(200, "done".into()).await.expect("close");
}

/// Durable queue + persistent messages: bodies (empty, text, 300 KB binary), every property,
/// exchange and routing key, and order survive; never-delivered messages are not redelivered.
async fn persistent_messages_survive(b: &mut RestartableBroker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let x = unique("rs-survive-x");
    let q = unique("rs-survive-q");
    exchange(&ch, &x, ExchangeKind::Direct, true, FieldTable::default()).await;
    durable_queue(&ch, &q, FieldTable::default()).await;
    bind(&ch, &q, &x, "k", FieldTable::default()).await;

    let rich = persistent()
        .with_content_type("application/json".into())
        .with_content_encoding("identity".into())
        .with_headers(field_table(&[
            ("str", long_str("value")),
            ("int", AMQPValue::LongInt(-7)),
            ("long", AMQPValue::LongLongInt(1 << 40)),
            ("flag", AMQPValue::Boolean(true)),
            (
                "nested",
                AMQPValue::FieldTable(field_table(&[("inner", long_str("x"))])),
            ),
            ("list", str_array(&["a", "b"])),
        ]))
        .with_priority(3)
        .with_correlation_id("corr-1".into())
        .with_reply_to("replies".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_000)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("restart-test".into());
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut sent: Vec<(String, String, Vec<u8>, BasicProperties)> = vec![
        (x.clone(), "k".into(), br#"{"first":true}"#.to_vec(), rich),
        (x.clone(), "k".into(), Vec::new(), persistent()),
        (
            x.clone(),
            "k".into(),
            big,
            persistent().with_content_type("application/octet-stream".into()),
        ),
    ];
    for i in 0..100 {
        sent.push((
            String::new(),
            q.clone(),
            format!("msg-{i}").into_bytes(),
            persistent(),
        ));
    }
    for (ex, rk, body, props) in &sent {
        publish_confirmed(&ch, ex, rk, body, props.clone()).await;
    }
    assert_eq!(message_count(&ch, &q).await, sent.len() as u32);
    conn.close(200, "bye".into()).await.expect("close");

    b.restart().await;

    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(
        message_count(&ch, &q).await,
        sent.len() as u32,
        "every persistent message of the durable queue is back"
    );
    let got = get_all(&ch, &q).await;
    assert_eq!(got.len(), sent.len(), "messages got back");
    for (i, (d, (ex, rk, body, props))) in got.iter().zip(&sent).enumerate() {
        assert!(
            d.data == *body,
            "body of message {i} differs (got {} bytes, sent {}; order or content lost)",
            d.data.len(),
            body.len()
        );
        assert_eq!(&d.properties, props, "properties of message {i}");
        assert_eq!(d.exchange.as_str(), ex, "exchange of message {i}");
        assert_eq!(d.routing_key.as_str(), rk, "routing key of message {i}");
        assert!(
            !d.redelivered,
            "message {i} was never delivered, so it is not redelivered after a restart"
        );
    }
    cleanup(&conn, &[&q], &[&x]).await;
    conn.close(200, "done".into()).await.expect("close");
}

/// Transient messages (delivery_mode 1 or none) in a durable queue are dropped at restart and
/// the persistent ones around them keep their order; non-durable queues and exchanges are gone
/// (even holding persistent messages).
async fn transient_messages_and_non_durable_queues_are_gone(b: &mut RestartableBroker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let dq = unique("rs-mixed-q");
    let nq = unique("rs-nondurable-q");
    let nx = unique("rs-nondurable-x");
    durable_queue(&ch, &dq, FieldTable::default()).await;
    transient_queue(&ch, &nq).await;
    exchange(&ch, &nx, ExchangeKind::Fanout, false, FieldTable::default()).await;
    bind(&ch, &dq, &nx, "", FieldTable::default()).await;

    publish_confirmed(&ch, "", &dq, b"p1", persistent()).await;
    publish_confirmed(&ch, "", &dq, b"t1", transient()).await;
    publish_confirmed(&ch, "", &dq, b"p2", persistent()).await;
    publish_confirmed(&ch, "", &dq, b"t2", BasicProperties::default()).await;
    publish_confirmed(&ch, &nx, "", b"p3", persistent()).await;
    publish_confirmed(&ch, &nx, "", b"t3", transient()).await;
    for i in 0..3 {
        publish_confirmed(&ch, "", &nq, format!("n{i}").as_bytes(), persistent()).await;
    }
    assert_eq!(message_count(&ch, &dq).await, 6);
    assert_eq!(message_count(&ch, &nq).await, 3);
    conn.close(200, "bye".into()).await.expect("close");

    b.restart().await;

    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(
        message_count(&ch, &dq).await,
        3,
        "only the persistent messages of the durable queue survive"
    );
    assert_eq!(bodies(&get_all(&ch, &dq).await), ["p1", "p2", "p3"]);
    assert!(
        !queue_exists(&conn, &nq).await,
        "a non-durable queue is gone after a restart"
    );
    assert!(
        !exchange_exists(&conn, &nx).await,
        "a non-durable exchange is gone after a restart"
    );
    cleanup(&conn, &[&dq, &nq], &[&nx]).await;
    conn.close(200, "done".into()).await.expect("close");
}

/// Persistent messages delivered to a consumer and not acked when the broker restarts come back
/// `redelivered=true`, in their original positions; acked ones are gone; never-delivered ones
/// come back `redelivered=false`.
async fn unacked_messages_come_back_redelivered(b: &mut RestartableBroker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("rs-unacked-q");
    durable_queue(&ch, &q, FieldTable::default()).await;
    publish_all(
        &ch,
        "",
        &q,
        (1..=8).map(|i| format!("m{i}").into_bytes()),
        persistent(),
    )
    .await;

    let consumer_conn = b.connect().await;
    let cch = consumer_conn.create_channel().await.expect("channel");
    cch.basic_qos(6, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumer = cch
        .basic_consume(
            q.as_str().into(),
            "restart-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let mut delivered = Vec::new();
    for _ in 0..6 {
        delivered.push(next_delivery(&mut consumer).await);
    }
    assert_eq!(bodies(&delivered), ["m1", "m2", "m3", "m4", "m5", "m6"]);
    assert!(delivered.iter().all(|d| !d.redelivered));
    // Cancel first so that acking does not let m7 and m8 be delivered too.
    cch.basic_cancel("restart-test".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    for i in [0, 2] {
        cch.basic_ack(delivered[i].delivery_tag, BasicAckOptions::default())
            .await
            .expect("basic.ack");
    }
    // A round trip on the same channel: the acks were handled before the declare-ok.
    assert_eq!(message_count(&cch, &q).await, 2, "m7 and m8 are ready");
    conn.close(200, "bye".into()).await.expect("close");

    // The consumer's connection is still open, with m2, m4, m5, m6 unacked.
    b.restart().await;
    drop(consumer);
    drop(consumer_conn);

    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(message_count(&ch, &q).await, 6);
    let got = get_all(&ch, &q).await;
    assert_eq!(bodies(&got), ["m2", "m4", "m5", "m6", "m7", "m8"]);
    let flags: Vec<bool> = got.iter().map(|d| d.redelivered).collect();
    assert_eq!(
        flags,
        [true, true, true, true, false, false],
        "redelivered flags of m2, m4, m5, m6 (delivered, unacked) and m7, m8 (never delivered)"
    );
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "done".into()).await.expect("close");
}

/// Durable exchanges (with an alternate exchange argument), durable queues (with arguments),
/// queue bindings (direct, topic, headers with binding arguments) and exchange-to-exchange
/// bindings survive and still route; unbinding and deletions made before the restart stay made;
/// arguments keep their AMQP types (the inequivalence texts name them).
async fn durable_topology_survives_with_arguments(b: &mut RestartableBroker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let x = unique("rs-topo-x");
    let ae = unique("rs-topo-ae");
    let src = unique("rs-topo-src");
    let tx = unique("rs-topo-topic");
    let hx = unique("rs-topo-headers");
    let q = unique("rs-topo-q");
    let qae = unique("rs-topo-qae");
    let qh = unique("rs-topo-qh");
    let gone_x = unique("rs-topo-deleted-x");
    let gone_q = unique("rs-topo-deleted-q");
    let x_args = field_table(&[("alternate-exchange", long_str(&ae))]);
    let qh_args = field_table(&[
        ("x-max-length", AMQPValue::LongInt(3)),
        ("x-message-ttl", AMQPValue::LongInt(3_600_000)),
    ]);
    let h_bind = field_table(&[("x-match", long_str("all")), ("kind", long_str("a"))]);

    exchange(&ch, &ae, ExchangeKind::Fanout, true, FieldTable::default()).await;
    exchange(&ch, &x, ExchangeKind::Direct, true, x_args.clone()).await;
    exchange(&ch, &src, ExchangeKind::Fanout, true, FieldTable::default()).await;
    exchange(&ch, &tx, ExchangeKind::Topic, true, FieldTable::default()).await;
    exchange(&ch, &hx, ExchangeKind::Headers, true, FieldTable::default()).await;
    exchange(
        &ch,
        &gone_x,
        ExchangeKind::Direct,
        true,
        FieldTable::default(),
    )
    .await;
    durable_queue(&ch, &q, FieldTable::default()).await;
    durable_queue(&ch, &qae, FieldTable::default()).await;
    durable_queue(&ch, &qh, qh_args.clone()).await;
    durable_queue(&ch, &gone_q, FieldTable::default()).await;
    bind(&ch, &qae, &ae, "", FieldTable::default()).await;
    bind(&ch, &q, &x, "k", FieldTable::default()).await;
    bind(&ch, &q, &x, "unbound", FieldTable::default()).await;
    bind(&ch, &q, &tx, "orders.*.created", FieldTable::default()).await;
    bind(&ch, &qh, &hx, "", h_bind.clone()).await;
    bind(&ch, &gone_q, &gone_x, "k", FieldTable::default()).await;
    bind_exchange(&ch, &x, &src, "").await;
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "unbound".into(),
        FieldTable::default(),
    )
    .await
    .expect("queue.unbind");
    ch.exchange_delete(gone_x.as_str().into(), Default::default())
        .await
        .expect("exchange.delete");
    ch.queue_delete(gone_q.as_str().into(), Default::default())
        .await
        .expect("queue.delete");
    let kind_a = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(field_table(&[("kind", long_str("a"))]));
    publish_confirmed(&ch, &hx, "", b"h1", kind_a.clone()).await;
    publish_confirmed(&ch, &hx, "", b"h2", kind_a.clone()).await;
    conn.close(200, "bye".into()).await.expect("close");

    b.restart().await;

    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    for name in [&x, &ae, &src, &tx, &hx] {
        assert!(
            exchange_exists(&conn, name).await,
            "durable exchange {name} survives"
        );
    }
    for name in [&q, &qae, &qh] {
        assert!(
            queue_exists(&conn, name).await,
            "durable queue {name} survives"
        );
    }
    assert!(
        !exchange_exists(&conn, &gone_x).await,
        "an exchange deleted before the restart stays deleted"
    );
    assert!(
        !queue_exists(&conn, &gone_q).await,
        "a queue deleted before the restart stays deleted"
    );

    publish_confirmed(&ch, &x, "k", b"direct", persistent()).await;
    publish_confirmed(&ch, &src, "k", b"via-src", persistent()).await;
    publish_confirmed(&ch, &tx, "orders.eu.created", b"topic", persistent()).await;
    publish_confirmed(&ch, &x, "unbound", b"after-unbind", persistent()).await;
    publish_confirmed(&ch, &x, "nothing", b"to-ae", persistent()).await;
    for body in ["h3", "h4", "h5"] {
        publish_confirmed(&ch, &hx, "", body.as_bytes(), kind_a.clone()).await;
    }
    let kind_b = BasicProperties::default().with_headers(field_table(&[("kind", long_str("b"))]));
    match publish_mandatory(&ch, &hx, "", b"kind-b", kind_b).await {
        Confirmation::Ack(Some(ret)) => {
            assert_eq!((ret.reply_code, ret.reply_text.as_str()), (312, "NO_ROUTE"));
        }
        other => panic!("kind=b must not match the headers binding (x-match all), got {other:?}"),
    }
    assert_eq!(
        bodies(&get_all(&ch, &q).await),
        ["direct", "via-src", "topic"],
        "direct, exchange-to-exchange and topic bindings route after the restart"
    );
    assert_eq!(
        bodies(&get_all(&ch, &qae).await),
        ["after-unbind", "to-ae"],
        "the alternate-exchange argument survives, and the unbind stays"
    );
    assert_eq!(
        bodies(&get_all(&ch, &qh).await),
        ["h3", "h4", "h5"],
        "x-max-length 3 still applies (h1, h2 dropped from the head)"
    );

    // Same arguments, same flags: equivalent, so accepted.
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        x_args,
    )
    .await
    .expect("redeclare the exchange exactly as before");
    ch.queue_declare(
        qh.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        qh_args,
    )
    .await
    .expect("redeclare the queue exactly as before");
    // Without the arguments: 406, naming the stored value and its type.
    let doomed = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        doomed
            .exchange_declare(
                x.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await,
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{x}' in \
             vhost '/': received none but current is the value '{ae}' of type 'longstr'"
        ),
    );
    let doomed = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        doomed
            .queue_declare(
                qh.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                field_table(&[("x-message-ttl", AMQPValue::LongInt(3_600_000))]),
            )
            .await,
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{qh}' in vhost \
             '/': received none but current is the value '3' of type 'signedint'"
        ),
    );
    cleanup(
        &conn,
        &[&q, &qae, &qh, &gone_q],
        &[&x, &ae, &src, &tx, &hx, &gone_x],
    )
    .await;
    conn.close(200, "done".into()).await.expect("close");
}

/// A binding from a durable exchange to a non-durable queue (or to a non-durable exchange) does
/// not survive: redeclaring the queue / exchange with the same name after the restart does not
/// bring the binding back. The durable exchange and its durable bindings stay.
async fn bindings_to_non_durable_queues_and_exchanges_are_dropped(b: &mut RestartableBroker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let x = unique("rs-nd-x");
    let dq = unique("rs-nd-dq");
    let nq = unique("rs-nd-nq");
    let nx = unique("rs-nd-nx");
    exchange(&ch, &x, ExchangeKind::Direct, true, FieldTable::default()).await;
    exchange(&ch, &nx, ExchangeKind::Fanout, false, FieldTable::default()).await;
    durable_queue(&ch, &dq, FieldTable::default()).await;
    transient_queue(&ch, &nq).await;
    bind(&ch, &dq, &x, "d", FieldTable::default()).await;
    bind(&ch, &nq, &x, "n", FieldTable::default()).await;
    bind_exchange(&ch, &nx, &x, "e").await;
    bind(&ch, &nq, &nx, "", FieldTable::default()).await;
    for key in ["d", "n", "e"] {
        assert_eq!(
            publish_mandatory(&ch, &x, key, b"before", persistent()).await,
            Confirmation::Ack(None),
            "routable before the restart with key {key}"
        );
    }
    conn.close(200, "bye".into()).await.expect("close");

    b.restart().await;

    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    assert!(
        exchange_exists(&conn, &x).await,
        "the durable exchange stays"
    );
    assert!(
        !queue_exists(&conn, &nq).await,
        "the non-durable queue is gone"
    );
    assert!(
        !exchange_exists(&conn, &nx).await,
        "the non-durable exchange is gone"
    );
    // Same names again, non-durable, bound to each other but not to `x`.
    transient_queue(&ch, &nq).await;
    exchange(&ch, &nx, ExchangeKind::Fanout, false, FieldTable::default()).await;
    bind(&ch, &nq, &nx, "", FieldTable::default()).await;
    for key in ["n", "e"] {
        match publish_mandatory(&ch, &x, key, b"after", persistent()).await {
            Confirmation::Ack(Some(ret)) => assert_eq!(
                (ret.reply_code, ret.reply_text.as_str()),
                (312, "NO_ROUTE"),
                "key {key}"
            ),
            other => panic!(
                "the binding from the durable exchange with key {key} must be gone, got {other:?}"
            ),
        }
    }
    publish_confirmed(&ch, &x, "d", b"durable-binding", persistent()).await;
    assert_eq!(
        bodies(&get_all(&ch, &dq).await),
        ["before", "durable-binding"]
    );
    assert_eq!(message_count(&ch, &nq).await, 0);
    cleanup(&conn, &[&dq, &nq], &[&x, &nx]).await;
    conn.close(200, "done".into()).await.expect("close");
}

/// After a graceful stop and start, every durable queue holds exactly what it held: empty,
/// one, a thousand, fanned out to three queues, partly consumed and acked, delivered but not
/// acked (back), purged, all consumed.
async fn graceful_restart_keeps_every_durable_queue_count(b: &mut RestartableBroker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let fx = unique("rs-count-fx");
    let name = |what: &str| unique(&format!("rs-count-{what}"));
    let (empty, one, many) = (name("empty"), name("one"), name("many"));
    let (fa, fb, fc) = (name("fan-a"), name("fan-b"), name("fan-c"));
    let (partial, unacked, purged, consumed) = (
        name("partial"),
        name("unacked"),
        name("purged"),
        name("consumed"),
    );
    let expected: Vec<(&str, u32)> = vec![
        (&empty, 0),
        (&one, 1),
        (&many, 1000),
        (&fa, 60),
        (&fb, 60),
        (&fc, 60),
        (&partial, 10),
        (&unacked, 10),
        (&purged, 0),
        (&consumed, 0),
    ];
    exchange(&ch, &fx, ExchangeKind::Fanout, true, FieldTable::default()).await;
    for (q, _) in &expected {
        durable_queue(&ch, q, FieldTable::default()).await;
    }
    for q in [&fa, &fb, &fc] {
        bind(&ch, q, &fx, "", FieldTable::default()).await;
    }
    let numbered = |n: u32| (0..n).map(|i| format!("{i}").into_bytes());
    publish_all(&ch, "", &one, numbered(1), persistent()).await;
    publish_all(&ch, "", &many, numbered(1000), persistent()).await;
    publish_all(&ch, &fx, "", numbered(60), persistent()).await;
    publish_all(&ch, "", &partial, numbered(20), persistent()).await;
    publish_all(&ch, "", &unacked, numbered(10), persistent()).await;
    publish_all(&ch, "", &purged, numbered(5), persistent()).await;
    publish_all(&ch, "", &consumed, numbered(5), persistent()).await;

    let get = |queue: &str, no_ack: bool| {
        let (ch, queue) = (ch.clone(), queue.to_owned());
        async move {
            ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack })
                .await
                .expect("basic.get")
                .expect("a message")
                .delivery
        }
    };
    for _ in 0..10 {
        let d = get(&partial, false).await;
        ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
            .await
            .expect("basic.ack");
    }
    // Delivered, never acked: this connection stays open across the restart.
    for _ in 0..4 {
        get(&unacked, false).await;
    }
    ch.queue_purge(purged.as_str().into(), QueuePurgeOptions::default())
        .await
        .expect("queue.purge");
    for _ in 0..5 {
        get(&consumed, true).await;
    }
    for (q, n) in &expected {
        let ready = if *q == unacked { n - 4 } else { *n };
        assert_eq!(message_count(&ch, q).await, ready, "{q} before the restart");
    }

    b.restart().await;
    drop(ch);
    drop(conn);

    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    for (q, n) in &expected {
        assert_eq!(
            message_count(&ch, q).await,
            *n,
            "{q} holds exactly what it held"
        );
    }
    for (q, range) in [(&many, 0..1000), (&partial, 10..20), (&unacked, 0..10)] {
        let got = bodies(&get_all(&ch, q).await);
        let want: Vec<String> = range.map(|i| i.to_string()).collect();
        let first_difference = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(
            got == want,
            "{q}: got {} messages, want {} ({:?} to {:?}); first difference at {:?}, last got {:?}",
            got.len(),
            want.len(),
            want.first(),
            want.last(),
            first_difference,
            got.last()
        );
    }
    let queues: Vec<&str> = expected.iter().map(|(q, _)| *q).collect();
    cleanup(&conn, &queues, &[&fx]).await;
    conn.close(200, "done".into()).await.expect("close");
}
