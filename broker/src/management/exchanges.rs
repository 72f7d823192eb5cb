//! `/api/exchanges`: list, detail, declare (PUT), delete, publish (POST `/publish`, answering
//! `{"routed": bool}`) and an exchange's bindings. The default exchange is `amq.default` in
//! paths, as RabbitMQ's UI and rabbitmqadmin address it.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::Auth;
use super::error::{ApiError, ApiResult, Body, arguments, flag};
use super::listing::ListQuery;
use super::queues::{vhost_for_read, vhost_for_write, vhosts_in_scope};
use super::{Api, views};
use crate::exchange::{Exchange, RouteScratch};
use crate::message::Message;
use crate::vhost::{ExchangeDeclare, Vhost};

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/exchanges", get(list))
        .route("/api/exchanges/{vhost}", get(list))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(show).put(declare).delete(remove),
        )
        .route("/api/exchanges/{vhost}/{name}/publish", post(publish))
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(bindings_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(bindings_destination),
        )
}

/// `amq.default` in a path is the default exchange `""`.
pub fn exchange_name(path: &str) -> &str {
    if path == "amq.default" { "" } else { path }
}

/// `GET /api/exchanges` and `GET /api/exchanges/{vhost}`.
async fn list(
    State(api): State<Api>,
    auth: Auth,
    vhost: Option<Path<String>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let vhosts = vhosts_in_scope(&api, &auth, vhost.as_deref().map(String::as_str))?;
    let all: Vec<(Arc<Vhost>, Arc<Exchange>)> = vhosts
        .iter()
        .flat_map(|v| v.exchanges().into_iter().map(|e| (Arc::clone(v), e)))
        .collect();
    q.apply(
        all,
        |(v, e)| (v.name.as_str(), e.name.as_str()),
        |(v, e)| views::exchange(&api, &v.name, e),
    )
    .map(Json)
}

fn existing(v: &Vhost, name: &str) -> ApiResult<Arc<Exchange>> {
    v.exchange(exchange_name(name))
        .ok_or_else(ApiError::not_found)
}

async fn show(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    let e = existing(&v, &name)?;
    let mut body = views::exchange(&api, &v.name, &e);
    body["incoming"] = json!([]);
    body["outgoing"] = json!([]);
    q.select(body).map(Json)
}

/// `PUT /api/exchanges/{vhost}/{name}`. A missing flag is false: RabbitMQ declares a
/// transient direct exchange for `{}`.
#[derive(Debug, Deserialize)]
struct DeclareBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    durable: Option<bool>,
    #[serde(default, deserialize_with = "flag")]
    auto_delete: Option<bool>,
    #[serde(default, deserialize_with = "flag")]
    internal: Option<bool>,
    #[serde(default, deserialize_with = "arguments")]
    arguments: Map<String, Value>,
}

async fn declare(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body<DeclareBody>,
) -> ApiResult<StatusCode> {
    let v = vhost_for_write(&api, &auth, &vhost)?;
    // RabbitMQ declares a direct exchange when the body names no type.
    let kind = body.kind.unwrap_or_else(|| "direct".into());
    if crate::exchange::ExchangeKind::parse(&kind).is_none() {
        return Err(ApiError::bad_request(format!(
            "invalid exchange type '{kind}'"
        )));
    }
    let name = exchange_name(&name).to_owned();
    let existed = v.exchange(&name).is_some();
    if name.is_empty() || (!existed && name.starts_with("amq.")) {
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: "Access refused.".into(),
        });
    }
    v.declare_exchange(ExchangeDeclare {
        name,
        kind,
        durable: body.durable.unwrap_or(false),
        auto_delete: body.auto_delete.unwrap_or(false),
        internal: body.internal.unwrap_or(false),
        arguments: crate::definitions::json_to_table(&body.arguments),
    })
    .map_err(ApiError::from_amqp)?;
    Ok(if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    })
}

