//! `/api/vhosts`, `/api/users`, `/api/permissions` (and the empty `topic-permissions`):
//! RabbitMQ's access administration. Everything is for administrators except the vhost list,
//! which shows each user the vhosts it may see, as in RabbitMQ 3.10 (even a vhost's detail is
//! admin-only there). Changes go through the node (`Node::put_user`, `Node::delete_vhost`…),
//! which saves the definitions and applies them at once: a new user logs in, a deleted one's
//! connections are closed, a vhost's deletion closes its connections and deletes its queues.
//!
//! Status codes follow RabbitMQ: `PUT` answers 201 when it created and 204 when it updated,
//! `DELETE` 204, or 404 when there was nothing to delete.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::Auth;
use super::error::{ApiError, ApiResult, Body};
use super::listing::ListQuery;
use super::{Api, views};
use crate::definitions::{Tags, check_pattern, user_spec_from};
use crate::node::{Permission, PermissionError, User, VhostMetadata, VhostSpec};
use crate::vhost::Vhost;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/vhosts", get(list_vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(show_vhost).put(put_vhost).delete(delete_vhost),
        )
        .route("/api/vhosts/{vhost}/permissions", get(vhost_permissions))
        .route(
            "/api/vhosts/{vhost}/topic-permissions",
            get(vhost_topic_permissions),
        )
        .route("/api/users", get(list_users))
        .route(
            "/api/users/without-permissions",
            get(users_without_permissions),
        )
        .route("/api/users/bulk-delete", post(bulk_delete_users))
        .route(
            "/api/users/{user}",
            get(show_user).put(put_user).delete(delete_user),
        )
        .route("/api/users/{user}/permissions", get(user_permissions))
        .route(
            "/api/users/{user}/topic-permissions",
            get(user_topic_permissions),
        )
        .route("/api/permissions", get(list_permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(show_permission)
                .put(put_permission)
                .delete(delete_permission),
        )
        .route("/api/topic-permissions", get(topic_permissions))
}

// ---- vhosts -------------------------------------------------------------------------------

/// A vhost as `/api/vhosts` shows it: its metadata, the message counts of its queues (summed,
/// with rates) and the traffic of its connections.
fn vhost_json(api: &Api, v: &Vhost, meta: &VhostMetadata) -> Value {
    let (mut ready, mut unacked) = (0u64, 0u64);
    let (mut ready_rate, mut unacked_rate) = (0.0, 0.0);
    let mut stats = Value::Object(Map::new());
    for q in v.queues() {
        let snap = q.snapshot();
        let (pair, depth) = api.rates.queue(&q.vhost, &q.name);
        ready += snap.ready;
        unacked += snap.unacked;
        ready_rate += depth.gauge_rate(|d| d.ready);
        unacked_rate += depth.gauge_rate(|d| d.unacked);
        add_numbers(
            &mut stats,
            &views::message_stats(&q.stats.snapshot(), &pair),
        );
    }
    let (mut recv, mut send, mut recv_rate, mut send_rate) = (0u64, 0u64, 0.0, 0.0);
    for c in api.node.registry.connections() {
        if c.vhost == v.name {
            let octets = api.rates.connection(c.id);
            recv += c.stats.recv_oct.get();
            send += c.stats.send_oct.get();
            recv_rate += octets.rate(|o| o.recv);
            send_rate += octets.rate(|o| o.send);
        }
    }
    let mut cluster_state = Map::new();
    cluster_state.insert(views::node_name(api), json!("running"));
    let mut metadata = json!({"description": meta.description, "tags": meta.tags});
    if let Some(t) = &meta.default_queue_type {
        metadata["default_queue_type"] = json!(t);
    }
    json!({
        "name": v.name,
        "description": meta.description,
        "tags": meta.tags,
        // RabbitMQ shows Erlang's `undefined` when none was set.
        "default_queue_type": meta.default_queue_type.as_deref().unwrap_or("undefined"),
        "metadata": metadata,
        "tracing": meta.tracing,
        "cluster_state": cluster_state,
        "messages": ready + unacked,
        "messages_details": views::details(ready_rate + unacked_rate),
        "messages_ready": ready,
        "messages_ready_details": views::details(ready_rate),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": views::details(unacked_rate),
        "message_stats": stats,
        "recv_oct": recv,
        "recv_oct_details": views::details(recv_rate),
        "send_oct": send,
        "send_oct_details": views::details(send_rate),
    })
}

