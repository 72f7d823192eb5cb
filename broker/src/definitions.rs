//! Durable definitions: durable exchanges, durable (non-exclusive) queues with their
//! arguments, bindings between durable objects, vhosts and users, saved as a RabbitMQ-style
//! definitions JSON document in the data directory after every change, and restored at start.
//! The DTOs below mirror RabbitMQ's definitions format; domain types stay free of serde.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::exchange::Destination;
use crate::node::Node;
use crate::protocol::{AMQPValue, FieldArray, FieldTable, LongString};
use crate::store::{Store, StoreError};

/// Saves the node's definitions whenever a durable object changes.
#[derive(Debug)]
pub struct Durability {
    pub store: Arc<Store>,
    node: OnceLock<Weak<Node>>,
    /// Set while [`Node::restore`] rebuilds the node: a save then would write a document
    /// missing what is not restored yet (and a crash would lose those definitions).
    restoring: AtomicBool,
}

impl Durability {
    /// A saver for `store`; [`Durability::attach`] it to its node.
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            node: OnceLock::new(),
            restoring: AtomicBool::new(false),
        })
    }

    /// Binds the saver to the node whose definitions it saves.
    pub fn attach(&self, node: Weak<Node>) {
        let _ = self.node.set(node);
    }

    /// Writes the current definitions (atomically, fsynced). A failure is logged: the
    /// change stays in effect in memory.
    pub fn save(&self) {
        if self.restoring.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.try_save() {
            tracing::error!(error = %e, "definitions not saved");
        }
    }

    /// Writes the current definitions (atomically, fsynced), or says why not.
    pub fn try_save(&self) -> Result<(), StoreError> {
        let Some(node) = self.node.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let doc = export(&node);
        match serde_json::to_vec_pretty(&doc) {
            Ok(json) => self.store.save_definitions(&json),
            Err(e) => {
                tracing::error!(error = %e, "definitions not serialised");
                Ok(())
            }
        }
    }

    /// Suspends [`Durability::save`] while the node is rebuilt from the saved definitions
    /// (`true`), or resumes it (`false`).
    pub fn set_restoring(&self, restoring: bool) {
        self.restoring.store(restoring, Ordering::Release);
    }
}

/// The definitions document (RabbitMQ's format, the parts we use).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Definitions {
    #[serde(default)]
    pub rabbit_version: String,
    /// `None` in files written before users were saved (the default user is then created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserDef>>,
    #[serde(default)]
    pub vhosts: Vec<VhostDef>,
    #[serde(default)]
    pub permissions: Vec<PermissionDef>,
    #[serde(default)]
    pub queues: Vec<QueueDef>,
    #[serde(default)]
    pub exchanges: Vec<ExchangeDef>,
    #[serde(default)]
    pub bindings: Vec<BindingDef>,
}

impl Definitions {
    /// No users, permissions or vhosts: the node is new and gets the default user and vhost
    /// (RabbitMQ's `rabbit_table:needs_default_data/0`).
    pub fn needs_default_data(&self) -> bool {
        self.users.as_ref().is_none_or(Vec::is_empty)
            && self.permissions.is_empty()
            && self.vhosts.is_empty()
    }
}

/// A user as RabbitMQ exports it.
#[derive(Debug, Serialize, Deserialize)]
pub struct UserDef {
    pub name: String,
    /// base64(salt ‖ hash(salt ‖ password)), see `password.rs`.
    pub password_hash: String,
    #[serde(default)]
    pub hashing_algorithm: String,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub limits: Map<String, Value>,
}

/// User tags: a list since RabbitMQ 3.9 (`["administrator"]`), a comma-separated string in
/// older exports (`"administrator,management"`). Written as a list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    List(Vec<String>),
    Joined(String),
}

impl Default for Tags {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl Tags {
    /// The tags, one per element.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::List(v) => v,
            Self::Joined(s) => s
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// A user's permissions in one vhost.
#[derive(Debug, Serialize, Deserialize)]
pub struct PermissionDef {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
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
    let mut users = Vec::new();
    for user in node.users() {
        for (vhost, p) in &user.permissions {
            d.permissions.push(PermissionDef {
                user: user.name.clone(),
                vhost: vhost.clone(),
                configure: p.configure.clone(),
                write: p.write.clone(),
                read: p.read.clone(),
            });
        }
        users.push(UserDef {
            password_hash: user.password_hash.to_base64(),
            hashing_algorithm: user.password_hash.algorithm().name().to_owned(),
            name: user.name,
            tags: Tags::List(user.tags),
            limits: user.limits,
        });
    }
    d.users = Some(users);
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
    d.vhosts.sort_by(|a, b| a.name.cmp(&b.name));
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
