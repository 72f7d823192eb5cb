//! Management HTTP API, administration: users, vhosts and permissions (and their effect on
//! AMQP and HTTP logins), and definitions export and import, against our broker and RabbitMQ
//! 3.10. Every object is named `tests::unique("adm…")` and deleted at the end.

use lapin::{Connection, ConnectionProperties};
use reqwest::Method;
use serde_json::{Value, json};
use tests::{Broker, Target, parity, unique};

use crate::management::{Api, Reply, VHOST, assert_fields, enc, keys};
use crate::support::{amqp_error, next_amqp_error};

parity!(
    users_create_update_delete,
    users_bulk_delete_and_without_permissions,
    http_login_needs_tags_and_the_password,
    non_admins_cannot_administer,
    amqp_login_follows_users_and_permissions,
    vhost_create_list_delete,
    vhost_delete_closes_connections_and_deletes_queues,
    permissions_put_get_delete,
    definitions_export_has_the_keys_tools_read,
    definitions_import_creates_everything,
    definitions_import_into_one_vhost,
    invalid_definitions_change_nothing,
    definitions_import_errors,
);

/// A user's password hash made by RabbitMQ 3.10.8 (`rabbitmqctl add_user`) for
/// [`RABBITMQ_HASH_PASSWORD`], as its definitions export carries it.
const RABBITMQ_HASH: &str = "7rkL9lhq1mWYuOHvj0BoNtaNX//3xCV43fc3+K5L7jFzkl8h";
const RABBITMQ_HASH_PASSWORD: &str = "S3cret pässwörd!";

/// RabbitMQ's body for a missing object.
fn not_found() -> Value {
    json!({"error": "Object Not Found", "reason": "Not Found"})
}

/// The AMQP URL of `b` for another user and vhost.
fn amqp_url(b: &Broker, user: &str, pass: &str, vhost: &str) -> String {
    format!(
        "amqp://{}:{}@{}/{}",
        enc(user),
        enc(pass),
        b.addr,
        enc(vhost)
    )
}

async fn amqp_connect(
    b: &Broker,
    user: &str,
    pass: &str,
    vhost: &str,
) -> lapin::Result<Connection> {
    Connection::connect(
        &amqp_url(b, user, pass, vhost),
        ConnectionProperties::default(),
    )
    .await
}

/// Asserts a reply's status, showing the body when it differs.
#[track_caller]
fn assert_status(r: &Reply, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
}

/// Creates a user with `tags` (a comma-separated string) and a password.
async fn create_user(api: &Api, name: &str, pass: &str, tags: &str) {
    let r = api
        .put(
            &format!("/api/users/{}", enc(name)),
            json!({"password": pass, "tags": tags}),
        )
        .await;
    assert_status(&r, 201, "create user");
}

async fn create_vhost(api: &Api, name: &str) {
    let r = api
        .put(&format!("/api/vhosts/{}", enc(name)), json!({}))
        .await;
    assert_status(&r, 201, "create vhost");
}

