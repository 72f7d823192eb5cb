//! Durable definitions: durable exchanges, durable (non-exclusive) queues with their
//! arguments, bindings between durable objects, vhosts and users, saved as a RabbitMQ-style
//! definitions JSON document in the data directory after every change, and restored at start.
//! The DTOs below mirror RabbitMQ's definitions format; domain types stay free of serde.

use std::sync::{Arc, OnceLock, Weak};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::exchange::Destination;
use crate::node::Node;
use crate::protocol::{AMQPValue, FieldArray, FieldTable, LongString};
use crate::store::Store;

/// Saves the node's definitions whenever a durable object changes.
#[derive(Debug)]
pub struct Durability {
    pub store: Arc<Store>,
    node: OnceLock<Weak<Node>>,
}

impl Durability {
    /// A saver for `store`; [`Durability::attach`] it to its node.
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            node: OnceLock::new(),
        })
    }

    /// Binds the saver to the node whose definitions it saves.
    pub fn attach(&self, node: Weak<Node>) {
        let _ = self.node.set(node);
    }

    /// Writes the current definitions (atomically, fsynced). A failure is logged: the
    /// change stays in effect in memory.
    pub fn save(&self) {
        let Some(node) = self.node.get().and_then(Weak::upgrade) else {
            return;
        };
        let doc = export(&node);
        match serde_json::to_vec_pretty(&doc) {
            Ok(json) => {
                if let Err(e) = self.store.save_definitions(&json) {
                    tracing::error!(error = %e, "definitions not saved");
                }
            }
            Err(e) => tracing::error!(error = %e, "definitions not serialised"),
        }
    }
}

/// The definitions document (RabbitMQ's format, the parts we use).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Definitions {
    #[serde(default)]
    pub rabbit_version: String,
    #[serde(default)]
    pub vhosts: Vec<VhostDef>,
    #[serde(default)]
    pub queues: Vec<QueueDef>,
    #[serde(default)]
    pub exchanges: Vec<ExchangeDef>,
    #[serde(default)]
    pub bindings: Vec<BindingDef>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VhostDef {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct QueueDef {
    pub name: String,
    pub vhost: String,
    pub durable: bool,
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
    /// The same arguments with their AMQP types (RabbitMQ's JSON loses them; a restart must
    /// not turn a `signedint` into a `long`). Preferred when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_arguments: Option<FieldTable>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExchangeDef {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
    /// The same arguments with their AMQP types (RabbitMQ's JSON loses them; a restart must
    /// not turn a `signedint` into a `long`). Preferred when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_arguments: Option<FieldTable>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BindingDef {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    pub destination_type: String,
    pub routing_key: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
    /// The same arguments with their AMQP types (RabbitMQ's JSON loses them; a restart must
    /// not turn a `signedint` into a `long`). Preferred when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_arguments: Option<FieldTable>,
}

/// A snapshot of the node's durable definitions.
pub fn export(node: &Node) -> Definitions {
    let mut d = Definitions {
        rabbit_version: "3.10.0".into(),
        ..Definitions::default()
    };
    for vhost in node.vhosts() {
        d.vhosts.push(VhostDef {
            name: vhost.name.clone(),
        });
        for q in vhost.queues() {
            if q.settings.durable && q.settings.exclusive_owner.is_none() {
                d.queues.push(QueueDef {
                    name: q.name.clone(),
                    vhost: vhost.name.clone(),
                    durable: true,
                    auto_delete: q.settings.auto_delete,
                    arguments: table_to_json(&q.settings.arguments),
                    typed_arguments: Some(q.settings.arguments.clone()),
                });
            }
        }
        for ex in vhost.exchanges() {
            if !ex.durable {
                continue;
            }
            if !ex.name.is_empty() && !ex.name.starts_with("amq.") {
                d.exchanges.push(ExchangeDef {
                    name: ex.name.clone(),
                    vhost: vhost.name.clone(),
                    kind: ex.kind.as_str().into(),
                    durable: true,
                    auto_delete: ex.auto_delete,
                    internal: ex.internal,
                    arguments: table_to_json(&ex.arguments),
                    typed_arguments: Some(ex.arguments.clone()),
                });
            }
            for b in ex.bindings() {
                let (destination, destination_type) = match &b.destination {
                    Destination::Queue(q)
                        if q.settings.durable && q.settings.exclusive_owner.is_none() =>
                    {
                        (q.name.clone(), "queue")
                    }
                    Destination::Exchange(e) if e.durable => (e.name.clone(), "exchange"),
                    _ => continue,
                };
                d.bindings.push(BindingDef {
                    source: ex.name.clone(),
                    vhost: vhost.name.clone(),
                    destination,
                    destination_type: destination_type.into(),
                    routing_key: b.routing_key.clone(),
                    arguments: table_to_json(&b.arguments),
                    typed_arguments: Some(b.arguments.clone()),
                });
            }
        }
    }
    d.queues
        .sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    d.exchanges
        .sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    d
}

/// The arguments of a definition: typed when saved by us, from plain JSON otherwise.
pub fn arguments_of(typed: &Option<FieldTable>, plain: &Map<String, Value>) -> FieldTable {
    typed.clone().unwrap_or_else(|| json_to_table(plain))
}

/// Field table → RabbitMQ's plain JSON (numbers, strings, booleans, arrays, objects).
pub fn table_to_json(t: &FieldTable) -> Map<String, Value> {
    t.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), value_to_json(v)))
        .collect()
}

fn value_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::LongString(s) => {
            Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::Float(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
        }
        AMQPValue::Double(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        AMQPValue::FieldTable(t) => Value::Object(table_to_json(t)),
        AMQPValue::Void => Value::Null,
        other => match crate::vhost::number(other).and_then(|n| i64::try_from(n).ok()) {
            Some(n) => Value::from(n),
            None => Value::Null,
        },
    }
}

/// RabbitMQ's JSON → field table (integers become `long`, as RabbitMQ's import does).
pub fn json_to_table(m: &Map<String, Value>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in m {
        t.insert(k.as_str().into(), json_to_value(v));
    }
    t
}

fn json_to_value(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter().map(json_to_value).collect::<Vec<_>>(),
        )),
        Value::Object(o) => AMQPValue::FieldTable(json_to_table(o)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip_through_json() {
        let mut t = FieldTable::default();
        t.insert("x-message-ttl".into(), AMQPValue::LongInt(500));
        t.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("dlx".into()),
        );
        t.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        let back = json_to_table(&table_to_json(&t));
        assert_eq!(
            back.inner().get("x-message-ttl"),
            Some(&AMQPValue::LongLongInt(500))
        );
        assert_eq!(
            back.inner().get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("dlx".into()))
        );
        assert_eq!(
            back.inner().get("x-single-active-consumer"),
            Some(&AMQPValue::Boolean(true))
        );
    }
}
