//! The byte format of segment files: the segment header and the records after it. Pure
//! encoding and decoding; no I/O.
//!
//! ```text
//! segment  = header record*
//! header   = magic "AQLG" | version u32 | salt u32 | crc32(magic..salt) u32      (16 bytes)
//! record   = len u32 | crc u32 | payload[len]
//! crc      = crc32 of payload, started from the segment's salt instead of 0
//! payload  = kind u8 | seq u64 | body-of-kind
//!   message   (kind 1): priority u8 | expires_unix_ms u64 (0 = never)
//!                       | exchange_len u16 | exchange | routing_key_len u16 | routing_key
//!                       | properties_len u32 | properties | body (the rest)
//!   ack       (kind 2): segment u32 (where the acked message's record is)
//!   delivered (kind 3): segment u32 (where the delivered message's record is)
//! ```
//!
//! All integers are little-endian. The salt is random per segment: a publisher controls message
//! bodies, and without the salt a body could carry bytes that pass for a valid record when
//! recovery resynchronises after a torn or corrupt record.

use bytes::Bytes;

use super::{MessageRef, StoredMessage};

/// Bytes before the first record of a segment.
pub(crate) const SEGMENT_HEADER_LEN: u32 = 16;
/// `len` and `crc` before each payload.
pub(crate) const RECORD_HEADER_LEN: u32 = 8;
/// Payload bytes of an ack or delivered record.
pub(crate) const MARK_PAYLOAD_LEN: u32 = 13;
/// The smallest payload of any kind (ack and delivered).
pub(crate) const MIN_PAYLOAD_LEN: u32 = MARK_PAYLOAD_LEN;
/// The largest payload accepted, written or read: a record must fit a segment whose offsets are
/// u32, and recovery must not believe a garbage length field.
pub(crate) const MAX_PAYLOAD_LEN: u32 = u32::MAX - SEGMENT_HEADER_LEN - RECORD_HEADER_LEN;

const MAGIC: &[u8; 4] = b"AQLG";
/// Version 2 added the message's priority and deadline (recovery restores them). A segment
/// of another version is set aside at recovery like a damaged one.
const VERSION: u32 = 2;
/// kind + seq + priority + deadline + three length fields.
const MESSAGE_FIXED_LEN: usize = 1 + 8 + 1 + 8 + 2 + 2 + 4;
/// Where the message's priority is in its payload (its deadline follows).
const MESSAGE_PRIORITY_AT: usize = 1 + 8;

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Message = 1,
    Ack = 2,
    Delivered = 3,
}

/// Whether `byte` is a known record kind (a cheap filter before a CRC).
pub(crate) fn is_kind(byte: u8) -> bool {
    Kind::from_byte(byte).is_some()
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Message),
            2 => Some(Self::Ack),
            3 => Some(Self::Delivered),
            _ => None,
        }
    }
}

/// A record that passed its CRC, as recovery needs it (the message itself is not decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub kind: Kind,
    pub seq: u64,
    /// For acks and delivered marks: the segment of the message they refer to.
    pub target_segment: u32,
    /// Record length including its 8-byte header.
    pub record_len: u32,
    /// For messages: the body's length, priority and deadline.
    pub body_len: u32,
    pub priority: u8,
    pub expires_unix_ms: u64,
}

