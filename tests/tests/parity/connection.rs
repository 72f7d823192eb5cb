//! Connection handshake: server properties, tuning, authentication and vhost refusal, close.

use std::collections::BTreeSet;

use lapin::protocol::AMQPClass;
use lapin::protocol::connection::AMQPMethod;
use lapin::types::AMQPValue;
use lapin::{Connection, ConnectionProperties};
use tests::{Broker, parity, unique};

use crate::support::{RawConn, amqp_error, eventually};

/// The capability table RabbitMQ advertises in `connection.start` (`rabbit_reader.erl`).
const CAPABILITIES: [&str; 9] = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "consumer_priorities",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
];

async fn server_properties_match_rabbitmq(b: &Broker) {
    let mut raw = RawConn::start(b.addr).await;
    let start = match raw.read_method().await {
        (0, AMQPClass::Connection(AMQPMethod::Start(s))) => s,
        other => panic!("expected connection.start on channel 0, got {other:?}"),
    };
    assert_eq!((start.version_major, start.version_minor), (0, 9));

    let props = start.server_properties.inner();
    let caps = match props.get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => t.inner().clone(),
        other => panic!("capabilities must be a table, got {other:?}"),
    };
    let names: BTreeSet<&str> = caps.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, CAPABILITIES.into_iter().collect::<BTreeSet<_>>());
    for (name, value) in &caps {
        assert_eq!(value, &AMQPValue::Boolean(true), "capability {name}");
    }
    for key in ["product", "version", "platform", "cluster_name"] {
        match props.get(key) {
            Some(AMQPValue::LongString(s)) => assert!(!s.as_bytes().is_empty(), "{key} is empty"),
            other => panic!("server property {key} must be a non-empty longstr, got {other:?}"),
        }
    }

    let mechanisms = start.mechanisms.to_string();
    let mechanisms: BTreeSet<&str> = mechanisms.split_whitespace().collect();
    assert_eq!(mechanisms, BTreeSet::from(["AMQPLAIN", "PLAIN"]));
    assert_eq!(start.locales.to_string(), "en_US");
}

async fn tune_offer_and_lapin_negotiation(b: &Broker) {
    let (raw, tune) = RawConn::open(b.addr).await;
    assert_eq!(
        (tune.channel_max, tune.frame_max, tune.heartbeat),
        (2047, 131_072, 60)
    );
    raw.close().await;

    // lapin asks for nothing in particular, so it adopts the server's offer as is.
    let conn = b.connect().await;
    let cfg = conn.configuration();
    assert_eq!(
        (cfg.channel_max(), cfg.frame_max(), cfg.heartbeat()),
        (2047, 131_072, 60)
    );
    conn.close(200, "done".into()).await.expect("close");
}

/// Sends `tune-ok` with the given values and `connection.open`, then reports what came back:
/// `"open-ok"`, or `"closed"` when the server dropped the socket without sending anything.
async fn try_tune_ok(addr: std::net::SocketAddr, channel_max: u16, frame_max: u32) -> String {
    use lapin::protocol::connection::{Open, TuneOk};
    let (mut raw, _) = RawConn::until_tune(addr).await;
    raw.send_method(
        0,
        &AMQPClass::Connection(AMQPMethod::TuneOk(TuneOk {
            channel_max,
            frame_max,
            heartbeat: 0,
        })),
    )
    .await;
    raw.send_method(
        0,
        &AMQPClass::Connection(AMQPMethod::Open(Open {
            virtual_host: "/".into(),
        })),
    )
    .await;
    let Some(frame) = raw.read_frame().await else {
        return "closed".to_owned();
    };
    match lapin::protocol::parse_class(frame.payload.as_slice()) {
        Ok((_, AMQPClass::Connection(AMQPMethod::OpenOk(_)))) => {
            raw.close().await;
            "open-ok".to_owned()
        }
        other => format!("{other:?}"),
    }
}

