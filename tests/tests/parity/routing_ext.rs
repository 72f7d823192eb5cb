//! Routing extensions: alternate exchanges (with `mandatory`, chains, cycles, missing or
//! internal targets) and sender-selected distribution (`CC` / `BCC` headers).

use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use tests::{Broker, parity, unique};

use crate::support::{
    assert_amqp_error, body_of, cleanup, confirm_channel, drain, field_table, get_eventually,
    header, long_str, publish_confirmed, publish_mandatory, str_array,
};

async fn declare_queue(ch: &Channel, name: &str) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

async fn declare_exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    internal: bool,
    args: FieldTable,
) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions {
            internal,
            ..ExchangeDeclareOptions::default()
        },
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("declare exchange {name}: {e}"));
}

fn with_ae(ae: &str) -> FieldTable {
    field_table(&[("alternate-exchange", long_str(ae))])
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

/// Asserts a mandatory publish came back as 312 NO_ROUTE from `exchange` with `key`.
#[track_caller]
fn assert_returned(c: Confirmation, exchange: &str, key: &str) {
    let Confirmation::Ack(Some(ret)) = c else {
        panic!("expected an ack carrying a basic.return, got {c:?}");
    };
    assert_eq!((ret.reply_code, ret.reply_text.as_str()), (312, "NO_ROUTE"));
    assert_eq!(ret.delivery.exchange.as_str(), exchange);
    assert_eq!(ret.delivery.routing_key.as_str(), key);
}

/// Messages the exchange cannot route go to its alternate exchange (here an internal fanout,
/// which cannot be published to directly but can serve as an AE), delivered with the original
/// exchange and routing key. A mandatory publish the AE routes is not returned; one the AE
/// cannot route, or whose AE does not exist, is returned from the original exchange.
async fn alternate_exchange_takes_unroutable(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (ae, main, missing) = (unique("ae"), unique("ae-main"), unique("ae-missing"));
    let (aeq, mq) = (unique("ae-q"), unique("ae-main-q"));
    declare_exchange(&ch, &ae, ExchangeKind::Fanout, true, FieldTable::default()).await;
    declare_exchange(&ch, &main, ExchangeKind::Direct, false, with_ae(&ae)).await;
    declare_queue(&ch, &aeq).await;
    declare_queue(&ch, &mq).await;
    bind(&ch, &aeq, &ae, "").await;
    bind(&ch, &mq, &main, "k").await;

    let routed = publish_mandatory(&ch, &main, "k", b"routed", BasicProperties::default()).await;
    assert_eq!(routed, Confirmation::Ack(None));
    let props = BasicProperties::default()
        .with_headers(field_table(&[("h", long_str("v"))]))
        .with_correlation_id("c-1".into());
    let unroutable = publish_mandatory(&ch, &main, "zzz", b"stray", props.clone()).await;
    assert_eq!(
        unroutable,
        Confirmation::Ack(None),
        "the AE routed it: no return"
    );
    let d = get_eventually(&ch, &aeq, true).await;
    assert_eq!(body_of(&d), "stray");
    assert_eq!(
        d.exchange.as_str(),
        main,
        "delivered with the original exchange"
    );
    assert_eq!(d.routing_key.as_str(), "zzz");
    assert_eq!(d.properties, props);
    assert_eq!(drain(&ch, &mq).await, ["routed"]);
    assert!(
        drain(&ch, &aeq).await.is_empty(),
        "routed messages skip the AE"
    );

    // The AE routes nowhere: returned from the original exchange.
    ch.queue_unbind(
        aeq.as_str().into(),
        ae.as_str().into(),
        "".into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    let c = publish_mandatory(&ch, &main, "zzz", b"lost", BasicProperties::default()).await;
    assert_returned(c, &main, "zzz");

    // The AE does not exist: same.
    let orphan = unique("ae-orphan");
    declare_exchange(&ch, &orphan, ExchangeKind::Direct, false, with_ae(&missing)).await;
    let c = publish_mandatory(&ch, &orphan, "zzz", b"lost", BasicProperties::default()).await;
    assert_returned(c, &orphan, "zzz");
    // Not mandatory: silently dropped, still acked.
    publish_confirmed(&ch, &orphan, "zzz", b"dropped", BasicProperties::default()).await;

    // The internal AE still refuses direct publishes.
    let direct = conn.create_channel().await.expect("channel");
    let mut events = Box::pin(conn.events_listener());
    direct
        .basic_publish(
            ae.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            b"direct",
            BasicProperties::default(),
        )
        .await
        .expect("publish is sent");
    assert_eq!(
        crate::support::next_amqp_error(&mut events).await,
        (
            403,
            format!("ACCESS_REFUSED - cannot publish to internal exchange '{ae}' in vhost '/'")
        )
    );
    cleanup(&conn, &[&aeq, &mq], &[&main, &orphan, &ae]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Alternate exchanges chain (the AE's own AE is tried), and a cycle of AEs ends without a
/// loop: the message is unroutable.
async fn alternate_exchange_chains_and_cycles(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (x1, x2, x3) = (unique("ae-c1"), unique("ae-c2"), unique("ae-c3"));
    let q = unique("ae-chain-q");
    declare_exchange(&ch, &x1, ExchangeKind::Direct, false, with_ae(&x2)).await;
    declare_exchange(&ch, &x2, ExchangeKind::Direct, false, with_ae(&x1)).await;
    let c = publish_mandatory(&ch, &x1, "zzz", b"cycle", BasicProperties::default()).await;
    assert_returned(c, &x1, "zzz");

    // x1 -> x2 (cycle back to x1 is never reached) and x3 -> x1 -> x2: the second hop routes.
    declare_exchange(&ch, &x3, ExchangeKind::Topic, false, with_ae(&x1)).await;
    declare_queue(&ch, &q).await;
    bind(&ch, &q, &x2, "zzz").await;
    let c = publish_mandatory(&ch, &x3, "zzz", b"chain", BasicProperties::default()).await;
    assert_eq!(c, Confirmation::Ack(None));
    let d = get_eventually(&ch, &q, true).await;
    assert_eq!(body_of(&d), "chain");
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        (x3.as_str(), "zzz")
    );
    cleanup(&conn, &[&q], &[&x1, &x2, &x3]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// `CC` and `BCC` (arrays of long strings) add routing keys on the same exchange. Every copy
/// keeps `CC` and loses `BCC`; the delivered routing key is the publish key. A queue reached
/// by several keys gets one copy. CC/BCC keys alone satisfy `mandatory`, and a message routed
/// through `CC` does not go to the alternate exchange.
async fn cc_and_bcc_headers(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (qa, qb, qc) = (unique("cc-a"), unique("cc-b"), unique("cc-c"));
    for q in [&qa, &qb, &qc] {
        declare_queue(&ch, q).await;
    }
    let headers = field_table(&[
        ("CC", str_array(&[&qb])),
        ("BCC", str_array(&[&qc])),
        ("x", long_str("y")),
    ]);
    let c = publish_mandatory(
        &ch,
        "",
        &qa,
        b"memo",
        BasicProperties::default().with_headers(headers),
    )
    .await;
    assert_eq!(c, Confirmation::Ack(None));
    let kept = field_table(&[("CC", str_array(&[&qb])), ("x", long_str("y"))]);
    for q in [&qa, &qb, &qc] {
        let d = get_eventually(&ch, q, true).await;
        assert_eq!(body_of(&d), "memo");
        assert_eq!(
            (d.exchange.as_str(), d.routing_key.as_str()),
            ("", qa.as_str()),
            "{q}"
        );
        assert_eq!(
            d.properties.headers().as_ref(),
            Some(&kept),
            "{q}: BCC stripped"
        );
        assert!(drain(&ch, q).await.is_empty(), "{q}: one copy");
    }

    // Only the CC / BCC keys route: mandatory is satisfied.
    let c = publish_mandatory(
        &ch,
        "",
        &unique("nowhere"),
        b"cc-only",
        BasicProperties::default().with_headers(field_table(&[("CC", str_array(&[&qb]))])),
    )
    .await;
    assert_eq!(c, Confirmation::Ack(None));
    let c = publish_mandatory(
        &ch,
        "",
        &unique("nowhere"),
        b"bcc-only",
        BasicProperties::default().with_headers(field_table(&[("BCC", str_array(&[&qc]))])),
    )
    .await;
    assert_eq!(c, Confirmation::Ack(None));
    assert_eq!(drain(&ch, &qb).await, ["cc-only"]);
    let d = get_eventually(&ch, &qc, true).await;
    assert_eq!(body_of(&d), "bcc-only");
    // With BCC as the only header, no header is left (RabbitMQ sends an empty table).
    assert!(
        d.properties
            .headers()
            .as_ref()
            .is_none_or(|h| h.inner().is_empty()),
        "{:?}",
        d.properties.headers()
    );

    // Duplicated keys (publish key repeated in CC): one copy.
    publish_confirmed(
        &ch,
        "",
        &qa,
        b"dup",
        BasicProperties::default().with_headers(field_table(&[("CC", str_array(&[&qa, &qa]))])),
    )
    .await;
    assert_eq!(drain(&ch, &qa).await, ["dup"]);

    // Non-string array elements are ignored.
    publish_confirmed(
        &ch,
        "",
        &qa,
        b"mixed",
        BasicProperties::default().with_headers(field_table(&[(
            "CC",
            AMQPValue::FieldArray(vec![AMQPValue::LongInt(1), long_str(&qb)].into()),
        )])),
    )
    .await;
    assert_eq!(drain(&ch, &qa).await, ["mixed"]);
    assert_eq!(drain(&ch, &qb).await, ["mixed"]);
    cleanup(&conn, &[&qa, &qb, &qc], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// CC keys are matched by the exchange's own rules (topic patterns here), and a message that
/// a CC key routes does not go to the alternate exchange.
async fn cc_on_topic_exchange_and_with_ae(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let (ae, topic) = (unique("cc-ae"), unique("cc-topic"));
    let (aeq, tq) = (unique("cc-ae-q"), unique("cc-topic-q"));
    declare_exchange(&ch, &ae, ExchangeKind::Fanout, false, FieldTable::default()).await;
    declare_exchange(&ch, &topic, ExchangeKind::Topic, false, with_ae(&ae)).await;
    declare_queue(&ch, &aeq).await;
    declare_queue(&ch, &tq).await;
    bind(&ch, &aeq, &ae, "").await;
    bind(&ch, &tq, &topic, "sales.*").await;
    publish_confirmed(
        &ch,
        &topic,
        "none",
        b"via-cc",
        BasicProperties::default().with_headers(field_table(&[("CC", str_array(&["sales.eu"]))])),
    )
    .await;
    let d = get_eventually(&ch, &tq, true).await;
    assert_eq!(body_of(&d), "via-cc");
    assert_eq!(d.routing_key.as_str(), "none");
    assert!(
        drain(&ch, &aeq).await.is_empty(),
        "routed by CC: not for the AE"
    );
    publish_confirmed(
        &ch,
        &topic,
        "none",
        b"to-ae",
        BasicProperties::default().with_headers(field_table(&[("CC", str_array(&["other.eu"]))])),
    )
    .await;
    let d = get_eventually(&ch, &aeq, true).await;
    assert_eq!(body_of(&d), "to-ae");
    assert_eq!(header(&d.properties, "CC"), Some(&str_array(&["other.eu"])));
    cleanup(&conn, &[&aeq, &tq], &[&topic, &ae]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// A `CC` or `BCC` header that is not an array closes the channel with 406.
async fn cc_of_wrong_type_is_refused(b: &Broker) {
    let conn = b.connect().await;
    let q = unique("cc-bad");
    let ch = conn.create_channel().await.expect("channel");
    declare_queue(&ch, &q).await;
    for (name, value, text) in [
        (
            "CC",
            long_str("k"),
            "PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"CC\",longstr}",
        ),
        (
            "BCC",
            AMQPValue::LongInt(1),
            "PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"BCC\",signedint}",
        ),
    ] {
        let ch = confirm_channel(&conn).await;
        let result = match ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default().with_headers(field_table(&[(name, value)])),
            )
            .await
        {
            Ok(confirm) => confirm.await,
            Err(e) => Err(e),
        };
        assert_amqp_error(result, 406, text);
    }
    let ch = conn.create_channel().await.expect("channel");
    assert!(drain(&ch, &q).await.is_empty());
    cleanup(&conn, &[&q], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    alternate_exchange_takes_unroutable,
    alternate_exchange_chains_and_cycles,
    cc_and_bcc_headers,
    cc_on_topic_exchange_and_with_ae,
    cc_of_wrong_type_is_refused,
);
