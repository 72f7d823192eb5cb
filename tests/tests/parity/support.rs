//! Helpers shared by parity scenarios. Each scenario module uses a subset, hence the allow.
//! Append new helpers at the end; keep existing signatures stable.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::protocol::AMQPClass;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, Error, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any bounded wait in a scenario may take before it is declared failed.
pub const WAIT: Duration = Duration::from_secs(10);

/// Reply code and reply text of the AMQP error (channel.close / connection.close) carried by
/// `err`; panics when `err` is some other kind of error.
pub fn amqp_error(err: &Error) -> (u16, String) {
    match err.kind() {
        ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().as_str().to_owned()),
        other => panic!("expected an AMQP protocol error, got {other:?} ({err})"),
    }
}

/// Asserts that `result` failed with exactly this reply code and reply text.
#[track_caller]
pub fn assert_amqp_error<T: std::fmt::Debug>(result: lapin::Result<T>, code: u16, text: &str) {
    match result {
        Ok(v) => panic!("expected error {code} {text:?}, got Ok({v:?})"),
        Err(e) => assert_eq!(amqp_error(&e), (code, text.to_owned()), "error was: {e}"),
    }
}

/// Polls `check` until it returns true, panicking with `what` after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A new channel in publisher-confirm mode.
pub async fn confirm_channel(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.expect("open channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch
}

/// Publishes on a confirm-mode channel and waits for the broker's ack, so that the message has
/// reached every queue it was routed to when this returns.
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .expect("basic.publish")
        .await
        .expect("publisher confirm");
    assert!(
        matches!(confirm, Confirmation::Ack(None)),
        "expected a plain ack, got {confirm:?}"
    );
}

/// Publishes with `headers` set (for headers exchanges) and waits for the confirm.
pub async fn publish_headers_confirmed(
    ch: &Channel,
    exchange: &str,
    body: &[u8],
    headers: FieldTable,
) {
    publish_confirmed(
        ch,
        exchange,
        "",
        body,
        BasicProperties::default().with_headers(headers),
    )
    .await;
}

/// Takes every message currently in `queue` with `basic.get` (no-ack) and returns the bodies
/// in order, as UTF-8 (lossy).
pub async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        bodies.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    bodies
}

/// The queue's message count as reported by a passive declare.
/// Declares a durable (non-exclusive, non-auto-delete) queue with no arguments.
pub async fn declare_durable(ch: &Channel, queue: &str) {
    ch.queue_declare(
        queue.into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("declare durable queue {queue}: {e}"));
}

pub async fn message_count(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive queue.declare")
    .message_count()
}

/// Whether a queue exists, checked with a passive declare on a throwaway channel (a missing
/// queue closes that channel with 404).
pub async fn queue_exists(conn: &Connection, queue: &str) -> bool {
    let ch = conn.create_channel().await.expect("open probe channel");
    let res = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match res {
        Ok(_) => {
            let _ = ch.close(200, "probe done".into()).await;
            true
        }
        Err(e) => {
            assert_eq!(amqp_error(&e).0, 404, "unexpected probe error {e}");
            false
        }
    }
}

/// Whether an exchange exists, checked like [`queue_exists`].
pub async fn exchange_exists(conn: &Connection, exchange: &str) -> bool {
    let ch = conn.create_channel().await.expect("open probe channel");
    let res = ch
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    match res {
        Ok(()) => {
            let _ = ch.close(200, "probe done".into()).await;
            true
        }
        Err(e) => {
            assert_eq!(amqp_error(&e).0, 404, "unexpected probe error {e}");
            false
        }
    }
}

/// A minimal raw AMQP 0-9-1 client for what lapin cannot show or will not send: server
/// properties, the raw Tune offer, and methods on channels lapin considers closed.
pub struct RawConn {
    stream: TcpStream,
}

/// One frame as read off the wire.
#[derive(Debug)]
pub struct RawFrame {
    /// 1 method, 2 header, 3 body, 8 heartbeat.
    pub kind: u8,
    /// Channel number.
    pub channel: u16,
    /// Frame payload (without the frame-end octet).
    pub payload: Vec<u8>,
}

