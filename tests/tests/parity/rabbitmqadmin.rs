//! rabbitmqadmin v1 (`/usr/bin/rabbitmqadmin`, the Python client Debian's rabbitmq-server
//! ships), unmodified, against both brokers' management API: declare, list (table and
//! `-f tsv`), publish, get, purge, delete, `show overview`, `list connections`, and
//! definitions `export`/`import`. Outputs that do not depend on the broker are compared
//! exactly. Skipped with one line when rabbitmqadmin is not installed.

use std::path::Path;
use std::sync::Once;

use lapin::ConnectionProperties;
use serde_json::{Value, json};
use tests::{Broker, parity, unique};

use crate::management::{Api, VHOST, enc, poll, port_of};

const RABBITMQADMIN: &str = "/usr/bin/rabbitmqadmin";

parity!(
    rabbitmqadmin_queue_lifecycle,
    rabbitmqadmin_exchanges_and_bindings,
    rabbitmqadmin_connections_and_overview,
    rabbitmqadmin_export_import,
);

/// What one rabbitmqadmin run printed.
#[derive(Debug)]
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// True when rabbitmqadmin is installed; prints the skip line once otherwise.
fn installed() -> bool {
    static SKIP: Once = Once::new();
    let found = Path::new(RABBITMQADMIN).exists();
    if !found {
        SKIP.call_once(|| {
            eprintln!("rabbitmqadmin: {RABBITMQADMIN} not installed, scenarios skipped");
        });
    }
    found
}

/// Runs rabbitmqadmin against `b`'s management API as guest.
async fn admin(b: &Broker, args: &[&str]) -> Run {
    let port = port_of(b.api()).to_string();
    let out = tokio::process::Command::new(RABBITMQADMIN)
        .args(["-H", "127.0.0.1", "-P", &port, "-u", "guest", "-p", "guest"])
        .args(args)
        .output()
        .await
        .expect("run rabbitmqadmin");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs rabbitmqadmin and expects success; returns stdout.
async fn admin_ok(b: &Broker, args: &[&str]) -> String {
    let r = admin(b, args).await;
    assert!(
        r.ok,
        "rabbitmqadmin {args:?} failed: {}{}",
        r.stdout, r.stderr
    );
    r.stdout
}

/// The lines of a `-f tsv` listing that mention `name` (as a whole field).
fn tsv_rows(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.split('\t').any(|f| f == name))
        .map(str::to_owned)
        .collect()
}

async fn rabbitmqadmin_queue_lifecycle(b: &Broker) {
    if !installed() {
        return;
    }
    let q = unique("rmqadmin-q");
    let name = format!("name={q}");
    assert_eq!(
        admin_ok(b, &["declare", "queue", &name, "durable=true"]).await,
        "queue declared\n"
    );
    let api = Api::new(b);
    let d = api
        .get_ok(&format!("/api/queues/{VHOST}/{}", enc(&q)))
        .await;
    assert_eq!(
        (&d["durable"], &d["auto_delete"]),
        (&json!(true), &json!(false))
    );

    let rk = format!("routing_key={q}");
    assert_eq!(
        admin_ok(
            b,
            &[
                "publish",
                "exchange=amq.default",
                &rk,
                "payload=hello admin"
            ]
        )
        .await,
        "Message published\n"
    );
    admin_ok(
        b,
        &["publish", "exchange=amq.default", &rk, "payload=second"],
    )
    .await;

    // The header row, then the queue with its count (RabbitMQ's lags by up to 5 s).
    let listed = poll("rabbitmqadmin to list 2 messages", || async {
        let out = admin_ok(b, &["-f", "tsv", "list", "queues", "name", "messages"]).await;
        (tsv_rows(&out, &q) == [format!("{q}\t2")]).then_some(out)
    })
    .await;
    assert_eq!(listed.lines().next(), Some("name\tmessages"));
    let table = admin_ok(b, &["list", "queues", "name", "messages"]).await;
    assert!(
        table.lines().any(|l| l.contains(&q) && l.contains(" 2 ")),
        "{table}"
    );
    let header = table.lines().nth(1).unwrap_or_default();
    assert!(
        header.contains("name") && header.contains("messages"),
        "{table}"
    );

    let qarg = format!("queue={q}");
    let got = admin_ok(b, &["get", &qarg, "ackmode=ack_requeue_false"]).await;
    assert!(got.contains("hello admin"), "{got}");
    assert!(
        got.contains("payload_bytes") && got.contains("redelivered"),
        "{got}"
    );
    let got = admin_ok(
        b,
        &[
            "-f",
            "tsv",
            "get",
            &qarg,
            "ackmode=ack_requeue_true",
            "count=5",
        ],
    )
    .await;
    let mut lines = got.lines();
    assert_eq!(
        lines.next(),
        Some(
            "routing_key\texchange\tmessage_count\tpayload\tpayload_bytes\tpayload_encoding\tproperties\tredelivered"
        )
    );
    assert_eq!(
        lines.next(),
        Some(format!("{q}\t\t0\tsecond\t6\tstring\t\tFalse").as_str())
    );

    assert_eq!(
        admin_ok(b, &["purge", "queue", &name]).await,
        "queue purged\n"
    );
    poll("the purge to show", || async {
        let out = admin_ok(b, &["-f", "tsv", "list", "queues", "name", "messages"]).await;
        (tsv_rows(&out, &q) == [format!("{q}\t0")]).then_some(())
    })
    .await;
    assert_eq!(
        admin_ok(b, &["delete", "queue", &name]).await,
        "queue deleted\n"
    );
    let r = admin(b, &["delete", "queue", &name]).await;
    assert!(!r.ok);
    assert_eq!(r.stderr, format!("*** Not found: /api/queues/%2F/{q}\n\n"));
}

