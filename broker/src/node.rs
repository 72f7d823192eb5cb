//! The node: everything a running broker shares across connections (configuration, vhosts,
//! users). Connections hold an `Arc<Node>`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::config::Config;
use crate::definitions::{self, Durability};
use crate::exchange::Destination;
use crate::password::PasswordHash;
use crate::queue::ConnectionId;
use crate::timer::Timers;
use crate::vhost::Vhost;

/// A user who may log in. Users and their permissions are durable definitions (saved with
/// the exchanges and queues, in RabbitMQ's format).
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    /// Salted hash of the password; the password itself is never kept.
    pub password_hash: PasswordHash,
    pub tags: Vec<String>,
    /// RabbitMQ's per-user `limits` (`max-connections`, `max-channels`), kept so definitions
    /// round-trip; not enforced.
    pub limits: serde_json::Map<String, serde_json::Value>,
    /// Permissions by vhost name. A user may open only the vhosts listed here.
    pub permissions: BTreeMap<String, Permission>,
}

/// A user's permissions in one vhost: RabbitMQ's configure / write / read regexes. Kept and
/// saved; only the vhost access they grant is enforced so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl Permission {
    /// `.* .* .*`, what the default user gets on the default vhost.
    pub fn full() -> Self {
        Self {
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        }
    }
}

/// A user's password and tags as `PUT /api/users/{name}` or an import gives them.
#[derive(Clone, Debug)]
pub struct UserSpec {
    pub password_hash: PasswordHash,
    pub tags: Vec<String>,
    /// `None` keeps an existing user's limits.
    pub limits: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What RabbitMQ keeps about a vhost besides its objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VhostMetadata {
    pub description: String,
    pub tags: Vec<String>,
    /// Shown and saved; queue declarations do not apply it yet.
    pub default_queue_type: Option<String>,
    /// RabbitMQ's firehose tracer switch: shown and saved; nothing is traced.
    pub tracing: bool,
}

/// A vhost's settings as `PUT /api/vhosts/{name}` or an import gives them.
#[derive(Clone, Debug, Default)]
pub struct VhostSpec {
    pub description: String,
    pub tags: Vec<String>,
    /// Set when the vhost is created only, as in RabbitMQ.
    pub default_queue_type: Option<String>,
    /// `None` leaves it as it is.
    pub tracing: Option<bool>,
}

/// Why permissions could not be set.
#[derive(Debug, thiserror::Error)]
pub enum PermissionError {
    #[error("no_such_user")]
    NoSuchUser,
    #[error("no_such_vhost")]
    NoSuchVhost,
}

/// Whether a start may create the default user and vhost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DefaultData {
    /// When the saved definitions have no users, permissions and vhosts (a new node).
    IfNew,
    /// Never: definitions are loaded at start instead (`--load-definitions`).
    Never,
}

/// Shared broker state.
#[derive(Debug)]
pub struct Node {
    pub config: Config,
    vhosts: RwLock<HashMap<String, Arc<Vhost>>>,
    /// Description, tags… of each vhost in `vhosts` (absent: all defaults).
    vhost_metadata: RwLock<HashMap<String, VhostMetadata>>,
    users: RwLock<HashMap<String, User>>,
    next_connection: AtomicU64,
    timers: Timers,
    durability: Option<Arc<Durability>>,
    /// Open connections and channels, and the node's statistics counters.
    pub registry: crate::registry::Registry,
    /// When the node started (uptime).
    pub started_at: std::time::Instant,
}

impl Node {
    /// An empty node (no vhost, no user): [`Node::restore`] loads the saved definitions, or
    /// creates the default user and vhost when there are none.
    pub fn new(config: Config, timers: Timers, durability: Option<Arc<Durability>>) -> Arc<Self> {
        let node = Arc::new(Self {
            config,
            vhosts: RwLock::default(),
            vhost_metadata: RwLock::default(),
            users: RwLock::default(),
            next_connection: AtomicU64::new(1),
            timers,
            durability,
            registry: crate::registry::Registry::default(),
            started_at: std::time::Instant::now(),
        });
        if let Some(d) = &node.durability {
            d.attach(Arc::downgrade(&node));
        }
        node
    }

