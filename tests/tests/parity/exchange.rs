//! Exchanges: the four types and how they route, predeclared exchanges, declare/delete errors,
//! exchange-to-exchange bindings, internal and auto-delete exchanges, the default exchange.

use lapin::options::{
    BasicPublishOptions, ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    ExchangeUnbindOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use tests::{Broker, parity, unique};

use crate::support::{
    amqp_error, assert_amqp_error, confirm_channel, drain, eventually, exchange_exists,
    publish_confirmed, publish_headers_confirmed,
};

fn table(entries: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    t
}

async fn declare(ch: &Channel, name: &str, kind: ExchangeKind, options: ExchangeDeclareOptions) {
    ch.exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("declare exchange {name}: {e}"));
}

async fn passive(ch: &Channel, name: &str) -> lapin::Result<()> {
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
}

async fn delete(ch: &Channel, name: &str) {
    ch.exchange_delete(name.into(), ExchangeDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("delete exchange {name}: {e}"));
}

/// An exclusive, server-named queue: it disappears with the connection even if a scenario fails.
async fn temp_queue(ch: &Channel) -> String {
    ch.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare temporary queue")
    .name()
    .as_str()
    .to_owned()
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange} with {key:?}: {e}"));
}

/// A fresh channel for a step that is expected to fail (the failure closes it).
async fn doomed(conn: &Connection) -> Channel {
    conn.create_channel().await.expect("open channel")
}

