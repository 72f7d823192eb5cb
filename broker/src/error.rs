//! AMQP exceptions. This is the only place reply codes are spelled; everything else builds
//! exceptions through the named constructors, so the scope (channel or connection) lives in
//! the type and reply texts follow RabbitMQ's `"NAME - detail"` format.

use std::fmt;

/// A soft error: closes one channel with `channel.close`; the connection lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelException {
    /// AMQP reply code.
    pub code: u16,
    /// Full reply text, `"NAME - detail"`.
    pub text: String,
    /// Class and method of the method that caused it (0, 0 when none).
    pub class_method: (u16, u16),
}

/// A hard error: closes the whole connection with `connection.close`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionException {
    /// AMQP reply code.
    pub code: u16,
    /// Full reply text, `"NAME - detail"`.
    pub text: String,
    /// Class and method of the method that caused it (0, 0 when none).
    pub class_method: (u16, u16),
}

/// Either kind; what a channel handler returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmqpException {
    /// Closes the channel.
    Channel(ChannelException),
    /// Closes the connection.
    Connection(ConnectionException),
}

/// Reply texts are truncated to what a short string can carry (RabbitMQ: 255 bytes).
fn reply_text(name: &str, detail: impl fmt::Display) -> String {
    let mut text = format!("{name} - {detail}");
    if text.len() > 255 {
        let mut cut = 255;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

macro_rules! constructors {
    ($ty:ident { $($fn_name:ident => ($code:expr, $name:expr)),+ $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("`", stringify!($code), " ", $name, "`.")]
                pub fn $fn_name(detail: impl fmt::Display) -> Self {
                    Self { code: $code, text: reply_text($name, detail), class_method: (0, 0) }
                }
            )+

            /// Records the method that caused the exception (sent back in the close method).
            #[must_use]
            pub fn caused_by(mut self, class_method: (u16, u16)) -> Self {
                if self.class_method == (0, 0) {
                    self.class_method = class_method;
                }
                self
            }
        }
    };
}

constructors!(ChannelException {
    access_refused => (403, "ACCESS_REFUSED"),
    not_found => (404, "NOT_FOUND"),
    resource_locked => (405, "RESOURCE_LOCKED"),
    precondition_failed => (406, "PRECONDITION_FAILED"),
});

constructors!(ConnectionException {
    connection_forced => (320, "CONNECTION_FORCED"),
    access_refused => (403, "ACCESS_REFUSED"),
    frame_error => (501, "FRAME_ERROR"),
    syntax_error => (502, "SYNTAX_ERROR"),
    command_invalid => (503, "COMMAND_INVALID"),
    channel_error => (504, "CHANNEL_ERROR"),
    unexpected_frame => (505, "UNEXPECTED_FRAME"),
    resource_error => (506, "RESOURCE_ERROR"),
    not_allowed => (530, "NOT_ALLOWED"),
    not_implemented => (540, "NOT_IMPLEMENTED"),
    internal_error => (541, "INTERNAL_ERROR"),
});

/// The reply code and text of a normal close.
pub const REPLY_SUCCESS: u16 = 200;
/// `basic.return` code for a mandatory message no queue took.
pub const NO_ROUTE: u16 = 312;

impl AmqpException {
    /// Records the method that caused the exception.
    #[must_use]
    pub fn caused_by(self, class_method: (u16, u16)) -> Self {
        match self {
            Self::Channel(e) => Self::Channel(e.caused_by(class_method)),
            Self::Connection(e) => Self::Connection(e.caused_by(class_method)),
        }
    }
}

impl From<ChannelException> for AmqpException {
    fn from(e: ChannelException) -> Self {
        Self::Channel(e)
    }
}

impl From<ConnectionException> for AmqpException {
    fn from(e: ConnectionException) -> Self {
        Self::Connection(e)
    }
}

impl fmt::Display for ChannelException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "channel error {}: {}", self.code, self.text)
    }
}

impl fmt::Display for ConnectionException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection error {}: {}", self.code, self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{AMQPErrorKind, constants};

    /// Channel exceptions carry the spec's soft codes, connection exceptions its hard codes.
    #[test]
    fn codes_match_the_spec_classes() {
        let soft = [
            ChannelException::access_refused(""),
            ChannelException::not_found(""),
            ChannelException::resource_locked(""),
            ChannelException::precondition_failed(""),
        ];
        for e in soft {
            assert!(
                matches!(AMQPErrorKind::from_id(e.code), Some(AMQPErrorKind::Soft(_))),
                "{e}"
            );
        }
        let hard = [
            ConnectionException::connection_forced(""),
            ConnectionException::frame_error(""),
            ConnectionException::syntax_error(""),
            ConnectionException::command_invalid(""),
            ConnectionException::channel_error(""),
            ConnectionException::unexpected_frame(""),
            ConnectionException::resource_error(""),
            ConnectionException::not_allowed(""),
            ConnectionException::not_implemented(""),
            ConnectionException::internal_error(""),
        ];
        for e in hard {
            assert!(
                matches!(AMQPErrorKind::from_id(e.code), Some(AMQPErrorKind::Hard(_))),
                "{e}"
            );
        }
        // 403 is soft in the spec; during the handshake RabbitMQ sends it as connection.close.
        assert!(matches!(
            AMQPErrorKind::from_id(ConnectionException::access_refused("").code),
            Some(AMQPErrorKind::Soft(_))
        ));
        assert_eq!(REPLY_SUCCESS, constants::REPLY_SUCCESS);
        assert!(matches!(
            AMQPErrorKind::from_id(NO_ROUTE),
            Some(AMQPErrorKind::Soft(_))
        ));
    }

    #[test]
    fn text_is_name_dash_detail_and_truncated() {
        let e = ChannelException::not_found("no queue 'q' in vhost '/'");
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        let long = ChannelException::not_found("é".repeat(300));
        assert!(long.text.len() <= 255);
    }
}