async fn grant(api: &Api, vhost: &str, user: &str) {
    let r = api
        .put(
            &format!("/api/permissions/{}/{}", enc(vhost), enc(user)),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await;
    assert_status(&r, 201, "set permissions");
}

/// Deletes users and vhosts (cleanup; missing ones are fine).
async fn remove(api: &Api, users: &[&str], vhosts: &[&str]) {
    for u in users {
        api.delete(&format!("/api/users/{}", enc(u))).await;
    }
    for v in vhosts {
        api.delete(&format!("/api/vhosts/{}", enc(v))).await;
    }
}

async fn users_create_update_delete(b: &Broker) {
    let api = Api::new(b);
    let name = unique("adm-user");
    let path = format!("/api/users/{}", enc(&name));
    let r = api
        .put(
            &path,
            json!({"password": "pw-1", "tags": "management,monitoring"}),
        )
        .await;
    assert_status(&r, 201, "create");
    let u = api.get_ok(&path).await;
    assert_eq!(
        keys(&u),
        [
            "hashing_algorithm",
            "limits",
            "name",
            "password_hash",
            "tags"
        ]
    );
    assert_eq!(u["name"], name.as_str());
    assert_eq!(u["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert_eq!(u["tags"], json!(["management", "monitoring"]));
    assert_eq!(u["limits"], json!({}));
    let hash = u["password_hash"]
        .as_str()
        .expect("password_hash")
        .to_owned();
    assert_eq!(
        hash.len(),
        48,
        "base64 of a 4-byte salt and a SHA-256: {hash}"
    );
    assert!(
        api.get_ok("/api/users")
            .await
            .as_array()
            .expect("list")
            .contains(&u)
    );

    // An update: tags as a list, a new password.
    let r = api
        .put(
            &path,
            json!({"password": "pw-2", "tags": ["administrator"]}),
        )
        .await;
    assert_status(&r, 204, "update");
    let u = api.get_ok(&path).await;
    assert_eq!(u["tags"], json!(["administrator"]));
    assert_ne!(
        u["password_hash"],
        hash.as_str(),
        "a new password, a new salted hash"
    );
    assert_eq!(
        api.as_user(&name, "pw-2").get("/api/whoami").await.status,
        200
    );
    assert_eq!(
        api.as_user(&name, "pw-1").get("/api/whoami").await.status,
        401
    );

    // A password hash is taken as given: RabbitMQ's logs in with its password.
    let r = api
        .put(
            &path,
            json!({"password_hash": RABBITMQ_HASH, "hashing_algorithm": "rabbit_password_hashing_sha256",
                   "tags": "administrator"}),
        )
        .await;
    assert_status(&r, 204, "update with a hash");
    assert_eq!(api.get_ok(&path).await["password_hash"], RABBITMQ_HASH);
    let me = api
        .as_user(&name, RABBITMQ_HASH_PASSWORD)
        .get("/api/whoami")
        .await;
    assert_status(&me, 200, "log in with the hashed password");

    // RabbitMQ's rules for a PUT.
    let r = api.put(&path, json!({"password": "x"})).await;
    assert_eq!(
        (r.status, &r.body),
        (
            400,
            &json!({"error": "bad_request", "reason": "tags_not_present"})
        )
    );
    let r = api
        .put(
            &path,
            json!({"password": "x", "password_hash": RABBITMQ_HASH, "tags": ""}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body),
        (
            400,
            &json!({"error": "bad_request", "reason": "both_password_and_password_hash_are_provided"})
        )
    );
    let r = api
        .put(&path, json!({"password_hash": "!!not base64", "tags": ""}))
        .await;
    assert_status(&r, 400, "a hash that is not base64");
    let r = api
        .send(Method::PUT, &path, Some("{\"tags\": ".into()), &[])
        .await;
    assert_eq!(
        (r.status, &r.body),
        (400, &json!({"error": "bad_request", "reason": "not_json"}))
    );
    // Neither password nor hash: the user stays, without a password.
    let r = api.put(&path, json!({"tags": "administrator"})).await;
    assert_status(&r, 204, "update without a password");
    assert_eq!(api.get_ok(&path).await["password_hash"], "");
    let r = api
        .as_user(&name, RABBITMQ_HASH_PASSWORD)
        .get("/api/whoami")
        .await;
    assert_status(&r, 401, "the password was cleared");

    let r = api.delete(&path).await;
    assert_status(&r, 204, "delete");
    let r = api.get(&path).await;
    assert_eq!((r.status, r.body), (404, not_found()));
    let r = api.delete(&path).await;
    assert_eq!((r.status, r.body), (404, not_found()));
}

async fn users_bulk_delete_and_without_permissions(b: &Broker) {
    let api = Api::new(b);
    let (a, c) = (unique("adm-bulk"), unique("adm-bulk"));
    create_user(&api, &a, "pw", "").await;
    create_user(&api, &c, "pw", "").await;
    grant(&api, "/", &c).await;
    let without = api.get_ok("/api/users/without-permissions").await;
    let names: Vec<&str> = without
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert!(names.contains(&a.as_str()), "{names:?}");
    assert!(!names.contains(&c.as_str()), "{names:?}");
    assert!(!names.contains(&"guest"), "{names:?}");

    let r = api.post("/api/users/bulk-delete", json!({})).await;
    assert_eq!(
        (r.status, &r.body),
        (
            400,
            &json!({"error": "bad_request", "reason": "[{key_missing,users}]"})
        )
    );
    let r = api
        .post("/api/users/bulk-delete", json!({"users": [a, c]}))
        .await;
    assert_status(&r, 204, "bulk delete");
    for u in [&a, &c] {
        assert_eq!(api.get(&format!("/api/users/{}", enc(u))).await.status, 404);
    }
    let perms = api
        .get_ok(&format!("/api/vhosts/{VHOST}/permissions"))
        .await;
    assert!(
        !perms
            .as_array()
            .expect("list")
            .iter()
            .any(|p| p["user"] == c.as_str()),
        "a deleted user's permissions go with it: {perms}"
    );
}

async fn http_login_needs_tags_and_the_password(b: &Broker) {
    let api = Api::new(b);
    let user = unique("adm-notags");
    create_user(&api, &user, "pw", "").await;
    let r = api.as_user(&user, "pw").get("/api/overview").await;
    assert_eq!(
        (r.status, &r.body),
        (
            401,
            &json!({"error": "not_authorised", "reason": "Not management user"})
        )
    );
    let r = api.as_user(&user, "wrong").get("/api/overview").await;
    assert_eq!(
        (r.status, &r.body),
        (
            401,
            &json!({"error": "not_authorized", "reason": "Login failed"})
        )
    );
    assert!(r.header("www-authenticate").is_some());
    // Tags take effect at once.
    let r = api
        .put(
            &format!("/api/users/{}", enc(&user)),
            json!({"password": "pw", "tags": "monitoring"}),
        )
        .await;
    assert_status(&r, 204, "add a tag");
    assert_eq!(
        api.as_user(&user, "pw").get("/api/overview").await.status,
        200
    );
    remove(&api, &[&user], &[]).await;
    let r = api.as_user(&user, "pw").get("/api/overview").await;
    assert_eq!(
        (r.status, &r.body),
        (
            401,
            &json!({"error": "not_authorized", "reason": "Login failed"})
        )
    );
}

async fn non_admins_cannot_administer(b: &Broker) {
    let api = Api::new(b);
    let user = unique("adm-mgmt");
    create_user(&api, &user, "pw", "management").await;
    grant(&api, "/", &user).await;
    let me = api.as_user(&user, "pw");
    let refused = json!({"error": "not_authorised", "reason": "Not administrator user"});
    for path in [
        "/api/users".to_owned(),
        format!("/api/users/{}", enc(&user)),
        "/api/permissions".to_owned(),
        format!("/api/vhosts/{VHOST}"),
        format!("/api/vhosts/{VHOST}/permissions"),
        "/api/definitions".to_owned(),
        format!("/api/definitions/{VHOST}"),
        "/api/topic-permissions".to_owned(),
    ] {
        let r = me.get(&path).await;
        assert_eq!((r.status, &r.body), (401, &refused), "GET {path}");
    }
    let r = me
        .put(&format!("/api/vhosts/{}", unique("adm-nope")), json!({}))
        .await;
    assert_eq!((r.status, &r.body), (401, &refused), "PUT vhost");
    // The vhost list shows the vhosts it has permissions on.
    let names: Vec<Value> = me
        .get_ok("/api/vhosts")
        .await
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v["name"].clone())
        .collect();
    assert_eq!(names, [json!("/")]);
    remove(&api, &[&user], &[]).await;
}

async fn amqp_login_follows_users_and_permissions(b: &Broker) {
    let api = Api::new(b);
    let (allowed, other) = (unique("adm-amqp"), unique("adm-amqp"));
    create_user(&api, &allowed, "pw", "").await;
    create_user(&api, &other, "pw", "").await;
    grant(&api, "/", &allowed).await;

    let conn = amqp_connect(b, &allowed, "pw", "/")
        .await
        .expect("a user with permissions connects");
    let err = amqp_connect(b, &other, "pw", "/")
        .await
        .expect_err("no permissions on /");
    assert_eq!(
        amqp_error(&err),
        (
            530,
            format!("NOT_ALLOWED - access to vhost '/' refused for user '{other}'")
        )
    );
    let err = amqp_connect(b, &allowed, "wrong", "/")
        .await
        .expect_err("wrong password");
    assert_eq!(amqp_error(&err).0, 403);

    // Permissions removed: new connections are refused, the open one stays.
    let r = api
        .delete(&format!("/api/permissions/{VHOST}/{}", enc(&allowed)))
        .await;
    assert_status(&r, 204, "clear permissions");
    let err = amqp_connect(b, &allowed, "pw", "/")
        .await
        .expect_err("permissions cleared");
    assert_eq!(amqp_error(&err).0, 530);
    assert!(conn.status().connected());

    // A deleted user's connections are closed, and it cannot log in again.
    let mut events = Box::pin(conn.events_listener());
    remove(&api, &[&allowed], &[]).await;
    assert_eq!(
        next_amqp_error(&mut events).await,
        (
            320,
            format!("CONNECTION_FORCED - user '{allowed}' is deleted")
        )
    );
    let err = amqp_connect(b, &allowed, "pw", "/")
        .await
        .expect_err("deleted user");
    assert_eq!(amqp_error(&err).0, 403);
    remove(&api, &[&other], &[]).await;
}

async fn vhost_create_list_delete(b: &Broker) {
    let api = Api::new(b);
    let name = unique("adm-vhost");
    let path = format!("/api/vhosts/{}", enc(&name));
    let r = api
        .put(
            &path,
            json!({"description": "first", "tags": "a, b", "tracing": false}),
        )
        .await;
    assert_status(&r, 201, "create");
    let v = api.get_ok(&path).await;
    assert_fields(
        &v,
        &[
            "name",
            "description",
            "tags",
            "default_queue_type",
            "metadata.description",
            "metadata.tags",
            "tracing",
            "cluster_state",
        ],
    );
    assert_eq!(v["name"], name.as_str());
    assert_eq!(v["description"], "first");
    assert_eq!(v["tags"], json!(["a", "b"]));
    assert_eq!(v["metadata"]["tags"], json!(["a", "b"]));
    assert_eq!(v["default_queue_type"], "undefined");
    assert_eq!(v["tracing"], false);
    let states: Vec<&Value> = v["cluster_state"]
        .as_object()
        .expect("cluster_state")
        .values()
        .collect();
    assert_eq!(states, [&json!("running")]);
    // The creator gets full permissions on it, as RabbitMQ grants.
    let p = api
        .get_ok(&format!("/api/permissions/{}/guest", enc(&name)))
        .await;
    assert_eq!(
        p,
        json!({"user": "guest", "vhost": name, "configure": ".*", "write": ".*", "read": ".*"})
    );

    // An update replaces description and tags.
    let r = api.put(&path, json!({"description": "second"})).await;
    assert_status(&r, 204, "update");
    let v = api.get_ok(&path).await;
    assert_eq!(
        (&v["description"], &v["tags"]),
        (&json!("second"), &json!([]))
    );
    let r = api.put(&path, json!({"tracing": "maybe"})).await;
    assert_status(&r, 400, "tracing must be a boolean");

    let all = api.get_ok("/api/vhosts").await;
    let listed = all
        .as_array()
        .expect("list")
        .iter()
        .find(|v| v["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {all}"));
    assert_eq!(listed["description"], "second");
    let cols = api.get_ok("/api/vhosts?columns=name,description").await;
    assert!(
        cols.as_array()
            .expect("list")
            .contains(&json!({"name": name, "description": "second"}))
    );

    let r = api.delete(&path).await;
    assert_status(&r, 204, "delete");
    let r = api.get(&path).await;
    assert_eq!((r.status, r.body), (404, not_found()));
    let r = api.delete(&path).await;
    assert_eq!((r.status, r.body), (404, not_found()));
    assert_eq!(
        api.get(&format!("/api/permissions/{}/guest", enc(&name)))
            .await
            .status,
        404
    );
    let err = amqp_connect(b, "guest", "guest", &name)
        .await
        .expect_err("deleted vhost");
    assert_eq!(
        amqp_error(&err),
        (530, format!("NOT_ALLOWED - vhost {name} not found"))
    );
}

async fn vhost_delete_closes_connections_and_deletes_queues(b: &Broker) {
    let api = Api::new(b);
    let vhost = unique("adm-vdel");
    create_vhost(&api, &vhost).await;
    let queue = unique("adm-q");
    let r = api
        .put(
            &format!("/api/queues/{}/{}", enc(&vhost), enc(&queue)),
            json!({"durable": true}),
        )
        .await;
    assert_status(&r, 201, "declare a queue in the vhost");
    let conn = amqp_connect(b, "guest", "guest", &vhost)
        .await
        .expect("connect to the vhost");
    let mut events = Box::pin(conn.events_listener());
    let elsewhere = b.connect().await;

    let r = api.delete(&format!("/api/vhosts/{}", enc(&vhost))).await;
    assert_status(&r, 204, "delete the vhost");
    let forced = (
        320,
        format!("CONNECTION_FORCED - vhost '{vhost}' is deleted"),
    );
    match (b.target, next_error(&mut events).await) {
        (_, lapin::ErrorKind::ProtocolError(e)) => {
            assert_eq!((e.get_id(), e.get_message().to_string()), forced);
        }
        // RabbitMQ sends that close, then its vhost supervisor kills the connection at once:
        // lapin often sees the reset before it has read the close.
        (Target::RabbitMq, lapin::ErrorKind::IOError(_)) => {}
        (_, other) => panic!("expected {forced:?}, got {other:?}"),
    }
    assert!(
        elsewhere.status().connected(),
        "connections to other vhosts stay"
    );
    let r = api
        .get(&format!("/api/queues/{}/{}", enc(&vhost), enc(&queue)))
        .await;
    assert_eq!(r.status, 404);
    let queues = api.get_ok("/api/queues").await;
    assert!(
        !queues
            .as_array()
            .expect("list")
            .iter()
            .any(|q| q["vhost"] == vhost.as_str()),
        "{queues}"
    );
    // Created again, it is empty.
    create_vhost(&api, &vhost).await;
    let r = api
        .get(&format!("/api/queues/{}/{}", enc(&vhost), enc(&queue)))
        .await;
    assert_eq!(r.status, 404);
    remove(&api, &[], &[&vhost]).await;
}

async fn permissions_put_get_delete(b: &Broker) {
    let api = Api::new(b);
    let (user, vhost) = (unique("adm-perm"), unique("adm-perm"));
    create_user(&api, &user, "pw", "").await;
    create_vhost(&api, &vhost).await;
    let path = format!("/api/permissions/{}/{}", enc(&vhost), enc(&user));
    let r = api.get(&path).await;
    assert_eq!((r.status, r.body), (404, not_found()));

    let r = api
        .put(&path, json!({"configure": "^c", "write": "", "read": ".*"}))
        .await;
    assert_status(&r, 201, "create");
    let r = api
        .put(
            &path,
            json!({"configure": "^c", "write": "^w", "read": ".*"}),
        )
        .await;
    assert_status(&r, 204, "update");
    let p = json!({"user": user, "vhost": vhost, "configure": "^c", "write": "^w", "read": ".*"});
    assert_eq!(api.get_ok(&path).await, p);
    assert!(
        api.get_ok("/api/permissions")
            .await
            .as_array()
            .expect("list")
            .contains(&p)
    );
    assert_eq!(
        api.get_ok(&format!("/api/users/{}/permissions", enc(&user)))
            .await,
        json!([p])
    );
    let of_vhost = api
        .get_ok(&format!("/api/vhosts/{}/permissions", enc(&vhost)))
        .await;
    let users: Vec<&Value> = of_vhost
        .as_array()
        .expect("list")
        .iter()
        .map(|p| &p["user"])
        .collect();
    // Ordered by user; the creator of the vhost (guest) has it too.
    assert_eq!(users, [&json!(user), &json!("guest")]);
    assert_eq!(api.get_ok("/api/topic-permissions").await, json!([]));

    let r = api.put(&path, json!({"configure": "^c"})).await;
    assert_eq!(
        (r.status, &r.body),
        (
            400,
            &json!({"error": "bad_request", "reason": "[{key_missing,write},{key_missing,read}]"})
        )
    );
    let r = api
        .put(&path, json!({"configure": "(", "write": "", "read": ""}))
        .await;
    assert_status(&r, 400, "an invalid regex");
    for bad in [
        format!("/api/permissions/{}/{}", enc(&vhost), unique("adm-nobody")),
        format!("/api/permissions/{}/{}", unique("adm-novhost"), enc(&user)),
    ] {
        let r = api
            .put(&bad, json!({"configure": "", "write": "", "read": ""}))
            .await;
        assert_eq!(
            (r.status, &r.body),
            (
                400,
                &json!({"error": "bad_request", "reason": "vhost_or_user_not_found"})
            ),
            "{bad}"
        );
    }
    let r = api
        .get(&format!(
            "/api/vhosts/{}/permissions",
            unique("adm-novhost")
        ))
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .get(&format!("/api/users/{}/permissions", unique("adm-nobody")))
        .await;
    assert_eq!(r.status, 404);

    let r = api.delete(&path).await;
    assert_status(&r, 204, "delete");
    assert_eq!(api.get(&path).await.status, 404);
    assert_eq!(api.delete(&path).await.status, 404);
    remove(&api, &[&user], &[&vhost]).await;
}

/// The next error lapin reports on a connection (subscribe before provoking it).
async fn next_error<S>(events: &mut S) -> lapin::ErrorKind
where
    S: futures_lite::Stream<Item = lapin::Event> + Unpin,
{
    use futures_lite::StreamExt;
    tokio::time::timeout(crate::support::WAIT, async {
        loop {
            match events.next().await {
                Some(lapin::Event::Error(e)) => return e.kind().clone(),
                Some(_) => continue,
                None => panic!("the connection's events ended without an error"),
            }
        }
    })
    .await
    .expect("timed out waiting for the connection to fail")
}

/// Objects of `list` (a definitions section) in `vhost`.
fn in_vhost<'a>(doc: &'a Value, list: &str, vhost: &str) -> Vec<&'a Value> {
    doc[list]
        .as_array()
        .unwrap_or_else(|| panic!("'{list}' is not a list in {doc}"))
        .iter()
        .filter(|o| o["vhost"] == vhost)
        .collect()
}

