//! Management HTTP API: the client and helpers every `management_*` module uses, and the
//! scenarios for the overview, nodes, whoami, authentication, error bodies and health checks.
//!
//! RabbitMQ refreshes its statistics every 5 s, so counts and some fields appear late there:
//! scenarios wait for them with [`poll`] instead of sleeping.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tests::{Broker, Target, parity, unique};

/// How long [`poll`] waits for RabbitMQ's statistics (refreshed every 5 s) to show a change.
pub const STATS_WAIT: Duration = Duration::from_secs(15);

/// The default vhost `/` in a path.
pub const VHOST: &str = "%2F";

/// A reply of the API.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client of one broker's management API, as guest.
#[derive(Clone, Debug)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    user: (String, String),
}

impl Api {
    pub fn new(b: &Broker) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: b.api().trim_end_matches('/').to_owned(),
            user: ("guest".into(), "guest".into()),
        }
    }

    /// The same API with other credentials.
    pub fn as_user(&self, user: &str, pass: &str) -> Self {
        Self {
            user: (user.into(), pass.into()),
            ..self.clone()
        }
    }

    /// Sends `method path` with an optional JSON body and extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(&self.user.0, Some(&self.user.1))
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body.to_string()), &[])
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body.to_string()), &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// GET that must answer 200; returns the JSON body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.body
    }

    /// Declares a queue in `/` (201 or 204 expected).
    pub async fn declare_queue(&self, name: &str, body: Value) {
        let r = self
            .put(&format!("/api/queues/{VHOST}/{}", enc(name)), body)
            .await;
        assert!(
            r.status == 201 || r.status == 204,
            "declare queue {name}: {} {}",
            r.status,
            r.text
        );
    }

    /// Deletes a queue of `/` if it exists (cleanup).
    pub async fn delete_queue(&self, name: &str) {
        self.delete(&format!("/api/queues/{VHOST}/{}", enc(name)))
            .await;
    }

    /// Declares an exchange in `/`.
    pub async fn declare_exchange(&self, name: &str, kind: &str) {
        let r = self
            .put(
                &format!("/api/exchanges/{VHOST}/{}", enc(name)),
                json!({"type": kind, "durable": false}),
            )
            .await;
        assert!(
            r.status == 201 || r.status == 204,
            "declare exchange {name}: {} {}",
            r.status,
            r.text
        );
    }

    /// Deletes an exchange of `/` if it exists (cleanup).
    pub async fn delete_exchange(&self, name: &str) {
        self.delete(&format!("/api/exchanges/{VHOST}/{}", enc(name)))
            .await;
    }

    /// Publishes a string payload through the default exchange to `queue`; asserts it routed.
    pub async fn publish_to(&self, queue: &str, payload: &str) {
        let r = self
            .post(
                &format!("/api/exchanges/{VHOST}/amq.default/publish"),
                json!({"routing_key": queue, "payload": payload,
                       "payload_encoding": "string", "properties": {}}),
            )
            .await;
        assert_eq!(r.status, 200, "publish: {}", r.text);
        assert_eq!(r.body, json!({"routed": true}));
    }

    /// `POST /get` on a queue of `/` with `ackmode` (encoding auto); asserts 200.
    pub async fn get_messages(&self, queue: &str, count: u32, ackmode: &str) -> Vec<Value> {
        let r = self
            .post(
                &format!("/api/queues/{VHOST}/{}/get", enc(queue)),
                json!({"count": count, "ackmode": ackmode, "encoding": "auto"}),
            )
            .await;
        assert_eq!(r.status, 200, "get from {queue}: {}", r.text);
        r.body.as_array().cloned().expect("an array of messages")
    }

    /// Waits until `GET path` answers 200 with a body `check` accepts, and returns it.
    pub async fn poll_get(&self, what: &str, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        poll(what, || async {
            let r = self.get(path).await;
            (r.status == 200 && check(&r.body)).then_some(r.body)
        })
        .await
    }
}

