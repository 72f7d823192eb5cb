//! rabbitmq-diagnostics' health checks and node reports over HTTP: `ping`, `check_running`,
//! `check_local_alarms`, `check_alarms`, `alarms`, `check_port_connectivity`, `listeners` and
//! `status`. Texts, JSON shapes and exit codes are RabbitMQ 3.10's; a failed check exits 69.
//!
//! - `ping`: `GET /api/overview` answers 2xx. Any failure, timeouts included, is 69, as
//!   rabbitmq-diagnostics' "Failed to connect and authenticate" is.
//! - `check_running`: `GET /api/health/checks/ready-to-serve-clients` (RabbitMQ 3.13+ and our
//!   broker). Where it is 404 (RabbitMQ before 3.13), an answered `/api/overview` counts as
//!   running: the management API is served by the rabbit application once it has booted.
//! - `check_local_alarms`, `check_alarms`, `alarms`: `/api/health/checks/local-alarms` and
//!   `/alarms` (200 ok, 503 with `alarms: [{node, resource}]`).
//! - `check_port_connectivity`, `listeners`: the `listeners` of `/api/overview` on the API's
//!   node; the TCP connections go to the host of `--url`, one per listener port.
//! - `status`: `/api/overview`, `/api/nodes/{node}` and `/api/vhosts`.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::api::segment;
use crate::commands::Context;
use crate::error::CtlError;
use crate::format::{Formatter, gigabytes, print_text};

pub fn ping(ctx: &Context) -> Result<(), CtlError> {
    ctx.out.banner(&format!(
        "Will ping {}. This only checks if the management HTTP API answers. Timeout: {} ms.",
        ctx.target(),
        ctx.api.timeout().as_millis()
    ))?;
    if let Err(e) = ctx.overview() {
        return Err(match e {
            CtlError::Output(_) | CtlError::Unavailable(_) => e,
            other => CtlError::Unavailable(other.to_string()),
        });
    }
    ctx.out.message("Ping succeeded")
}

pub fn check_running(ctx: &Context) -> Result<(), CtlError> {
    let node = ctx.node_name()?;
    ctx.out.banner(&format!(
        "Checking if RabbitMQ is running on node {node} ..."
    ))?;
    match health_check(ctx, "ready-to-serve-clients")? {
        Some(Health::Ok) => {}
        Some(Health::Failed(_)) => {
            return Err(CtlError::Unavailable(format!(
                "RabbitMQ on node {node} is not running or has not fully booted yet \
                 (check with is_booting)"
            )));
        }
        None => {
            ctx.overview()?;
        }
    }
    ctx.out.message(&format!(
        "RabbitMQ on node {node} is fully booted and running"
    ))
}

pub fn check_local_alarms(ctx: &Context) -> Result<(), CtlError> {
    let node = ctx.node_name()?;
    ctx.out.banner(&format!(
        "Asking node {node} to report any local resource alarms ..."
    ))?;
    check_no_alarms(
        ctx,
        "local-alarms",
        &format!("Node {node} reported no local alarms"),
    )
}

pub fn check_alarms(ctx: &Context) -> Result<(), CtlError> {
    let node = ctx.node_name()?;
    ctx.out.banner(&format!(
        "Asking node {node} to report any local resource alarms ..."
    ))?;
    check_no_alarms(
        ctx,
        "alarms",
        &format!("Node {node} reported no alarms, local or clusterwide"),
    )
}

/// `alarms`: lists them and exits 0 either way (it is a report, not a check).
pub fn alarms(ctx: &Context) -> Result<(), CtlError> {
    let node = ctx.node_name()?;
    ctx.out.banner(&format!(
        "Asking node {node} to report any known resource alarms ..."
    ))?;
    let alarms = match health_check(ctx, "alarms")? {
        Some(Health::Ok) => Vec::new(),
        Some(Health::Failed(body)) => alarm_list(&body),
        None => return Err(missing_check("alarms")),
    };
    let json = ctx.out.formatter == Formatter::Json;
    if alarms.is_empty() {
        return if json {
            ctx.out
                .json(&json!({ "alarms": [], "node": node, "result": "ok" }))
        } else {
            ctx.out.message(&format!(
                "Node {node} reported no alarms, local or clusterwide"
            ))
        };
    }
    if json {
        let api_node = ctx.api_node()?;
        let (local, global): (Vec<&Alarm>, Vec<&Alarm>) =
            alarms.iter().partition(|a| a.node == api_node);
        let lines =
            |alarms: Vec<&Alarm>| -> Vec<String> { alarms.into_iter().map(Alarm::line).collect() };
        ctx.out.json(&json!({
            "result": "ok",
            "local": lines(local),
            "global": lines(global),
            "message": format!("Node {node} reported alarms"),
        }))
    } else {
        let lines: Vec<String> = alarms.iter().map(Alarm::line).collect();
        print_text(&format!("{}\n", lines.join("\n")))
    }
}