async fn definitions_export_has_the_keys_tools_read(b: &Broker) {
    let api = Api::new(b);
    let (vhost, user) = (unique("adm-exp"), unique("adm-exp"));
    create_vhost(&api, &vhost).await;
    create_user(&api, &user, "pw", "monitoring").await;
    let v = enc(&vhost);
    let r = api
        .put(
            &format!("/api/queues/{v}/q1"),
            json!({"durable": true, "arguments": {"x-max-length": 10}}),
        )
        .await;
    assert_status(&r, 201, "queue");
    let r = api
        .put(
            &format!("/api/exchanges/{v}/x1"),
            json!({"type": "topic", "durable": true}),
        )
        .await;
    assert_status(&r, 201, "exchange");
    let r = api
        .post(
            &format!("/api/bindings/{v}/e/x1/q/q1"),
            json!({"routing_key": "a.#", "arguments": {}}),
        )
        .await;
    assert_status(&r, 201, "binding");

    let doc = api.get_ok("/api/definitions").await;
    for key in [
        "rabbit_version",
        "rabbitmq_version",
        "product_name",
        "product_version",
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "parameters",
        "global_parameters",
        "policies",
        "queues",
        "exchanges",
        "bindings",
    ] {
        assert!(
            doc.get(key).is_some(),
            "{key} missing from {}",
            keys(&doc).join(", ")
        );
    }
    let u = doc["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["name"] == user.as_str())
        .expect("the user is exported");
    assert_eq!(
        keys(u),
        [
            "hashing_algorithm",
            "limits",
            "name",
            "password_hash",
            "tags"
        ]
    );
    assert_eq!(u["tags"], json!(["monitoring"]));
    assert!(
        doc["vhosts"]
            .as_array()
            .expect("vhosts")
            .iter()
            .any(|x| x["name"] == vhost.as_str())
    );
    assert_eq!(
        in_vhost(&doc, "permissions", &vhost),
        [&json!({"user": "guest", "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"})]
    );
    assert_eq!(
        in_vhost(&doc, "queues", &vhost),
        [
            &json!({"name": "q1", "vhost": vhost, "durable": true, "auto_delete": false,
                 "arguments": {"x-max-length": 10}})
        ]
    );
    assert_eq!(
        in_vhost(&doc, "exchanges", &vhost),
        [
            &json!({"name": "x1", "vhost": vhost, "type": "topic", "durable": true,
                 "auto_delete": false, "internal": false, "arguments": {}})
        ]
    );
    assert_eq!(
        in_vhost(&doc, "bindings", &vhost),
        [
            &json!({"source": "x1", "vhost": vhost, "destination": "q1", "destination_type": "queue",
                 "routing_key": "a.#", "arguments": {}})
        ]
    );

    // One vhost's definitions: no users, vhosts or permissions, and no `vhost` fields.
    let one = api.get_ok(&format!("/api/definitions/{v}")).await;
    assert_eq!(
        keys(&one),
        [
            "bindings",
            "exchanges",
            "parameters",
            "policies",
            "queues",
            "rabbit_version"
        ]
    );
    assert_eq!(
        one["queues"],
        json!([{"name": "q1", "durable": true, "auto_delete": false, "arguments": {"x-max-length": 10}}])
    );
    assert_eq!(one["bindings"][0]["source"], "x1");
    assert!(one["bindings"][0].get("vhost").is_none());
    let r = api
        .get(&format!("/api/definitions/{}", unique("adm-novhost")))
        .await;
    assert_eq!(
        (r.status, &r.body),
        (
            400,
            &json!({"error": "bad_request", "reason": "vhost_not_found"})
        )
    );
    // `?download=` makes it an attachment.
    let r = api.get("/api/definitions?download=defs.json").await;
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=defs.json")
    );
    remove(&api, &[&user], &[&vhost]).await;
}

