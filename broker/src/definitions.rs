//! Durable definitions: durable exchanges, durable (non-exclusive) queues with their
//! arguments, bindings between durable objects, vhosts and users, saved as a RabbitMQ-style
//! definitions JSON document in the data directory after every change, and restored at start.
//! The DTOs below mirror RabbitMQ's definitions format; domain types stay free of serde.
//!
//! Also the import of such a document ([`import`], [`import_with`]): the management API's
//! `POST /api/definitions` and `--load-definitions` at start. An import is checked as a whole
//! before anything is applied, so a document that is invalid anywhere changes nothing.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::AmqpException;
use crate::exchange::Destination;
use crate::node::{Node, Permission, UserSpec, VhostSpec};
use crate::password::PasswordHash;
use crate::protocol::{AMQPValue, FieldArray, FieldTable, LongString};
use crate::store::{Store, StoreError};
use crate::timer::Timers;
use crate::vhost::{ExchangeDeclare, QueueDeclare, Vhost};

/// Saves the node's definitions whenever a durable object changes.
#[derive(Debug)]
pub struct Durability {
    pub store: Arc<Store>,
    node: OnceLock<Weak<Node>>,
    /// Non-zero while saves are suspended: while [`Node::restore`] rebuilds the node (a save
    /// then would write a document missing what is not restored yet, and a crash would lose
    /// those definitions), and during a [`Durability::batch`] (one save for many changes).
    suspended: AtomicUsize,
}

impl Durability {
    /// A saver for `store`; [`Durability::attach`] it to its node.
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            node: OnceLock::new(),
            suspended: AtomicUsize::new(0),
        })
    }

    /// Binds the saver to the node whose definitions it saves.
    pub fn attach(&self, node: Weak<Node>) {
        let _ = self.node.set(node);
    }

    /// Writes the current definitions (atomically, fsynced). A failure is logged: the
    /// change stays in effect in memory.
    pub fn save(&self) {
        if self.suspended.load(Ordering::Acquire) > 0 {
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
        if restoring {
            self.suspended.fetch_add(1, Ordering::AcqRel);
        } else {
            self.suspended.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Runs `f` with saves suspended, then saves once: deleting a vhost with a thousand
    /// durable queues, or importing a document, writes the definitions once, not per object.
    /// A change another task makes meanwhile is in that final save too.
    pub fn batch<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Resume<'a>(&'a Durability);
        impl Drop for Resume<'_> {
            fn drop(&mut self) {
                self.0.set_restoring(false);
                self.0.save();
            }
        }
        self.set_restoring(true);
        let _resume = Resume(self);
        f()
    }
}

/// The definitions document (RabbitMQ's format, the parts we use). Keys in RabbitMQ's order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Definitions {
    #[serde(default)]
    pub rabbit_version: String,
    /// `rabbitmq_version`, `product_name`, `product_version`: what RabbitMQ ≥ 3.8 writes
    /// beside `rabbit_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    /// `None` in files written before users were saved (the default user is then created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserDef>>,
    #[serde(default)]
    pub vhosts: Vec<VhostDef>,
    #[serde(default)]
    pub permissions: Vec<PermissionDef>,
    /// Topic permissions, parameters and policies: the broker has none, but tools expect the
    /// keys (written empty; an import ignores them with a warning).
    #[serde(default)]
    pub topic_permissions: Vec<Value>,
    #[serde(default)]
    pub parameters: Vec<Value>,
    #[serde(default)]
    pub global_parameters: Vec<Value>,
    #[serde(default)]
    pub policies: Vec<Value>,
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

/// A vhost. RabbitMQ ≥ 3.8 keeps its description and tags under `metadata`; older files (and
/// RabbitMQ's import) also take them at the top level, which wins.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VhostDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<VhostMetadataDef>,
    /// Absent: unchanged by an import (and off for a new vhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<bool>,
}

/// A vhost's `metadata`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VhostMetadataDef {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
}