pub fn listeners(ctx: &Context) -> Result<(), CtlError> {
    let node = ctx.node_name()?;
    ctx.out.banner(&format!(
        "Asking node {node} to report its protocol listeners ..."
    ))?;
    let listeners = node_listeners(ctx)?;
    match ctx.out.formatter {
        Formatter::Json => ctx.out.json(&json!({
            "listeners": listeners.iter().map(Listener::to_json).collect::<Vec<_>>(),
            "node": node,
            "result": "ok",
        })),
        Formatter::Table => {
            let lines: String = listeners
                .iter()
                .map(|l| format!("{}\n", l.line()))
                .collect();
            print_text(&lines)
        }
    }
}

pub fn check_port_connectivity(ctx: &Context) -> Result<(), CtlError> {
    let node = ctx.node_name()?;
    ctx.out.banner(&format!(
        "Testing TCP connections to all active listeners on node {node} ..."
    ))?;
    let listeners = node_listeners(ctx)?;
    let host = ctx
        .api
        .host()
        .ok_or_else(|| CtlError::Usage(format!("--url {} names no host", ctx.api.base_url())))?;
    // rabbitmq-diagnostics splits its timeout the same way.
    let slots = u32::try_from(listeners.len() + 1).unwrap_or(u32::MAX);
    let per_listener = (ctx.api.timeout() / slots).max(Duration::from_millis(100));
    let failures: Vec<&Listener> = listeners
        .iter()
        .filter(|l| !tcp_connects(&host, l.port, per_listener))
        .collect();
    if !failures.is_empty() {
        let lines: Vec<String> = failures.iter().map(|l| l.line()).collect();
        return Err(CtlError::Unavailable(format!(
            "Connection to ports of the following listeners on node {node} failed: \n{}",
            lines.join("\n")
        )));
    }
    match ctx.out.formatter {
        Formatter::Json => ctx.out.json(&json!({
            "listeners": listeners.iter().map(Listener::to_json).collect::<Vec<_>>(),
            "node": node,
            "result": "ok",
        })),
        Formatter::Table => {
            let mut ports: Vec<u16> = listeners.iter().map(|l| l.port).collect();
            ports.sort_unstable();
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            ctx.out.message(&format!(
                "Successfully connected to ports {} on node {node}.",
                ports.join(", ")
            ))
        }
    }
}

/// `status`: the sections of `rabbitmqctl status` the HTTP API can fill.
pub fn status(ctx: &Context) -> Result<(), CtlError> {
    let node = ctx.node_name()?;
    ctx.out.banner(&format!("Status of node {node} ..."))?;
    let overview = ctx.overview()?.clone();
    let api_node = ctx.api_node()?;
    let node_reply = ctx.api.get(&format!("/api/nodes/{}", segment(&api_node)))?;
    // An API without per-node details still gets the overview's part of the report.
    let details = if node_reply.status() == 404 {
        Value::Object(Map::new())
    } else {
        node_reply.json()?
    };
    let vhost_count = match ctx.api.get("/api/vhosts?columns=name")?.json()? {
        Value::Array(vhosts) => Some(vhosts.len()),
        _ => None,
    };
    let listeners = node_listeners(ctx)?;
    let report = StatusReport {
        node: &node,
        overview: &overview,
        details: &details,
        vhost_count,
        listeners: &listeners,
    };
    match ctx.out.formatter {
        Formatter::Json => ctx.out.json(&report.to_json()),
        Formatter::Table => print_text(&report.text()),
    }
}

