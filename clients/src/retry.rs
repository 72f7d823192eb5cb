//! Automatic retries, portable to RabbitMQ 3.x and 4.x and to our broker.
//!
//! A failed delivery is rejected without requeue; the work queue dead-letters it to
//! `<queue>.retry`, whose TTL sends it back after the retry delay. The broker records each trip
//! in the `x-death` header, so the attempt number is read from there and nothing is kept in the
//! consumer. After `max_attempts` the consumer parks the delivery in `<queue>.dead` with the
//! reason. This module decides; it does no I/O.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable};

use crate::settings::SettingsError;

/// How many times a sale is tried and how long to wait between tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; at least 1.
    pub max_attempts: u32,
    /// TTL of the retry queue.
    pub delay: Duration,
}

/// What to do with a delivery once it has been handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Done: acknowledge.
    Ack,
    /// Failed, attempts remain: reject without requeue so it goes through the retry queue.
    Retry {
        /// The error, for the log.
        reason: String,
    },
    /// Give up: copy to the dead queue with this reason, then acknowledge.
    Park {
        /// Stored in the `parked-reason` header.
        reason: String,
    },
}

/// Why a handler could not process a sale.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might work later (SMTP server down, disk full, database locked): retry.
    #[error("{0}")]
    Transient(String),
    /// Will never work (the recipient address is refused): park at once.
    #[error("{0}")]
    Permanent(String),
}

impl RetryPolicy {
    /// Checks the bounds: at least one attempt and a delay RabbitMQ accepts as a queue TTL.
    pub fn new(max_attempts: u32, delay: Duration) -> Result<Self, SettingsError> {
        if max_attempts == 0 {
            return Err(SettingsError::Invalid {
                setting: "--max-attempts",
                reason: "must be at least 1".into(),
            });
        }
        if delay.as_millis() > i32::MAX as u128 {
            return Err(SettingsError::Invalid {
                setting: "--retry-delay",
                reason: "must be under 24 days (a queue TTL is a 32-bit number of ms)".into(),
            });
        }
        Ok(Self {
            max_attempts,
            delay,
        })
    }

    /// The disposition after attempt number `attempt` (1-based) ended with `result`.
    pub fn decide(&self, attempt: u32, result: &Result<(), HandlerError>) -> Disposition {
        match result {
            Ok(()) => Disposition::Ack,
            Err(HandlerError::Permanent(e)) => Disposition::Park {
                reason: format!("permanent failure on attempt {attempt}: {e}"),
            },
            Err(HandlerError::Transient(e)) if attempt >= self.max_attempts => Disposition::Park {
                reason: format!("gave up after {attempt} attempts: {e}"),
            },
            Err(HandlerError::Transient(e)) => Disposition::Retry { reason: e.clone() },
        }
    }
}

/// The attempt this delivery is (1 for a first delivery): one more than the number of times the
/// broker recorded it as rejected from `queue` in `x-death`.
///
/// Redeliveries after a consumer crash are not counted: they are the same attempt, unfinished.
pub fn attempt_number(headers: Option<&FieldTable>, queue: &str) -> u32 {
    let rejected = death_count(headers, queue, "rejected");
    u32::try_from(rejected)
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

/// The `count` of the `x-death` entry for (`queue`, `reason`), 0 when there is none.
pub fn death_count(headers: Option<&FieldTable>, queue: &str, reason: &str) -> u64 {
    x_death(headers)
        .filter(|entry| {
            text(entry.inner().get("queue")) == Some(queue)
                && text(entry.inner().get("reason")) == Some(reason)
        })
        .filter_map(|entry| entry.inner().get("count").and_then(integer))
        .max()
        .unwrap_or(0)
}

/// The tables of the `x-death` array, newest first as the broker writes them.
pub fn x_death(headers: Option<&FieldTable>) -> impl Iterator<Item = &FieldTable> {
    let entries = match headers.and_then(|h| h.inner().get("x-death")) {
        Some(AMQPValue::FieldArray(array)) => array.as_slice(),
        _ => &[],
    };
    entries.iter().filter_map(|v| match v {
        AMQPValue::FieldTable(t) => Some(t),
        _ => None,
    })
}

/// A header value as text, for string-typed values.
pub fn text(value: Option<&AMQPValue>) -> Option<&str> {
    match value? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// A header value as a non-negative integer, whatever integer type the peer chose.
pub fn integer(value: &AMQPValue) -> Option<u64> {
    match *value {
        AMQPValue::ShortShortInt(v) => u64::try_from(v).ok(),
        AMQPValue::ShortShortUInt(v) => Some(u64::from(v)),
        AMQPValue::ShortInt(v) => u64::try_from(v).ok(),
        AMQPValue::ShortUInt(v) => Some(u64::from(v)),
        AMQPValue::LongInt(v) => u64::try_from(v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(v)),
        AMQPValue::LongLongInt(v) => u64::try_from(v).ok(),
        AMQPValue::Timestamp(v) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::{FieldArray, LongString};

    use super::*;

    fn death(queue: &str, reason: &str, count: i64) -> AMQPValue {
        let mut t = FieldTable::default();
        t.insert(
            "queue".into(),
            AMQPValue::LongString(LongString::from(queue)),
        );
        t.insert(
            "reason".into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        t.insert("count".into(), AMQPValue::LongLongInt(count));
        AMQPValue::FieldTable(t)
    }

    fn headers(entries: Vec<AMQPValue>) -> FieldTable {
        let mut h = FieldTable::default();
        h.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(entries)),
        );
        h
    }

    #[test]
    fn attempt_counts_rejections_from_this_queue_only() {
        assert_eq!(attempt_number(None, "q"), 1);
        let h = headers(vec![
            death("q.retry", "expired", 2),
            death("q", "rejected", 2),
            death("other", "rejected", 7),
        ]);
        assert_eq!(attempt_number(Some(&h), "q"), 3);
        assert_eq!(attempt_number(Some(&h), "other"), 8);
        assert_eq!(attempt_number(Some(&h), "unknown"), 1);
    }

    #[test]
    fn garbage_headers_count_as_first_attempt() {
        let mut h = FieldTable::default();
        h.insert(
            "x-death".into(),
            AMQPValue::LongString(LongString::from("nope")),
        );
        assert_eq!(attempt_number(Some(&h), "q"), 1);
        let h = headers(vec![AMQPValue::Boolean(true), death("q", "rejected", -5)]);
        assert_eq!(attempt_number(Some(&h), "q"), 1);
    }

    #[test]
    fn decisions() {
        let p = RetryPolicy::new(3, Duration::from_secs(1)).unwrap();
        assert_eq!(p.decide(1, &Ok(())), Disposition::Ack);
        let t = || Err(HandlerError::Transient("smtp down".into()));
        assert!(matches!(p.decide(1, &t()), Disposition::Retry { .. }));
        assert!(matches!(p.decide(2, &t()), Disposition::Retry { .. }));
        assert_eq!(
            p.decide(3, &t()),
            Disposition::Park {
                reason: "gave up after 3 attempts: smtp down".into()
            }
        );
        let perm = Err(HandlerError::Permanent("550 no such user".into()));
        assert!(matches!(p.decide(1, &perm), Disposition::Park { .. }));
        assert!(RetryPolicy::new(0, Duration::ZERO).is_err());
        assert!(RetryPolicy::new(1, Duration::from_secs(30 * 86_400)).is_err());
    }
}
