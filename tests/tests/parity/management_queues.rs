//! Management HTTP API, queues: declare (PUT) and its errors, the detail fields tools read,
//! list paging/filtering/sorting/columns, delete conditions, purge, and `POST /get` with each
//! ackmode, encoding and truncation.

use serde_json::{Value, json};
use tests::{Broker, parity, unique};

use crate::management::{Api, VHOST, assert_fields, enc, keys, poll};

parity!(
    queue_declare_statuses,
    queue_detail_fields,
    queue_list_paging,
    queue_list_errors,
    queue_delete_conditions,
    queue_purge,
    queue_get_ackmodes,
    queue_get_reject_dead_letters,
    queue_get_encoding_and_errors,
);

fn path(q: &str) -> String {
    format!("/api/queues/{VHOST}/{}", enc(q))
}

async fn queue_declare_statuses(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-decl");
    assert_eq!(
        api.put(&path(&q), json!({"durable": true})).await.status,
        201
    );
    assert_eq!(
        api.put(&path(&q), json!({"durable": true})).await.status,
        204
    );
    let r = api.put(&path(&q), json!({"durable": false})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "bad_request", "reason": format!(
            "inequivalent arg 'durable' for queue '{q}' in vhost '/': received 'false' but current is 'true'"
        )})
    );
    let r = api
        .put(
            &path(&q),
            json!({"durable": true, "arguments": {"x-max-length": 5}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["reason"],
        format!(
            "inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': received the value '5' of type 'long' but current is none"
        )
    );

    let bad = unique("mgmt-badarg");
    let r = api
        .put(&path(&bad), json!({"arguments": {"x-max-length": "abc"}}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["reason"],
        format!(
            "invalid arg 'x-max-length' for queue '{bad}' in vhost '/': \"expected integer, got longstr\""
        )
    );
    let r = api
        .put(&path(&bad), json!({"arguments": {"x-max-length": -1}}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["reason"],
        format!("invalid arg 'x-max-length' for queue '{bad}' in vhost '/': {{value_negative,-1}}")
    );
    assert_eq!(api.get(&path(&bad)).await.status, 404);

    let r = api
        .put(&format!("/api/queues/{}/{q}", unique("mgmt-vh")), json!({}))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );

    let r = api.put(&path(&format!("amq.{q}")), json!({})).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!({"error": "not_authorised", "reason": "Access refused."})
    );

    // Without `durable` a queue is transient; booleans may be strings (rabbitmqadmin v1
    // sends "true"), and an empty `arguments` may be a list (an empty Erlang proplist).
    let t = unique("mgmt-transient");
    assert_eq!(
        api.put(&path(&t), json!({"arguments": []})).await.status,
        201
    );
    let d = api
        .get_ok(&format!("{}?columns=durable,auto_delete", path(&t)))
        .await;
    assert_eq!(d, json!({"durable": false, "auto_delete": false}));
    let s = unique("mgmt-strbool");
    let r = api
        .put(
            &path(&s),
            json!({"durable": "true", "auto_delete": "false"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let d = api.get_ok(&format!("{}?columns=durable", path(&s))).await;
    assert_eq!(d, json!({"durable": true}));
    assert_eq!(
        api.put(&path(&s), json!({"durable": "yes"})).await.status,
        400
    );

    for name in [&q, &t, &s] {
        assert_eq!(api.delete(&path(name)).await.status, 204);
    }
}

async fn queue_detail_fields(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-detail");
    api.declare_queue(
        &q,
        json!({"durable": false, "auto_delete": false,
                                  "arguments": {"x-max-length": 100, "x-queue-mode": "lazy"}}),
    )
    .await;
    api.publish_to(&q, "one").await;
    api.publish_to(&q, "two").await;
    let d = api
        .poll_get("queue stats", &path(&q), |d| {
            d["messages"] == 2 && d.get("consumers").is_some() && d.get("state").is_some()
        })
        .await;
    assert_fields(
        &d,
        &[
            "name",
            "vhost",
            "type",
            "durable",
            "auto_delete",
            "exclusive",
            "arguments",
            "messages",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
            "state",
            "node",
            "consumer_details",
        ],
    );
    assert_eq!(d["name"], q.as_str());
    assert_eq!(d["vhost"], "/");
    assert_eq!(d["type"], "classic");
    assert_eq!(d["durable"], false);
    assert_eq!(d["auto_delete"], false);
    assert_eq!(d["exclusive"], false);
    assert_eq!(
        d["arguments"],
        json!({"x-max-length": 100, "x-queue-mode": "lazy"})
    );
    assert_eq!(d["messages_ready"], 2);
    assert_eq!(d["messages_unacknowledged"], 0);
    assert_eq!(d["consumers"], 0);
    assert_eq!(d["state"], "running");
    assert_eq!(d["consumer_details"], json!([]));
    let o = api.get_ok("/api/overview").await;
    assert_eq!(d["node"], o["node"]);

    // The same object in the vhost's list, and `columns` on a detail.
    let listed = api
        .get_ok(&format!(
            "/api/queues/{VHOST}?page=1&name={}&columns=name,vhost,type,durable,auto_delete,exclusive,arguments",
            enc(&q)
        ))
        .await;
    assert_eq!(
        listed["items"],
        json!([{"name": q, "vhost": "/", "type": "classic", "durable": false,
                "auto_delete": false, "exclusive": false,
                "arguments": {"x-max-length": 100, "x-queue-mode": "lazy"}}])
    );
    let cols = api
        .get_ok(&format!("{}?columns=name,messages", path(&q)))
        .await;
    assert_eq!(cols, json!({"name": q, "messages": 2}));
    api.delete_queue(&q).await;
}

async fn queue_list_paging(b: &Broker) {
    let api = Api::new(b);
    let prefix = unique("mgmt-page");
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|s| format!("{prefix}-{s}"))
        .collect();
    for n in &names {
        api.declare_queue(n, json!({"durable": false})).await;
    }
    let list = |query: String| {
        let api = api.clone();
        async move { api.get_ok(&format!("/api/queues/{VHOST}?{query}")).await }
    };
    let item_names = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|i| i["name"].as_str().expect("name").to_owned())
            .collect()
    };

    let p1 = list(format!("page=1&page_size=2&name={}", enc(&prefix))).await;
    let mut shape = keys(&p1);
    shape.sort();
    assert_eq!(
        shape,
        [
            "filtered_count",
            "item_count",
            "items",
            "page",
            "page_count",
            "page_size",
            "total_count"
        ]
    );
    assert_eq!(
        (&p1["page"], &p1["page_size"], &p1["page_count"]),
        (&json!(1), &json!(2), &json!(2))
    );
    assert_eq!(
        (&p1["filtered_count"], &p1["item_count"]),
        (&json!(3), &json!(2))
    );
    assert!(p1["total_count"].as_u64() >= Some(3));
    assert_eq!(item_names(&p1["items"]), names[..2]);
    assert_fields(&p1["items"][0], &["name", "vhost", "durable", "arguments"]);

    let p2 = list(format!(
        "page=2&page_size=2&name={}&columns=name",
        enc(&prefix)
    ))
    .await;
    assert_eq!(p2["items"], json!([{"name": names[2]}]));
    assert_eq!((&p2["item_count"], &p2["page"]), (&json!(1), &json!(2)));

    // The name filter ignores case; page_size defaults to 100.
    let upper = list(format!(
        "page=1&name={}&columns=name",
        enc(&prefix.to_uppercase())
    ))
    .await;
    assert_eq!(item_names(&upper["items"]), names);
    assert_eq!(upper["page_size"], 100);

    let re = list(format!(
        "page=1&use_regex=true&name={}&columns=name",
        enc(&format!("^{prefix}-[ab]$"))
    ))
    .await;
    assert_eq!(item_names(&re["items"]), names[..2]);
    assert_eq!(re["filtered_count"], 2);

    let rev = list(format!(
        "page=1&page_size=2&name={}&sort=name&sort_reverse=true&columns=name",
        enc(&prefix)
    ))
    .await;
    assert_eq!(
        item_names(&rev["items"]),
        [names[2].clone(), names[1].clone()]
    );

    // A page past the end of an empty result, and an empty first page.
    let none = list(format!("page=1&name={}-zzz&columns=name", enc(&prefix))).await;
    assert_eq!(
        (&none["items"], &none["filtered_count"], &none["page_count"]),
        (&json!([]), &json!(0), &json!(0))
    );

    // `columns` keeps only those fields (RabbitMQ fills `messages` in within 5 s).
    let cols = poll("messages column", || async {
        let v = list(format!(
            "page=1&name={}&columns=name,messages",
            enc(&prefix)
        ))
        .await;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 3 && items.iter().all(|i| i.get("messages").is_some())).then_some(items)
    })
    .await;
    for (item, name) in cols.iter().zip(&names) {
        assert_eq!(item, &json!({"name": name, "messages": 0}));
    }

    // Without `page`, `name` filters nothing: RabbitMQ filters only paginated lists.
    let unfiltered = list(format!("name={}&columns=name", enc(&names[0]))).await;
    let all = item_names(&unfiltered);
    assert!(
        all.contains(&names[1]) && all.contains(&names[2]),
        "{all:?}"
    );
    let sorted = {
        let mut s = all.clone();
        s.sort();
        s
    };
    assert_eq!(all, sorted, "lists are sorted by name");

    for n in &names {
        api.delete_queue(n).await;
    }
}