/// Percent-encodes one path segment.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Polls `f` every 250 ms until it returns `Some`, for up to [`STATS_WAIT`].
pub async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STATS_WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The object keys of `v`, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// Asserts that `v` has every field in `fields` (dotted paths allowed).
#[track_caller]
pub fn assert_fields(v: &Value, fields: &[&str]) {
    for f in fields {
        let found = f.split('.').try_fold(v, |v, k| v.get(k));
        assert!(found.is_some(), "field {f} missing in {v}");
    }
}

/// The port of a base URL (`http://127.0.0.1:15672` → 15672).
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

parity!(
    overview_fields,
    nodes_and_whoami,
    auth_failures,
    error_bodies,
    health_checks,
    aliveness_test,
);

async fn overview_fields(b: &Broker) {
    let api = Api::new(b);
    let o = api.get_ok("/api/overview").await;
    assert_fields(
        &o,
        &[
            "message_stats",
            "queue_totals",
            "object_totals.queues",
            "object_totals.exchanges",
            "object_totals.connections",
            "object_totals.channels",
            "object_totals.consumers",
            "listeners",
            "node",
            "rabbitmq_version",
            "management_version",
            "cluster_name",
            "exchange_types",
            "product_name",
        ],
    );
    assert!(o["message_stats"].is_object() || o["message_stats"] == json!([]));
    assert!(o["queue_totals"].is_object());
    assert!(
        o["rabbitmq_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let amqp_port = b.addr.port();
    let listeners = o["listeners"].as_array().expect("listeners is a list");
    assert!(
        listeners
            .iter()
            .any(|l| l["protocol"] == "amqp" && l["port"] == amqp_port && l["node"] == o["node"]),
        "no amqp listener on {amqp_port} in {listeners:?}"
    );
    let types: Vec<&str> = o["exchange_types"]
        .as_array()
        .expect("exchange_types")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for t in ["direct", "fanout", "headers", "topic"] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    assert_fields(
        &o["queue_totals"],
        &["messages", "messages_ready", "messages_unacknowledged"],
    );
}

async fn nodes_and_whoami(b: &Broker) {
    let api = Api::new(b);
    let o = api.get_ok("/api/overview").await;
    let nodes = api.get_ok("/api/nodes").await;
    let nodes = nodes.as_array().expect("nodes is a list");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0]["name"], o["node"]);
    assert_fields(
        &nodes[0],
        &[
            "type",
            "running",
            "mem_used",
            "mem_limit",
            "mem_alarm",
            "disk_free",
            "disk_free_limit",
            "disk_free_alarm",
            "fd_used",
            "fd_total",
            "sockets_used",
            "sockets_total",
            "proc_used",
            "proc_total",
            "uptime",
            "partitions",
        ],
    );
    assert_eq!(nodes[0]["running"], true);
    assert_eq!(nodes[0]["type"], "disc");
    let name = nodes[0]["name"].as_str().expect("node name");
    let one = api.get_ok(&format!("/api/nodes/{}", enc(name))).await;
    assert_eq!(one["name"], name);
    // (An unknown node name is a 500 on RabbitMQ 3.10, so it is not compared.)

    let me = api.get_ok("/api/whoami").await;
    assert_eq!(me["name"], "guest");
    assert_eq!(me["tags"], json!(["administrator"]));
}

async fn auth_failures(b: &Broker) {
    let api = Api::new(b);
    // No credentials at all.
    let r = reqwest::Client::new()
        .get(format!("{}/api/overview", b.api()))
        .send()
        .await
        .expect("GET /api/overview");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic realm=\"RabbitMQ Management\"")
    );
    // A bare challenge: no body.
    assert_eq!(r.text().await.expect("body"), "");
    // Wrong password, and a user that does not exist.
    for (user, pass) in [("guest", "wrong"), ("no-such-user", "guest")] {
        let r = api.as_user(user, pass).get("/api/overview").await;
        assert_eq!(r.status, 401, "{user}");
        assert_eq!(
            r.body,
            json!({"error": "not_authorized", "reason": "Login failed"}),
            "{user}"
        );
        assert!(r.header("www-authenticate").is_some());
    }
}

