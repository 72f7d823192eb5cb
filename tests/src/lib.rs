//! Parity harness: every behaviour scenario is an `async fn(&Broker)` written once and run
//! against two targets, our broker started in-process on 127.0.0.1:0 and the real RabbitMQ at
//! `AMQP_PARITY_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).
//!
//! `AMQP_PARITY` selects what happens to the RabbitMQ half: `auto` (default) runs it when
//! RabbitMQ answers and otherwise prints one line saying it was skipped; `required` (what
//! `.ci/run` sets) fails when RabbitMQ cannot be reached; `off` skips it.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

/// Which broker a scenario is running against; scenarios branch on it only to document a known,
/// deliberate difference (and must say why in a comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Our broker, in-process.
    Ours,
    /// The reference RabbitMQ.
    RabbitMq,
}

/// A broker under test.
#[derive(Clone, Debug)]
pub struct Broker {
    /// AMQP URI with credentials and vhost, for lapin.
    pub url: String,
    /// Socket address of the AMQP listener, for raw TCP clients.
    pub addr: SocketAddr,
    /// Which broker this is.
    pub target: Target,
    /// Base URL of the management HTTP API (`http://127.0.0.1:15672`), when it serves one.
    pub http: Option<String>,
    /// Base URL of the Prometheus endpoint (`http://127.0.0.1:15692`), when it serves one.
    pub prometheus: Option<String>,
}

impl Broker {
    /// Base URL of the management HTTP API; panics when this broker was started without it.
    pub fn api(&self) -> &str {
        self.http
            .as_deref()
            .expect("this broker was started without its management API")
    }

    /// Base URL of the Prometheus endpoint; panics when this broker has none.
    pub fn metrics(&self) -> &str {
        self.prometheus
            .as_deref()
            .expect("this broker was started without its Prometheus endpoint")
    }

    /// Opens a lapin connection (tokio executor) to this broker.
    pub async fn connect(&self) -> Connection {
        connect(&self.url).await
    }
}

/// Opens a lapin connection to `url`, panicking with the URL if it fails.
pub async fn connect(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// Our broker, started once per test process on its own runtime thread so that it outlives
/// every test's runtime.
pub fn ours() -> Broker {
    static OURS: OnceLock<Broker> = OnceLock::new();
    OURS.get_or_init(|| {
        start_broker(broker::Config {
            data_dir: fresh_data_dir("parity"),
            ..broker::Config::default()
        })
    })
    .clone()
}

/// A fresh, empty data directory under the system temp dir, unique to this process and name.
pub fn fresh_data_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("broker-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Starts an in-process broker with `config` on 127.0.0.1:0, on its own runtime thread (it
/// lives until the test process exits).
pub fn start_broker(config: broker::Config) -> Broker {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("broker-under-test".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("test broker runtime");
            rt.block_on(async move {
                let bind = || async {
                    tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind 127.0.0.1:0")
                };
                let listeners = broker::Listeners {
                    amqp: bind().await,
                    management: Some(bind().await),
                    prometheus: Some(bind().await),
                };
                let addr_of = |l: &Option<tokio::net::TcpListener>| {
                    l.as_ref()
                        .map(|l| l.local_addr().expect("local addr"))
                        .expect("bound above")
                };
                tx.send((
                    listeners.amqp.local_addr().expect("local addr"),
                    addr_of(&listeners.management),
                    addr_of(&listeners.prometheus),
                ))
                .expect("report addresses");
                let shutdown = tokio_util::sync::CancellationToken::new();
                broker::serve(config, listeners, shutdown)
                    .await
                    .expect("test broker stopped with an error");
            });
        })
        .expect("spawn broker thread");
    let (addr, http, prometheus) = rx.recv().expect("test broker failed to start");
    Broker {
        url: format!("amqp://guest:guest@{addr}/%2f"),
        addr,
        target: Target::Ours,
        http: Some(format!("http://{http}")),
        prometheus: Some(format!("http://{prometheus}")),
    }
}

/// The reference RabbitMQ, or `None` when the RabbitMQ half is skipped (`AMQP_PARITY=off`, or
/// `auto` and RabbitMQ does not answer). Panics under `AMQP_PARITY=required` when unreachable.
pub fn rabbitmq() -> Option<Broker> {
    static RABBIT: OnceLock<Option<Broker>> = OnceLock::new();
    RABBIT.get_or_init(probe_rabbitmq).clone()
}

fn probe_rabbitmq() -> Option<Broker> {
    let mode = std::env::var("AMQP_PARITY").unwrap_or_else(|_| "auto".into());
    let url = std::env::var("AMQP_PARITY_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    if mode == "off" {
        return None;
    }
    let addr = host_port(&url);
    let reachable = addr
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    match (reachable, mode.as_str()) {
        (true, _) => Some(Broker {
            url,
            addr: addr.expect("checked above"),
            target: Target::RabbitMq,
            // The management and Prometheus plugins (`.ci/run` enables them).
            http: Some(
                std::env::var("AMQP_PARITY_HTTP")
                    .unwrap_or_else(|_| "http://127.0.0.1:15672".into()),
            ),
            prometheus: Some(
                std::env::var("AMQP_PARITY_PROMETHEUS")
                    .unwrap_or_else(|_| "http://127.0.0.1:15692".into()),
            ),
        }),
        (false, "required") => panic!(
            "AMQP_PARITY=required but RabbitMQ at {url} cannot be reached; start it with \
             `rabbitmq-server -detached` (or set AMQP_PARITY_URL)"
        ),
        (false, _) => {
            eprintln!(
                "parity: RabbitMQ at {url} not reachable, RabbitMQ half skipped (AMQP_PARITY=auto)"
            );
            None
        }
    }
}

fn host_port(url: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit('@').next()?;
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5672")
    };
    hostport.to_socket_addrs().ok()?.next()
}

/// A name unique to this test run, so scenarios can share the long-lived RabbitMQ.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// Declares one parity scenario: `parity!(name)` expects `async fn name(b: &Broker)` in scope
/// and generates the tests `name::ours` and `name::rabbitmq`.
#[macro_export]
macro_rules! parity {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn ours() {
                super::$name(&$crate::ours()).await;
            }
            #[tokio::test]
            async fn rabbitmq() {
                if let Some(b) = $crate::rabbitmq() {
                    super::$name(&b).await;
                }
            }
        }
    )+};
}

/// Runs `cargo build <args>` into this test binary's target directory and profile, and returns
/// the profile directory where the binaries land.
pub fn cargo_build(args: &[&str]) -> std::path::PathBuf {
    // A test binary is <target>/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("path of the test binary");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir
        .parent()
        .expect("<target>/<profile>")
        .to_path_buf();
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_string();
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet"])
        .args(args)
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build {args:?} failed");
    profile_dir
}
