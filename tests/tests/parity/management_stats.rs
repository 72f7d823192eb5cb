//! Management HTTP API, statistics tools graph: a queue's counts and `message_stats` after
//! AMQP publishes, gets and acks; a channel's unacked count; sorting a list by a statistic;
//! an exclusive queue and its consumer. RabbitMQ's figures lag by up to 5 s, so every
//! check polls.

use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ConnectionProperties};
use serde_json::{Value, json};
use tests::{Broker, parity, unique};

use crate::management::{Api, VHOST, enc, poll};
use crate::support::{confirm_channel, publish_confirmed};

parity!(
    queue_message_stats,
    channel_unacked_and_overview_totals,
    queue_list_sorted_by_messages,
    exclusive_queue_and_consumer,
);

fn path(q: &str) -> String {
    format!("/api/queues/{VHOST}/{}", enc(q))
}

async fn queue_message_stats(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-stats");
    api.declare_queue(&q, json!({})).await;
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    for i in 0..3 {
        publish_confirmed(
            &ch,
            "",
            &q,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    // Two gets with manual ack, acked; one left ready.
    for _ in 0..2 {
        let m = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .expect("basic.get")
            .expect("a message");
        m.delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
    }
    let d = api
        .poll_get("queue message_stats", &path(&q), |d| {
            let s = &d["message_stats"];
            // RabbitMQ emits counts, byte counts and message_stats in separate events:
            // wait for all of them.
            d["messages"] == 1
                && d["message_bytes"] == 2
                && s["publish"] == 3
                && s["get"] == 2
                && s["ack"] == 2
        })
        .await;
    let s = &d["message_stats"];
    assert_eq!(s["deliver_get"], 2, "{s}");
    assert!(s["publish_details"]["rate"].is_number(), "{s}");
    assert!(s["deliver_get_details"]["rate"].is_number(), "{s}");
    assert_eq!(
        (&d["messages_ready"], &d["messages_unacknowledged"]),
        (&json!(1), &json!(0))
    );
    assert!(d["messages_details"]["rate"].is_number());
    assert_eq!(d["message_bytes"], 2, "{d}");
    conn.close(200, "bye".into()).await.expect("close");
    api.delete_queue(&q).await;
}

async fn channel_unacked_and_overview_totals(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-unacked");
    let client = unique("mgmt-unacked-conn");
    api.declare_queue(&q, json!({})).await;
    for i in 0..3 {
        api.publish_to(&q, &format!("m{i}")).await;
    }
    let conn = lapin::Connection::connect(
        &b.url,
        ConnectionProperties::default().with_connection_name(client.as_str().into()),
    )
    .await
    .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let _consumer = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let d = api
        .poll_get("3 unacked", &path(&q), |d| {
            d["messages_unacknowledged"] == 3 && d["messages_ready"] == 0 && d["consumers"] == 1
        })
        .await;
    assert_eq!(d["messages"], 3);
    let conn_name = poll("the connection", || async {
        let all = api.get_ok("/api/connections").await;
        all.as_array()?
            .iter()
            .find(|c| c["client_properties"]["connection_name"] == client.as_str())
            .and_then(|c| c["name"].as_str().map(str::to_owned))
    })
    .await;
    let channel = poll("the channel's unacked count", || async {
        let all = api.get_ok("/api/channels").await;
        all.as_array()?
            .iter()
            .find(|c| {
                c["connection_details"]["name"] == conn_name.as_str()
                    && c["messages_unacknowledged"] == 3
                    && c["consumer_count"] == 1
            })
            .cloned()
    })
    .await;
    assert_eq!(channel["number"], 1);
    let o = api
        .poll_get("overview totals", "/api/overview", |o| {
            o["queue_totals"]["messages_unacknowledged"].as_u64() >= Some(3)
                && o["object_totals"]["consumers"].as_u64() >= Some(1)
        })
        .await;
    assert!(o["object_totals"]["connections"].as_u64() >= Some(1));
    assert!(o["object_totals"]["channels"].as_u64() >= Some(1));
    conn.close(200, "bye".into()).await.expect("close");
    // Closing requeues them.
    api.poll_get("requeued", &path(&q), |d| {
        d["messages_ready"] == 3 && d["messages_unacknowledged"] == 0
    })
    .await;
    api.delete_queue(&q).await;
}

async fn queue_list_sorted_by_messages(b: &Broker) {
    let api = Api::new(b);
    let prefix = unique("mgmt-sort");
    // Declared in name order a, b, c with 2, 0, 1 messages.
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|s| format!("{prefix}-{s}"))
        .collect();
    for (n, count) in names.iter().zip([2, 0, 1]) {
        api.declare_queue(n, json!({})).await;
        for _ in 0..count {
            api.publish_to(n, "x").await;
        }
    }
    let order = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let by = |query: &'static str| {
        let api = api.clone();
        let prefix = prefix.clone();
        async move {
            let p = format!(
                "/api/queues/{VHOST}?page=1&name={}&columns=name,messages&{query}",
                enc(&prefix)
            );
            api.poll_get("message counts in the list", &p, |v| {
                v["items"].as_array().is_some_and(|a| {
                    a.len() == 3
                        && a.iter()
                            .map(|i| i["messages"].as_u64().unwrap_or(99))
                            .sum::<u64>()
                            == 3
                })
            })
            .await
        }
    };
    let asc = by("sort=messages").await;
    assert_eq!(
        order(&asc),
        [names[1].clone(), names[2].clone(), names[0].clone()]
    );
    let desc = by("sort=messages&sort_reverse=true").await;
    assert_eq!(
        order(&desc),
        [names[0].clone(), names[2].clone(), names[1].clone()]
    );
    for n in &names {
        api.delete_queue(n).await;
    }
}