impl RawConn {
    /// Connects and sends the AMQP 0-9-1 protocol header.
    pub async fn start(addr: SocketAddr) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("raw connect");
        stream
            .write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .expect("send protocol header");
        Self { stream }
    }

    /// Connects, authenticates as guest/guest, tunes with heartbeats off, and opens vhost `/`.
    /// Returns the connection and the Tune the server offered.
    pub async fn open(addr: SocketAddr) -> (Self, lapin::protocol::connection::Tune) {
        use lapin::protocol::connection::{AMQPMethod, Open, StartOk, TuneOk};
        let mut raw = Self::start(addr).await;
        match raw.read_method().await {
            (0, AMQPClass::Connection(AMQPMethod::Start(_))) => {}
            other => panic!("expected connection.start, got {other:?}"),
        }
        raw.send_method(
            0,
            &AMQPClass::Connection(AMQPMethod::StartOk(StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            })),
        )
        .await;
        let tune = match raw.read_method().await {
            (0, AMQPClass::Connection(AMQPMethod::Tune(t))) => t,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        raw.send_method(
            0,
            &AMQPClass::Connection(AMQPMethod::TuneOk(TuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
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
        match raw.read_method().await {
            (0, AMQPClass::Connection(AMQPMethod::OpenOk(_))) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
        (raw, tune)
    }

    /// Reads one frame; `None` when the server closed the socket. Panics after [`WAIT`].
    pub async fn read_frame(&mut self) -> Option<RawFrame> {
        tokio::time::timeout(WAIT, async {
            let mut head = [0u8; 7];
            if self.stream.read_exact(&mut head).await.is_err() {
                return None;
            }
            let kind = head[0];
            let channel = u16::from_be_bytes([head[1], head[2]]);
            let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
            let mut payload = vec![0u8; size + 1];
            self.stream.read_exact(&mut payload).await.ok()?;
            assert_eq!(payload.pop(), Some(0xCE), "frame-end octet");
            Some(RawFrame {
                kind,
                channel,
                payload,
            })
        })
        .await
        .expect("timed out waiting for a frame from the server")
    }

    /// Reads the next method frame (skipping heartbeats) and decodes it.
    pub async fn read_method(&mut self) -> (u16, AMQPClass) {
        loop {
            let frame = self
                .read_frame()
                .await
                .expect("server closed the socket while a method was expected");
            if frame.kind == 8 {
                continue;
            }
            assert_eq!(frame.kind, 1, "expected a method frame, got {frame:?}");
            let (_, class) = lapin::protocol::parse_class(frame.payload.as_slice())
                .unwrap_or_else(|e| panic!("cannot decode method {frame:?}: {e:?}"));
            return (frame.channel, class);
        }
    }

    /// Encodes and sends one method frame.
    pub async fn send_method(&mut self, channel: u16, class: &AMQPClass) {
        let payload = lapin::protocol::gen_class(class)(Vec::new().into())
            .expect("encode method")
            .write;
        self.send_frame(1, channel, &payload).await;
    }

    /// Sends one frame of any type.
    pub async fn send_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.push(kind);
        frame.extend_from_slice(&channel.to_be_bytes());
        frame.extend_from_slice(&u32::try_from(payload.len()).expect("size").to_be_bytes());
        frame.extend_from_slice(payload);
        frame.push(0xCE);
        self.stream.write_all(&frame).await.expect("send frame");
    }

    /// Expects `connection.close`, answers `close-ok`, and returns (code, text, class, method).
    pub async fn expect_connection_close(&mut self) -> (u16, String, u16, u16) {
        use lapin::protocol::connection::{AMQPMethod, CloseOk};
        match self.read_method().await {
            (0, AMQPClass::Connection(AMQPMethod::Close(c))) => {
                self.send_method(0, &AMQPClass::Connection(AMQPMethod::CloseOk(CloseOk {})))
                    .await;
                (
                    c.reply_code,
                    c.reply_text.as_str().to_owned(),
                    c.class_id,
                    c.method_id,
                )
            }
            other => panic!("expected connection.close, got {other:?}"),
        }
    }

    /// Sends `connection.close` (200) and waits for `close-ok`.
    pub async fn close(mut self) {
        use lapin::protocol::connection::{AMQPMethod, Close};
        self.send_method(
            0,
            &AMQPClass::Connection(AMQPMethod::Close(Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        )
        .await;
        loop {
            match self.read_method().await {
                (0, AMQPClass::Connection(AMQPMethod::CloseOk(_))) => return,
                _ => continue,
            }
        }
    }
}

/// Waits (bounded by [`WAIT`]) for the next AMQP error the server reported on the connection
/// whose `events_listener()` is `events`: a `channel.close` or `connection.close` carrying an
/// error code. Subscribe before provoking the error (lapin drops events nobody listens to).
/// Returns (reply code, reply text).
pub async fn next_amqp_error<S>(events: &mut S) -> (u16, String)
where
    S: futures_lite::Stream<Item = lapin::Event> + Unpin,
{
    use futures_lite::StreamExt;
    tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(lapin::Event::Error(e)) if matches!(e.kind(), ErrorKind::ProtocolError(_)) => {
                    return amqp_error(&e);
                }
                Some(_) => continue,
                None => panic!("connection event stream ended without an AMQP error"),
            }
        }
    })
    .await
    .expect("timed out waiting for the server to report an AMQP error")
}