impl VhostDef {
    /// The vhost's settings: top-level fields first, then `metadata`, as RabbitMQ reads them.
    pub fn spec(&self) -> VhostSpec {
        let meta = self.metadata.as_ref();
        VhostSpec {
            description: self
                .description
                .clone()
                .or_else(|| meta.and_then(|m| m.description.clone()))
                .unwrap_or_default(),
            tags: self
                .tags
                .clone()
                .or_else(|| meta.and_then(|m| m.tags.clone()))
                .map(Tags::into_vec)
                .unwrap_or_default(),
            default_queue_type: meta.and_then(|m| m.default_queue_type.clone()),
            tracing: self.tracing,
        }
    }
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

/// Which objects an export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    /// The saved file: durable exchanges, durable non-exclusive queues, bindings between
    /// them; arguments also with their AMQP types.
    Durable,
    /// `GET /api/definitions`, as RabbitMQ exports: also transient exchanges and queues
    /// (exclusive queues excluded) and their bindings; plain JSON arguments only.
    Api,
}

/// RabbitMQ's version of the definitions format we write.
const RABBIT_VERSION: &str = "3.10.0";

/// A snapshot of the node's durable definitions (what is saved).
pub fn export(node: &Node) -> Definitions {
    export_with(node, Export::Durable)
}

/// A snapshot of the node's definitions.
pub fn export_with(node: &Node, what: Export) -> Definitions {
    let mut d = Definitions {
        rabbit_version: RABBIT_VERSION.into(),
        rabbitmq_version: Some(RABBIT_VERSION.into()),
        product_name: Some("RabbitMQ".into()),
        product_version: Some(RABBIT_VERSION.into()),
        ..Definitions::default()
    };
    let typed = |t: &FieldTable| (what == Export::Durable).then(|| t.clone());
    let exported_queue = |q: &crate::queue::Queue| {
        q.settings.exclusive_owner.is_none() && (what == Export::Api || q.settings.durable)
    };
    let exported_exchange = |e: &crate::exchange::Exchange| what == Export::Api || e.durable;
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
        let meta = node.vhost_metadata(&vhost.name).unwrap_or_default();
        d.vhosts.push(VhostDef {
            name: vhost.name.clone(),
            metadata: Some(VhostMetadataDef {
                description: Some(meta.description),
                tags: Some(Tags::List(meta.tags)),
                default_queue_type: meta.default_queue_type,
            }),
            tracing: meta.tracing.then_some(true),
            ..VhostDef::default()
        });
        for q in vhost.queues() {
            if exported_queue(&q) {
                d.queues.push(QueueDef {
                    name: q.name.clone(),
                    vhost: vhost.name.clone(),
                    durable: q.settings.durable,
                    auto_delete: q.settings.auto_delete,
                    arguments: table_to_json(&q.settings.arguments),
                    typed_arguments: typed(&q.settings.arguments),
                });
            }
        }
        for ex in vhost.exchanges() {
            if !exported_exchange(&ex) {
                continue;
            }
            if !ex.name.is_empty() && !ex.name.starts_with("amq.") {
                d.exchanges.push(ExchangeDef {
                    name: ex.name.clone(),
                    vhost: vhost.name.clone(),
                    kind: ex.kind.as_str().into(),
                    durable: ex.durable,
                    auto_delete: ex.auto_delete,
                    internal: ex.internal,
                    arguments: table_to_json(&ex.arguments),
                    typed_arguments: typed(&ex.arguments),
                });
            }
            for b in ex.bindings() {
                let (destination, destination_type) = match &b.destination {
                    Destination::Queue(q) if exported_queue(q) => (q.name.clone(), "queue"),
                    Destination::Exchange(e) if exported_exchange(e) => {
                        (e.name.clone(), "exchange")
                    }
                    _ => continue,
                };
                d.bindings.push(BindingDef {
                    source: ex.name.clone(),
                    vhost: vhost.name.clone(),
                    destination,
                    destination_type: destination_type.into(),
                    routing_key: b.routing_key.clone(),
                    arguments: table_to_json(&b.arguments),
                    typed_arguments: typed(&b.arguments),
                });
            }
        }
    }
    d.vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    d.queues
        .sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    d.exchanges
        .sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    d.bindings.sort_by(|a, b| {
        (&a.vhost, &a.source, &a.destination, &a.routing_key).cmp(&(
            &b.vhost,
            &b.source,
            &b.destination,
            &b.routing_key,
        ))
    });
    d
}