/// A health check's answer.
enum Health {
    Ok,
    /// 503, with the body that says why.
    Failed(Value),
}

/// `GET /api/health/checks/{check}`; `None` when the API has no such check (404).
fn health_check(ctx: &Context, check: &str) -> Result<Option<Health>, CtlError> {
    let reply = ctx.api.get(&format!("/api/health/checks/{check}"))?;
    match reply.status() {
        404 => Ok(None),
        503 => Ok(Some(Health::Failed(
            reply.body_json().unwrap_or(Value::Null),
        ))),
        _ if reply.is_success() => Ok(Some(Health::Ok)),
        status => Err(CtlError::Unavailable(format!(
            "the health check {check} answered HTTP {status}: {}",
            reply.reason()
        ))),
    }
}

fn missing_check(check: &str) -> CtlError {
    CtlError::Unavailable(format!(
        "the management API has no /api/health/checks/{check}; is --url a RabbitMQ-compatible \
         management API of version 3.8 or later?"
    ))
}

fn check_no_alarms(ctx: &Context, check: &str, ok_message: &str) -> Result<(), CtlError> {
    match health_check(ctx, check)? {
        Some(Health::Ok) => match ctx.out.formatter {
            Formatter::Json => ctx.out.json(&json!({ "result": "ok" })),
            Formatter::Table => ctx.out.message(ok_message),
        },
        Some(Health::Failed(body)) => {
            let lines: Vec<String> = alarm_list(&body).iter().map(Alarm::line).collect();
            let message = if lines.is_empty() {
                body.get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("the node reported alarms")
                    .to_owned()
            } else {
                lines.join("\n")
            };
            Err(CtlError::Unavailable(message))
        }
        None => Err(missing_check(check)),
    }
}

/// A resource alarm from a failed health check's `alarms`.
#[derive(Debug, PartialEq)]
struct Alarm {
    node: String,
    resource: String,
}

impl Alarm {
    /// rabbitmq-diagnostics' wording.
    fn line(&self) -> String {
        let node = &self.node;
        match self.resource.as_str() {
            "memory" => format!("Memory alarm on node {node}"),
            "disk" => format!("Free disk space alarm on node {node}"),
            "file_descriptor_limit" | "file_descriptors" => {
                format!("File descriptor limit alarm on node {node}")
            }
            other => format!("{other} alarm on node {node}"),
        }
    }
}

fn alarm_list(body: &Value) -> Vec<Alarm> {
    body.get("alarms")
        .and_then(Value::as_array)
        .map(|alarms| {
            alarms
                .iter()
                .map(|a| Alarm {
                    node: text(a.get("node")),
                    resource: text(a.get("resource")),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A listener of the API's node, from `/api/overview`'s `listeners`.
#[derive(Debug, PartialEq)]
struct Listener {
    node: String,
    protocol: String,
    /// As rabbitmq-diagnostics shows it: IPv6 in brackets.
    interface: String,
    port: u16,
}

impl Listener {
    fn from_json(value: &Value) -> Option<Self> {
        let port = match value.get("port")? {
            Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
            Value::String(s) => s.parse().ok()?,
            _ => return None,
        };
        let ip = text(value.get("ip_address"));
        Some(Listener {
            node: text(value.get("node")),
            protocol: text(value.get("protocol")),
            interface: if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip
            },
            port,
        })
    }

    fn line(&self) -> String {
        format!(
            "Interface: {}, port: {}, protocol: {}, purpose: {}",
            self.interface,
            self.port,
            self.protocol,
            protocol_purpose(&self.protocol)
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "interface": self.interface,
            "node": self.node,
            "port": self.port,
            "protocol": self.protocol,
            "purpose": protocol_purpose(&self.protocol),
        })
    }
}

/// The listeners of the node the API runs on (a cluster's overview lists every node's).
fn node_listeners(ctx: &Context) -> Result<Vec<Listener>, CtlError> {
    let api_node = ctx.api_node()?;
    let overview = ctx.overview()?;
    Ok(overview
        .get("listeners")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(Listener::from_json)
                .filter(|l| l.node.is_empty() || l.node == api_node)
                .collect()
        })
        .unwrap_or_default())
}

/// rabbitmq-diagnostics' description of a listener's protocol.
fn protocol_purpose(protocol: &str) -> &str {
    match protocol {
        "amqp" => "AMQP 0-9-1 and AMQP 1.0",
        "amqp/ssl" => "AMQP 0-9-1 and AMQP 1.0 over TLS",
        "mqtt" => "MQTT",
        "mqtt/ssl" => "MQTT over TLS",
        "stomp" => "STOMP",
        "stomp/ssl" => "STOMP over TLS",
        "http" => "HTTP API",
        "https" => "HTTP API over TLS (HTTPS)",
        "http/web-mqtt" => "MQTT over WebSockets",
        "https/web-mqtt" => "MQTT over WebSockets and TLS (HTTPS)",
        "http/web-stomp" => "STOMP over WebSockets",
        "https/web-stomp" => "STOMP over WebSockets and TLS (HTTPS)",
        "http/prometheus" => "Prometheus exporter API over HTTP",
        "https/prometheus" => "Prometheus exporter API over TLS (HTTPS)",
        "clustering" => "inter-node and CLI tool communication",
        "stream" => "Stream replication protocol",
        "stream/ssl" => "Stream replication protocol over TLS",
        other => other,
    }
}

fn tcp_connects(host: &str, port: u16, timeout: Duration) -> bool {
    let Ok(addresses) = (host, port).to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|address| TcpStream::connect_timeout(&address, timeout).is_ok())
}

