//! The node: everything a running broker shares across connections (configuration, vhosts,
//! users). Connections hold an `Arc<Node>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::config::Config;
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
}

impl Node {
    /// A node with the default user and vhost from `config`.
    pub fn new(config: Config, timers: Timers) -> Self {
        let vhost = config.default_vhost.clone();
        let user = User {
            name: config.default_user.clone(),
            password: config.default_pass.clone(),
            tags: vec!["administrator".into()],
            vhosts: vec![vhost.clone()],
        };
        let node = Self {
            config,
            vhosts: RwLock::default(),
            users: RwLock::default(),
            next_connection: AtomicU64::new(1),
        };
        node.vhosts
            .write()
            .insert(vhost.clone(), Vhost::new(&vhost, timers));
        node.users.write().insert(user.name.clone(), user);
        node
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
