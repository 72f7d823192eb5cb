//! `/api/bindings`: list (node, vhost), the bindings between one source and one destination,
//! create (POST → 201 with a `Location` naming the binding's properties key) and delete by
//! properties key. The default exchange's implicit bindings are listed, not changeable.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::auth::Auth;
use super::error::{ApiError, ApiResult, Body};
use super::exchanges::exchange_name;
use super::listing::ListQuery;
use super::queues::{vhost_for_read, vhost_for_write};
use super::{Api, views};
use crate::definitions::{json_to_table, table_to_json};
use crate::exchange::{Destination, Exchange};
use crate::queue::Queue;
use crate::vhost::Vhost;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/bindings", get(list_all))
        .route("/api/bindings/{vhost}", get(list_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(between).post(create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(show).delete(remove),
        )
}

/// Every binding of a vhost, the default exchange's implicit ones first (RabbitMQ's order).
pub fn of_vhost(v: &Vhost) -> Vec<Value> {
    let mut queues = v.queues();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<Value> = queues
        .iter()
        .map(|q| views::default_binding(&v.name, &q.name))
        .collect();
    let mut exchanges = v.exchanges();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    for e in exchanges.iter().filter(|e| !e.name.is_empty()) {
        out.extend(from_exchange(v, e));
    }
    out
}

/// Bindings whose source is `e`.
pub fn from_exchange(v: &Vhost, e: &Exchange) -> Vec<Value> {
    if e.name.is_empty() {
        let mut queues = v.queues();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        return queues
            .iter()
            .map(|q| views::default_binding(&v.name, &q.name))
            .collect();
    }
    e.bindings()
        .iter()
        .map(|b| views::binding(&v.name, &e.name, b))
        .collect()
}

/// Bindings whose destination is `queue` (the default exchange's first).
pub fn to_queue(v: &Vhost, queue: &Arc<Queue>) -> Vec<Value> {
    let mut out = vec![views::default_binding(&v.name, &queue.name)];
    out.extend(to(v, &Destination::Queue(Arc::clone(queue))));
    out
}

/// Bindings whose destination is the exchange `e`.
pub fn to_exchange(v: &Vhost, e: &Arc<Exchange>) -> Vec<Value> {
    to(v, &Destination::Exchange(Arc::clone(e)))
}

fn to(v: &Vhost, d: &Destination) -> Vec<Value> {
    let mut exchanges = v.exchanges();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    exchanges
        .iter()
        .flat_map(|e| {
            e.bindings()
                .into_iter()
                .filter(|b| same(&b.destination, d))
                .map(|b| views::binding(&v.name, &e.name, &b))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn same(a: &Destination, b: &Destination) -> bool {
    match (a, b) {
        (Destination::Queue(x), Destination::Queue(y)) => Arc::ptr_eq(x, y),
        (Destination::Exchange(x), Destination::Exchange(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

fn list(q: &ListQuery, vhosts: Vec<Arc<Vhost>>) -> ApiResult<Json<Value>> {
    let all: Vec<Value> = vhosts.iter().flat_map(|v| of_vhost(v)).collect();
    // Bindings have no name: `name` filters nothing, sort defaults to RabbitMQ's order.
    q.apply(all, |_| ("", ""), Value::clone).map(Json)
}

async fn list_all(
    State(api): State<Api>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let mut vhosts: Vec<_> = api
        .node
        .vhosts()
        .into_iter()
        .filter(|v| auth.sees(&v.name))
        .collect();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    list(&q, vhosts)
}

async fn list_vhost(
    State(api): State<Api>,
    auth: Auth,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    list(&q, vec![v])
}

/// The source exchange and destination of a binding path.
fn ends(
    v: &Vhost,
    source: &str,
    kind: &str,
    destination: &str,
) -> ApiResult<(Arc<Exchange>, Destination)> {
    let source = v
        .exchange(exchange_name(source))
        .ok_or_else(|| missing(format!("no exchange '{source}' in vhost '{}'", v.name)))?;
    let destination = match kind {
        "q" => {
            Destination::Queue(v.queue(destination).ok_or_else(|| {
                missing(format!("no queue '{destination}' in vhost '{}'", v.name))
            })?)
        }
        "e" => Destination::Exchange(v.exchange(exchange_name(destination)).ok_or_else(|| {
            missing(format!("no exchange '{destination}' in vhost '{}'", v.name))
        })?),
        _ => return Err(ApiError::not_found()),
    };
    Ok((source, destination))
}

fn missing(reason: String) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        error: "not_found",
        reason,
    }
}

fn access_refused() -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        error: "not_authorised",
        reason: "Access refused.".into(),
    }
}

async fn between(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    let (source, destination) = ends(&v, &source, &kind, &destination)?;
    let mut all = from_exchange(&v, &source);
    let (dest_name, dest_kind) = match &destination {
        Destination::Queue(q) => (q.name.as_str(), "queue"),
        Destination::Exchange(e) => (e.name.as_str(), "exchange"),
    };
    all.retain(|b| b["destination"] == dest_name && b["destination_type"] == dest_kind);
    Ok(Json(Value::Array(all)))
}

/// `POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}`.
#[derive(Debug, Deserialize)]
struct CreateBody {
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    arguments: Map<String, Value>,
}

async fn create(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    let v = vhost_for_write(&api, &auth, &vhost)?;
    let (source, destination) = ends(&v, &source, &kind, &destination)?;
    if source.name.is_empty() {
        return Err(access_refused());
    }
    let dest_name = match &destination {
        Destination::Queue(q) => q.name.clone(),
        Destination::Exchange(e) => e.name.clone(),
    };
    let arguments = json_to_table(&body.arguments);
    let key = views::properties_key(&body.routing_key, &table_to_json(&arguments));
    v.bind(&source, destination, &body.routing_key, arguments);
    let location = format!(
        "{}/{key}",
        percent_encoding::utf8_percent_encode(&dest_name, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, value);
    }
    Ok(resp)
}

/// The binding named by a properties key.
fn find(
    source: &Exchange,
    destination: &Destination,
    props: &str,
) -> Option<crate::exchange::Binding> {
    source.bindings().into_iter().find(|b| {
        same(&b.destination, destination)
            && views::properties_key(&b.routing_key, &table_to_json(&b.arguments)) == props
    })
}

async fn show(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    let (source, destination) = ends(&v, &source, &kind, &destination)?;
    if source.name.is_empty() {
        if let Destination::Queue(q) = &destination
            && views::properties_key(&q.name, &Map::new()) == props
        {
            return Ok(Json(views::default_binding(&v.name, &q.name)));
        }
        return Err(ApiError::not_found());
    }
    let b = find(&source, &destination, &props).ok_or_else(ApiError::not_found)?;
    Ok(Json(views::binding(&v.name, &source.name, &b)))
}

async fn remove(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let v = vhost_for_write(&api, &auth, &vhost)?;
    let (source, destination) = ends(&v, &source, &kind, &destination)?;
    if source.name.is_empty() {
        return Err(access_refused());
    }
    let b = find(&source, &destination, &props).ok_or_else(ApiError::not_found)?;
    v.unbind(&source, &destination, &b.routing_key, &b.arguments);
    Ok(StatusCode::NO_CONTENT)
}
