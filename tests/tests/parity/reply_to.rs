//! Direct reply-to: a requester consumes the pseudo-queue `amq.rabbitmq.reply-to` in no-ack
//! mode and publishes with `reply_to = amq.rabbitmq.reply-to`; the broker rewrites `reply_to`
//! to `amq.rabbitmq.reply-to.<opaque>`, and a reply published to the default exchange with that
//! routing key reaches the requester's consumer, on that channel only.

use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Consumer};
use tests::{Broker, Target, parity, unique};

use crate::support::{
    assert_amqp_error, body_of, cleanup, confirm_channel, eventually, field_table, get_eventually,
    long_str, next_delivery, publish_confirmed, publish_mandatory,
};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

async fn declare(ch: &Channel, name: &str) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

async fn reply_consumer(ch: &Channel) -> Consumer {
    ch.basic_consume(
        REPLY_TO.into(),
        "".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("consume amq.rabbitmq.reply-to (no-ack)")
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    }
}

/// The round trip: request with `reply_to` rewritten, reply back on the requester's consumer
/// with the responder's properties, routing key = the rewritten name, exchange "".
async fn direct_reply_to_round_trip(b: &Broker) {
    let conn = b.connect().await;
    let server = confirm_channel(&conn).await;
    let requests = unique("rpc-requests");
    declare(&server, &requests).await;

    let client = confirm_channel(&conn).await;
    let mut replies = reply_consumer(&client).await;
    assert!(replies.tag().as_str().starts_with("amq.ctag-"));
    publish_confirmed(
        &client,
        "",
        &requests,
        b"2+2",
        BasicProperties::default()
            .with_reply_to(REPLY_TO.into())
            .with_correlation_id("call-1".into()),
    )
    .await;

    let request = get_eventually(&server, &requests, true).await;
    assert_eq!(body_of(&request), "2+2");
    assert_eq!(
        request
            .properties
            .correlation_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("call-1")
    );
    let reply_to = request
        .properties
        .reply_to()
        .as_ref()
        .expect("reply_to is set")
        .as_str()
        .to_owned();
    let prefix = format!("{REPLY_TO}.");
    assert!(
        reply_to.starts_with(&prefix) && reply_to.len() > prefix.len(),
        "rewritten reply_to: {reply_to:?}"
    );

    // The responder answers through the default exchange.
    let reply_props = BasicProperties::default()
        .with_correlation_id("call-1".into())
        .with_content_type("text/plain".into())
        .with_headers(field_table(&[("status", long_str("ok"))]));
    publish_confirmed(&server, "", &reply_to, b"4", reply_props.clone()).await;
    let reply = next_delivery(&mut replies).await;
    assert_eq!(body_of(&reply), "4");
    assert_eq!(reply.exchange.as_str(), "");
    assert_eq!(reply.routing_key.as_str(), reply_to);
    assert!(!reply.redelivered);
    assert_eq!(reply.properties, reply_props);

    // A request whose reply_to is already the full name is left as it is.
    publish_confirmed(
        &client,
        "",
        &requests,
        b"again",
        BasicProperties::default().with_reply_to(reply_to.as_str().into()),
    )
    .await;
    let request = get_eventually(&server, &requests, true).await;
    assert_eq!(
        request.properties.reply_to().as_ref().map(|s| s.as_str()),
        Some(reply_to.as_str())
    );
    // Several replies in a row arrive in order.
    for i in 0..3 {
        publish_confirmed(
            &server,
            "",
            &reply_to,
            format!("r{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    for i in 0..3 {
        assert_eq!(body_of(&next_delivery(&mut replies).await), format!("r{i}"));
    }
    // RabbitMQ 3.10 quirk: a *mandatory* reply to a live reply-to name is delivered and yet
    // also returned with 312 NO_ROUTE (the pseudo-queue is not a real queue of the default
    // exchange). Clients that reply with mandatory=true see that spurious return.
    let c = publish_mandatory(
        &server,
        "",
        &reply_to,
        b"mandatory",
        BasicProperties::default(),
    )
    .await;
    match b.target {
        Target::RabbitMq => {
            let Confirmation::Ack(Some(ret)) = c else {
                panic!("RabbitMQ returns a mandatory direct reply, got {c:?}");
            };
            assert_eq!((ret.reply_code, ret.reply_text.as_str()), (312, "NO_ROUTE"));
            assert_eq!(ret.delivery.routing_key.as_str(), reply_to);
        }
        // Deliberate difference: a reply that reached its consumer is not also returned.
        Target::Ours => assert!(
            matches!(c, Confirmation::Ack(None)),
            "delivered, not returned: {c:?}"
        ),
    }
    assert_eq!(body_of(&next_delivery(&mut replies).await), "mandatory");
    cleanup(&conn, &[&requests], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// The pseudo-queue's rules: consuming it with acks, consuming it twice on a channel, publishing
/// with `reply_to = amq.rabbitmq.reply-to` from a channel without the consumer, and
/// `basic.get` on it are all refused.
async fn direct_reply_to_errors(b: &Broker) {
    let conn = b.connect().await;
    let target = unique("rpc-target");
    let setup = conn.create_channel().await.expect("channel");
    declare(&setup, &target).await;

    let ch = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        ch.basic_consume(
            REPLY_TO.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map(|c| c.tag()),
        406,
        "PRECONDITION_FAILED - reply consumer cannot acknowledge",
    );

    let ch = conn.create_channel().await.expect("channel");
    let _first = reply_consumer(&ch).await;
    assert_amqp_error(
        ch.basic_consume(
            REPLY_TO.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|c| c.tag()),
        406,
        "PRECONDITION_FAILED - reply consumer already set",
    );

    let ch = confirm_channel(&conn).await;
    let result = match ch
        .basic_publish(
            "".into(),
            target.as_str().into(),
            BasicPublishOptions::default(),
            b"who answers?",
            BasicProperties::default().with_reply_to(REPLY_TO.into()),
        )
        .await
    {
        Ok(confirm) => confirm.await,
        Err(e) => Err(e),
    };
    assert_amqp_error(
        result,
        406,
        "PRECONDITION_FAILED - fast reply consumer does not exist",
    );

    let ch = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        ch.basic_get(REPLY_TO.into(), BasicGetOptions { no_ack: true })
            .await
            .map(|m| m.is_some()),
        404,
        "NOT_FOUND - no queue 'amq.rabbitmq.reply-to' in vhost '/'",
    );

    let ch = conn.create_channel().await.expect("channel");
    assert!(
        ch.basic_get(target.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .is_none(),
        "the refused request was not enqueued"
    );
    cleanup(&conn, &[&target], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Declaring the pseudo-queue (passively or not) answers declare-ok with 0 messages and 1
/// consumer; the rewritten name exists while the requester's channel is open and is 404 after.
/// A reply to a requester that went away, or to a made-up name, is unroutable (312 when
/// mandatory).
async fn direct_reply_to_declare_and_stale_replies(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    for options in [passive(), QueueDeclareOptions::default()] {
        let ok = ch
            .queue_declare(REPLY_TO.into(), options, FieldTable::default())
            .await
            .expect("declare amq.rabbitmq.reply-to");
        assert_eq!(ok.name().as_str(), REPLY_TO);
        assert_eq!((ok.message_count(), ok.consumer_count()), (0, 1));
    }

    let requests = unique("rpc-stale");
    declare(&ch, &requests).await;
    let client = confirm_channel(&conn).await;
    let _replies = reply_consumer(&client).await;
    publish_confirmed(
        &client,
        "",
        &requests,
        b"req",
        BasicProperties::default().with_reply_to(REPLY_TO.into()),
    )
    .await;
    let request = get_eventually(&ch, &requests, true).await;
    let reply_to = request
        .properties
        .reply_to()
        .as_ref()
        .expect("reply_to")
        .as_str()
        .to_owned();
    let ok = ch
        .queue_declare(reply_to.as_str().into(), passive(), FieldTable::default())
        .await
        .expect("passive declare of the live reply name");
    assert_eq!(ok.name().as_str(), reply_to);
    assert_eq!((ok.message_count(), ok.consumer_count()), (0, 1));

    client
        .close(200, "requester gone".into())
        .await
        .expect("close requester");
    // The requester's channel may take a moment to be gone on the broker's side.
    eventually("a late reply is returned as unroutable", || async {
        match publish_mandatory(&ch, "", &reply_to, b"late", BasicProperties::default()).await {
            Confirmation::Ack(None) => false,
            Confirmation::Ack(Some(ret)) => {
                assert_eq!((ret.reply_code, ret.reply_text.as_str()), (312, "NO_ROUTE"));
                assert_eq!(ret.delivery.routing_key.as_str(), reply_to);
                true
            }
            other => panic!("unexpected confirmation {other:?}"),
        }
    })
    .await;

    let made_up = format!("{REPLY_TO}.garbage");
    let c = publish_mandatory(&ch, "", &made_up, b"x", BasicProperties::default()).await;
    let Confirmation::Ack(Some(ret)) = c else {
        panic!("expected a reply to a made-up name to be returned, got {c:?}");
    };
    assert_eq!((ret.reply_code, ret.reply_text.as_str()), (312, "NO_ROUTE"));

    let probe = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        probe
            .queue_declare(reply_to.as_str().into(), passive(), FieldTable::default())
            .await,
        404,
        &format!("NOT_FOUND - no queue '{reply_to}' in vhost '/'"),
    );
    cleanup(&conn, &[&requests], &[]).await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    direct_reply_to_round_trip,
    direct_reply_to_errors,
    direct_reply_to_declare_and_stale_replies,
);
