//! Queues: declare flags and counts, server-named queues, declare errors, exclusivity,
//! auto-delete, bind/unbind, purge, delete (with if-empty / if-unused) and consumer cancel.

use futures_lite::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer, ExchangeKind};
use tests::{Broker, parity, unique};

use crate::support::{
    WAIT, assert_amqp_error, confirm_channel, drain, eventually, message_count, publish_confirmed,
    queue_exists,
};

fn opts(durable: bool, exclusive: bool, auto_delete: bool) -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable,
        exclusive,
        auto_delete,
        ..QueueDeclareOptions::default()
    }
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    }
}

async fn declare(ch: &Channel, name: &str, options: QueueDeclareOptions) -> lapin::Queue {
    ch.queue_declare(name.into(), options, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("declare queue {name}: {e}"))
}

async fn delete(ch: &Channel, name: &str) -> u32 {
    ch.queue_delete(name.into(), QueueDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("delete queue {name}: {e}"))
}

async fn consume(ch: &Channel, queue: &str) -> Consumer {
    ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("consume {queue}: {e}"))
}

async fn publish_n(ch: &Channel, queue: &str, n: usize) {
    for i in 0..n {
        publish_confirmed(
            ch,
            "",
            queue,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
}

/// A fresh channel for a step that is expected to fail (the failure closes it).
async fn doomed(conn: &Connection) -> Channel {
    conn.create_channel().await.expect("open channel")
}

async fn declare_flags_and_redeclare(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    for (tag, options) in [
        ("plain", opts(false, false, false)),
        ("durable", opts(true, false, false)),
        ("exclusive", opts(false, true, false)),
        ("autodel", opts(false, false, true)),
        ("all", opts(true, true, true)),
    ] {
        let q = unique(&format!("q-{tag}"));
        let ok = declare(&ch, &q, options).await;
        assert_eq!(ok.name().as_str(), q);
        assert_eq!((ok.message_count(), ok.consumer_count()), (0, 0));
        // An identical redeclare is fine and reports the same queue.
        let again = declare(&ch, &q, options).await;
        assert_eq!(again.name().as_str(), q);
        let found = declare(&ch, &q, passive()).await;
        assert_eq!(found.name().as_str(), q);
        assert_eq!(delete(&ch, &q).await, 0);
    }
    conn.close(200, "done".into()).await.expect("close");
}

async fn server_named_queues(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let a = declare(&ch, "", opts(false, true, false)).await;
    let b2 = declare(&ch, "", opts(false, true, false)).await;
    for q in [&a, &b2] {
        assert!(
            q.name().as_str().starts_with("amq.gen-"),
            "server-named queue {:?}",
            q.name()
        );
        assert!(q.name().as_str().len() > "amq.gen-".len());
    }
    assert_ne!(a.name(), b2.name());
    // The generated name is a real queue, reachable through the default exchange.
    publish_confirmed(
        &ch,
        "",
        a.name().as_str(),
        b"hi",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(drain(&ch, a.name().as_str()).await, ["hi"]);
    conn.close(200, "done".into()).await.expect("close");
}

async fn declare_ok_reports_messages_and_consumers(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("counts");
    declare(&ch, &q, opts(false, false, false)).await;
    publish_n(&ch, &q, 3).await;
    let ok = declare(&ch, &q, opts(false, false, false)).await;
    assert_eq!((ok.message_count(), ok.consumer_count()), (3, 0));
    let ok = declare(&ch, &q, passive()).await;
    assert_eq!((ok.message_count(), ok.consumer_count()), (3, 0));

    let cch = conn.create_channel().await.expect("consumer channel");
    let mut consumer = consume(&cch, &q).await;
    for i in 0..3 {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("delivery in time")
            .expect("consumer still open")
            .expect("delivery");
        assert_eq!(d.data, format!("m{i}").as_bytes());
    }
    // Delivered but unacked messages are not counted as ready.
    let ok = declare(&ch, &q, passive()).await;
    assert_eq!((ok.message_count(), ok.consumer_count()), (0, 1));
    let _second = consume(&cch, &q).await;
    assert_eq!(declare(&ch, &q, passive()).await.consumer_count(), 2);
    cch.close(200, "done".into())
        .await
        .expect("close consumer channel");
    // Closing the channel requeued the three unacked deliveries and removed both consumers.
    let ok = declare(&ch, &q, passive()).await;
    assert_eq!((ok.message_count(), ok.consumer_count()), (3, 0));
    assert_eq!(delete(&ch, &q).await, 3);
    conn.close(200, "done".into()).await.expect("close");
}

async fn passive_declare_of_missing_queue_is_404(b: &Broker) {
    let conn = b.connect().await;
    let q = unique("missing");
    let ch = doomed(&conn).await;
    assert_amqp_error(
        ch.queue_declare(q.as_str().into(), passive(), FieldTable::default())
            .await,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    // Other operations on a missing queue answer the same way.
    let ch = doomed(&conn).await;
    assert_amqp_error(
        ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())
            .await,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    let ch = doomed(&conn).await;
    assert_amqp_error(
        ch.basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .map(|m| m.is_some()),
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    let ch = doomed(&conn).await;
    assert_amqp_error(
        ch.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map(|c| c.tag()),
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    conn.close(200, "done".into()).await.expect("close");
}

async fn reserved_amq_queue_name_is_refused(b: &Broker) {
    let conn = b.connect().await;
    let ch = doomed(&conn).await;
    assert_amqp_error(
        ch.queue_declare(
            "amq.foo".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        403,
        "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'",
    );
    conn.close(200, "done".into()).await.expect("close");
}

async fn inequivalent_redeclare_is_406(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let q = unique("ineq");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(10));
    ch.queue_declare(q.as_str().into(), opts(false, false, false), args)
        .await
        .expect("declare");
    let mut other_len = FieldTable::default();
    other_len.insert("x-max-length".into(), AMQPValue::LongInt(20));
    let mut with_ttl = FieldTable::default();
    with_ttl.insert("x-max-length".into(), AMQPValue::LongInt(10));
    with_ttl.insert("x-message-ttl".into(), AMQPValue::LongInt(1000));
    let mut same_args = FieldTable::default();
    same_args.insert("x-max-length".into(), AMQPValue::LongInt(10));
    let cases: [(QueueDeclareOptions, FieldTable, String); 5] = [
        (
            opts(true, false, false),
            same_args.clone(),
            format!(
                "inequivalent arg 'durable' for queue '{q}' in vhost '/': received 'true' but \
                 current is 'false'"
            ),
        ),
        (
            opts(false, false, true),
            same_args.clone(),
            format!(
                "inequivalent arg 'auto_delete' for queue '{q}' in vhost '/': received 'true' but \
                 current is 'false'"
            ),
        ),
        (
            opts(false, false, false),
            other_len,
            format!(
                "inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': received '20' but \
                 current is '10'"
            ),
        ),
        (
            opts(false, false, false),
            FieldTable::default(),
            format!(
                "inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': received none but \
                 current is the value '10' of type 'signedint'"
            ),
        ),
        (
            opts(false, false, false),
            with_ttl,
            format!(
                "inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': received the \
                 value '1000' of type 'signedint' but current is none"
            ),
        ),
    ];
    for (options, args, text) in cases {
        let ech = doomed(&conn).await;
        assert_amqp_error(
            ech.queue_declare(q.as_str().into(), options, args).await,
            406,
            &format!("PRECONDITION_FAILED - {text}"),
        );
    }
    // A passive declare does not compare anything.
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            passive: true,
            durable: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare ignores flags and arguments");
    ch.queue_declare(q.as_str().into(), opts(false, false, false), same_args)
        .await
        .expect("equivalent redeclare");
    delete(&ch, &q).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn exclusive_queue_is_locked_to_its_connection(b: &Broker) {
    let owner = b.connect().await;
    let och = owner.create_channel().await.expect("channel");
    let q = unique("excl");
    declare(&och, &q, opts(false, true, false)).await;
    let locked = format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. It \
         could be originally declared on another connection or the exclusive property value does \
         not match that of the original declaration."
    );

    let other = b.connect().await;
    let ch = doomed(&other).await;
    assert_amqp_error(
        ch.queue_declare(
            q.as_str().into(),
            opts(false, true, false),
            FieldTable::default(),
        )
        .await,
        405,
        &locked,
    );
    let ch = doomed(&other).await;
    assert_amqp_error(
        ch.queue_declare(
            q.as_str().into(),
            opts(false, false, false),
            FieldTable::default(),
        )
        .await,
        405,
        &locked,
    );
    let ch = doomed(&other).await;
    assert_amqp_error(
        ch.queue_declare(q.as_str().into(), passive(), FieldTable::default())
            .await,
        405,
        &locked,
    );
    let ch = doomed(&other).await;
    assert_amqp_error(
        ch.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map(|c| c.tag()),
        405,
        &locked,
    );
    let ch = doomed(&other).await;
    assert_amqp_error(
        ch.basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .map(|m| m.is_some()),
        405,
        &locked,
    );
    let ch = doomed(&other).await;
    assert_amqp_error(
        ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())
            .await,
        405,
        &locked,
    );
    let ch = doomed(&other).await;
    assert_amqp_error(
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await,
        405,
        &locked,
    );
    let ch = doomed(&other).await;
    assert_amqp_error(
        ch.queue_bind(
            q.as_str().into(),
            "amq.direct".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        405,
        &locked,
    );
    // Publishing to it from elsewhere is allowed and lands in the queue.
    let pch = confirm_channel(&other).await;
    publish_confirmed(&pch, "", &q, b"from-other", BasicProperties::default()).await;
    other.close(200, "done".into()).await.expect("close other");

    // The owner still has full use of it.
    assert_eq!(drain(&och, &q).await, ["from-other"]);
    assert_eq!(delete(&och, &q).await, 0);
    owner.close(200, "done".into()).await.expect("close owner");
}

async fn exclusive_queue_goes_with_its_connection(b: &Broker) {
    let watcher = b.connect().await;
    let owner = b.connect().await;
    let ch = owner.create_channel().await.expect("channel");
    let q = unique("excl-gone");
    declare(&ch, &q, opts(true, true, false)).await;
    assert!(queue_exists(&owner, &q).await);
    owner.close(200, "bye".into()).await.expect("close owner");
    eventually("exclusive queue deleted with its connection", || {
        let watcher = &watcher;
        let q = &q;
        async move { !queue_exists(watcher, q).await }
    })
    .await;
    watcher.close(200, "done".into()).await.expect("close");
}

async fn auto_delete_queue_goes_after_last_consumer(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let q = unique("autodel");
    declare(&ch, &q, opts(false, false, true)).await;
    // Never consumed: it stays.
    assert!(queue_exists(&conn, &q).await);
    let c1 = consume(&ch, &q).await;
    let c2 = consume(&ch, &q).await;
    ch.basic_cancel(c1.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel first consumer");
    assert!(queue_exists(&conn, &q).await, "one consumer left");
    ch.basic_cancel(c2.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel last consumer");
    eventually("auto-delete queue removed after its last consumer", || {
        let conn = &conn;
        let q = &q;
        async move { !queue_exists(conn, q).await }
    })
    .await;

    // Closing the consumer's channel counts as cancelling.
    let q2 = unique("autodel-close");
    declare(&ch, &q2, opts(false, false, true)).await;
    let cch = conn.create_channel().await.expect("consumer channel");
    let _c = consume(&cch, &q2).await;
    cch.close(200, "done".into())
        .await
        .expect("close consumer channel");
    eventually(
        "auto-delete queue removed when its consumer's channel closed",
        || {
            let conn = &conn;
            let q2 = &q2;
            async move { !queue_exists(conn, q2).await }
        },
    )
    .await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn bind_and_unbind(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let x = unique("bind-x");
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare exchange");
    let q = unique("bind-q");
    declare(&ch, &q, opts(false, true, false)).await;
    ch.queue_bind(
        q.as_str().into(),
        x.as_str().into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    // Binding twice is idempotent: still one copy per message.
    ch.queue_bind(
        q.as_str().into(),
        x.as_str().into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind again");
    publish_confirmed(&ch, &x, "k", b"bound", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &q).await, ["bound"]);
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "k".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    publish_confirmed(&ch, &x, "k", b"unbound", BasicProperties::default()).await;
    assert_eq!(message_count(&ch, &q).await, 0, "no longer routed");
    // Unbinding a binding that does not exist is not an error.
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "never-bound".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind of a missing binding");

    let missing = unique("missing");
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.queue_bind(
            q.as_str().into(),
            missing.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        404,
        &format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"),
    );
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.queue_bind(
            missing.as_str().into(),
            x.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        404,
        &format!("NOT_FOUND - no queue '{missing}' in vhost '/'"),
    );
    ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete exchange");
    delete(&ch, &q).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn purge_returns_count(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("purge");
    declare(&ch, &q, opts(false, true, false)).await;
    publish_n(&ch, &q, 5).await;
    let purged = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    assert_eq!(purged, 5);
    assert_eq!(message_count(&ch, &q).await, 0);
    let purged = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .expect("purge empty");
    assert_eq!(purged, 0);
    // Unacked deliveries are not purged: they come back when their channel closes.
    publish_n(&ch, &q, 2).await;
    let got = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .expect("get")
        .expect("a message");
    assert_eq!(got.delivery.data, b"m0");
    let purged = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .expect("purge with one unacked");
    assert_eq!(purged, 1);
    delete(&ch, &q).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn delete_returns_count(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("delete");
    declare(&ch, &q, opts(false, false, false)).await;
    publish_n(&ch, &q, 4).await;
    assert_eq!(delete(&ch, &q).await, 4);
    assert!(!queue_exists(&conn, &q).await);
    // Deleting a queue that does not exist succeeds and reports zero.
    assert_eq!(delete(&ch, &q).await, 0);
    conn.close(200, "done".into()).await.expect("close");
}

async fn delete_if_empty_refuses_a_non_empty_queue(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("ifempty");
    declare(&ch, &q, opts(false, false, false)).await;
    let if_empty = QueueDeleteOptions {
        if_empty: true,
        ..QueueDeleteOptions::default()
    };
    publish_n(&ch, &q, 1).await;
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.queue_delete(q.as_str().into(), if_empty).await,
        406,
        &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty"),
    );
    assert_eq!(message_count(&ch, &q).await, 1, "queue untouched");
    assert_eq!(drain(&ch, &q).await, ["m0"]);
    let deleted = ch
        .queue_delete(q.as_str().into(), if_empty)
        .await
        .expect("if-empty delete of an empty queue");
    assert_eq!(deleted, 0);
    assert!(!queue_exists(&conn, &q).await);
    conn.close(200, "done".into()).await.expect("close");
}

async fn delete_if_unused_refuses_a_consumed_queue(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let q = unique("ifunused");
    declare(&ch, &q, opts(false, false, false)).await;
    let if_unused = QueueDeleteOptions {
        if_unused: true,
        ..QueueDeleteOptions::default()
    };
    let consumer = consume(&ch, &q).await;
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.queue_delete(q.as_str().into(), if_unused).await,
        406,
        &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' in use"),
    );
    assert!(queue_exists(&conn, &q).await);
    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    ch.queue_delete(q.as_str().into(), if_unused)
        .await
        .expect("if-unused delete without consumers");
    assert!(!queue_exists(&conn, &q).await);
    conn.close(200, "done".into()).await.expect("close");
}

async fn deleting_a_queue_cancels_its_consumers(b: &Broker) {
    let conn = b.connect().await;
    let cch = conn.create_channel().await.expect("consumer channel");
    let ch = confirm_channel(&conn).await;
    let q = unique("cancelled");
    declare(&ch, &q, opts(false, false, false)).await;
    let mut consumer = consume(&cch, &q).await;
    publish_n(&ch, &q, 1).await;
    let first = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("delivery in time")
        .expect("consumer open")
        .expect("delivery");
    assert_eq!(first.data, b"m0");
    // delete-ok counts ready messages only; the one unacked delivery is not included.
    assert_eq!(delete(&ch, &q).await, 0);
    // The server sends basic.cancel; lapin ends the consumer's stream.
    let end = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("basic.cancel in time");
    assert!(end.is_none(), "expected end of stream, got {end:?}");
    // The consumer's channel stays open and usable.
    assert!(cch.status().connected());
    let probe = declare(&cch, "", opts(false, true, false)).await;
    assert!(probe.name().as_str().starts_with("amq.gen-"));
    conn.close(200, "done".into()).await.expect("close");
}

parity!(
    declare_flags_and_redeclare,
    server_named_queues,
    declare_ok_reports_messages_and_consumers,
    passive_declare_of_missing_queue_is_404,
    reserved_amq_queue_name_is_refused,
    inequivalent_redeclare_is_406,
    exclusive_queue_is_locked_to_its_connection,
    exclusive_queue_goes_with_its_connection,
    auto_delete_queue_goes_after_last_consumer,
    bind_and_unbind,
    purge_returns_count,
    delete_returns_count,
    delete_if_empty_refuses_a_non_empty_queue,
    delete_if_unused_refuses_a_consumed_queue,
    deleting_a_queue_cancels_its_consumers,
);