    /// Creates the default vhost and the default user (tag `administrator`, `.* .* .*` on
    /// that vhost) from the configuration, as RabbitMQ does when its database is new.
    fn add_default_data(&self) {
        let vhost = self.config.default_vhost.clone();
        self.add_vhost(&vhost);
        self.vhost_metadata.write().insert(
            vhost.clone(),
            VhostMetadata {
                description: "Default virtual host".into(),
                ..VhostMetadata::default()
            },
        );
        self.add_default_user();
        tracing::info!(user = %self.config.default_user, %vhost, "created the default user and vhost");
    }

    /// The default user from the configuration, with full permissions on the default vhost.
    fn add_default_user(&self) {
        let user = User {
            name: self.config.default_user.clone(),
            password_hash: PasswordHash::new(&self.config.default_pass),
            tags: vec!["administrator".into()],
            limits: serde_json::Map::new(),
            permissions: BTreeMap::from([(self.config.default_vhost.clone(), Permission::full())]),
        };
        self.add_user(user);
    }

    /// Adds (or replaces) a user (in memory: the caller saves the definitions).
    fn add_user(&self, user: User) {
        self.users.write().insert(user.name.clone(), user);
    }

    /// All users, sorted by name.
    pub fn users(&self) -> Vec<User> {
        let mut users: Vec<User> = self.users.read().values().cloned().collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
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
    ///
    /// Users, permissions and vhosts come from the saved definitions. Only when there are
    /// none of them (a new data directory: RabbitMQ's `needs_default_data`) are the default
    /// vhost and user created from the configuration, and saved at once; so a changed
    /// `--default-pass` on a later start does not change the stored password, as in RabbitMQ.
    pub fn restore(&self) -> Result<(), crate::store::StoreError> {
        self.restore_seeding(DefaultData::IfNew)
    }

    /// [`Node::restore`], then imports `doc` as RabbitMQ's `load_definitions` does at every
    /// start: merged into what was saved (see [`definitions::import_with`]). The default user
    /// and vhost are never created: on a new data directory the document's users and vhosts
    /// take their place. An invalid document changes nothing (and nothing is saved).
    pub fn restore_and_import(
        &self,
        doc: &serde_json::Value,
    ) -> Result<(), definitions::ImportError> {
        self.restore_seeding(DefaultData::Never)?;
        definitions::import(self, doc)
    }

    fn restore_seeding(&self, seed: DefaultData) -> Result<(), crate::store::StoreError> {
        let Some(durability) = &self.durability else {
            if seed == DefaultData::IfNew {
                self.add_default_data();
            }
            return Ok(());
        };
        let store = &durability.store;
        let defs: definitions::Definitions = match store.load_definitions()? {
            None => definitions::Definitions::default(),
            Some(json) => match serde_json::from_slice(&json) {
                Ok(d) => d,
                Err(e) => {
                    // Not overwritten until the next durable change, so it can be repaired.
                    tracing::error!(error = %e, "definitions file unreadable; starting with the default user and vhost only");
                    if seed == DefaultData::IfNew {
                        self.add_default_data();
                    }
                    return Ok(());
                }
            },
        };
        durability.set_restoring(true);
        let result = self.restore_definitions(store, &defs);
        durability.set_restoring(false);
        result?;
        let mut changed = false;
        if seed == DefaultData::Never {
            // The imported document provides the users and vhosts.
        } else if defs.needs_default_data() {
            self.add_default_data();
            changed = true;
        } else if defs.users.is_none() {
            // Written before users were saved: the default user gets its vhost back.
            tracing::warn!(user = %self.config.default_user, "the saved definitions have no users; creating the default user");
            self.add_default_user();
            changed = true;
        }
        if changed {
            durability.try_save()?;
        }
        Ok(())
    }

    /// Recreates users, vhosts, exchanges, queues (replaying their logs) and bindings from
    /// `defs`, then deletes the logs of queues `defs` does not name.
    fn restore_definitions(
        &self,
        store: &crate::store::Store,
        defs: &definitions::Definitions,
    ) -> Result<(), crate::store::StoreError> {
        self.restore_users(defs);
        for v in &defs.vhosts {
            self.add_vhost(&v.name);
            let spec = v.spec();
            self.vhost_metadata.write().insert(
                v.name.clone(),
                VhostMetadata {
                    description: spec.description,
                    tags: spec.tags,
                    default_queue_type: spec.default_queue_type,
                    tracing: spec.tracing.unwrap_or(false),
                },
            );
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

    /// Users and their permissions from saved definitions. A user whose hash is not base64
    /// is skipped; permissions of unknown users are ignored (RabbitMQ refuses both at import).
    fn restore_users(&self, defs: &definitions::Definitions) {
        for u in defs.users.iter().flatten() {
            let password_hash =
                match PasswordHash::from_definitions(&u.password_hash, &u.hashing_algorithm) {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!(user = %u.name, error = %e, "user not restored");
                        continue;
                    }
                };
            if let crate::password::HashingAlgorithm::Other(name) = password_hash.algorithm() {
                tracing::warn!(user = %u.name, algorithm = %name, "unsupported password hashing algorithm: this user cannot log in");
            }
            self.add_user(User {
                name: u.name.clone(),
                password_hash,
                tags: u.tags.clone().into_vec(),
                limits: u.limits.clone(),
                permissions: BTreeMap::new(),
            });
        }
        let mut users = self.users.write();
        for p in &defs.permissions {
            match users.get_mut(&p.user) {
                Some(user) => {
                    user.permissions.insert(
                        p.vhost.clone(),
                        Permission {
                            configure: p.configure.clone(),
                            write: p.write.clone(),
                            read: p.read.clone(),
                        },
                    );
                }
                None => {
                    tracing::warn!(user = %p.user, vhost = %p.vhost, "permissions of an unknown user ignored")
                }
            }
        }
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

    /// The user if the password matches its stored hash. A blank password never logs in, as
    /// in RabbitMQ's internal backend.
    pub fn authenticate(&self, username: &str, password: &str) -> Option<User> {
        if password.is_empty() {
            return None;
        }
        self.users
            .read()
            .get(username)
            .filter(|u| u.password_hash.verify(password))
            .cloned()
    }

    /// Whether `username` may open `vhost` (has permissions there).
    pub fn authenticate_vhost(&self, username: &str, vhost: &str) -> bool {
        self.users
            .read()
            .get(username)
            .is_some_and(|u| u.permissions.contains_key(vhost))
    }

    /// A user by name.
    pub fn user(&self, name: &str) -> Option<User> {
        self.users.read().get(name).cloned()
    }

    /// Creates a user, or replaces an existing user's password, tags (and limits, when
    /// given) keeping its permissions; saves. True when the user is new.
    pub fn put_user(&self, name: &str, spec: UserSpec) -> bool {
        let created = {
            let mut users = self.users.write();
            match users.get_mut(name) {
                Some(user) => {
                    user.password_hash = spec.password_hash;
                    user.tags = spec.tags;
                    if let Some(limits) = spec.limits {
                        user.limits = limits;
                    }
                    false
                }
                None => {
                    users.insert(
                        name.to_owned(),
                        User {
                            name: name.to_owned(),
                            password_hash: spec.password_hash,
                            tags: spec.tags,
                            limits: spec.limits.unwrap_or_default(),
                            permissions: BTreeMap::new(),
                        },
                    );
                    true
                }
            }
        };
        self.save();
        created
    }

    /// Deletes a user and its permissions, closes its connections (`320 CONNECTION_FORCED -
    /// user 'x' is deleted`, as RabbitMQ) and saves. False when there was no such user.
    pub fn delete_user(&self, name: &str) -> bool {
        if self.users.write().remove(name).is_none() {
            return false;
        }
        for c in self.registry.connections() {
            if c.user == name {
                c.force_close(format!("user '{name}' is deleted"));
            }
        }
        self.save();
        true
    }

    /// Sets `user`'s permissions in `vhost` and saves. True when it had none there.
    pub fn set_permission(
        &self,
        user: &str,
        vhost: &str,
        permission: Permission,
    ) -> Result<bool, PermissionError> {
        if self.vhost(vhost).is_none() {
            return Err(PermissionError::NoSuchVhost);
        }
        let created = self
            .users
            .write()
            .get_mut(user)
            .ok_or(PermissionError::NoSuchUser)?
            .permissions
            .insert(vhost.to_owned(), permission)
            .is_none();
        self.save();
        Ok(created)
    }

    /// Clears `user`'s permissions in `vhost` and saves: its new connections to the vhost are
    /// refused (open ones stay, as in RabbitMQ). False when it had none there.
    pub fn clear_permission(&self, user: &str, vhost: &str) -> bool {
        let removed = self
            .users
            .write()
            .get_mut(user)
            .and_then(|u| u.permissions.remove(vhost))
            .is_some();
        if removed {
            self.save();
        }
        removed
    }

    /// The metadata of an existing vhost.
    pub fn vhost_metadata(&self, name: &str) -> Option<VhostMetadata> {
        self.vhost(name)?;
        Some(
            self.vhost_metadata
                .read()
                .get(name)
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// Creates a vhost or updates its description and tags (and tracing, when given), then
    /// saves. A new vhost gets `spec.default_queue_type`, and `acting_user` (who created it)
    /// gets `.* .* .*` on it, as RabbitMQ grants. True when the vhost is new.
    pub fn put_vhost(&self, name: &str, spec: VhostSpec, acting_user: Option<&str>) -> bool {
        let created = {
            let mut vhosts = self.vhosts.write();
            let created = !vhosts.contains_key(name);
            if created {
                vhosts.insert(
                    name.to_owned(),
                    Vhost::new(name, self.timers.clone(), self.durability.clone()),
                );
            }
            let mut metadata = self.vhost_metadata.write();
            let meta = metadata.entry(name.to_owned()).or_default();
            meta.description = spec.description;
            meta.tags = spec.tags;
            if created {
                meta.default_queue_type = spec.default_queue_type;
            }
            if let Some(tracing) = spec.tracing {
                meta.tracing = tracing;
            }
            created
        };
        if created
            && let Some(user) = acting_user
            && let Some(u) = self.users.write().get_mut(user)
        {
            u.permissions.insert(name.to_owned(), Permission::full());
        }
        self.save();
        created
    }

    /// Deletes a vhost: new connections to it are refused at once, open ones are closed
    /// (`320 CONNECTION_FORCED - vhost 'x' is deleted`, as RabbitMQ), its queues are deleted
    /// with their logs, its exchanges and every user's permissions on it go, and the
    /// definitions are saved once. False when there was no such vhost.
    pub fn delete_vhost(&self, name: &str) -> bool {
        let Some(vhost) = self.vhosts.write().remove(name) else {
            return false;
        };
        self.vhost_metadata.write().remove(name);
        for user in self.users.write().values_mut() {
            user.permissions.remove(name);
        }
        for c in self.registry.connections() {
            if c.vhost == name {
                c.force_close(format!("vhost '{name}' is deleted"));
            }
        }
        self.batch_saves(|| {
            for q in vhost.queues() {
                vhost.delete_queue(&q);
            }
            for e in vhost.exchanges() {
                if !e.name.is_empty() && !e.name.starts_with("amq.") {
                    let _ = vhost.delete_exchange(&e.name, false);
                }
            }
        });
        tracing::info!(vhost = %name, "vhost deleted");
        true
    }

    /// Runs `f` with definition saves suspended, then saves once (see [`Durability::batch`]).
    pub fn batch_saves<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.durability {
            Some(d) => d.batch(f),
            None => f(),
        }
    }

    /// Saves the definitions (users, vhosts and permissions are durable).
    fn save(&self) {
        if let Some(d) = &self.durability {
            d.save();
        }
    }

    /// A fresh connection id.
    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreOptions};

    fn node_on(dir: &std::path::Path, user: &str, pass: &str) -> (Arc<Node>, Arc<Store>) {
        let store = Store::open(dir, StoreOptions::default()).expect("open store");
        let config = Config {
            default_user: user.into(),
            default_pass: pass.into(),
            data_dir: dir.to_owned(),
            ..Config::default()
        };
        let (timers, _task) = crate::timer::start(tokio_util::sync::CancellationToken::new());
        let node = Node::new(config, timers, Some(Durability::new(Arc::clone(&store))));
        node.restore().expect("restore");
        (node, store)
    }

    fn reopen(
        dir: &std::path::Path,
        user: &str,
        pass: &str,
        old: (Arc<Node>, Arc<Store>),
    ) -> Arc<Node> {
        let (node, store) = old;
        drop(node);
        store.close().expect("close");
        drop(store);
        node_on(dir, user, pass).0
    }

    #[test]
    fn the_default_user_is_created_once_and_saved_as_a_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = node_on(dir.path(), "alice", "first-pass");
        assert!(first.0.authenticate("alice", "first-pass").is_some());
        assert!(first.0.authenticate_vhost("alice", "/"));
        assert!(first.0.authenticate("guest", "guest").is_none());
        let saved = first
            .1
            .load_definitions()
            .expect("load")
            .expect("saved at first start");
        let text = String::from_utf8(saved).expect("utf-8");
        assert!(
            !text.contains("first-pass"),
            "no plain password on disk: {text}"
        );
        let defs: definitions::Definitions = serde_json::from_str(&text).expect("json");
        let users = defs.users.expect("users");
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].hashing_algorithm, "rabbit_password_hashing_sha256");
        assert_eq!(defs.permissions.len(), 1);
        assert_eq!(
            (
                defs.permissions[0].user.as_str(),
                defs.permissions[0].vhost.as_str()
            ),
            ("alice", "/")
        );

        // A later start with other defaults keeps the saved user and password.
        let second = reopen(dir.path(), "bob", "second-pass", first);
        assert!(second.authenticate("alice", "first-pass").is_some());
        assert!(second.authenticate("alice", "second-pass").is_none());
        assert!(second.authenticate("bob", "second-pass").is_none());
        assert!(second.vhost("/").is_some());
    }

