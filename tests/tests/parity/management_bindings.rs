//! Management HTTP API, bindings: create (POST → 201 + `Location`), list (vhost, queue,
//! exchange source/destination, between two ends), show and delete by properties key,
//! arguments, missing ends, the default exchange's implicit bindings and e2e bindings.

use serde_json::{Value, json};
use tests::{Broker, parity, unique};

use crate::management::{Api, VHOST, assert_fields, enc};

parity!(
    binding_create_list_delete,
    binding_with_arguments,
    binding_properties_key_quoting,
    binding_missing_ends,
    binding_default_exchange,
    binding_exchange_to_exchange,
);

fn between(source: &str, kind: &str, dest: &str) -> String {
    format!(
        "/api/bindings/{VHOST}/e/{}/{kind}/{}",
        enc(source),
        enc(dest)
    )
}

/// The last path segment of a `Location` header, percent-decoded as a server would.
fn last_segment(location: &str) -> String {
    let seg = location.rsplit('/').next().unwrap_or_default();
    let mut out = Vec::new();
    let bytes = seg.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = seg
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 location")
}

/// Creates a binding and returns its properties key as the `Location` header names it.
async fn bind(api: &Api, source: &str, kind: &str, dest: &str, body: Value) -> String {
    let r = api.post(&between(source, kind, dest), body.clone()).await;
    assert_eq!(r.status, 201, "bind {source} -> {dest} {body}: {}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    let location = r.header("location").expect("a Location header").to_owned();
    assert!(
        location.starts_with(&format!("{}/", enc(dest))),
        "Location {location} is relative to the request"
    );
    last_segment(&location)
}

async fn binding_create_list_delete(b: &Broker) {
    let api = Api::new(b);
    let x = unique("mgmt-b-x");
    let q = unique("mgmt-b-q");
    api.declare_exchange(&x, "topic").await;
    api.declare_queue(&q, json!({})).await;
    let key = bind(&api, &x, "q", &q, json!({"routing_key": "orders.*"})).await;
    assert_eq!(key, "orders.%2A");

    let expected = json!({
        "source": x, "vhost": "/", "destination": q, "destination_type": "queue",
        "routing_key": "orders.*", "arguments": {}, "properties_key": key,
    });
    let all = api.get_ok(&format!("/api/bindings/{VHOST}")).await;
    assert!(
        all.as_array().expect("a list").contains(&expected),
        "{expected} not in /api/bindings/%2F"
    );
    let node_wide = api.get_ok("/api/bindings").await;
    assert!(node_wide.as_array().expect("a list").contains(&expected));
    assert_eq!(api.get_ok(&between(&x, "q", &q)).await, json!([expected]));
    assert_eq!(
        api.get_ok(&format!(
            "/api/exchanges/{VHOST}/{}/bindings/source",
            enc(&x)
        ))
        .await,
        json!([expected])
    );
    let to_queue = api
        .get_ok(&format!("/api/queues/{VHOST}/{}/bindings", enc(&q)))
        .await;
    assert_eq!(to_queue.as_array().map(Vec::len), Some(2), "{to_queue}");
    assert_eq!(to_queue[1], expected);

    // By properties key: the key goes into the path percent-encoded once more.
    let one = format!("{}/{}", between(&x, "q", &q), enc(&key));
    assert_eq!(api.get_ok(&one).await, expected);
    assert_eq!(api.delete(&one).await.status, 204);
    let r = api.delete(&one).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    assert_eq!(api.get(&one).await.status, 404);
    assert_eq!(api.get_ok(&between(&x, "q", &q)).await, json!([]));

    // Binding twice is idempotent.
    let k1 = bind(&api, &x, "q", &q, json!({"routing_key": "k"})).await;
    let k2 = bind(&api, &x, "q", &q, json!({"routing_key": "k"})).await;
    assert_eq!((k1.as_str(), k2.as_str()), ("k", "k"));
    assert_eq!(
        api.get_ok(&between(&x, "q", &q))
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // An empty body binds with the empty routing key, whose key is `~`.
    assert_eq!(bind(&api, &x, "q", &q, json!({})).await, "~");
    let empty = api.get_ok(&format!("{}/~", between(&x, "q", &q))).await;
    assert_eq!(
        (&empty["routing_key"], &empty["properties_key"]),
        (&json!(""), &json!("~"))
    );
    api.delete_exchange(&x).await;
    api.delete_queue(&q).await;
}

async fn binding_with_arguments(b: &Broker) {
    let api = Api::new(b);
    let x = unique("mgmt-b-hx");
    let q = unique("mgmt-b-hq");
    api.declare_exchange(&x, "headers").await;
    api.declare_queue(&q, json!({})).await;
    let args = json!({"x-match": "all", "format": "pdf"});
    let key = bind(
        &api,
        &x,
        "q",
        &q,
        json!({"routing_key": "", "arguments": args}),
    )
    .await;
    // `~` then a hash of the arguments (its value is node-specific).
    let hash = key.strip_prefix('~').expect("an empty routing key is `~`");
    assert!(!hash.is_empty() && !hash.contains('~'), "{key}");
    let with_key = bind(
        &api,
        &x,
        "q",
        &q,
        json!({"routing_key": "r", "arguments": args}),
    )
    .await;
    assert_eq!(with_key, format!("r~{hash}"));
    // Arguments may be an empty list, as an empty Erlang proplist.
    assert_eq!(
        bind(
            &api,
            &x,
            "q",
            &q,
            json!({"routing_key": "plain", "arguments": []})
        )
        .await,
        "plain"
    );

    let listed = api.get_ok(&between(&x, "q", &q)).await;
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 3, "{listed:?}");
    // Sorted by routing key, then properties key.
    let keys: Vec<&str> = listed
        .iter()
        .map(|b| b["properties_key"].as_str().expect("properties_key"))
        .collect();
    assert_eq!(keys, [key.as_str(), "plain", with_key.as_str()]);
    assert_eq!(listed[0]["arguments"], args);
    for b in listed {
        assert_fields(
            b,
            &[
                "source",
                "vhost",
                "destination",
                "destination_type",
                "routing_key",
                "arguments",
                "properties_key",
            ],
        );
    }
    let one = format!("{}/{}", between(&x, "q", &q), enc(&key));
    let got = api.get_ok(&one).await;
    assert_eq!(
        (&got["arguments"], &got["routing_key"]),
        (&args, &json!(""))
    );
    // A key naming no binding's arguments is not found.
    let wrong = format!("{}/{}", between(&x, "q", &q), enc("~AAAAAA"));
    assert_eq!(api.get(&wrong).await.status, 404);
    assert_eq!(api.delete(&one).await.status, 204);
    assert_eq!(api.get(&one).await.status, 404);
    assert_eq!(
        api.get_ok(&between(&x, "q", &q))
            .await
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    api.delete_exchange(&x).await;
    api.delete_queue(&q).await;
}

async fn binding_properties_key_quoting(b: &Broker) {
    let api = Api::new(b);
    let x = unique("mgmt-b-qx");
    let q = unique("mgmt-b-qq");
    api.declare_exchange(&x, "direct").await;
    api.declare_queue(&q, json!({})).await;
    // RabbitMQ quotes the routing key as a form value (space → `+`, `~` → `%7E`) and the
    // `Location` quotes the result once more.
    let rk = "a b*#~c/d";
    let key = bind(&api, &x, "q", &q, json!({"routing_key": rk})).await;
    assert_eq!(key, "a+b%2A%23%7Ec%2Fd");
    let listed = api.get_ok(&between(&x, "q", &q)).await;
    assert_eq!(listed[0]["properties_key"], key.as_str());
    let one = format!("{}/{}", between(&x, "q", &q), enc(&key));
    assert_eq!(api.get_ok(&one).await["routing_key"], rk);
    assert_eq!(api.delete(&one).await.status, 204);
    api.delete_exchange(&x).await;
    api.delete_queue(&q).await;
}

async fn binding_missing_ends(b: &Broker) {
    let api = Api::new(b);
    let x = unique("mgmt-b-mx");
    let q = unique("mgmt-b-mq");
    api.declare_exchange(&x, "direct").await;
    api.declare_queue(&q, json!({})).await;
    let missing_q = unique("mgmt-b-noq");
    let r = api
        .post(&between(&x, "q", &missing_q), json!({"routing_key": "k"}))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"error": "not_found", "reason": format!("no queue '{missing_q}' in vhost '/'")})
    );
    let missing_x = unique("mgmt-b-nox");
    let r = api
        .post(&between(&missing_x, "q", &q), json!({"routing_key": "k"}))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"error": "not_found", "reason": format!("no exchange '{missing_x}' in vhost '/'")})
    );
    let r = api
        .post(&between(&x, "e", &missing_x), json!({"routing_key": "k"}))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["reason"],
        format!("no exchange '{missing_x}' in vhost '/'")
    );
    // Listing the bindings between missing ends finds none; one of them by key is not found.
    assert_eq!(api.get_ok(&between(&x, "q", &missing_q)).await, json!([]));
    assert_eq!(api.get_ok(&between(&missing_x, "q", &q)).await, json!([]));
    let r = api
        .get(&format!("{}/k", between(&x, "q", &missing_q)))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    let r = api
        .post(
            &format!(
                "/api/bindings/{}/e/{}/q/{}",
                unique("mgmt-vh"),
                enc(&x),
                enc(&q)
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );
    assert_eq!(
        api.get(&format!("/api/bindings/{}", unique("mgmt-vh")))
            .await
            .status,
        404
    );
    api.delete_exchange(&x).await;
    api.delete_queue(&q).await;
}

