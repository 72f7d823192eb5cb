//! Hostile and broken clients over raw TCP: bad protocol headers, oversized and malformed
//! frames, frames out of sequence, absurd nesting, truncation. The broker must answer the way
//! RabbitMQ does (usually a connection.close with a hard error code) and stay up for everyone
//! else: every scenario ends by opening a fresh lapin connection.

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::protocol::AMQPClass;
use lapin::protocol::channel;
use lapin::types::FieldTable;
use tests::{Broker, parity, unique};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{RawConn, WAIT, assert_broker_alive, eventually, message_count};

// ---------------------------------------------------------------------------------------------
// A tiny frame builder
// ---------------------------------------------------------------------------------------------

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;

/// A whole frame: type, channel, size, payload, then `end` (normally 0xCE).
fn frame_with_end(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.push(kind);
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&u32::try_from(payload.len()).expect("size").to_be_bytes());
    f.extend_from_slice(payload);
    f.push(end);
    f
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    frame_with_end(kind, channel, payload, FRAME_END)
}

/// Method payload: class id, method id, then the already encoded arguments.
fn method(class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(args.len() + 4);
    p.extend_from_slice(&class.to_be_bytes());
    p.extend_from_slice(&method.to_be_bytes());
    p.extend_from_slice(args);
    p
}

fn shortstr(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).expect("shortstr"));
    out.extend_from_slice(s.as_bytes());
}

/// basic.publish to the default exchange with `routing_key`.
fn publish_method(routing_key: &str) -> Vec<u8> {
    let mut args = vec![0, 0];
    shortstr(&mut args, "");
    shortstr(&mut args, routing_key);
    args.push(0);
    method(60, 40, &args)
}

/// Content header for class basic: weight 0, `body_size`, property flags, property list.
fn content_header(body_size: u64, flags: u16, properties: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 0];
    p.extend_from_slice(&body_size.to_be_bytes());
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(properties);
    p
}

/// A field table holding one key whose value is a table holding one key ... `depth` levels
/// deep, the innermost table empty. Encoded iteratively (7 bytes a level).
fn nested_table(depth: usize) -> Vec<u8> {
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..depth {
        let mut t = Vec::with_capacity(inner.len() + 11);
        shortstr(&mut t, "a");
        t.push(b'F');
        t.extend_from_slice(&u32::try_from(inner.len()).expect("len").to_be_bytes());
        t.extend_from_slice(&inner);
        inner = t;
    }
    let mut table = Vec::with_capacity(inner.len() + 4);
    table.extend_from_slice(&u32::try_from(inner.len()).expect("len").to_be_bytes());
    table.extend_from_slice(&inner);
    table
}

/// A raw connection past connection.open-ok with channel 1 open.
async fn open_with_channel(b: &Broker) -> (RawConn, u32) {
    let (mut raw, tune) = RawConn::open(b.addr).await;
    raw.send_method(
        1,
        &AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
    .await;
    match raw.read_method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => {}
        other => panic!("expected channel.open-ok, got {other:?}"),
    }
    (raw, tune.frame_max)
}

/// Sends `bytes` (a write error is fine: the server may be closing already), then expects a
/// connection.close and returns its reply code and text.
async fn send_expect_close(raw: &mut RawConn, bytes: &[u8]) -> (u16, String) {
    let _ = raw.send_bytes(bytes).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    (code, text)
}

// ---------------------------------------------------------------------------------------------
// Protocol header
// ---------------------------------------------------------------------------------------------