/// How an import applies.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Import only the exchanges, queues and bindings, into this existing vhost, whatever
    /// vhost the objects name (`POST /api/definitions/{vhost}`). `None`: the whole document.
    pub vhost: Option<String>,
    /// Who imports: granted `.* .* .*` on each vhost the document creates, as RabbitMQ grants
    /// the acting user. `None` at start (RabbitMQ's internal user gets nothing).
    pub acting_user: Option<String>,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The document is invalid (the text says where and why); nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The document was valid but applying it failed part-way (a queue log could not be
    /// created); the objects before that one were created.
    #[error("{0}")]
    Apply(String),
    /// Restoring the saved definitions before the import failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Imports a definitions document into the whole node (users, vhosts, permissions,
/// exchanges, queues, bindings): what `POST /api/definitions` and `--load-definitions` do.
/// See [`import_with`].
pub fn import(node: &Node, doc: &Value) -> Result<(), ImportError> {
    import_with(node, doc, &ImportOptions::default())
}

/// Imports a definitions document with RabbitMQ's merge semantics: users, vhosts and
/// permissions are created or updated (a user's password and tags, a vhost's description
/// and tags); exchanges and queues that exist are left untouched, new ones are declared;
/// bindings are added. Exchanges and queues named `amq.*` (and the default exchange) are
/// skipped, as RabbitMQ skips them. Policies, parameters and topic permissions are ignored
/// with a warning: the broker has none.
///
/// The whole document is checked before anything is applied: every object must parse, every
/// vhost, user, exchange and queue referred to must exist or be defined by the document,
/// password hashes must decode, permission patterns must be regexes, and exchanges and queues
/// are declared first into detached scratch vhosts with the very code `exchange.declare` and
/// `queue.declare` use (types, `x-*` arguments, quorum rules, equivalence between duplicates).
/// An invalid document is [`ImportError::Invalid`] and changes nothing. (RabbitMQ applies
/// a document in order and stops at the first error, leaving what came before.)
///
/// The definitions are saved once, at the end.
pub fn import_with(node: &Node, doc: &Value, options: &ImportOptions) -> Result<(), ImportError> {
    let plan = Plan::check(node, doc, options).map_err(ImportError::Invalid)?;
    node.batch_saves(|| plan.apply(node, options))
}

/// A checked document, ready to apply.
#[derive(Debug, Default)]
struct Plan {
    users: Vec<(String, UserSpec)>,
    vhosts: Vec<(String, VhostSpec)>,
    permissions: Vec<(String, String, Permission)>,
    exchanges: Vec<(String, ExchangeDeclare)>,
    queues: Vec<(String, QueueDeclare)>,
    bindings: Vec<PlannedBinding>,
}

#[derive(Debug)]
struct PlannedBinding {
    vhost: String,
    source: String,
    destination: String,
    to_exchange: bool,
    routing_key: String,
    arguments: FieldTable,
}

/// A user as an import takes it: a `password_hash` (RabbitMQ's exports) or a plain
/// `password`.
#[derive(Debug, Deserialize)]
struct ImportUser {
    name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    hashing_algorithm: String,
    #[serde(default)]
    tags: Option<Tags>,
    #[serde(default)]
    limits: Option<Map<String, Value>>,
}

impl Plan {
    fn check(node: &Node, doc: &Value, options: &ImportOptions) -> Result<Self, String> {
        let Value::Object(doc) = doc else {
            return Err("a definitions document must be a JSON object".into());
        };
        for key in [
            "policies",
            "parameters",
            "global_parameters",
            "topic_permissions",
        ] {
            let n = section::<Value>(doc, key, None)?.len();
            if n > 0 && !(key == "global_parameters" && only_cluster_id(doc)) {
                tracing::warn!(
                    count = n,
                    what = key,
                    "definitions import: not supported, ignored"
                );
            }
        }
        let mut plan = Plan::default();
        let vhost_override = options.vhost.as_deref();
        let mut new_vhosts: HashSet<String> = HashSet::new();
        if vhost_override.is_none() {
            let mut new_users: HashSet<String> = HashSet::new();
            for (i, u) in section::<ImportUser>(doc, "users", None)?
                .into_iter()
                .enumerate()
            {
                let spec = user_spec(&u).map_err(|e| format!("users[{i}] ('{}'): {e}", u.name))?;
                new_users.insert(u.name.clone());
                plan.users.push((u.name, spec));
            }
            for (i, v) in section::<VhostDef>(doc, "vhosts", None)?
                .into_iter()
                .enumerate()
            {
                if v.name.is_empty() {
                    return Err(format!("vhosts[{i}]: the name must not be empty"));
                }
                new_vhosts.insert(v.name.clone());
                plan.vhosts.push((v.name.clone(), v.spec()));
            }
            let vhost_known = |name: &str| new_vhosts.contains(name) || node.vhost(name).is_some();
            for (i, p) in section::<PermissionDef>(doc, "permissions", None)?
                .into_iter()
                .enumerate()
            {
                let at = format!("permissions[{i}] ('{}' in '{}')", p.user, p.vhost);
                if !new_users.contains(&p.user) && node.user(&p.user).is_none() {
                    return Err(format!("{at}: no_such_user '{}'", p.user));
                }
                if !vhost_known(&p.vhost) {
                    return Err(format!("{at}: no_such_vhost '{}'", p.vhost));
                }
                for pattern in [&p.configure, &p.write, &p.read] {
                    check_pattern(pattern).map_err(|e| format!("{at}: {e}"))?;
                }
                plan.permissions.push((
                    p.user,
                    p.vhost,
                    Permission {
                        configure: p.configure,
                        write: p.write,
                        read: p.read,
                    },
                ));
            }
        }
        // Exchanges and queues are declared into scratch vhosts first: same checks, same
        // texts as over AMQP, nothing shared with the node.
        let mut scratch: BTreeMap<String, Arc<Vhost>> = BTreeMap::new();
        let mut scratch_of = |name: &str| -> Result<Arc<Vhost>, String> {
            if !new_vhosts.contains(name) && node.vhost(name).is_none() {
                return Err(format!("no_such_vhost '{name}'"));
            }
            Ok(Arc::clone(scratch.entry(name.to_owned()).or_insert_with(
                || Vhost::new(name, Timers::disconnected(), None),
            )))
        };
        for (i, e) in section::<ExchangeDef>(doc, "exchanges", vhost_override)?
            .into_iter()
            .enumerate()
        {
            let at = format!("exchanges[{i}] ('{}' in '{}')", e.name, e.vhost);
            let sandbox = scratch_of(&e.vhost).map_err(|err| format!("{at}: {err}"))?;
            if e.name.is_empty() || e.name.starts_with("amq.") {
                tracing::warn!(exchange = %e.name, vhost = %e.vhost, "definitions import: reserved exchange name skipped");
                continue;
            }
            if node
                .vhost(&e.vhost)
                .and_then(|v| v.exchange(&e.name))
                .is_some()
            {
                // Existing exchanges are left untouched, whatever the document says.
                continue;
            }
            let declare = ExchangeDeclare {
                name: e.name.clone(),
                kind: e.kind.clone(),
                durable: e.durable,
                auto_delete: e.auto_delete,
                internal: e.internal,
                arguments: arguments_of(&e.typed_arguments, &e.arguments),
            };
            sandbox
                .declare_exchange(declare.clone())
                .map_err(|err| format!("{at}: {}", amqp_text(err)))?;
            plan.exchanges.push((e.vhost, declare));
        }
        for (i, q) in section::<QueueDef>(doc, "queues", vhost_override)?
            .into_iter()
            .enumerate()
        {
            let at = format!("queues[{i}] ('{}' in '{}')", q.name, q.vhost);
            let sandbox = scratch_of(&q.vhost).map_err(|err| format!("{at}: {err}"))?;
            if q.name.starts_with("amq.") {
                tracing::warn!(queue = %q.name, vhost = %q.vhost, "definitions import: reserved queue name skipped");
                continue;
            }
            if q.name.is_empty() {
                return Err(format!("{at}: the name must not be empty"));
            }
            if node
                .vhost(&q.vhost)
                .and_then(|v| v.queue(&q.name))
                .is_some()
            {
                continue;
            }
            let declare = QueueDeclare {
                name: q.name.clone(),
                durable: q.durable,
                exclusive: false,
                auto_delete: q.auto_delete,
                arguments: arguments_of(&q.typed_arguments, &q.arguments),
            };
            sandbox
                .declare_queue(declare.clone(), 0)
                .map_err(|err| format!("{at}: {}", amqp_text(err)))?;
            plan.queues.push((q.vhost, declare));
        }
        for (i, b) in section::<BindingDef>(doc, "bindings", vhost_override)?
            .into_iter()
            .enumerate()
        {
            let at = format!(
                "bindings[{i}] ('{}' -> '{}' in '{}')",
                b.source, b.destination, b.vhost
            );
            let sandbox = scratch_of(&b.vhost).map_err(|err| format!("{at}: {err}"))?;
            let live = node.vhost(&b.vhost);
            let exchange_exists = |name: &str| {
                sandbox.exchange(name).is_some()
                    || live.as_ref().is_some_and(|v| v.exchange(name).is_some())
            };
            if b.source.is_empty() {
                return Err(format!("{at}: the default exchange cannot be bound"));
            }
            if !exchange_exists(&b.source) {
                return Err(format!(
                    "{at}: no exchange '{}' in vhost '{}'",
                    b.source, b.vhost
                ));
            }
            let to_exchange = match b.destination_type.as_str() {
                "queue" => false,
                "exchange" => true,
                other => {
                    return Err(format!(
                        "{at}: destination_type must be 'queue' or 'exchange', not '{other}'"
                    ));
                }
            };
            let destination_exists = if to_exchange {
                !b.destination.is_empty() && exchange_exists(&b.destination)
            } else {
                sandbox.queue(&b.destination).is_some()
                    || live
                        .as_ref()
                        .is_some_and(|v| v.queue(&b.destination).is_some())
            };
            if !destination_exists {
                return Err(format!(
                    "{at}: no {} '{}' in vhost '{}'",
                    b.destination_type, b.destination, b.vhost
                ));
            }
            plan.bindings.push(PlannedBinding {
                arguments: arguments_of(&b.typed_arguments, &b.arguments),
                vhost: b.vhost,
                source: b.source,
                destination: b.destination,
                to_exchange,
                routing_key: b.routing_key,
            });
        }
        Ok(plan)
    }

    /// Applies a checked plan. Only a failure of the store (or an object deleted meanwhile)
    /// can stop it part-way.
    fn apply(self, node: &Node, options: &ImportOptions) -> Result<(), ImportError> {
        for (name, spec) in self.users {
            node.put_user(&name, spec);
        }
        for (name, spec) in self.vhosts {
            node.put_vhost(&name, spec, options.acting_user.as_deref());
        }
        for (user, vhost, permission) in self.permissions {
            node.set_permission(&user, &vhost, permission)
                .map_err(|e| {
                    ImportError::Apply(format!("permissions of '{user}' in '{vhost}': {e}"))
                })?;
        }
        let live = |name: &str| {
            node.vhost(name).ok_or_else(|| {
                ImportError::Apply(format!("vhost '{name}' was deleted during the import"))
            })
        };
        for (vhost, declare) in self.exchanges {
            let v = live(&vhost)?;
            let name = declare.name.clone();
            // Declared by a client since the check: left untouched, as an existing one is.
            if v.exchange(&name).is_none()
                && let Err(e) = v.declare_exchange(declare)
                && v.exchange(&name).is_none()
            {
                return Err(ImportError::Apply(format!(
                    "exchange '{name}' in vhost '{vhost}': {}",
                    amqp_text(e)
                )));
            }
        }
        for (vhost, declare) in self.queues {
            let v = live(&vhost)?;
            let name = declare.name.clone();
            if v.queue(&name).is_none()
                && let Err(e) = v.declare_queue(declare, 0)
                && v.queue(&name).is_none()
            {
                return Err(ImportError::Apply(format!(
                    "queue '{name}' in vhost '{vhost}': {}",
                    amqp_text(e)
                )));
            }
        }
        for b in self.bindings {
            let v = live(&b.vhost)?;
            let missing = || {
                ImportError::Apply(format!(
                    "binding '{}' -> '{}' in vhost '{}': deleted during the import",
                    b.source, b.destination, b.vhost
                ))
            };
            let source = v.exchange(&b.source).ok_or_else(missing)?;
            let destination = if b.to_exchange {
                v.exchange(&b.destination).map(Destination::Exchange)
            } else {
                v.queue(&b.destination).map(Destination::Queue)
            }
            .ok_or_else(missing)?;
            v.bind(&source, destination, &b.routing_key, b.arguments.clone());
        }
        Ok(())
    }
}

/// The objects of one section (`queues`, …), each parsed on its own so an error names it.
/// With `vhost`, each object's `vhost` is that one (a per-vhost import).
fn section<T: DeserializeOwned>(
    doc: &Map<String, Value>,
    key: &str,
    vhost: Option<&str>,
) -> Result<Vec<T>, String> {
    let items = match doc.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("'{key}' must be a list")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut item = item.clone();
            match (&mut item, vhost) {
                (Value::Object(m), Some(v)) => {
                    m.insert("vhost".into(), Value::String(v.to_owned()));
                }
                (Value::Object(_), None) => {}
                _ => return Err(format!("{key}[{i}] must be an object")),
            }
            serde_json::from_value(item).map_err(|e| format!("{key}[{i}]: {e}"))
        })
        .collect()
}

