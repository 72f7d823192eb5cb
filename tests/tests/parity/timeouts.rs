//! Liveness rules of the handshake and of heartbeats: a client that never finishes the
//! handshake is dropped (RabbitMQ: `handshake_timeout`, 10 s), and a client that negotiated
//! heartbeats and then goes silent gets heartbeats from the server and is disconnected after
//! missing two.

use std::time::Duration;

use lapin::protocol::AMQPClass;
use lapin::protocol::connection::{AMQPMethod, Open, TuneOk};
use tests::{Broker, parity};
use tokio::io::AsyncReadExt;

use crate::support::RawConn;

/// Connects and sends nothing at all: the broker must close the socket on its own.
async fn silent_client_is_dropped_by_the_handshake_timeout(b: &Broker) {
    let mut stream = tokio::net::TcpStream::connect(b.addr)
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let outcome = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
        .await
        .expect("the broker must close a connection that never sends the protocol header");
    // RabbitMQ resets the socket; we close it. Either way the client reads no AMQP data.
    match outcome {
        Ok(n) => assert_eq!(n, 0, "no data before the protocol header: {:?}", &buf[..n]),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

/// Negotiates a 2 s heartbeat and then never writes again: the server keeps sending heartbeat
/// frames on channel 0 and then closes the connection for missed heartbeats.
async fn silent_client_gets_heartbeats_then_is_disconnected(b: &Broker) {
    let (mut raw, tune) = RawConn::until_tune(b.addr).await;
    raw.send_method(
        0,
        &AMQPClass::Connection(AMQPMethod::TuneOk(TuneOk {
            channel_max: tune.channel_max,
            frame_max: tune.frame_max,
            heartbeat: 2,
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
    let mut heartbeats = 0;
    let mut open_ok = false;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(frame) = raw.read_frame().await {
            match (frame.kind, frame.channel) {
                (8, 0) => heartbeats += 1,
                (1, 0) => open_ok = true,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the broker must disconnect a client that misses heartbeats"
    );
    assert!(open_ok, "connection.open-ok first");
    assert!(
        heartbeats >= 2,
        "the server sends heartbeats while waiting ({heartbeats} seen)"
    );
}

parity!(
    silent_client_is_dropped_by_the_handshake_timeout,
    silent_client_gets_heartbeats_then_is_disconnected
);