/// A definitions document in RabbitMQ's format with one of everything, in `vhost`; its user
/// has RabbitMQ's hash of [`RABBITMQ_HASH_PASSWORD`].
fn document(vhost: &str, user: &str) -> Value {
    json!({
        "rabbit_version": "3.10.8",
        "users": [{"name": user, "password_hash": RABBITMQ_HASH,
                   "hashing_algorithm": "rabbit_password_hashing_sha256",
                   "tags": ["management"], "limits": {}}],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}],
        "topic_permissions": [], "parameters": [], "global_parameters": [], "policies": [],
        "queues": [{"name": "orders", "vhost": vhost, "durable": true, "auto_delete": false,
                    "arguments": {"x-message-ttl": 60000}}],
        "exchanges": [{"name": "events", "vhost": vhost, "type": "topic", "durable": true,
                       "auto_delete": false, "internal": false, "arguments": {}}],
        "bindings": [{"source": "events", "vhost": vhost, "destination": "orders",
                      "destination_type": "queue", "routing_key": "order.*", "arguments": {}}]
    })
}

async fn definitions_import_creates_everything(b: &Broker) {
    let api = Api::new(b);
    let (vhost, user) = (unique("adm-imp"), unique("adm-imp"));
    let r = api.post("/api/definitions", document(&vhost, &user)).await;
    assert_status(&r, 204, "import");
    let v = enc(&vhost);
    let q = api.get_ok(&format!("/api/queues/{v}/orders")).await;
    assert_eq!(
        (&q["durable"], &q["arguments"]),
        (&json!(true), &json!({"x-message-ttl": 60000}))
    );
    assert_eq!(
        api.get_ok(&format!("/api/exchanges/{v}/events")).await["type"],
        "topic"
    );
    let bindings = api
        .get_ok(&format!("/api/exchanges/{v}/events/bindings/source"))
        .await;
    assert_eq!(bindings[0]["destination"], "orders");
    assert_eq!(bindings[0]["routing_key"], "order.*");
    // The user logs in with its password, over HTTP and AMQP (it has the vhost).
    let me = api
        .as_user(&user, RABBITMQ_HASH_PASSWORD)
        .get_ok("/api/whoami")
        .await;
    assert_eq!(me["name"], user.as_str());
    let conn = amqp_connect(b, &user, RABBITMQ_HASH_PASSWORD, &vhost)
        .await
        .expect("the imported user connects to the imported vhost");
    conn.close(200, "bye".into()).await.expect("close");
    // The importer gets full permissions on the vhost it created.
    assert_eq!(
        api.get(&format!("/api/permissions/{v}/guest")).await.status,
        200
    );

    // Imported again: nothing changes, nothing fails.
    let r = api.post("/api/definitions", document(&vhost, &user)).await;
    assert_status(&r, 204, "import again");
    let bindings = api
        .get_ok(&format!("/api/exchanges/{v}/events/bindings/source"))
        .await;
    assert_eq!(bindings.as_array().expect("list").len(), 1);
    remove(&api, &[&user], &[&vhost]).await;
}

