//! The `broker` binary as a user runs it: flags, a port already in use, and a graceful stop
//! on SIGTERM / SIGINT that closes client connections with `320 CONNECTION_FORCED` and exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::{Connection, ConnectionProperties, ErrorKind};

const BROKER: &str = env!("CARGO_BIN_EXE_broker");

/// Starts the binary on a free port and waits until it logs that it listens.
fn start_broker(data_dir: &std::path::Path) -> (Child, u16) {
    start_broker_with(data_dir, &[], "listening on")
}

/// Starts the binary on a free port with `extra` flags and waits for a log line containing
/// `ready`.
fn start_broker_with(
    data_dir: &std::path::Path,
    extra: &[&std::ffi::OsStr],
    ready: &str,
) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new(BROKER)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--management-port", "0", "--prometheus-port", "0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn broker");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("broker exited before it was ready")
            .expect("read log");
        if line.contains(ready) {
            break;
        }
    }
    // Keep draining the log so the broker never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, port)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("broker-cli-{name}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("broker did not exit within 10 s");
}

async fn stop_closes_connections_with_320(signal: &str) {
    let (mut child, port) = start_broker(&temp_dir(signal));
    let conn = Connection::connect(
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        ConnectionProperties::default(),
    )
    .await
    .expect("connect");
    let mut events = conn.events_listener();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let error = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.next().await {
                Some(lapin::Event::Error(e)) => break e,
                Some(_) => continue,
                None => panic!("event stream ended without the server's close"),
            }
        }
    })
    .await
    .expect("the server closed the connection");
    let ErrorKind::ProtocolError(amqp) = error.kind() else {
        panic!("expected connection.close, got {error:?}")
    };
    assert_eq!(amqp.get_id(), 320);
    assert_eq!(
        amqp.get_message().as_str(),
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    );
    let exit = tokio::task::spawn_blocking(move || wait_exit(&mut child))
        .await
        .expect("join");
    assert_eq!(exit.code(), Some(0), "clean exit after {signal}");
}

#[tokio::test]
async fn sigterm_closes_connections_with_320_and_exits_0() {
    stop_closes_connections_with_320("TERM").await;
}

#[tokio::test]
async fn sigint_closes_connections_with_320_and_exits_0() {
    stop_closes_connections_with_320("INT").await;
}

#[test]
fn port_in_use_is_one_clear_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = Command::new(BROKER)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(temp_dir("inuse"))
        .output()
        .expect("run broker");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    assert!(line.contains(&format!("port {port} is in use")), "{line}");
    assert!(line.contains("--port"), "says what to do: {line}");
}

#[test]
fn help_explains_every_flag_and_its_environment_variable() {
    let out = Command::new(BROKER)
        .arg("--help")
        .output()
        .expect("run broker --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bind",
        "--port",
        "--default-user",
        "--default-pass",
        "--default-vhost",
        "--data-dir",
        "--management-port",
        "--prometheus-port",
        "--load-definitions",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}:\n{help}");
    }
    for var in [
        "RABBITMQ_NODE_PORT",
        "RABBITMQ_DEFAULT_USER",
        "RABBITMQ_DEFAULT_PASS",
        "RABBITMQ_DEFAULT_VHOST",
    ] {
        assert!(help.contains(var), "--help mentions {var}:\n{help}");
    }
}

#[test]
fn flags_fall_back_to_rabbitmq_environment_variables() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    // With the port taken, the error names the port that came from RABBITMQ_NODE_PORT.
    let out = Command::new(BROKER)
        .args(["--bind", "127.0.0.1"])
        .arg("--data-dir")
        .arg(temp_dir("env"))
        .env("RABBITMQ_NODE_PORT", port.to_string())
        .output()
        .expect("run broker");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("port {port} is in use")));
}

