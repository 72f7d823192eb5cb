//! The outbound side of a connection: frames are appended to one buffer and written to the
//! socket in as few syscalls as possible. Methods go through amq-protocol's generator; the
//! frames sent per message (`basic.deliver`, `basic.get-ok`, content header, body) are
//! encoded by hand into the buffer with no intermediate allocation.

use amq_protocol::frame::WriteContext;
use bytes::{BufMut, Bytes, BytesMut};

use super::{AMQPClass, FRAME_OVERHEAD};

const FRAME_END: u8 = 0xCE;

/// Bytes waiting to be written to one connection's socket.
#[derive(Debug)]
pub struct Outbox {
    /// Encoded frames, in order.
    pub buf: BytesMut,
    /// Largest frame the peer accepts (negotiated), bounds body frames.
    frame_max: usize,
    /// Reused buffer for amq-protocol's generator.
    scratch: Vec<u8>,
}

impl Outbox {
    /// An empty outbox for a peer that accepts frames of up to `frame_max` bytes.
    pub fn new(frame_max: u32) -> Self {
        Self {
            buf: BytesMut::with_capacity(64 * 1024),
            frame_max: frame_max as usize,
            scratch: Vec::new(),
        }
    }

    /// Changes the frame size bound after tuning.
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = if frame_max == 0 {
            usize::MAX
        } else {
            frame_max as usize
        };
    }

    /// Number of bytes waiting.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends raw bytes (the protocol header).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends a method frame.
    pub fn method(&mut self, channel: u16, class: &AMQPClass) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let ctx = WriteContext::from(scratch);
        let scratch = match amq_protocol::protocol::gen_class(class)(ctx) {
            Ok(ctx) => ctx.into_inner().0,
            // Writing into a Vec cannot fail; keep the outbox consistent if it ever did.
            Err(_) => Vec::new(),
        };
        self.frame_header(1, channel, scratch.len());
        self.buf.extend_from_slice(&scratch);
        self.buf.put_u8(FRAME_END);
        self.scratch = scratch;
    }

    /// Appends `basic.deliver`.
    pub fn deliver(
        &mut self,
        channel: u16,
        consumer_tag: &str,
        delivery_tag: u64,
        redelivered: bool,
        exchange: &str,
        routing_key: &str,
    ) {
        let size = 4 + 1 + consumer_tag.len() + 8 + 1 + 1 + exchange.len() + 1 + routing_key.len();
        self.frame_header(1, channel, size);
        self.buf.put_u16(60);
        self.buf.put_u16(60);
        put_shortstr(&mut self.buf, consumer_tag);
        self.buf.put_u64(delivery_tag);
        self.buf.put_u8(u8::from(redelivered));
        put_shortstr(&mut self.buf, exchange);
        put_shortstr(&mut self.buf, routing_key);
        self.buf.put_u8(FRAME_END);
    }

    /// Appends `basic.get-ok`.
    pub fn get_ok(
        &mut self,
        channel: u16,
        delivery_tag: u64,
        redelivered: bool,
        exchange: &str,
        routing_key: &str,
        message_count: u32,
    ) {
        let size = 4 + 8 + 1 + 1 + exchange.len() + 1 + routing_key.len() + 4;
        self.frame_header(1, channel, size);
        self.buf.put_u16(60);
        self.buf.put_u16(71);
        self.buf.put_u64(delivery_tag);
        self.buf.put_u8(u8::from(redelivered));
        put_shortstr(&mut self.buf, exchange);
        put_shortstr(&mut self.buf, routing_key);
        self.buf.put_u32(message_count);
        self.buf.put_u8(FRAME_END);
    }

    /// Appends the content header and body frames of a message.
    pub fn content(&mut self, channel: u16, raw_properties: &[u8], body: &Bytes) {
        self.frame_header(2, channel, 12 + raw_properties.len());
        self.buf.put_u16(60);
        self.buf.put_u16(0);
        self.buf.put_u64(body.len() as u64);
        self.buf.extend_from_slice(raw_properties);
        self.buf.put_u8(FRAME_END);
        let max_body = self.frame_max.saturating_sub(FRAME_OVERHEAD).max(1);
        for chunk in body.chunks(max_body) {
            self.frame_header(3, channel, chunk.len());
            self.buf.extend_from_slice(chunk);
            self.buf.put_u8(FRAME_END);
        }
    }

    /// Appends a heartbeat frame.
    pub fn heartbeat(&mut self) {
        self.buf
            .extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, FRAME_END]);
    }

    fn frame_header(&mut self, kind: u8, channel: u16, size: usize) {
        self.buf.reserve(size + FRAME_OVERHEAD);
        self.buf.put_u8(kind);
        self.buf.put_u16(channel);
        // Every frame we build is bounded by frame_max or by short-string lengths.
        self.buf.put_u32(u32::try_from(size).unwrap_or(u32::MAX));
    }
}

/// Short strings we write are names that came in as short strings (≤ 255 bytes).
fn put_shortstr(buf: &mut BytesMut, s: &str) {
    let len = s.len().min(255);
    buf.put_u8(len as u8);
    buf.extend_from_slice(&s.as_bytes()[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Frame, basic, decode_frame, decode_method};

    #[test]
    fn hand_encoded_deliver_decodes_as_amq_protocol_reads_it() {
        let mut out = Outbox::new(131_072);
        out.deliver(7, "amq.ctag-1", 42, true, "ex", "rk");
        let frame = decode_frame(&mut out.buf, 131_072)
            .expect("valid")
            .expect("complete");
        let Frame::Method { channel, payload } = frame else {
            panic!("method frame")
        };
        assert_eq!(channel, 7);
        let AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) =
            decode_method(&payload).expect("decodes")
        else {
            panic!("deliver")
        };
        assert_eq!(d.consumer_tag.as_str(), "amq.ctag-1");
        assert_eq!(d.delivery_tag, 42);
        assert!(d.redelivered);
        assert_eq!(d.exchange.as_str(), "ex");
        assert_eq!(d.routing_key.as_str(), "rk");
    }

    #[test]
    fn hand_encoded_get_ok_decodes() {
        let mut out = Outbox::new(131_072);
        out.get_ok(1, 5, false, "", "q", 9);
        let Some(Frame::Method { payload, .. }) =
            decode_frame(&mut out.buf, 131_072).expect("valid")
        else {
            panic!("method frame")
        };
        let AMQPClass::Basic(basic::AMQPMethod::GetOk(g)) =
            decode_method(&payload).expect("decodes")
        else {
            panic!("get-ok")
        };
        assert_eq!(
            (g.delivery_tag, g.message_count, g.routing_key.as_str()),
            (5, 9, "q")
        );
    }

    #[test]
    fn body_is_split_by_frame_max() {
        let mut out = Outbox::new(4096);
        let body = Bytes::from(vec![7u8; 10_000]);
        out.content(1, &[0, 0], &body);
        let mut sizes = Vec::new();
        while let Some(f) = decode_frame(&mut out.buf, 4096).expect("valid") {
            if let Frame::Body { payload, .. } = f {
                sizes.push(payload.len());
            }
        }
        assert_eq!(sizes, vec![4088, 4088, 1824]);
    }
}
