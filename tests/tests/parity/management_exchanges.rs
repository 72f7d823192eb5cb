//! Management HTTP API, exchanges: declare (PUT) and its errors, detail and list, delete with
//! `if-unused`, the default exchange as `amq.default`, reserved `amq.*` names, and publishing
//! (`POST /publish` → `{"routed": bool}`), checked over AMQP with lapin.

use lapin::options::BasicGetOptions;
use lapin::types::{AMQPValue, ShortString};
use serde_json::{Value, json};
use tests::{Broker, parity, unique};

use crate::management::{Api, VHOST, assert_fields, enc};

parity!(
    exchange_declare_and_delete,
    exchange_default_and_reserved,
    exchange_publish_reaches_amqp,
    exchange_publish_routing_and_errors,
);

fn path(x: &str) -> String {
    format!("/api/exchanges/{VHOST}/{}", enc(x))
}

fn access_refused() -> Value {
    json!({"error": "not_authorised", "reason": "Access refused."})
}

async fn exchange_declare_and_delete(b: &Broker) {
    let api = Api::new(b);
    let x = unique("mgmt-x");
    let body = json!({"type": "topic", "durable": false, "auto_delete": false,
                      "internal": false, "arguments": {"alternate-exchange": "amq.fanout"}});
    assert_eq!(api.put(&path(&x), body.clone()).await.status, 201);
    assert_eq!(api.put(&path(&x), body).await.status, 204);
    let r = api
        .put(&path(&x), json!({"type": "direct", "durable": false}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "bad_request", "reason": format!(
            "inequivalent arg 'type' for exchange '{x}' in vhost '/': received 'direct' but current is 'topic'"
        )})
    );
    let bad = unique("mgmt-x-bad");
    let r = api.put(&path(&bad), json!({"type": "bogus"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "bad_request", "reason": "invalid exchange type 'bogus'"})
    );
    assert_eq!(api.get(&path(&bad)).await.status, 404);
    let r = api
        .put(
            &format!("/api/exchanges/{}/{}", unique("mgmt-vh"), enc(&x)),
            json!({"type": "direct"}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );

    let d = api.get_ok(&path(&x)).await;
    assert_fields(
        &d,
        &[
            "name",
            "vhost",
            "type",
            "durable",
            "auto_delete",
            "internal",
            "arguments",
        ],
    );
    assert_eq!(
        (
            &d["name"],
            &d["vhost"],
            &d["type"],
            &d["durable"],
            &d["auto_delete"],
            &d["internal"]
        ),
        (
            &json!(x),
            &json!("/"),
            &json!("topic"),
            &json!(false),
            &json!(false),
            &json!(false)
        )
    );
    assert_eq!(d["arguments"], json!({"alternate-exchange": "amq.fanout"}));

    // Without `type` an exchange is direct; without `durable` it is transient; booleans may be
    // strings (rabbitmqadmin v1 sends them so).
    let plain = unique("mgmt-x-plain");
    assert_eq!(api.put(&path(&plain), json!({})).await.status, 201);
    let d = api
        .get_ok(&format!(
            "{}?columns=type,durable,auto_delete,internal",
            path(&plain)
        ))
        .await;
    assert_eq!(
        d,
        json!({"type": "direct", "durable": false, "auto_delete": false, "internal": false})
    );
    let strs = unique("mgmt-x-str");
    let r = api
        .put(
            &path(&strs),
            json!({"type": "fanout", "durable": "true", "auto_delete": "false", "internal": "false"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let d = api
        .get_ok(&format!("{}?columns=durable", path(&strs)))
        .await;
    assert_eq!(d, json!({"durable": true}));

    // In the vhost's list, paged by name.
    let listed = api
        .get_ok(&format!(
            "/api/exchanges/{VHOST}?page=1&name={}&columns=name,type",
            enc(&x)
        ))
        .await;
    assert_eq!(listed["items"], json!([{"name": x, "type": "topic"}]));
    assert_eq!(listed["filtered_count"], 1);

    // if-unused: a binding from it makes it used.
    let q = unique("mgmt-x-q");
    api.declare_queue(&q, json!({})).await;
    let r = api
        .post(
            &format!("/api/bindings/{VHOST}/e/{}/q/{}", enc(&x), enc(&q)),
            json!({"routing_key": "a.#"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = api.delete(&format!("{}?if-unused=true", path(&x))).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "bad_request", "reason": format!("exchange '{x}' in vhost '/' in use")})
    );
    assert_eq!(api.delete(&path(&x)).await.status, 204);
    let r = api.delete(&path(&x)).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    assert_eq!(
        api.delete(&format!("{}?if-unused=true", path(&plain)))
            .await
            .status,
        204
    );
    assert_eq!(api.delete(&path(&strs)).await.status, 204);
    api.delete_queue(&q).await;
}

async fn exchange_default_and_reserved(b: &Broker) {
    let api = Api::new(b);
    let d = api.get_ok(&path("amq.default")).await;
    assert_eq!(
        (
            &d["name"],
            &d["type"],
            &d["durable"],
            &d["internal"],
            &d["vhost"]
        ),
        (
            &json!(""),
            &json!("direct"),
            &json!(true),
            &json!(false),
            &json!("/")
        )
    );
    let t = api.get_ok(&path("amq.topic")).await;
    assert_eq!(
        (&t["name"], &t["type"]),
        (&json!("amq.topic"), &json!("topic"))
    );

    let listed = api
        .get_ok(&format!("/api/exchanges/{VHOST}?columns=name,type"))
        .await;
    let listed = listed.as_array().expect("a list");
    // The default exchange sorts first ("" < "amq.*").
    assert_eq!(listed[0], json!({"name": "", "type": "direct"}));
    for (name, kind) in [
        ("amq.direct", "direct"),
        ("amq.fanout", "fanout"),
        ("amq.headers", "headers"),
        ("amq.match", "headers"),
        ("amq.topic", "topic"),
        ("amq.rabbitmq.trace", "topic"),
    ] {
        assert!(
            listed.contains(&json!({"name": name, "type": kind})),
            "{name} missing from the list"
        );
    }

    for p in ["amq.topic", "amq.default"] {
        let r = api.delete(&path(p)).await;
        assert_eq!((r.status, &r.body), (401, &access_refused()), "DELETE {p}");
    }
    let r = api
        .put(&path("amq.default"), json!({"type": "direct"}))
        .await;
    assert_eq!((r.status, &r.body), (401, &access_refused()));
    let r = api
        .put(
            &path(&format!("amq.{}", unique("mgmt-x"))),
            json!({"type": "direct"}),
        )
        .await;
    assert_eq!((r.status, &r.body), (401, &access_refused()));
    // Re-declaring an existing amq.* exchange with its own properties is fine.
    let r = api
        .put(
            &path("amq.topic"),
            json!({"type": "topic", "durable": true}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

async fn exchange_publish_reaches_amqp(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-pub");
    api.declare_queue(&q, json!({"durable": true})).await;
    let r = api
        .post(
            &format!("{}/publish", path("amq.default")),
            json!({
                "routing_key": q,
                "payload": "hello from http",
                "payload_encoding": "string",
                "properties": {
                    "content_type": "application/json",
                    "content_encoding": "utf-8",
                    "headers": {"x-trace": "abc", "n": 7, "flag": true},
                    "delivery_mode": 2,
                    "priority": 4,
                    "correlation_id": "corr-1",
                    "reply_to": "replies",
                    "expiration": "60000",
                    "message_id": "msg-1",
                    "timestamp": 1_700_000_000u64,
                    "type": "greeting",
                    "app_id": "mgmt-test",
                },
            }),
        )
        .await;
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"routed": true})),
        "{}",
        r.text
    );

    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let got = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .expect("the published message");
    assert_eq!(got.delivery.data, b"hello from http");
    assert_eq!(got.delivery.exchange.as_str(), "");
    assert_eq!(got.delivery.routing_key.as_str(), q);
    let p = &got.delivery.properties;
    let short = |s: &Option<ShortString>| s.as_ref().map(|s| s.as_str().to_owned());
    assert_eq!(short(p.content_type()).as_deref(), Some("application/json"));
    assert_eq!(short(p.content_encoding()).as_deref(), Some("utf-8"));
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(*p.priority(), Some(4));
    assert_eq!(short(p.correlation_id()).as_deref(), Some("corr-1"));
    assert_eq!(short(p.reply_to()).as_deref(), Some("replies"));
    assert_eq!(short(p.expiration()).as_deref(), Some("60000"));
    assert_eq!(short(p.message_id()).as_deref(), Some("msg-1"));
    assert_eq!(*p.timestamp(), Some(1_700_000_000));
    assert_eq!(short(p.kind()).as_deref(), Some("greeting"));
    assert_eq!(short(p.app_id()).as_deref(), Some("mgmt-test"));
    let headers = p.headers().as_ref().expect("headers");
    let h = headers.inner();
    assert_eq!(
        h.get("x-trace"),
        Some(&AMQPValue::LongString("abc".into())),
        "{headers:?}"
    );
    assert!(
        matches!(h.get("n"), Some(v) if v.as_long_long_int() == Some(7) || v.as_long_int() == Some(7)),
        "{headers:?}"
    );
    assert_eq!(
        h.get("flag"),
        Some(&AMQPValue::Boolean(true)),
        "{headers:?}"
    );
    conn.close(200, "bye".into()).await.expect("close");
    api.delete_queue(&q).await;
}

async fn exchange_publish_routing_and_errors(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-pub2");
    let x = unique("mgmt-pub2-x");
    api.declare_queue(&q, json!({})).await;
    api.declare_exchange(&x, "direct").await;
    let r = api
        .post(
            &format!("/api/bindings/{VHOST}/e/{}/q/{}", enc(&x), enc(&q)),
            json!({"routing_key": "rk"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let publish = |exchange: String, body: Value| {
        let api = api.clone();
        async move {
            api.post(&format!("{}/publish", path(&exchange)), body)
                .await
        }
    };
    let msg = |rk: &str, payload: &str, enc: &str| json!({"routing_key": rk, "payload": payload, "payload_encoding": enc, "properties": {}});
    let r = publish(x.clone(), msg("rk", "AAEC/w==", "base64")).await;
    assert_eq!((r.status, &r.body), (200, &json!({"routed": true})));
    let r = publish(x.clone(), msg("other", "lost", "string")).await;
    assert_eq!((r.status, &r.body), (200, &json!({"routed": false})));
    let r = publish(
        "amq.default".into(),
        msg(&unique("mgmt-nowhere"), "lost", "string"),
    )
    .await;
    assert_eq!((r.status, &r.body), (200, &json!({"routed": false})));

    let got = api
        .post(
            &format!("/api/queues/{VHOST}/{}/get", enc(&q)),
            json!({"count": 5, "ackmode": "ack_requeue_false", "encoding": "base64"}),
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.body,
        json!([{"payload_bytes": 4, "redelivered": false, "exchange": x, "routing_key": "rk",
                "message_count": 0, "properties": [], "payload": "AAEC/w==",
                "payload_encoding": "base64"}])
    );

    // The keys RabbitMQ requires, reported in its order.
    let r = publish(
        "amq.default".into(),
        json!({"payload": "x", "payload_encoding": "string"}),
    )
    .await;
    assert_eq!(
        (r.status, &r.body),
        (
            400,
            &json!({"error": "bad_request",
                       "reason": "[{key_missing,routing_key},{key_missing,properties}]"})
        )
    );
    let r = publish(
        "amq.default".into(),
        json!({"routing_key": "x", "payload": "x", "properties": {}}),
    )
    .await;
    assert_eq!(r.body["reason"], "[{key_missing,payload_encoding}]");
    // An unknown encoding or bad base64 is a 400 (RabbitMQ's reason is an Erlang term).
    let r = publish("amq.default".into(), msg("x", "x", "utf8")).await;
    assert_eq!(r.status, 400);
    let r = publish("amq.default".into(), msg("x", "!!", "base64")).await;
    assert_eq!(r.status, 400);
    // A queue that refuses the message (reject-publish) turns the confirm into a nack.
    let full = unique("mgmt-full");
    api.declare_queue(
        &full,
        json!({"arguments": {"x-max-length": 1, "x-overflow": "reject-publish"}}),
    )
    .await;
    let r = publish("amq.default".into(), msg(&full, "fits", "string")).await;
    assert_eq!((r.status, &r.body), (200, &json!({"routed": true})));
    let r = publish("amq.default".into(), msg(&full, "refused", "string")).await;
    assert_eq!(
        (r.status, &r.body),
        (
            400,
            &json!({"error": "bad_request",
                       "reason": "rejected Unable to publish message. Check queue limits."})
        )
    );
    api.delete_queue(&full).await;
    // A missing exchange is a channel error, which RabbitMQ reports as a 400.
    let missing = unique("mgmt-nox");
    let r = publish(missing.clone(), msg("x", "x", "string")).await;
    assert_eq!(
        (r.status, &r.body),
        (
            400,
            &json!({"error": "bad_request",
                       "reason": format!("404 NOT_FOUND - no exchange '{missing}' in vhost '/'")})
        )
    );
    api.delete_exchange(&x).await;
    api.delete_queue(&q).await;
}
