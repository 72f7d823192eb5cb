//! `/api/queues`: list, detail, declare (PUT), delete, purge (`/contents`), get messages
//! (POST `/get`) and a queue's bindings.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::Auth;
use super::error::{ApiError, ApiResult, Body, arguments, flag};
use super::listing::ListQuery;
use super::{Api, views};
use crate::message::Message;
use crate::queue::Queue;
use crate::vhost::{QueueDeclare, Vhost};

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/queues", get(list))
        .route("/api/queues/{vhost}", get(list))
        .route(
            "/api/queues/{vhost}/{name}",
            get(show).put(declare).delete(remove),
        )
        .route("/api/queues/{vhost}/{name}/contents", delete(purge))
        .route("/api/queues/{vhost}/{name}/get", post(get_messages))
        .route("/api/queues/{vhost}/{name}/bindings", get(bindings))
}

/// The vhost of a path, or RabbitMQ's 404 for reads (`Object Not Found`).
pub fn vhost_for_read(api: &Api, auth: &Auth, name: &str) -> ApiResult<Arc<Vhost>> {
    match api.node.vhost(name) {
        Some(v) if auth.sees(name) => Ok(v),
        Some(_) => Err(super::auth::vhost_refused()),
        None => Err(ApiError::not_found()),
    }
}

/// The vhost of a path for writes: 404 `vhost_not_found`, 401 without permissions there.
pub fn vhost_for_write(api: &Api, auth: &Auth, name: &str) -> ApiResult<Arc<Vhost>> {
    let Some(v) = api.node.vhost(name) else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            reason: "vhost_not_found".into(),
        });
    };
    auth.require_vhost(name)?;
    Ok(v)
}

/// `GET /api/queues` and `GET /api/queues/{vhost}`.
async fn list(
    State(api): State<Api>,
    auth: Auth,
    vhost: Option<Path<String>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let vhosts = vhosts_in_scope(&api, &auth, vhost.as_deref().map(String::as_str))?;
    let queues: Vec<Arc<Queue>> = vhosts.iter().flat_map(|v| v.queues()).collect();
    q.apply(
        queues,
        |q| (q.vhost.as_str(), q.name.as_str()),
        |q| views::queue(&api, q),
    )
    .map(Json)
}

/// The vhosts a list covers: the one in the path, or every vhost the user may see.
pub fn vhosts_in_scope(api: &Api, auth: &Auth, vhost: Option<&str>) -> ApiResult<Vec<Arc<Vhost>>> {
    Ok(match vhost {
        Some(name) => vec![vhost_for_read(api, auth, name)?],
        None => api
            .node
            .vhosts()
            .into_iter()
            .filter(|v| auth.sees(&v.name))
            .collect(),
    })
}

fn existing(v: &Vhost, name: &str) -> ApiResult<Arc<Queue>> {
    v.queue(name).ok_or_else(ApiError::not_found)
}

/// The connection an API request acts as: none (connection ids start at 1), so every
/// exclusive queue is locked to it, as RabbitMQ's API finds them.
const NO_CONNECTION: crate::queue::ConnectionId = 0;

/// A queue the API may purge, delete or read: RabbitMQ refuses other connections'
/// exclusive queues with `405 RESOURCE_LOCKED`'s text.
fn unlocked(v: &Vhost, name: &str) -> ApiResult<Arc<Queue>> {
    let queue = existing(v, name)?;
    v.check_exclusive_access(&queue, NO_CONNECTION)
        .map_err(ApiError::from_amqp)?;
    Ok(queue)
}

async fn show(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    let queue = existing(&v, &name)?;
    let mut body = views::queue(&api, &queue);
    let consumers: Vec<Value> = super::connections::consumers_of(&api, &queue);
    body["consumer_details"] = Value::Array(consumers);
    body["deliveries"] = json!([]);
    body["incoming"] = json!([]);
    q.select(body).map(Json)
}

/// `PUT /api/queues/{vhost}/{name}`. A missing flag is false: RabbitMQ declares a transient
/// queue for `{}`.
#[derive(Debug, Deserialize)]
struct DeclareBody {
    #[serde(default, deserialize_with = "flag")]
    durable: Option<bool>,
    #[serde(default, deserialize_with = "flag")]
    auto_delete: Option<bool>,
    #[serde(default, deserialize_with = "arguments")]
    arguments: Map<String, Value>,
    /// Accepted and ignored: one node.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "accepted for RabbitMQ compatibility; there is one node"
    )]
    node: Option<String>,
}

async fn declare(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body<DeclareBody>,
) -> ApiResult<StatusCode> {
    let v = vhost_for_write(&api, &auth, &vhost)?;
    if name.starts_with("amq.") {
        // RabbitMQ answers a reserved name this way over HTTP.
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: "Access refused.".into(),
        });
    }
    if name.is_empty() {
        return Err(ApiError::bad_request("queue name must not be empty"));
    }
    let (_, created) = v
        .declare_queue(
            QueueDeclare {
                name,
                durable: body.durable.unwrap_or(false),
                exclusive: false,
                auto_delete: body.auto_delete.unwrap_or(false),
                arguments: crate::definitions::json_to_table(&body.arguments),
            },
            NO_CONNECTION,
        )
        .map_err(ApiError::from_amqp)?;
    api.node.registry.churn.queue_declared.incr();
    if created {
        api.node.registry.churn.queue_created.incr();
        Ok(StatusCode::CREATED)
    } else {
        Ok(StatusCode::NO_CONTENT)
    }
}