#[test]
fn management_port_in_use_names_the_flag_that_moves_or_disables_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = Command::new(BROKER)
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args([
            "--management-port",
            &port.to_string(),
            "--prometheus-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(temp_dir("mgmt-inuse"))
        .output()
        .expect("run broker");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    assert!(line.contains(&format!("port {port} is in use")), "{line}");
    assert!(line.contains("--management-port 0"), "{line}");
}

/// A definitions document as RabbitMQ exports it: user `loader` (password `guest`, hash made
/// by RabbitMQ 3.10.8), vhost `loaded` with a durable queue, and `exchange_type` for the
/// exchange.
fn definitions(exchange_type: &str) -> String {
    format!(
        r#"{{"rabbit_version":"3.10.8",
        "users":[{{"name":"loader","password_hash":"RJek3VUqR1xy4Yo2h/+xf/FBwoJcDXGGJ5Ok4CFfpQkrG1uz",
                   "hashing_algorithm":"rabbit_password_hashing_sha256","tags":["administrator"],"limits":{{}}}}],
        "vhosts":[{{"name":"loaded"}}],
        "permissions":[{{"user":"loader","vhost":"loaded","configure":".*","write":".*","read":".*"}}],
        "queues":[{{"name":"loaded-q","vhost":"loaded","durable":true,"auto_delete":false,"arguments":{{}}}}],
        "exchanges":[{{"name":"loaded-x","vhost":"loaded","type":"{exchange_type}","durable":true,
                       "auto_delete":false,"internal":false,"arguments":{{}}}}],
        "bindings":[]}}"#
    )
}

#[tokio::test]
async fn load_definitions_replaces_the_default_user_on_a_new_data_dir() {
    let dir = temp_dir("load-defs");
    let _ = std::fs::remove_dir_all(dir.join("data"));
    let file = dir.join("definitions.json");
    std::fs::write(&file, definitions("topic")).expect("write definitions");
    // The AMQP port is bound before the import: wait for the import's log line.
    let (mut child, port) = start_broker_with(
        &dir.join("data"),
        &["--load-definitions".as_ref(), file.as_os_str()],
        "definitions imported",
    );
    let conn = Connection::connect(
        &format!("amqp://loader:guest@127.0.0.1:{port}/loaded"),
        ConnectionProperties::default(),
    )
    .await
    .expect("the imported user logs in to the imported vhost");
    let ch = conn.create_channel().await.expect("channel");
    let q = ch
        .queue_declare(
            "loaded-q".into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("the imported queue exists");
    assert_eq!(q.message_count(), 0);
    ch.exchange_declare(
        "loaded-x".into(),
        lapin::ExchangeKind::Topic,
        lapin::options::ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
        lapin::types::FieldTable::default(),
    )
    .await
    .expect("the imported exchange exists");
    // As RabbitMQ: a node that imports definitions at boot gets no default user.
    let guest = Connection::connect(
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        ConnectionProperties::default(),
    )
    .await;
    assert!(guest.is_err(), "no default guest user");
    let _ = conn.close(200, "bye".into()).await;
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_invalid_definitions_file_stops_the_broker_and_imports_nothing() {
    let dir = temp_dir("bad-defs");
    let data = dir.join("data");
    let _ = std::fs::remove_dir_all(&data);
    let file = dir.join("definitions.json");
    std::fs::write(&file, definitions("no-such-type")).expect("write definitions");
    let out = Command::new(BROKER)
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(["--management-port", "0", "--prometheus-port", "0"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--load-definitions")
        .arg(&file)
        .output()
        .expect("run broker");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    assert!(line.contains("definitions.json"), "names the file: {line}");
    assert!(line.contains("no-such-type"), "says what is wrong: {line}");
    // Nothing of it was saved: the next start without the file is a new node with guest.
    let saved = std::fs::read_to_string(data.join("definitions.json")).unwrap_or_default();
    assert!(!saved.contains("loader"), "nothing saved: {saved}");

    std::fs::write(&file, "{not json").expect("write");
    let out = Command::new(BROKER)
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(["--management-port", "0", "--prometheus-port", "0"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--load-definitions")
        .arg(&file)
        .output()
        .expect("run broker");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not JSON"));
}
