//! The AMQP 0-9-1 wire format. This module is the only place that names `amq_protocol`: the
//! rest of the broker uses the re-exports below. On top of amq-protocol's method and property
//! codecs it adds our own framer (sizes checked from the 7-byte header before buffering), a
//! nesting-depth guard for field tables, content assembly, and hand-written encoders for the
//! frames on the hot path (`basic.deliver`, content header, body).

mod content;
mod depth;
mod encode;
mod frame;

pub use amq_protocol::frame::ProtocolVersion;
pub use amq_protocol::protocol::basic::AMQPProperties;
pub use amq_protocol::protocol::{
    AMQPClass, basic, channel, confirm, connection, exchange, queue, tx,
};
pub use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
pub use content::{Assembled, ContentAssembler};
pub use encode::Outbox;
pub use frame::{Frame, PROTOCOL_HEADER, decode_frame, erlang_binary};

use crate::error::ConnectionException;

/// Frame overhead: type (1) + channel (2) + size (4) + frame-end (1).
pub const FRAME_OVERHEAD: usize = 8;

/// Parses a method frame's payload, refusing field tables nested deeper than
/// [`depth::MAX_TABLE_DEPTH`] before amq-protocol's recursive parser sees them.
pub fn decode_method(payload: &[u8]) -> Result<AMQPClass, ConnectionException> {
    let ids = class_method_ids(payload).unwrap_or((0, 0));
    decode_method_inner(payload).map_err(|e| e.caused_by(ids))
}

fn decode_method_inner(payload: &[u8]) -> Result<AMQPClass, ConnectionException> {
    depth::check_method(payload)?;
    // amq-protocol drops basic.qos prefetch-size, which RabbitMQ refuses when non-zero.
    if let (Some((60, 10)), Some(size)) = (class_method_ids(payload), payload.get(4..8)) {
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
        if size != 0 {
            return Err(ConnectionException::not_implemented(format!(
                "prefetch_size!=0 ({size})"
            )));
        }
    }
    match amq_protocol::protocol::parse_class(payload) {
        Ok((&[], class)) => Ok(class),
        Ok(_) => Err(ConnectionException::syntax_error(
            "method frame has trailing bytes",
        )),
        Err(_) => match class_method_ids(payload) {
            Some((c, m)) if !known_method(c, m) => Err(ConnectionException::not_implemented(
                format!("unknown method (class {c}, method {m})"),
            )),
            _ => Err(ConnectionException::frame_error(format!(
                "cannot decode {}",
                frame::erlang_binary(payload.get(4..).unwrap_or_default())
            ))),
        },
    }
}

/// Parses a length-prefixed field table (AMQPLAIN responses), depth-checked first.
pub fn decode_bare_table(framed: &[u8]) -> Option<FieldTable> {
    if !depth::table_ok(framed) {
        return None;
    }
    match amq_protocol::types::parsing::parse_field_table(framed) {
        Ok((&[], t)) => Some(t),
        _ => None,
    }
}

/// Parses the properties of a content header payload (`class, weight, body-size, props`).
pub fn decode_properties(props: &[u8]) -> Result<AMQPProperties, ConnectionException> {
    match amq_protocol::protocol::basic::parse_properties(props) {
        Ok((_, p)) => Ok(p),
        Err(_) => Err(ConnectionException::syntax_error(
            "malformed content header properties",
        )),
    }
}

/// Encodes properties in wire form (flags followed by the present fields).
pub fn encode_properties(props: &AMQPProperties) -> Vec<u8> {
    use amq_protocol::frame::WriteContext;
    let ctx = WriteContext::from(Vec::with_capacity(64));
    match amq_protocol::protocol::basic::gen_properties(props)(ctx) {
        Ok(ctx) => ctx.into_inner().0,
        // Writing into a Vec cannot fail.
        Err(_) => Vec::new(),
    }
}

/// The class and method ids at the start of a method payload.
pub fn class_method_ids(payload: &[u8]) -> Option<(u16, u16)> {
    let c = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
    let m = u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]);
    Some((c, m))
}

fn known_method(class: u16, method: u16) -> bool {
    match class {
        10 => matches!(
            method,
            10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 51 | 60 | 61 | 70 | 71
        ),
        20 => matches!(method, 10 | 11 | 20 | 21 | 40 | 41),
        30 => matches!(method, 10 | 11),
        40 => matches!(method, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 51),
        50 => matches!(method, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 51),
        60 => matches!(
            method,
            10 | 11
                | 20
                | 21
                | 30
                | 31
                | 40
                | 50
                | 60
                | 70
                | 71
                | 72
                | 80
                | 90
                | 100
                | 110
                | 111
                | 120
        ),
        85 => matches!(method, 10 | 11),
        90 => matches!(method, 10 | 11 | 20 | 21 | 30 | 31),
        _ => false,
    }
}

/// `(class_id, method_id)` of a decoded method, for close reasons.
pub fn ids_of(class: &AMQPClass) -> (u16, u16) {
    (class.get_amqp_class_id(), class.get_amqp_method_id())
}