    #[test]
    fn users_of_a_rabbitmq_export_log_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
            // `rabbitmqctl export_definitions -` of RabbitMQ 3.10.8, with a second user whose
            // tags use the pre-3.9 comma-separated form.
            store
                .save_definitions(
                    br#"{"bindings":[],"exchanges":[],"global_parameters":[],"parameters":[],
                    "permissions":[{"configure":".*","read":".*","user":"guest","vhost":"/","write":".*"},
                                   {"configure":"","read":"^r","user":"probe","vhost":"other","write":""}],
                    "policies":[],"queues":[],"rabbit_version":"3.10.8","rabbitmq_version":"3.10.8",
                    "topic_permissions":[],
                    "users":[{"hashing_algorithm":"rabbit_password_hashing_sha256","limits":{},"name":"guest",
                              "password_hash":"RJek3VUqR1xy4Yo2h/+xf/FBwoJcDXGGJ5Ok4CFfpQkrG1uz","tags":["administrator"]},
                             {"hashing_algorithm":"rabbit_password_hashing_sha256","limits":{},"name":"probe",
                              "password_hash":"7rkL9lhq1mWYuOHvj0BoNtaNX//3xCV43fc3+K5L7jFzkl8h","tags":"management, monitoring"}],
                    "vhosts":[{"limits":[],"metadata":{"description":"Default virtual host","tags":[]},"name":"/"},
                              {"name":"other"}]}"#,
                )
                .expect("save");
            store.close().expect("close");
        }
        let (node, _store) = node_on(dir.path(), "admin", "not-used");
        assert!(node.authenticate("guest", "guest").is_some());
        let probe = node
            .authenticate("probe", "S3cret pässwörd!")
            .expect("probe logs in");
        assert_eq!(probe.tags, ["management", "monitoring"]);
        assert_eq!(
            probe.permissions.get("other"),
            Some(&Permission {
                configure: String::new(),
                write: String::new(),
                read: "^r".into(),
            })
        );
        assert!(node.authenticate_vhost("probe", "other"));
        assert!(!node.authenticate_vhost("probe", "/"));
        assert!(
            node.authenticate("admin", "not-used").is_none(),
            "no default user"
        );
        assert!(node.vhost("other").is_some());
    }

    #[test]
    fn definitions_without_users_get_the_default_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
            store
                .save_definitions(br#"{"rabbit_version":"3.10.0","vhosts":[{"name":"/"}],"queues":[],"exchanges":[],"bindings":[]}"#)
                .expect("save");
            store.close().expect("close");
        }
        let (node, store) = node_on(dir.path(), "guest", "guest");
        assert!(node.authenticate("guest", "guest").is_some());
        let saved = store.load_definitions().expect("load").expect("saved");
        let defs: definitions::Definitions = serde_json::from_slice(&saved).expect("json");
        assert_eq!(
            defs.users.map(|u| u.len()),
            Some(1),
            "the migration is saved"
        );
    }
}
