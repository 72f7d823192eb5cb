//! End-to-end tests of the `brokerctl` binary against two live management HTTP APIs: our
//! broker's (started in-process, `<scenario>::ours`) and RabbitMQ's at `CTL_TEST_URL` (default
//! `http://127.0.0.1:15672`, user `CTL_TEST_USER`/`CTL_TEST_PASS`, default guest/guest;
//! `<scenario>::rabbitmq`, which prints one line and passes when that API does not answer).
//!
//! Every assertion holds for any RabbitMQ-compatible API: objects are set up through the
//! documented endpoints, names are unique (`ctl-test-…`) and removed by a guard even when an
//! assertion fails. RabbitMQ reports message counts from statistics it emits every 5 s, so a
//! check of a count polls until the count shows, within a deadline, instead of sleeping.

use std::cell::RefCell;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, fs, io::Write, thread};

use serde_json::{Value, json};

/// How long a message count may take to show in RabbitMQ's statistics (emitted every 5 s).
const STATS_DEADLINE: Duration = Duration::from_secs(30);

/// The management API under test.
struct Api {
    url: String,
    user: String,
    pass: String,
    agent: ureq::Agent,
}

/// What a run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Deletes what a test created when it ends, passed or failed.
struct Cleanup<'a> {
    api: &'a Api,
    paths: RefCell<Vec<String>>,
}

/// Runs each scenario against our broker (in-process, with its management API on a port of
/// its own) and against the API at `CTL_TEST_URL` (RabbitMQ's by default).
macro_rules! both {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn ours() {
                super::$name(&super::Api::ours());
            }
            #[test]
            fn rabbitmq() {
                if let Some(api) = super::Api::connect() {
                    super::$name(&api);
                }
            }
        }
    )+};
}

both!(
    list_queues_shows_a_published_message_then_purge_and_delete,
    delete_queue_if_empty_keeps_a_queue_with_messages,
    users_tags_passwords_and_permissions,
    vhosts_are_percent_encoded,
    definitions_export_and_import,
    health_checks_pass,
    the_rabbitmq_diagnostics_shim_pings,
);

impl Api {
    /// Our broker, started once per test process (`tests::start_broker`).
    fn ours() -> Api {
        static OURS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let url = OURS.get_or_init(|| {
            tests::start_broker(broker::Config {
                data_dir: tests::fresh_data_dir("brokerctl"),
                ..broker::Config::default()
            })
            .api()
            .to_owned()
        });
        Api::at(url.clone())
    }

    fn at(url: String) -> Api {
        Api {
            url: url.trim_end_matches('/').to_owned(),
            user: env::var("CTL_TEST_USER").unwrap_or_else(|_| "guest".to_owned()),
            pass: env::var("CTL_TEST_PASS").unwrap_or_else(|_| "guest".to_owned()),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        }
    }

    /// The API at `CTL_TEST_URL`, or `None` (and one line saying why) if it does not answer.
    fn connect() -> Option<Api> {
        let url = env::var("CTL_TEST_URL").unwrap_or_else(|_| "http://127.0.0.1:15672".to_owned());
        let api = Api::at(url.clone());
        match api.request("GET", "/api/overview", None) {
            Ok((200, _)) => Some(api),
            Ok((status, body)) => {
                println!(
                    "skipping: {url}/api/overview answered HTTP {status} {body} (set CTL_TEST_URL)"
                );
                None
            }
            Err(e) => {
                println!("skipping: no management API answers at {url} ({e}); set CTL_TEST_URL");
                None
            }
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), ureq::Error> {
        self.request_as(&self.user, &self.pass, method, path, body)
    }

    fn request_as(
        &self,
        user: &str,
        pass: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), ureq::Error> {
        let url = format!("{}{path}", self.url);
        let auth = format!("Basic {}", base64(&format!("{user}:{pass}")));
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("authorization", &auth)
                .call(),
            ("PUT", body) => self
                .agent
                .put(&url)
                .header("authorization", &auth)
                .send_json(body.cloned().unwrap_or(json!({}))),
            (_, body) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .send_json(body.cloned().unwrap_or(json!({}))),
        };
        let mut response = response?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string()?;
        Ok((status, text))
    }