async fn rabbitmqadmin_exchanges_and_bindings(b: &Broker) {
    if !installed() {
        return;
    }
    let x = unique("rmqadmin-x");
    let q = unique("rmqadmin-bq");
    assert_eq!(
        admin_ok(
            b,
            &["declare", "exchange", &format!("name={x}"), "type=topic"]
        )
        .await,
        "exchange declared\n"
    );
    admin_ok(
        b,
        &["declare", "queue", &format!("name={q}"), "durable=false"],
    )
    .await;
    assert_eq!(
        admin_ok(
            b,
            &[
                "declare",
                "binding",
                &format!("source={x}"),
                &format!("destination={q}"),
                "routing_key=logs.#",
            ]
        )
        .await,
        "binding declared\n"
    );

    let exchanges = admin_ok(
        b,
        &["-f", "tsv", "list", "exchanges", "name", "type", "durable"],
    )
    .await;
    assert_eq!(tsv_rows(&exchanges, &x), [format!("{x}\ttopic\tTrue")]);
    assert_eq!(exchanges.lines().next(), Some("name\ttype\tdurable"));
    let bindings = admin_ok(
        b,
        &[
            "-f",
            "tsv",
            "list",
            "bindings",
            "source",
            "destination",
            "routing_key",
        ],
    )
    .await;
    assert_eq!(
        tsv_rows(&bindings, &q),
        [format!("\t{q}\t{q}"), format!("{x}\t{q}\tlogs.#")]
    );

    let xarg = format!("exchange={x}");
    assert_eq!(
        admin_ok(
            b,
            &[
                "publish",
                &xarg,
                "routing_key=logs.app",
                "payload=routed",
                "properties={\"content_type\":\"text/plain\",\"headers\":{\"h\":\"v\"}}",
            ]
        )
        .await,
        "Message published\n"
    );
    assert_eq!(
        admin_ok(
            b,
            &["publish", &xarg, "routing_key=metrics", "payload=lost"]
        )
        .await,
        "Message published but NOT routed\n"
    );
    let got = admin_ok(
        b,
        &[
            "-f",
            "raw_json",
            "get",
            &format!("queue={q}"),
            "ackmode=ack_requeue_false",
        ],
    )
    .await;
    let got: Value = serde_json::from_str(&got).expect("raw_json");
    assert_eq!(
        got,
        json!([{"payload_bytes": 6, "redelivered": false, "exchange": x,
                "routing_key": "logs.app", "message_count": 0,
                "properties": {"content_type": "text/plain", "headers": {"h": "v"}},
                "payload": "routed", "payload_encoding": "string"}])
    );

    assert_eq!(
        admin_ok(
            b,
            &[
                "delete",
                "binding",
                &format!("source={x}"),
                &format!("destination={q}"),
                "destination_type=queue",
                "properties_key=logs.%23",
            ]
        )
        .await,
        "binding deleted\n"
    );
    let bindings = admin_ok(
        b,
        &["-f", "tsv", "list", "bindings", "source", "destination"],
    )
    .await;
    assert_eq!(tsv_rows(&bindings, &q), [format!("\t{q}")]);
    assert_eq!(
        admin_ok(b, &["delete", "exchange", &format!("name={x}")]).await,
        "exchange deleted\n"
    );
    admin_ok(b, &["delete", "queue", &format!("name={q}")]).await;
}