async fn queue_list_errors(b: &Broker) {
    let api = Api::new(b);
    let prefix = unique("mgmt-pgerr");
    for s in ["a", "b", "c"] {
        api.declare_queue(&format!("{prefix}-{s}"), json!({})).await;
    }
    let get = |query: String| {
        let api = api.clone();
        async move { api.get(&format!("/api/queues/{VHOST}?{query}")).await }
    };
    let r = get(format!("page=3&page_size=2&name={}", enc(&prefix))).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "page_out_of_range", "reason": "Page out of range, page: 3 page size: 2, len: 3"})
    );
    let r = get(format!("page=2&name={}-zzz", enc(&prefix))).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["reason"],
        "Page out of range, page: 2 page size: 100, len: 0"
    );
    // Past the last item but not past the end is an empty page.
    let r = get(format!("page=4&page_size=1&name={}", enc(&prefix))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (&r.body["items"], &r.body["page_count"]),
        (&json!([]), &json!(3))
    );

    for (query, reason) in [
        (
            "page=0",
            "Invalid pagination parameters: page number 0, page size undefined",
        ),
        (
            "page=1&page_size=501",
            "Invalid pagination parameters: page number 1, page size 501",
        ),
        (
            "page=1&page_size=0",
            "Invalid pagination parameters: page number 1, page size 0",
        ),
    ] {
        let r = get(query.into()).await;
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(
            r.body,
            json!({"error": "invalid_pagination_parameters", "reason": reason}),
            "{query}"
        );
    }
    for query in [
        "page=x",
        "page=1&page_size=y",
        "page=1&use_regex=true&name=%28",
    ] {
        let r = get(query.into()).await;
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(
            r.body,
            json!({"error": "bad_request", "reason": "Pagination parameters are invalid"}),
            "{query}"
        );
    }
    for s in ["a", "b", "c"] {
        api.delete_queue(&format!("{prefix}-{s}")).await;
    }
}