    fn status(&self, method: &str, path: &str, body: Option<&Value>) -> u16 {
        match self.request(method, path, body) {
            Ok((status, _)) => status,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn declare_queue(&self, vhost_segment: &str, name: &str) {
        let path = format!("/api/queues/{vhost_segment}/{name}");
        let status = self.status(
            "PUT",
            &path,
            Some(&json!({"durable": false, "auto_delete": false, "arguments": {}})),
        );
        assert!(matches!(status, 201 | 204), "PUT {path} answered {status}");
    }

    fn publish(&self, queue: &str, payload: &str) {
        let body = json!({
            "properties": {},
            "routing_key": queue,
            "payload": payload,
            "payload_encoding": "string"
        });
        let path = "/api/exchanges/%2F/amq.default/publish";
        let (status, answer) = self
            .request("POST", path, Some(&body))
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert_eq!(status, 200, "POST {path}: {answer}");
        let answer: Value = serde_json::from_str(&answer).expect("publish answers JSON");
        assert_eq!(
            answer["routed"],
            json!(true),
            "the message was not routed to {queue}"
        );
    }

    /// The messages still in `queue` ("/" vhost), taken without requeueing: 0 after a purge.
    fn take_all(&self, queue: &str) -> usize {
        let body = json!({"count": 10, "ackmode": "ack_requeue_false", "encoding": "auto"});
        let path = format!("/api/queues/%2F/{queue}/get");
        let (status, answer) = self
            .request("POST", &path, Some(&body))
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert_eq!(status, 200, "POST {path}: {answer}");
        match serde_json::from_str::<Value>(&answer) {
            Ok(Value::Array(messages)) => messages.len(),
            other => panic!("POST {path} answered {other:?}"),
        }
    }

    /// Runs `brokerctl --url … --username … --password … ARGS`, with no stdin.
    fn brokerctl(&self, args: &[&str]) -> Run {
        self.brokerctl_with_stdin(args, None)
    }

    fn brokerctl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_brokerctl"));
        command
            .args([
                "--url",
                &self.url,
                "--username",
                &self.user,
                "--password",
                &self.pass,
            ])
            .args(args);
        run(command, stdin)
    }
}

impl<'a> Cleanup<'a> {
    fn new(api: &'a Api) -> Self {
        Cleanup {
            api,
            paths: RefCell::new(Vec::new()),
        }
    }

    /// Deletes `path` (e.g. `/api/queues/%2F/q`) when the test ends.
    fn delete_later(&self, path: String) {
        self.paths.borrow_mut().push(path);
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for path in self.paths.borrow().iter().rev() {
            // Best effort: the test may have deleted it already.
            let _ = self.api.request("DELETE", path, None);
        }
    }
}

/// Runs a prepared command with a clean environment for our variables.
fn run(mut command: Command, stdin: Option<&str>) -> Run {
    for var in [
        "BROKER_MGMT_URL",
        "RABBITMQ_DEFAULT_USER",
        "RABBITMQ_DEFAULT_PASS",
    ] {
        if !command.get_envs().any(|(k, _)| k == var) {
            command.env_remove(var);
        }
    }
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("brokerctl starts");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("brokerctl ends");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A name no other test or run uses: `ctl-test-KIND-PID-N-NANOS`.
fn unique(kind: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "ctl-test-{kind}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `attempt` until it gives a value, failing after `STATS_DEADLINE`.
fn eventually<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + STATS_DEADLINE;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(250));
    }
}

fn assert_code(run: &Run, code: i32, what: &str) {
    assert_eq!(run.code, code, "{what}: {run:#?}");
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn base64(input: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = input.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[((n >> shift) & 0x3f) as usize])
            } else {
                '='
            });
        }
    }
    out
}