async fn definitions_import_into_one_vhost(b: &Broker) {
    let api = Api::new(b);
    let vhost = unique("adm-impv");
    create_vhost(&api, &vhost).await;
    let v = enc(&vhost);
    // RabbitMQ's per-vhost document has no `vhost` fields; any found are ignored.
    let doc = json!({
        "queues": [{"name": "q", "durable": true, "auto_delete": false, "arguments": {}}],
        "exchanges": [{"name": "x", "vhost": "elsewhere", "type": "fanout", "durable": true,
                       "auto_delete": false, "internal": false, "arguments": {}}],
        "bindings": [{"source": "x", "destination": "q", "destination_type": "queue",
                      "routing_key": "", "arguments": {}}]
    });
    let r = api.post(&format!("/api/definitions/{v}"), doc).await;
    assert_status(&r, 204, "import into the vhost");
    assert_eq!(api.get(&format!("/api/queues/{v}/q")).await.status, 200);
    assert_eq!(
        api.get_ok(&format!("/api/exchanges/{v}/x")).await["type"],
        "fanout"
    );
    let one = api.get_ok(&format!("/api/definitions/{v}")).await;
    assert_eq!(one["bindings"].as_array().expect("bindings").len(), 1);
    let r = api
        .post(
            &format!("/api/definitions/{}", unique("adm-novhost")),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body),
        (
            404,
            &json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
    remove(&api, &[], &[&vhost]).await;
}

async fn invalid_definitions_change_nothing(b: &Broker) {
    let api = Api::new(b);
    // An unknown exchange type, after valid users, vhosts and queues.
    let (vhost, user) = (unique("adm-bad"), unique("adm-bad"));
    let mut doc = document(&vhost, &user);
    doc["exchanges"][0]["type"] = json!("no-such-type");
    let r = api.post("/api/definitions", doc).await;
    assert_status(&r, 400, "an unknown exchange type");
    assert_eq!(r.body["error"], "bad_request");
    let created = (
        api.get(&format!("/api/users/{}", enc(&user))).await.status,
        api.get(&format!("/api/vhosts/{}", enc(&vhost)))
            .await
            .status,
    );
    match b.target {
        // RabbitMQ applies users, vhosts and permissions before it reaches the exchanges,
        // and stops at the first error: what came before stays.
        Target::RabbitMq => assert_eq!(created, (200, 200)),
        Target::Ours => assert_eq!(created, (404, 404), "checked before anything is applied"),
    }
    remove(&api, &[&user], &[&vhost]).await;

    // A binding to a queue that neither exists nor is in the document.
    let (vhost, user) = (unique("adm-bad"), unique("adm-bad"));
    let mut doc = document(&vhost, &user);
    doc["bindings"][0]["destination"] = json!("no-such-queue");
    let r = api.post("/api/definitions", doc).await;
    match b.target {
        // RabbitMQ skips a binding whose destination is missing and imports the rest.
        Target::RabbitMq => {
            assert_status(&r, 204, "RabbitMQ ignores the binding");
            assert_eq!(
                api.get(&format!("/api/vhosts/{}", enc(&vhost)))
                    .await
                    .status,
                200
            );
        }
        Target::Ours => {
            assert_status(&r, 400, "a binding to a missing queue");
            assert_eq!(r.body["error"], "bad_request");
            assert_eq!(
                api.get(&format!("/api/vhosts/{}", enc(&vhost)))
                    .await
                    .status,
                404
            );
            assert_eq!(
                api.get(&format!("/api/users/{}", enc(&user))).await.status,
                404
            );
        }
    }
    remove(&api, &[&user], &[&vhost]).await;

    // Invalid queue arguments, in an existing vhost: 400 on both, no queue.
    let q = unique("adm-badq");
    let doc = json!({"queues": [{"name": q, "vhost": "/", "durable": true, "auto_delete": false,
                                 "arguments": {"x-message-ttl": -5}}]});
    let r = api.post("/api/definitions", doc).await;
    assert_status(&r, 400, "a negative TTL");
    assert_eq!(
        api.get(&format!("/api/queues/{VHOST}/{}", enc(&q)))
            .await
            .status,
        404
    );
}

async fn definitions_import_errors(b: &Broker) {
    let api = Api::new(b);
    let failed = json!({"error": "bad_request", "reason": "failed_to_parse_json"});
    for body in ["{\"vhosts\": [", "[]", "\"text\""] {
        let r = api
            .send(Method::POST, "/api/definitions", Some(body.into()), &[])
            .await;
        assert_eq!((r.status, &r.body), (400, &failed), "{body}");
    }
    let r = api
        .send(Method::POST, "/api/definitions", Some(String::new()), &[])
        .await;
    assert_status(&r, 204, "an empty body is an empty document");
    let r = api
        .send(Method::PUT, "/api/definitions", Some("{}".into()), &[])
        .await;
    assert_eq!(r.status, 405);
    // Not JSON nor a form upload.
    let r = reqwest::Client::new()
        .post(format!("{}/api/definitions", b.api()))
        .basic_auth("guest", Some("guest"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 415);

    // The UI's form upload: the document in the `file` field.
    let vhost = unique("adm-form");
    let boundary = "adm-boundary-7f3a";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"defs.json\"\r\n\
         Content-Type: application/json\r\n\r\n{}\r\n--{boundary}--\r\n",
        json!({"vhosts": [{"name": vhost}]})
    );
    let r = reqwest::Client::new()
        .post(format!("{}/api/definitions", b.api()))
        .basic_auth("guest", Some("guest"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(form)
        .send()
        .await
        .expect("POST form");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        api.get(&format!("/api/vhosts/{}", enc(&vhost)))
            .await
            .status,
        200
    );
    remove(&api, &[], &[&vhost]).await;
}

/// Definitions move between the two brokers: RabbitMQ's export imports into ours (its users
/// keep their passwords) and ours imports into RabbitMQ. Needs both, so not a parity pair.
#[tokio::test]
async fn definitions_move_between_rabbitmq_and_ours() {
    let Some(rabbit) = tests::rabbitmq() else {
        return;
    };
    let ours = tests::ours();
    let (r_api, o_api) = (Api::new(&rabbit), Api::new(&ours));

    // RabbitMQ → ours: a user made by RabbitMQ (from its password), with a vhost and a queue.
    let (vhost, user) = (unique("adm-r2o"), unique("adm-r2o"));
    create_vhost(&r_api, &vhost).await;
    create_user(&r_api, &user, "from-rabbit", "management").await;
    grant(&r_api, &vhost, &user).await;
    let r = r_api
        .put(
            &format!("/api/queues/{}/q", enc(&vhost)),
            json!({"durable": true}),
        )
        .await;
    assert_status(&r, 201, "queue on RabbitMQ");
    let export = r_api.get_ok("/api/definitions").await;
    let filtered = filter(&export, &vhost, &user);
    let r = o_api.post("/api/definitions", filtered).await;
    assert_status(&r, 204, "RabbitMQ's export into ours");
    assert_eq!(
        o_api
            .get(&format!("/api/queues/{}/q", enc(&vhost)))
            .await
            .status,
        200
    );
    amqp_connect(&ours, &user, "from-rabbit", &vhost)
        .await
        .expect("RabbitMQ's user logs in to ours with its password");
    remove(&r_api, &[&user], &[&vhost]).await;
    remove(&o_api, &[&user], &[&vhost]).await;

    // Ours → RabbitMQ.
    let (vhost, user) = (unique("adm-o2r"), unique("adm-o2r"));
    create_vhost(&o_api, &vhost).await;
    create_user(&o_api, &user, "from-ours", "management").await;
    grant(&o_api, &vhost, &user).await;
    let v = enc(&vhost);
    o_api
        .put(
            &format!("/api/queues/{v}/q"),
            json!({"durable": true, "arguments": {"x-max-priority": 5}}),
        )
        .await;
    o_api
        .put(
            &format!("/api/exchanges/{v}/x"),
            json!({"type": "headers", "durable": true}),
        )
        .await;
    let r = o_api
        .post(
            &format!("/api/bindings/{v}/e/x/q/q"),
            json!({"routing_key": "", "arguments": {"x-match": "any", "k": "v"}}),
        )
        .await;
    assert_status(&r, 201, "binding on ours");
    let export = o_api.get_ok("/api/definitions").await;
    let filtered = filter(&export, &vhost, &user);
    let r = r_api.post("/api/definitions", filtered).await;
    assert_status(&r, 204, "our export into RabbitMQ");
    let q = r_api.get_ok(&format!("/api/queues/{v}/q")).await;
    assert_eq!(q["arguments"], json!({"x-max-priority": 5}));
    let bindings = r_api
        .get_ok(&format!("/api/exchanges/{v}/x/bindings/source"))
        .await;
    assert_eq!(
        bindings[0]["arguments"],
        json!({"x-match": "any", "k": "v"})
    );
    amqp_connect(&rabbit, &user, "from-ours", &vhost)
        .await
        .expect("our user logs in to RabbitMQ with its password");
    remove(&r_api, &[&user], &[&vhost]).await;
    remove(&o_api, &[&user], &[&vhost]).await;
}

/// A definitions document reduced to one vhost and one user (the brokers share nothing else).
fn filter(doc: &Value, vhost: &str, user: &str) -> Value {
    let mut out = doc.clone();
    let keep = |key: &str, f: &dyn Fn(&Value) -> bool| -> Value {
        Value::Array(
            doc[key]
                .as_array()
                .expect(key)
                .iter()
                .filter(|o| f(o))
                .cloned()
                .collect(),
        )
    };
    out["users"] = keep("users", &|u| u["name"] == user);
    out["vhosts"] = keep("vhosts", &|v| v["name"] == vhost);
    out["permissions"] = keep("permissions", &|p| p["user"] == user);
    for key in ["queues", "exchanges", "bindings"] {
        out[key] = keep(key, &|o| o["vhost"] == vhost);
    }
    for key in [
        "topic_permissions",
        "parameters",
        "global_parameters",
        "policies",
    ] {
        out[key] = json!([]);
    }
    out
}
