//! Harness for the restart tests: our `broker` binary as a child process on its own data folder
//! and port (so it can be stopped, killed and started again), the shared RabbitMQ restarted with
//! `rabbitmqctl stop_app && rabbitmqctl start_app`, and [`RestartableBroker`], which hides the
//! difference from the scenarios.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use tests::{Broker, Target};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

/// What our broker logs on stdout once its AMQP listener is bound.
pub const READY_LINE: &str = "AMQP 0-9-1 listening on";

/// How long a broker (ours or RabbitMQ) may take to come back after a restart.
pub const START_LIMIT: Duration = Duration::from_secs(60);

/// Every test of this binary holds this for its whole run: they restart brokers, so they run one
/// at a time whatever `--test-threads` says.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::const_new(());
    SERIAL.lock().await
}

// ---------------------------------------------------------------------------------------------
// Our broker as a child process.
// ---------------------------------------------------------------------------------------------

/// Path of our `broker` binary: `BROKER_BIN` if set, else built once per test process with the
/// same profile and target directory as this test binary (as the `clients` tests do).
pub fn broker_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var("BROKER_BIN") {
        Ok(path) => PathBuf::from(path),
        Err(_) => tests::cargo_build(&["-p", "broker", "--bin", "broker"]).join("broker"),
    })
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Starts `broker --bind 127.0.0.1 --port <port> --data-dir <data_dir>` with stdout and stderr
/// going to `<log>.out` and `<log>.err`.
pub fn spawn_broker(data_dir: &Path, port: u16, log: &Path) -> Child {
    spawn_broker_with(data_dir, port, log, &[])
}

/// [`spawn_broker`] with more flags (`--default-user`, `--default-pass`, ...).
pub fn spawn_broker_with(data_dir: &Path, port: u16, log: &Path, args: &[String]) -> Child {
    Command::new(broker_bin())
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--management-port", "0", "--prometheus-port", "0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        // Flags win over these, but the default user / vhost have no flag here.
        .env_remove("RABBITMQ_DEFAULT_USER")
        .env_remove("RABBITMQ_DEFAULT_PASS")
        .env_remove("RABBITMQ_DEFAULT_VHOST")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log.with_extension("out")).expect("broker stdout file"))
        .stderr(std::fs::File::create(log.with_extension("err")).expect("broker stderr file"))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", broker_bin().display()))
}

/// Everything a broker started with [`spawn_broker`] printed (stdout, then stderr).
pub fn read_log(log: &Path) -> String {
    let out = std::fs::read_to_string(log.with_extension("out")).unwrap_or_default();
    let err = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
    format!("--- stdout\n{out}--- stderr\n{err}")
}

/// Our broker as a child process with its own port and data folder (in a temp dir that is kept,
/// and printed, when the test fails), so a test can stop, kill and restart it.
pub struct ChildBroker {
    pub port: u16,
    pub data_dir: PathBuf,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// More flags for every start from now on (`--default-user`, `--default-pass`, ...).
    pub args: Vec<String>,
    /// User and password of [`ChildBroker::broker`]'s URL, also used to see it serve.
    pub credentials: (String, String),
}