/// Encodes a segment header with `salt`.
pub(crate) fn segment_header(salt: u32) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    header[..4].copy_from_slice(MAGIC);
    header[4..8].copy_from_slice(&VERSION.to_le_bytes());
    header[8..12].copy_from_slice(&salt.to_le_bytes());
    let crc = crc32fast::hash(&header[..12]);
    header[12..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// The salt of a segment, or `None` if the header is damaged or of another version.
pub(crate) fn parse_segment_header(header: &[u8]) -> Option<u32> {
    let header = header.get(..SEGMENT_HEADER_LEN as usize)?;
    if &header[..4] != MAGIC
        || le_u32(&header[4..8]) != VERSION
        || le_u32(&header[12..16]) != crc32fast::hash(&header[..12])
    {
        return None;
    }
    Some(le_u32(&header[8..12]))
}

/// Payload length of a message record, or `None` if it cannot be framed.
pub(crate) fn message_payload_len(message: &MessageRef<'_>) -> Option<u32> {
    if message.exchange.len() > usize::from(u16::MAX)
        || message.routing_key.len() > usize::from(u16::MAX)
    {
        return None;
    }
    let len = MESSAGE_FIXED_LEN
        .checked_add(message.exchange.len())?
        .checked_add(message.routing_key.len())?
        .checked_add(message.raw_properties.len())?
        .checked_add(message.body.len())?;
    u32::try_from(len)
        .ok()
        .filter(|len| *len <= MAX_PAYLOAD_LEN)
}

/// Appends the record header and the message payload *without the body* to `out`, and returns
/// the CRC of the whole payload (body included). The caller writes the body right after.
/// `payload_len` comes from [`message_payload_len`].
pub(crate) fn encode_message_prefix(
    out: &mut Vec<u8>,
    salt: u32,
    seq: u64,
    message: &MessageRef<'_>,
    payload_len: u32,
) -> u32 {
    let start = out.len();
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(Kind::Message as u8);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(message.priority);
    out.extend_from_slice(&message.expires_unix_ms.to_le_bytes());
    // Lengths were checked by `message_payload_len`; the casts cannot truncate.
    out.extend_from_slice(&(message.exchange.len() as u16).to_le_bytes());
    out.extend_from_slice(message.exchange.as_bytes());
    out.extend_from_slice(&(message.routing_key.len() as u16).to_le_bytes());
    out.extend_from_slice(message.routing_key.as_bytes());
    out.extend_from_slice(&(message.raw_properties.len() as u32).to_le_bytes());
    out.extend_from_slice(message.raw_properties);
    let payload_start = start + RECORD_HEADER_LEN as usize;
    let mut hasher = crc32fast::Hasher::new_with_initial(salt);
    hasher.update(&out[payload_start..]);
    hasher.update(message.body);
    let crc = hasher.finalize();
    out[start + 4..payload_start].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// Appends a whole message record to `out`.
pub(crate) fn encode_message(
    out: &mut Vec<u8>,
    salt: u32,
    seq: u64,
    message: &MessageRef<'_>,
    payload_len: u32,
) {
    encode_message_prefix(out, salt, seq, message, payload_len);
    out.extend_from_slice(message.body);
}

/// Appends an ack or delivered record to `out`.
pub(crate) fn encode_mark(out: &mut Vec<u8>, salt: u32, kind: Kind, seq: u64, target_segment: u32) {
    let mut payload = [0u8; MARK_PAYLOAD_LEN as usize];
    payload[0] = kind as u8;
    payload[1..9].copy_from_slice(&seq.to_le_bytes());
    payload[9..13].copy_from_slice(&target_segment.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new_with_initial(salt);
    hasher.update(&payload);
    out.extend_from_slice(&MARK_PAYLOAD_LEN.to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&payload);
}

/// The payload length announced by a record header, if it is one a valid record could have
/// given `available` bytes after the header.
pub(crate) fn framed_len(header: &[u8], available: u64) -> Option<u32> {
    let len = le_u32(header.get(..4)?);
    (MIN_PAYLOAD_LEN..=MAX_PAYLOAD_LEN)
        .contains(&len)
        .then_some(len)
        .filter(|len| u64::from(*len) <= available)
}

/// The record at the start of `bytes` (header and payload), if `bytes` holds all of it and
/// its length field is plausible; the CRC is checked when it is parsed.
pub(crate) fn whole_record(bytes: &[u8]) -> Option<&[u8]> {
    let available = bytes.len().checked_sub(RECORD_HEADER_LEN as usize)?;
    let payload = framed_len(bytes, available as u64)?;
    bytes.get(..RECORD_HEADER_LEN as usize + payload as usize)
}

/// Checks a whole record (`len | crc | payload`) against `salt` and reads what recovery needs.
/// `None` means the record is not valid: wrong length, CRC mismatch or unknown kind.
pub(crate) fn parse(record: &[u8], salt: u32) -> Option<Parsed> {
    let header = record.get(..RECORD_HEADER_LEN as usize)?;
    let len = le_u32(&header[..4]);
    let payload = record.get(RECORD_HEADER_LEN as usize..)?;
    if !(MIN_PAYLOAD_LEN..=MAX_PAYLOAD_LEN).contains(&len) || payload.len() != len as usize {
        return None;
    }
    // Cheap checks first: recovery calls this at many offsets while resynchronising.
    let kind = Kind::from_byte(payload[0])?;
    let well_sized = match kind {
        Kind::Message => payload.len() >= MESSAGE_FIXED_LEN,
        Kind::Ack | Kind::Delivered => len == MARK_PAYLOAD_LEN,
    };
    if !well_sized {
        return None;
    }
    let mut hasher = crc32fast::Hasher::new_with_initial(salt);
    hasher.update(payload);
    if hasher.finalize() != le_u32(&header[4..8]) {
        return None;
    }
    let seq = le_u64(&payload[1..9]);
    let (target_segment, body_len, priority, expires_unix_ms) = match kind {
        Kind::Message => (
            0,
            message_body_len(payload)?,
            payload[MESSAGE_PRIORITY_AT],
            le_u64(&payload[MESSAGE_PRIORITY_AT + 1..]),
        ),
        Kind::Ack | Kind::Delivered => (le_u32(&payload[9..13]), 0, 0, 0),
    };
    Some(Parsed {
        kind,
        seq,
        target_segment,
        record_len: len + RECORD_HEADER_LEN,
        body_len,
        priority,
        expires_unix_ms,
    })
}

/// The body length of a message payload, or `None` if its length fields overrun it.
fn message_body_len(payload: &[u8]) -> Option<u32> {
    let mut cursor = MESSAGE_FIXED_LEN - 8; // after kind, seq, priority and deadline
    for width in [2, 2, 4] {
        let field = payload.get(cursor..cursor + width)?;
        let len = if width == 2 {
            usize::from(u16::from_le_bytes([field[0], field[1]]))
        } else {
            le_u32(field) as usize
        };
        cursor = cursor.checked_add(width)?.checked_add(len)?;
    }
    u32::try_from(payload.len().checked_sub(cursor)?).ok()
}

/// Decodes a message record read back for delivery. `record` is the whole record; `None` if it
/// fails its CRC or is not a well-formed message record.
pub(crate) fn decode_message(record: Bytes, salt: u32) -> Option<(u64, StoredMessage)> {
    let parsed = parse(&record, salt)?;
    if parsed.kind != Kind::Message {
        return None;
    }
    let payload = record.slice(RECORD_HEADER_LEN as usize..);
    let mut cursor = MESSAGE_FIXED_LEN - 8; // after kind, seq, priority and deadline
    let exchange = take_str(&payload, &mut cursor)?;
    let routing_key = take_str(&payload, &mut cursor)?;
    let props_len = le_u32(payload.get(cursor..cursor + 4)?) as usize;
    cursor += 4;
    let props_end = cursor
        .checked_add(props_len)
        .filter(|end| *end <= payload.len())?;
    let raw_properties = payload.slice(cursor..props_end);
    let body = payload.slice(props_end..);
    Some((
        parsed.seq,
        StoredMessage {
            priority: parsed.priority,
            expires_unix_ms: parsed.expires_unix_ms,
            exchange,
            routing_key,
            raw_properties,
            body,
        },
    ))
}

fn take_str(payload: &[u8], cursor: &mut usize) -> Option<String> {
    let len = usize::from(u16::from_le_bytes(
        payload.get(*cursor..*cursor + 2)?.try_into().ok()?,
    ));
    *cursor += 2;
    let bytes = payload.get(*cursor..*cursor + len)?;
    *cursor += len;
    String::from_utf8(bytes.to_vec()).ok()
}

/// Reads a little-endian u32 from the first four bytes; callers pass at least four.
fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<'a>(body: &'a [u8]) -> MessageRef<'a> {
        MessageRef {
            priority: 7,
            expires_unix_ms: 1_700_000_000_123,
            exchange: "amq.direct",
            routing_key: "orders.é",
            raw_properties: &[0x10, 0x00, 0x02],
            body,
        }
    }

    fn encoded(salt: u32, seq: u64, body: &[u8]) -> Vec<u8> {
        let m = message(body);
        let len = message_payload_len(&m).expect("fits");
        let mut out = Vec::new();
        encode_message(&mut out, salt, seq, &m, len);
        out
    }

    #[test]
    fn message_round_trips() {
        let record = encoded(7, 42, b"hello");
        let parsed = parse(&record, 7).expect("valid");
        assert_eq!(parsed.kind, Kind::Message);
        assert_eq!(parsed.seq, 42);
        assert_eq!(parsed.record_len as usize, record.len());
        assert_eq!(parsed.body_len, 5);
        assert_eq!(parsed.priority, 7);
        assert_eq!(parsed.expires_unix_ms, 1_700_000_000_123);
        let (seq, stored) = decode_message(Bytes::from(record), 7).expect("decodes");
        assert_eq!(seq, 42);
        assert_eq!(stored.exchange, "amq.direct");
        assert_eq!(stored.routing_key, "orders.é");
        assert_eq!(&stored.raw_properties[..], &[0x10, 0x00, 0x02]);
        assert_eq!(&stored.body[..], b"hello");
        assert_eq!(
            (stored.priority, stored.expires_unix_ms),
            (7, 1_700_000_000_123)
        );
    }

    #[test]
    fn empty_body_round_trips() {
        let record = encoded(0, 1, b"");
        let (_, stored) = decode_message(Bytes::from(record), 0).expect("decodes");
        assert!(stored.body.is_empty());
    }

    #[test]
    fn marks_round_trip() {
        for kind in [Kind::Ack, Kind::Delivered] {
            let mut out = Vec::new();
            encode_mark(&mut out, 99, kind, u64::MAX, 12);
            assert_eq!(out.len() as u32, RECORD_HEADER_LEN + MARK_PAYLOAD_LEN);
            let parsed = parse(&out, 99).expect("valid");
            assert_eq!(
                (parsed.kind, parsed.seq, parsed.target_segment),
                (kind, u64::MAX, 12)
            );
            assert!(decode_message(Bytes::from(out), 99).is_none());
        }
    }

    #[test]
    fn another_salt_rejects_the_record() {
        let record = encoded(1, 1, b"body");
        assert!(parse(&record, 2).is_none());
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let record = encoded(5, 3, b"some body bytes");
        for byte in 0..record.len() {
            for bit in 0..8 {
                let mut flipped = record.clone();
                flipped[byte] ^= 1 << bit;
                assert!(parse(&flipped, 5).is_none(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn truncated_record_is_rejected() {
        let record = encoded(5, 3, b"some body bytes");
        for cut in 0..record.len() {
            assert!(parse(&record[..cut], 5).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn segment_header_round_trips_and_detects_damage() {
        let header = segment_header(0xdead_beef);
        assert_eq!(parse_segment_header(&header), Some(0xdead_beef));
        for byte in 0..header.len() {
            let mut flipped = header;
            flipped[byte] ^= 0x40;
            assert_eq!(parse_segment_header(&flipped), None, "byte {byte}");
        }
        assert_eq!(parse_segment_header(&header[..10]), None);
    }

    #[test]
    fn oversized_names_do_not_frame() {
        let long = "x".repeat(70_000);
        let m = MessageRef {
            priority: 0,
            expires_unix_ms: 0,
            exchange: &long,
            routing_key: "",
            raw_properties: &[],
            body: &[],
        };
        assert_eq!(message_payload_len(&m), None);
    }

    #[test]
    fn framed_len_rejects_implausible_lengths() {
        assert_eq!(framed_len(&0u32.to_le_bytes(), 100), None);
        assert_eq!(framed_len(&12u32.to_le_bytes(), 100), None);
        assert_eq!(framed_len(&13u32.to_le_bytes(), 100), Some(13));
        assert_eq!(framed_len(&101u32.to_le_bytes(), 100), None);
    }
}