impl RawConn {
    /// Writes raw bytes (no framing). Errors are returned, not panicked on: a hostile write may
    /// race with the server closing the socket.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads whatever the server still sends until it closes the socket (bounded by [`WAIT`]).
    pub async fn read_until_eof(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(WAIT, async {
            let mut buf = [0u8; 4096];
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .expect("timed out waiting for the server to close the socket");
        out
    }
}

/// Proves the broker is still serving: a fresh lapin connection opens a channel, declares a
/// server-named exclusive queue, and closes cleanly.
pub async fn assert_broker_alive(url: &str) {
    let conn = tests::connect(url).await;
    let ch = conn
        .create_channel()
        .await
        .expect("open channel on a fresh connection");
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare a server-named queue on a fresh connection");
    assert!(q.name().as_str().starts_with("amq.gen-"), "{:?}", q.name());
    conn.close(200, "bye".into())
        .await
        .expect("close fresh connection");
}

impl RawConn {
    /// Connects, reads `connection.start`, answers PLAIN guest/guest and returns the Tune the
    /// server offers, leaving `tune-ok` (and `open`) to the caller.
    pub async fn until_tune(addr: SocketAddr) -> (Self, lapin::protocol::connection::Tune) {
        use lapin::protocol::connection::{AMQPMethod, StartOk};
        let mut raw = Self::start(addr).await;
        match raw.read_method().await {
            (0, AMQPClass::Connection(AMQPMethod::Start(_))) => {}
            other => panic!("expected connection.start, got {other:?}"),
        }
        raw.send_method(
            0,
            &AMQPClass::Connection(AMQPMethod::StartOk(StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            })),
        )
        .await;
        match raw.read_method().await {
            (0, AMQPClass::Connection(AMQPMethod::Tune(t))) => (raw, t),
            other => panic!("expected connection.tune, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Queue features (TTL, dead lettering, limits, priorities, reply-to): argument tables, polling
// gets, consumers, and field-by-field `x-death` checks.
// ---------------------------------------------------------------------------------------------

/// A field table (queue/consume arguments, message headers) from (key, value) pairs.
pub fn field_table(pairs: &[(&str, lapin::types::AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert((*key).into(), value.clone());
    }
    table
}

/// An AMQP long-string value.
pub fn long_str(s: &str) -> lapin::types::AMQPValue {
    lapin::types::AMQPValue::LongString(s.into())
}

/// An AMQP array of long strings, as the `CC` / `BCC` headers and `routing-keys` hold.
pub fn str_array(items: &[&str]) -> lapin::types::AMQPValue {
    lapin::types::AMQPValue::FieldArray(
        items.iter().map(|s| long_str(s)).collect::<Vec<_>>().into(),
    )
}

/// The body of a delivery as UTF-8 (lossy).
pub fn body_of(delivery: &lapin::message::Delivery) -> String {
    String::from_utf8_lossy(&delivery.data).into_owned()
}

/// Polls `queue` with `basic.get` until a message is there (bounded by [`WAIT`]) and returns it.
pub async fn get_eventually(ch: &Channel, queue: &str, no_ack: bool) -> lapin::message::Delivery {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(m) = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack })
            .await
            .expect("basic.get")
        {
            return m.delivery;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a message in {queue}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next delivery of `consumer`, panicking after [`WAIT`].
pub async fn next_delivery(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    use futures_lite::StreamExt;
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("timed out waiting for a delivery")
        .expect("consumer stream ended")
        .expect("delivery error")
}

/// Cancels `consumer` and returns the bodies of the deliveries it received that were not read
/// yet: after `cancel-ok` nothing more can arrive, so this proves what it did (not) get.
pub async fn cancel_and_collect(ch: &Channel, mut consumer: lapin::Consumer) -> Vec<String> {
    use futures_lite::StreamExt;
    ch.basic_cancel(
        consumer.tag().as_str().into(),
        lapin::options::BasicCancelOptions::default(),
    )
    .await
    .expect("basic.cancel");
    let mut bodies = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(d) = consumer.next().await {
            bodies.push(body_of(&d.expect("delivery")));
        }
    })
    .await
    .expect("the cancelled consumer's stream ends");
    bodies
}

/// Publishes with `mandatory` on a confirm-mode channel and returns the confirmation (an ack
/// carries the `basic.return` when the message was unroutable).
pub async fn publish_mandatory(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Confirmation {
    ch.basic_publish(
        exchange.into(),
        routing_key.into(),
        BasicPublishOptions {
            mandatory: true,
            immediate: false,
        },
        body,
        properties,
    )
    .await
    .expect("basic.publish")
    .await
    .expect("publisher confirm")
}

/// Publishes on a confirm-mode channel and returns the confirmation, ack or nack.
pub async fn publish_confirmation(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Confirmation {
    ch.basic_publish(
        exchange.into(),
        routing_key.into(),
        BasicPublishOptions::default(),
        body,
        properties,
    )
    .await
    .expect("basic.publish")
    .await
    .expect("publisher confirm")
}

/// Whether the default exchange routes `queue` to a queue, probed with a mandatory publish of a
/// small message (which then sits in the queue). Unlike a passive declare, publishing does not
/// count as using the queue, so this does not reset an `x-expires` timer.
pub async fn routable(ch: &Channel, queue: &str) -> bool {
    match publish_mandatory(ch, "", queue, b"probe", BasicProperties::default()).await {
        Confirmation::Ack(None) => true,
        Confirmation::Ack(Some(ret)) => {
            assert_eq!((ret.reply_code, ret.reply_text.as_str()), (312, "NO_ROUTE"));
            false
        }
        other => panic!("unexpected confirmation {other:?}"),
    }
}

/// The value of header `key`, if the message has headers and that one.
pub fn header<'a>(props: &'a BasicProperties, key: &str) -> Option<&'a lapin::types::AMQPValue> {
    props.headers().as_ref().and_then(|h| h.inner().get(key))
}

/// One expected `x-death` entry. `original_expiration` is `Some` exactly when the dead-lettered
/// message carried an `expiration` property.
#[derive(Debug, Clone, Copy)]
pub struct Death<'a> {
    /// The queue the message was dead-lettered from.
    pub queue: &'a str,
    /// `rejected`, `expired`, `maxlen` or `delivery_limit`.
    pub reason: &'a str,
    /// How many times it was dead-lettered from that queue for that reason.
    pub count: i64,
    /// The exchange the message had been published to (before that dead-lettering).
    pub exchange: &'a str,
    /// The message's routing keys: the publish routing key, then the `CC` keys.
    pub routing_keys: &'a [&'a str],
    /// The message's `expiration` property before it was removed.
    pub original_expiration: Option<&'a str>,
}

/// Asserts the `x-death` header field by field, in order (most recent first): each entry holds
/// exactly `count` (long-long), `exchange`, `queue`, `reason` (long strings), `routing-keys`
/// (array of long strings), `time` (timestamp, within a few minutes of now) and, only when the
/// message had one, `original-expiration` (long string).
#[track_caller]
pub fn assert_x_death(props: &BasicProperties, expected: &[Death<'_>]) {
    use lapin::types::AMQPValue;
    let Some(AMQPValue::FieldArray(entries)) = header(props, "x-death") else {
        panic!(
            "expected an x-death array, headers are {:?}",
            props.headers()
        );
    };
    let entries = entries.as_slice();
    assert_eq!(
        entries.len(),
        expected.len(),
        "x-death entries: {entries:?}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    for (i, (entry, want)) in entries.iter().zip(expected).enumerate() {
        let AMQPValue::FieldTable(entry) = entry else {
            panic!("x-death[{i}] is not a table: {entry:?}");
        };
        let fields = entry.inner();
        let mut keys: Vec<&str> = fields.keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        let mut want_keys = vec![
            "count",
            "exchange",
            "queue",
            "reason",
            "routing-keys",
            "time",
        ];
        if want.original_expiration.is_some() {
            want_keys.push("original-expiration");
        }
        want_keys.sort_unstable();
        assert_eq!(keys, want_keys, "x-death[{i}] fields: {entry:?}");
        let text = |k: &str| match fields.get(k) {
            Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            other => panic!("x-death[{i}].{k} is not a long string: {other:?}"),
        };
        assert_eq!(text("queue"), want.queue, "x-death[{i}].queue");
        assert_eq!(text("reason"), want.reason, "x-death[{i}].reason");
        assert_eq!(text("exchange"), want.exchange, "x-death[{i}].exchange");
        assert_eq!(
            fields.get("count"),
            Some(&AMQPValue::LongLongInt(want.count)),
            "x-death[{i}].count (type long-long)"
        );
        assert_eq!(
            fields.get("routing-keys"),
            Some(&str_array(want.routing_keys)),
            "x-death[{i}].routing-keys"
        );
        if let Some(exp) = want.original_expiration {
            assert_eq!(
                text("original-expiration"),
                exp,
                "x-death[{i}].original-expiration"
            );
        }
        match fields.get("time") {
            Some(AMQPValue::Timestamp(t)) => assert!(
                t.abs_diff(now) < 300,
                "x-death[{i}].time {t} is not close to now ({now})"
            ),
            other => panic!("x-death[{i}].time is not a timestamp: {other:?}"),
        }
    }
}

/// Asserts `x-first-death-queue`, `-reason` and `-exchange` (long strings), and that no
/// `x-last-death-*` header is set: RabbitMQ 3.10 does not write those (3.13 and later do).
#[track_caller]
pub fn assert_first_death(props: &BasicProperties, queue: &str, reason: &str, exchange: &str) {
    for (key, want) in [
        ("x-first-death-queue", queue),
        ("x-first-death-reason", reason),
        ("x-first-death-exchange", exchange),
    ] {
        assert_eq!(header(props, key), Some(&long_str(want)), "{key}");
    }
    for key in [
        "x-last-death-queue",
        "x-last-death-reason",
        "x-last-death-exchange",
    ] {
        assert_eq!(header(props, key), None, "{key} (not set by RabbitMQ 3.10)");
    }
}

/// Deletes queues and exchanges a scenario declared, ignoring ones already gone; uses its own
/// channel per object so one missing object cannot break the rest.
pub async fn cleanup(conn: &Connection, queues: &[&str], exchanges: &[&str]) {
    for q in queues {
        if let Ok(ch) = conn.create_channel().await
            && ch
                .queue_delete((*q).into(), lapin::options::QueueDeleteOptions::default())
                .await
                .is_ok()
        {
            let _ = ch.close(200, "cleanup".into()).await;
        }
    }
    for x in exchanges {
        if let Ok(ch) = conn.create_channel().await
            && ch
                .exchange_delete(
                    (*x).into(),
                    lapin::options::ExchangeDeleteOptions::default(),
                )
                .await
                .is_ok()
        {
            let _ = ch.close(200, "cleanup".into()).await;
        }
    }
}
