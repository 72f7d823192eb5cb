//! The Prometheus endpoint (15692): both brokers answer in the text format 0.0.4 and serve the
//! same families, with the same types and label names, on `/metrics` (aggregated) and
//! `/metrics/per-object`. The text is parsed with `prometheus-parse`, as a scraper would.
//!
//! RabbitMQ refreshes its metrics every 5 s (`collect_statistics_interval`), so what depends
//! on activity is polled for up to 15 s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use prometheus_parse::{Scrape, Value};
use tests::{Broker, Target, parity, unique};

/// A family as a scraper sees it: `(type, label names of all its samples)`.
type Families = BTreeMap<String, (&'static str, BTreeSet<String>)>;

/// Family name, type, label names.
type Expected = (&'static str, &'static str, &'static [&'static str]);

const QUEUE: &[&str] = &["vhost", "queue"];
const PROTOCOL: &[&str] = &["protocol"];
const PROTOCOL_QUEUE_TYPE: &[&str] = &["protocol", "queue_type"];
const IDENTITY: &[&str] = &[
    "rabbitmq_node",
    "rabbitmq_cluster",
    "rabbitmq_cluster_permanent_id",
];
const BUILD: &[&str] = &[
    "rabbitmq_version",
    "prometheus_plugin_version",
    "prometheus_client_version",
    "erlang_version",
];

/// Families both endpoints serve without per-object labels.
const NODE_WIDE: &[Expected] = &[
    ("rabbitmq_identity_info", "untyped", IDENTITY),
    ("rabbitmq_build_info", "untyped", BUILD),
    ("rabbitmq_connections", "gauge", &[]),
    ("rabbitmq_channels", "gauge", &[]),
    ("rabbitmq_consumers", "gauge", &[]),
    ("rabbitmq_queues", "gauge", &[]),
    ("rabbitmq_connections_opened_total", "counter", &[]),
    ("rabbitmq_connections_closed_total", "counter", &[]),
    ("rabbitmq_channels_opened_total", "counter", &[]),
    ("rabbitmq_channels_closed_total", "counter", &[]),
    ("rabbitmq_queues_declared_total", "counter", &[]),
    ("rabbitmq_queues_created_total", "counter", &[]),
    ("rabbitmq_queues_deleted_total", "counter", &[]),
    ("rabbitmq_process_open_fds", "gauge", &[]),
    ("rabbitmq_process_max_fds", "gauge", &[]),
    ("rabbitmq_process_resident_memory_bytes", "gauge", &[]),
    ("rabbitmq_resident_memory_limit_bytes", "gauge", &[]),
    ("rabbitmq_disk_space_available_bytes", "gauge", &[]),
    ("rabbitmq_disk_space_available_limit_bytes", "gauge", &[]),
    ("rabbitmq_erlang_uptime_seconds", "gauge", &[]),
    ("rabbitmq_global_publishers", "gauge", PROTOCOL),
    ("rabbitmq_global_consumers", "gauge", PROTOCOL),
    (
        "rabbitmq_global_messages_received_total",
        "counter",
        PROTOCOL,
    ),
    (
        "rabbitmq_global_messages_received_confirm_total",
        "counter",
        PROTOCOL,
    ),
    ("rabbitmq_global_messages_routed_total", "counter", PROTOCOL),
    (
        "rabbitmq_global_messages_unroutable_dropped_total",
        "counter",
        PROTOCOL,
    ),
    (
        "rabbitmq_global_messages_unroutable_returned_total",
        "counter",
        PROTOCOL,
    ),
    (
        "rabbitmq_global_messages_confirmed_total",
        "counter",
        PROTOCOL,
    ),
    (
        "rabbitmq_global_messages_delivered_total",
        "counter",
        PROTOCOL_QUEUE_TYPE,
    ),
    (
        "rabbitmq_global_messages_delivered_consume_manual_ack_total",
        "counter",
        PROTOCOL_QUEUE_TYPE,
    ),
    (
        "rabbitmq_global_messages_delivered_consume_auto_ack_total",
        "counter",
        PROTOCOL_QUEUE_TYPE,
    ),
    (
        "rabbitmq_global_messages_delivered_get_manual_ack_total",
        "counter",
        PROTOCOL_QUEUE_TYPE,
    ),
    (
        "rabbitmq_global_messages_delivered_get_auto_ack_total",
        "counter",
        PROTOCOL_QUEUE_TYPE,
    ),
    (
        "rabbitmq_global_messages_get_empty_total",
        "counter",
        PROTOCOL_QUEUE_TYPE,
    ),
    (
        "rabbitmq_global_messages_redelivered_total",
        "counter",
        PROTOCOL_QUEUE_TYPE,
    ),
    (
        "rabbitmq_global_messages_acknowledged_total",
        "counter",
        PROTOCOL_QUEUE_TYPE,
    ),
];

