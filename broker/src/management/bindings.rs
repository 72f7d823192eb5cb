//! `/api/bindings`: list (node, vhost), the bindings between one source and one destination,
//! create (POST → 201 with a `Location` naming the binding's properties key) and delete by
//! properties key. The default exchange's implicit bindings are listed, not changeable.
//!
//! Every list is in RabbitMQ's order (vhost, source, destination, routing key, properties
//! key) and none is paginated: RabbitMQ's binding lists ignore `page` and `name`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::Auth;
use super::error::{ApiError, ApiResult, Body, arguments};
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
    let mut out: Vec<Value> = v
        .queues()
        .iter()
        .map(|q| views::default_binding(&v.name, &q.name))
        .collect();
    for e in v.exchanges().iter().filter(|e| !e.name.is_empty()) {
        out.extend(
            e.bindings()
                .iter()
                .map(|b| views::binding(&v.name, &e.name, b)),
        );
    }
    sorted(out)
}

/// Bindings whose source is `e`.
pub fn from_exchange(v: &Vhost, e: &Exchange) -> Vec<Value> {
    if e.name.is_empty() {
        return sorted(
            v.queues()
                .iter()
                .map(|q| views::default_binding(&v.name, &q.name))
                .collect(),
        );
    }
    sorted(
        e.bindings()
            .iter()
            .map(|b| views::binding(&v.name, &e.name, b))
            .collect(),
    )
}

/// Bindings whose destination is `queue` (the default exchange's first).
pub fn to_queue(v: &Vhost, queue: &Arc<Queue>) -> Vec<Value> {
    let mut out = vec![views::default_binding(&v.name, &queue.name)];
    out.extend(to(v, &Destination::Queue(Arc::clone(queue))));
    sorted(out)
}

/// Bindings whose destination is the exchange `e`.
pub fn to_exchange(v: &Vhost, e: &Arc<Exchange>) -> Vec<Value> {
    sorted(to(v, &Destination::Exchange(Arc::clone(e))))
}

fn to(v: &Vhost, d: &Destination) -> Vec<Value> {
    v.exchanges()
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

/// RabbitMQ's order of bindings: vhost, source, destination, routing key, properties key.
fn sorted(mut bindings: Vec<Value>) -> Vec<Value> {
    const KEYS: [&str; 5] = [
        "vhost",
        "source",
        "destination",
        "routing_key",
        "properties_key",
    ];
    bindings.sort_by(|a, b| {
        KEYS.iter()
            .map(|k| a[k].as_str().cmp(&b[k].as_str()))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    bindings
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
    q.apply_unpaged(all).map(Json)
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
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    // RabbitMQ lists no bindings (200 []) when either end does not exist.
    let Ok((source, destination)) = ends(&v, &source, &kind, &destination) else {
        return Ok(Json(json!([])));
    };
    let mut all = from_exchange(&v, &source);
    let (dest_name, dest_kind) = match &destination {
        Destination::Queue(q) => (q.name.as_str(), "queue"),
        Destination::Exchange(e) => (e.name.as_str(), "exchange"),
    };
    all.retain(|b| b["destination"] == dest_name && b["destination_type"] == dest_kind);
    q.apply_unpaged(all).map(Json)
}

/// `POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}`.
#[derive(Debug, Deserialize)]
struct CreateBody {
    #[serde(default)]
    routing_key: String,
    #[serde(default, deserialize_with = "arguments")]
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
    // Relative to the request's path, each segment quoted as RabbitMQ quotes URLs (the
    // properties key is already quoted, and gets quoted again).
    let location = format!(
        "{}/{}",
        views::quote_plus(&dest_name),
        views::quote_plus(&key)
    );
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, value);
    }
    Ok(resp)
}

/// A properties key from a path read back as RabbitMQ's `rabbit_mgmt_wm_binding:unpack`
/// reads it: the routing key (form-unquoted) and the arguments' hash, if any. `None` for a
/// key with more than one `~`, which names no binding.
fn unpack(props: &str) -> Option<(String, Option<String>)> {
    let (key, hash) = match props.split_once('~') {
        None => (props, None),
        Some((key, "")) => (key, None),
        Some((_, rest)) if rest.contains('~') => return None,
        Some((key, hash)) => (key, Some(views::unquote_plus(hash))),
    };
    Some((views::unquote_plus(key), hash))
}

/// The binding named by a properties key.
fn find(
    source: &Exchange,
    destination: &Destination,
    props: &str,
) -> Option<crate::exchange::Binding> {
    let (key, hash) = unpack(props)?;
    source.bindings().into_iter().find(|b| {
        same(&b.destination, destination)
            && b.routing_key.as_str() == key
            && match &hash {
                None => b.arguments.inner().is_empty(),
                Some(h) => *h == views::arguments_hash(&table_to_json(&b.arguments)),
            }
    })
}

async fn show(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let v = vhost_for_read(&api, &auth, &vhost)?;
    let (source, destination) =
        ends(&v, &source, &kind, &destination).map_err(|_| ApiError::not_found())?;
    if source.name.is_empty() {
        if let Destination::Queue(q) = &destination
            && unpack(&props) == Some((q.name.clone(), None))
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
    let (source, destination) =
        ends(&v, &source, &kind, &destination).map_err(|_| ApiError::not_found())?;
    if source.name.is_empty() {
        return Err(access_refused());
    }
    let b = find(&source, &destination, &props).ok_or_else(ApiError::not_found)?;
    v.unbind(&source, &destination, &b.routing_key, &b.arguments);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_keys_read_back() {
        assert_eq!(unpack("~"), Some((String::new(), None)));
        assert_eq!(unpack("k"), Some(("k".into(), None)));
        assert_eq!(
            unpack("~AbC-_0"),
            Some((String::new(), Some("AbC-_0".into())))
        );
        assert_eq!(
            unpack("a+b%2A%23%7Ec~h"),
            Some(("a b*#~c".into(), Some("h".into())))
        );
        assert_eq!(unpack("a~b~c"), None);
        let key = views::properties_key("a b*#~c/d", &Map::new());
        assert_eq!(key, "a+b%2A%23%7Ec%2Fd");
        assert_eq!(unpack(&key), Some(("a b*#~c/d".into(), None)));
    }
}