fn list_queues_shows_a_published_message_then_purge_and_delete(api: &Api) {
    let cleanup = Cleanup::new(api);
    let queue = unique("queue");
    cleanup.delete_later(format!("/api/queues/%2F/{queue}"));
    api.declare_queue("%2F", &queue);
    api.publish(&queue, "hello");

    // Table: banner, header, then `name<TAB>messages`.
    let expected_row = format!("{queue}\t1");
    let table = eventually("list_queues to show 1 message", || {
        let run = api.brokerctl(&["list_queues", "name", "messages"]);
        assert_code(&run, 0, "list_queues");
        run.stdout.lines().any(|l| l == expected_row).then_some(run)
    });
    let out = lines(&table.stdout);
    assert!(out.contains(&"Listing queues for vhost / ..."), "{out:?}");
    assert!(out.contains(&"name\tmessages"), "{out:?}");

    // JSON: an array of objects with exactly the requested keys, no banner.
    let run = api.brokerctl(&["--formatter", "json", "list_queues", "name", "messages"]);
    assert_code(&run, 0, "list_queues --formatter json");
    let rows: Value = serde_json::from_str(&run.stdout).expect("the JSON formatter prints JSON");
    let rows = rows.as_array().expect("a JSON array");
    assert!(
        rows.iter()
            .all(|r| r.as_object().is_some_and(|o| o.len() == 2)),
        "{rows:?}"
    );
    assert!(
        rows.contains(&json!({"name": queue, "messages": 1})),
        "{rows:?}"
    );

    // Other columns, quiet and headerless.
    let run = api.brokerctl(&[
        "-q",
        "--no-table-headers",
        "list_queues",
        "name",
        "durable",
        "auto_delete",
    ]);
    assert_code(&run, 0, "list_queues -q --no-table-headers");
    assert!(
        lines(&run.stdout).contains(&format!("{queue}\tfalse\tfalse").as_str()),
        "{run:#?}"
    );
    assert!(!run.stdout.contains("Listing"), "{run:#?}");

    // The default exchange's binding to the queue.
    let run = api.brokerctl(&["-q", "list_bindings"]);
    assert_code(&run, 0, "list_bindings");
    let binding = format!("\texchange\t{queue}\tqueue\t{queue}\t[]");
    assert!(lines(&run.stdout).contains(&binding.as_str()), "{run:#?}");

    let run = api.brokerctl(&["purge_queue", &queue]);
    assert_code(&run, 0, "purge_queue");
    assert!(
        run.stdout
            .contains(&format!("Purging queue '{queue}' in vhost '/' ...")),
        "{run:#?}"
    );
    assert_eq!(api.take_all(&queue), 0, "purge_queue left messages");

    let run = api.brokerctl(&["delete_queue", &queue]);
    assert_code(&run, 0, "delete_queue");
    assert!(
        run.stdout.contains("Queue was successfully deleted with"),
        "{run:#?}"
    );
    assert_eq!(
        api.status("GET", &format!("/api/queues/%2F/{queue}"), None),
        404
    );

    // A missing queue: rabbitmqctl 3.10 exits 64 for delete_queue, 69 for purge_queue.
    let run = api.brokerctl(&["delete_queue", &queue]);
    assert_code(&run, 64, "delete_queue of a missing queue");
    assert!(!run.stderr.is_empty());
    let run = api.brokerctl(&["purge_queue", &queue]);
    assert_code(&run, 69, "purge_queue of a missing queue");
}

fn delete_queue_if_empty_keeps_a_queue_with_messages(api: &Api) {
    let cleanup = Cleanup::new(api);
    let queue = unique("ifempty");
    cleanup.delete_later(format!("/api/queues/%2F/{queue}"));
    api.declare_queue("%2F", &queue);
    api.publish(&queue, "keep me");

    let run = api.brokerctl(&["delete_queue", "--if-empty", &queue]);
    assert_code(
        &run,
        64,
        "delete_queue --if-empty of a queue with a message",
    );
    assert_eq!(
        api.status("GET", &format!("/api/queues/%2F/{queue}"), None),
        200
    );

    let run = api.brokerctl(&["-q", "delete_queue", "--if-unused", &queue]);
    assert_code(
        &run,
        0,
        "delete_queue --if-unused of a queue without consumers",
    );
    assert_eq!(
        api.status("GET", &format!("/api/queues/%2F/{queue}"), None),
        404
    );
}

