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