/// RabbitMQ's exports carry its cluster id as the only global parameter: not worth a warning.
fn only_cluster_id(doc: &Map<String, Value>) -> bool {
    doc.get("global_parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| {
            ps.iter()
                .all(|p| p.get("name").and_then(Value::as_str) == Some("internal_cluster_id"))
        })
}

/// A user's stored form, with RabbitMQ's rules for `PUT /api/users/{name}` and imports:
/// `tags` is required; a `password` is hashed, a `password_hash` (with its
/// `hashing_algorithm`) is kept as given, both is an error, and neither leaves the user
/// without a password (it cannot log in with one). `limits` may hold `max-connections` and
/// `max-channels` (integers).
pub fn user_spec_from(
    password: Option<&str>,
    password_hash: Option<&str>,
    hashing_algorithm: &str,
    tags: Option<Tags>,
    limits: Option<Map<String, Value>>,
) -> Result<UserSpec, String> {
    let tags = tags.ok_or("tags_not_present")?.into_vec();
    let password_hash = match (password, password_hash) {
        (Some(_), Some(_)) => return Err("both_password_and_password_hash_are_provided".into()),
        (Some(p), None) => PasswordHash::new(p),
        (None, Some(h)) => {
            PasswordHash::from_definitions(h, hashing_algorithm).map_err(|e| e.to_string())?
        }
        // An empty hash: no password matches it.
        (None, None) => PasswordHash::from_definitions("", "").map_err(|e| e.to_string())?,
    };
    if let Some(limits) = &limits {
        for (k, v) in limits {
            match k.as_str() {
                "max-connections" | "max-channels" if v.is_i64() => {}
                "max-connections" | "max-channels" => {
                    return Err(format!("user limit '{k}' must be an integer"));
                }
                other => return Err(format!("unknown user limit '{other}'")),
            }
        }
    }
    Ok(UserSpec {
        password_hash,
        tags,
        limits,
    })
}