#[derive(Debug, Default, Deserialize)]
struct DeleteQuery {
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
    let e = existing(&v, &name)?;
    if e.name.is_empty() || e.name.starts_with("amq.") {
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: "Access refused.".into(),
        });
    }
    v.delete_exchange(&e.name, q.if_unused.as_deref() == Some("true"))
        .map_err(ApiError::from_amqp)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/exchanges/{vhost}/{name}/publish`. Every field is required (RabbitMQ lists
/// the missing ones).
#[derive(Debug, Deserialize)]
struct PublishBody {
    routing_key: Option<String>,
    payload: Option<String>,
    payload_encoding: Option<String>,
    properties: Option<Value>,
}

async fn publish(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body<PublishBody>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_write(&api, &auth, &vhost)?;
    ApiError::require_keys(&[
        ("routing_key", body.routing_key.is_some()),
        ("properties", body.properties.is_some()),
        ("payload", body.payload.is_some()),
        ("payload_encoding", body.payload_encoding.is_some()),
    ])?;
    let routing_key = body.routing_key.unwrap_or_default();
    let payload = body.payload.unwrap_or_default();
    // RabbitMQ publishes on a channel, so a missing exchange is that channel's error, which
    // it reports as a 400 with the AMQP code and text.
    let exchange = v.exchange(exchange_name(&name)).ok_or_else(|| {
        ApiError::bad_request(format!(
            "404 NOT_FOUND - no exchange '{}' in vhost '{}'",
            exchange_name(&name),
            v.name
        ))
    })?;
    let body_bytes = match body.payload_encoding.as_deref().unwrap_or_default() {
        "string" => payload.into_bytes(),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(payload.as_bytes())
            .map_err(|_| ApiError::bad_request(format!("not_base64: {payload}")))?,
        other => {
            return Err(ApiError::bad_request(format!(
                "unsupported_encoding: {other}"
            )));
        }
    };
    if body_bytes.len() as u64 > api.node.config.max_message_size {
        return Err(ApiError::bad_request(format!(
            "406 PRECONDITION_FAILED - message size {} is larger than configured max size {}",
            body_bytes.len(),
            api.node.config.max_message_size
        )));
    }
    if routing_key.len() > 255 {
        return Err(ApiError::bad_request(
            "routing_key must be at most 255 bytes",
        ));
    }
    let properties = views::properties_from_json(body.properties.as_ref().unwrap_or(&Value::Null))?;
    if exchange.internal {
        return Err(ApiError::bad_request(format!(
            "403 ACCESS_REFUSED - cannot publish to internal exchange '{}' in vhost '{}'",
            exchange.name, v.name
        )));
    }
    let message = Arc::new(Message {
        exchange: exchange.name.as_str().into(),
        routing_key: routing_key.as_str().into(),
        raw_properties: bytes::Bytes::from(crate::protocol::encode_properties(&properties)),
        properties,
        body: bytes::Bytes::from(body_bytes),
    });
    let mut targets = Vec::new();
    v.route(
        &exchange,
        &[routing_key.as_str()],
        message.properties.headers().as_ref(),
        &mut RouteScratch::default(),
        &mut targets,
    );
    let routed = !targets.is_empty();
    // Queues deliver to their consumers as they enqueue.
    let (rejected, persisted) = v.enqueue(&targets, &message);
    if rejected {
        // RabbitMQ publishes with confirms and answers a nack (`x-overflow =
        // reject-publish`) with this 400.
        return Err(ApiError::bad_request(
            "rejected Unable to publish message. Check queue limits.",
        ));
    }
    if persisted && let Some(store) = api.node.store() {
        // Answer only once the message is on disk, as a confirm would.
        let (tx, rx) = tokio::sync::oneshot::channel();
        store.request_sync(Box::new(move |r| {
            let _ = tx.send(r.is_ok());
        }));
        if !rx.await.unwrap_or(false) {
            return Err(ApiError::bad_request(
                "the message could not be written to disk",
            ));
        }
    }
    Ok(Json(json!({ "routed": routed })))
}

async fn bindings_source(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    let e = existing(&v, &name)?;
    q.apply_unpaged(super::bindings::from_exchange(&v, &e))
        .map(Json)
}

async fn bindings_destination(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    let e = existing(&v, &name)?;
    q.apply_unpaged(super::bindings::to_exchange(&v, &e))
        .map(Json)
}