impl ChildBroker {
    /// Starts a broker on a fresh data folder and a free port, and waits until it serves AMQP.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, Vec::new(), ("guest".into(), "guest".into())).await
    }

    /// [`ChildBroker::start`] with more flags, and the credentials it will accept.
    pub async fn start_with(name: &str, args: Vec<String>, credentials: (String, String)) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("restart-{name}-"))
            .tempdir()
            .expect("temp dir");
        // Canonical, so it can be looked for in the broker's messages.
        let root = dir.path().canonicalize().expect("canonical temp dir");
        let mut b = Self {
            port: free_port(),
            data_dir: root.join("data"),
            dir: Some(dir),
            root,
            child: None,
            starts: 0,
            args,
            credentials,
        };
        b.start_again().await;
        b
    }

    /// The `tests::Broker` describing it.
    pub fn broker(&self) -> Broker {
        let addr = ([127, 0, 0, 1], self.port).into();
        Broker {
            url: format!(
                "amqp://{}:{}@{addr}/%2f",
                self.credentials.0, self.credentials.1
            ),
            addr,
            target: Target::Ours,
            http: None,
            prometheus: None,
        }
    }

    /// Log file stem of start number `n` (1-based).
    fn log_path(&self, n: u32) -> PathBuf {
        self.root.join(format!("broker-{n}"))
    }

    /// Where a scenario may put files of its own (a second broker's logs).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// What the current (latest) run printed.
    pub fn log(&self) -> String {
        read_log(&self.log_path(self.starts))
    }

    /// Starts it (again) on the same port and data folder: waits for [`READY_LINE`], then for an
    /// AMQP connection to open (recovery may still run after the listener is bound).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        self.starts += 1;
        let log = self.log_path(self.starts);
        let mut child = spawn_broker_with(&self.data_dir, self.port, &log, &self.args);
        let t0 = Instant::now();
        let deadline = t0 + START_LIMIT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "broker (start #{}) exited with {status} before serving AMQP:\n{}",
                    self.starts,
                    read_log(&log)
                );
            }
            if read_log(&log).contains(READY_LINE) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "broker (start #{}) did not log {READY_LINE:?} within {START_LIMIT:?}:\n{}",
                self.starts,
                read_log(&log)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.child = Some(child);
        let url = self.broker().url;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            assert!(
                !remaining.is_zero(),
                "broker (start #{}) did not open an AMQP connection within {START_LIMIT:?}:\n{}",
                self.starts,
                self.log()
            );
            let attempt = tokio::time::timeout(
                remaining,
                Connection::connect(&url, lapin::ConnectionProperties::default()),
            )
            .await;
            if let Ok(Ok(conn)) = attempt {
                let _ = conn.close(200, "ready".into()).await;
                break;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "broker (start #{}) exited with {status} while starting:\n{}",
                    self.starts,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.starts > 1 {
            eprintln!(
                "restart: our broker (start #{}) serves AMQP {:?} after spawn",
                self.starts,
                t0.elapsed()
            );
        }
    }

    /// Graceful stop: SIGTERM, then waits (bounded) for the exit, which must be a success.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("the broker is running");
        let pid = child.id().expect("running broker has a pid").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(status) => status.expect("wait for the broker"),
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "broker did not exit within 30 s of SIGTERM:\n{}",
                    self.log()
                );
            }
        };
        assert!(
            status.success(),
            "a graceful stop (SIGTERM) must exit 0, got {status}:\n{}",
            self.log()
        );
    }

    /// Crash: SIGKILL (no cleanup at all), and reaps the process.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("the broker is running");
        child.kill().await.expect("SIGKILL the broker");
    }

    /// SIGTERM, wait, start again on the same data folder and port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Stops it gracefully (checking the exit) and removes its folder.
    pub async fn shutdown(mut self) {
        if self.child.is_some() {
            self.stop().await;
        }
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "restart: test failed; broker data and logs kept in {}",
                kept.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shared RabbitMQ.
// ---------------------------------------------------------------------------------------------

/// `RABBITMQCTL` if set, else `rabbitmqctl` when it is on the `PATH`.
fn rabbitmqctl_program() -> Option<PathBuf> {
    if let Ok(program) = std::env::var("RABBITMQCTL") {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("rabbitmqctl"))
        .find(|candidate| candidate.is_file())
}

async fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let program = rabbitmqctl_program()
        .ok_or("rabbitmqctl not found")?
        .display()
        .to_string();
    let run = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(120), run).await {
        Err(_) => Err(format!("{program} {args:?} took more than 120 s")),
        Ok(Err(e)) => Err(format!("cannot run {program} {args:?}: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "{program} {args:?} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Restarts the RabbitMQ application (`rabbitmqctl stop_app && rabbitmqctl start_app`; the Erlang
/// node stays up), then waits until an AMQP connection to `url` opens. `start_app` is attempted
/// even when `stop_app` failed, so RabbitMQ is never left stopped by this test.
pub async fn restart_rabbitmq(url: &str) {
    let t0 = Instant::now();
    let stopped = rabbitmqctl(&["stop_app"]).await;
    let mut started = rabbitmqctl(&["start_app"]).await;
    for _ in 0..2 {
        if started.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        started = rabbitmqctl(&["start_app"]).await;
    }
    if let Err(e) = &started {
        panic!("RabbitMQ may be left stopped, start it with `rabbitmqctl start_app`: {e}");
    }
    if let Err(e) = stopped {
        panic!("rabbitmqctl stop_app failed (RabbitMQ was not restarted): {e}");
    }
    let deadline = t0 + START_LIMIT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        assert!(
            !remaining.is_zero(),
            "RabbitMQ did not accept AMQP connections within {START_LIMIT:?} of start_app"
        );
        let attempt = tokio::time::timeout(
            remaining,
            Connection::connect(url, lapin::ConnectionProperties::default()),
        )
        .await;
        if let Ok(Ok(conn)) = attempt {
            let _ = conn.close(200, "ready".into()).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "restart: RabbitMQ restarted (stop_app, start_app) and serving AMQP in {:?}",
        t0.elapsed()
    );
}

/// Scenarios running together against the shared RabbitMQ share ONE restart: each scenario's
/// [`RestartableBroker::restart`] waits until every scenario still running has asked for it,
/// then one of them restarts RabbitMQ and all continue. A scenario that ends (or panics) leaves
/// the group, so the others are not kept waiting.
pub struct RestartGroup {
    url: String,
    state: Mutex<GroupState>,
    generation: watch::Sender<u64>,
}

struct GroupState {
    members: usize,
    waiting: usize,
    restarts: u32,
}

impl RestartGroup {
    pub fn new(url: &str, members: usize) -> Arc<Self> {
        Arc::new(Self {
            url: url.to_owned(),
            state: Mutex::new(GroupState {
                members,
                waiting: 0,
                restarts: 0,
            }),
            generation: watch::Sender::new(0),
        })
    }

    /// How many times RabbitMQ was restarted.
    pub async fn restarts(&self) -> u32 {
        self.state.lock().await.restarts
    }

    async fn arrive(&self) {
        let mut rx = self.generation.subscribe();
        let current = *rx.borrow_and_update();
        {
            let mut state = self.state.lock().await;
            state.waiting += 1;
            if state.waiting == state.members {
                self.restart_locked(&mut state).await;
                return;
            }
        }
        rx.wait_for(|g| *g > current)
            .await
            .expect("restart group dropped");
    }

    /// A scenario has ended: it no longer takes part in restarts.
    pub async fn leave(&self) {
        let mut state = self.state.lock().await;
        state.members -= 1;
        if state.waiting > 0 && state.waiting == state.members {
            self.restart_locked(&mut state).await;
        }
    }

    async fn restart_locked(&self, state: &mut GroupState) {
        eprintln!(
            "restart: {} scenario(s) ready, restarting RabbitMQ",
            state.waiting
        );
        restart_rabbitmq(&self.url).await;
        state.waiting = 0;
        state.restarts += 1;
        self.generation.send_modify(|g| *g += 1);
    }
}

/// A broker a scenario can restart: our child process (SIGTERM, start again on the same data
/// folder and port) or the shared RabbitMQ (`stop_app` / `start_app`, one restart shared by all
/// scenarios of the run, see [`RestartGroup`]).
pub struct RestartableBroker {
    pub broker: Broker,
    kind: Kind,
}

enum Kind {
    Ours(Box<ChildBroker>),
    RabbitMq(Arc<RestartGroup>),
}

impl RestartableBroker {
    /// Our broker on a fresh data folder.
    pub async fn ours(name: &str) -> Self {
        Self::ours_with(name, &[]).await
    }

    /// [`RestartableBroker::ours`] with more flags for the broker.
    pub async fn ours_with(name: &str, args: &[&str]) -> Self {
        let args = args.iter().map(|a| (*a).to_owned()).collect();
        let child = ChildBroker::start_with(name, args, ("guest".into(), "guest".into())).await;
        Self {
            broker: child.broker(),
            kind: Kind::Ours(Box::new(child)),
        }
    }

    /// The shared RabbitMQ, restarted through `group`.
    pub fn rabbitmq(broker: Broker, group: Arc<RestartGroup>) -> Self {
        Self {
            broker,
            kind: Kind::RabbitMq(group),
        }
    }

    pub async fn connect(&self) -> Connection {
        tests::connect(&self.broker.url).await
    }

    /// Restarts the broker; returns once it serves AMQP again. Connections opened before are
    /// closed by the restart.
    pub async fn restart(&mut self) {
        match &mut self.kind {
            Kind::Ours(child) => child.restart().await,
            Kind::RabbitMq(group) => group.arrive().await,
        }
    }

    /// What our broker printed in its current run; `None` for RabbitMQ.
    pub fn log(&self) -> Option<String> {
        match &self.kind {
            Kind::Ours(child) => Some(child.log()),
            Kind::RabbitMq(_) => None,
        }
    }

    /// Ends a scenario on our broker: it is stopped gracefully (exit 0 checked). For RabbitMQ
    /// nothing happens here: [`run_on_rabbitmq`] takes the scenario out of the group.
    pub async fn finish(self) {
        if let Kind::Ours(child) = self.kind {
            child.shutdown().await;
        }
    }
}

/// Runs `scenarios` concurrently against the shared RabbitMQ with one shared restart, and fails
/// with the list of scenarios that failed. Skipped (with a line) when the RabbitMQ half is off.
pub async fn run_on_rabbitmq(scenarios: Vec<(&'static str, Scenario)>) {
    let Some(broker) = tests::rabbitmq() else {
        eprintln!("restart: RabbitMQ half skipped (AMQP_PARITY is off or RabbitMQ unreachable)");
        return;
    };
    if rabbitmqctl_program().is_none() {
        let required = std::env::var("AMQP_PARITY").is_ok_and(|m| m == "required");
        assert!(
            !required,
            "AMQP_PARITY=required but rabbitmqctl (needed to restart RabbitMQ) is not on the PATH; \
             set RABBITMQCTL to its path"
        );
        eprintln!("restart: RabbitMQ half skipped: rabbitmqctl not found (set RABBITMQCTL)");
        return;
    }
    let group = RestartGroup::new(&broker.url, scenarios.len());
    let mut set = tokio::task::JoinSet::new();
    let mut names = HashMap::new();
    for (name, scenario) in scenarios {
        let b = RestartableBroker::rabbitmq(broker.clone(), group.clone());
        let handle = set.spawn(async move {
            let mut b = b;
            scenario(&mut b).await;
            name
        });
        names.insert(handle.id(), name);
    }
    let mut failed = Vec::new();
    while let Some(res) = set.join_next_with_id().await {
        group.leave().await;
        match res {
            Ok((_, name)) => eprintln!("restart: rabbitmq {name}: ok"),
            Err(e) => {
                let name = names.get(&e.id()).copied().unwrap_or("?");
                let why = if e.is_panic() {
                    let p = e.into_panic();
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "panic".into())
                } else {
                    e.to_string()
                };
                eprintln!("restart: rabbitmq {name}: FAILED: {why}");
                failed.push(format!("{name}: {why}"));
            }
        }
    }
    eprintln!(
        "restart: RabbitMQ was restarted {} time(s)",
        group.restarts().await
    );
    assert!(
        failed.is_empty(),
        "failed on RabbitMQ:\n{}",
        failed.join("\n")
    );
}

/// A restart scenario, boxed so scenarios can be run as a list.
pub type Scenario =
    for<'a> fn(
        &'a mut RestartableBroker,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

// ---------------------------------------------------------------------------------------------
// Small AMQP helpers.
// ---------------------------------------------------------------------------------------------

/// `delivery_mode = 2`.
pub fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// `delivery_mode = 1`.
pub fn transient() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(1)
}

/// Declares a durable (non-exclusive, non-auto-delete) queue with `args`.
pub async fn durable_queue(ch: &Channel, q: &str, args: FieldTable) {
    ch.queue_declare(
        q.into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("declare durable queue {q}: {e}"));
}

/// Declares a non-durable (non-exclusive, non-auto-delete) queue.
pub async fn transient_queue(ch: &Channel, q: &str) {
    ch.queue_declare(
        q.into(),
        lapin::options::QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("declare non-durable queue {q}: {e}"));
}

/// Declares an exchange.
pub async fn exchange(
    ch: &Channel,
    x: &str,
    kind: lapin::ExchangeKind,
    durable: bool,
    args: FieldTable,
) {
    ch.exchange_declare(
        x.into(),
        kind,
        lapin::options::ExchangeDeclareOptions {
            durable,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("declare exchange {x}: {e}"));
}

/// Binds queue `q` to exchange `x`.
pub async fn bind(ch: &Channel, q: &str, x: &str, key: &str, args: FieldTable) {
    ch.queue_bind(
        q.into(),
        x.into(),
        key.into(),
        lapin::options::QueueBindOptions::default(),
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("bind {q} to {x} with {key:?}: {e}"));
}

/// Binds exchange `destination` to exchange `source`.
pub async fn bind_exchange(ch: &Channel, destination: &str, source: &str, key: &str) {
    ch.exchange_bind(
        destination.into(),
        source.into(),
        key.into(),
        lapin::options::ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("bind exchange {destination} to {source} with {key:?}: {e}"));
}

/// Publishes every body on a confirm-mode channel with all confirms outstanding at once, then
/// waits for them: each must be a plain ack.
pub async fn publish_all(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    bodies: impl IntoIterator<Item = Vec<u8>>,
    properties: BasicProperties,
) {
    let mut confirms = Vec::new();
    for body in bodies {
        confirms.push(
            ch.basic_publish(
                exchange.into(),
                routing_key.into(),
                lapin::options::BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await
            .expect("basic.publish"),
        );
    }
    for confirm in confirms {
        let c = tokio::time::timeout(Duration::from_secs(30), confirm)
            .await
            .expect("publisher confirm within 30 s")
            .expect("publisher confirm");
        assert!(
            matches!(c, lapin::Confirmation::Ack(None)),
            "expected a plain ack, got {c:?}"
        );
    }
}

/// Takes every message in `queue` with `basic.get` (no-ack), in order.
pub async fn get_all(ch: &Channel, queue: &str) -> Vec<lapin::message::Delivery> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(
            queue.into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap_or_else(|e| panic!("basic.get from {queue}: {e}"))
    {
        out.push(m.delivery);
    }
    out
}

/// The bodies of `deliveries` as UTF-8 (lossy).
pub fn bodies(deliveries: &[lapin::message::Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8_lossy(&d.data).into_owned())
        .collect()
}

/// Reports a process exit as "exit code N" or "signal".
pub fn describe(status: &ExitStatus) -> String {
    match status.code() {
        Some(c) => format!("exit code {c}"),
        None => format!("{status}"),
    }
}