fn users_tags_passwords_and_permissions(api: &Api) {
    let cleanup = Cleanup::new(api);
    let user = unique("user");
    cleanup.delete_later(format!("/api/users/{user}"));
    let whoami = |pass: &str| {
        api.request_as(&user, pass, "GET", "/api/whoami", None)
            .map(|(status, _)| status)
            .unwrap_or_else(|e| panic!("GET /api/whoami: {e}"))
    };

    assert_code(&api.brokerctl(&["add_user", &user, "pw1"]), 0, "add_user");
    assert_code(
        &api.brokerctl(&["add_user", &user, "pw1"]),
        70,
        "add_user of an existing user",
    );

    let run = api.brokerctl(&["set_user_tags", &user, "administrator", "monitoring"]);
    assert_code(&run, 0, "set_user_tags");
    assert!(
        run.stdout.contains("to [administrator, monitoring] ..."),
        "{run:#?}"
    );
    // The password survives a change of tags.
    assert_eq!(whoami("pw1"), 200);

    assert_code(
        &api.brokerctl(&["set_permissions", &user, ".*", "", ".*"]),
        0,
        "set_permissions",
    );

    let run = api.brokerctl(&["-q", "list_users"]);
    assert_code(&run, 0, "list_users");
    let row = format!("{user}\t[administrator, monitoring]");
    assert!(lines(&run.stdout).contains(&row.as_str()), "{run:#?}");
    let run = api.brokerctl(&["--formatter", "json", "list_users"]);
    let users: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let expected = json!({"user": user, "tags": ["administrator", "monitoring"]});
    assert!(
        users.as_array().is_some_and(|u| u.contains(&expected)),
        "{users}"
    );

    let run = api.brokerctl(&["-q", "list_permissions"]);
    assert_code(&run, 0, "list_permissions");
    let row = format!("{user}\t.*\t\t.*");
    assert!(lines(&run.stdout).contains(&row.as_str()), "{run:#?}");

    let run = api.brokerctl_with_stdin(&["change_password", &user], Some("pw2\n"));
    assert_code(&run, 0, "change_password with the password on stdin");
    assert_eq!(whoami("pw2"), 200);
    assert_eq!(whoami("pw1"), 401);

    assert_code(
        &api.brokerctl(&["clear_permissions", &user]),
        0,
        "clear_permissions",
    );
    let run = api.brokerctl(&["-q", "list_permissions"]);
    assert!(!run.stdout.contains(&user), "{run:#?}");

    assert_code(&api.brokerctl(&["delete_user", &user]), 0, "delete_user");
    assert_code(
        &api.brokerctl(&["delete_user", &user]),
        67,
        "delete_user of a missing user",
    );
    assert_code(
        &api.brokerctl(&["set_user_tags", &user, "x"]),
        67,
        "set_user_tags of a missing user",
    );
}

fn vhosts_are_percent_encoded(api: &Api) {
    let cleanup = Cleanup::new(api);
    let vhost = format!("{}/a b", unique("vhost"));
    let segment = vhost.replace('/', "%2F").replace(' ', "%20");
    cleanup.delete_later(format!("/api/vhosts/{segment}"));

    assert_code(&api.brokerctl(&["add_vhost", &vhost]), 0, "add_vhost");
    let run = api.brokerctl(&["-q", "list_vhosts"]);
    assert!(lines(&run.stdout).contains(&vhost.as_str()), "{run:#?}");

    let run = api.brokerctl(&["set_permissions", "-p", &vhost, &api.user, ".*", ".*", ".*"]);
    assert_code(&run, 0, "set_permissions -p");
    let queue = unique("vhq");
    api.declare_queue(&segment, &queue);
    let run = api.brokerctl(&["-q", "-p", &vhost, "list_queues", "name"]);
    assert_code(&run, 0, "list_queues -p");
    assert_eq!(lines(&run.stdout), ["name", queue.as_str()], "{run:#?}");

    assert_code(&api.brokerctl(&["delete_vhost", &vhost]), 0, "delete_vhost");
    assert_code(
        &api.brokerctl(&["delete_vhost", &vhost]),
        65,
        "delete_vhost of a missing vhost",
    );
    assert_code(
        &api.brokerctl(&["list_permissions", "-p", &vhost]),
        65,
        "list_permissions -p missing",
    );
}

