//! Login, every page of the nav, publishing through the UI and getting it back, definitions
//! export and import, and the add forms and two-click buttons.

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions};
use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ExchangeKind};

use crate::broker;
use crate::support::{Ui, eventually};

/// A connection with one confirm-mode channel, and `queue` declared on it with `n` messages.
async fn client_with_queue(b: &tests::Broker, queue: &str, n: usize) -> (Connection, Channel) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
    for i in 0..n {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            format!("message {i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    (conn, ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_every_page() {
    let b = broker("pages");
    let Some(ui) = Ui::start("login_and_every_page", &b).await else {
        return;
    };
    // Something for every list to show: a connection, its channel, a queue with a message.
    let (_conn, _ch) = client_with_queue(&b, "ui-pages", 1).await;

    ui.open("").await;
    ui.find("#login-user").await;
    ui.screenshot("login").await;
    ui.fill("#login-user", "guest").await;
    ui.fill("#login-password", "not-the-password").await;
    ui.click("#login-submit").await;
    let err = ui
        .wait_text("[data-testid=login-error]", |t| !t.is_empty())
        .await;
    assert!(
        err.contains("wrong username or password"),
        "login error: {err}"
    );
    ui.screenshot("login-error").await;

    ui.login("guest", "guest").await;
    // The start page is the overview; the header names the node.
    ui.wait_route("overview").await;
    ui.wait_text("[data-testid=node-name]", |t| t.starts_with("rabbit@"))
        .await;

    // Overview: the totals are numbers (raw in data-value, formatted in the text).
    ui.click("[data-testid=nav-overview]").await;
    ui.wait_route("overview").await;
    for (id, at_least) in [
        ("total-connections", 1.0),
        ("total-channels", 1.0),
        // The default exchange and the six amq.* ones.
        ("total-exchanges", 7.0),
        ("total-queues", 1.0),
        ("total-consumers", 0.0),
        ("queued-ready", 1.0),
        ("queued-total", 1.0),
    ] {
        let css = format!("[data-testid={id}]");
        let n = ui.wait_number(&css, |n| n >= at_least).await;
        let text = ui.wait_text(&css, |t| !t.is_empty()).await;
        assert_eq!(text.replace(',', "").parse::<f64>().ok(), Some(n), "{id}");
    }
    ui.wait_number("[data-testid=rate-publish]", |r| r >= 0.0)
        .await;
    ui.wait_text("[data-testid=node-product]", |t| t.contains("RabbitMQ"))
        .await;
    ui.find("[data-testid=listeners] tbody tr").await;
    ui.find("[data-testid=chart-queued] svg path[data-series=messages_ready]")
        .await;
    ui.screenshot("overview").await;
    ui.scroll_to("[data-testid=chart-queued]").await;
    ui.screenshot("overview-charts").await;

    ui.click("[data-testid=nav-connections]").await;
    ui.wait_route("connections").await;
    ui.find("#view .paged[data-state=ok]").await;
    ui.wait_text("tr[data-connection] td[data-col=user]", |t| t == "guest")
        .await;
    ui.wait_text("tr[data-connection] td[data-col=protocol]", |t| {
        t.contains("AMQP 0-9-1")
    })
    .await;
    ui.screenshot("connections").await;

    ui.click("[data-testid=nav-channels]").await;
    ui.wait_route("channels").await;
    ui.find("#view .paged[data-state=ok]").await;
    ui.wait_text("tr[data-channel] td[data-col=mode]", |t| t.contains('C'))
        .await;
    ui.screenshot("channels").await;

    ui.click("[data-testid=nav-exchanges]").await;
    ui.wait_route("exchanges").await;
    ui.find("#view .paged[data-state=ok]").await;
    ui.wait_text("tr[data-exchange=''] td[data-col=name]", |t| {
        t == "(AMQP default)"
    })
    .await;
    ui.wait_text("tr[data-exchange='amq.fanout'] td[data-col=type]", |t| {
        t == "fanout"
    })
    .await;
    ui.screenshot("exchanges").await;

    ui.click("[data-testid=nav-queues]").await;
    ui.wait_route("queues").await;
    ui.find("#view .paged[data-state=ok]").await;
    ui.wait_number("tr[data-queue='ui-pages'] td[data-col=ready]", |n| n == 1.0)
        .await;
    ui.wait_text("tr[data-queue='ui-pages'] td[data-col=features]", |t| {
        t.contains('D')
    })
    .await;
    ui.screenshot("queues").await;

    ui.click("[data-testid=nav-admin]").await;
    ui.wait_route("admin").await;
    ui.wait_text("[data-testid=users-table] tr[data-user=guest]", |t| {
        t.contains("administrator")
    })
    .await;
    ui.find("[data-testid=vhosts-table] tr[data-vhost='/']")
        .await;
    ui.find("[data-testid=permissions-table] tr[data-user=guest][data-vhost='/']")
        .await;
    ui.screenshot("admin").await;

    ui.click("[data-testid=nav-definitions]").await;
    ui.wait_route("definitions").await;
    ui.find("[data-testid=definitions-export]").await;
    ui.find("[data-testid=definitions-file]").await;
    ui.screenshot("definitions").await;

    ui.click("[data-testid=logout]").await;
    ui.wait_text("[data-testid=login-error]", |t| t.contains("logged out"))
        .await;
    ui.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_through_the_ui_and_get_it_back() {
    let b = broker("publish");
    let Some(ui) = Ui::start("publish_through_the_ui_and_get_it_back", &b).await else {
        return;
    };
    let queue = "ui-orders";
    let payload = "{\"order\": 42, \"note\": \"from the UI\"}";
    ui.open("#/queues").await;
    ui.login("guest", "guest").await;
    ui.wait_route("queues").await;

    // Add the queue through the add-queue form.
    ui.wait_attr(
        "[data-testid=add-queue-vhost] option[value='/']",
        "value",
        |v| v == "/",
    )
    .await;
    ui.fill("[data-testid=add-queue-name]", queue).await;
    ui.select("[data-testid=add-queue-durable]", "true").await;
    ui.click("[data-testid=add-queue-submit]").await;
    ok_result(&ui, "add-queue-result").await;
    ui.wait_number(
        &format!("tr[data-queue='{queue}'] td[data-col=messages]"),
        |n| n == 0.0,
    )
    .await;
    ui.screenshot("queue-added").await;

    // The default exchange's page, from the exchange list.
    ui.click("[data-testid=nav-exchanges]").await;
    ui.wait_route("exchanges").await;
    ui.click("tr[data-exchange=''] td[data-col=name] a").await;
    ui.wait_text("[data-testid=exchange-name]", |t| t == "(AMQP default)")
        .await;
    ui.find("#view[data-state=ok]").await;
    ui.fill("[data-testid=publish-routing-key]", queue).await;
    ui.fill("[data-testid=publish-payload]", payload).await;
    ui.click("[data-testid=publish-submit]").await;
    ok_result(&ui, "publish-result").await;
    ui.wait_attr("[data-testid=publish-result]", "data-routed", |r| {
        r == "true"
    })
    .await;
    ui.screenshot("published").await;

    // The queue list counts it.
    ui.click("[data-testid=nav-queues]").await;
    ui.wait_route("queues").await;
    let cell = |col: &str| format!("tr[data-queue='{queue}'] td[data-col={col}]");
    ui.wait_number(&cell("messages"), |n| n == 1.0).await;
    ui.wait_number(&cell("ready"), |n| n == 1.0).await;
    ui.screenshot("queue-list").await;

    // Its detail page: get the message (acked, so removed), see the payload, count to 0.
    ui.click(&format!("{} a", cell("name"))).await;
    ui.wait_text("[data-testid=queue-name]", |t| t == queue)
        .await;
    ui.wait_number("[data-testid=queue-messages]", |n| n == 1.0)
        .await;
    ui.select("[data-testid=queue-get-ackmode]", "ack_requeue_false")
        .await;
    ui.click("[data-testid=queue-get-button]").await;
    let got = ui
        .wait_text(
            "[data-testid=queue-get-result] [data-testid=message] [data-field=payload]",
            |t| !t.is_empty(),
        )
        .await;
    assert_eq!(got, payload);
    let messages = ui
        .find_all("[data-testid=queue-get-result] [data-testid=message]")
        .await;
    assert_eq!(messages.len(), 1);
    ui.wait_text("[data-testid=message] [data-field=routing_key]", |t| {
        t == queue
    })
    .await;
    ui.wait_text("[data-testid=message] [data-field=exchange]", |t| {
        t == "(AMQP default)"
    })
    .await;
    ui.wait_number("[data-testid=queue-messages]", |n| n == 0.0)
        .await;
    ui.scroll_to("[data-testid=queue-get-result]").await;
    ui.screenshot("queue-get").await;

    // And the list agrees.
    ui.click("[data-testid=nav-queues]").await;
    ui.wait_number(&cell("messages"), |n| n == 0.0).await;
    ui.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_export_and_import() {
    let b = broker("definitions");
    let Some(ui) = Ui::start("definitions_export_and_import", &b).await else {
        return;
    };
    // A topology from a real client: a fanout exchange bound to a durable queue.
    let (conn, ch) = client_with_queue(&b, "ui-defs", 0).await;
    ch.exchange_declare(
        "ui-defs-x".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    ch.queue_bind(
        "ui-defs".into(),
        "ui-defs-x".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
    let _ = conn.close(200, "done".into()).await;

    ui.open("#/definitions").await;
    ui.login("guest", "guest").await;
    ui.wait_route("definitions").await;
    ui.click("[data-testid=definitions-export]").await;
    ok_result(&ui, "definitions-export-result").await;
    let file = ui
        .wait_attr(
            "[data-testid=definitions-export-result]",
            "data-file",
            |f| f.ends_with(".json"),
        )
        .await;
    let path = ui.downloads.path().join(&file);
    let exported: serde_json::Value = eventually("the downloaded definitions file", || {
        let path = path.clone();
        async move {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            serde_json::from_str(&text).map_err(|e| e.to_string())
        }
    })
    .await;
    let names = |kind: &str| -> Vec<String> {
        exported[kind]
            .as_array()
            .unwrap_or_else(|| panic!("{kind} in {exported}"))
            .iter()
            .filter_map(|x| x["name"].as_str().map(str::to_string))
            .collect()
    };
    assert!(names("queues").contains(&"ui-defs".to_string()));
    assert!(names("exchanges").contains(&"ui-defs-x".to_string()));
    ui.screenshot("exported").await;

    // Delete the queue through the UI (two clicks), then import the file back.
    ui.open("#/queues/%2F/ui-defs").await;
    ui.find("#view[data-state=ok]").await;
    two_clicks(&ui, "[data-testid=queue-delete-button]", "delete").await;
    ui.wait_route("queues").await;
    ui.find("#view .paged[data-state=ok]").await;
    gone(&ui, "tr[data-queue='ui-defs']").await;

    ui.click("[data-testid=nav-definitions]").await;
    ui.wait_route("definitions").await;
    let input = ui.find("[data-testid=definitions-file]").await;
    input
        .send_keys(path.to_str().expect("UTF-8 temp path"))
        .await
        .expect("choose the file");
    ui.click("[data-testid=definitions-import]").await;
    ok_result(&ui, "definitions-import-result").await;
    ui.wait_text("[data-testid=definitions-import-result]", |t| {
        t.contains("1 queue") && t.contains("1 binding")
    })
    .await;
    ui.screenshot("imported").await;

    ui.open("#/exchanges/%2F/ui-defs-x").await;
    ui.find("[data-testid=exchange-bindings] tr[data-destination='ui-defs']")
        .await;
    ui.click("[data-testid=nav-queues]").await;
    ui.wait_route("queues").await;
    ui.find("tr[data-queue='ui-defs']").await;
    ui.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_and_two_click_buttons() {
    let b = broker("forms");
    let Some(ui) = Ui::start("forms_and_two_click_buttons", &b).await else {
        return;
    };
    let (conn, _ch) = client_with_queue(&b, "ui-forms", 3).await;
    ui.open("#/exchanges").await;
    ui.login("guest", "guest").await;
    ui.wait_route("exchanges").await;

    // Add a topic exchange through the form.
    ui.wait_attr(
        "[data-testid=add-exchange-vhost] option[value='/']",
        "value",
        |v| v == "/",
    )
    .await;
    ui.fill("[data-testid=add-exchange-name]", "ui-forms-x")
        .await;
    ui.select("[data-testid=add-exchange-type]", "topic").await;
    ui.click("[data-testid=add-exchange-submit]").await;
    ok_result(&ui, "add-exchange-result").await;
    ui.wait_text("tr[data-exchange='ui-forms-x'] td[data-col=type]", |t| {
        t == "topic"
    })
    .await;

    // Bind the queue to it from the queue's page, then unbind it (two clicks).
    ui.open("#/queues/%2F/ui-forms").await;
    ui.find("#view[data-state=ok]").await;
    ui.fill("[data-testid=binding-exchange]", "ui-forms-x")
        .await;
    ui.fill("[data-testid=binding-routing-key]", "orders.#")
        .await;
    ui.click("[data-testid=binding-submit]").await;
    ok_result(&ui, "binding-result").await;
    let row =
        "[data-testid=queue-bindings] tr[data-source='ui-forms-x'][data-routing-key='orders.#']";
    ui.find(row).await;
    ui.scroll_to(row).await;
    ui.screenshot("bound").await;
    two_clicks(&ui, &format!("{row} [data-testid=unbind]"), "unbind").await;
    gone(&ui, row).await;

    // Purge (two clicks): 3 messages, then none.
    ui.wait_number("[data-testid=queue-messages]", |n| n == 3.0)
        .await;
    two_clicks(&ui, "[data-testid=queue-purge-button]", "purge").await;
    ok_result(&ui, "queue-action-result").await;
    ui.wait_number("[data-testid=queue-messages]", |n| n == 0.0)
        .await;

    // Close the client's connection from the connections page (two clicks).
    ui.click("[data-testid=nav-connections]").await;
    ui.wait_route("connections").await;
    ui.find("tr[data-connection]").await;
    two_clicks(
        &ui,
        "tr[data-connection] [data-testid=connection-close]",
        "close",
    )
    .await;
    ok_result(&ui, "connection-action-result").await;
    gone(&ui, "tr[data-connection]").await;
    eventually("the client to see its connection closed", || async {
        if conn.status().connected() {
            Err("still connected".to_string())
        } else {
            Ok(())
        }
    })
    .await;

    // Admin: a user, a virtual host, a permission; then delete the user.
    ui.click("[data-testid=nav-admin]").await;
    ui.wait_route("admin").await;
    ui.find("[data-testid=users-table] tr[data-user=guest]")
        .await;
    ui.fill("[data-testid=user-name]", "ui-user").await;
    ui.fill("[data-testid=user-password]", "secret").await;
    ui.fill("[data-testid=user-tags]", "monitoring").await;
    ui.click("[data-testid=user-submit]").await;
    ok_result(&ui, "user-result").await;
    ui.wait_text("[data-testid=users-table] tr[data-user='ui-user']", |t| {
        t.contains("monitoring")
    })
    .await;
    ui.fill("[data-testid=vhost-name]", "ui-vhost").await;
    ui.fill("[data-testid=vhost-description]", "made in the UI")
        .await;
    ui.click("[data-testid=vhost-submit]").await;
    ok_result(&ui, "vhost-result").await;
    ui.wait_text(
        "[data-testid=vhosts-table] tr[data-vhost='ui-vhost']",
        |t| t.contains("made in the UI"),
    )
    .await;
    ui.select("[data-testid=permission-user]", "ui-user").await;
    ui.select("[data-testid=permission-vhost]", "ui-vhost")
        .await;
    ui.fill("[data-testid=permission-read]", "^ui-.*").await;
    ui.click("[data-testid=permission-submit]").await;
    ok_result(&ui, "permission-result").await;
    let perm = "[data-testid=permissions-table] tr[data-user='ui-user'][data-vhost='ui-vhost']";
    ui.wait_text(&format!("{perm} td[data-col=read]"), |t| t == "^ui-.*")
        .await;
    ui.scroll_to(perm).await;
    ui.screenshot("admin").await;
    two_clicks(
        &ui,
        "[data-testid=users-table] tr[data-user='ui-user'] [data-testid=user-delete]",
        "delete",
    )
    .await;
    ok_result(&ui, "user-result").await;
    gone(&ui, "[data-testid=users-table] tr[data-user='ui-user']").await;
    ui.close().await;
}

/// Waits for the result box `testid` to settle and asserts it says ok (showing its text if not).
async fn ok_result(ui: &Ui, testid: &str) {
    let css = format!("[data-testid={testid}]");
    let status = ui.wait_attr(&css, "data-status", |s| s != "pending").await;
    let text = ui.wait_text(&css, |_| true).await;
    assert_eq!(status, "ok", "{testid}: {text}");
}

/// A destructive button: the first click arms it ("Click again to …"), the second acts.
async fn two_clicks(ui: &Ui, css: &str, verb: &str) {
    ui.click(css).await;
    ui.wait_attr(css, "data-armed", |a| a == "true").await;
    ui.wait_text(css, |t| t == format!("Click again to {verb}"))
        .await;
    ui.click(css).await;
}

/// Waits until nothing matches `css`.
async fn gone(ui: &Ui, css: &str) {
    eventually(&format!("{css} to disappear"), || async {
        match ui.find_all(css).await.len() {
            0 => Ok(()),
            n => Err(format!("{n} left")),
        }
    })
    .await;
}