#[derive(Debug, Default, Deserialize)]
struct DeleteQuery {
    #[serde(rename = "if-empty")]
    if_empty: Option<String>,
    #[serde(rename = "if-unused")]
    if_unused: Option<String>,
}

async fn remove(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let v = vhost_for_write(&api, &auth, &vhost)?;
    let queue = unlocked(&v, &name)?;
    if q.if_unused.as_deref() == Some("true") && queue.consumer_count() > 0 {
        return Err(ApiError::bad_request(format!(
            "queue '{name}' in vhost '{vhost}' in use"
        )));
    }
    if q.if_empty.as_deref() == Some("true") && queue.message_count() > 0 {
        return Err(ApiError::bad_request(format!(
            "queue '{name}' in vhost '{vhost}' not empty"
        )));
    }
    v.delete_queue(&queue);
    api.node.registry.churn.queue_deleted.incr();
    Ok(StatusCode::NO_CONTENT)
}

async fn purge(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let v = vhost_for_write(&api, &auth, &vhost)?;
    unlocked(&v, &name)?.purge();
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/queues/{vhost}/{name}/get`.
#[derive(Debug, Deserialize)]
struct GetBody {
    count: Option<Value>,
    ackmode: Option<String>,
    encoding: Option<String>,
    truncate: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AckMode {
    AckRequeue,
    Ack,
    RejectRequeue,
    Reject,
}

fn integer(v: &Value, field: &str) -> ApiResult<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::bad_request(format!("{field} must be a non-negative integer")))
}

async fn get_messages(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body<GetBody>,
) -> ApiResult<Response> {
    let v = vhost_for_write(&api, &auth, &vhost)?;
    let queue = existing(&v, &name)?;
    ApiError::require_keys(&[
        ("ackmode", body.ackmode.is_some()),
        ("count", body.count.is_some()),
        ("encoding", body.encoding.is_some()),
    ])?;
    let count = integer(body.count.as_ref().unwrap_or(&Value::Null), "count")?;
    let mode = match body.ackmode.as_deref().unwrap_or_default() {
        "ack_requeue_true" => AckMode::AckRequeue,
        "ack_requeue_false" => AckMode::Ack,
        "reject_requeue_true" => AckMode::RejectRequeue,
        "reject_requeue_false" => AckMode::Reject,
        // RabbitMQ crashes with a 500 here; a 400 that says what to send is kinder.
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown ackmode '{other}': use ack_requeue_true, ack_requeue_false, \
                 reject_requeue_true or reject_requeue_false"
            )));
        }
    };
    let base64_only = match body.encoding.as_deref().unwrap_or_default() {
        "auto" => false,
        "base64" => true,
        _ => {
            return Err(ApiError::bad_request(
                "Unsupported encoding. Please use auto or base64.",
            ));
        }
    };
    let truncate = body
        .truncate
        .as_ref()
        .map(|t| integer(t, "truncate"))
        .transpose()?;
    // RabbitMQ gets over a channel, whose error it reports with the code: `405
    // RESOURCE_LOCKED - cannot obtain exclusive access …`.
    v.check_exclusive_access(&queue, NO_CONNECTION)
        .map_err(|e| ApiError::bad_request(format!("{} {}", e.code, e.text)))?;
    let mut taken = Vec::new();
    let mut out = Vec::new();
    for _ in 0..count.min(10_000) {
        let Some((entry, remaining)) = queue.get(false) else {
            break;
        };
        let Some(m) = queue.materialize(&entry) else {
            queue.ack(std::slice::from_ref(&entry));
            continue;
        };
        out.push(message_json(
            &m,
            entry.redelivered,
            remaining,
            base64_only,
            truncate,
        ));
        taken.push(entry);
    }
    match mode {
        AckMode::AckRequeue | AckMode::RejectRequeue => queue.requeue(taken),
        AckMode::Ack => queue.ack(&taken),
        AckMode::Reject => queue.reject(taken),
    }
    Ok(Json(Value::Array(out)).into_response())
}

/// A fetched message as RabbitMQ's `/get` shows it.
fn message_json(
    m: &Message,
    redelivered: bool,
    remaining: u32,
    base64_only: bool,
    truncate: Option<u64>,
) -> Value {
    let body: &[u8] = match truncate {
        Some(t) if (t as usize) < m.body.len() => &m.body[..t as usize],
        _ => &m.body,
    };
    let (payload, encoding) = match std::str::from_utf8(body) {
        Ok(s) if !base64_only => (s.to_owned(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(body),
            "base64",
        ),
    };
    json!({
        "payload_bytes": m.body.len(),
        "redelivered": redelivered,
        "exchange": m.exchange.as_str(),
        "routing_key": m.routing_key.as_str(),
        "message_count": remaining,
        "properties": views::properties(&m.properties),
        "payload": payload,
        "payload_encoding": encoding,
    })
}

async fn bindings(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    let queue = existing(&v, &name)?;
    q.apply_unpaged(super::bindings::to_queue(&v, &queue))
        .map(Json)
}