/// Adds the numbers of `from` into `into`, field by field (objects recursively): a vhost's
/// `message_stats` is the sum of its queues'.
fn add_numbers(into: &mut Value, from: &Value) {
    let (Value::Object(into), Value::Object(from)) = (into, from) else {
        return;
    };
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (None, _) => {
                into.insert(k.clone(), v.clone());
            }
            (Some(Value::Number(a)), Value::Number(b)) => {
                let sum = match (a.as_u64(), b.as_u64()) {
                    (Some(x), Some(y)) => json!(x.saturating_add(y)),
                    _ => json!(
                        ((a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)) * 10.0).round()
                            / 10.0
                    ),
                };
                into.insert(k.clone(), sum);
            }
            (Some(a @ Value::Object(_)), Value::Object(_)) => add_numbers(a, v),
            _ => {}
        }
    }
}

/// An existing vhost with its metadata, or RabbitMQ's 404.
fn existing_vhost(api: &Api, name: &str) -> ApiResult<(Arc<Vhost>, VhostMetadata)> {
    let v = api.node.vhost(name).ok_or_else(ApiError::not_found)?;
    let meta = api.node.vhost_metadata(name).unwrap_or_default();
    Ok((v, meta))
}

async fn list_vhosts(
    State(api): State<Api>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let visible: Vec<(Arc<Vhost>, VhostMetadata)> = api
        .node
        .vhosts()
        .into_iter()
        .filter(|v| auth.sees(&v.name))
        .map(|v| {
            let meta = api.node.vhost_metadata(&v.name).unwrap_or_default();
            (v, meta)
        })
        .collect();
    q.apply(
        visible,
        |(v, _)| ("", v.name.as_str()),
        |(v, meta)| vhost_json(&api, v, meta),
    )
    .map(Json)
}

async fn show_vhost(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    let (v, meta) = existing_vhost(&api, &name)?;
    q.select(vhost_json(&api, &v, &meta)).map(Json)
}

/// `PUT /api/vhosts/{name}`. RabbitMQ 3.10 reads the default queue type from
/// `defaultqueuetype`; later versions (and tools) send `default_queue_type`: both are taken.
#[derive(Debug, Default, Deserialize)]
struct VhostBody {
    description: Option<String>,
    tags: Option<Tags>,
    default_queue_type: Option<String>,
    defaultqueuetype: Option<String>,
    tracing: Option<Value>,
}

async fn put_vhost(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Body(body): Body<VhostBody>,
) -> ApiResult<StatusCode> {
    auth.require_admin()?;
    if name.is_empty() {
        return Err(ApiError::bad_request("vhost name must not be empty"));
    }
    let tracing = match &body.tracing {
        None | Some(Value::Null) => None,
        Some(v) => Some(boolean(v).ok_or_else(|| {
            ApiError::bad_request(format!(
                "not_boolean: tracing must be true or false, not {v}"
            ))
        })?),
    };
    let spec = VhostSpec {
        // An update replaces both, as RabbitMQ's does (absent = empty).
        description: body.description.unwrap_or_default(),
        tags: body.tags.map(Tags::into_vec).unwrap_or_default(),
        default_queue_type: body.default_queue_type.or(body.defaultqueuetype),
        tracing,
    };
    Ok(created(api.node.put_vhost(&name, spec, Some(&auth.0.name))))
}

async fn delete_vhost(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require_admin()?;
    if api.node.delete_vhost(&name) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

async fn vhost_permissions(
    State(api): State<Api>,
    auth: Auth,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    existing_vhost(&api, &vhost)?;
    let perms: Vec<(String, String, Permission)> = all_permissions(&api)
        .into_iter()
        .filter(|(_, v, _)| *v == vhost)
        .collect();
    q.apply(
        perms,
        |(user, _, _)| ("", user.as_str()),
        |(user, vhost, p)| permission_json(user, vhost, p),
    )
    .map(Json)
}

async fn vhost_topic_permissions(
    State(api): State<Api>,
    auth: Auth,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    existing_vhost(&api, &vhost)?;
    Ok(Json(json!([])))
}

// ---- users --------------------------------------------------------------------------------

/// A user as `/api/users` shows it (RabbitMQ 3.10: `tags` is a list).
fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "password_hash": u.password_hash.to_base64(),
        "hashing_algorithm": u.password_hash.algorithm().name(),
        "tags": u.tags,
        "limits": u.limits,
    })
}