async fn rabbitmqadmin_connections_and_overview(b: &Broker) {
    if !installed() {
        return;
    }
    let client = unique("rmqadmin-conn");
    let conn = lapin::Connection::connect(
        &b.url,
        ConnectionProperties::default().with_connection_name(client.as_str().into()),
    )
    .await
    .expect("connect");
    let _ch = conn.create_channel().await.expect("channel");
    let api = Api::new(b);
    let name = poll("the connection with its channel", || async {
        let all = api.get_ok("/api/connections").await;
        all.as_array()?
            .iter()
            .find(|c| {
                c["client_properties"]["connection_name"] == client.as_str() && c["channels"] == 1
            })
            .and_then(|c| c["name"].as_str().map(str::to_owned))
    })
    .await;
    let listed = admin_ok(
        b,
        &[
            "-f",
            "tsv",
            "list",
            "connections",
            "name",
            "user",
            "channels",
        ],
    )
    .await;
    assert_eq!(listed.lines().next(), Some("name\tuser\tchannels"));
    assert_eq!(tsv_rows(&listed, &name), [format!("{name}\tguest\t1")]);
    // The default columns of `list connections`.
    let table = admin_ok(b, &["list", "connections"]).await;
    assert!(table.contains(&name), "{table}");

    let overview = admin_ok(b, &["-f", "tsv", "show", "overview"]).await;
    let mut lines = overview.lines();
    assert_eq!(
        lines.next(),
        Some("rabbitmq_version\tcluster_name\tqueue_totals.messages\tobject_totals.queues")
    );
    let row: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    assert_eq!(row.len(), 4, "{overview}");
    assert!(row[0].starts_with("3."), "{overview}");
    assert!(!row[1].is_empty(), "{overview}");
    assert!(
        row[2].parse::<u64>().is_ok() && row[3].parse::<u64>().is_ok(),
        "{overview}"
    );

    let close = admin_ok(b, &["close", "connection", &format!("name={name}")]).await;
    assert_eq!(close, "connection closed\n");
    poll("the connection to be closed", || async {
        (!conn.status().connected()).then_some(())
    })
    .await;
}

async fn rabbitmqadmin_export_import(b: &Broker) {
    if !installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let q = unique("rmqadmin-imp");
    let x = unique("rmqadmin-impx");
    let file = dir.path().join("definitions.json");
    let defs = json!({
        "queues": [{"name": q, "vhost": "/", "durable": true, "auto_delete": false,
                    "arguments": {"x-max-length": 10}}],
        "exchanges": [{"name": x, "vhost": "/", "type": "fanout", "durable": true,
                       "auto_delete": false, "internal": false, "arguments": {}}],
        "bindings": [{"source": x, "vhost": "/", "destination": q, "destination_type": "queue",
                      "routing_key": "", "arguments": {}}],
    });
    std::fs::write(&file, defs.to_string()).expect("write definitions");
    let path = file.to_str().expect("utf-8 path");
    let imported = admin_ok(b, &["import", path]).await;
    assert_eq!(
        imported,
        format!(
            "Uploaded definitions from \"127.0.0.1\" to {path}. The import process may take some time. Consult server logs to track progress.\n"
        )
    );
    let queues = admin_ok(
        b,
        &[
            "-f",
            "tsv",
            "list",
            "queues",
            "name",
            "durable",
            "arguments.x-max-length",
        ],
    )
    .await;
    assert_eq!(tsv_rows(&queues, &q), [format!("{q}\tTrue\t10")]);
    let bindings = admin_ok(
        b,
        &["-f", "tsv", "list", "bindings", "source", "destination"],
    )
    .await;
    assert_eq!(tsv_rows(&bindings, &x), [format!("{x}\t{q}")]);

    let out = dir.path().join("export.json");
    let out_path = out.to_str().expect("utf-8 path");
    assert_eq!(
        admin_ok(b, &["export", out_path]).await,
        format!("Exported definitions for 127.0.0.1 to \"{out_path}\"\n")
    );
    let exported: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("read export")).expect("json");
    for key in [
        "rabbit_version",
        "users",
        "vhosts",
        "permissions",
        "queues",
        "exchanges",
        "bindings",
    ] {
        assert!(exported.get(key).is_some(), "{key} missing from the export");
    }
    let has = |kind: &str, f: &dyn Fn(&Value) -> bool| {
        exported[kind].as_array().is_some_and(|a| a.iter().any(f))
    };
    assert!(has("queues", &|v| v["name"] == q.as_str()
        && v["arguments"] == json!({"x-max-length": 10})
        && v["durable"] == true));
    assert!(has("exchanges", &|v| v["name"] == x.as_str()
        && v["type"] == "fanout"));
    assert!(has("bindings", &|v| v["source"] == x.as_str()
        && v["destination"] == q.as_str()
        && v["destination_type"] == "queue"));
    assert!(has("users", &|v| v["name"] == "guest"));

    admin_ok(b, &["delete", "exchange", &format!("name={x}")]).await;
    admin_ok(b, &["delete", "queue", &format!("name={q}")]).await;
}
