//! Harness for running the sales programs as a user would: the real binaries as child processes,
//! each test with its own exchange and queue names, working folder, and helpers to look at the
//! broker, a small SMTP sink and a TCP proxy that can cut the programs off from the broker.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use tests::Broker;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Directory holding the built `producer`, `email_consumer`, `loyalty_consumer` and `consumer`.
/// Built once per test process with the same profile and target directory as this test binary,
/// unless `CLIENTS_BIN_DIR` points at prebuilt ones.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| match std::env::var("CLIENTS_BIN_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => tests::cargo_build(&["-p", "clients", "--bins"]),
    })
}

/// Path of our `broker` binary, built on first use like [`bin_dir`].
pub fn broker_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var("CLIENTS_BIN_DIR") {
        Ok(dir) => PathBuf::from(dir).join("broker"),
        Err(_) => tests::cargo_build(&["-p", "broker", "--bin", "broker"]).join("broker"),
    })
}

/// Our broker as a child process with its own port and data folder, so a test can restart it.
pub struct ChildBroker {
    pub port: u16,
    data_dir: PathBuf,
    log_dir: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl ChildBroker {
    pub async fn start(dir: &Path) -> Self {
        let mut b = Self {
            port: closed_port().await,
            data_dir: dir.join("broker-data"),
            log_dir: dir.to_path_buf(),
            child: None,
            starts: 0,
        };
        b.restart().await;
        b
    }

    /// The `tests::Broker` describing it.
    pub fn broker(&self) -> Broker {
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        Broker {
            url: format!("amqp://guest:guest@{addr}/%2f"),
            addr,
            target: tests::Target::Ours,
            http: None,
            prometheus: None,
        }
    }

    /// Starts it (again), on the same port and data folder, and waits until it accepts.
    pub async fn restart(&mut self) {
        self.starts += 1;
        let log = self.log_dir.join(format!("broker-{}.log", self.starts));
        let child = Command::new(broker_bin())
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--management-port", "0", "--prometheus-port", "0"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("broker log"))
            .stderr(std::fs::File::create(log.with_extension("err")).expect("broker log"))
            .kill_on_drop(true)
            .spawn()
            .expect("start broker");
        self.child = Some(child);
        eventually(
            "the broker to accept connections",
            Duration::from_secs(20),
            || {
                let port = self.port;
                async move {
                    TcpStream::connect(("127.0.0.1", port))
                        .await
                        .ok()
                        .map(|_| ())
                }
            },
        )
        .await;
    }

    /// SIGTERM, and wait for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
        }
    }
}