async fn exclusive_queue_and_consumer(b: &Broker) {
    let api = Api::new(b);
    let q = unique("mgmt-excl");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare exclusive");
    let tag = unique("mgmt-excl-tag");
    let mut args = FieldTable::default();
    args.insert("x-priority".into(), lapin::types::AMQPValue::LongInt(5));
    let _consumer = ch
        .basic_consume(
            q.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions {
                exclusive: true,
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            args,
        )
        .await
        .expect("consume");
    let d = api
        .poll_get("the exclusive queue's consumer", &path(&q), |d| {
            // RabbitMQ fills `consumer_details` from another stats event than `consumers`.
            d["consumers"] == 1
                && d.get("exclusive_consumer_tag").is_some()
                && d["consumer_details"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())
        })
        .await;
    assert_eq!(
        (&d["exclusive"], &d["auto_delete"], &d["durable"]),
        (&json!(true), &json!(true), &json!(false))
    );
    assert_eq!(d["exclusive_consumer_tag"], tag.as_str());
    let c = &d["consumer_details"][0];
    assert_eq!(
        (&c["consumer_tag"], &c["exclusive"], &c["ack_required"]),
        (&json!(tag), &json!(true), &json!(false))
    );
    assert_eq!(c["arguments"], json!({"x-priority": 5}));

    // The API is no connection of the owner's: the queue is locked to it.
    let locked = format!(
        "cannot obtain exclusive access to locked queue '{q}' in vhost '/'. It could be \
         originally declared on another connection or the exclusive property value does not \
         match that of the original declaration."
    );
    let r = api
        .post(
            &format!("{}/get", path(&q)),
            json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body),
        (
            400,
            &json!({"error": "bad_request", "reason": format!("405 RESOURCE_LOCKED - {locked}")})
        )
    );
    for r in [
        api.put(&path(&q), json!({"durable": false, "auto_delete": true}))
            .await,
        api.delete(&format!("{}/contents", path(&q))).await,
        api.delete(&path(&q)).await,
    ] {
        assert_eq!(
            (r.status, &r.body),
            (400, &json!({"error": "bad_request", "reason": locked}))
        );
    }
    assert_eq!(api.get(&path(&q)).await.status, 200);
    conn.close(200, "bye".into()).await.expect("close");
    poll("the exclusive queue to go with its connection", || async {
        (api.get(&path(&q)).await.status == 404).then_some(())
    })
    .await;
}