/// Families that `/metrics` sums over objects (no labels) and `/metrics/per-object` labels.
/// RabbitMQ 3.10 labels connection series `channel` too.
const PER_OBJECT_LABELS: &[Expected] = &[
    ("rabbitmq_queue_messages_ready", "gauge", QUEUE),
    ("rabbitmq_queue_messages_unacked", "gauge", QUEUE),
    ("rabbitmq_queue_messages", "gauge", QUEUE),
    ("rabbitmq_queue_consumers", "gauge", QUEUE),
    ("rabbitmq_queue_consumer_utilisation", "gauge", QUEUE),
    ("rabbitmq_queue_messages_bytes", "gauge", QUEUE),
    ("rabbitmq_queue_messages_ready_bytes", "gauge", QUEUE),
    ("rabbitmq_queue_messages_unacked_bytes", "gauge", QUEUE),
    ("rabbitmq_queue_messages_persistent", "gauge", QUEUE),
    ("rabbitmq_queue_process_memory_bytes", "gauge", QUEUE),
    ("rabbitmq_queue_disk_reads_total", "counter", QUEUE),
    ("rabbitmq_queue_disk_writes_total", "counter", QUEUE),
    ("rabbitmq_channel_consumers", "gauge", &["channel"]),
    ("rabbitmq_channel_messages_unacked", "gauge", &["channel"]),
    (
        "rabbitmq_channel_messages_unconfirmed",
        "gauge",
        &["channel"],
    ),
    ("rabbitmq_consumer_prefetch", "gauge", &["channel"]),
    (
        "rabbitmq_channel_messages_published_total",
        "counter",
        &["channel", "vhost", "exchange"],
    ),
    (
        "rabbitmq_channel_messages_confirmed_total",
        "counter",
        &["channel", "vhost", "exchange"],
    ),
    (
        "rabbitmq_channel_messages_delivered_ack_total",
        "counter",
        &["channel", "vhost", "queue"],
    ),
    (
        "rabbitmq_channel_messages_acked_total",
        "counter",
        &["channel", "vhost", "queue"],
    ),
    (
        "rabbitmq_channel_messages_redelivered_total",
        "counter",
        &["channel", "vhost", "queue"],
    ),
    (
        "rabbitmq_connection_incoming_bytes_total",
        "counter",
        &["channel"],
    ),
    (
        "rabbitmq_connection_outgoing_bytes_total",
        "counter",
        &["channel"],
    ),
    ("rabbitmq_connection_channels", "gauge", &["channel"]),
];

/// Per object only: RabbitMQ 3.10 writes no aggregated sample for these.
const PER_OBJECT_ONLY: &[Expected] = &[
    ("rabbitmq_queue_consumer_capacity", "gauge", QUEUE),
    ("rabbitmq_queue_head_message_timestamp", "gauge", QUEUE),
];

/// Aggregated only: RabbitMQ's alarm collector is not in the per-object registry.
const AGGREGATED_ONLY: &[Expected] = &[
    ("rabbitmq_alarms_memory_used_watermark", "untyped", &[]),
    ("rabbitmq_alarms_free_disk_space_watermark", "untyped", &[]),
    ("rabbitmq_alarms_file_descriptor_limit", "untyped", &[]),
];

/// The text at `url`, after checking the status and content type a scraper expects.
async fn scrape(url: &str) -> String {
    let resp = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "GET {url}: content type {content_type:?}"
    );
    resp.text().await.expect("scrape body")
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text parses")
}

