//! Content assembly: `basic.publish` → content header → body frames, as a per-channel state
//! machine. Sizes are checked against the configured maximum before any body is buffered, and
//! the body buffer grows with the bytes that actually arrive, never with the announced size.

use bytes::{Bytes, BytesMut};

use super::{AMQPProperties, basic, decode_properties, depth};
use crate::error::{AmqpException, ChannelException, ConnectionException};

/// A complete message as published.
#[derive(Clone, Debug)]
pub struct Assembled {
    /// The `basic.publish` that started it.
    pub publish: basic::Publish,
    /// Property flags and fields exactly as received, re-sent verbatim on delivery.
    pub raw_properties: Bytes,
    /// The decoded properties.
    pub properties: AMQPProperties,
    /// The body.
    pub body: Bytes,
}

/// Where a channel is in receiving a message.
#[derive(Debug, Default)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per channel, overwritten per message; boxing would allocate per publish"
)]
pub enum ContentAssembler {
    /// No content expected.
    #[default]
    Idle,
    /// A `basic.publish` arrived; a content header must follow.
    AwaitingHeader(basic::Publish),
    /// Header seen; body frames until `body_size` bytes have arrived.
    AwaitingBody {
        publish: basic::Publish,
        raw_properties: Bytes,
        properties: AMQPProperties,
        body_size: u64,
        body: Body,
    },
}

/// Body bytes received so far: one frame is kept as a zero-copy slice, more are concatenated.
#[derive(Debug)]
pub enum Body {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl ContentAssembler {
    /// Whether a method frame may arrive now (no content in progress).
    pub fn is_idle(&self) -> bool {
        matches!(self, Self::Idle)
    }

    /// A `basic.publish` method arrived.
    pub fn on_publish(&mut self, publish: basic::Publish) {
        *self = Self::AwaitingHeader(publish);
    }

    /// A content header frame arrived.
    pub fn on_header(
        &mut self,
        payload: Bytes,
        max_message_size: u64,
    ) -> Result<Option<Assembled>, AmqpException> {
        let Self::AwaitingHeader(publish) = std::mem::take(self) else {
            return Err(ConnectionException::unexpected_frame(
                "expected method frame, got non method frame instead",
            )
            .into());
        };
        if payload.len() < 14 {
            return Err(ConnectionException::frame_error("content header too short").into());
        }
        let class = u16::from_be_bytes([payload[0], payload[1]]);
        if class != 60 {
            return Err(ConnectionException::unexpected_frame(format!(
                "expected content header for class 60, got one for class {class} instead"
            ))
            .into());
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&payload[4..12]);
        let body_size = u64::from_be_bytes(size);
        let raw_properties = payload.slice(12..);
        if body_size > max_message_size {
            return Err(ChannelException::precondition_failed(format!(
                "message size {body_size} is larger than configured max size {max_message_size}"
            ))
            .caused_by((60, 40))
            .into());
        }
        depth::check_properties(&raw_properties)?;
        let properties = decode_properties(&raw_properties)?;
        if body_size == 0 {
            return Ok(Some(Assembled {
                publish,
                raw_properties,
                properties,
                body: Bytes::new(),
            }));
        }
        *self = Self::AwaitingBody {
            publish,
            raw_properties,
            properties,
            body_size,
            body: Body::Empty,
        };
        Ok(None)
    }

    /// A content body frame arrived.
    pub fn on_body(&mut self, payload: Bytes) -> Result<Option<Assembled>, AmqpException> {
        let Self::AwaitingBody {
            body_size, body, ..
        } = self
        else {
            return Err(ConnectionException::unexpected_frame(
                "expected method frame, got non method frame instead",
            )
            .into());
        };
        let have = match body {
            Body::Empty => 0,
            Body::One(b) => b.len(),
            Body::Many(b) => b.len(),
        } as u64;
        let total = have + payload.len() as u64;
        if total > *body_size {
            return Err(ConnectionException::frame_error(format!(
                "body of {total} bytes is longer than the {body_size} announced in the content header"
            ))
            .into());
        }
        *body = match std::mem::replace(body, Body::Empty) {
            Body::Empty => Body::One(payload),
            Body::One(first) => {
                let cap = (*body_size as usize).min(first.len() * 4 + payload.len());
                let mut many = BytesMut::with_capacity(cap);
                many.extend_from_slice(&first);
                many.extend_from_slice(&payload);
                Body::Many(many)
            }
            Body::Many(mut many) => {
                many.extend_from_slice(&payload);
                Body::Many(many)
            }
        };
        if total < *body_size {
            return Ok(None);
        }
        let Self::AwaitingBody {
            publish,
            raw_properties,
            properties,
            body,
            ..
        } = std::mem::take(self)
        else {
            unreachable!("matched AwaitingBody above");
        };
        let body = match body {
            Body::Empty => Bytes::new(),
            Body::One(b) => b,
            Body::Many(b) => b.freeze(),
        };
        Ok(Some(Assembled {
            publish,
            raw_properties,
            properties,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(body_size: u64) -> Bytes {
        let mut h = vec![0, 60, 0, 0];
        h.extend_from_slice(&body_size.to_be_bytes());
        h.extend_from_slice(&[0, 0]); // no properties
        Bytes::from(h)
    }

    fn publish() -> basic::Publish {
        basic::Publish {
            exchange: "".into(),
            routing_key: "q".into(),
            mandatory: false,
            immediate: false,
        }
    }

    #[test]
    fn body_in_several_frames_is_joined() {
        let mut a = ContentAssembler::default();
        a.on_publish(publish());
        assert!(a.on_header(header(10), 100).expect("header").is_none());
        assert!(
            a.on_body(Bytes::from_static(b"hello"))
                .expect("body")
                .is_none()
        );
        let m = a
            .on_body(Bytes::from_static(b"world"))
            .expect("body")
            .expect("complete");
        assert_eq!(&m.body[..], b"helloworld");
        assert!(a.is_idle());
    }

    #[test]
    fn empty_body_completes_at_the_header() {
        let mut a = ContentAssembler::default();
        a.on_publish(publish());
        let m = a
            .on_header(header(0), 100)
            .expect("header")
            .expect("complete");
        assert!(m.body.is_empty());
    }

    #[test]
    fn body_longer_than_announced_is_a_frame_error() {
        let mut a = ContentAssembler::default();
        a.on_publish(publish());
        a.on_header(header(3), 100).expect("header");
        let err = a
            .on_body(Bytes::from_static(b"toolong"))
            .expect_err("too long");
        assert!(matches!(err, AmqpException::Connection(e) if e.code == 501));
    }

    #[test]
    fn oversized_message_is_a_channel_error() {
        let mut a = ContentAssembler::default();
        a.on_publish(publish());
        let err = a.on_header(header(101), 100).expect_err("too big");
        assert!(matches!(err, AmqpException::Channel(e) if e.code == 406));
    }

    #[test]
    fn body_without_header_is_unexpected() {
        let mut a = ContentAssembler::default();
        let err = a.on_body(Bytes::from_static(b"x")).expect_err("unexpected");
        assert!(matches!(err, AmqpException::Connection(e) if e.code == 505));
        let err = a.on_header(header(1), 100).expect_err("unexpected");
        assert!(matches!(err, AmqpException::Connection(e) if e.code == 505));
    }
}