async fn direct_routes_on_exact_key(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let x = unique("direct");
    declare(&ch, &x, ExchangeKind::Direct, Default::default()).await;
    let (qa, qb, qc) = (
        temp_queue(&ch).await,
        temp_queue(&ch).await,
        temp_queue(&ch).await,
    );
    bind(&ch, &qa, &x, "k1", FieldTable::default()).await;
    bind(&ch, &qb, &x, "k1", FieldTable::default()).await;
    bind(&ch, &qb, &x, "k2", FieldTable::default()).await;
    bind(&ch, &qc, &x, "K1", FieldTable::default()).await;
    for key in ["k1", "k2", "k3", "K1", "k1.x", ""] {
        publish_confirmed(&ch, &x, key, key.as_bytes(), BasicProperties::default()).await;
    }
    assert_eq!(drain(&ch, &qa).await, ["k1"]);
    assert_eq!(drain(&ch, &qb).await, ["k1", "k2"]);
    assert_eq!(drain(&ch, &qc).await, ["K1"], "keys are case-sensitive");
    delete(&ch, &x).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn fanout_routes_to_every_bound_queue(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let x = unique("fanout");
    declare(&ch, &x, ExchangeKind::Fanout, Default::default()).await;
    let (qa, qb, qc) = (
        temp_queue(&ch).await,
        temp_queue(&ch).await,
        temp_queue(&ch).await,
    );
    bind(&ch, &qa, &x, "", FieldTable::default()).await;
    bind(&ch, &qb, &x, "some-key", FieldTable::default()).await;
    bind(&ch, &qc, &x, "other", FieldTable::default()).await;
    // A queue bound twice (different keys) still gets one copy.
    bind(&ch, &qc, &x, "again", FieldTable::default()).await;
    for key in ["", "anything", "some-key"] {
        publish_confirmed(&ch, &x, key, key.as_bytes(), BasicProperties::default()).await;
    }
    for q in [&qa, &qb, &qc] {
        assert_eq!(drain(&ch, q).await, ["", "anything", "some-key"], "{q}");
    }
    delete(&ch, &x).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn topic_star_and_hash_patterns(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let x = unique("topic");
    declare(&ch, &x, ExchangeKind::Topic, Default::default()).await;
    let patterns = [
        "a.*", "a.#", "#", "a.#.b", "*.b", "*", "a.b", "#.b", "*.*.c", "a.*.#",
    ];
    let mut queues = Vec::new();
    for p in patterns {
        let q = temp_queue(&ch).await;
        bind(&ch, &q, &x, p, FieldTable::default()).await;
        queues.push(q);
    }
    let keys = [
        "a", "a.b", "a.x.b", "a.x.y.b", "b", "a.b.c", "x.a.b", "", "x.y.c",
    ];
    for key in keys {
        publish_confirmed(&ch, &x, key, key.as_bytes(), BasicProperties::default()).await;
    }
    let expected: [(&str, &[&str]); 10] = [
        ("a.*", &["a.b"]),
        ("a.#", &["a", "a.b", "a.x.b", "a.x.y.b", "a.b.c"]),
        ("#", &keys),
        // `#` may match zero words, so `a.#.b` takes `a.b`.
        ("a.#.b", &["a.b", "a.x.b", "a.x.y.b"]),
        ("*.b", &["a.b"]),
        ("*", &["a", "b"]),
        ("a.b", &["a.b"]),
        ("#.b", &["a.b", "a.x.b", "a.x.y.b", "b", "x.a.b"]),
        ("*.*.c", &["a.b.c", "x.y.c"]),
        ("a.*.#", &["a.b", "a.x.b", "a.x.y.b", "a.b.c"]),
    ];
    for ((pattern, want), q) in expected.iter().zip(&queues) {
        assert_eq!(drain(&ch, q).await, *want, "pattern {pattern:?}");
    }
    delete(&ch, &x).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn headers_match_all_any_and_with_x(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let x = unique("headers");
    declare(&ch, &x, ExchangeKind::Headers, Default::default()).await;
    let bindings: [(&str, FieldTable); 7] = [
        (
            "all",
            table(&[("x-match", "all"), ("color", "red"), ("size", "big")]),
        ),
        (
            "any",
            table(&[("x-match", "any"), ("color", "red"), ("size", "big")]),
        ),
        // Without x-match the default is all.
        ("default", table(&[("color", "red")])),
        // Plain all/any ignore x- binding arguments.
        (
            "all-ignores-x",
            table(&[("x-match", "all"), ("color", "red"), ("x-tag", "t")]),
        ),
        ("any-only-x", table(&[("x-match", "any"), ("x-tag", "t")])),
        (
            "all-with-x",
            table(&[("x-match", "all-with-x"), ("color", "red"), ("x-tag", "t")]),
        ),
        (
            "any-with-x",
            table(&[("x-match", "any-with-x"), ("size", "small"), ("x-tag", "t")]),
        ),
    ];
    let mut queues = Vec::new();
    for (name, args) in &bindings {
        let q = temp_queue(&ch).await;
        // The routing key is irrelevant to a headers exchange.
        bind(&ch, &q, &x, name, args.clone()).await;
        queues.push(q);
    }
    let messages: [(&str, FieldTable); 7] = [
        ("m1", table(&[("color", "red"), ("size", "big")])),
        ("m2", table(&[("color", "red")])),
        ("m3", table(&[("color", "red"), ("x-tag", "t")])),
        ("m4", table(&[("size", "small")])),
        ("m5", FieldTable::default()),
        ("m6", table(&[("color", "blue"), ("size", "big")])),
        ("m7", table(&[("x-tag", "t")])),
    ];
    for (body, headers) in &messages {
        publish_headers_confirmed(&ch, &x, body.as_bytes(), headers.clone()).await;
    }
    let expected: [&[&str]; 7] = [
        &["m1"],
        &["m1", "m2", "m3", "m6"],
        &["m1", "m2", "m3"],
        &["m1", "m2", "m3"],
        &[],
        &["m3"],
        &["m3", "m4", "m7"],
    ];
    for (((name, _), want), q) in bindings.iter().zip(expected).zip(&queues) {
        assert_eq!(drain(&ch, q).await, want, "binding {name}");
    }
    delete(&ch, &x).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn every_type_can_be_declared_and_redeclared(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let kinds = [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ];
    for kind in kinds {
        let x = unique("kind");
        for options in [
            ExchangeDeclareOptions::default(),
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
        ] {
            let x = format!("{x}-{}", options.durable);
            declare(&ch, &x, kind.clone(), options).await;
            // Redeclaring with identical properties is fine.
            declare(&ch, &x, kind.clone(), options).await;
            passive(&ch, &x).await.expect("passive declare finds it");
            delete(&ch, &x).await;
        }
    }
    conn.close(200, "done".into()).await.expect("close");
}

async fn predeclared_exchanges_exist(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    for name in [
        "amq.direct",
        "amq.fanout",
        "amq.topic",
        "amq.headers",
        "amq.match",
        "amq.rabbitmq.trace",
    ] {
        passive(&ch, name)
            .await
            .unwrap_or_else(|e| panic!("{name} must exist: {e}"));
    }
    // A passive declare only checks existence: the type sent is not compared.
    ch.exchange_declare(
        "amq.fanout".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            passive: true,
            durable: false,
            auto_delete: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare ignores type and flags");
    conn.close(200, "done".into()).await.expect("close");
}

async fn reserved_amq_prefix_is_refused(b: &Broker) {
    let conn = b.connect().await;
    let ch = doomed(&conn).await;
    let res = ch
        .exchange_declare(
            "amq.foo".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        res,
        403,
        "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'",
    );
    // RabbitMQ checks the prefix only when it would create the exchange: an equivalent
    // redeclare of a predeclared one is accepted.
    let ch = conn.create_channel().await.expect("channel");
    ch.exchange_declare(
        "amq.direct".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("equivalent redeclare of amq.direct");
    let ch = doomed(&conn).await;
    let res = ch
        .exchange_declare(
            "amq.direct".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        res,
        406,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost '/': \
         received 'fanout' but current is 'direct'",
    );
    let ch = doomed(&conn).await;
    assert_amqp_error(
        ch.exchange_delete("amq.direct".into(), ExchangeDeleteOptions::default())
            .await,
        403,
        "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed",
    );
    let ch = doomed(&conn).await;
    assert_amqp_error(
        ch.exchange_delete("amq.foo".into(), ExchangeDeleteOptions::default())
            .await,
        403,
        // Refused by name, even though no such exchange exists.
        "ACCESS_REFUSED - deletion of system exchange 'amq.foo' in vhost '/' not allowed",
    );
    let ch = conn.create_channel().await.expect("channel");
    passive(&ch, "amq.direct")
        .await
        .expect("amq.direct survives");
    conn.close(200, "done".into()).await.expect("close");
}

async fn passive_declare_of_missing_exchange_is_404(b: &Broker) {
    let conn = b.connect().await;
    let ch = doomed(&conn).await;
    let x = unique("missing");
    assert_amqp_error(
        passive(&ch, &x).await,
        404,
        &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"),
    );
    conn.close(200, "done".into()).await.expect("close");
}

async fn inequivalent_redeclare_is_406(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let x = unique("ineq");
    declare(&ch, &x, ExchangeKind::Direct, Default::default()).await;
    let cases: [(ExchangeKind, ExchangeDeclareOptions, FieldTable, String); 5] = [
        (
            ExchangeKind::Fanout,
            Default::default(),
            FieldTable::default(),
            format!(
                "inequivalent arg 'type' for exchange '{x}' in vhost '/': received 'fanout' but \
                 current is 'direct'"
            ),
        ),
        (
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
            format!(
                "inequivalent arg 'durable' for exchange '{x}' in vhost '/': received 'true' but \
                 current is 'false'"
            ),
        ),
        (
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
            format!(
                "inequivalent arg 'auto_delete' for exchange '{x}' in vhost '/': received 'true' \
                 but current is 'false'"
            ),
        ),
        (
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                internal: true,
                ..Default::default()
            },
            FieldTable::default(),
            format!(
                "inequivalent arg 'internal' for exchange '{x}' in vhost '/': received 'true' but \
                 current is 'false'"
            ),
        ),
        (
            ExchangeKind::Direct,
            Default::default(),
            table(&[("alternate-exchange", "elsewhere")]),
            format!(
                "inequivalent arg 'alternate-exchange' for exchange '{x}' in vhost '/': received \
                 the value 'elsewhere' of type 'longstr' but current is none"
            ),
        ),
    ];
    for (kind, options, args, text) in cases {
        let ech = doomed(&conn).await;
        let res = ech
            .exchange_declare(x.as_str().into(), kind, options, args)
            .await;
        assert_amqp_error(res, 406, &format!("PRECONDITION_FAILED - {text}"));
    }
    passive(&ch, &x).await.expect("the original is untouched");
    delete(&ch, &x).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn unknown_exchange_type_is_refused(b: &Broker) {
    let conn = b.connect().await;
    let ch = doomed(&conn).await;
    let x = unique("weird");
    let res = ch
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Custom("x-no-such-type".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    // RabbitMQ 3.10 treats this as a hard error (503 closes the connection), not a 406.
    assert_amqp_error(
        res,
        503,
        "COMMAND_INVALID - unknown exchange type 'x-no-such-type'",
    );
    assert!(!conn.status().connected());
    let conn = b.connect().await;
    assert!(!exchange_exists(&conn, &x).await);
    conn.close(200, "done".into()).await.expect("close");
}

async fn delete_if_unused_refuses_a_bound_exchange(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let x = unique("inuse");
    declare(&ch, &x, ExchangeKind::Direct, Default::default()).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &x, "k", FieldTable::default()).await;
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.exchange_delete(
            x.as_str().into(),
            ExchangeDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await,
        406,
        &format!("PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use"),
    );
    passive(&ch, &x).await.expect("still there");
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "k".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    ch.exchange_delete(
        x.as_str().into(),
        ExchangeDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    )
    .await
    .expect("if-unused delete of an unbound exchange");
    assert!(!exchange_exists(&conn, &x).await);
    // Deleting an exchange that does not exist is not an error.
    delete(&ch, &x).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn delete_if_unused_counts_only_outgoing_bindings(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let (src, dst) = (unique("src"), unique("dst"));
    declare(&ch, &src, ExchangeKind::Direct, Default::default()).await;
    declare(&ch, &dst, ExchangeKind::Fanout, Default::default()).await;
    ch.exchange_bind(
        dst.as_str().into(),
        src.as_str().into(),
        "k".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
    // The destination of an exchange binding has no bindings of its own: it is unused.
    ch.exchange_delete(
        dst.as_str().into(),
        ExchangeDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    )
    .await
    .expect("destination-only exchange counts as unused");
    assert!(!exchange_exists(&conn, &dst).await);
    // Its binding went with it, so the source is unused now as well.
    ch.exchange_delete(
        src.as_str().into(),
        ExchangeDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    )
    .await
    .expect("source lost its only binding");
    conn.close(200, "done".into()).await.expect("close");
}

async fn exchange_to_exchange_binding_routes_until_unbound(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (src, dst) = (unique("e2e-src"), unique("e2e-dst"));
    declare(&ch, &src, ExchangeKind::Direct, Default::default()).await;
    declare(&ch, &dst, ExchangeKind::Topic, Default::default()).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &dst, "k.#", FieldTable::default()).await;
    ch.exchange_bind(
        dst.as_str().into(),
        src.as_str().into(),
        "k.one".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
    for key in ["k.one", "k.two", "other"] {
        publish_confirmed(&ch, &src, key, key.as_bytes(), BasicProperties::default()).await;
    }
    // Only k.one crosses the direct binding, then matches k.# at the destination.
    assert_eq!(drain(&ch, &q).await, ["k.one"]);
    ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "k.one".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.unbind");
    publish_confirmed(&ch, &src, "k.one", b"after", BasicProperties::default()).await;
    assert!(drain(&ch, &q).await.is_empty(), "unbound: nothing routed");
    publish_confirmed(&ch, &dst, "k.direct", b"direct", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &q).await, ["direct"]);
    delete(&ch, &src).await;
    delete(&ch, &dst).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn exchange_bind_to_missing_exchange_is_404(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let (x, missing) = (unique("present"), unique("absent"));
    declare(&ch, &x, ExchangeKind::Fanout, Default::default()).await;
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.exchange_bind(
            x.as_str().into(),
            missing.as_str().into(),
            "".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        404,
        &format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"),
    );
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.exchange_bind(
            missing.as_str().into(),
            x.as_str().into(),
            "".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        404,
        &format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"),
    );
    delete(&ch, &x).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn internal_exchange_refuses_direct_publish(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (front, internal) = (unique("front"), unique("internal"));
    declare(&ch, &front, ExchangeKind::Fanout, Default::default()).await;
    declare(
        &ch,
        &internal,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
    )
    .await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &internal, "", FieldTable::default()).await;
    ch.exchange_bind(
        internal.as_str().into(),
        front.as_str().into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
    // Reachable through an exchange binding...
    publish_confirmed(&ch, &front, "", b"via-front", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &q).await, ["via-front"]);
    // ...but not directly.
    let pch = confirm_channel(&conn).await;
    let res = async {
        pch.basic_publish(
            internal.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            b"direct",
            BasicProperties::default(),
        )
        .await?
        .await
    }
    .await;
    assert_amqp_error(
        res,
        403,
        &format!("ACCESS_REFUSED - cannot publish to internal exchange '{internal}' in vhost '/'"),
    );
    assert!(drain(&ch, &q).await.is_empty());
    delete(&ch, &front).await;
    delete(&ch, &internal).await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn auto_delete_exchange_goes_with_its_last_binding(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let x = unique("autodel");
    let auto = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare(&ch, &x, ExchangeKind::Direct, auto).await;
    // Never bound: an auto-delete exchange stays.
    assert!(exchange_exists(&conn, &x).await);
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &x, "a", FieldTable::default()).await;
    bind(&ch, &q, &x, "b", FieldTable::default()).await;
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "a".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind a");
    assert!(exchange_exists(&conn, &x).await, "one binding left");
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "b".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind b");
    eventually("auto-delete exchange removed after its last unbind", || {
        let conn = &conn;
        let x = &x;
        async move { !exchange_exists(conn, x).await }
    })
    .await;

    // Deleting the bound queue also removes the last binding.
    let y = unique("autodel-q");
    declare(&ch, &y, ExchangeKind::Fanout, auto).await;
    let q2 = temp_queue(&ch).await;
    bind(&ch, &q2, &y, "", FieldTable::default()).await;
    ch.queue_delete(q2.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete queue");
    eventually("auto-delete exchange removed with its only queue", || {
        let conn = &conn;
        let y = &y;
        async move { !exchange_exists(conn, y).await }
    })
    .await;
    conn.close(200, "done".into()).await.expect("close");
}

async fn default_exchange_cannot_be_touched(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = temp_queue(&ch).await;
    let x = unique("other");
    declare(&ch, &x, ExchangeKind::Fanout, Default::default()).await;
    const REFUSED: &str = "ACCESS_REFUSED - operation not permitted on the default exchange";

    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.queue_bind(
            q.as_str().into(),
            "".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        403,
        REFUSED,
    );
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.queue_unbind(
            q.as_str().into(),
            "".into(),
            q.as_str().into(),
            FieldTable::default(),
        )
        .await,
        403,
        REFUSED,
    );
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.exchange_delete("".into(), ExchangeDeleteOptions::default())
            .await,
        403,
        REFUSED,
    );
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.exchange_bind(
            "".into(),
            x.as_str().into(),
            "".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        403,
        REFUSED,
    );
    let ech = doomed(&conn).await;
    assert_amqp_error(
        ech.exchange_bind(
            x.as_str().into(),
            "".into(),
            "".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        403,
        REFUSED,
    );
    let ech = doomed(&conn).await;
    let res = ech
        .exchange_declare(
            "".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    let err = res.expect_err("declaring the default exchange is refused");
    assert_eq!(amqp_error(&err), (403, REFUSED.to_owned()));

    // The default exchange itself still routes by queue name.
    publish_confirmed(&ch, "", &q, b"by-name", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &q).await, ["by-name"]);
    delete(&ch, &x).await;
    conn.close(200, "done".into()).await.expect("close");
}

parity!(
    direct_routes_on_exact_key,
    fanout_routes_to_every_bound_queue,
    topic_star_and_hash_patterns,
    headers_match_all_any_and_with_x,
    every_type_can_be_declared_and_redeclared,
    predeclared_exchanges_exist,
    reserved_amq_prefix_is_refused,
    passive_declare_of_missing_exchange_is_404,
    inequivalent_redeclare_is_406,
    unknown_exchange_type_is_refused,
    delete_if_unused_refuses_a_bound_exchange,
    delete_if_unused_counts_only_outgoing_bindings,
    exchange_to_exchange_binding_routes_until_unbound,
    exchange_bind_to_missing_exchange_is_404,
    internal_exchange_refuses_direct_publish,
    auto_delete_exchange_goes_with_its_last_binding,
    default_exchange_cannot_be_touched,
);
