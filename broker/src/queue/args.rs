//! Queue arguments (`x-*`), parsed and validated once at declaration into typed settings.
//! Error texts follow RabbitMQ 3.10 (`invalid arg 'x-…' for queue 'q' in vhost '/': …`).

use crate::error::ChannelException;
use crate::protocol::{AMQPValue, FieldTable};
use crate::vhost::number;

/// What happens when a length limit is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest message.
    #[default]
    DropHead,
    /// Refuse the new message (`basic.nack` under confirms).
    RejectPublish,
    /// Refuse the new message and dead-letter it.
    RejectPublishDlx,
}

/// The queue type a client asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueType {
    #[default]
    Classic,
    /// Served as a durable queue with the quorum semantics one node can honour (see ARCHITECTURE.md).
    Quorum,
}

/// Typed queue arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueArgs {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    /// Highest priority level (1..=255); `None` = not a priority queue.
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    pub delivery_limit: Option<u64>,
    pub queue_type: QueueType,
}

impl QueueArgs {
    /// Parses and validates `arguments` of queue `name` in `vhost`.
    pub fn parse(
        arguments: &FieldTable,
        name: &str,
        vhost: &str,
    ) -> Result<Self, ChannelException> {
        let invalid = |arg: &str, why: String| {
            ChannelException::precondition_failed(format!(
                "invalid arg '{arg}' for queue '{name}' in vhost '{vhost}': {why}"
            ))
        };
        let mut a = Self::default();
        let t = arguments.inner();
        let non_negative = |arg: &str, v: &AMQPValue| -> Result<u64, ChannelException> {
            match number(v) {
                Some(n) if n >= 0 => Ok(u64::try_from(n).unwrap_or(u64::MAX)),
                Some(n) => Err(invalid(arg, format!("{{value_negative,{n}}}"))),
                None => Err(invalid(
                    arg,
                    format!("\"expected integer, got {}\"", type_name(v)),
                )),
            }
        };
        if let Some(v) = t.get("x-message-ttl") {
            a.message_ttl = Some(non_negative("x-message-ttl", v)?);
        }
        if let Some(v) = t.get("x-expires") {
            let n = non_negative("x-expires", v)?;
            if n == 0 {
                return Err(invalid("x-expires", "{value_zero,0}".into()));
            }
            a.expires = Some(n);
        }
        if let Some(v) = t.get("x-max-length") {
            a.max_length = Some(non_negative("x-max-length", v)?);
        }
        if let Some(v) = t.get("x-max-length-bytes") {
            a.max_length_bytes = Some(non_negative("x-max-length-bytes", v)?);
        }
        if let Some(v) = t.get("x-delivery-limit") {
            a.delivery_limit = Some(non_negative("x-delivery-limit", v)?);
        }
        if let Some(v) = t.get("x-max-priority") {
            let n = non_negative("x-max-priority", v)?;
            if n > 255 {
                return Err(invalid(
                    "x-max-priority",
                    format!("{{max_value_exceeded,{n}}}"),
                ));
            }
            // 0 means "not a priority queue", as in RabbitMQ.
            a.max_priority = u8::try_from(n).ok().filter(|p| *p > 0);
        }
        for (arg, slot) in [
            ("x-dead-letter-exchange", &mut a.dead_letter_exchange),
            ("x-dead-letter-routing-key", &mut a.dead_letter_routing_key),
        ] {
            if let Some(v) = t.get(arg) {
                *slot = Some(string(v).ok_or_else(|| {
                    ChannelException::precondition_failed(format!(
                        "invalid type '{}' for arg '{arg}' in queue '{name}' in vhost '{vhost}'",
                        type_name(v)
                    ))
                })?);
            }
        }
        if a.dead_letter_routing_key.is_some() && a.dead_letter_exchange.is_none() {
            return Err(invalid(
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined".into(),
            ));
        }
        if let Some(v) = t.get("x-overflow") {
            a.overflow = match string(v).as_deref() {
                Some("drop-head") => Overflow::DropHead,
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => return Err(invalid("x-overflow", "invalid_overflow".into())),
            };
        }
        if let Some(v) = t.get("x-single-active-consumer") {
            a.single_active_consumer = match v {
                AMQPValue::Boolean(b) => *b,
                _ => {
                    return Err(invalid(
                        "x-single-active-consumer",
                        format!("{{unacceptable_type,{}}}", type_name(v)),
                    ));
                }
            };
        }
        if let Some(v) = t.get("x-queue-type") {
            a.queue_type = match string(v).as_deref() {
                Some("classic") => QueueType::Classic,
                Some("quorum") => QueueType::Quorum,
                _ => {
                    return Err(invalid(
                        "x-queue-type",
                        format!("\"unsupported queue type '{}'\"", describe_value(v)),
                    ));
                }
            };
        }
        if a.queue_type == QueueType::Quorum && a.max_priority.is_some() {
            return Err(ChannelException::precondition_failed(format!(
                "invalid arg 'x-max-priority' for queue '{name}' in vhost '{vhost}' of queue type rabbit_quorum_queue"
            )));
        }
        Ok(a)
    }
}