/// A JSON string field as text; anything else as its JSON spelling, missing as empty.
fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `label: value` and a newline, or nothing when the API did not give the value.
fn labelled(label: &str, value: Option<impl std::fmt::Display>) -> String {
    value.map_or_else(String::new, |value| format!("{label}: {value}\n"))
}

/// What `status` reports, from the API's overview and node details.
struct StatusReport<'a> {
    node: &'a str,
    overview: &'a Value,
    /// `/api/nodes/{node}`, or an empty object.
    details: &'a Value,
    vhost_count: Option<usize>,
    listeners: &'a [Listener],
}

impl StatusReport<'_> {
    fn detail(&self, key: &str) -> Option<&Value> {
        self.details.get(key).filter(|v| !v.is_null())
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.detail(key).and_then(Value::as_f64)
    }

    fn strings(&self, key: &str) -> Vec<String> {
        self.detail(key)
            .and_then(Value::as_array)
            .map(|items| items.iter().map(|v| text(Some(v))).collect())
            .unwrap_or_default()
    }

    fn alarm_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.detail("mem_alarm").and_then(Value::as_bool) == Some(true) {
            lines.push(format!("Memory alarm on node {}", self.node));
        }
        if self.detail("disk_free_alarm").and_then(Value::as_bool) == Some(true) {
            lines.push(format!("Free disk space alarm on node {}", self.node));
        }
        lines
    }

    fn text(&self) -> String {
        let detail_text = |key: &str| self.detail(key).map(|v| text(Some(v)));
        let overview_text = |key: &str| self.overview.get(key).map(|v| text(Some(v)));
        let gb = |key: &str| self.number(key).map(gigabytes);
        let pair = |used: &str, limit: &str| self.number(used).zip(self.number(limit));
        let bullets = |items: Vec<String>| -> String {
            items.iter().map(|item| format!(" * {item}\n")).collect()
        };
        let totals = self.overview.get("object_totals");
        let total = |key: &str| totals.and_then(|t| t.get(key)).map(|v| text(Some(v)));
        let alarms = self.alarm_lines();

        let sections = [
            (
                "Runtime",
                [
                    labelled("OS PID", detail_text("os_pid")),
                    labelled(
                        "Uptime (seconds)",
                        self.number("uptime").map(|ms| (ms / 1000.0) as u64),
                    ),
                    labelled("RabbitMQ version", overview_text("rabbitmq_version")),
                    labelled("Node name", Some(self.node)),
                    labelled("Erlang configuration", overview_text("erlang_full_version")),
                    labelled(
                        "Erlang processes",
                        pair("proc_used", "proc_total")
                            .map(|(used, limit)| format!("{used} used, {limit} limit")),
                    ),
                    labelled("Scheduler run queue", detail_text("run_queue")),
                    labelled(
                        "Cluster heartbeat timeout (net_ticktime)",
                        detail_text("net_ticktime"),
                    ),
                ]
                .concat(),
            ),
            (
                "Plugins",
                format!(
                    "Enabled plugins:\n\n{}",
                    bullets(self.strings("enabled_plugins"))
                ),
            ),
            (
                "Data directory",
                labelled("Node data directory", detail_text("db_dir")),
            ),
            ("Config files", bullets(self.strings("config_files"))),
            ("Log file(s)", bullets(self.strings("log_files"))),
            (
                "Alarms",
                if alarms.is_empty() {
                    "(none)\n".to_owned()
                } else {
                    alarms.iter().map(|line| format!("{line}\n")).collect()
                },
            ),
            (
                "Memory",
                [
                    labelled(
                        "Total memory used",
                        gb("mem_used").map(|g| format!("{g} gb")),
                    ),
                    labelled(
                        "Calculation strategy",
                        detail_text("mem_calculation_strategy"),
                    ),
                    labelled(
                        "Memory high watermark setting",
                        gb("mem_limit").map(|g| format!("computed to: {g} gb")),
                    ),
                ]
                .concat(),
            ),
            (
                "File Descriptors",
                [
                    labelled(
                        "Total",
                        pair("fd_used", "fd_total")
                            .map(|(used, limit)| format!("{used}, limit: {limit}")),
                    ),
                    labelled(
                        "Sockets",
                        pair("sockets_used", "sockets_total")
                            .map(|(used, limit)| format!("{used}, limit: {limit}")),
                    ),
                ]
                .concat(),
            ),
            (
                "Free Disk Space",
                [
                    labelled(
                        "Low free disk space watermark",
                        gb("disk_free_limit").map(|g| format!("{g} gb")),
                    ),
                    labelled(
                        "Free disk space",
                        gb("disk_free").map(|g| format!("{g} gb")),
                    ),
                ]
                .concat(),
            ),
            (
                "Totals",
                [
                    labelled("Connection count", total("connections")),
                    labelled("Queue count", total("queues")),
                    labelled("Virtual host count", self.vhost_count),
                ]
                .concat(),
            ),
            (
                "Listeners",
                self.listeners
                    .iter()
                    .map(|listener| format!("{}\n", listener.line()))
                    .collect(),
            ),
        ];
        sections
            .iter()
            .map(|(title, body)| format!("{title}\n\n{body}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The keys of `rabbitmqctl status --formatter json` the API can fill.
    fn to_json(&self) -> Value {
        let mut map = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                map.insert(key.to_owned(), value);
            }
        };
        let detail = |key: &str| self.detail(key).cloned();
        let overview = |key: &str| self.overview.get(key).cloned();
        put(
            "pid",
            self.detail("os_pid").map(|pid| match pid {
                Value::String(s) => s.parse::<u64>().map_or_else(|_| pid.clone(), Value::from),
                other => other.clone(),
            }),
        );
        put(
            "uptime",
            self.number("uptime")
                .map(|ms| Value::from((ms / 1000.0) as u64)),
        );
        put("rabbitmq_version", overview("rabbitmq_version"));
        put("erlang_version", overview("erlang_full_version"));
        put("product_name", overview("product_name"));
        put("product_version", overview("product_version"));
        put("run_queue", detail("run_queue"));
        put("net_ticktime", detail("net_ticktime"));
        put("active_plugins", detail("enabled_plugins"));
        put("data_directory", detail("db_dir"));
        put("config_files", detail("config_files"));
        put("log_files", detail("log_files"));
        put("alarms", Some(json!(self.alarm_lines())));
        put(
            "vm_memory_calculation_strategy",
            detail("mem_calculation_strategy"),
        );
        put("vm_memory_high_watermark_limit", detail("mem_limit"));
        put("disk_free", detail("disk_free"));
        put("disk_free_limit", detail("disk_free_limit"));
        if let (Some(used), Some(limit)) = (detail("proc_used"), detail("proc_total")) {
            put("processes", Some(json!({ "used": used, "limit": limit })));
        }
        if let (Some(total_used), Some(total_limit)) = (detail("fd_used"), detail("fd_total")) {
            put(
                "file_descriptors",
                Some(json!({
                    "total_used": total_used,
                    "total_limit": total_limit,
                    "sockets_used": detail("sockets_used").unwrap_or(Value::Null),
                    "sockets_limit": detail("sockets_total").unwrap_or(Value::Null),
                })),
            );
        }
        let totals = self.overview.get("object_totals");
        put(
            "totals",
            Some(json!({
                "connection_count": totals.and_then(|t| t.get("connections")).cloned().unwrap_or(Value::Null),
                "queue_count": totals.and_then(|t| t.get("queues")).cloned().unwrap_or(Value::Null),
                "virtual_host_count": self.vhost_count,
            })),
        );
        put(
            "listeners",
            Some(Value::Array(
                self.listeners.iter().map(Listener::to_json).collect(),
            )),
        );
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_are_worded_as_rabbitmq_diagnostics_words_them() {
        let body = json!({
            "status": "failed",
            "reason": "There are alarms in effect in the cluster",
            "alarms": [
                {"node": "rabbit@a", "resource": "memory"},
                {"node": "rabbit@b", "resource": "disk"}
            ]
        });
        let lines: Vec<String> = alarm_list(&body).iter().map(Alarm::line).collect();
        assert_eq!(
            lines,
            [
                "Memory alarm on node rabbit@a",
                "Free disk space alarm on node rabbit@b"
            ]
        );
        assert!(alarm_list(&json!({"status": "failed"})).is_empty());
    }

    #[test]
    fn listeners_print_as_rabbitmq_diagnostics_prints_them() {
        let amqp = json!({"node": "rabbit@localhost", "protocol": "amqp", "ip_address": "127.0.0.1", "port": 5672});
        let http = json!({"node": "rabbit@localhost", "protocol": "http", "ip_address": "::", "port": 15672});
        let amqp = Listener::from_json(&amqp).expect("a listener");
        let http = Listener::from_json(&http).expect("a listener");
        assert_eq!(
            amqp.line(),
            "Interface: 127.0.0.1, port: 5672, protocol: amqp, purpose: AMQP 0-9-1 and AMQP 1.0"
        );
        assert_eq!(
            http.line(),
            "Interface: [::], port: 15672, protocol: http, purpose: HTTP API"
        );
        assert_eq!(
            http.to_json(),
            json!({"interface": "[::]", "node": "rabbit@localhost", "port": 15672, "protocol": "http", "purpose": "HTTP API"})
        );
        assert!(Listener::from_json(&json!({"protocol": "amqp"})).is_none());
        assert!(Listener::from_json(&json!({"port": 70000})).is_none());
    }

    #[test]
    fn status_text_has_rabbitmqctls_sections() {
        let overview = json!({
            "rabbitmq_version": "3.10.8",
            "object_totals": {"connections": 2, "queues": 5}
        });
        let details = json!({
            "os_pid": "2978", "uptime": 474_000, "proc_used": 2836, "proc_total": 1_048_576,
            "mem_used": 243_277_824u64, "mem_limit": 10_110_428_774u64,
            "disk_free_limit": 50_000_000, "disk_free": 81_473_818_624u64,
            "mem_alarm": false, "disk_free_alarm": true,
            "enabled_plugins": ["rabbitmq_management"]
        });
        let report = StatusReport {
            node: "rabbit@localhost",
            overview: &overview,
            details: &details,
            vhost_count: Some(2),
            listeners: &[],
        };
        let text = report.text();
        assert!(text.starts_with("Runtime\n\nOS PID: 2978\nUptime (seconds): 474\n"));
        assert!(text.contains("Erlang processes: 2836 used, 1048576 limit\n"));
        assert!(text.contains("Enabled plugins:\n\n * rabbitmq_management\n"));
        assert!(text.contains("Alarms\n\nFree disk space alarm on node rabbit@localhost\n"));
        assert!(text.contains("Low free disk space watermark: 0.05 gb\n"));
        assert!(text.contains("Queue count: 5\nVirtual host count: 2\n"));
        let json = report.to_json();
        assert_eq!(json["pid"], json!(2978));
        assert_eq!(json["uptime"], json!(474));
        assert_eq!(json["totals"]["virtual_host_count"], json!(2));
    }
}
