//! Dead-lettering as RabbitMQ 3.10 does it: the message is republished to the queue's
//! dead-letter exchange with an updated `x-death` header (one table per queue and reason,
//! counted, most recent first), `x-first-death-*` set once, `x-last-death-*` each time, and
//! its `expiration` removed (kept in `x-death` as `original-expiration`).

use std::sync::Arc;

use bytes::Bytes;

use crate::clock;
use crate::message::Message;
use crate::protocol::{
    AMQPValue, FieldArray, FieldTable, LongString, ShortString, encode_properties,
};
use crate::queue::{DeadLetter, DeathReason};

/// The message to publish to the dead-letter exchange, and the routing keys to use.
pub fn republish(dl: &DeadLetter) -> (Arc<Message>, Vec<String>) {
    let original = &dl.message;
    let mut props = original.properties.clone();
    let mut headers = props.headers().clone().unwrap_or_default();
    // Routing keys the message was published with: its key plus CC (BCC was stripped).
    let mut keys = vec![original.routing_key.as_str().to_owned()];
    keys.extend(header_strings(&headers, "CC"));
    let mut info = FieldTable::default();
    info.insert("count".into(), AMQPValue::LongLongInt(1));
    info.insert("exchange".into(), long(original.exchange.as_str()));
    info.insert("queue".into(), long(&dl.queue));
    info.insert("reason".into(), long(dl.reason.as_str()));
    info.insert(
        "routing-keys".into(),
        AMQPValue::FieldArray(FieldArray::from(
            keys.iter().map(|k| long(k)).collect::<Vec<_>>(),
        )),
    );
    info.insert("time".into(), AMQPValue::Timestamp(clock::unix_seconds()));
    if let Some(exp) = props.expiration() {
        info.insert("original-expiration".into(), long(exp.as_str()));
    }
    let mut deaths: Vec<AMQPValue> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let first = deaths.is_empty();
    let same = deaths.iter().position(|d| {
        matches!(d, AMQPValue::FieldTable(t)
            if table_str(t, "queue").as_deref() == Some(dl.queue.as_str())
            && table_str(t, "reason").as_deref() == Some(dl.reason.as_str()))
    });
    let entry = match same {
        Some(i) => {
            let AMQPValue::FieldTable(mut existing) = deaths.remove(i) else {
                unreachable!("matched a table")
            };
            let count = match existing.inner().get("count") {
                Some(v) => crate::vhost::number(v).unwrap_or(0),
                None => 0,
            };
            existing.insert(
                "count".into(),
                AMQPValue::LongLongInt(i64::try_from(count + 1).unwrap_or(i64::MAX)),
            );
            existing
        }
        None => info,
    };
    // RabbitMQ 3.10 puts the new (or updated) entry first and the others after it in
    // reverse of their previous order; we reproduce that so headers compare equal.
    deaths.reverse();
    deaths.insert(0, AMQPValue::FieldTable(entry));
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(deaths)),
    );
    if first {
        headers.insert(
            "x-first-death-exchange".into(),
            long(original.exchange.as_str()),
        );
        headers.insert("x-first-death-queue".into(), long(&dl.queue));
        headers.insert("x-first-death-reason".into(), long(dl.reason.as_str()));
    }
    let routing_keys = match &dl.routing_key {
        Some(k) => {
            // A dead-letter routing key replaces the keys, and CC goes with them.
            let mut map = headers.inner().clone();
            map.remove("CC");
            headers = FieldTable::from(map);
            vec![k.clone()]
        }
        None => keys,
    };
    props = props.with_headers(headers);
    let props = without_expiration(props);
    let raw_properties = Bytes::from(encode_properties(&props));
    let message = Message {
        exchange: ShortString::from(dl.exchange.as_str()),
        routing_key: ShortString::from(
            routing_keys.first().map(String::as_str).unwrap_or_default(),
        ),
        raw_properties,
        properties: props,
        body: original.body.clone(),
    };
    (Arc::new(message), routing_keys)
}

/// Whether routing a message dead-lettered for `reason` to `queue` would close a cycle that
/// RabbitMQ breaks: the queue already appears in `x-death` and no death since then was a
/// rejection.
pub fn is_cycle(message: &Message, reason: DeathReason, queue: &str) -> bool {
    if reason == DeathReason::Rejected {
        return false;
    }
    let Some(AMQPValue::FieldArray(deaths)) = message
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-death"))
    else {
        return false;
    };
    for d in deaths.as_slice() {
        let AMQPValue::FieldTable(t) = d else {
            continue;
        };
        if table_str(t, "reason").as_deref() == Some("rejected") {
            return false;
        }
        if table_str(t, "queue").as_deref() == Some(queue) {
            return true;
        }
    }
    false
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn table_str(t: &FieldTable, key: &str) -> Option<String> {
    match t.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// String values of a header holding an array of strings (CC, BCC).
pub fn header_strings(headers: &FieldTable, key: &str) -> Vec<String> {
    match headers.inner().get(key) {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .filter_map(|v| match v {
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn without_expiration(props: crate::protocol::AMQPProperties) -> crate::protocol::AMQPProperties {
    // AMQPProperties has no setter to clear a field: rebuild without it.
    let mut p = crate::protocol::AMQPProperties::default();
    if let Some(v) = props.content_type() {
        p = p.with_content_type(v.clone());
    }
    if let Some(v) = props.content_encoding() {
        p = p.with_content_encoding(v.clone());
    }
    if let Some(v) = props.headers() {
        p = p.with_headers(v.clone());
    }
    if let Some(v) = props.delivery_mode() {
        p = p.with_delivery_mode(*v);
    }
    if let Some(v) = props.priority() {
        p = p.with_priority(*v);
    }
    if let Some(v) = props.correlation_id() {
        p = p.with_correlation_id(v.clone());
    }
    if let Some(v) = props.reply_to() {
        p = p.with_reply_to(v.clone());
    }
    if let Some(v) = props.message_id() {
        p = p.with_message_id(v.clone());
    }
    if let Some(v) = props.timestamp() {
        p = p.with_timestamp(*v);
    }
    if let Some(v) = props.kind() {
        p = p.with_type(v.clone());
    }
    if let Some(v) = props.user_id() {
        p = p.with_user_id(v.clone());
    }
    if let Some(v) = props.app_id() {
        p = p.with_app_id(v.clone());
    }
    if let Some(v) = props.cluster_id() {
        p = p.with_cluster_id(v.clone());
    }
    p
}