/// Validates a message's `expiration` property as RabbitMQ does; returns the TTL in ms.
pub fn parse_expiration(e: &str) -> Result<u64, ChannelException> {
    let invalid = |why: String| {
        ChannelException::precondition_failed(format!("invalid expiration '{e}': {why}"))
    };
    let digits = e.strip_prefix('-').unwrap_or(e);
    let len = digits.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return Err(invalid("no_integer".into()));
    }
    if len < digits.len() {
        return Err(invalid(format!(
            "{{leftover_string,\"{}\"}}",
            &digits[len..]
        )));
    }
    if e.starts_with('-') {
        return Err(invalid(format!("{{value_negative,{e}}}")));
    }
    Ok(digits.parse().unwrap_or(u64::MAX))
}

fn string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn describe_value(v: &AMQPValue) -> String {
    string(v).unwrap_or_else(|| type_name(v).to_owned())
}

/// RabbitMQ's names of field types.
pub fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "bytes",
        AMQPValue::Void => "void",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    #[test]
    fn typed_arguments() {
        let a = QueueArgs::parse(
            &args(&[
                ("x-message-ttl", AMQPValue::LongInt(500)),
                (
                    "x-dead-letter-exchange",
                    AMQPValue::LongString("dlx".into()),
                ),
                ("x-max-length", AMQPValue::LongLongInt(10)),
                ("x-overflow", AMQPValue::LongString("reject-publish".into())),
                ("x-max-priority", AMQPValue::ShortShortUInt(10)),
            ]),
            "q",
            "/",
        )
        .expect("valid");
        assert_eq!(a.message_ttl, Some(500));
        assert_eq!(a.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(a.max_length, Some(10));
        assert_eq!(a.overflow, Overflow::RejectPublish);
        assert_eq!(a.max_priority, Some(10));
    }

    #[test]
    fn invalid_values_are_406_with_rabbitmq_text() {
        assert_eq!(parse_expiration("500"), Ok(500));
        assert_eq!(
            parse_expiration("1.5").expect_err("leftover").text,
            "PRECONDITION_FAILED - invalid expiration '1.5': {leftover_string,\".5\"}"
        );
        assert!(parse_expiration("").is_err());
        assert!(parse_expiration("-1").is_err());
        let e = QueueArgs::parse(
            &args(&[("x-message-ttl", AMQPValue::LongInt(-1))]),
            "q",
            "/",
        )
        .expect_err("negative");
        assert_eq!(e.code, 406);
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}"
        );
        assert!(
            QueueArgs::parse(
                &args(&[("x-max-priority", AMQPValue::LongInt(256))]),
                "q",
                "/"
            )
            .is_err()
        );
        assert!(
            QueueArgs::parse(
                &args(&[("x-overflow", AMQPValue::LongString("nope".into()))]),
                "q",
                "/"
            )
            .is_err()
        );
    }
}