/// Anything but `AMQP 0 0 9 1` as the protocol header: the server answers with the header it
/// does speak and closes the socket.
async fn bad_protocol_header(b: &Broker) {
    for garbage in [
        &b"GARBAGE!"[..],
        b"AMQP\x00\x00\x09\x02",
        b"AMQP\x00\x01\x00\x00",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(b.addr).await.expect("connect");
        s.write_all(garbage).await.expect("write");
        // RabbitMQ resets the socket right after its answer: read until EOF or reset.
        let mut got = Vec::new();
        tokio::time::timeout(WAIT, async {
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = s.read(&mut buf).await {
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("server closes the socket");
        assert_eq!(
            got,
            b"AMQP\x00\x00\x09\x01",
            "answer to {:?}",
            String::from_utf8_lossy(garbage)
        );
    }
    assert_broker_alive(&b.url).await;
}

/// A client that stops halfway through the protocol header, or through a frame, and hangs up
/// does not disturb the broker.
async fn truncated_then_disconnect(b: &Broker) {
    let mut s = TcpStream::connect(b.addr).await.expect("connect");
    s.write_all(b"AMQ").await.expect("write");
    drop(s);

    // Mid-frame after the handshake: a header announcing 100 bytes, 10 of them sent.
    let (mut raw, _) = open_with_channel(b).await;
    let full = frame(FRAME_METHOD, 1, &[7u8; 100]);
    raw.send_bytes(&full[..17]).await.expect("write");
    drop(raw);

    // Mid-content: publish and header sent, body cut short.
    let (mut raw, _) = open_with_channel(b).await;
    let mut bytes = frame(FRAME_METHOD, 1, &publish_method(&unique("cut")));
    bytes.extend(frame(FRAME_HEADER, 1, &content_header(1000, 0, &[])));
    bytes.extend(&frame(FRAME_BODY, 1, &[1u8; 1000])[..300]);
    raw.send_bytes(&bytes).await.expect("write");
    drop(raw);

    // Mid-handshake: after the protocol header, nothing more.
    drop(RawConn::start(b.addr).await);

    assert_broker_alive(&b.url).await;
}

parity!(bad_protocol_header, truncated_then_disconnect);

// ---------------------------------------------------------------------------------------------
// Framing errors (501)
// ---------------------------------------------------------------------------------------------

/// A frame larger than the negotiated frame_max is a fatal 501 FRAME_ERROR, detected from the
/// frame header alone.
async fn oversized_frame(b: &Broker) {
    let (mut raw, frame_max) = open_with_channel(b).await;
    let size = frame_max + 1;
    let mut header = vec![FRAME_BODY];
    header.extend_from_slice(&1u16.to_be_bytes());
    header.extend_from_slice(&size.to_be_bytes());
    let (code, text) = send_expect_close(&mut raw, &header).await;
    assert_eq!(code, 501, "{text}");
    // RabbitMQ reports the announced size and its limit (frame_max minus the 8 octets of
    // framing).
    assert_eq!(
        text,
        format!(
            "FRAME_ERROR - type 3, all octets = <<>>: {{frame_too_large,{size},{}}}",
            frame_max - 8
        )
    );

    // A body frame of exactly frame_max - 8 octets of payload is fine.
    let (mut raw, frame_max) = open_with_channel(b).await;
    let len = (frame_max - 8) as usize;
    let mut bytes = frame(FRAME_METHOD, 1, &publish_method(&unique("max-frame")));
    bytes.extend(frame(FRAME_HEADER, 1, &content_header(len as u64, 0, &[])));
    bytes.extend(frame(FRAME_BODY, 1, &vec![9u8; len]));
    raw.send_bytes(&bytes).await.expect("write");
    raw.close().await;

    assert_broker_alive(&b.url).await;
}

/// A frame whose end octet is not 0xCE is a fatal 501 FRAME_ERROR.
async fn bad_frame_end(b: &Broker) {
    let (mut raw, _) = open_with_channel(b).await;
    let qos = method(60, 10, &[0, 0, 0, 0, 0, 1, 0]);
    let (code, text) = send_expect_close(&mut raw, &frame_with_end(FRAME_METHOD, 1, &qos, 0)).await;
    assert_eq!(code, 501, "{text}");
    assert_eq!(
        text,
        "FRAME_ERROR - type 1, all octets = <<0,60,0,10,0,0,0,0,0,1,0>>: \
         {invalid_frame_end_marker,0}"
    );
    assert_broker_alive(&b.url).await;
}

/// A frame type the protocol does not define is a fatal 501 FRAME_ERROR.
async fn unknown_frame_type(b: &Broker) {
    let (mut raw, _) = open_with_channel(b).await;
    let (code, text) = send_expect_close(&mut raw, &frame(9, 1, b"??")).await;
    assert_eq!(
        (code, text.as_str()),
        (
            501,
            "FRAME_ERROR - type 9, all octets = <<\"??\">>: unknown_frame"
        )
    );
    assert_broker_alive(&b.url).await;
}

parity!(oversized_frame, bad_frame_end, unknown_frame_type);

// ---------------------------------------------------------------------------------------------
// Channel and sequencing errors (504, 505)
// ---------------------------------------------------------------------------------------------

/// A method on a channel that was never opened is a hard 504 CHANNEL_ERROR; so is opening an
/// open channel again.
async fn method_on_unopened_channel(b: &Broker) {
    let (mut raw, _) = open_with_channel(b).await;
    let qos = method(60, 10, &[0, 0, 0, 0, 0, 1, 0]);
    let (code, text) = send_expect_close(&mut raw, &frame(FRAME_METHOD, 7, &qos)).await;
    assert_eq!(
        (code, text.as_str()),
        (504, "CHANNEL_ERROR - expected 'channel.open'")
    );

    let (mut raw, _) = open_with_channel(b).await;
    let open = method(20, 10, &[0]);
    let (code, text) = send_expect_close(&mut raw, &frame(FRAME_METHOD, 1, &open)).await;
    assert_eq!(
        (code, text.as_str()),
        (504, "CHANNEL_ERROR - second 'channel.open' seen")
    );

    // A non-connection method on channel 0.
    let (mut raw, _) = open_with_channel(b).await;
    let (code, text) = send_expect_close(&mut raw, &frame(FRAME_METHOD, 0, &qos)).await;
    assert_eq!(
        (code, text.as_str()),
        (
            504,
            "CHANNEL_ERROR - unexpected method in connection state running"
        )
    );
    assert_broker_alive(&b.url).await;
}

/// Content frames out of sequence are a hard 505 UNEXPECTED_FRAME: a body or header with no
/// publish before it, and a method where the content header should be.
async fn content_out_of_sequence(b: &Broker) {
    let (mut raw, _) = open_with_channel(b).await;
    let (code, text) = send_expect_close(&mut raw, &frame(FRAME_BODY, 1, b"orphan")).await;
    assert_eq!(
        (code, text.as_str()),
        (
            505,
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
        )
    );

    let (mut raw, _) = open_with_channel(b).await;
    let (code, text) = send_expect_close(
        &mut raw,
        &frame(FRAME_HEADER, 1, &content_header(6, 0, &[])),
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (
            505,
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
        )
    );

    let (mut raw, _) = open_with_channel(b).await;
    let mut bytes = frame(FRAME_METHOD, 1, &publish_method(&unique("seq")));
    bytes.extend(frame(
        FRAME_METHOD,
        1,
        &method(60, 10, &[0, 0, 0, 0, 0, 1, 0]),
    ));
    let (code, text) = send_expect_close(&mut raw, &bytes).await;
    assert_eq!(
        (code, text.as_str()),
        (
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, got non content header \
             frame instead"
        )
    );

    // A content header of another class than the method's.
    let (mut raw, _) = open_with_channel(b).await;
    let mut bytes = frame(FRAME_METHOD, 1, &publish_method(&unique("class")));
    let mut header = content_header(2, 0, &[]);
    header[1] = 50;
    bytes.extend(frame(FRAME_HEADER, 1, &header));
    let (code, text) = send_expect_close(&mut raw, &bytes).await;
    assert_eq!(
        (code, text.as_str()),
        (
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 \
             instead"
        )
    );

    // A body longer than the header announced, then a method. RabbitMQ 3.10 does not notice
    // the overrun (it keeps waiting for the remaining size to reach zero) and fails only at the
    // next method with 505; rejecting the overrun at once with 501 FRAME_ERROR is accepted too.
    let (mut raw, _) = open_with_channel(b).await;
    let mut bytes = frame(FRAME_METHOD, 1, &publish_method(&unique("long")));
    bytes.extend(frame(FRAME_HEADER, 1, &content_header(2, 0, &[])));
    bytes.extend(frame(FRAME_BODY, 1, b"too long"));
    bytes.extend(frame(
        FRAME_METHOD,
        1,
        &method(60, 10, &[0, 0, 0, 0, 0, 1, 0]),
    ));
    let (code, text) = send_expect_close(&mut raw, &bytes).await;
    match code {
        505 => assert_eq!(
            text,
            "UNEXPECTED_FRAME - expected content body, got non content body frame instead"
        ),
        501 => assert!(text.starts_with("FRAME_ERROR - "), "{text}"),
        other => panic!("expected 505 or 501 for an overlong body, got {other} {text}"),
    }
    assert_broker_alive(&b.url).await;
}

/// Frames on the wrong kind of channel are a hard 505 UNEXPECTED_FRAME: a heartbeat on a
/// non-zero channel, a content body on channel 0.
async fn frames_on_wrong_channel(b: &Broker) {
    let (mut raw, _) = open_with_channel(b).await;
    let (code, text) = send_expect_close(&mut raw, &frame(FRAME_HEARTBEAT, 1, &[])).await;
    assert_eq!(
        (code, text.as_str()),
        (505, "UNEXPECTED_FRAME - type 8, all octets = <<>>")
    );

    let (mut raw, _) = open_with_channel(b).await;
    let (code, text) = send_expect_close(&mut raw, &frame(FRAME_BODY, 0, b"??")).await;
    assert_eq!(
        (code, text.as_str()),
        (505, "UNEXPECTED_FRAME - type 3, all octets = <<\"??\">>")
    );
    assert_broker_alive(&b.url).await;
}

parity!(
    method_on_unopened_channel,
    content_out_of_sequence,
    frames_on_wrong_channel
);

// ---------------------------------------------------------------------------------------------
// Undecodable content
// ---------------------------------------------------------------------------------------------

/// A content header whose headers table nests 10 000 tables deep: the broker must not crash
/// (no unbounded recursion) and other clients are unaffected. RabbitMQ decodes all 10 000
/// levels and enqueues the message; refusing it with a connection.close carrying a hard (5xx)
/// error code is accepted as a deliberate protection.
async fn deeply_nested_headers(b: &Broker) {
    let admin = b.connect().await;
    let ach = admin.create_channel().await.expect("channel");
    let q = unique("deep");
    ach.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");

    let (mut raw, frame_max) = open_with_channel(b).await;
    let table = nested_table(10_000);
    assert!(table.len() + 22 < frame_max as usize, "fits in one frame");
    let mut bytes = frame(FRAME_METHOD, 1, &publish_method(&q));
    // Property flags: only headers (bit 13).
    bytes.extend(frame(FRAME_HEADER, 1, &content_header(2, 0x2000, &table)));
    bytes.extend(frame(FRAME_BODY, 1, b"hi"));
    // channel.close(200) as a synchronous round trip after the publish.
    bytes.extend(frame(
        FRAME_METHOD,
        1,
        &method(20, 40, &[0, 200, 0, 0, 0, 0, 0]),
    ));
    let _ = raw.send_bytes(&bytes).await;
    match raw.read_method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {
            raw.close().await;
            // Accepted (RabbitMQ): the message was enqueued. Not fetched: lapin's own decoder
            // would have to recurse 10 000 levels.
            let (ch, qn) = (&ach, q.as_str());
            eventually(
                "the nested-headers message is enqueued",
                move || async move { message_count(ch, qn).await == 1 },
            )
            .await;
        }
        (0, AMQPClass::Connection(lapin::protocol::connection::AMQPMethod::Close(c))) => {
            assert!((500..600).contains(&c.reply_code), "{c:?}");
        }
        other => panic!("expected channel.close-ok or connection.close, got {other:?}"),
    }
    assert_broker_alive(&b.url).await;
    ach.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    admin.close(200, "bye".into()).await.expect("close");
}

/// Method arguments cut short are a hard 501 FRAME_ERROR.
async fn truncated_method_arguments(b: &Broker) {
    let (mut raw, _) = open_with_channel(b).await;
    // queue.declare whose queue-name shortstr claims 50 bytes but the frame ends after 3.
    let args = [0, 0, 50, b'a', b'b', b'c'];
    let (code, text) =
        send_expect_close(&mut raw, &frame(FRAME_METHOD, 1, &method(50, 10, &args))).await;
    // RabbitMQ reports undecodable method arguments as a frame error, not 502 SYNTAX_ERROR.
    assert_eq!(
        (code, text.as_str()),
        (501, "FRAME_ERROR - cannot decode <<0,0,50,97,98,99>>")
    );
    assert_broker_alive(&b.url).await;
}

/// A class/method id pair that does not exist ends the connection. RabbitMQ 3.10 just drops
/// the socket without a connection.close; a broker that first sends connection.close with a
/// hard (5xx) error code is accepted too.
async fn unknown_method(b: &Broker) {
    for (class, id) in [(60u16, 999u16), (99, 1), (10, 99)] {
        let (mut raw, _) = open_with_channel(b).await;
        let _ = raw
            .send_bytes(&frame(FRAME_METHOD, 1, &method(class, id, &[])))
            .await;
        if let Some(f) = raw.read_frame().await {
            assert!(
                f.kind == FRAME_METHOD && f.channel == 0 && f.payload.starts_with(&[0, 10, 0, 50]),
                "expected nothing or connection.close for {class}/{id}, got {f:?}"
            );
            let code = u16::from_be_bytes([f.payload[4], f.payload[5]]);
            assert!((500..600).contains(&code), "code {code} for {class}/{id}");
        }
    }
    assert_broker_alive(&b.url).await;
}

parity!(
    deeply_nested_headers,
    truncated_method_arguments,
    unknown_method
);
