//! Channels: open/close, many channels, channel.flow, errors on closed or unopened channels.

use lapin::options::{ChannelFlowOptions, ExchangeDeclareOptions};
use lapin::protocol::AMQPClass;
use lapin::protocol::{channel, exchange};
use lapin::types::FieldTable;
use lapin::{Channel, ErrorKind, ExchangeKind};
use tests::{Broker, parity, unique};

use crate::support::{RawConn, amqp_error, assert_amqp_error};

/// A cheap round trip that must succeed on any healthy channel.
async fn ping(ch: &Channel) -> lapin::Result<()> {
    ch.exchange_declare(
        "amq.direct".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
}

fn raw_channel_open() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))
}

/// A passive `exchange.declare amq.direct`: harmless, and answered on any open channel.
fn raw_passive_declare() -> AMQPClass {
    AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
        exchange: "amq.direct".into(),
        kind: "direct".into(),
        passive: true,
        durable: false,
        auto_delete: false,
        internal: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

async fn expect_open_ok(raw: &mut RawConn, id: u16) {
    match raw.read_method().await {
        (ch, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) if ch == id => {}
        other => panic!("expected channel.open-ok on {id}, got {other:?}"),
    }
}

async fn open_use_and_close_channel(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel.open");
    assert!(ch.status().connected());
    ping(&ch).await.expect("use the open channel");
    ch.close(200, "done".into()).await.expect("channel.close");
    assert!(!ch.status().connected());
    // lapin refuses to use a channel it knows is closed; the connection is unaffected.
    let err = ping(&ch)
        .await
        .expect_err("a closed channel cannot be used");
    assert!(
        matches!(err.kind(), ErrorKind::InvalidChannelState(..)),
        "{err}"
    );
    assert!(conn.status().connected());
    let other = conn.create_channel().await.expect("another channel");
    ping(&other).await.expect("another channel works");
    conn.close(200, "done".into()).await.expect("close");
}

async fn many_channels_on_one_connection(b: &Broker) {
    let conn = b.connect().await;
    let mut channels = Vec::new();
    for _ in 0..300 {
        channels.push(conn.create_channel().await.expect("channel.open"));
    }
    let mut ids: Vec<u16> = channels.iter().map(Channel::id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 300, "every channel has its own number");
    for ch in &channels {
        ping(ch).await.expect("each channel works");
    }
    for ch in &channels {
        ch.close(200, "done".into()).await.expect("channel.close");
    }
    conn.close(200, "done".into()).await.expect("close");
}

async fn channel_flow_active_true_is_answered(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let active = ch
        .channel_flow(ChannelFlowOptions { active: true })
        .await
        .expect("channel.flow-ok");
    assert!(active, "flow-ok echoes active=true");
    ping(&ch).await.expect("channel still usable");
    conn.close(200, "done".into()).await.expect("close");
}

async fn channel_flow_active_false_is_not_implemented(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let err = ch
        .channel_flow(ChannelFlowOptions { active: false })
        .await
        .expect_err("RabbitMQ refuses flow active=false");
    assert_eq!(
        amqp_error(&err),
        (540, "NOT_IMPLEMENTED - active=false".to_owned())
    );
    // 540 is a hard error: the whole connection goes.
    assert!(!conn.status().connected());
}

async fn soft_error_closes_only_that_channel(b: &Broker) {
    let conn = b.connect().await;
    let bystander = conn.create_channel().await.expect("channel");
    let ch = conn.create_channel().await.expect("channel");
    let missing = unique("no-such-exchange");
    let res = ch
        .exchange_declare(
            missing.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        res,
        404,
        &format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"),
    );
    assert!(!ch.status().connected(), "the failing channel is closed");
    assert!(ping(&ch).await.is_err(), "and cannot be used any more");
    assert!(conn.status().connected(), "the connection survives");
    ping(&bystander)
        .await
        .expect("other channels are unaffected");
    conn.close(200, "done".into()).await.expect("close");
}

async fn raw_soft_error_sends_channel_close(b: &Broker) {
    let (mut raw, _) = RawConn::open(b.addr).await;
    raw.send_method(1, &raw_channel_open()).await;
    expect_open_ok(&mut raw, 1).await;
    let missing = unique("no-such-exchange");
    raw.send_method(
        1,
        &AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: missing.as_str().into(),
            kind: "direct".into(),
            passive: true,
            durable: false,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
    .await;
    match raw.read_method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::Close(c))) => {
            assert_eq!(c.reply_code, 404);
            assert_eq!(
                c.reply_text.as_str(),
                format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
            );
            // The close names the failing method: exchange.declare is class 40, method 10.
            assert_eq!((c.class_id, c.method_id), (40, 10));
        }
        other => panic!("expected channel.close on 1, got {other:?}"),
    }
    raw.send_method(
        1,
        &AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    )
    .await;
    // The channel number can be opened again and works.
    raw.send_method(1, &raw_channel_open()).await;
    expect_open_ok(&mut raw, 1).await;
    raw.send_method(1, &raw_passive_declare()).await;
    match raw.read_method().await {
        (1, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))) => {}
        other => panic!("expected exchange.declare-ok on 1, got {other:?}"),
    }
    raw.close().await;
}