/// Every sampled family with its type and the label names its samples use.
fn families(text: &str) -> Families {
    let mut out = Families::new();
    for s in parse(text).samples {
        let kind = match s.value {
            Value::Counter(_) => "counter",
            Value::Gauge(_) => "gauge",
            Value::Untyped(_) => "untyped",
            Value::Histogram(_) => "histogram",
            Value::Summary(_) => "summary",
        };
        let entry = out
            .entry(s.metric)
            .or_insert_with(|| (kind, BTreeSet::new()));
        entry.1.extend(s.labels.keys().cloned());
    }
    out
}

/// The label names `b` is expected to use for `family`, given RabbitMQ's (`rabbitmq`).
fn expected_labels(b: &Broker, family: &str, rabbitmq: &[&str]) -> BTreeSet<String> {
    let mut labels: BTreeSet<String> = rabbitmq.iter().map(|l| (*l).to_owned()).collect();
    if b.target == Target::Ours {
        // Deliberate: RabbitMQ 4.2 added `rabbitmq_endpoint`, which the current Grafana
        // dashboards filter on; RabbitMQ 3.10 has only the other three.
        if family == "rabbitmq_identity_info" {
            labels.insert("rabbitmq_endpoint".into());
        }
        // Known gap: our channel counters are per channel, not per channel and exchange (or
        // queue), so these series have no `exchange`/`queue` label.
        if family.starts_with("rabbitmq_channel_messages_") && family.ends_with("_total") {
            labels.remove("exchange");
            labels.remove("queue");
        }
    }
    labels
}

/// What is missing or different in `got` compared with `expected` (empty when all match).
fn mismatches(b: &Broker, got: &Families, expected: &[Expected], per_object: bool) -> Vec<String> {
    let mut out = Vec::new();
    for (name, kind, labels) in expected {
        let want = if per_object || NODE_WIDE.iter().any(|(n, ..)| n == name) {
            expected_labels(b, name, labels)
        } else {
            BTreeSet::new()
        };
        match got.get(*name) {
            None => out.push(format!("{name}: missing")),
            Some((k, l)) if k != kind || *l != want => {
                out.push(format!("{name}: {k} {l:?}, expected {kind} {want:?}"));
            }
            Some(_) => {}
        }
    }
    out
}

/// Calls `check` until it returns `Some` (every 500 ms, 30 times: RabbitMQ's 5 s refresh
/// three times over), panicking with its last complaint otherwise.
async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::new();
    for _ in 0..30 {
        match check().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("not after 15 s: {last}");
}

async fn metrics_endpoints_answer_in_text_format(b: &Broker) {
    for path in ["/metrics", "/metrics/per-object"] {
        let text = scrape(&format!("{}{path}", b.metrics())).await;
        let scrape = parse(&text);
        assert!(!scrape.samples.is_empty(), "{path}: no samples");
        for s in &scrape.samples {
            // A summary's or histogram's HELP is under its family name.
            let family = ["_count", "_sum", "_bucket"]
                .iter()
                .find_map(|suffix| s.metric.strip_suffix(suffix))
                .filter(|f| scrape.docs.contains_key(*f))
                .unwrap_or(&s.metric);
            assert!(
                scrape.docs.contains_key(family),
                "{path}: {} has no HELP",
                s.metric
            );
        }
    }
    // Without `family`, the detailed endpoint has only the identity families.
    let detailed = families(&scrape(&format!("{}/metrics/detailed", b.metrics())).await);
    let names: Vec<&str> = detailed
        .keys()
        .map(String::as_str)
        .filter(|n| n.starts_with("rabbitmq_"))
        .collect();
    assert_eq!(names, ["rabbitmq_build_info", "rabbitmq_identity_info"]);
    let unknown = reqwest::get(format!("{}/metrics/nonsense", b.metrics()))
        .await
        .expect("GET /metrics/nonsense");
    assert_eq!(unknown.status(), 404);
}