async fn tune_ok_values_are_validated(b: &Broker) {
    let cases: [((u16, u32), &str); 8] = [
        // Lower values than offered are the client's right...
        ((10, 8192), "open-ok"),
        // ...down to a frame_max of 4096, the 0-9-1 spec minimum (RabbitMQ 3.10 does not enforce
        // the 8192 of later versions).
        ((2047, 4096), "open-ok"),
        ((2047, 4095), "closed"),
        // Above the offer, or 0 (unlimited) against a limited offer: the socket is closed
        // without a connection.close frame.
        ((2047, 131_073), "closed"),
        ((2048, 131_072), "closed"),
        ((2047, 0), "closed"),
        ((0, 131_072), "closed"),
        ((2047, 131_072), "open-ok"),
    ];
    // Refusals take a few seconds (RabbitMQ delays handshake failures), so run them together.
    let tasks: Vec<_> = cases
        .iter()
        .map(|&((c, f), _)| tokio::spawn(try_tune_ok(b.addr, c, f)))
        .collect();
    for ((values, want), task) in cases.iter().zip(tasks) {
        let got = task.await.expect("tune-ok attempt");
        assert_eq!(got, *want, "tune-ok (channel_max, frame_max) = {values:?}");
    }
}

async fn wrong_password_is_refused(b: &Broker) {
    assert!(
        b.url.contains("guest:guest@"),
        "scenario assumes guest/guest"
    );
    let url = b.url.replacen("guest:guest@", "guest:not-the-password@", 1);
    let err = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect_err("a wrong password must not connect");
    assert_eq!(
        amqp_error(&err),
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details \
             see the broker logfile."
                .to_owned()
        )
    );
}

async fn unknown_user_is_refused(b: &Broker) {
    assert!(
        b.url.contains("guest:guest@"),
        "scenario assumes guest/guest"
    );
    let user = unique("nobody");
    let url = b.url.replacen("guest:guest@", &format!("{user}:guest@"), 1);
    let err = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect_err("an unknown user must not connect");
    // Same text as a wrong password: RabbitMQ does not reveal whether the user exists.
    assert_eq!(
        amqp_error(&err),
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details \
             see the broker logfile."
                .to_owned()
        )
    );
}

async fn unknown_vhost_is_refused(b: &Broker) {
    assert!(b.url.ends_with("/%2f"), "scenario assumes vhost /");
    let vhost = unique("no-such-vhost");
    let url = format!("{}/{vhost}", b.url.trim_end_matches("/%2f"));
    let err = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect_err("an unknown vhost must not open");
    assert_eq!(
        amqp_error(&err),
        (530, format!("NOT_ALLOWED - vhost {vhost} not found"))
    );
}

async fn client_close_is_acknowledged(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    assert!(conn.status().connected());
    conn.close(200, "client says bye".into())
        .await
        .expect("connection.close answered with close-ok");
    // lapin records the close-ok through its internal RPC, so the state settles just after.
    assert!(!conn.status().connected());
    eventually("lapin settles the connection state", || {
        let conn = &conn;
        async move { conn.status().closed() || conn.status().errored() }
    })
    .await;
    assert!(
        conn.status().closed(),
        "lapin ended in the Error state, not Closed: the close was not clean from its side \
         (RabbitMQ leaves closing the socket to the client after close-ok)"
    );
    assert!(!ch.status().connected(), "channels go with the connection");
    assert!(conn.create_channel().await.is_err());

    // On the wire: close-ok comes back. (RabbitMQ then leaves closing the socket to the client.)
    let (mut raw, _) = RawConn::open(b.addr).await;
    raw.send_method(
        0,
        &AMQPClass::Connection(AMQPMethod::Close(lapin::protocol::connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
    .await;
    match raw.read_method().await {
        (0, AMQPClass::Connection(AMQPMethod::CloseOk(_))) => {}
        other => panic!("expected connection.close-ok, got {other:?}"),
    }
}

parity!(
    server_properties_match_rabbitmq,
    tune_offer_and_lapin_negotiation,
    tune_ok_values_are_validated,
    wrong_password_is_refused,
    unknown_user_is_refused,
    unknown_vhost_is_refused,
    client_close_is_acknowledged,
);