async fn queue_delete_conditions(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-del");
    api.declare_queue(&q, json!({})).await;
    api.publish_to(&q, "x").await;
    let r = api.delete(&format!("{}?if-empty=true", path(&q))).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error": "bad_request", "reason": format!("queue '{q}' in vhost '/' not empty")})
    );

    // A consumer makes it "in use".
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(0, lapin::options::BasicQosOptions::default())
        .await
        .expect("qos");
    let _consumer = ch
        .basic_consume(
            q.as_str().into(),
            "mgmt-del-consumer".into(),
            lapin::options::BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("consume");
    let r = api.delete(&format!("{}?if-unused=true", path(&q))).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["reason"], format!("queue '{q}' in vhost '/' in use"));
    conn.close(200, "bye".into()).await.expect("close");

    assert_eq!(api.delete(&path(&q)).await.status, 204);
    let r = api.delete(&path(&q)).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    let r = api
        .delete(&format!("/api/queues/{}/{}", unique("mgmt-vh"), enc(&q)))
        .await;
    assert_eq!(r.status, 404);
}

async fn queue_purge(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-purge");
    api.declare_queue(&q, json!({})).await;
    for i in 0..3 {
        api.publish_to(&q, &format!("m{i}")).await;
    }
    api.poll_get("3 messages", &path(&q), |d| d["messages"] == 3)
        .await;
    let r = api.delete(&format!("{}/contents", path(&q))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    api.poll_get("0 messages", &path(&q), |d| d["messages"] == 0)
        .await;
    assert_eq!(
        api.get_messages(&q, 5, "ack_requeue_false").await,
        Vec::<Value>::new()
    );
    let r = api
        .delete(&format!("{}/contents", path(&unique("mgmt-missing"))))
        .await;
    assert_eq!(r.status, 404);
    api.delete_queue(&q).await;
}

async fn queue_get_ackmodes(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-get");
    api.declare_queue(&q, json!({})).await;
    api.publish_to(&q, "first").await;
    api.publish_to(&q, "second").await;

    // ack_requeue_true leaves both in place, now redelivered.
    let got = api.get_messages(&q, 2, "ack_requeue_true").await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        json!({"payload_bytes": 5, "redelivered": false, "exchange": "", "routing_key": q,
               "message_count": 1, "properties": [], "payload": "first",
               "payload_encoding": "string"})
    );
    assert_eq!(
        (&got[1]["payload"], &got[1]["message_count"]),
        (&json!("second"), &json!(0))
    );
    let again = api.get_messages(&q, 1, "reject_requeue_true").await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (&again[0]["payload"], &again[0]["redelivered"]),
        (&json!("first"), &json!(true))
    );
    assert_eq!(again[0]["message_count"], 1);

    // ack_requeue_false removes them.
    let taken = api.get_messages(&q, 1, "ack_requeue_false").await;
    assert_eq!(taken[0]["payload"], "first");
    let taken = api.get_messages(&q, 5, "ack_requeue_false").await;
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (&taken[0]["payload"], &taken[0]["redelivered"]),
        (&json!("second"), &json!(true))
    );
    assert_eq!(
        api.get_messages(&q, 1, "ack_requeue_true").await,
        Vec::<Value>::new()
    );
    api.delete_queue(&q).await;
}