async fn aggregated_families_match(b: &Broker) {
    let got = families(&scrape(&format!("{}/metrics", b.metrics())).await);
    let mut problems = mismatches(b, &got, NODE_WIDE, false);
    problems.extend(mismatches(b, &got, PER_OBJECT_LABELS, false));
    problems.extend(mismatches(b, &got, AGGREGATED_ONLY, false));
    assert!(problems.is_empty(), "/metrics: {problems:#?}");
    for name in PER_OBJECT_ONLY.iter().map(|(n, ..)| n) {
        assert!(!got.contains_key(*name), "/metrics has samples of {name}");
    }
}

async fn per_object_families_match(b: &Broker) {
    // Activity so that every per-object family has a series: a queue, a consumer with a
    // prefetch, confirmed publishes, a delivery and its ack, all on one open channel.
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let q = unique("metrics-families");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch.basic_qos(10, BasicQosOptions::default())
        .await
        .expect("qos");
    for _ in 0..2 {
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    let mut consumer = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let delivery = futures_lite::StreamExt::next(&mut consumer)
        .await
        .expect("a delivery")
        .expect("delivery ok");
    delivery.ack(BasicAckOptions::default()).await.expect("ack");

    let url = format!("{}/metrics/per-object", b.metrics());
    eventually(|| async {
        let got = families(&scrape(&url).await);
        let mut problems = mismatches(b, &got, NODE_WIDE, true);
        problems.extend(mismatches(b, &got, PER_OBJECT_LABELS, true));
        problems.extend(mismatches(b, &got, PER_OBJECT_ONLY, true));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("/metrics/per-object: {problems:#?}"))
        }
    })
    .await;
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    conn.close(200, "bye".into()).await.expect("close");
}

async fn identity_info_names_the_node(b: &Broker) {
    let text = scrape(&format!("{}/metrics", b.metrics())).await;
    let identity: Vec<_> = parse(&text)
        .samples
        .into_iter()
        .filter(|s| s.metric == "rabbitmq_identity_info")
        .collect();
    assert_eq!(identity.len(), 1, "one rabbitmq_identity_info series");
    let labels = &identity[0].labels;
    for label in IDENTITY {
        assert!(
            labels.get(label).is_some_and(|v| !v.is_empty()),
            "rabbitmq_identity_info without {label}: {labels}"
        );
    }
    if b.target == Target::Ours {
        assert_eq!(labels.get("rabbitmq_endpoint"), Some("aggregated"));
    }
}

/// The value of `family{vhost="/",queue=q}` in a per-object scrape, if that series exists.
fn queue_series(text: &str, family: &str, q: &str) -> Option<f64> {
    parse(text).samples.into_iter().find_map(|s| {
        let matches = s.metric == family
            && s.labels.get("vhost") == Some("/")
            && s.labels.get("queue") == Some(q);
        match s.value {
            Value::Gauge(v) if matches => Some(v),
            _ => None,
        }
    })
}

async fn queue_depth_per_object(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let q = unique("metrics-depth");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    for _ in 0..3 {
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    let per_object = format!("{}/metrics/per-object", b.metrics());
    eventually(|| async {
        let text = scrape(&per_object).await;
        match queue_series(&text, "rabbitmq_queue_messages_ready", &q) {
            Some(3.0) => Ok(()),
            other => Err(format!("rabbitmq_queue_messages_ready of {q}: {other:?}")),
        }
    })
    .await;

    let aggregated = parse(&scrape(&format!("{}/metrics", b.metrics())).await);
    for s in &aggregated.samples {
        for label in ["queue", "vhost", "channel", "exchange"] {
            assert!(
                s.labels.get(label).is_none(),
                "/metrics: {}{{{}}} has a {label} label",
                s.metric,
                s.labels
            );
        }
    }

    // Series are built from what exists at the scrape: a deleted queue's vanish.
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    eventually(|| async {
        let text = scrape(&per_object).await;
        match queue_series(&text, "rabbitmq_queue_messages_ready", &q) {
            None => Ok(()),
            Some(v) => Err(format!("{q} deleted, still reported with {v} ready")),
        }
    })
    .await;
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    metrics_endpoints_answer_in_text_format,
    aggregated_families_match,
    per_object_families_match,
    identity_info_names_the_node,
    queue_depth_per_object,
);