fn user_spec(u: &ImportUser) -> Result<UserSpec, String> {
    user_spec_from(
        u.password.as_deref(),
        u.password_hash.as_deref(),
        &u.hashing_algorithm,
        u.tags.clone(),
        u.limits.clone(),
    )
}

/// A permission pattern must be a regular expression (RabbitMQ: `invalid_regexp`).
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map(|_| ())
        .map_err(|e| format!("invalid_regexp '{pattern}': {e}"))
}

/// The reply text of an AMQP error (`PRECONDITION_FAILED - …`).
fn amqp_text(e: impl Into<AmqpException>) -> String {
    match e.into() {
        AmqpException::Channel(c) => c.text,
        AmqpException::Connection(c) => c.text,
    }
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
    use serde_json::json;

    use crate::config::Config;

    /// A node without a store, with the default user and vhost.
    fn node() -> Arc<Node> {
        let node = Node::new(Config::default(), Timers::disconnected(), None);
        node.restore().expect("restore");
        node
    }

    /// `curl -u guest:guest http://127.0.0.1:15672/api/definitions` of RabbitMQ 3.10.8,
    /// filtered to a few objects (user `probe`'s password is `S3cret pässwörd!`).
    fn rabbitmq_export() -> Value {
        json!({
            "rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8",
            "product_name": "RabbitMQ", "product_version": "3.10.8",
            "users": [{"name": "probe", "password_hash": "7rkL9lhq1mWYuOHvj0BoNtaNX//3xCV43fc3+K5L7jFzkl8h",
                       "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["management"], "limits": {}}],
            "vhosts": [{"name": "imported"}],
            "permissions": [{"user": "probe", "vhost": "imported", "configure": ".*", "write": ".*", "read": ".*"}],
            "topic_permissions": [], "parameters": [], "policies": [],
            "global_parameters": [{"name": "internal_cluster_id", "value": "rabbitmq-cluster-id-x"}],
            "queues": [{"name": "orders", "vhost": "imported", "durable": true, "auto_delete": false,
                        "arguments": {"x-queue-type": "classic", "x-message-ttl": 60000}}],
            "exchanges": [{"name": "events", "vhost": "imported", "type": "topic", "durable": true,
                           "auto_delete": false, "internal": false, "arguments": {}}],
            "bindings": [{"source": "events", "vhost": "imported", "destination": "orders",
                          "destination_type": "queue", "routing_key": "order.*", "arguments": {}},
                         {"source": "amq.fanout", "vhost": "imported", "destination": "events",
                          "destination_type": "exchange", "routing_key": "", "arguments": {}}]
        })
    }

    #[test]
    fn a_rabbitmq_export_imports_and_its_users_log_in() {
        let node = node();
        import(&node, &rabbitmq_export()).expect("valid");
        let v = node.vhost("imported").expect("vhost");
        let q = v.queue("orders").expect("queue");
        assert_eq!(q.settings.args.message_ttl, Some(60_000));
        let events = v.exchange("events").expect("exchange");
        assert_eq!(events.kind.as_str(), "topic");
        assert_eq!(events.bindings().len(), 1);
        assert_eq!(
            v.exchange("amq.fanout")
                .expect("amq.fanout")
                .bindings()
                .len(),
            1
        );
        assert!(node.authenticate("probe", "S3cret pässwörd!").is_some());
        assert!(node.authenticate_vhost("probe", "imported"));
        assert!(!node.authenticate_vhost("probe", "/"));
        // No acting user at start: nobody else got permissions on the new vhost.
        assert!(!node.authenticate_vhost("guest", "imported"));
        // Merging again changes nothing and fails nothing.
        import(&node, &rabbitmq_export()).expect("idempotent");
        assert_eq!(events.bindings().len(), 1);
    }

    #[test]
    fn an_invalid_document_changes_nothing() {
        let node = node();
        let cases = [
            (
                "exchanges",
                json!([{"name": "x", "vhost": "imported", "type": "bogus", "durable": true, "auto_delete": false}]),
            ),
            (
                "bindings",
                json!([{"source": "events", "vhost": "imported", "destination": "missing",
                                 "destination_type": "queue", "routing_key": "", "arguments": {}}]),
            ),
            (
                "bindings",
                json!([{"source": "nope", "vhost": "imported", "destination": "orders",
                                 "destination_type": "queue", "routing_key": "", "arguments": {}}]),
            ),
            (
                "queues",
                json!([{"name": "q", "vhost": "imported", "durable": false, "auto_delete": false,
                               "arguments": {"x-queue-type": "quorum"}}]),
            ),
            (
                "queues",
                json!([{"name": "q", "vhost": "elsewhere", "durable": true, "auto_delete": false}]),
            ),
            (
                "queues",
                json!([{"name": "q", "vhost": "imported", "durable": true}]),
            ),
            (
                "users",
                json!([{"name": "u", "password_hash": "!!!", "tags": ""}]),
            ),
            ("users", json!([{"name": "u", "password": "p"}])),
            (
                "users",
                json!([{"name": "u", "password": "p", "password_hash": "", "tags": ""}]),
            ),
            (
                "permissions",
                json!([{"user": "nobody", "vhost": "imported", "configure": "", "write": "", "read": ""}]),
            ),
            (
                "permissions",
                json!([{"user": "probe", "vhost": "imported", "configure": "(", "write": "", "read": ""}]),
            ),
            ("queues", json!({"not": "a list"})),
        ];
        for (key, bad) in cases {
            let mut doc = rabbitmq_export();
            doc[key] = match (key, bad) {
                // Appended, so every valid object comes before the invalid one.
                (_, Value::Array(extra)) => {
                    let mut all = doc[key].as_array().cloned().unwrap_or_default();
                    all.extend(extra);
                    Value::Array(all)
                }
                (_, other) => other,
            };
            let err = import(&node, &doc).expect_err(key);
            assert!(matches!(err, ImportError::Invalid(_)), "{key}: {err}");
            assert!(node.vhost("imported").is_none(), "{key}: {err}");
            assert!(node.user("probe").is_none(), "{key}: {err}");
        }
        assert!(import(&node, &json!([])).is_err());
    }

    #[test]
    fn existing_objects_are_left_untouched_and_users_updated() {
        let node = node();
        import(&node, &rabbitmq_export()).expect("valid");
        let mut doc = rabbitmq_export();
        // Another type and arguments for existing objects: ignored, as RabbitMQ does.
        doc["exchanges"][0]["type"] = json!("fanout");
        doc["queues"][0]["arguments"] = json!({"x-message-ttl": 5});
        doc["users"][0] = json!({"name": "probe", "password": "new one", "tags": "monitoring"});
        import(&node, &doc).expect("valid");
        let v = node.vhost("imported").expect("vhost");
        assert_eq!(v.exchange("events").expect("x").kind.as_str(), "topic");
        assert_eq!(
            v.queue("orders").expect("q").settings.args.message_ttl,
            Some(60_000)
        );
        let probe = node
            .authenticate("probe", "new one")
            .expect("password replaced");
        assert_eq!(probe.tags, ["monitoring"]);
        assert!(
            probe.permissions.contains_key("imported"),
            "permissions kept"
        );
    }

    #[test]
    fn a_vhost_import_uses_the_vhost_of_the_path() {
        let node = node();
        let doc = json!({
            "queues": [{"name": "q", "durable": true, "auto_delete": false, "arguments": {}}],
            "exchanges": [{"name": "x", "vhost": "ignored", "type": "direct", "durable": true, "auto_delete": false}],
            "bindings": [{"source": "x", "destination": "q", "destination_type": "queue", "routing_key": "k", "arguments": {}}],
            "users": [{"name": "not-imported", "password": "p", "tags": ""}]
        });
        let options = ImportOptions {
            vhost: Some("/".into()),
            acting_user: None,
        };
        import_with(&node, &doc, &options).expect("valid");
        let v = node.vhost("/").expect("default vhost");
        assert!(v.queue("q").is_some());
        assert_eq!(v.exchange("x").expect("x").bindings().len(), 1);
        assert!(node.vhost("ignored").is_none());
        assert!(node.user("not-imported").is_none());
    }

    #[test]
    fn the_acting_user_gets_the_vhosts_it_creates() {
        let node = node();
        let options = ImportOptions {
            vhost: None,
            acting_user: Some("guest".into()),
        };
        import_with(
            &node,
            &json!({"vhosts": [{"name": "mine", "description": "d"}]}),
            &options,
        )
        .expect("valid");
        assert!(node.authenticate_vhost("guest", "mine"));
        assert_eq!(node.vhost_metadata("mine").expect("meta").description, "d");
    }

    #[test]
    fn load_definitions_on_a_new_node_creates_no_default_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), crate::store::StoreOptions::default()).expect("open");
        let node = Node::new(
            Config::default(),
            Timers::disconnected(),
            Some(Durability::new(Arc::clone(&store))),
        );
        node.restore_and_import(&rabbitmq_export()).expect("import");
        assert!(node.authenticate("guest", "guest").is_none());
        assert!(node.vhost("/").is_none());
        assert!(node.authenticate("probe", "S3cret pässwörd!").is_some());
        let saved = store.load_definitions().expect("load").expect("saved");
        let defs: Definitions = serde_json::from_slice(&saved).expect("json");
        assert_eq!(defs.users.map(|u| u.len()), Some(1));
        assert_eq!(defs.queues.len(), 1);
        drop(node);
        store.close().expect("close");
    }

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