async fn method_on_unopened_channel_is_channel_error(b: &Broker) {
    let (mut raw, _) = RawConn::open(b.addr).await;
    raw.send_method(5, &raw_passive_declare()).await;
    let (code, text, class, method) = raw.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str()),
        (504, "CHANNEL_ERROR - expected 'channel.open'")
    );
    assert_eq!((class, method), (40, 10));
}

async fn method_on_closed_channel_is_channel_error(b: &Broker) {
    let (mut raw, _) = RawConn::open(b.addr).await;
    raw.send_method(1, &raw_channel_open()).await;
    expect_open_ok(&mut raw, 1).await;
    raw.send_method(
        1,
        &AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
    .await;
    match raw.read_method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {}
        other => panic!("expected channel.close-ok on 1, got {other:?}"),
    }
    raw.send_method(1, &raw_passive_declare()).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str()),
        (504, "CHANNEL_ERROR - expected 'channel.open'")
    );
}

async fn second_channel_open_is_channel_error(b: &Broker) {
    let (mut raw, _) = RawConn::open(b.addr).await;
    raw.send_method(1, &raw_channel_open()).await;
    expect_open_ok(&mut raw, 1).await;
    raw.send_method(1, &raw_channel_open()).await;
    let (code, text, class, method) = raw.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str()),
        (504, "CHANNEL_ERROR - second 'channel.open' seen")
    );
    assert_eq!((class, method), (20, 10));
}

async fn channel_max_is_enforced(b: &Broker) {
    let (mut raw, tune) = RawConn::open(b.addr).await;
    let max = tune.channel_max;
    assert_eq!(max, 2047);
    for id in 1..=max {
        raw.send_method(id, &raw_channel_open()).await;
    }
    // Each channel answers on its own, so open-oks may arrive in any order.
    let mut opened = std::collections::BTreeSet::new();
    for _ in 1..=max {
        match raw.read_method().await {
            (id, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => {
                assert!(opened.insert(id), "second open-ok on {id}");
            }
            other => panic!("expected channel.open-ok, got {other:?}"),
        }
    }
    assert_eq!(opened, (1..=max).collect());
    raw.send_method(max + 1, &raw_channel_open()).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(
        (code, text.as_str()),
        (
            530,
            "NOT_ALLOWED - number of channels opened (2047) has reached the negotiated \
             channel_max (2047)"
        )
    );
}

parity!(
    open_use_and_close_channel,
    many_channels_on_one_connection,
    channel_flow_active_true_is_answered,
    channel_flow_active_false_is_not_implemented,
    soft_error_closes_only_that_channel,
    raw_soft_error_sends_channel_close,
    method_on_unopened_channel_is_channel_error,
    method_on_closed_channel_is_channel_error,
    second_channel_open_is_channel_error,
    channel_max_is_enforced,
);