fn users(q: &ListQuery, users: Vec<User>) -> ApiResult<Json<Value>> {
    q.apply(users, |u| ("", u.name.as_str()), user_json)
        .map(Json)
}

async fn list_users(
    State(api): State<Api>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    users(&q, api.node.users())
}

async fn users_without_permissions(
    State(api): State<Api>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    let mut all = api.node.users();
    all.retain(|u| u.permissions.is_empty());
    users(&q, all)
}

fn existing_user(api: &Api, name: &str) -> ApiResult<User> {
    api.node.user(name).ok_or_else(ApiError::not_found)
}

async fn show_user(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    q.select(user_json(&existing_user(&api, &name)?)).map(Json)
}

/// `PUT /api/users/{name}`: `tags` (a list, or one comma-separated string) is required (or
/// the pre-3.0 `administrator` flag); `password` or `password_hash` (+ `hashing_algorithm`);
/// neither leaves the user without a password, as RabbitMQ does.
#[derive(Debug, Default, Deserialize)]
struct UserBody {
    password: Option<String>,
    password_hash: Option<String>,
    #[serde(default)]
    hashing_algorithm: String,
    tags: Option<Tags>,
    administrator: Option<Value>,
    limits: Option<Map<String, Value>>,
}

async fn put_user(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Body(body): Body<UserBody>,
) -> ApiResult<StatusCode> {
    auth.require_admin()?;
    if name.is_empty() {
        return Err(ApiError::bad_request("user name must not be empty"));
    }
    let tags = match (body.tags, &body.administrator) {
        (Some(tags), _) => Some(tags),
        (None, Some(admin)) => Some(Tags::List(if boolean(admin) == Some(true) {
            vec!["administrator".into()]
        } else {
            Vec::new()
        })),
        (None, None) => None,
    };
    let spec = user_spec_from(
        body.password.as_deref(),
        body.password_hash.as_deref(),
        &body.hashing_algorithm,
        tags,
        body.limits,
    )
    .map_err(ApiError::bad_request)?;
    Ok(created(api.node.put_user(&name, spec)))
}

