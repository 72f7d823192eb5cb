//! Our framer. It reads the 7-byte frame header, checks the announced size against the
//! negotiated `frame_max` *before* buffering the payload, checks the frame-end octet, and
//! slices payloads out of the read buffer as `Bytes` without copying.

use bytes::{Buf, Bytes, BytesMut};

use super::FRAME_OVERHEAD;
use crate::error::ConnectionException;

/// The protocol header a 0-9-1 client sends first, and what we answer to a wrong one.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;

/// One frame, payload not yet interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A method frame; decode with [`super::decode_method`].
    Method {
        /// Channel number.
        channel: u16,
        /// Class id, method id and arguments.
        payload: Bytes,
    },
    /// A content header frame.
    Header {
        /// Channel number.
        channel: u16,
        /// Class id, weight, body size and properties.
        payload: Bytes,
    },
    /// A content body frame.
    Body {
        /// Channel number.
        channel: u16,
        /// A slice of the message body.
        payload: Bytes,
    },
    /// A heartbeat (valid only on channel 0).
    Heartbeat {
        /// Channel number.
        channel: u16,
    },
}

/// Takes one complete frame off the front of `buf`, or returns `Ok(None)` when more bytes are
/// needed. `frame_max` bounds the whole frame including its 8 octets of overhead; a larger
/// announced size is refused without waiting for (or allocating) the payload.
pub fn decode_frame(
    buf: &mut BytesMut,
    frame_max: u32,
) -> Result<Option<Frame>, ConnectionException> {
    let Some(header) = buf.get(..7) else {
        return Ok(None);
    };
    let kind = header[0];
    let channel = u16::from_be_bytes([header[1], header[2]]);
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
    let max_payload = (frame_max as usize).saturating_sub(FRAME_OVERHEAD);
    if frame_max != 0 && size as usize > max_payload {
        return Err(ConnectionException::frame_error(format!(
            "type {kind}, all octets = <<>>: {{frame_too_large,{size},{max_payload}}}"
        )));
    }
    let total = 7 + size as usize + 1;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let end = buf[total - 1];
    if end != FRAME_END {
        return Err(ConnectionException::frame_error(format!(
            "type {kind}, all octets = {}: {{invalid_frame_end_marker,{end}}}",
            erlang_binary(&buf[7..total - 1])
        )));
    }
    if !matches!(
        kind,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(ConnectionException::frame_error(format!(
            "type {kind}, all octets = {}: unknown_frame",
            erlang_binary(&buf[7..total - 1])
        )));
    }
    buf.advance(7);
    let payload = buf.split_to(size as usize).freeze();
    buf.advance(1);
    Ok(Some(match kind {
        FRAME_METHOD => Frame::Method { channel, payload },
        FRAME_HEADER => Frame::Header { channel, payload },
        FRAME_BODY => Frame::Body { channel, payload },
        _ => Frame::Heartbeat { channel },
    }))
}

/// Renders bytes as Erlang prints a binary (RabbitMQ's reply texts quote payloads this way):
/// `<<"text">>` when every byte is printable ASCII, `<<1,2,3>>` otherwise. Long payloads are
/// cut so the reply text stays short.
pub fn erlang_binary(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let shown = &bytes[..bytes.len().min(MAX)];
    let more = if bytes.len() > MAX { ",..." } else { "" };
    if !shown.is_empty() && shown.iter().all(|b| (32..=126).contains(b)) {
        let text: String = shown
            .iter()
            .map(|&b| match b {
                b'"' => "\\\"".to_owned(),
                b'\\' => "\\\\".to_owned(),
                b => (b as char).to_string(),
            })
            .collect();
        format!("<<\"{text}\"{more}>>")
    } else {
        let list: Vec<String> = shown.iter().map(u8::to_string).collect();
        format!("<<{}{more}>>", list.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(kind: u8, channel: u16, payload: &[u8], end: u8) -> BytesMut {
        let mut b = BytesMut::new();
        b.extend_from_slice(&[kind]);
        b.extend_from_slice(&channel.to_be_bytes());
        b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        b.extend_from_slice(payload);
        b.extend_from_slice(&[end]);
        b
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let full = raw(FRAME_BODY, 3, b"hello", FRAME_END);
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(decode_frame(&mut part, 131_072), Ok(None));
        }
        let mut all = full.clone();
        assert_eq!(
            decode_frame(&mut all, 131_072),
            Ok(Some(Frame::Body {
                channel: 3,
                payload: Bytes::from_static(b"hello")
            }))
        );
        assert!(all.is_empty());
    }

    #[test]
    fn oversized_frame_refused_from_its_header() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&[FRAME_BODY, 0, 1, 0x7f, 0xff, 0xff, 0xff]);
        let err = decode_frame(&mut b, 131_072).expect_err("too large");
        assert_eq!(err.code, 501);
        assert!(
            b.capacity() < 1 << 20,
            "no buffer grown for the announced size"
        );
    }

    #[test]
    fn bad_frame_end_is_a_frame_error() {
        let mut b = raw(FRAME_METHOD, 1, b"abcd", 0x00);
        assert_eq!(
            decode_frame(&mut b, 131_072).expect_err("bad end").code,
            501
        );
    }

    #[test]
    fn unknown_type_is_a_frame_error() {
        let mut b = raw(7, 1, b"abcd", FRAME_END);
        assert_eq!(
            decode_frame(&mut b, 131_072).expect_err("bad type").code,
            501
        );
    }

    proptest! {
        #[test]
        fn frames_round_trip_in_a_stream(
            frames in proptest::collection::vec(
                (prop_oneof![Just(FRAME_METHOD), Just(FRAME_HEADER), Just(FRAME_BODY)],
                 any::<u16>(),
                 proptest::collection::vec(any::<u8>(), 0..300)),
                1..20),
            split in 1usize..64,
        ) {
            let mut stream = BytesMut::new();
            for (k, c, p) in &frames {
                stream.extend_from_slice(&raw(*k, *c, p, FRAME_END));
            }
            // Feed the stream in chunks of `split` bytes, as reads would.
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in stream.chunks(split) {
                buf.extend_from_slice(chunk);
                while let Some(f) = decode_frame(&mut buf, 131_072).expect("valid") {
                    out.push(f);
                }
            }
            prop_assert_eq!(out.len(), frames.len());
            for (f, (k, c, p)) in out.iter().zip(&frames) {
                let (kind, channel, payload) = match f {
                    Frame::Method { channel, payload } => (FRAME_METHOD, *channel, payload),
                    Frame::Header { channel, payload } => (FRAME_HEADER, *channel, payload),
                    Frame::Body { channel, payload } => (FRAME_BODY, *channel, payload),
                    Frame::Heartbeat { .. } => unreachable!("none sent"),
                };
                prop_assert_eq!(kind, *k);
                prop_assert_eq!(channel, *c);
                prop_assert_eq!(&payload[..], &p[..]);
            }
        }
    }
}