async fn binding_default_exchange(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-b-dq");
    api.declare_queue(&q, json!({})).await;
    let implicit = json!({
        "source": "", "vhost": "/", "destination": q, "destination_type": "queue",
        "routing_key": q, "arguments": {}, "properties_key": q,
    });
    let to_queue = api
        .get_ok(&format!("/api/queues/{VHOST}/{}/bindings", enc(&q)))
        .await;
    assert_eq!(to_queue, json!([implicit]));
    assert_eq!(
        api.get_ok(&between("amq.default", "q", &q)).await,
        json!([implicit])
    );
    let one = format!("{}/{}", between("amq.default", "q", &q), enc(&q));
    assert_eq!(api.get_ok(&one).await, implicit);
    // The default exchange's bindings cannot be changed.
    let refused = json!({"error": "not_authorised", "reason": "Access refused."});
    let r = api
        .post(
            &between("amq.default", "q", &q),
            json!({"routing_key": "other"}),
        )
        .await;
    assert_eq!((r.status, &r.body), (401, &refused));
    let r = api.delete(&one).await;
    assert_eq!((r.status, &r.body), (401, &refused));
    api.delete_queue(&q).await;
}

async fn binding_exchange_to_exchange(b: &Broker) {
    let api = Api::new(b);
    let up = unique("mgmt-b-up");
    let down = unique("mgmt-b-down");
    let q = unique("mgmt-b-eq");
    api.declare_exchange(&up, "topic").await;
    api.declare_exchange(&down, "fanout").await;
    api.declare_queue(&q, json!({})).await;
    let key = bind(&api, &up, "e", &down, json!({"routing_key": "logs.#"})).await;
    assert_eq!(key, "logs.%23");
    bind(&api, &down, "q", &q, json!({})).await;
    let expected = json!({
        "source": up, "vhost": "/", "destination": down, "destination_type": "exchange",
        "routing_key": "logs.#", "arguments": {}, "properties_key": key,
    });
    assert_eq!(
        api.get_ok(&between(&up, "e", &down)).await,
        json!([expected])
    );
    assert_eq!(
        api.get_ok(&format!(
            "/api/exchanges/{VHOST}/{}/bindings/destination",
            enc(&down)
        ))
        .await,
        json!([expected])
    );
    // Both bindings of `down`'s source list, sorted: the exchange's before the queue's.
    let from_up = api
        .get_ok(&format!(
            "/api/exchanges/{VHOST}/{}/bindings/source",
            enc(&up)
        ))
        .await;
    assert_eq!(from_up, json!([expected]));

    let publish = |rk: &str| {
        let api = api.clone();
        let body = json!({"routing_key": rk, "payload": "e2e", "payload_encoding": "string",
                          "properties": {}});
        let p = format!("/api/exchanges/{VHOST}/{}/publish", enc(&up));
        async move { api.post(&p, body).await.body }
    };
    assert_eq!(publish("logs.app.error").await, json!({"routed": true}));
    assert_eq!(publish("metrics.cpu").await, json!({"routed": false}));
    let got = api.get_messages(&q, 5, "ack_requeue_false").await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (&got[0]["exchange"], &got[0]["routing_key"]),
        (&json!(up), &json!("logs.app.error"))
    );
    let one = format!("{}/{}", between(&up, "e", &down), enc(&key));
    assert_eq!(api.delete(&one).await.status, 204);
    assert_eq!(publish("logs.app.error").await, json!({"routed": false}));
    api.delete_exchange(&up).await;
    api.delete_exchange(&down).await;
    api.delete_queue(&q).await;
}
