//! Validated broker configuration. Built by `main.rs` from CLI flags and environment variables
//! (RabbitMQ's names where they exist) or directly by tests; holds no I/O.

use std::path::PathBuf;
use std::time::Duration;

/// Everything the broker needs to know at start. `Config::default()` is what
/// `cargo run -p broker` uses without flags, except for the listen address which the caller binds.
#[derive(Clone, Debug)]
pub struct Config {
    /// User created with access to `default_vhost` when the data directory is new (RabbitMQ:
    /// `RABBITMQ_DEFAULT_USER`); later starts use the saved users.
    pub default_user: String,
    /// Password of `default_user` (RabbitMQ: `RABBITMQ_DEFAULT_PASS`).
    pub default_pass: String,
    /// Virtual host created when the data directory is new (RabbitMQ: `RABBITMQ_DEFAULT_VHOST`).
    pub default_vhost: String,
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// Largest frame we accept; offered in `connection.tune`.
    pub frame_max: u32,
    /// Highest channel number a client may open; offered in `connection.tune`.
    pub channel_max: u16,
    /// Heartbeat interval offered in `connection.tune`, in seconds (0 disables).
    pub heartbeat: u16,
    /// The whole AMQP handshake (header to `connection.open`) must finish within this.
    pub handshake_timeout: Duration,
    /// Largest message body accepted (RabbitMQ 3.x: 128 MiB); above it publishes get 406.
    pub max_message_size: u64,
    /// Largest message-log segment file; a segment is deleted once all its messages are acked.
    pub segment_size: u32,
    /// Fault injection for tests: the store's Nth fsync (and every later one) fails.
    pub fail_fsync_after: Option<u64>,
    /// The node's name in the management API and metrics (RabbitMQ: `rabbit@<host>`).
    pub node_name: String,
    /// A definitions file (RabbitMQ's JSON) imported at every start, as RabbitMQ's
    /// `load_definitions`: merged into the saved definitions; on a new data directory its
    /// users and vhosts replace the default ones.
    pub load_definitions: Option<PathBuf>,
    /// How often message rates are sampled (RabbitMQ's `collect_statistics_interval`, 5 s).
    pub stats_interval: Duration,
    /// Where the node listens, as `(protocol, address)` with RabbitMQ's protocol names
    /// (`amqp`, `http`, `http/prometheus`). Filled in by [`crate::serve`] from the bound
    /// listeners.
    pub listeners: Vec<(String, std::net::SocketAddr)>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_user: "guest".into(),
            default_pass: "guest".into(),
            default_vhost: "/".into(),
            data_dir: PathBuf::from("data"),
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            handshake_timeout: Duration::from_secs(10),
            max_message_size: 128 * 1024 * 1024,
            segment_size: crate::store::StoreOptions::default().segment_size,
            fail_fsync_after: None,
            node_name: "rabbit@localhost".into(),
            load_definitions: None,
            stats_interval: Duration::from_secs(5),
            listeners: Vec::new(),
        }
    }
}
