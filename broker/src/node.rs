//! The node: everything a running broker shares across connections (configuration, vhosts,
//! users). Connections hold an `Arc<Node>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::config::Config;
use crate::definitions::{self, Durability};
use crate::exchange::Destination;
use crate::queue::ConnectionId;
use crate::timer::Timers;
use crate::vhost::Vhost;

/// A user who may log in.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub password: String,
    pub tags: Vec<String>,
    /// Vhosts this user may open.
    pub vhosts: Vec<String>,
}

/// Shared broker state.
#[derive(Debug)]
pub struct Node {
    pub config: Config,
    vhosts: RwLock<HashMap<String, Arc<Vhost>>>,
    users: RwLock<HashMap<String, User>>,
    next_connection: AtomicU64,
    timers: Timers,
    durability: Option<Arc<Durability>>,
}

impl Node {
    /// A node with the default user and vhost from `config`.
    pub fn new(config: Config, timers: Timers, durability: Option<Arc<Durability>>) -> Arc<Self> {
        let vhost = config.default_vhost.clone();
        let user = User {
            name: config.default_user.clone(),
            password: config.default_pass.clone(),
            tags: vec!["administrator".into()],
            vhosts: vec![vhost.clone()],
        };
        let node = Arc::new(Self {
            config,
            vhosts: RwLock::default(),
            users: RwLock::default(),
            next_connection: AtomicU64::new(1),
            timers,
            durability,
        });
        if let Some(d) = &node.durability {
            d.attach(Arc::downgrade(&node));
        }
        node.add_vhost(&vhost);
        node.users.write().insert(user.name.clone(), user);
        node
    }

    /// Creates a vhost (or returns the existing one).
    pub fn add_vhost(&self, name: &str) -> Arc<Vhost> {
        let mut vhosts = self.vhosts.write();
        Arc::clone(
            vhosts
                .entry(name.to_owned())
                .or_insert_with(|| Vhost::new(name, self.timers.clone(), self.durability.clone())),
        )
    }

    /// Restores durable definitions and queue logs from the store (at start). Logs of queues
    /// that are no longer defined are deleted.
    pub fn restore(&self) -> Result<(), crate::store::StoreError> {
        let Some(durability) = &self.durability else {
            return Ok(());
        };
        let store = &durability.store;
        let Some(json) = store.load_definitions()? else {
            return Ok(());
        };
        let defs: definitions::Definitions = match serde_json::from_slice(&json) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "definitions file unreadable; starting without it");
                return Ok(());
            }
        };
        for v in &defs.vhosts {
            self.add_vhost(&v.name);
        }
        for e in &defs.exchanges {
            let vhost = self.add_vhost(&e.vhost);
            if let Err(err) = vhost.declare_exchange(crate::vhost::ExchangeDeclare {
                name: e.name.clone(),
                kind: e.kind.clone(),
                durable: true,
                auto_delete: e.auto_delete,
                internal: e.internal,
                arguments: definitions::arguments_of(&e.typed_arguments, &e.arguments),
            }) {
                tracing::warn!(exchange = %e.name, error = ?err, "exchange not restored");
            }
        }
        let mut restored = Vec::new();
        for q in &defs.queues {
            let vhost = self.add_vhost(&q.vhost);
            match vhost.restore_queue(
                &q.name,
                q.auto_delete,
                definitions::arguments_of(&q.typed_arguments, &q.arguments),
            ) {
                Ok(queue) => {
                    tracing::info!(queue = %q.name, vhost = %q.vhost, messages = queue.message_count(), "queue recovered");
                    restored.push((q.vhost.clone(), q.name.clone()));
                }
                Err(err) => tracing::warn!(queue = %q.name, error = %err, "queue not restored"),
            }
        }
        for b in &defs.bindings {
            let Some(vhost) = self.vhost(&b.vhost) else {
                continue;
            };
            let Some(source) = vhost.exchange(&b.source) else {
                continue;
            };
            let destination = if b.destination_type == "exchange" {
                vhost.exchange(&b.destination).map(Destination::Exchange)
            } else {
                vhost.queue(&b.destination).map(Destination::Queue)
            };
            if let Some(d) = destination {
                source.bind(
                    d,
                    &b.routing_key,
                    definitions::arguments_of(&b.typed_arguments, &b.arguments),
                );
            }
        }
        for (vhost, queue) in store.queue_logs()? {
            if !restored.iter().any(|(v, q)| *v == vhost && *q == queue) {
                tracing::info!(%queue, %vhost, "deleting the log of a queue that no longer exists");
                store.delete_queue(&vhost, &queue)?;
            }
        }
        Ok(())
    }

    /// The message store, if the node has one.
    pub fn store(&self) -> Option<&Arc<crate::store::Store>> {
        self.durability.as_ref().map(|d| &d.store)
    }

    /// A vhost by name.
    pub fn vhost(&self, name: &str) -> Option<Arc<Vhost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// All vhosts.
    pub fn vhosts(&self) -> Vec<Arc<Vhost>> {
        self.vhosts.read().values().cloned().collect()
    }

    /// The user if the password matches.
    pub fn authenticate(&self, username: &str, password: &str) -> Option<User> {
        self.users
            .read()
            .get(username)
            .filter(|u| u.password == password)
            .cloned()
    }

    /// Whether `username` may open `vhost`.
    pub fn authenticate_vhost(&self, username: &str, vhost: &str) -> bool {
        self.users
            .read()
            .get(username)
            .is_some_and(|u| u.vhosts.iter().any(|v| v == vhost))
    }

    /// A fresh connection id.
    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}
