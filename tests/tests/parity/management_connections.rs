//! Management HTTP API, connections, channels and consumers: what a lapin client looks like
//! in the lists, and closing a connection with `DELETE` (`320 CONNECTION_FORCED`).

use lapin::options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use reqwest::Method;
use serde_json::{Value, json};
use tests::{Broker, parity, unique};

use crate::management::{Api, VHOST, assert_fields, enc, poll};
use crate::support::next_amqp_error;

parity!(
    connection_listed,
    channel_and_consumer_listed,
    connection_closed_by_delete,
);

/// A lapin connection carrying `connection_name`.
async fn named_connection(b: &Broker, name: &str) -> Connection {
    Connection::connect(
        &b.url,
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await
    .unwrap_or_else(|e| panic!("connect to {}: {e}", b.url))
}

/// Waits for the connection named `client_name` to be listed and returns it.
async fn listed_connection(api: &Api, client_name: &str) -> Value {
    poll("the connection in /api/connections", || async {
        let all = api.get_ok("/api/connections").await;
        all.as_array()?
            .iter()
            .find(|c| c["client_properties"]["connection_name"] == client_name)
            .cloned()
    })
    .await
}

async fn connection_listed(b: &Broker) {
    let api = Api::new(b);
    let client_name = unique("mgmt-conn");
    let conn = named_connection(b, &client_name).await;
    let c = listed_connection(&api, &client_name).await;
    assert_fields(
        &c,
        &[
            "name",
            "node",
            "protocol",
            "user",
            "vhost",
            "connected_at",
            "client_properties.connection_name",
            "client_properties.product",
            "client_properties.capabilities",
            "peer_host",
            "peer_port",
            "host",
            "port",
            "channels",
            "channel_max",
            "frame_max",
            "timeout",
            "auth_mechanism",
            "state",
            "ssl",
        ],
    );
    assert_eq!(c["protocol"], "AMQP 0-9-1");
    assert_eq!(c["user"], "guest");
    assert_eq!(c["vhost"], "/");
    assert_eq!(c["peer_host"], "127.0.0.1");
    assert_eq!(c["port"], b.addr.port());
    assert_eq!(c["auth_mechanism"], "PLAIN");
    assert_eq!(c["ssl"], false);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let at = c["connected_at"].as_u64().expect("connected_at in ms");
    assert!(
        at <= now_ms && now_ms - at < 120_000,
        "connected_at {at}, now {now_ms}"
    );
    let name = c["name"].as_str().expect("name");
    let peer_port = c["peer_port"].as_u64().expect("peer_port");
    assert_eq!(
        name,
        format!("127.0.0.1:{peer_port} -> 127.0.0.1:{}", b.addr.port())
    );
    let o = api.get_ok("/api/overview").await;
    assert_eq!(c["node"], o["node"]);

    // By name, and in the vhost's list.
    let one = api.get_ok(&format!("/api/connections/{}", enc(name))).await;
    assert_eq!(
        one["client_properties"]["connection_name"],
        client_name.as_str()
    );
    let in_vhost = api
        .get_ok(&format!("/api/vhosts/{VHOST}/connections"))
        .await;
    assert!(
        in_vhost
            .as_array()
            .expect("a list")
            .iter()
            .any(|c| c["name"] == name)
    );
    assert_eq!(
        api.get(&format!(
            "/api/connections/{}",
            enc("127.0.0.1:1 -> 127.0.0.1:2")
        ))
        .await
        .status,
        404
    );
    conn.close(200, "bye".into()).await.expect("close");
    poll("the connection to leave the list", || async {
        let all = api.get_ok("/api/connections").await;
        (!all
            .as_array()?
            .iter()
            .any(|c| c["client_properties"]["connection_name"] == client_name.as_str()))
        .then_some(())
    })
    .await;
}

async fn channel_and_consumer_listed(b: &Broker) {
    let api = Api::new(b);
    let client_name = unique("mgmt-chan");
    let q = unique("mgmt-chan-q");
    api.declare_queue(&q, json!({})).await;
    let conn = named_connection(b, &client_name).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(7, BasicQosOptions::default())
        .await
        .expect("qos");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let tag = unique("mgmt-ctag");
    let _consumer = ch
        .basic_consume(
            q.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let conn_name = listed_connection(&api, &client_name).await["name"]
        .as_str()
        .expect("name")
        .to_owned();

    let channel = poll("the channel in /api/channels", || async {
        let all = api.get_ok("/api/channels").await;
        all.as_array()?
            .iter()
            .find(|c| c["connection_details"]["name"] == conn_name.as_str())
            .filter(|c| c["consumer_count"] == 1 && c["prefetch_count"] == 7)
            .cloned()
    })
    .await;
    assert_fields(
        &channel,
        &[
            "name",
            "number",
            "node",
            "vhost",
            "user",
            "state",
            "consumer_count",
            "confirm",
            "transactional",
            "prefetch_count",
            "global_prefetch_count",
            "messages_unacknowledged",
            "messages_unconfirmed",
            "connection_details.name",
            "connection_details.peer_host",
            "connection_details.peer_port",
        ],
    );
    assert_eq!(
        channel["name"],
        format!("{conn_name} ({})", channel["number"])
    );
    assert_eq!(channel["number"], 1);
    assert_eq!(channel["confirm"], true);
    assert_eq!(channel["transactional"], false);
    assert_eq!(channel["global_prefetch_count"], 0);
    assert_eq!(
        (&channel["user"], &channel["vhost"]),
        (&json!("guest"), &json!("/"))
    );
    let of_conn = api
        .get_ok(&format!("/api/connections/{}/channels", enc(&conn_name)))
        .await;
    assert_eq!(of_conn.as_array().map(Vec::len), Some(1));
    let chan_name = channel["name"].as_str().expect("channel name");
    let one = api
        .get_ok(&format!("/api/channels/{}", enc(chan_name)))
        .await;
    assert_eq!(one["number"], 1);

    let consumer = poll("the consumer in /api/consumers", || async {
        let all = api.get_ok(&format!("/api/consumers/{VHOST}")).await;
        all.as_array()?
            .iter()
            .find(|c| c["consumer_tag"] == tag.as_str())
            .cloned()
    })
    .await;
    assert_fields(
        &consumer,
        &[
            "consumer_tag",
            "queue.name",
            "queue.vhost",
            "channel_details.name",
            "channel_details.number",
            "channel_details.connection_name",
            "channel_details.peer_host",
            "channel_details.peer_port",
            "channel_details.user",
            "ack_required",
            "prefetch_count",
            "exclusive",
            "active",
            "activity_status",
            "arguments",
        ],
    );
    assert_eq!(consumer["queue"], json!({"name": q, "vhost": "/"}));
    assert_eq!(
        consumer["channel_details"]["connection_name"],
        conn_name.as_str()
    );
    assert_eq!(consumer["channel_details"]["name"], chan_name);
    assert_eq!(consumer["ack_required"], true);
    assert_eq!(consumer["prefetch_count"], 7);
    assert_eq!(consumer["exclusive"], false);
    assert_eq!(consumer["active"], true);
    assert_eq!(consumer["activity_status"], "up");
    assert_eq!(consumer["arguments"], json!({}));
    let node_wide = api.get_ok("/api/consumers").await;
    assert!(
        node_wide
            .as_array()
            .expect("a list")
            .iter()
            .any(|c| c["consumer_tag"] == tag.as_str())
    );

    let detail = api
        .poll_get(
            "the queue's consumer_details",
            &format!("/api/queues/{VHOST}/{}", enc(&q)),
            |d| d["consumers"] == 1 && d["consumer_details"].as_array().map(Vec::len) == Some(1),
        )
        .await;
    let cd = &detail["consumer_details"][0];
    assert_eq!(cd["consumer_tag"], tag.as_str());
    assert_eq!(cd["queue"]["name"], q.as_str());
    assert_eq!(cd["channel_details"]["connection_name"], conn_name.as_str());
    assert_eq!(
        (&cd["ack_required"], &cd["prefetch_count"]),
        (&json!(true), &json!(7))
    );

    conn.close(200, "bye".into()).await.expect("close");
    api.delete_queue(&q).await;
}

async fn connection_closed_by_delete(b: &Broker) {
    let api = Api::new(b);
    let client_name = unique("mgmt-kill");
    let conn = named_connection(b, &client_name).await;
    let mut events = Box::pin(conn.events_listener());
    let name = listed_connection(&api, &client_name).await["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let r = api
        .send(
            Method::DELETE,
            &format!("/api/connections/{}", enc(&name)),
            None,
            &[("X-Reason", "bye")],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        next_amqp_error(&mut events).await,
        (320, "CONNECTION_FORCED - bye".to_owned())
    );
    poll("the closed connection to leave the list", || async {
        let r = api.get(&format!("/api/connections/{}", enc(&name))).await;
        (r.status == 404).then_some(())
    })
    .await;
    let r = api
        .delete(&format!("/api/connections/{}", enc(&name)))
        .await;
    assert_eq!(r.status, 404);
}