async fn error_bodies(b: &Broker) {
    let api = Api::new(b);
    let not_found = json!({"error": "Object Not Found", "reason": "Not Found"});
    for path in [
        "/api/no-such-endpoint".to_owned(),
        format!("/api/queues/{VHOST}/{}", unique("mgmt-missing")),
        format!("/api/exchanges/{VHOST}/{}", unique("mgmt-missing")),
        "/api/queues/no-such-vhost".to_owned(),
    ] {
        let r = api.get(&path).await;
        assert_eq!((r.status, &r.body), (404, &not_found), "GET {path}");
    }
    let q = unique("mgmt-json");
    let r = api
        .send(
            Method::PUT,
            &format!("/api/queues/{VHOST}/{}", enc(&q)),
            Some("{\"durable\": tru".into()),
            &[],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "bad_request", "reason": "not_json"})
    );
    // Nothing was declared.
    assert_eq!(
        api.get(&format!("/api/queues/{VHOST}/{}", enc(&q)))
            .await
            .status,
        404
    );
    // A method the resource does not have.
    for (method, path) in [
        (Method::DELETE, "/api/overview"),
        (Method::POST, "/api/whoami"),
        (Method::PUT, "/api/nodes"),
    ] {
        let r = api.send(method.clone(), path, Some("{}".into()), &[]).await;
        assert_eq!(r.status, 405, "{method} {path}");
    }
}

async fn health_checks(b: &Broker) {
    let api = Api::new(b);
    let ok = json!({"status": "ok"});
    for path in [
        "/api/health/checks/alarms",
        "/api/health/checks/local-alarms",
        "/api/health/checks/virtual-hosts",
    ] {
        assert_eq!(api.get_ok(path).await, ok, "{path}");
    }
    let amqp = b.addr.port();
    let r = api
        .get(&format!("/api/health/checks/port-listener/{amqp}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"status": "ok", "port": amqp}));
    // A port nothing listens on: bind one, note it, let it go.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port();
    let r = api
        .get(&format!("/api/health/checks/port-listener/{unused}"))
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["status"], "failed");
    assert_eq!(r.body["reason"], "No active listener");
    assert_eq!(r.body["missing"], unused);
    assert!(
        r.body["ports"]
            .as_array()
            .is_some_and(|p| p.contains(&json!(amqp))),
        "{}",
        r.text
    );
    let r = api.get("/api/health/checks/port-listener/not-a-port").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "bad_request", "reason": "Invalid port"})
    );

    for proto in ["amqp", "amqp091", "AMQP0-9-1"] {
        let r = api
            .get(&format!("/api/health/checks/protocol-listener/{proto}"))
            .await;
        assert_eq!(r.status, 200, "{proto}: {}", r.text);
        assert_eq!(
            r.body,
            json!({"status": "ok", "protocol": "amqp"}),
            "{proto}"
        );
    }
    let r = api.get("/api/health/checks/protocol-listener/stomp").await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["missing"], "stomp");

    let r = api.get("/api/health/checks/ready-to-serve-clients").await;
    match b.target {
        // RabbitMQ 3.10 does not have this check yet (it came with 3.11/3.12); we serve it
        // for the newer tools that call it.
        Target::RabbitMq => assert_eq!(r.status, 404, "{}", r.text),
        Target::Ours => assert_eq!((r.status, r.body), (200, ok.clone())),
    }
}

async fn aliveness_test(b: &Broker) {
    let api = Api::new(b);
    let r = api.get(&format!("/api/aliveness-test/{VHOST}")).await;
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"status": "ok"})),
        "{}",
        r.text
    );
    let r = api
        .get(&format!("/api/aliveness-test/{}", unique("mgmt-no-vhost")))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
}