/// One test's private world: unique names, a working folder, and the broker's URL.
pub struct World {
    /// The broker under test.
    pub broker: Broker,
    /// AMQP URL the programs use (the broker's, or a proxy's).
    pub url: String,
    /// Unique fanout exchange.
    pub exchange: String,
    /// Unique email queue.
    pub email_queue: String,
    /// Unique loyalty queue.
    pub loyalty_queue: String,
    /// Working folder of the programs (outbox, ledger, logs).
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new(broker: &Broker, name: &str) -> Self {
        let base = tests::unique(&format!("clients-{name}"));
        Self {
            broker: broker.clone(),
            url: broker.url.clone(),
            exchange: format!("{base}.sales"),
            email_queue: format!("{base}.email"),
            loyalty_queue: format!("{base}.loyalty"),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command for `program` with this world's names and URL in its environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(bin_dir().join(program));
        cmd.current_dir(self.dir.path())
            .env("AMQP_URL", &self.url)
            .env("SALES_EXCHANGE", &self.exchange)
            .env("EMAIL_QUEUE", &self.email_queue)
            .env("LOYALTY_QUEUE", &self.loyalty_queue)
            .env("RUST_LOG", "info")
            .env_remove("SMTP_URL")
            .env_remove("SALES_TEST_STALL_BEFORE_ACK")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Starts a long-running program; its stdout and stderr go to files in the working folder.
    pub fn spawn(&self, label: &str, mut cmd: Command) -> Program {
        let out = self.path(&format!("{label}.stdout"));
        let log = self.path(&format!("{label}.stderr"));
        cmd.stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&log).expect("stderr file"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        Program {
            label: label.to_string(),
            child,
            out,
            log,
        }
    }

    /// Runs a one-shot program to the end (at most `limit`).
    pub async fn run(&self, mut cmd: Command, limit: Duration) -> Finished {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let output = tokio::time::timeout(limit, cmd.output())
            .await
            .expect("program did not finish in time")
            .expect("program could not run");
        Finished {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `producer` with `args` and this world's settings.
    pub async fn produce(&self, args: &[&str]) -> Finished {
        let mut cmd = self.command("producer");
        cmd.args(args);
        self.run(cmd, Duration::from_secs(60)).await
    }

    /// Starts the email consumer writing to `outbox/` with the given extra flags and env.
    pub async fn start_email(&self, label: &str, args: &[&str], env: &[(&str, &str)]) -> Program {
        let mut cmd = self.command("email_consumer");
        cmd.arg("--outbox-dir").arg(self.path("outbox")).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let p = self.spawn(label, cmd);
        p.wait_log("waiting for sales", Duration::from_secs(20))
            .await;
        p
    }

    /// Starts the loyalty consumer on `loyalty.db` with the given extra flags and env.
    pub async fn start_loyalty(&self, label: &str, args: &[&str], env: &[(&str, &str)]) -> Program {
        let mut cmd = self.command("loyalty_consumer");
        cmd.arg("--ledger").arg(self.path("loyalty.db")).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let p = self.spawn(label, cmd);
        p.wait_log("waiting for sales", Duration::from_secs(20))
            .await;
        p
    }

    /// Points credited to `sale_id` in this world's ledger, if any.
    pub fn credited(&self, sale_id: &str) -> Option<u64> {
        let path = self.path("loyalty.db");
        if !path.exists() {
            return None;
        }
        clients::loyalty::Ledger::open(&path)
            .ok()?
            .credited(sale_id)
            .ok()
            .flatten()
    }

    /// A channel on a fresh connection to the real broker (not through any proxy).
    pub async fn channel(&self) -> (Connection, Channel) {
        let conn = tests::connect(&self.broker.url).await;
        let ch = conn.create_channel().await.expect("channel");
        (conn, ch)
    }

    /// Ready messages in `queue` (it must exist).
    pub async fn queue_len(&self, queue: &str) -> u32 {
        let (conn, ch) = self.channel().await;
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("queue {queue} should exist: {e}"));
        let _ = conn.close(200, "ok".into()).await;
        q.message_count()
    }

    /// Takes one message from `queue`, waiting up to `limit` for one to arrive.
    pub async fn take(&self, queue: &str, limit: Duration) -> BasicGetMessage {
        let (conn, ch) = self.channel().await;
        let deadline = Instant::now() + limit;
        loop {
            let got = ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap_or_else(|e| panic!("basic.get on {queue}: {e}"));
            if let Some(msg) = got {
                let _ = conn.close(200, "ok".into()).await;
                return msg;
            }
            assert!(
                Instant::now() < deadline,
                "no message arrived in {queue} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Publishes raw bytes to the world's exchange (as a misbehaving producer would).
    pub async fn publish_raw(&self, body: &[u8]) {
        let (conn, ch) = self.channel().await;
        ch.basic_publish(
            self.exchange.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("publish completes");
        let _ = conn.close(200, "ok".into()).await;
    }

    /// Deletes everything this world declared, so the shared RabbitMQ stays clean.
    pub async fn cleanup(&self) {
        let (conn, ch) = self.channel().await;
        for q in [&self.email_queue, &self.loyalty_queue] {
            for name in [q.clone(), format!("{q}.retry"), format!("{q}.dead")] {
                let _ = ch
                    .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
        }
        let _ = ch
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = conn.close(200, "ok".into()).await;
    }
}

/// What a one-shot program left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// A running program.
pub struct Program {
    pub label: String,
    child: Child,
    out: PathBuf,
    log: PathBuf,
}

impl Program {
    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Everything it printed so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until its log contains `needle`, failing with the log after `limit`.
    pub async fn wait_log(&self, needle: &str, limit: Duration) {
        self.wait_log_count(needle, 1, limit).await;
    }

    /// Waits until its log contains `needle` at least `n` times.
    pub async fn wait_log_count(&self, needle: &str, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log();
            if log.matches(needle).count() >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {needle:?} x{n} not logged within {limit:?}; log:\n{log}",
                self.label
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().expect("still running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} ignored SIGTERM; log:\n{}", self.label, self.log()))
            .expect("wait")
    }

    /// SIGKILL: the process dies without any cleanup, as in a crash.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill");
    }
}

/// Polls `check` every 100 ms until it returns `Some`, failing with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Decodes a quoted-printable body (soft line breaks and `=XX` escapes).
pub fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1..i + 3) == Some(b"\r\n") {
                i += 3;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let Some(hex) = text.get(i + 1..i + 3)
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A free TCP port on loopback with nothing listening (bound then released).
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

/// One email received by [`SmtpSink`].
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A tiny SMTP server that accepts everything and hands each email to the test.
pub struct SmtpSink {
    pub addr: SocketAddr,
    rx: mpsc::Receiver<Mail>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind smtp sink");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = smtp_session(sock, tx).await;
                });
            }
        });
        Self { addr, rx, task }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub async fn next(&mut self, limit: Duration) -> Mail {
        tokio::time::timeout(limit, self.rx.recv())
            .await
            .expect("no email reached the SMTP sink in time")
            .expect("sink closed")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn smtp_session(sock: TcpStream, tx: mpsc::Sender<Mail>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = angle(&line);
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(angle(&line));
            b"250 ok\r\n"
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            b"250 ok\r\n"
        } else if upper.starts_with("DATA") {
            w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            let mail = Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
            };
            let _ = tx.send(mail).await;
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        w.write_all(reply).await?;
    }
}

fn angle(line: &str) -> String {
    line.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(addr, _)| addr.to_string())
        .unwrap_or_default()
}

/// A TCP proxy in front of the broker that the test can switch off (every connection through it
/// is cut and new ones are dropped, as when the broker goes away) and on again.
pub struct Proxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let (up, _) = watch::channel(true);
        let state = up.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*state.borrow() {
                    drop(client);
                    continue;
                }
                let mut down = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up, task }
    }

    /// The broker URL through this proxy.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set_up(false);
        self.task.abort();
    }
}
