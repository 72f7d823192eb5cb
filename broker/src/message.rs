//! A published message, shared by every queue it was routed to (`Arc<Message>`): the body is
//! `Bytes` sliced from the read buffer, and the properties are kept in wire form so delivery
//! re-sends them without re-encoding.

use bytes::Bytes;

use crate::protocol::{AMQPProperties, ShortString};

/// One published message. Immutable once routed.
#[derive(Debug)]
pub struct Message {
    /// Exchange it was published to (as the publisher named it).
    pub exchange: ShortString,
    /// Routing key it was published with.
    pub routing_key: ShortString,
    /// Property flags and fields exactly as received.
    pub raw_properties: Bytes,
    /// Decoded properties, for routing (headers), persistence and the management API.
    pub properties: AMQPProperties,
    /// The body.
    pub body: Bytes,
}

impl Message {
    /// Whether the publisher asked for persistence (`delivery_mode = 2`).
    pub fn is_persistent(&self) -> bool {
        *self.properties.delivery_mode() == Some(2)
    }

    /// Body size in bytes.
    pub fn size(&self) -> usize {
        self.body.len()
    }
}
