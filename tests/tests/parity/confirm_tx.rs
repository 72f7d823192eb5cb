//! Publisher confirms (confirm.select) and transactions (tx.select/commit/rollback).

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::protocol::AMQPClass;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
use tests::{Broker, parity, unique};

use crate::support::{
    RawConn, assert_amqp_error, confirm_channel, declare_durable, drain, eventually, field_table,
    long_str, message_count, publish_confirmed,
};

async fn declare(ch: &Channel, prefix: &str) -> String {
    let q = unique(prefix);
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
    q
}

async fn delete(ch: &Channel, q: &str) {
    ch.queue_delete(q.into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
}

/// Publishes without waiting for anything (no confirm mode, or a tx channel).
async fn publish(ch: &Channel, q: &str, body: &str) {
    ch.basic_publish(
        "".into(),
        q.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await
    .expect("basic.publish");
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// confirm.select
// ---------------------------------------------------------------------------------------------

/// Every publish on a confirm channel is acked (one at a time, and pipelined), and
/// wait_for_confirms returns once all are; routed messages are in the queue by then.
async fn confirm_acks_every_publish(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    assert!(ch.status().confirm());
    let q = declare(&ch, "confirm-each").await;
    for i in 0..10 {
        let confirm = ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                format!("one-{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert_eq!(confirm, Confirmation::Ack(None));
    }
    assert_eq!(message_count(&ch, &q).await, 10);

    // Pipelined: 200 publishes in flight, then wait for all of them.
    let mut pending = Vec::new();
    for i in 0..200 {
        pending.push(
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                format!("many-{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("publish"),
        );
    }
    assert!(
        ch.wait_for_confirms()
            .await
            .expect("wait_for_confirms")
            .is_empty()
    );
    for p in pending {
        assert_eq!(p.await.expect("confirm"), Confirmation::Ack(None));
    }
    assert_eq!(message_count(&ch, &q).await, 210);

    // Unroutable, not mandatory: acked as well.
    let confirm = ch
        .basic_publish(
            "amq.direct".into(),
            unique("unbound").as_str().into(),
            BasicPublishOptions::default(),
            b"nowhere",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert_eq!(confirm, Confirmation::Ack(None));
    delete(&ch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Persistent messages on a durable queue are confirmed (after they are on disk).
async fn confirm_persistent_durable(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    let q = unique("confirm-durable");
    declare_durable(&ch, &q).await;
    for i in 0..5 {
        publish_confirmed(
            &ch,
            "",
            &q,
            format!("p{i}").as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await;
    }
    assert_eq!(
        drain(&ch, &q).await,
        strings(&["p0", "p1", "p2", "p3", "p4"])
    );
    delete(&ch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Confirm delivery tags as seen on the wire: they start at 1 after confirm.select, count every
/// publish on the channel, and together (single or multiple) cover each publish exactly once.
async fn confirm_sequence_numbers(b: &Broker) {
    use lapin::protocol::{basic, channel, confirm};
    let (mut raw, _) = RawConn::open(b.addr).await;
    raw.send_method(
        1,
        &AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
    .await;
    match raw.read_method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => {}
        other => panic!("expected channel.open-ok, got {other:?}"),
    }
    for _ in 0..2 {
        // A second confirm.select is harmless.
        raw.send_method(
            1,
            &AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        )
        .await;
        match raw.read_method().await {
            (1, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))) => {}
            other => panic!("expected confirm.select-ok, got {other:?}"),
        }
    }
    let rk = unique("seq-nobody");
    const N: u64 = 7;
    for i in 0..N {
        raw.send_method(
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: rk.as_str().into(),
                mandatory: false,
                immediate: false,
            })),
        )
        .await;
        let body = format!("b{i}");
        // Content header: class 60, weight 0, body size, no property flags.
        let mut header = vec![0, 60, 0, 0];
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        header.extend_from_slice(&[0, 0]);
        raw.send_frame(2, 1, &header).await;
        raw.send_frame(3, 1, body.as_bytes()).await;
    }
    let mut confirmed = vec![false; N as usize + 1];
    let mut highest = 0;
    while highest < N {
        match raw.read_method().await {
            (1, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => {
                assert!(
                    a.delivery_tag > highest && a.delivery_tag <= N,
                    "ack {a:?} after {highest}"
                );
                let from = if a.multiple {
                    highest + 1
                } else {
                    a.delivery_tag
                };
                for tag in from..=a.delivery_tag {
                    assert!(!confirmed[tag as usize], "tag {tag} confirmed twice");
                    confirmed[tag as usize] = true;
                }
                highest = a.delivery_tag;
            }
            other => panic!("expected basic.ack, got {other:?}"),
        }
    }
    assert!(confirmed[1..].iter().all(|c| *c), "{confirmed:?}");
    raw.close().await;
}

parity!(
    confirm_acks_every_publish,
    confirm_persistent_durable,
    confirm_sequence_numbers,
);

// ---------------------------------------------------------------------------------------------
// tx
// ---------------------------------------------------------------------------------------------

/// Publishes on a tx channel stay invisible until tx.commit; the channel stays transactional
/// for the next batch.
async fn tx_commit_publishes(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let observer = conn.create_channel().await.expect("channel");
    let q = declare(&observer, "tx-commit").await;
    ch.tx_select().await.expect("tx.select");
    for body in ["t0", "t1", "t2"] {
        publish(&ch, &q, body).await;
    }
    // Ordered after the publishes on the same channel, still nothing in the queue.
    assert_eq!(message_count(&ch, &q).await, 0);
    assert_eq!(message_count(&observer, &q).await, 0);
    ch.tx_commit().await.expect("tx.commit");
    assert_eq!(message_count(&observer, &q).await, 3);

    publish(&ch, &q, "t3").await;
    assert_eq!(message_count(&ch, &q).await, 3);
    ch.tx_commit().await.expect("second tx.commit");
    // An empty transaction commits fine.
    ch.tx_commit().await.expect("empty tx.commit");
    assert_eq!(
        drain(&observer, &q).await,
        strings(&["t0", "t1", "t2", "t3"])
    );
    delete(&observer, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// tx.rollback drops the uncommitted publishes.
async fn tx_rollback_publishes(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let q = declare(&ch, "tx-rollback").await;
    ch.tx_select().await.expect("tx.select");
    publish(&ch, &q, "dropped-1").await;
    publish(&ch, &q, "dropped-2").await;
    ch.tx_rollback().await.expect("tx.rollback");
    assert_eq!(message_count(&ch, &q).await, 0);
    publish(&ch, &q, "kept").await;
    ch.tx_commit().await.expect("tx.commit");
    assert_eq!(message_count(&ch, &q).await, 1);
    let observer = conn.create_channel().await.expect("channel");
    assert_eq!(drain(&observer, &q).await, strings(&["kept"]));
    delete(&observer, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Acks and nacks on a tx channel take effect at commit; a rollback forgets them (the
/// deliveries stay unacked and are requeued when the channel closes).
async fn tx_acks_held_until_commit(b: &Broker) {
    let conn = b.connect().await;
    let pubch = confirm_channel(&conn).await;
    let q = declare(&pubch, "tx-acks").await;
    for body in ["m0", "m1", "m2"] {
        publish_confirmed(&pubch, "", &q, body.as_bytes(), BasicProperties::default()).await;
    }
    let ch = conn.create_channel().await.expect("channel");
    ch.tx_select().await.expect("tx.select");
    for tag in 1..=3u64 {
        let m = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .expect("get")
            .expect("message");
        assert_eq!(m.delivery.delivery_tag, tag);
    }
    ch.basic_ack(1, BasicAckOptions { multiple: false })
        .await
        .expect("ack m0");
    ch.tx_rollback()
        .await
        .expect("rollback forgets the ack of m0");

    ch.basic_ack(2, BasicAckOptions { multiple: false })
        .await
        .expect("ack m1");
    ch.basic_nack(
        3,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .expect("nack m2");
    // The nack (requeue) is held: m2 is not back yet.
    assert_eq!(message_count(&ch, &q).await, 0);
    ch.tx_commit().await.expect("commit");
    // Not a direct read: RabbitMQ's queue answers the passive declare's stat call ahead of
    // pending requeues.
    let (c, qn) = (&ch, q.as_str());
    eventually("m2 requeued at commit", move || async move {
        message_count(c, qn).await == 1
    })
    .await;

    // m0's ack was rolled back: it is still unacked and comes back when the channel closes.
    ch.close(200, "bye".into()).await.expect("close channel");
    let (pc, qn) = (&pubch, q.as_str());
    eventually("m0 requeued on close", move || async move {
        message_count(pc, qn).await == 2
    })
    .await;
    let mut got = Vec::new();
    while let Some(m) = pubch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
    {
        got.push((
            String::from_utf8_lossy(&m.delivery.data).into_owned(),
            m.delivery.redelivered,
        ));
    }
    assert_eq!(got, [("m0".to_owned(), true), ("m2".to_owned(), true)]);
    delete(&pubch, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// tx.select on a confirm channel, and confirm.select on a tx channel, are 406.
async fn tx_and_confirm_exclusive(b: &Broker) {
    let conn = b.connect().await;
    let ch = confirm_channel(&conn).await;
    assert_amqp_error(
        ch.tx_select().await,
        406,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
    );
    let ch = conn.create_channel().await.expect("channel");
    ch.tx_select().await.expect("tx.select");
    assert_amqp_error(
        ch.confirm_select(ConfirmSelectOptions::default()).await,
        406,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
    );
    // A second tx.select is harmless.
    let ch = conn.create_channel().await.expect("channel");
    ch.tx_select().await.expect("tx.select");
    ch.tx_select().await.expect("second tx.select");
    conn.close(200, "bye".into()).await.expect("close");
}

/// tx.commit and tx.rollback outside a transaction are 406.
async fn tx_without_select(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        ch.tx_commit().await,
        406,
        "PRECONDITION_FAILED - channel is not transactional",
    );
    let ch = conn.create_channel().await.expect("channel");
    assert_amqp_error(
        ch.tx_rollback().await,
        406,
        "PRECONDITION_FAILED - channel is not transactional",
    );
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    tx_commit_publishes,
    tx_rollback_publishes,
    tx_acks_held_until_commit,
    tx_and_confirm_exclusive,
    tx_without_select,
);

// ---------------------------------------------------------------------------------------------
// tx with persistent messages (commit-ok waits for the fsync)
// ---------------------------------------------------------------------------------------------

/// Persistent messages to a durable queue, committed: none is visible before tx.commit-ok, all
/// are (in order) after it; the same channel commits again, with an ack in the transaction.
async fn tx_commit_persistent_durable(b: &Broker) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let observer = conn.create_channel().await.expect("channel");
    let q = unique("tx-durable");
    declare_durable(&observer, &q).await;
    ch.tx_select().await.expect("tx.select");
    let bodies: Vec<String> = (0..50).map(|i| format!("d{i}")).collect();
    for (i, body) in bodies.iter().enumerate() {
        // Mostly persistent; every tenth transient (a commit may mix them).
        let mode = if i % 10 == 9 { 1 } else { 2 };
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default().with_delivery_mode(mode),
        )
        .await
        .expect("basic.publish");
    }
    assert_eq!(message_count(&observer, &q).await, 0);
    ch.tx_commit().await.expect("tx.commit");
    assert_eq!(message_count(&observer, &q).await, 50);

    // Take one on the tx channel, then commit its ack together with two more publishes.
    let m = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
        .expect("a message");
    assert_eq!(m.delivery.data, b"d0");
    ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .expect("basic.ack");
    for body in ["e0", "e1"] {
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("basic.publish");
    }
    ch.tx_commit().await.expect("second tx.commit");
    let mut expected: Vec<String> = bodies[1..].to_vec();
    expected.extend(strings(&["e0", "e1"]));
    assert_eq!(drain(&observer, &q).await, expected);
    delete(&observer, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// Frames of `basic.publish` (persistent, delivery_mode 2) of `body` to `queue` on `channel`.
fn persistent_publish_frames(channel: u16, queue: &str, body: &str) -> Vec<u8> {
    use lapin::protocol::basic;
    let mut header = vec![0, 60, 0, 0];
    header.extend_from_slice(&(body.len() as u64).to_be_bytes());
    // Property flags: delivery-mode only (bit 12), then the mode.
    header.extend_from_slice(&[0x10, 0x00, 2]);
    let mut out = method_frame(
        channel,
        &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: queue.into(),
            mandatory: false,
            immediate: false,
        })),
    );
    out.extend(frame(2, channel, &header));
    out.extend(frame(3, channel, body.as_bytes()));
    out
}

fn method_frame(channel: u16, class: &AMQPClass) -> Vec<u8> {
    let payload = lapin::protocol::gen_class(class)(Vec::new().into())
        .expect("encode method")
        .write;
    frame(1, channel, &payload)
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&u32::try_from(payload.len()).expect("size").to_be_bytes());
    f.extend_from_slice(payload);
    f.push(0xCE);
    f
}

/// A method sent on a channel before the tx.commit-ok of its persistent messages (pipelined in
/// the same write) is RabbitMQ's connection error 504: a client must wait for commit-ok.
async fn tx_method_before_commit_ok_is_504(b: &Broker) {
    use lapin::protocol::{basic, channel, connection, tx};
    let conn = b.connect().await;
    let setup = conn.create_channel().await.expect("channel");
    let q = unique("tx-pipelined");
    declare_durable(&setup, &q).await;
    let (mut raw, _) = RawConn::open(b.addr).await;
    raw.send_method(
        1,
        &AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
    .await;
    match raw.read_method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => {}
        other => panic!("expected channel.open-ok, got {other:?}"),
    }
    raw.send_method(1, &AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})))
        .await;
    match raw.read_method().await {
        (1, AMQPClass::Tx(tx::AMQPMethod::SelectOk(_))) => {}
        other => panic!("expected tx.select-ok, got {other:?}"),
    }
    let mut burst = persistent_publish_frames(1, &q, "p0");
    burst.extend(method_frame(
        1,
        &AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
    ));
    burst.extend(method_frame(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: q.as_str().into(),
            no_ack: true,
        })),
    ));
    raw.send_bytes(&burst).await.expect("send the burst");
    let close = loop {
        match raw.read_method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => break c,
            // RabbitMQ may still send the commit-ok before it closes.
            (1, AMQPClass::Tx(tx::AMQPMethod::CommitOk(_))) => {}
            other => panic!("expected connection.close, got {other:?}"),
        }
    };
    assert_eq!(
        (
            close.reply_code,
            close.reply_text.as_str(),
            close.class_id,
            close.method_id
        ),
        (
            504,
            "CHANNEL_ERROR - unexpected command while processing 'tx.commit'",
            60,
            70
        )
    );
    raw.send_method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
    )
    .await;
    // The commit's fsync may still be running: a confirmed publish waits for a later one
    // before the queue goes (deleting a durable queue while the store syncs its new
    // directory fails that fsync, and that poisons our store).
    let confirms = confirm_channel(&conn).await;
    publish_confirmed(
        &confirms,
        "",
        &q,
        b"after",
        BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    delete(&setup, &q).await;
    conn.close(200, "bye".into()).await.expect("close");
}

/// A commit with a publish the queue refuses (`x-overflow = reject-publish`) is answered with
/// a channel error 406 instead of commit-ok, with transient and with persistent messages; the
/// accepted publish stays.
async fn tx_commit_with_a_refused_publish(b: &Broker) {
    let conn = b.connect().await;
    let setup = conn.create_channel().await.expect("channel");
    for (durable, mode) in [(false, 1), (true, 2)] {
        let q = unique("tx-refused");
        setup
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable,
                    ..QueueDeclareOptions::default()
                },
                field_table(&[
                    ("x-max-length", lapin::types::AMQPValue::LongInt(1)),
                    ("x-overflow", long_str("reject-publish")),
                ]),
            )
            .await
            .expect("declare");
        let ch = conn.create_channel().await.expect("channel");
        ch.tx_select().await.expect("tx.select");
        for body in ["kept", "refused"] {
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_delivery_mode(mode),
            )
            .await
            .expect("basic.publish");
        }
        assert_amqp_error(
            ch.tx_commit().await,
            406,
            "PRECONDITION_FAILED - partial tx completion",
        );
        assert_eq!(
            drain(&setup, &q).await,
            strings(&["kept"]),
            "durable={durable}"
        );
        delete(&setup, &q).await;
    }
    conn.close(200, "bye".into()).await.expect("close");
}

parity!(
    tx_commit_persistent_durable,
    tx_method_before_commit_ok_is_504,
    tx_commit_with_a_refused_publish,
);