async fn delete_user(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require_admin()?;
    if api.node.delete_user(&name) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

/// `POST /api/users/bulk-delete` `{"users": [...]}`.
#[derive(Debug, Default, Deserialize)]
struct BulkDeleteBody {
    users: Option<Vec<String>>,
}

async fn bulk_delete_users(
    State(api): State<Api>,
    auth: Auth,
    Body(body): Body<BulkDeleteBody>,
) -> ApiResult<StatusCode> {
    auth.require_admin()?;
    let names = body
        .users
        .ok_or_else(|| ApiError::bad_request("[{key_missing,users}]"))?;
    // All or nothing (RabbitMQ deletes the users before the missing one, then answers 400).
    if let Some(missing) = names.iter().find(|n| api.node.user(n).is_none()) {
        return Err(ApiError::bad_request(format!("no_such_user: {missing}")));
    }
    for name in &names {
        api.node.delete_user(name);
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn user_permissions(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    let user = existing_user(&api, &name)?;
    let perms: Vec<(String, String, Permission)> = user
        .permissions
        .into_iter()
        .map(|(vhost, p)| (user.name.clone(), vhost, p))
        .collect();
    q.apply(
        perms,
        |(_, vhost, _)| ("", vhost.as_str()),
        |(user, vhost, p)| permission_json(user, vhost, p),
    )
    .map(Json)
}

async fn user_topic_permissions(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    existing_user(&api, &name)?;
    Ok(Json(json!([])))
}

// ---- permissions --------------------------------------------------------------------------

fn permission_json(user: &str, vhost: &str, p: &Permission) -> Value {
    json!({
        "user": user,
        "vhost": vhost,
        "configure": p.configure,
        "write": p.write,
        "read": p.read,
    })
}

/// Every (user, vhost, permission), ordered by vhost then user, as RabbitMQ lists them.
fn all_permissions(api: &Api) -> Vec<(String, String, Permission)> {
    let mut all: Vec<(String, String, Permission)> = api
        .node
        .users()
        .into_iter()
        .flat_map(|u| {
            let name = u.name;
            u.permissions
                .into_iter()
                .map(move |(vhost, p)| (name.clone(), vhost, p))
        })
        .collect();
    all.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    all
}

async fn list_permissions(
    State(api): State<Api>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    q.apply(
        all_permissions(&api),
        |(_, vhost, _)| ("", vhost.as_str()),
        |(user, vhost, p)| permission_json(user, vhost, p),
    )
    .map(Json)
}

async fn show_permission(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    api.node.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    let u = existing_user(&api, &user)?;
    let p = u.permissions.get(&vhost).ok_or_else(ApiError::not_found)?;
    Ok(Json(permission_json(&user, &vhost, p)))
}

/// `PUT /api/permissions/{vhost}/{user}`: all three patterns are required.
#[derive(Debug, Default, Deserialize)]
struct PermissionBody {
    configure: Option<String>,
    write: Option<String>,
    read: Option<String>,
}

async fn put_permission(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, user)): Path<(String, String)>,
    Body(body): Body<PermissionBody>,
) -> ApiResult<StatusCode> {
    auth.require_admin()?;
    let vhost_or_user_not_found = || ApiError::bad_request("vhost_or_user_not_found");
    if api.node.vhost(&vhost).is_none() || api.node.user(&user).is_none() {
        return Err(vhost_or_user_not_found());
    }
    let missing: Vec<String> = [
        ("configure", &body.configure),
        ("write", &body.write),
        ("read", &body.read),
    ]
    .iter()
    .filter(|(_, v)| v.is_none())
    .map(|(k, _)| format!("{{key_missing,{k}}}"))
    .collect();
    let (Some(configure), Some(write), Some(read)) = (body.configure, body.write, body.read) else {
        return Err(ApiError::bad_request(format!("[{}]", missing.join(","))));
    };
    for pattern in [&configure, &write, &read] {
        check_pattern(pattern).map_err(ApiError::bad_request)?;
    }
    let permission = Permission {
        configure,
        write,
        read,
    };
    match api.node.set_permission(&user, &vhost, permission) {
        Ok(new) => Ok(created(new)),
        Err(PermissionError::NoSuchUser | PermissionError::NoSuchVhost) => {
            Err(vhost_or_user_not_found())
        }
    }
}

async fn delete_permission(
    State(api): State<Api>,
    auth: Auth,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    auth.require_admin()?;
    if api.node.vhost(&vhost).is_some() && api.node.clear_permission(&user, &vhost) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

/// Topic permissions: the broker has none (an import ignores them).
async fn topic_permissions(auth: Auth) -> ApiResult<Json<Value>> {
    auth.require_admin()?;
    Ok(Json(json!([])))
}

// ---- helpers ------------------------------------------------------------------------------

/// 201 for a created object, 204 for an updated one.
fn created(new: bool) -> StatusCode {
    if new {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    }
}

/// RabbitMQ's `parse_bool`: `true`/`false` as JSON booleans or strings.
fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhost_message_stats_add_up() {
        let mut sum = json!({});
        add_numbers(
            &mut sum,
            &json!({"publish": 2, "publish_details": {"rate": 0.5}}),
        );
        add_numbers(
            &mut sum,
            &json!({"publish": 3, "publish_details": {"rate": 1.2}}),
        );
        assert_eq!(sum, json!({"publish": 5, "publish_details": {"rate": 1.7}}));
    }

    #[test]
    fn booleans_as_rabbitmq_parses_them() {
        assert_eq!(boolean(&json!(true)), Some(true));
        assert_eq!(boolean(&json!("false")), Some(false));
        assert_eq!(boolean(&json!("yes")), None);
        assert_eq!(boolean(&json!(1)), None);
    }
}