fn definitions_export_and_import(api: &Api) {
    let cleanup = Cleanup::new(api);

    let run = api.brokerctl(&["export_definitions", "-"]);
    assert_code(&run, 0, "export_definitions -");
    let definitions: Value = serde_json::from_str(&run.stdout).expect("definitions are JSON");
    for key in ["queues", "exchanges", "users"] {
        assert!(
            definitions[key].is_array(),
            "no {key} array in {definitions}"
        );
    }

    let dir: PathBuf = env::temp_dir();
    let file = dir.join(format!("{}.json", unique("export")));
    let file_name = file.to_string_lossy().into_owned();
    let run = api.brokerctl(&["export_definitions", &file_name]);
    assert_code(&run, 0, "export_definitions FILE");
    let saved = fs::read_to_string(&file).expect("the file was written");
    let _ = fs::remove_file(&file);
    assert!(serde_json::from_str::<Value>(&saved).is_ok_and(|d| d["queues"].is_array()));

    let queue = unique("imported");
    cleanup.delete_later(format!("/api/queues/%2F/{queue}"));
    let document = json!({"queues": [{
        "name": queue, "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}
    }]});
    let import = dir.join(format!("{}.json", unique("import")));
    fs::write(&import, document.to_string()).expect("write the definitions file");
    let run = api.brokerctl(&["import_definitions", &import.to_string_lossy()]);
    let _ = fs::remove_file(&import);
    assert_code(&run, 0, "import_definitions FILE");
    assert_eq!(
        api.status("GET", &format!("/api/queues/%2F/{queue}"), None),
        200
    );

    let queue = unique("stdin");
    cleanup.delete_later(format!("/api/queues/%2F/{queue}"));
    let document = json!({"queues": [{
        "name": queue, "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}
    }]});
    let run = api.brokerctl_with_stdin(
        &["-q", "import_definitions", "-"],
        Some(&document.to_string()),
    );
    assert_code(&run, 0, "import_definitions -");
    assert_eq!(
        api.status("GET", &format!("/api/queues/%2F/{queue}"), None),
        200
    );

    let run = api.brokerctl_with_stdin(&["import_definitions", "-"], Some("not json"));
    assert_code(
        &run,
        65,
        "import_definitions of a document that is not JSON",
    );
}

fn health_checks_pass(api: &Api) {
    let run = api.brokerctl(&["-q", "ping"]);
    assert_code(&run, 0, "ping");
    assert_eq!(run.stdout, "Ping succeeded\n");
    for check in ["check_running", "check_local_alarms", "listeners", "alarms"] {
        assert_code(&api.brokerctl(&[check]), 0, check);
    }
    let run = api.brokerctl(&["--formatter", "json", "check_local_alarms"]);
    assert_eq!(run.stdout.trim(), r#"{"result":"ok"}"#);
}

/// The binary under the name `rabbitmq-diagnostics`, configured as a container is: by the
/// environment only.
#[cfg(unix)]
fn the_rabbitmq_diagnostics_shim_pings(api: &Api) {
    let dir = env::temp_dir().join(unique("shim"));
    fs::create_dir_all(&dir).expect("create a temporary directory");
    let shim = dir.join("rabbitmq-diagnostics");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_brokerctl"), &shim).expect("symlink");
    let diagnostics = |args: &[&str], url: &str| {
        let mut command = Command::new(&shim);
        command
            .args(args)
            .env("BROKER_MGMT_URL", url)
            .env("RABBITMQ_DEFAULT_USER", &api.user)
            .env("RABBITMQ_DEFAULT_PASS", &api.pass);
        run(command, None)
    };
    let ping = diagnostics(&["-q", "ping"], &api.url);
    let running = diagnostics(&["-q", "check_running"], &api.url);
    let not_ours = diagnostics(&["list_queues"], &api.url);
    let down = diagnostics(
        &["-q", "ping"],
        &format!("http://127.0.0.1:{}", closed_port()),
    );
    let _ = fs::remove_dir_all(&dir);
    assert_code(&ping, 0, "rabbitmq-diagnostics -q ping");
    assert_eq!(ping.stdout, "Ping succeeded\n");
    assert_code(&running, 0, "rabbitmq-diagnostics -q check_running");
    assert_code(&not_ours, 64, "rabbitmq-diagnostics list_queues");
    assert_code(&down, 69, "rabbitmq-diagnostics -q ping of a closed port");
}

#[test]
fn a_closed_port_is_unavailable() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    for args in [
        &["ping"][..],
        &["-q", "check_running"],
        &["check_local_alarms"],
        &["list_queues"],
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_brokerctl"));
        command.args(["--url", &url]).args(args);
        let run = run(command, None);
        assert_code(&run, 69, &format!("{args:?} against {url}"));
        assert!(
            run.stderr.contains(&url),
            "the error names the URL: {run:#?}"
        );
    }
}

#[test]
fn usage_errors_exit_64() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    for args in [
        &["list_queues", "name", "no_such_column"][..],
        &["purge_queue"],
        &["list_users", "name"],
        &["no_such_command"],
        &["list_queues", "--formatter", "xml"],
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_brokerctl"));
        command.args(["--url", &url]).args(args);
        let run = run(command, None);
        assert_code(&run, 64, &format!("{args:?}"));
        assert!(!run.stderr.is_empty(), "{run:#?}");
    }
}
