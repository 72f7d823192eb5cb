//! The connection handshake: protocol header, `start`/`start-ok` (PLAIN and AMQPLAIN),
//! `tune`/`tune-ok` validation, `open`. Pure functions over decoded methods; the I/O is in
//! `mod.rs`.

use crate::error::ConnectionException;
use crate::protocol::{AMQPValue, FieldTable, LongString, connection};

/// The nine capabilities RabbitMQ announces.
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

/// `connection.start` as RabbitMQ sends it.
pub fn start() -> connection::Start {
    let mut caps = FieldTable::default();
    for c in CAPABILITIES {
        caps.insert(c.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props.insert("cluster_name".into(), long("rabbit@localhost"));
    props.insert(
        "copyright".into(),
        long("Copyright (c) the broker authors; RabbitMQ is a trademark of Broadcom"),
    );
    props.insert(
        "information".into(),
        long("A RabbitMQ-compatible AMQP 0-9-1 broker in Rust"),
    );
    props.insert(
        "platform".into(),
        long(concat!("Rust ", env!("CARGO_PKG_RUST_VERSION"))),
    );
    props.insert("product".into(), long("RabbitMQ"));
    props.insert("version".into(), long("3.10.0"));
    connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: "PLAIN AMQPLAIN".into(),
        locales: "en_US".into(),
    }
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Username and password from a `start-ok` response.
pub fn credentials(
    start_ok: &connection::StartOk,
) -> Result<(String, String), ConnectionException> {
    let response = start_ok.response.as_bytes();
    match start_ok.mechanism.as_str() {
        "PLAIN" => {
            // authzid \0 authcid \0 password
            let mut parts = response.split(|b| *b == 0);
            let (Some(_authz), Some(user), Some(pass), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(ConnectionException::access_refused(
                    "ACCESS_REFUSED - malformed PLAIN response",
                ));
            };
            Ok((
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(pass).into_owned(),
            ))
        }
        "AMQPLAIN" => {
            // A field table without its length prefix.
            let mut framed = (response.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(response);
            let table = crate::protocol::decode_bare_table(&framed).ok_or_else(|| {
                ConnectionException::access_refused("malformed AMQPLAIN response")
            })?;
            let field = |k: &str| match table.inner().get(k) {
                Some(AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
                _ => None,
            };
            match (field("LOGIN"), field("PASSWORD")) {
                (Some(u), Some(p)) => Ok((u, p)),
                _ => Err(ConnectionException::access_refused(
                    "AMQPLAIN response lacks LOGIN or PASSWORD",
                )),
            }
        }
        other => Err(ConnectionException::access_refused(format!(
            "unsupported authentication mechanism '{other}'"
        ))),
    }
}

/// What the client chose in `tune-ok`, validated against our offer as RabbitMQ does.
pub fn negotiate(
    offer_channel_max: u16,
    offer_frame_max: u32,
    tune_ok: &connection::TuneOk,
) -> Result<(u16, u32, u16), ConnectionException> {
    check_value(
        "frame_max",
        u64::from(offer_frame_max),
        u64::from(tune_ok.frame_max),
        // RabbitMQ 3.10 accepts down to the 0-9-1 minimum of 4096 (later versions: 8192).
        4096,
    )?;
    check_value(
        "channel_max",
        u64::from(offer_channel_max),
        u64::from(tune_ok.channel_max),
        1,
    )?;
    Ok((tune_ok.channel_max, tune_ok.frame_max, tune_ok.heartbeat))
}

fn check_value(name: &str, server: u64, client: u64, min: u64) -> Result<(), ConnectionException> {
    if client != 0 && client < min {
        return Err(ConnectionException::not_allowed(format!(
            "negotiated {name} = {client} is lower than the minimum allowed value ({min})"
        )));
    }
    if server != 0 && (client == 0 || client > server) {
        return Err(ConnectionException::not_allowed(format!(
            "negotiated {name} = {client} is higher than the maximum allowed value ({server})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tune_ok(channel_max: u16, frame_max: u32) -> connection::TuneOk {
        connection::TuneOk {
            channel_max,
            frame_max,
            heartbeat: 60,
        }
    }

    #[test]
    fn values_within_the_offer_are_accepted() {
        assert_eq!(
            negotiate(2047, 131_072, &tune_ok(2047, 131_072)),
            Ok((2047, 131_072, 60))
        );
        assert_eq!(
            negotiate(2047, 131_072, &tune_ok(10, 8192)),
            Ok((10, 8192, 60))
        );
    }

    #[test]
    fn values_above_the_offer_or_zero_are_refused_with_530() {
        let e = negotiate(2047, 131_072, &tune_ok(2047, 131_073)).expect_err("too big");
        assert_eq!(e.code, 530);
        assert_eq!(
            e.text,
            "NOT_ALLOWED - negotiated frame_max = 131073 is higher than the maximum allowed value (131072)"
        );
        assert_eq!(
            negotiate(2047, 131_072, &tune_ok(0, 131_072))
                .expect_err("zero")
                .code,
            530
        );
        assert_eq!(
            negotiate(2047, 131_072, &tune_ok(2047, 4095))
                .expect_err("too small")
                .code,
            530
        );
    }

    #[test]
    fn plain_credentials() {
        let so = connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from(&b"\0guest\0secret"[..]),
            locale: "en_US".into(),
        };
        assert_eq!(credentials(&so), Ok(("guest".into(), "secret".into())));
    }

    #[test]
    fn start_announces_rabbitmq_capabilities() {
        let s = start();
        let Some(AMQPValue::FieldTable(caps)) = s.server_properties.inner().get("capabilities")
        else {
            panic!("capabilities table")
        };
        assert_eq!(caps.inner().len(), 9);
    }
}
