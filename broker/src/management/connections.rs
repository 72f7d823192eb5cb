//! `/api/connections`, `/api/channels` and `/api/consumers`. Deleting a connection closes it
//! with `320 CONNECTION_FORCED` and the `X-Reason` header's text, as RabbitMQ does.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::listing::ListQuery;
use super::queues::vhost_for_read;
use super::{Api, views};
use crate::queue::Queue;
use crate::registry::ConnectionInfo;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/connections", get(list_connections))
        .route(
            "/api/connections/{name}",
            get(show_connection).delete(close_connection),
        )
        .route("/api/connections/{name}/channels", get(connection_channels))
        .route("/api/vhosts/{vhost}/connections", get(vhost_connections))
        .route("/api/channels", get(list_channels))
        .route("/api/channels/{name}", get(show_channel))
        .route("/api/vhosts/{vhost}/channels", get(vhost_channels))
        .route("/api/consumers", get(list_consumers))
        .route("/api/consumers/{vhost}", get(vhost_consumers))
}

fn visible_connections(api: &Api, auth: &Auth, vhost: Option<&str>) -> Vec<Arc<ConnectionInfo>> {
    api.node
        .registry
        .connections()
        .into_iter()
        .filter(|c| vhost.is_none_or(|v| c.vhost == v))
        .filter(|c| auth.sees_all() || c.user == auth.0.name)
        .collect()
}

fn connections(
    api: &Api,
    q: &ListQuery,
    conns: Vec<Arc<ConnectionInfo>>,
) -> ApiResult<Json<Value>> {
    q.apply(
        conns,
        |c| (c.vhost.as_str(), c.name.as_str()),
        |c| views::connection(api, c),
    )
    .map(Json)
}

async fn list_connections(
    State(api): State<Api>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let conns = visible_connections(&api, &auth, None);
    connections(&api, &q, conns)
}

async fn vhost_connections(
    State(api): State<Api>,
    auth: Auth,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    vhost_for_read(&api, &auth, &vhost)?;
    let conns = visible_connections(&api, &auth, Some(&vhost));
    connections(&api, &q, conns)
}

fn connection_named(api: &Api, auth: &Auth, name: &str) -> ApiResult<Arc<ConnectionInfo>> {
    api.node
        .registry
        .connection(name)
        .filter(|c| auth.sees_all() || c.user == auth.0.name)
        .ok_or_else(ApiError::not_found)
}

async fn show_connection(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = connection_named(&api, &auth, &name)?;
    Ok(Json(views::connection(&api, &c)))
}

async fn close_connection(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let c = connection_named(&api, &auth, &name)?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Closed via management plugin")
        .to_owned();
    c.force_close(reason);
    Ok(StatusCode::NO_CONTENT)
}

/// Every channel of `conns`, rendered.
fn channels_of(api: &Api, conns: &[Arc<ConnectionInfo>]) -> Vec<(String, Value)> {
    conns
        .iter()
        .flat_map(|c| {
            c.channels()
                .into_iter()
                .map(|(n, s)| (c.channel_name(n), views::channel(api, c, n, &s)))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn channels(api: &Api, q: &ListQuery, conns: &[Arc<ConnectionInfo>]) -> ApiResult<Json<Value>> {
    q.apply(
        channels_of(api, conns),
        |(name, v)| (v["vhost"].as_str().unwrap_or_default(), name.as_str()),
        |(_, v)| v.clone(),
    )
    .map(Json)
}

async fn list_channels(
    State(api): State<Api>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    channels(&api, &q, &visible_connections(&api, &auth, None))
}

async fn vhost_channels(
    State(api): State<Api>,
    auth: Auth,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    vhost_for_read(&api, &auth, &vhost)?;
    channels(&api, &q, &visible_connections(&api, &auth, Some(&vhost)))
}

async fn connection_channels(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let c = connection_named(&api, &auth, &name)?;
    channels(&api, &q, &[c])
}

async fn show_channel(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let conns = visible_connections(&api, &auth, None);
    channels_of(&api, &conns)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| Json(v))
        .ok_or_else(ApiError::not_found)
}

/// The consumers of one queue, as `/api/consumers` and a queue's `consumer_details` show them.
pub fn consumers_of(api: &Api, queue: &Arc<Queue>) -> Vec<Value> {
    queue
        .consumers()
        .into_iter()
        .map(|c| {
            let conn = api.node.registry.connection_by_id(c.connection);
            let channel_details = match &conn {
                Some(conn) => json!({
                    "name": conn.channel_name(c.channel),
                    "number": c.channel,
                    "connection_name": conn.name,
                    "peer_host": conn.peer.ip().to_string(),
                    "peer_port": conn.peer.port(),
                    "user": conn.user,
                    "node": views::node_name(api),
                }),
                None => json!({}),
            };
            let mut arguments = serde_json::Map::new();
            if c.priority != 0 {
                arguments.insert("x-priority".into(), json!(c.priority));
            }
            json!({
                "consumer_tag": &*c.tag,
                "queue": {"name": queue.name, "vhost": queue.vhost},
                "channel_details": channel_details,
                "ack_required": !c.no_ack,
                "prefetch_count": c.prefetch,
                "exclusive": c.exclusive,
                "active": c.active,
                "activity_status": if c.active { "up" } else { "waiting" },
                "arguments": arguments,
                "consumer_timeout": 1_800_000,
            })
        })
        .collect()
}

fn consumers(api: &Api, auth: &Auth, vhost: Option<&str>) -> Vec<Value> {
    let mut vhosts = api.node.vhosts();
    vhosts.retain(|v| vhost.is_none_or(|n| v.name == n) && auth.sees(&v.name));
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for v in vhosts {
        let mut queues = v.queues();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        for q in queues {
            out.extend(consumers_of(api, &q));
        }
    }
    out
}

/// RabbitMQ sorts consumer lists and selects columns, but does not paginate them.
async fn list_consumers(
    State(api): State<Api>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    q.apply_unpaged(consumers(&api, &auth, None)).map(Json)
}

async fn vhost_consumers(
    State(api): State<Api>,
    auth: Auth,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    vhost_for_read(&api, &auth, &vhost)?;
    q.apply_unpaged(consumers(&api, &auth, Some(&vhost)))
        .map(Json)
}