async fn queue_get_reject_dead_letters(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-rej");
    let dlq = unique("mgmt-rej-dlq");
    api.declare_queue(&dlq, json!({})).await;
    api.declare_queue(
        &q,
        json!({"arguments": {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}}),
    )
    .await;
    api.publish_to(&q, "doomed").await;
    let got = api.get_messages(&q, 1, "reject_requeue_false").await;
    assert_eq!(got[0]["payload"], "doomed");
    assert_eq!(
        api.get_messages(&q, 1, "ack_requeue_true").await,
        Vec::<Value>::new()
    );
    let dead = api.get_messages(&dlq, 1, "ack_requeue_false").await;
    assert_eq!(dead.len(), 1, "dead-lettered message in {dlq}");
    let m = &dead[0];
    assert_eq!(
        (&m["payload"], &m["routing_key"], &m["exchange"]),
        (&json!("doomed"), &json!(dlq), &json!(""))
    );
    assert_eq!(m["redelivered"], false);
    let death = &m["properties"]["headers"]["x-death"][0];
    assert_eq!(death["reason"], "rejected", "{m}");
    assert_eq!(death["queue"], q.as_str());
    assert_eq!(death["count"], 1);
    assert_eq!(death["exchange"], "");
    assert_eq!(death["routing-keys"], json!([q]));
    assert!(death["time"].is_u64(), "{death}");
    assert_eq!(
        m["properties"]["headers"]["x-first-death-reason"],
        "rejected"
    );
    api.delete_queue(&q).await;
    api.delete_queue(&dlq).await;
}

async fn queue_get_encoding_and_errors(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-enc");
    api.declare_queue(&q, json!({})).await;
    let publish = |payload: &str, encoding: &str| {
        let api = api.clone();
        let body = json!({"routing_key": q, "payload": payload,
                          "payload_encoding": encoding,
                          "properties": {"content_type": "text/plain", "priority": 3}});
        async move {
            let r = api
                .post(&format!("/api/exchanges/{VHOST}/amq.default/publish"), body)
                .await;
            assert_eq!((r.status, r.body), (200, json!({"routed": true})));
        }
    };
    publish("hello world", "string").await;
    // Bytes that are not UTF-8 come back base64 even with encoding auto.
    publish("/wAB", "base64").await;
    let get = |body: Value| {
        let api = api.clone();
        let p = format!("{}/get", path(&q));
        async move { api.post(&p, body).await }
    };

    let r =
        get(json!({"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 5}))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            &r.body[0]["payload"],
            &r.body[0]["payload_encoding"],
            &r.body[0]["payload_bytes"]
        ),
        (&json!("hello"), &json!("string"), &json!(11))
    );
    assert_eq!(
        r.body[0]["properties"],
        json!({"content_type": "text/plain", "priority": 3})
    );
    assert_eq!(
        (
            &r.body[1]["payload"],
            &r.body[1]["payload_encoding"],
            &r.body[1]["payload_bytes"]
        ),
        (&json!("/wAB"), &json!("base64"), &json!(3))
    );
    // Strings in the request are accepted for numbers.
    let r = get(json!({"count": "1", "ackmode": "ack_requeue_true", "encoding": "base64", "truncate": "50000"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (&r.body[0]["payload"], &r.body[0]["payload_encoding"]),
        (&json!("aGVsbG8gd29ybGQ="), &json!("base64"))
    );

    for (body, reason) in [
        (
            json!({"count": 1, "encoding": "auto"}),
            "[{key_missing,ackmode}]",
        ),
        (
            json!({"ackmode": "ack_requeue_true", "encoding": "auto"}),
            "[{key_missing,count}]",
        ),
        (
            json!({"count": 1, "ackmode": "ack_requeue_true"}),
            "[{key_missing,encoding}]",
        ),
        (
            json!({}),
            "[{key_missing,ackmode},{key_missing,count},{key_missing,encoding}]",
        ),
        (
            json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "utf-16"}),
            "Unsupported encoding. Please use auto or base64.",
        ),
    ] {
        let r = get(body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(
            r.body,
            json!({"error": "bad_request", "reason": reason}),
            "{body}"
        );
    }
    // Both messages are still there.
    assert_eq!(api.get_messages(&q, 5, "ack_requeue_false").await.len(), 2);
    let r = api
        .post(
            &format!("{}/get", path(&unique("mgmt-missing"))),
            json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(r.status, 404);
    api.delete_queue(&q).await;
}
