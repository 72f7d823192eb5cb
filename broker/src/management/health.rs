//! Health checks as RabbitMQ's management plugin serves them: `200 {"status":"ok"}` or
//! `503 {"status":"failed","reason":…}`. Kubernetes probes, compose healthchecks and
//! rabbitmqadmin v2's `health_check` read these.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Api;
use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::queues::vhost_for_read;
use crate::vhost::QueueDeclare;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/health/checks/alarms", get(alarms))
        .route("/api/health/checks/local-alarms", get(alarms))
        .route(
            "/api/health/checks/port-listener/{port}",
            get(port_listener),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(protocol_listener),
        )
        .route("/api/health/checks/virtual-hosts", get(ok))
        .route(
            "/api/health/checks/node-is-quorum-critical",
            get(quorum_critical),
        )
        .route("/api/health/checks/node-is-mirror-sync-critical", get(ok))
        .route("/api/health/checks/is-in-service", get(ok))
        .route("/api/health/checks/ready-to-serve-clients", get(ok))
        .route(
            "/api/health/checks/certificate-expiration/{within}/{unit}",
            get(ok),
        )
        .route("/api/aliveness-test/{vhost}", get(aliveness))
        .route("/api/healthchecks/node", get(ok))
        .route("/api/healthchecks/node/{node}", get(ok))
}

fn failed(body: Value) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn ok(_auth: Auth) -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The node raises no resource alarm yet (memory and disk alarms come with flow control).
async fn alarms(_auth: Auth) -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn quorum_critical(_auth: Auth) -> Json<Value> {
    Json(json!({"status": "ok", "reason": "single node cluster"}))
}

async fn port_listener(
    State(api): State<Api>,
    _auth: Auth,
    Path(port): Path<String>,
) -> ApiResult<Response> {
    // Any integer is a port to look for (RabbitMQ's `binary_to_integer`): 70000 is simply
    // not listened on.
    let port: i64 = port
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid port"))?;
    let ports: Vec<i64> = api
        .node
        .config
        .listeners
        .iter()
        .map(|(_, a)| i64::from(a.port()))
        .collect();
    Ok(if ports.contains(&port) {
        Json(json!({"status": "ok", "port": port})).into_response()
    } else {
        failed(
            json!({"status": "failed", "reason": "No active listener", "missing": port, "ports": ports}),
        )
    })
}

async fn protocol_listener(
    State(api): State<Api>,
    _auth: Auth,
    Path(protocol): Path<String>,
) -> Response {
    let protocol = normalize_protocol(&protocol);
    let protocols: Vec<&str> = api
        .node
        .config
        .listeners
        .iter()
        .map(|(p, _)| p.as_str())
        .collect();
    if protocols.contains(&protocol.as_str()) {
        Json(json!({"status": "ok", "protocol": protocol})).into_response()
    } else {
        failed(
            json!({"status": "failed", "reason": "No active listener", "missing": protocol, "protocols": protocols}),
        )
    }
}

/// RabbitMQ's old aliveness test: declares `aliveness-test` in the vhost, publishes a message
/// to it and reads it back.
async fn aliveness(
    State(api): State<Api>,
    auth: Auth,
    Path(vhost): Path<String>,
) -> ApiResult<Response> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    let (queue, _) = v
        .declare_queue(
            QueueDeclare {
                name: "aliveness-test".into(),
                durable: false,
                exclusive: false,
                auto_delete: false,
                arguments: crate::protocol::FieldTable::default(),
            },
            0,
        )
        .map_err(ApiError::from_amqp)?;
    queue.purge();
    let properties = crate::protocol::AMQPProperties::default();
    let message = std::sync::Arc::new(crate::message::Message {
        exchange: "".into(),
        routing_key: "aliveness-test".into(),
        raw_properties: bytes::Bytes::from(crate::protocol::encode_properties(&properties)),
        properties,
        body: bytes::Bytes::from_static(b"test_message"),
    });
    v.enqueue(std::slice::from_ref(&queue), &message);
    match queue.get(true) {
        Some((entry, _)) if queue.materialize(&entry).is_some() => {
            Ok(Json(json!({"status": "ok"})).into_response())
        }
        _ => Ok(failed(
            json!({"status": "failed", "reason": "aliveness test message not received"}),
        )),
    }
}

/// RabbitMQ's aliases of protocol names (`amqp091` is `amqp`, `management` is `http`, …),
/// for the protocols this broker serves; anything else is only lowercased.
fn normalize_protocol(protocol: &str) -> String {
    let p = protocol.to_lowercase();
    match p.as_str() {
        "amqp091" | "amqp0.9.1" | "amqp0-9-1" | "amqp0_9_1" | "amqp10" | "amqp1.0" | "amqp1-0"
        | "amqp1_0" => "amqp".into(),
        "amqps" => "amqp/ssl".into(),
        "http1" | "http1.1" | "http_api" | "management" | "management_ui" | "ui" => "http".into(),
        "cli" | "distribution" => "clustering".into(),
        _ => p,
    }
}
